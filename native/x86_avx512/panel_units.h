/*
 * The panel layout of the AVX-512 batch kernels and the code that fills it, shared by the VNNI
 * kernels (quant_panel_avx512.c) and the AMX tile kernels (quant_amx_avx512.c): weight rows
 * unpacked into panels of 16 rows whose 32-bit lanes are the rows, and the per-token prep values
 * (offset corrections, K-quant mins' partners). A panel block of 32 elements is, byte for byte,
 * the B operand of an AMX tile dot product (8 rows of 16 columns x 4 bytes).
 */
#ifndef CAIRN_PANEL_UNITS_H
#define CAIRN_PANEL_UNITS_H

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../src/cairn.h"
#include "../src/quant_formats.h"
#include "../src/quant_kernels.h"
#include "transpose16.h"

#define PANEL_ROWS QUANT_PANEL_ROWS
/*
 * Bytes of one 32-element block of a panel: 8 vectors of 16 rows x 4 quants, then two vectors
 * of 16 f32: the block scales and, by format, the K-quant mins (-dmin * m) or Q6_K's scales of
 * the block's second 16 elements.
 */
#define PANEL_BLOCK_BYTES (8 * 64 + 2 * 64)
_Static_assert(PANEL_BLOCK_BYTES == QUANT_PANEL_BLOCK_BYTES, "quant_panel_bytes assumes this block size");

/* How a block's integer dots become floats (see px_tile). */
enum { PX_OFFSET = 0, PX_MIN = 1, PX_HALVES = 2 };

#define PX_INLINE static inline __attribute__((always_inline))

/* An unaligned int32 that may alias activation bytes (4 of them go to every lane of a dpbusd). */
typedef int32_t px_i32u __attribute__((aligned(1), may_alias));

/*
 * The 16 rows of a panel. Rows past the matrix's last repeat row 0: their lanes compute
 * something, but px_tile never stores them.
 */
PX_INLINE void px_rows(const uint8_t *w, size_t ws, int nr, const uint8_t *rows[PANEL_ROWS]) {
  for (int r = 0; r < PANEL_ROWS; r++) rows[r] = w + (size_t)(r < nr ? r : 0) * ws;
}

/* Byte i of 16 transposed bytes (px_transpose16's output) per lane: unsigned, and sign-extended. */
PX_INLINE __m512i px_byte(const __m512i *v, int i) {
  return _mm512_and_si512(_mm512_srli_epi32(v[i / 4], 8 * (i % 4)), _mm512_set1_epi32(0xff));
}
PX_INLINE __m512i px_sbyte(const __m512i *v, int i) {
  return _mm512_srai_epi32(_mm512_slli_epi32(v[i / 4], 24 - 8 * (i % 4)), 24);
}

/*
 * The n-byte fields (n = 1 or 2) at rows[r] + off of the 16 rows, packed in row order into
 * 64-bit words in general registers: read back as one vector, 16 narrow stores stalled on store
 * forwarding, and table loads with single-float stores per row cost as much as the rest of a unit.
 */
PX_INLINE void px_pack_fields(const uint8_t *const *rows, size_t off, const int n, uint64_t *words) {
  const int per_word = 8 / n;
  for (int w = 0; w < PANEL_ROWS / per_word; w++) words[w] = 0;
  for (int r = 0; r < PANEL_ROWS; r++) {
    uint16_t x = 0;
    memcpy(&x, rows[r] + off, (size_t)n);
    words[r / per_word] |= (uint64_t)x << (8 * n * (r % per_word));
    __asm__("" : "+r"(words[r / per_word])); /* kept in general registers (vectorized, it went through memory) */
  }
}

/* The f16 at rows[r] + off for each row, as 16 f32 (one thread, 256 x 2880 Q4_0 in L2, one token:
   24.4 -> 25.6 GB/s against a 16-store buffer). */
PX_INLINE __m512 px_halves(const uint8_t *const *rows, size_t off) {
  uint64_t q[4];
  px_pack_fields(rows, off, 2, q);
  return _mm512_cvtph_ps(_mm256_set_epi64x((long long)q[3], (long long)q[2], (long long)q[1], (long long)q[0]));
}

PX_INLINE __m512i *px_block(uint8_t *panel, int b) { return (__m512i *)(panel + (size_t)b * PANEL_BLOCK_BYTES); }

/*
 * Where a unit of a K format reads its 16 rows' block bytes: from the rows themselves, transposed
 * (px_transpose16), or from weights packed at load (px_pack_block_dwords), which hold those vectors
 * as they are. v gets the 16 bytes at `off` (a multiple of 16) of block B of every row, lane per
 * row: 4 bytes in each of 4 vectors.
 */
PX_INLINE void px_block_vectors(const int packed, const uint8_t *const *rows, int B, size_t block_bytes, size_t off, __m512i v[4]) {
  if (packed) {
    const uint8_t *src = rows[0] + (size_t)B * PANEL_ROWS * block_bytes + PANEL_ROWS * off;
    for (int g = 0; g < 4; g++) v[g] = _mm512_loadu_si512((const void *)(src + 64 * g));
  } else {
    px_transpose16(rows, (size_t)B * block_bytes + off, v);
  }
}

