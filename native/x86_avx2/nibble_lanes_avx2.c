/*
 * Q4_0 and MXFP4 products on AVX2 with the weight rows in the vector lanes: 8 rows at a time, each
 * block's 8 x 16 bytes of nibbles transposed so that a 32-bit lane holds 4 quants of one row, then
 * each token's 4 activation bytes, broadcast, go against all 8 rows with one maddubs. Without VNNI the
 * row-major tiles (quant_x86_kernels.h) spend a maddubs, a madd, a conversion and a scaling per
 * 32 multiply-adds of one row and token, and a horizontal sum per row and token at the end; here
 * 8 maddubs add up in int16 (Q4_0's quants 0..15 times activations of at most 127 in magnitude:
 * 16 products stay within 30480; MXFP4's codes, through a table as values + 16 (4..28), in two
 * chains of 4) and one or two madds, one conversion and one scaling serve 8 rows. The
 * unpacking is paid once per tile of rows for all the call's tokens, kept in a per-thread buffer
 * (a few tokens use each block at once from registers). On a Zen 3 host (bench/RESULTS.md),
 * llama-1b Q4_0 prefill of 512 tokens 36.5-47.5 -> 64.8-83.4 tok/s, decode 23.9-29.8 -> 32.9.
 *
 * Arithmetic: each block's exact integer dot (unsigned quants against the activations, the offset
 * -8 or -16 taken back through the block's activation sum), then acc = fma(float(dot), dw x da,
 * acc) in block order, dw Q4_0's f16 scale or MXFP4's 2^(e - 128) (half the E8M0 scale: its
 * values are doubled): the AVX-512 level's panels and packed weights do the same, so the two
 * levels agree bit for bit, and a token's result never depends on its batch or on its row's place
 * in a tile.
 */
#if defined(__x86_64__)
#include <immintrin.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "quant_formats.h"
#include "quant_kernels.h"
#include "x86_prefetch.h"

/* Rows per tile: the 8 int32 lanes of a vector. */
#define LANES 8
/* Tokens sharing a block's 8 unpacked vectors in registers (with their 4 sums: 13 of 16 registers). */
#define TOKENS 4
/* Up to this many tokens take each block straight from the rows, unpacked in registers. */
#define FEW_TOKENS 3

/* The formats, compile-time constants of the always-inline steps: bytes of a block, where its
   nibbles start, the offset of their unsigned values. */
enum { FMT_Q4_0, FMT_MXFP4 };
#define BLOCK_BYTES(F) ((F) == FMT_Q4_0 ? sizeof(block_q4_0) : sizeof(block_mxfp4))
#define CODES_AT(F) ((F) == FMT_Q4_0 ? offsetof(block_q4_0, qs) : offsetof(block_mxfp4, qs))
#define OFFSET(F) ((F) == FMT_Q4_0 ? 8 : 16)

/* Per thread (a kernel is called once per piece of rows): the tile's unpacked blocks, and the
   tokens' block sums with what they were computed from. */
static __thread uint8_t *g_tile;
static __thread size_t g_tile_cap;
static __thread int32_t *g_sums;
static __thread size_t g_sums_cap;
static __thread const uint8_t *g_sums_a;
static __thread size_t g_sums_as;
static __thread int g_sums_nt, g_sums_cols;
static __thread unsigned g_sums_gen;

/* Grows *p to at least `bytes` (64-byte aligned). A few KiB per thread: a process out of memory
   here has nothing to fall back on (as quant_panel_avx512.c's direct products). */
static void grow(void *p, size_t *cap, size_t bytes) {
  if (*cap >= bytes) return;
  const size_t want = (bytes + 4095) & ~(size_t)4095;
  void *n = aligned_alloc(64, want);
  if (!n) abort();
  free(*(void **)p);
  *(void **)p = n;
  *cap = want;
}

/* The sum of each activation block's 32 quants, per token: the partner of the formats' offsets. */
static void block_sums(const uint8_t *a, size_t as, int nt, int cols, int32_t *sums) {
  const int nb = cols / QK;
  const __m256i ones = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
  for (int t = 0; t < nt; t++) {
    const int8_t *q = (const int8_t *)(a + (size_t)t * as);
    for (int b = 0; b < nb; b++) {
      const __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(ones, _mm256_loadu_si256((const __m256i *)(q + QK * b))), ones16);
      __m128i h = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
      h = _mm_add_epi32(h, _mm_unpackhi_epi64(h, h));
      h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 1));
      sums[(size_t)t * nb + b] = _mm_cvtsi128_si32(h);
    }
  }
}