/*
 * K-format weights packed at load (quant_kernels.h's pack): a group of 16 rows is one stretch of
 * 16 x row bytes, super-block after super-block, each the block's dwords transposed (vector i holds
 * dword i of the 16 rows, lane per row; 36, 44 and 52 dwords, in fours), then, where the block's size
 * is not a multiple of 4 (Q6_K, whose f16 d ends it), its last 2 bytes of the 16 rows in row order.
 * Rows past the matrix's last in its last group repeat the group's first (as px_rows has them;
 * never stored).
 */
PX_INLINE void px_pack_block_dwords(const uint8_t *const *rows, int b, size_t block_bytes, uint8_t *dst) {
  const size_t off = (size_t)b * block_bytes, ndw = block_bytes / 4;
  __m512i v[4];
  for (size_t i = 0; i < ndw; i += 4) {
    px_transpose16(rows, off + 4 * i, v);
    for (int g = 0; g < 4; g++) _mm512_storeu_si512((void *)(dst + 64 * (i + g)), v[g]);
  }
  if (block_bytes % 4) {
    uint64_t words[4];
    px_pack_fields(rows, off + 4 * ndw, 2, words);
    memcpy(dst + 64 * ndw, words, sizeof words);
  }
}

/* Blocks [b0, b0 + nb) of lane `lane`'s row of a group packed by px_pack_block_dwords, back in the file's layout. */
PX_INLINE void px_unpack_row_dwords(const uint8_t *group, int lane, int b0, int nb, size_t block_bytes, uint8_t *dst) {
  const size_t ndw = block_bytes / 4, rest = block_bytes % 4;
  for (int b = 0; b < nb; b++) {
    const uint8_t *src = group + (size_t)(b0 + b) * PANEL_ROWS * block_bytes;
    uint8_t *out = dst + (size_t)b * block_bytes;
    for (size_t i = 0; i < ndw; i++) memcpy(out + 4 * i, src + 64 * i + 4 * (size_t)lane, 4);
    if (rest) memcpy(out + 4 * ndw, src + 64 * ndw + rest * (size_t)lane, rest);
  }
}

/* The f16 d that ends each Q6_K block of 16 packed rows (rows[0]: the group's start), as 16 f32. */
PX_INLINE __m512 px_q6_K_packed_d(const uint8_t *const *rows, int B) {
  const uint8_t *d = rows[0] + (size_t)B * PANEL_ROWS * sizeof(block_q6_K) + PANEL_ROWS * offsetof(block_q6_K, d);
  return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)d));
}

/*
 * A 32-element block's 4-bit codes from the 16 rows' code bytes transposed (lane j of v[g]: bytes
 * 4g .. 4g + 3 of row j's; byte i holds element i in its low nibble, i + 16 in its high one) into
 * panel vectors 0-3 (low nibbles) and 4-7 (high), through a 16-entry byte table where `lookup`.
 */
PX_INLINE void px_store_codes(const __m512i *v, const int lookup, __m512i table, __m512i *out) {
  const __m512i low = _mm512_set1_epi8(0x0f);
  for (int g = 0; g < 4; g++) {
    const __m512i lo = _mm512_and_si512(v[g], low), hi = _mm512_and_si512(_mm512_srli_epi16(v[g], 4), low);
    _mm512_store_si512(out + g, lookup ? _mm512_shuffle_epi8(table, lo) : lo);
    _mm512_store_si512(out + g + 4, lookup ? _mm512_shuffle_epi8(table, hi) : hi);
  }
}

/* Q4_0 panel: quants as u8 0..15 (elements 4g..4g+3 in vector g), offset 8 via the activation sums. */
PX_INLINE void px_unit_q4_0(const uint8_t *const *rows, int b, uint8_t *dst) {
  const size_t off = (size_t)b * sizeof(block_q4_0);
  __m512i *out = px_block(dst, 0), v[4];
  px_transpose16(rows, off + offsetof(block_q4_0, qs), v);
  px_store_codes(v, 0, _mm512_setzero_si512(), out);
  _mm512_store_ps((float *)(out + 8), px_halves(rows, off + offsetof(block_q4_0, d)));
}

/*
 * Weights of 32-element blocks of 4-bit codes (Q4_0, IQ4_NL, MXFP4) packed at load (quant_kernels.h's
 * pack): a group of 16 rows is one stretch of 16 x row bytes, block after block, each block the
 * vectors the units transpose out of the rows (4 x 64 bytes: lane j of vector g holds code bytes
 * 4g .. 4g + 3 of row j) and then the 16 rows' scale fields of `sc` bytes each (an f16 d, or
 * MXFP4's E8M0 byte), in row order. Rows past the matrix's last in its last group repeat the
 * group's first (as px_rows has them; never stored). A packed unit's rows[0] is the group's start;
 * the other row pointers are not read.
 */
PX_INLINE void px_pack_block_codes(const uint8_t *const *rows, int b, size_t block_bytes, size_t qs, size_t scale, const int sc, uint8_t *dst) {
  const size_t off = (size_t)b * block_bytes;
  __m512i v[4];
  px_transpose16(rows, off + qs, v);
  for (int g = 0; g < 4; g++) _mm512_storeu_si512(dst + 64 * g, v[g]);
  uint64_t words[4];
  px_pack_fields(rows, off + scale, sc, words);
  memcpy(dst + 256, words, (size_t)(16 * sc));
}