/* The f16 scales of the 8 rows' block at byte offset off, as f32. */
static inline __m256 row_scales(const uint8_t *const *rp, size_t off) {
  __m128i h = _mm_cvtsi32_si128(*(const uint16_t *)(rp[0] + off));
  h = _mm_insert_epi16(h, *(const uint16_t *)(rp[1] + off), 1);
  h = _mm_insert_epi16(h, *(const uint16_t *)(rp[2] + off), 2);
  h = _mm_insert_epi16(h, *(const uint16_t *)(rp[3] + off), 3);
  h = _mm_insert_epi16(h, *(const uint16_t *)(rp[4] + off), 4);
  h = _mm_insert_epi16(h, *(const uint16_t *)(rp[5] + off), 5);
  h = _mm_insert_epi16(h, *(const uint16_t *)(rp[6] + off), 6);
  h = _mm_insert_epi16(h, *(const uint16_t *)(rp[7] + off), 7);
  return _mm256_cvtph_ps(h);
}

/* 2^(e - 128) for the E8M0 bytes of the 8 rows' block at byte offset off: exponent field e - 1, or
   for e < 2 the subnormals 0x00200000 << e (as the AVX-512 panels take them). */
static inline __m256 row_e8m0_halves(const uint8_t *const *rp, size_t off) {
  const __m256i e = _mm256_setr_epi32(rp[0][off], rp[1][off], rp[2][off], rp[3][off], rp[4][off], rp[5][off], rp[6][off], rp[7][off]);
  const __m256i normal = _mm256_slli_epi32(_mm256_sub_epi32(e, _mm256_set1_epi32(1)), 23);
  const __m256i tiny = _mm256_sllv_epi32(_mm256_set1_epi32(0x00200000), e);
  return _mm256_castsi256_ps(_mm256_blendv_epi8(normal, tiny, _mm256_cmpgt_epi32(_mm256_set1_epi32(2), e)));
}

/* The 8 rows' block scales of format F as f32. */
static inline __attribute__((always_inline)) __m256 block_scales(const int F, const uint8_t *const *rp, int b) {
  const size_t off = (size_t)b * BLOCK_BYTES(F);
  return F == FMT_Q4_0 ? row_scales(rp, off) : row_e8m0_halves(rp, off);
}

/*
 * Block b of the 8 rows unpacked: vector j holds quants 4j .. 4j + 3 of each row, as unsigned
 * bytes. The 16 bytes of a block hold code i in the low nibble of byte i and code i + 16 in the
 * high one, so transposing the rows' dwords gives vectors 0..3 as low nibbles and 4..7 as high
 * nibbles; Q4_0's codes are its quants, MXFP4's go through its table of values + 16.
 */
static inline __attribute__((always_inline)) void unpack_block(const int F, const uint8_t *const *rp, int b, __m256i *w) {
  const __m256i low = _mm256_set1_epi8(0x0f);
  const size_t at = (size_t)b * BLOCK_BYTES(F) + CODES_AT(F);
  __m256i y[4];
  for (int j = 0; j < 4; j++) {
    y[j] = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(rp[j] + at))),
                                   _mm_loadu_si128((const __m128i *)(rp[j + 4] + at)), 1);
  }
  const __m256i t0 = _mm256_unpacklo_epi32(y[0], y[1]), t1 = _mm256_unpackhi_epi32(y[0], y[1]);
  const __m256i t2 = _mm256_unpacklo_epi32(y[2], y[3]), t3 = _mm256_unpackhi_epi32(y[2], y[3]);
  const __m256i d[4] = {_mm256_unpacklo_epi64(t0, t2), _mm256_unpackhi_epi64(t0, t2), _mm256_unpacklo_epi64(t1, t3),
                        _mm256_unpackhi_epi64(t1, t3)};
  for (int j = 0; j < 4; j++) {
    w[j] = _mm256_and_si256(d[j], low);
    w[4 + j] = _mm256_and_si256(_mm256_srli_epi16(d[j], 4), low);
  }
  if (F == FMT_MXFP4) {
    const __m256i table = _mm256_setr_epi8(16, 17, 18, 19, 20, 22, 24, 28, 16, 15, 14, 13, 12, 10, 8, 4, 16, 17, 18, 19, 20, 22, 24,
                                           28, 16, 15, 14, 13, 12, 10, 8, 4);
    for (int j = 0; j < 8; j++) w[j] = _mm256_shuffle_epi8(table, w[j]);
  }
}