/* Blocks [b0, b0 + nb) of lane `lane`'s row of a packed group, back in the file's layout. */
PX_INLINE void px_unpack_row_codes(const uint8_t *group, int lane, int b0, int nb, size_t block_bytes, size_t qs, size_t scale, const int sc, uint8_t *dst) {
  for (int b = 0; b < nb; b++) {
    const uint8_t *src = group + (size_t)(b0 + b) * PANEL_ROWS * block_bytes;
    uint8_t *out = dst + (size_t)b * block_bytes;
    memcpy(out + scale, src + 256 + sc * lane, (size_t)sc);
    for (int g = 0; g < 4; g++) memcpy(out + qs + 4 * g, src + 64 * g + 4 * lane, 4);
  }
}

/* Block b's codes of a packed group (rows[0]) into a panel block, through `table` where `lookup`; returns the block's scale fields. */
PX_INLINE const uint8_t *px_packed_codes(const uint8_t *const *rows, int b, size_t block_bytes, const int lookup, __m512i table, uint8_t *dst) {
  const uint8_t *src = rows[0] + (size_t)b * PANEL_ROWS * block_bytes;
  __m512i v[4];
  for (int g = 0; g < 4; g++) v[g] = _mm512_loadu_si512(src + 64 * g);
  px_store_codes(v, lookup, table, px_block(dst, 0));
  return src + 256;
}

/* The panel block px_unit_q4_0 makes, from packed weights: the same bytes, without transposes. */
PX_INLINE void px_unit_q4_0_packed(const uint8_t *const *rows, int b, uint8_t *dst) {
  const uint8_t *d = px_packed_codes(rows, b, sizeof(block_q4_0), 0, _mm512_setzero_si512(), dst);
  _mm512_store_ps((float *)(px_block(dst, 0) + 8), _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)d)));
}

/*
 * The E8M0 byte at rows[r] + off of each row, halved (quant_e8m0_half), as 16 f32: the bytes
 * packed by px_pack_fields and the values formed in vector registers, instead of 16 table loads
 * and single-float stores (one thread, 256 x 2880 in L2, one token: 18.8 -> 21.2 GB/s; two
 * threads over memory, 2880 x 2880: 23.6 -> 26.5). A gather instruction instead was slower (17.0).
 */
/* The 16 E8M0 bytes, in row order, halved as 16 f32. */
PX_INLINE __m512 px_e8m0_halves_of(__m128i bytes) {
  const __m512i e = _mm512_cvtepu8_epi32(bytes);
  /* 2^(e - 128): exponent field e - 1, or for e < 2 the subnormals 0x00200000 << e. */
  const __m512i normal = _mm512_slli_epi32(_mm512_sub_epi32(e, _mm512_set1_epi32(1)), 23);
  const __m512i tiny = _mm512_sllv_epi32(_mm512_set1_epi32(0x00200000), e);
  return _mm512_castsi512_ps(_mm512_mask_mov_epi32(normal, _mm512_cmplt_epu32_mask(e, _mm512_set1_epi32(2)), tiny));
}
PX_INLINE __m512 px_e8m0_halves(const uint8_t *const *rows, size_t off) {
  uint64_t q[2];
  px_pack_fields(rows, off, 1, q);
  return px_e8m0_halves_of(_mm_set_epi64x((long long)q[1], (long long)q[0]));
}

/*
 * The quants of a 32-element block of nibble codes at rows[r] + qs (byte j: element j in its low
 * nibble, j + 16 in its high one) through a 16-entry byte table, into panel block dst.
 */
PX_INLINE void px_table_nibbles(const uint8_t *const *rows, size_t qs, __m512i table, uint8_t *dst) {
  __m512i v[4];
  px_transpose16(rows, qs, v);
  px_store_codes(v, 1, table, px_block(dst, 0));
}

/* MXFP4's doubled E2M1 codes + 16 as u8 (4..28). */
#define PX_MXFP4_TABLE _mm512_broadcast_i32x4(_mm_setr_epi8(16, 17, 18, 19, 20, 22, 24, 28, 16, 15, 14, 13, 12, 10, 8, 4))

/* MXFP4 panel: the codes through PX_MXFP4_TABLE, offset 16 via the activation sums. */
PX_INLINE void px_unit_mxfp4(const uint8_t *const *rows, int b, uint8_t *dst) {
  const size_t off = (size_t)b * sizeof(block_mxfp4);
  px_table_nibbles(rows, off + offsetof(block_mxfp4, qs), PX_MXFP4_TABLE, dst);
  _mm512_store_ps((float *)(px_block(dst, 0) + 8), px_e8m0_halves(rows, off + offsetof(block_mxfp4, e)));
}

/* The panel block px_unit_mxfp4 makes, from packed weights. */
PX_INLINE void px_unit_mxfp4_packed(const uint8_t *const *rows, int b, uint8_t *dst) {
  const uint8_t *e = px_packed_codes(rows, b, sizeof(block_mxfp4), 1, PX_MXFP4_TABLE, dst);
  _mm512_store_ps((float *)(px_block(dst, 0) + 8), px_e8m0_halves_of(_mm_loadu_si128((const __m128i *)e)));
}