/* Asks for block b's share of the next tile's bytes (spread evenly over the tile's blocks). */
static inline void prefetch_share(const uint8_t *next, size_t per_block, int b) {
  for (size_t off = 0; off < per_block; off += 64) cairn_prefetch_t0(next + (size_t)b * per_block + off);
}

/* The tile's blocks unpacked into dst, per block its 8 vectors and the rows' scales (9 x 32 bytes). */
static inline __attribute__((always_inline)) void unpack_tile(const int F, const uint8_t *const *rp, int nb, const uint8_t *next,
                                                              size_t per_block, uint8_t *dst) {
  for (int b = 0; b < nb; b++) {
    prefetch_share(next, per_block, b);
    __m256i *out = (__m256i *)(dst + (size_t)b * 9 * 32);
    __m256i w[8];
    unpack_block(F, rp, b, w);
    for (int j = 0; j < 8; j++) _mm256_store_si256(out + j, w[j]);
    _mm256_store_ps((float *)(out + 8), block_scales(F, rp, b));
  }
}

/* One token's block against the 8 unpacked vectors, into acc. */
static inline __attribute__((always_inline)) __m256 block_token(const int F, const __m256i *w, __m256 dw, const uint8_t *a, size_t as,
                                                                int cols, const int32_t *sums, int nb, int t, int b, __m256 acc) {
  const uint8_t *at = a + (size_t)t * as + (size_t)QK * b;
  int32_t four[8];
  memcpy(four, at, sizeof four);
  const __m256i ones16 = _mm256_set1_epi16(1);
  /* Two chains of four: the same int16 sums in half the latency (MXFP4's four reach 28448). */
  __m256i s0 = _mm256_maddubs_epi16(w[0], _mm256_set1_epi32(four[0]));
  __m256i s1 = _mm256_maddubs_epi16(w[1], _mm256_set1_epi32(four[1]));
  for (int j = 2; j < 8; j += 2) {
    s0 = _mm256_add_epi16(s0, _mm256_maddubs_epi16(w[j], _mm256_set1_epi32(four[j])));
    s1 = _mm256_add_epi16(s1, _mm256_maddubs_epi16(w[j + 1], _mm256_set1_epi32(four[j + 1])));
  }
  const __m256i prod = F == FMT_Q4_0 ? _mm256_madd_epi16(_mm256_add_epi16(s0, s1), ones16)
                                     : _mm256_add_epi32(_mm256_madd_epi16(s0, ones16), _mm256_madd_epi16(s1, ones16));
  const __m256i dot = _mm256_add_epi32(prod, _mm256_set1_epi32(-OFFSET(F) * sums[(size_t)t * nb + b]));
  float da;
  memcpy(&da, a + (size_t)t * as + (size_t)cols + (size_t)b * 4, 4);
  return _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_mul_ps(dw, _mm256_set1_ps(da)), acc);
}

/* A few tokens straight from the rows: each block unpacked in registers and used at once (no tile buffer). */
static inline __attribute__((always_inline)) void rows_tokens(const int F, const int T, const uint8_t *const *rp, int nb, const uint8_t *next,
                                                              size_t per_block, const uint8_t *a, size_t as, int cols, const int32_t *sums,
                                                              __m256 *acc) {
  for (int t = 0; t < T; t++) acc[t] = _mm256_setzero_ps();
  for (int b = 0; b < nb; b++) {
    prefetch_share(next, per_block, b);
    __m256i w[8];
    unpack_block(F, rp, b, w);
    const __m256 dw = block_scales(F, rp, b);
    for (int t = 0; t < T; t++) acc[t] = block_token(F, w, dw, a, as, cols, sums, nb, t, b, acc[t]);
  }
}

/* T tokens against the unpacked tile: y[t][lane] for the tile's 8 rows (all lanes; the caller keeps the rows it has). */
static inline __attribute__((always_inline)) void tile_tokens(const int F, const int T, const uint8_t *tile, int nb, const uint8_t *a, size_t as,
                                                              int cols, const int32_t *sums, __m256 *acc) {
  for (int t = 0; t < T; t++) acc[t] = _mm256_setzero_ps();
  for (int b = 0; b < nb; b++) {
    const __m256i *wv = (const __m256i *)(tile + (size_t)b * 9 * 32);
    __m256i w[8];
    for (int j = 0; j < 8; j++) w[j] = _mm256_load_si256(wv + j);
    const __m256 dw = _mm256_load_ps((const float *)(wv + 8));
    for (int t = 0; t < T; t++) acc[t] = block_token(F, w, dw, a, as, cols, sums, nb, t, b, acc[t]);
  }
}