/* IQ4_NL's code values + 128 as u8 (1..241; + 128 is a flip of the top bit): its values reach -127,
   beyond Q4_0's and MXFP4's small offsets. */
#define PX_IQ4_TABLE _mm512_xor_si512(_mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)quant_iq4_values)), _mm512_set1_epi8((char)0x80))

/* IQ4_NL panel: as Q4_0's, the codes through PX_IQ4_TABLE; offset 128 via the activation sums. */
PX_INLINE void px_unit_iq4_nl(const uint8_t *const *rows, int b, uint8_t *dst) {
  const size_t off = (size_t)b * sizeof(block_iq4_nl);
  px_table_nibbles(rows, off + offsetof(block_iq4_nl, qs), PX_IQ4_TABLE, dst);
  _mm512_store_ps((float *)(px_block(dst, 0) + 8), px_halves(rows, off + offsetof(block_iq4_nl, d)));
}

/* The panel block px_unit_iq4_nl makes, from packed weights. */
PX_INLINE void px_unit_iq4_nl_packed(const uint8_t *const *rows, int b, uint8_t *dst) {
  const uint8_t *d = px_packed_codes(rows, b, sizeof(block_iq4_nl), 1, PX_IQ4_TABLE, dst);
  _mm512_store_ps((float *)(px_block(dst, 0) + 8), _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)d)));
}

/* Bits 0-3 of each lane of x as 0x10 in bytes 0-3 (the fifth bits of four quants): multiplied out to
   bits 0, 8, 16, 24 (the partial products never overlap, so nothing carries), then moved up. */
PX_INLINE __m512i px_fifth_bits4(__m512i x) {
  const __m512i spread = _mm512_mullo_epi32(_mm512_and_si512(x, _mm512_set1_epi32(0xf)), _mm512_set1_epi32(0x00204081));
  return _mm512_slli_epi32(_mm512_and_si512(spread, _mm512_set1_epi32(0x01010101)), 4);
}

/* Q5_0 panel: quants as u8 0..31 (the nibbles and qh's bits), offset 16 via the activation sums. */
PX_INLINE void px_unit_q5_0(const uint8_t *const *rows, int b, uint8_t *dst) {
  const __m512i low = _mm512_set1_epi8(0x0f);
  const size_t off = (size_t)b * sizeof(block_q5_0);
  __m512i *out = px_block(dst, 0), head[4], v[4];
  /* Dwords 0 and 1 of the block: d, then qh in the high half of the first and the low half of the second. */
  px_transpose16(rows, off, head);
  const __m512i qh = _mm512_or_si512(_mm512_srli_epi32(head[0], 16), _mm512_slli_epi32(head[1], 16));
  /* qs byte j holds element j (low nibble) and j + 16 (high nibble); bit e of qh is element e's fifth bit. */
  px_transpose16(rows, off + offsetof(block_q5_0, qs), v);
  for (int g = 0; g < 4; g++) {
    _mm512_store_si512(out + g, _mm512_or_si512(_mm512_and_si512(v[g], low), px_fifth_bits4(_mm512_srli_epi32(qh, 4 * g))));
    _mm512_store_si512(out + g + 4, _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(v[g], 4), low), px_fifth_bits4(_mm512_srli_epi32(qh, 16 + 4 * g))));
  }
  _mm512_store_ps((float *)(out + 8), _mm512_cvtph_ps(_mm512_cvtepi32_epi16(head[0])));
}

/* Q8_0 panel: quants as u8 q + 128, offset 128 via the activation sums. */
PX_INLINE void px_unit_q8_0(const uint8_t *const *rows, int b, uint8_t *dst) {
  const __m512i flip = _mm512_set1_epi8((char)0x80);
  const size_t off = (size_t)b * sizeof(block_q8_0);
  __m512i *out = px_block(dst, 0), v[4];
  for (int h = 0; h < 2; h++) {
    px_transpose16(rows, off + offsetof(block_q8_0, qs) + 16 * h, v);
    for (int g = 0; g < 4; g++) _mm512_store_si512(out + 4 * h + g, _mm512_xor_si512(v[g], flip));
  }
  _mm512_store_ps((float *)(out + 8), px_halves(rows, off + offsetof(block_q8_0, d)));
}

/* A Q4_K super-block's per-row values, lane per row: scales and mins (0..63) of its 8 sub-blocks, d, dmin. */
typedef struct {
  __m512i sc[8], m[8];
  __m512 d, dmin;
} px_q4_K_head;

/* The head of super-block B of the 16 rows (quant_k_scale_min, lane by lane); Q5_K's head is laid out as Q4_K's, in blocks of `block_bytes`. */
PX_INLINE void px_k_head_of(const int packed, const uint8_t *const *rows, int B, size_t block_bytes, px_q4_K_head *o) {
  /* d, dmin (dword 0) and the 12 scale bytes (dwords 1-3) of every row, lane per row. */
  __m512i head[4];
  px_block_vectors(packed, rows, B, block_bytes, 0, head);
  o->d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(head[0]));
  o->dmin = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(head[0], 16)));
  for (int sb = 0; sb < 8; sb++) {
    if (sb < 4) {
      o->sc[sb] = _mm512_and_si512(px_byte(head + 1, sb), _mm512_set1_epi32(63));
      o->m[sb] = _mm512_and_si512(px_byte(head + 1, sb + 4), _mm512_set1_epi32(63));
    } else {
      const __m512i both = px_byte(head + 1, sb + 4);
      o->sc[sb] = _mm512_or_si512(_mm512_and_si512(both, _mm512_set1_epi32(15)),
                                  _mm512_slli_epi32(_mm512_srli_epi32(px_byte(head + 1, sb - 4), 6), 4));
      o->m[sb] = _mm512_or_si512(_mm512_srli_epi32(both, 4), _mm512_slli_epi32(_mm512_srli_epi32(px_byte(head + 1, sb), 6), 4));
    }
  }
}

/* The mins of sub-blocks 2k and 2k + 1 as word pairs per row (px_run_k's layout). */
PX_INLINE __m512i px_q4_K_min_pair(const px_q4_K_head *h, int k) { return _mm512_or_si512(h->m[2 * k], _mm512_slli_epi32(h->m[2 * k + 1], 16)); }

/*
 * Quant vectors 4h..4h+3 of sub-blocks 2j (even) and 2j + 1 (odd) of super-block B, u8 0..15:
 * bytes 32j..32j+31 of qs hold sub-block 2j in their low nibbles and 2j + 1 in their high ones.
 */
PX_INLINE void px_q4_K_quants(const int packed, const uint8_t *const *rows, int B, int j, int h, __m512i even[4], __m512i odd[4]) {
  const __m512i low = _mm512_set1_epi8(0x0f);
  __m512i v[4];
  px_block_vectors(packed, rows, B, sizeof(block_q4_K), offsetof(block_q4_K, qs) + 32 * j + 16 * h, v);
  for (int g = 0; g < 4; g++) {
    even[g] = _mm512_and_si512(v[g], low);
    odd[g] = _mm512_and_si512(_mm512_srli_epi16(v[g], 4), low);
  }
}

/*
 * The same for Q5_K, quants 0..31: bit 2j (even) and 2j + 1 (odd) of qh byte l is the fifth bit of
 * element l of sub-block 2j and 2j + 1 (ggml's dequantize_row_q5_K).
 */
PX_INLINE void px_q5_K_quants(const int packed, const uint8_t *const *rows, int B, int j, int h, __m512i even[4], __m512i odd[4]) {
  const __m512i low = _mm512_set1_epi8(0x0f), one = _mm512_set1_epi8(1);
  __m512i v[4], vh[4];
  px_block_vectors(packed, rows, B, sizeof(block_q5_K), offsetof(block_q5_K, qs) + 32 * j + 16 * h, v);
  px_block_vectors(packed, rows, B, sizeof(block_q5_K), offsetof(block_q5_K, qh) + 16 * h, vh);
  for (int g = 0; g < 4; g++) {
    const __m512i e5 = _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(vh[g], 2 * j), one), 4);
    const __m512i o5 = _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(vh[g], 2 * j + 1), one), 4);
    even[g] = _mm512_or_si512(_mm512_and_si512(v[g], low), e5);
    odd[g] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(v[g], 4), low), o5);
  }
}

/*
 * Q4_K panel: each 32-element sub-block is a panel block of u8 quants 0..15 with its scale per row
 * (int32); a super-block's mins (word pairs), d and dmin fill the second spare vectors of its first
 * six sub-blocks (see px_run_k).
 */
PX_INLINE void px_unit_k_min(const int five, const int packed, const uint8_t *const *rows, int B, uint8_t *panel) {
  for (int j = 0; j < 4; j++)
    for (int h = 0; h < 2; h++) {
      __m512i even[4], odd[4];
      if (five) px_q5_K_quants(packed, rows, B, j, h, even, odd);
      else px_q4_K_quants(packed, rows, B, j, h, even, odd);
      for (int g = 0; g < 4; g++) {
        _mm512_store_si512(px_block(panel, 2 * j) + 4 * h + g, even[g]);
        _mm512_store_si512(px_block(panel, 2 * j + 1) + 4 * h + g, odd[g]);
      }
    }
  px_q4_K_head head;
  px_k_head_of(packed, rows, B, five ? sizeof(block_q5_K) : sizeof(block_q4_K), &head);
  for (int sb = 0; sb < 8; sb++) _mm512_store_si512(px_block(panel, sb) + 8, head.sc[sb]);
  /* The mins in word pairs of sub-blocks (2k, 2k + 1), in the second spare vector of sub-block k. */
  for (int k = 0; k < 4; k++) _mm512_store_si512(px_block(panel, k) + 9, px_q4_K_min_pair(&head, k));
  _mm512_store_ps((float *)(px_block(panel, 4) + 9), head.d);
  _mm512_store_ps((float *)(px_block(panel, 5) + 9), head.dmin);
}

PX_INLINE void px_unit_q4_K(const uint8_t *const *rows, int B, uint8_t *panel) { px_unit_k_min(0, 0, rows, B, panel); }
/* Q5_K panel: as Q4_K's, with quants 0..31. */
PX_INLINE void px_unit_q5_K(const uint8_t *const *rows, int B, uint8_t *panel) { px_unit_k_min(1, 0, rows, B, panel); }
/* The same panels from weights packed at load (rows[0]: the group's start). */
PX_INLINE void px_unit_q4_K_packed(const uint8_t *const *rows, int B, uint8_t *panel) { px_unit_k_min(0, 1, rows, B, panel); }
PX_INLINE void px_unit_q5_K_packed(const uint8_t *const *rows, int B, uint8_t *panel) { px_unit_k_min(1, 1, rows, B, panel); }