/* Stores the tile's first n lanes of v at y. */
static inline void store_lanes(float *y, __m256 v, int n) {
  if (n == LANES) {
    _mm256_storeu_ps(y, v);
    return;
  }
  float tmp[LANES];
  _mm256_storeu_ps(tmp, v);
  memcpy(y, tmp, (size_t)n * sizeof(float));
}

/* The products of any rows and tokens (activations as qx_convert_q8_0 writes them). */
static inline __attribute__((always_inline)) void lanes_gemm(const int F, int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, int nt, float *y, size_t ys) {
  const int nb = cols / QK;
  grow(&g_sums, &g_sums_cap, (size_t)nt * (size_t)nb * sizeof(int32_t));
  /* The block sums of the call's tokens, reused while the driver hands this thread more rows of the same activations. */
  if (g_sums_a != a || g_sums_as != as || g_sums_nt != nt || g_sums_cols != cols || g_sums_gen != quant_activation_generation) {
    block_sums(a, as, nt, cols, g_sums);
    g_sums_a = a, g_sums_as = as, g_sums_nt = nt, g_sums_cols = cols, g_sums_gen = quant_activation_generation;
  }
  /* The tile buffer only where tokens are many enough to take it. */
  if (nt > FEW_TOKENS) grow(&g_tile, &g_tile_cap, (size_t)nb * 9 * 32);
  for (int r0 = 0; r0 < nr; r0 += LANES) {
    const int n = nr - r0 < LANES ? nr - r0 : LANES;
    const uint8_t *rp[LANES];
    /* Rows past the last repeat it: their lanes are computed and dropped. */
    for (int j = 0; j < LANES; j++) rp[j] = w + (size_t)(r0 + (j < n ? j : n - 1)) * ws;
    const int next_rows = nr - r0 - n < LANES ? nr - r0 - n : LANES;
    const uint8_t *next = w + (size_t)(r0 + n) * ws;
    const size_t per_block = next_rows > 0 ? ((size_t)next_rows * ws + (size_t)nb - 1) / (size_t)nb : 0;
    __m256 acc[TOKENS];
    if (nt <= FEW_TOKENS) {
      if (nt == 1) rows_tokens(F, 1, rp, nb, next, per_block, a, as, cols, g_sums, acc);
      else if (nt == 2) rows_tokens(F, 2, rp, nb, next, per_block, a, as, cols, g_sums, acc);
      else rows_tokens(F, 3, rp, nb, next, per_block, a, as, cols, g_sums, acc);
      for (int i = 0; i < nt; i++) store_lanes(y + (size_t)i * ys + r0, acc[i], n);
      continue;
    }
    unpack_tile(F, rp, nb, next, per_block, g_tile);
    int t = 0;
    for (; t + TOKENS <= nt; t += TOKENS) {
      tile_tokens(F, TOKENS, g_tile, nb, a + (size_t)t * as, as, cols, g_sums + (size_t)t * nb, acc);
      for (int i = 0; i < TOKENS; i++) store_lanes(y + (size_t)(t + i) * ys + r0, acc[i], n);
    }
    const int left = nt - t;
    if (left == 3) tile_tokens(F, 3, g_tile, nb, a + (size_t)t * as, as, cols, g_sums + (size_t)t * nb, acc);
    else if (left == 2) tile_tokens(F, 2, g_tile, nb, a + (size_t)t * as, as, cols, g_sums + (size_t)t * nb, acc);
    else if (left == 1) tile_tokens(F, 1, g_tile, nb, a + (size_t)t * as, as, cols, g_sums + (size_t)t * nb, acc);
    for (int i = 0; i < left; i++) store_lanes(y + (size_t)(t + i) * ys + r0, acc[i], n);
  }
}
/* quant_gemm_fn for Q4_0 on AVX2. */
void quant_q4_0_lanes_avx2(int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, int nt, float *y, size_t ys) {
  lanes_gemm(FMT_Q4_0, cols, w, ws, nr, a, as, nt, y, ys);
}

/* quant_gemm_fn for MXFP4 on AVX2. */
void quant_mxfp4_lanes_avx2(int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, int nt, float *y, size_t ys) {
  lanes_gemm(FMT_MXFP4, cols, w, ws, nr, a, as, nt, y, ys);
}
#endif