/*
 * Quant vector g of sub-block 4n + k (k = odd + 2 hi) of a Q6_K super-block, u8 0..63, from the
 * 16 rows' ql vectors vl (elements 16h.. of ql bytes 64n + 32 odd) and qh vectors vh (bytes 32n +
 * 16h): the low 4 bits from vl's low (hi = 0) or high nibbles, the top 2 from bits 2k, 2k + 1 of vh.
 */
PX_INLINE __m512i px_q6_K_quant(const __m512i *vl, const __m512i *vh, int k, int hi, int g) {
  const __m512i lo4 = _mm512_and_si512(hi ? _mm512_srli_epi16(vl[g], 4) : vl[g], _mm512_set1_epi8(0x0f));
  const __m512i hi2 = _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi32(vh[g], 2 * k), _mm512_set1_epi8(0x03)), 4);
  return _mm512_or_si512(lo4, hi2);
}

/* Q6_K panel: u8 quants 0..63 (offset 32 via the sums of 16), the halves' scales as word pairs, d per super-block. */
PX_INLINE void px_unit_q6_K_from(const int packed, const uint8_t *const *rows, int B, uint8_t *panel) {
  /* Elements 128n + 32k + l: ql byte 64n + 32(k & 1) + l (high nibble when k >= 2), qh byte
   * 32n + l (bits 2k, 2k + 1), as in ggml's dequantize_row_q6_K. */
  for (int n = 0; n < 2; n++)
    for (int h = 0; h < 2; h++) {
      __m512i vh[4], vl[4];
      px_block_vectors(packed, rows, B, sizeof(block_q6_K), offsetof(block_q6_K, qh) + 32 * n + 16 * h, vh);
      for (int odd = 0; odd < 2; odd++) {
        px_block_vectors(packed, rows, B, sizeof(block_q6_K), offsetof(block_q6_K, ql) + 64 * n + 32 * odd + 16 * h, vl);
        for (int hi = 0; hi < 2; hi++) {
          const int k = odd + 2 * hi;
          for (int g = 0; g < 4; g++) _mm512_store_si512(px_block(panel, 4 * n + k) + 4 * h + g, px_q6_K_quant(vl, vh, k, hi, g));
        }
      }
    }
  __m512i scales[4];
  px_block_vectors(packed, rows, B, sizeof(block_q6_K), offsetof(block_q6_K, scales), scales);
  const __m512 d = packed ? px_q6_K_packed_d(rows, B) : px_halves(rows, (size_t)B * sizeof(block_q6_K) + offsetof(block_q6_K, d));
  for (int sb = 0; sb < 8; sb++) {
    /* The scales of the sub-block's two halves as a word pair per row. */
    const __m512i lo = _mm512_and_si512(px_sbyte(scales, 2 * sb), _mm512_set1_epi32(0xffff));
    _mm512_store_si512(px_block(panel, sb) + 8, _mm512_or_si512(lo, _mm512_slli_epi32(px_sbyte(scales, 2 * sb + 1), 16)));
  }
  _mm512_store_ps((float *)(px_block(panel, 0) + 9), d);
}
PX_INLINE void px_unit_q6_K(const uint8_t *const *rows, int B, uint8_t *panel) { px_unit_q6_K_from(0, rows, B, panel); }
PX_INLINE void px_unit_q6_K_packed(const uint8_t *const *rows, int B, uint8_t *panel) { px_unit_q6_K_from(1, rows, B, panel); }

/*
 * IQ4_XS panel, laid out as Q6_K's (PX_HALVES): per 32-element sub-block its code values + 128
 * (PX_IQ4_TABLE), its scale - 32 twice as the word pair of the two halves (so the halves' dots,
 * each started from its own offset correction, sum to the sub-block's), d per super-block. The
 * integer is llama.cpp's: sub-block dots times scale - 32, summed, then times d x da.
 */
PX_INLINE void px_unit_iq4_xs(const uint8_t *const *rows, int B, uint8_t *panel) {
  const __m512i table = PX_IQ4_TABLE;
  const size_t off = (size_t)B * sizeof(block_iq4_xs);
  __m512i head[4];
  /* d and scales_h (dword 0), scales_l (dword 1) of every row, lane per row. */
  px_transpose16(rows, off, head);
  const __m512i high = _mm512_srli_epi32(head[0], 16);
  for (int ib = 0; ib < 8; ib++) {
    /* Sub-block ib: qs bytes 16 ib + j hold element j (low nibble) and j + 16 (high nibble). */
    px_table_nibbles(rows, off + offsetof(block_iq4_xs, qs) + 16 * (size_t)ib, table, (uint8_t *)px_block(panel, ib));
    __m512i *out = px_block(panel, ib);
    const __m512i ls = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(px_byte(head + 1, ib / 2), 4 * (ib % 2)), _mm512_set1_epi32(15)),
                                       _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(high, 2 * ib), _mm512_set1_epi32(3)), 4));
    const __m512i sc = _mm512_and_si512(_mm512_sub_epi32(ls, _mm512_set1_epi32(32)), _mm512_set1_epi32(0xffff));
    _mm512_store_si512(out + 8, _mm512_or_si512(sc, _mm512_slli_epi32(sc, 16)));
  }
  _mm512_store_ps((float *)(px_block(panel, 0) + 9), _mm512_cvtph_ps(_mm512_cvtepi32_epi16(head[0])));
}

/*
 * -offset * (sum of each 32-element block of a Q8_0 activation row), the start value of each
 * block's integer dot.
 */
PX_INLINE void px_block_sums(const uint8_t *a, int cols, int offset, int32_t *aux) {
  const __m512i ones = _mm512_set1_epi8(1);
  int b = 0;
  for (; b + 2 <= cols / QK; b += 2) {
    const __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, _mm512_loadu_si512((const void *)(a + QK * b)));
    aux[b] = -offset * _mm512_mask_reduce_add_epi32(0x00ff, s);
    aux[b + 1] = -offset * _mm512_mask_reduce_add_epi32(0xff00, s);
  }
  for (; b < cols / QK; b++) {
    int32_t s = 0;
    for (int j = 0; j < QK; j++) s += (int8_t)a[QK * b + j];
    aux[b] = -offset * s;
  }
}

static void px_prep_q4_0(const uint8_t *a, int cols, int32_t *aux) { px_block_sums(a, cols, 8, aux); }
static void px_prep_q8_0(const uint8_t *a, int cols, int32_t *aux) { px_block_sums(a, cols, 128, aux); }
static void px_prep_mxfp4(const uint8_t *a, int cols, int32_t *aux) { px_block_sums(a, cols, 16, aux); }
static void px_prep_q5_0(const uint8_t *a, int cols, int32_t *aux) { px_block_sums(a, cols, 16, aux); }

static void px_prep_iq4_nl(const uint8_t *a, int cols, int32_t *aux) { px_block_sums(a, cols, 128, aux); }

/* Q4_K: the sums of sub-blocks 2k and 2k + 1 as a word pair (at 2k), the mins' partners. */
static void px_prep_q4_K(const uint8_t *a, int cols, int32_t *aux) {
  const int16_t *bsums = (const int16_t *)(a + cols + (size_t)(cols / QK_K) * 4);
  for (int b = 0; b + 1 < cols / QK; b += 2) {
    const uint32_t lo = (uint16_t)(bsums[2 * b] + bsums[2 * b + 1]), hi = (uint16_t)(bsums[2 * b + 2] + bsums[2 * b + 3]);
    aux[b] = (int32_t)(lo | hi << 16);
    aux[b + 1] = 0;
  }
}

/* Q6_K: -32 * (sum of each 16 activations), the start of each half-block's integer dot. */
static void px_prep_q6_K(const uint8_t *a, int cols, int32_t *aux) {
  const int16_t *bsums = (const int16_t *)(a + cols + (size_t)(cols / QK_K) * 4);
  for (int j = 0; j < cols / 16; j++) aux[j] = -32 * bsums[j];
}

/* IQ4_XS: -128 * (sum of each 16 activations), as Q6_K's with its offset. */
static void px_prep_iq4_xs(const uint8_t *a, int cols, int32_t *aux) {
  const int16_t *bsums = (const int16_t *)(a + cols + (size_t)(cols / QK_K) * 4);
  for (int j = 0; j < cols / 16; j++) aux[j] = -128 * bsums[j];
}

/* Unpacks unit u of 16 rows (one 32-element block, or a K super-block: 8 blocks) into panel blocks at dst. */
typedef void (*px_unit_fn)(const uint8_t *const *rows, int u, uint8_t *dst);
typedef void (*px_prep_fn)(const uint8_t *a, int cols, int32_t *aux);

/* The nr rows at w unpacked into panels of 16 rows, `units` units of unit_bytes each per panel. */
PX_INLINE void px_unpack_panels(px_unit_fn unit, int units, size_t unit_bytes, const uint8_t *w, size_t ws, int nr, uint8_t *panels) {
  for (int p = 0; p * PANEL_ROWS < nr; p++) {
    const int rows = nr - p * PANEL_ROWS < PANEL_ROWS ? nr - p * PANEL_ROWS : PANEL_ROWS;
    const uint8_t *rp[PANEL_ROWS];
    px_rows(w + (size_t)p * PANEL_ROWS * ws, ws, rows, rp);
    uint8_t *panel = panels + (size_t)p * units * unit_bytes;
    for (int u = 0; u < units; u++) unit(rp, u, panel + (size_t)u * unit_bytes);
  }
}

/* Tokens a direct product takes at most (more take the panels: matmul.c's min_tokens). */
#define PX_DIRECT_MAX_T 48

/* The first 16-row unit past the prefetches of a direct tile (see below). */
#ifndef PX_AHEAD
#define PX_AHEAD 3
#endif
/*
 * What a direct tile at rows r0.. prefetches while it works: the 16 rows two units on are one
 * stretch of memory, asked for a unit at a time, into L2 (into L1 it pushed out the lines of these
 * rows: llama-1b Q8_0 decode 25 -> 19 tok/s); the first unit asks for the two after it. One thread
 * from memory, Zen 4, 2048 x 2048 (the next unit -> two on): Q4_0 21.0-21.5 -> 24.0-24.2 GB/s,
 * MXFP4 17.6-17.8 -> 19.9, Q8_0 26-27 either way. Past the call's rows too: a decode product hands
 * a thread its rows a few units at a time (matmul.c's vec_job), and the next piece is most often
 * the rows right after these. Bounded there, a piece's last units went unprefetched (2 threads,
 * Q4_0 512 x 2048: 42 -> 25 us a product; 2048 x 2048: 94-107 -> 75-78). A prefetch never
 * faults, past a mapping's end neither.
 */
PX_INLINE void px_direct_ahead(const uint8_t *w, size_t ws, int r0, const uint8_t **next, size_t *bytes) {
  const int from = r0 == 0 ? PANEL_ROWS : r0 + 2 * PANEL_ROWS;
  *next = w + (size_t)from * ws;
  *bytes = (size_t)(r0 + PX_AHEAD * PANEL_ROWS - from) * ws;
}

/* The 16 rows of the group at r0 into rp and what its direct product prefetches; returns its live rows. */
PX_INLINE int px_direct_rows(const uint8_t *w, size_t ws, int nr, int r0, const uint8_t **rp, const uint8_t **next, size_t *next_bytes) {
  const int rows = nr - r0 < PANEL_ROWS ? nr - r0 : PANEL_ROWS;
  px_rows(w + (size_t)r0 * ws, ws, rows, rp);
  px_direct_ahead(w, ws, r0, next, next_bytes);
  return rows;
}

/* Part `part` of `parts` of unit u's share of the prefetch px_direct_ahead set up (per_unit bytes
   of it, into L2). A unit of many tokens spreads its share over its token groups: asked for all at
   once, the lines filled the core's miss buffers and held it up. */
PX_INLINE void px_direct_prefetch_part(const uint8_t *next, size_t next_bytes, size_t per_unit, int u, int part, int parts) {
  const size_t lines = (per_unit + 63) / 64, from = (size_t)u * per_unit;
  const size_t lo = from + lines * part / parts * 64, hi = from + lines * (part + 1) / parts * 64;
  const size_t end = from + per_unit < next_bytes ? from + per_unit : next_bytes;
  for (size_t o = lo; o < hi && o < end; o += 64) _mm_prefetch((const char *)(next + o), _MM_HINT_T1);
}

/* Unit u's whole share at once. */
PX_INLINE void px_direct_prefetch(const uint8_t *next, size_t next_bytes, size_t per_unit, int u) {
  px_direct_prefetch_part(next, next_bytes, per_unit, u, 0, 1);
}

/* The 16-row panel's sums of T tokens into y (rows at r0; a K format with mins takes them off). */
PX_INLINE void px_direct_store(const int T, const int mode, int rows, const __m512 *acc, const __m512 *mins, float *y, size_t ys, int r0) {
  const __mmask16 live = (__mmask16)((1u << rows) - 1);
  for (int t = 0; t < T; t++) _mm512_mask_storeu_ps(y + (size_t)t * ys + r0, live, mode == PX_MIN ? _mm512_sub_ps(acc[t], mins[t]) : acc[t]);
}

/*
 * Tokens from which a direct product of `type` goes to the AMX tiles on the AMX level: fewer stay
 * on VNNI, where the tile steps' fixed cost (and the K units' folding) is not yet shared by enough
 * tokens. Same addon, the two levels alternating, 2 threads, ms, VNNI against AMX (Xeon with AMX):
 * 8 tokens Q4_K 8192 x 2048 1.47 vs 1.32, Q6_K 2048 x 8192 1.79 vs 2.21, Q8_0 2048 x 2048 0.28 vs
 * 0.35, Q4_0 1.12 vs 1.34, MXFP4 2880 x 2880 0.66 vs 0.83; 12 tokens Q4_K 1.95 vs 1.76, the others
 * 0.85-0.96x; 16 tokens AMX ahead for all (Q4_K 1.35x, Q4_0 1.24x, Q6_K 1.11x, Q8_0 1.09x). Q4_K
 * leads from 8 since its units are folded as they are unpacked; Q5_K and IQ4_XS from 12.
 */
PX_INLINE int quant_amx_direct_min_t(int type) {
  if (type == CAIRN_Q4_K) return 8;
  /* Folded as they are unpacked too, but with more to unpack: 8192 x 2048, 8 tokens, VNNI against
     AMX 1.11 vs 1.22 and 0.95 vs 0.96 ms (Q5_K), 0.81 vs 0.86 (IQ4_XS); 12 tokens 1.14 vs 1.00
     (Q5_K), 1.05-1.11 vs 0.92-0.97 (IQ4_XS). */
  if (type == CAIRN_Q5_K || type == CAIRN_IQ4_XS) return 12;
  return 16;
}

/* px_direct's products of quant_amx_direct_min_t(type) .. PX_DIRECT_MAX_T tokens of weights of `type`
   (a format with panels) on AMX tiles (quant_amx_avx512.c). */
void quant_amx_direct(int type, int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, const int32_t *aux,
                      size_t aux_stride, int nt, float *y, size_t ys);

#endif
