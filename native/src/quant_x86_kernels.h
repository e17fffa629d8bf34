/*
 * x86 kernels of the quantized matmul, written once and compiled twice: by native/x86_avx2 (AVX2,
 * FMA, F16C: integer dots with maddubs) and by native/x86_avx512 (the same loops with AVX-512 VNNI
 * dot instructions and more registers for larger tiles). The including file defines
 * QX_TABLE (the table's name), QX_R and QX_T (weight rows x tokens per tile when there are
 * enough tokens) and QX_RV (weight rows per tile for one token at a time). A matrix-vector
 * product is bound by memory bandwidth, and the fastest way through memory is one stream: with
 * QX_RV 1 a thread reads its rows front to back, which the hardware prefetchers follow best.
 * Measured on an AVX-512 machine (bench/RESULTS.md), against a plain read of memory: 4 rows in
 * flight read at 75-80% of that rate, one row at 90-94% for Q8_0 and F16. Two formats can be
 * bound by instructions rather than memory with one row, and name their own row counts:
 * QX_RV_NIBBLE for the 4- and 5-bit 32-blocks, whose unpacking and per-block activation work
 * (shared by the rows of a tile) cost the most per byte; QX_RV_FLOAT for the float formats, where
 * one row is one chain of adds (one f32 sum per row and token, so that a row's result does not
 * depend on the tile it falls in).
 *
 * Integer semantics are llama.cpp's: each block's quants are dotted exactly in integers, then
 * scaled in f32. Unsigned weight quants (Q4_0's 0..15, Q5_0's 0..31, Q6_K's 0..63, and with VNNI
 * Q8_0 + 128) are dotted as u8 x s8 and the offset is taken back lane by lane, so every int32 lane
 * holds exactly the partial sum of (q - offset) * a that llama.cpp's lanes hold: the f32 rounding
 * that follows is the same up to summation order.
 */
#ifndef CAIRN_QUANT_X86_KERNELS_H
#define CAIRN_QUANT_X86_KERNELS_H

#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "quant_iq.h"
#include "quant_kernels.h"

#define QX_INLINE static inline __attribute__((always_inline))

/* The float formats' tiles of several tokens (rows x tokens), QX_R x QX_T unless the ISA's file names its own. */
#ifndef QX_R_FLOAT
#define QX_R_FLOAT QX_R
#endif
#ifndef QX_T_FLOAT
#define QX_T_FLOAT QX_T
#endif
/* One token's float rows longer than QX_FLOAT_LONG bytes, QX_RV_FLOAT a tile unless the ISA's file names its own count. */
#ifndef QX_RV_FLOAT_LONG
#define QX_RV_FLOAT_LONG QX_RV_FLOAT
#endif

/* A tile's last tokens (fewer than its width) take QX_TAIL's tiles, which go up to QX_T - 1. */
#if QX_T_FLOAT > QX_T
#error "QX_T_FLOAT may not exceed QX_T"
#endif

/* Largest row count of any tile. */
#define QX_MAX2(a, b) ((a) > (b) ? (a) : (b))
#define QX_RMAX QX_MAX2(QX_MAX2(QX_MAX2(QX_R, QX_RV), QX_MAX2(QX_RV_NIBBLE, QX_RV_FLOAT)), QX_MAX2(QX_R_FLOAT, QX_RV_FLOAT_LONG))

/*
 * Prefetching: a tile reads R consecutive rows, i.e. one contiguous stretch of memory (in R
 * interleaved streams when R > 1). While it works on block b of its rows it prefetches block b of
 * a tile ahead, so the stretch arrives at the pace this one is consumed and no tile starts with
 * all its rows missing in cache. The tile ahead is the next one, or as many on as make at least
 * QX_PF_MIN bytes: short rows (an expert's down projection is 432-630 bytes a row) would otherwise
 * ask for lines only a few hundred bytes ahead, and the hardware prefetchers stop at every 4 KiB
 * page boundary. (Past the matrix end this touches nothing: prefetches never fault.)
 */
QX_INLINE void qx_prefetch(const uint8_t *p, size_t bytes) {
  for (size_t off = 0; off < bytes; off += 64) _mm_prefetch((const char *)p + off, _MM_HINT_T0);
}

/* The same into L2 only (see qx_ahead_l2). */
QX_INLINE void qx_prefetch_l2(const uint8_t *p, size_t bytes) {
  for (size_t off = 0; off < bytes; off += 64) _mm_prefetch((const char *)p + off, _MM_HINT_T1);
}

#define QX_PF_MIN 4096
/* Rows of float weights longer than this prefetch this far ahead into L2 rather than a row ahead into L1. */
#define QX_FLOAT_LONG 8192
/* How many of qx_ahead's distances the one-token K rows prefetch ahead, into L2 (qx_prefetch_l2):
   measured on Zen 4 from memory, one thread, Q6_K 23 -> 28 GB/s, Q4_K 17 -> 20, against L1 at one
   distance (the L1 prefetches of a fast row outran their lines). */
#define QX_PFM 2
/* Bytes from a tile of R rows of ws bytes to the tile its prefetches ask for. */
QX_INLINE size_t qx_ahead(int R, size_t ws) {
  const size_t tile = (size_t)R * ws;
  return tile >= QX_PF_MIN ? tile : tile * ((QX_PF_MIN + tile - 1) / tile);
}

/* Which activations a thread's prepared per-call data came from (see quant_activation_generation). */
typedef struct {
  unsigned generation;
  const uint8_t *a;
  int cols;
} qx_prepared_for;

/* True when `for` does not describe (a, cols) of the current call; it then does from now on. */
QX_INLINE int qx_prepare_needed(qx_prepared_for *f, const uint8_t *a, int cols) {
  if (f->generation == quant_activation_generation && f->a == a && f->cols == cols) return 0;
  f->generation = quant_activation_generation;
  f->a = a;
  f->cols = cols;
  return 1;
}

#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
#define QX_VNNI 1
#else
#define QX_VNNI 0
#endif

QX_INLINE float qx_hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

QX_INLINE float qx_hsum128(__m128 s) {
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

QX_INLINE int qx_hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

QX_INLINE int qx_hsum_i32_128(__m128i s) {
  s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

QX_INLINE float qx_half(const void *p) {
  uint16_t h;
  memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

/* init + Σ u8 * s8 over each group of 4 bytes, in 8 int32 lanes (u8 < 128 on the maddubs path). */
QX_INLINE __m256i qx_dot_us(__m256i init, __m256i u, __m256i s) {
#if QX_VNNI
  return _mm256_dpbusd_epi32(init, u, s);
#else
  return _mm256_add_epi32(init, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}

/* acc + Σ (int16 pairs of p) * (int16 pairs of scale), in 8 int32 lanes. */
QX_INLINE __m256i qx_dot_scaled(__m256i acc, __m256i p16, __m256i scale16) {
#if QX_VNNI
  return _mm256_dpwssd_epi32(acc, p16, scale16);
#else
  return _mm256_add_epi32(acc, _mm256_madd_epi16(p16, scale16));
#endif
}

/* Bytes 0xff where bit j of `bits` is set, for j < 32. */
QX_INLINE __m256i qx_bits_to_bytes(uint32_t bits) {
#if defined(__AVX512BW__) && defined(__AVX512VL__)
  return _mm256_movm_epi8((__mmask32)bits);
#else
  const __m256i spread = _mm256_shuffle_epi8(
      _mm256_set1_epi32((int)bits),
      _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
  const __m256i select = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
  return _mm256_cmpeq_epi8(_mm256_and_si256(spread, select), select);
#endif
}

/* 32 nibbles: low nibbles of the 16 bytes, then high nibbles (ggml's element order). */
QX_INLINE __m256i qx_nibbles(const uint8_t *qs) {
  const __m128i raw = _mm_loadu_si128((const __m128i *)qs);
  const __m256i both = _mm256_set_m128i(_mm_srli_epi16(raw, 4), raw);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0f));
}

/* ---- 32-element weight blocks: quants as u8, scale, min, and the offset to take back ---- */

typedef struct {
  __m256i q;
  float d, m;
} qx_w32;

QX_INLINE void qx_load_q4_0(const uint8_t *row, int b, qx_w32 *o) {
  const block_q4_0 *x = (const block_q4_0 *)row + b;
  o->q = qx_nibbles(x->qs);
  o->d = qx_half(&x->d);
}

#if QX_VNNI && defined(__AVX512BW__)
#define QX_INTERLEAVE 1
/* The nibbles of two 16-byte quant arrays as one interleaved 64-byte vector (see qx_step512): low nibbles of both, then high. */
QX_INLINE __m512i qx_nibbles2(const uint8_t *qs0, const uint8_t *qs1) {
  const __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)qs0)),
                                               _mm_loadu_si128((const __m128i *)qs1), 1);
  const __m512i lo_hi = _mm512_inserti64x4(_mm512_castsi256_si512(both), _mm256_srli_epi16(both, 4), 1);
  return _mm512_and_si512(lo_hi, _mm512_set1_epi8(0x0f));
}

/* Two Q4_0 blocks as one interleaved 64-byte vector and their scales. */
QX_INLINE void qx_load2_q4_0(const uint8_t *row, int b, __m512i *q, float *d0, float *d1) {
  const block_q4_0 *x = (const block_q4_0 *)row + b;
  *q = qx_nibbles2(x[0].qs, x[1].qs);
  *d0 = qx_half(&x[0].d);
  *d1 = qx_half(&x[1].d);
}
/* Two MXFP4 blocks the same way, each nibble then looked up as its doubled code + 16. */
QX_INLINE void qx_load2_mxfp4(const uint8_t *row, int b, __m512i *q, float *d0, float *d1) {
  const block_mxfp4 *x = (const block_mxfp4 *)row + b;
  const __m512i table = _mm512_broadcast_i32x4(_mm_setr_epi8(16, 17, 18, 19, 20, 22, 24, 28, 16, 15, 14, 13, 12, 10, 8, 4));
  *q = _mm512_shuffle_epi8(table, qx_nibbles2(x[0].qs, x[1].qs));
  *d0 = quant_e8m0_half_table[x[0].e];
  *d1 = quant_e8m0_half_table[x[1].e];
}
/* Two Q5_0 blocks the same way, each element's fifth bit (qh) set from a 64-bit mask in that order. */
QX_INLINE void qx_load2_q5_0(const uint8_t *row, int b, __m512i *q, float *d0, float *d1) {
  const block_q5_0 *x = (const block_q5_0 *)row + b;
  uint32_t h0, h1;
  memcpy(&h0, x[0].qh, 4);
  memcpy(&h1, x[1].qh, 4);
  const __mmask64 high = (uint64_t)(h0 & 0xffff) | (uint64_t)(h1 & 0xffff) << 16 | (uint64_t)(h0 >> 16) << 32 |
                         (uint64_t)(h1 >> 16) << 48;
  *q = _mm512_or_si512(qx_nibbles2(x[0].qs, x[1].qs), _mm512_maskz_mov_epi8(high, _mm512_set1_epi8(0x10)));
  *d0 = qx_half(&x[0].d);
  *d1 = qx_half(&x[1].d);
}
/*
 * Two Q5_0 blocks in the plain layout (block 0's 32 elements in order, then block 1's), for the
 * one-token rows: there each element's fifth bit is bit j of its block's qh as it lies, so the
 * mask is the two qh words side by side, and the nibbles come from two broadcasts and one shift
 * per lane. The lanes hold the same 4-element groups as the interleaved layout's, in plain order.
 */
QX_INLINE void qx_load2_q5_0_plain(const uint8_t *row, int b, __m512i *q, float *d0, float *d1) {
  const block_q5_0 *x = (const block_q5_0 *)row + b;
  uint32_t h0, h1;
  memcpy(&h0, x[0].qh, 4);
  memcpy(&h1, x[1].qh, 4);
  const __mmask64 high = _cvtu64_mask64((uint64_t)h1 << 32 | h0);
  /* qs0 qs0 qs1 qs1, then each lane's second copy shifted to its high nibbles. */
  const __m512i both = _mm512_mask_broadcast_i32x4(_mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)x[0].qs)),
                                                   (__mmask16)0xFF00, _mm_loadu_si128((const __m128i *)x[1].qs));
  const __m512i nib = _mm512_and_si512(_mm512_srlv_epi64(both, _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4)), _mm512_set1_epi8(0x0f));
  *q = _mm512_mask_add_epi8(nib, high, nib, _mm512_set1_epi8(0x10));
  *d0 = *d1 = 0.f; /* the scales come from qx_scales2_q5_0 */
}
/* The pair's weight scales in the plain layout's lanes (d0 in lanes 0-7, d1 in 8-15), converted
   together: the same f32 values as two scalar conversions. */
QX_INLINE __m512 qx_scales2_q5_0(const uint8_t *row, int b, float d0, float d1) {
  (void)d0, (void)d1;
  const block_q5_0 *x = (const block_q5_0 *)row + b;
  uint16_t h0, h1;
  memcpy(&h0, &x[0].d, 2);
  memcpy(&h1, &x[1].d, 2);
  return _mm512_cvtph_ps(_mm256_mask_set1_epi16(_mm256_set1_epi16((short)h0), (__mmask16)0xFF00, (short)h1));
}
#else
#define QX_INTERLEAVE 0
#define qx_load2_q4_0 NULL
#define qx_load2_mxfp4 NULL
#define qx_load2_q5_0 NULL
#endif

QX_INLINE void qx_load_q4_1(const uint8_t *row, int b, qx_w32 *o) {
  const block_q4_1 *x = (const block_q4_1 *)row + b;
  o->q = qx_nibbles(x->qs);
  o->d = qx_half(&x->d);
  o->m = qx_half(&x->m);
}

QX_INLINE __m256i qx_q5(const uint8_t *qh, const uint8_t *qs) {
  uint32_t bits;
  memcpy(&bits, qh, 4);
  return _mm256_or_si256(qx_nibbles(qs), _mm256_and_si256(qx_bits_to_bytes(bits), _mm256_set1_epi8(0x10)));
}

QX_INLINE void qx_load_q5_0(const uint8_t *row, int b, qx_w32 *o) {
  const block_q5_0 *x = (const block_q5_0 *)row + b;
  o->q = qx_q5(x->qh, x->qs);
  o->d = qx_half(&x->d);
}

QX_INLINE void qx_load_q5_1(const uint8_t *row, int b, qx_w32 *o) {
  const block_q5_1 *x = (const block_q5_1 *)row + b;
  o->q = qx_q5(x->qh, x->qs);
  o->d = qx_half(&x->d);
  o->m = qx_half(&x->m);
}

/* Q8_0 weights: with VNNI as u8 = q + 128 (offset 128); without, signed (sign trick below). */
QX_INLINE void qx_load_q8_0(const uint8_t *row, int b, qx_w32 *o) {
  const block_q8_0 *x = (const block_q8_0 *)row + b;
  const __m256i q = _mm256_loadu_si256((const __m256i *)x->qs);
  o->q = QX_VNNI ? _mm256_xor_si256(q, _mm256_set1_epi8((char)0x80)) : q;
  o->d = qx_half(&x->d);
}

/*
 * MXFP4 weights: each nibble looked up as its doubled E2M1 code + 16 (4..28, unsigned), so the
 * blocks take the unsigned dot with offset 16 like Q5_0; the scale is the E8M0 byte halved.
 */
QX_INLINE void qx_load_mxfp4(const uint8_t *row, int b, qx_w32 *o) {
  const block_mxfp4 *x = (const block_mxfp4 *)row + b;
  const __m256i table = _mm256_setr_epi8(16, 17, 18, 19, 20, 22, 24, 28, 16, 15, 14, 13, 12, 10, 8, 4,
                                         16, 17, 18, 19, 20, 22, 24, 28, 16, 15, 14, 13, 12, 10, 8, 4);
  o->q = _mm256_shuffle_epi8(table, qx_nibbles(x->qs));
  o->d = quant_e8m0_half_table[x->e];
}

/*
 * -offset * (sum of each lane's 4 activations), offset a power of two: start values that turn
 * Σ q*a into Σ (q - offset)*a lane by lane.
 */
QX_INLINE __m256i qx_offset_lanes(__m256i aq, int offset) {
  const __m256i lane_sums = qx_dot_us(_mm256_setzero_si256(), _mm256_set1_epi8(1), aq);
  return _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(lane_sums, __builtin_ctz((unsigned)offset)));
}

/* Σ s8 * s8 by the sign trick: |w| as u8 times a with w's sign (|a| <= 127, so no saturation). */
QX_INLINE __m256i qx_dot_ss(__m256i w, __m256i a) {
  return qx_dot_us(_mm256_setzero_si256(), _mm256_sign_epi8(w, w), _mm256_sign_epi8(a, w));
}

#if QX_VNNI && defined(__AVX512BW__)
/*
 * With AVX-512 a tile steps through two blocks at a time in 64-byte vectors: one dpbusd covers
 * 64 quants, and the f32 scaling is done for both blocks at once (lanes 0-7 block b, 8-15 block
 * b + 1). An odd last block runs alone with the upper half zero.
 */
QX_INLINE __m512 qx_pair_ps(float lo, float hi) {
  return _mm512_insertf32x8(_mm512_set1_ps(lo), _mm256_set1_ps(hi), 1);
}

QX_INLINE __m512i qx_offset_lanes512(__m512i aq, int offset) {
  const __m512i lane_sums = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(1), aq);
  return _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(lane_sums, __builtin_ctz((unsigned)offset)));
}

/* One step (blocks b and, if `pair`, b + 1) of a tile: all T tokens against R prepared rows. */
/*
 * Interleaved pairs (`perm`): the weight vector holds [block b elements 0-15 | block b+1 elements
 * 0-15 | block b 16-31 | block b+1 16-31], which nibble formats unpack with fewer instructions;
 * the activations are permuted the same way once per token and block pair, and per-lane scales
 * alternate between the blocks every 4 lanes. Every lane still sums the same 4 elements as in the
 * plain layout, only in another position: lanes 4-7 and 8-11 trade places. Swapping them back
 * before the final reduction (qx_unpermute) gives bit for bit the plain layout's result, and so
 * keeps llama.cpp's partial sums (see the top of this file).
 */
QX_INLINE __m512 qx_unpermute(__m512 acc) {
  return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15), acc);
}
QX_INLINE __m512 qx_pair_interleaved_ps(float lo, float hi) {
  return _mm512_mask_blend_ps((__mmask16)0xF0F0, _mm512_set1_ps(lo), _mm512_set1_ps(hi));
}

QX_INLINE void qx_step512(const int R, const int T, const int offset, const int has_min, const int pair, const int perm,
                          int cols, int nb, int b, const __m512i *wq, const __m512 *wd, const float *wm, const uint8_t *a,
                          size_t as, __m512 (*acc)[QX_T], float (*mins)[QX_T]) {
  for (int t = 0; t < T; t++) {
    const uint8_t *at = a + t * as;
    const float *d = (const float *)(at + cols);
    const float *s = (const float *)(at + cols + (size_t)nb * 4);
    __m512i aq = pair ? _mm512_loadu_si512((const void *)(at + QK * b))
                      : _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)(at + QK * b)));
    if (perm) aq = _mm512_permutexvar_epi64(_mm512_setr_epi64(0, 1, 4, 5, 2, 3, 6, 7), aq);
    const __m512 da = perm ? qx_pair_interleaved_ps(d[b], pair ? d[b + 1] : 0.f) : qx_pair_ps(d[b], pair ? d[b + 1] : 0.f);
    const __m512i init = offset ? qx_offset_lanes512(aq, offset) : _mm512_setzero_si512();
    for (int r = 0; r < R; r++) {
      const __m512i p = _mm512_dpbusd_epi32(init, wq[r], aq);
      acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(wd[r], da), acc[r][t]);
      if (has_min) mins[r][t] += wm[2 * r] * s[b] + (pair ? wm[2 * r + 1] * s[b + 1] : 0.f);
    }
  }
}

/* Formats without an interleaved loader name this one; with PERM 0 it is never called. */
QX_INLINE void qx_load2_none(const uint8_t *row, int b, __m512i *q, float *d0, float *d1) {
  (void)row, (void)b, (void)q, (void)d0, (void)d1;
}
#define QX_TILE32(NAME, LOAD, OFFSET, SIGNED, HAS_MIN) QX_TILE32X(NAME, LOAD, OFFSET, SIGNED, HAS_MIN, 0, qx_load2_none)
#define QX_TILE32X(NAME, LOAD, OFFSET, SIGNED, HAS_MIN, PERM, LOAD2)                                            \
  QX_INLINE void NAME##_tile(const int R, const int T, int cols, const uint8_t *w, size_t ws, const uint8_t *a, \
                             size_t as, float *y, size_t ys) {                                                  \
    const int nb = cols / QK;                                                                                   \
    const size_t bb = ws / (size_t)nb;                                                                          \
    const size_t ahead = qx_ahead(R, ws);                                                                       \
    __m512 acc[QX_RMAX][QX_T];                                                                                  \
    float mins[QX_RMAX][QX_T];                                                                                  \
    for (int r = 0; r < R; r++)                                                                                 \
      for (int t = 0; t < T; t++) {                                                                             \
        acc[r][t] = _mm512_setzero_ps();                                                                        \
        mins[r][t] = 0;                                                                                         \
      }                                                                                                         \
    __m512i wq[QX_RMAX];                                                                                        \
    __m512 wd[QX_RMAX];                                                                                         \
    float wm[2 * QX_RMAX];                                                                                      \
    int b = 0;                                                                                                  \
    for (; b + 2 <= nb; b += 2) {                                                                               \
      for (int r = 0; r < R; r++) qx_prefetch(w + r * ws + ahead + (size_t)b * bb, 2 * bb);                        \
      for (int r = 0; r < R; r++) {                                                                             \
        if (PERM) {                                                                                             \
          float d0, d1;                                                                                         \
          LOAD2(w + r * ws, b, &wq[r], &d0, &d1);                                                               \
          wd[r] = qx_pair_interleaved_ps(d0, d1);                                                               \
          wm[2 * r] = wm[2 * r + 1] = 0.f;                                                                      \
          continue;                                                                                             \
        }                                                                                                       \
        qx_w32 lo, hi;                                                                                          \
        LOAD(w + r * ws, b, &lo);                                                                               \
        LOAD(w + r * ws, b + 1, &hi);                                                                           \
        wq[r] = _mm512_inserti64x4(_mm512_castsi256_si512(lo.q), hi.q, 1);                                      \
        wd[r] = qx_pair_ps(lo.d, hi.d);                                                                         \
        wm[2 * r] = HAS_MIN ? lo.m : 0.f;                                                                       \
        wm[2 * r + 1] = HAS_MIN ? hi.m : 0.f;                                                                   \
      }                                                                                                         \
      qx_step512(R, T, OFFSET, HAS_MIN, 1, PERM, cols, nb, b, wq, wd, wm, a, as, acc, mins);                    \
    }                                                                                                           \
    if (b < nb) {                                                                                               \
      for (int r = 0; r < R; r++) {                                                                             \
        qx_w32 lo;                                                                                              \
        LOAD(w + r * ws, b, &lo);                                                                               \
        /* Interleaved: the lone block's halves go where a pair's first block would. */                        \
        wq[r] = PERM ? _mm512_permutexvar_epi64(_mm512_setr_epi64(0, 1, 4, 5, 2, 3, 6, 7), _mm512_zextsi256_si512(lo.q)) \
                     : _mm512_zextsi256_si512(lo.q);                                                            \
        wd[r] = PERM ? qx_pair_interleaved_ps(lo.d, 0.f) : qx_pair_ps(lo.d, 0.f);                               \
        wm[2 * r] = HAS_MIN ? lo.m : 0.f;                                                                       \
        wm[2 * r + 1] = 0.f;                                                                                    \
      }                                                                                                         \
      qx_step512(R, T, OFFSET, HAS_MIN, 0, PERM, cols, nb, b, wq, wd, wm, a, as, acc, mins);                    \
    }                                                                                                           \
    for (int r = 0; r < R; r++)                                                                                 \
      for (int t = 0; t < T; t++) y[t * ys + r] = _mm512_reduce_add_ps(PERM ? qx_unpermute(acc[r][t]) : acc[r][t]) + mins[r][t]; \
  }
#else
/*
 * One tile of R weight rows x T tokens over all blocks of a 32-element format. OFFSET (a power
 * of two) is taken back lane by lane; SIGNED selects the sign-trick dot; HAS_MIN adds m * s
 * (Q4_1/Q5_1 with Q8_1 activations).
 */
#define QX_TILE32X(NAME, LOAD, OFFSET, SIGNED, HAS_MIN, PERM, LOAD2) QX_TILE32(NAME, LOAD, OFFSET, SIGNED, HAS_MIN)
#define QX_TILE32(NAME, LOAD, OFFSET, SIGNED, HAS_MIN)                                                          \
  QX_INLINE void NAME##_tile(const int R, const int T, int cols, const uint8_t *w, size_t ws, const uint8_t *a, \
                             size_t as, float *y, size_t ys) {                                                  \
    const int nb = cols / QK;                                                                                   \
    const size_t bb = ws / (size_t)nb;                                                                          \
    const size_t ahead = qx_ahead(R, ws);                                                                       \
    __m256 acc[QX_RMAX][QX_T];                                                                                  \
    float mins[QX_RMAX][QX_T];                                                                                  \
    for (int r = 0; r < R; r++)                                                                                 \
      for (int t = 0; t < T; t++) {                                                                             \
        acc[r][t] = _mm256_setzero_ps();                                                                        \
        mins[r][t] = 0;                                                                                         \
      }                                                                                                         \
    for (int b = 0; b < nb; b++) {                                                                              \
      qx_w32 wb[QX_RMAX];                                                                                       \
      /* One prefetch per block: a block is about half a cache line. */                                         \
      for (int r = 0; r < R; r++) _mm_prefetch((const char *)(w + r * ws + ahead + (size_t)b * bb), _MM_HINT_T0);   \
      for (int r = 0; r < R; r++) LOAD(w + r * ws, b, &wb[r]);                                                  \
      for (int t = 0; t < T; t++) {                                                                             \
        const uint8_t *at = a + t * as;                                                                         \
        const __m256i aq = _mm256_loadu_si256((const __m256i *)(at + QK * b));                                  \
        const float da = ((const float *)(at + cols))[b];                                                       \
        const uint8_t *aux = at + cols + (size_t)nb * 4 + (size_t)b * 4;                                        \
        const __m256i init = OFFSET ? qx_offset_lanes(aq, OFFSET) : _mm256_setzero_si256();                     \
        for (int r = 0; r < R; r++) {                                                                           \
          const __m256i p = SIGNED ? qx_dot_ss(wb[r].q, aq) : qx_dot_us(init, wb[r].q, aq);                     \
          acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(wb[r].d * da), acc[r][t]);           \
          if (HAS_MIN) {                                                                                        \
            float s;                                                                                            \
            memcpy(&s, aux, 4);                                                                                 \
            mins[r][t] += wb[r].m * s;                                                                          \
          }                                                                                                     \
        }                                                                                                       \
      }                                                                                                         \
    }                                                                                                           \
    for (int r = 0; r < R; r++)                                                                                 \
      for (int t = 0; t < T; t++) y[t * ys + r] = qx_hsum(acc[r][t]) + mins[r][t];                             \
  }
#endif

/*
 * Tiles of R rows x the last `left` (< QX_T) tokens of a block, with the token count a constant in
 * each branch so the tile's loops unroll: one unpacking of each weight block serves them all.
 */
#if QX_T > 4
#define QX_TAIL_WIDE(NAME, R, left, cols, w, ws, a, as, y, ys)                              \
  case 4: NAME##_tile(R, 4, cols, w, ws, a, as, y, ys); break;                               \
  case 5: NAME##_tile(R, 5, cols, w, ws, a, as, y, ys); break;                               \
  case 6: NAME##_tile(R, 6, cols, w, ws, a, as, y, ys); break;                               \
  case 7: NAME##_tile(R, 7, cols, w, ws, a, as, y, ys); break;
#else
#define QX_TAIL_WIDE(NAME, R, left, cols, w, ws, a, as, y, ys)
#endif
#if QX_T > 2
#define QX_TAIL_MID(NAME, R, left, cols, w, ws, a, as, y, ys)                               \
  case 2: NAME##_tile(R, 2, cols, w, ws, a, as, y, ys); break;                               \
  case 3: NAME##_tile(R, 3, cols, w, ws, a, as, y, ys); break;
#else
#define QX_TAIL_MID(NAME, R, left, cols, w, ws, a, as, y, ys)
#endif
#define QX_TAIL(NAME, R, left, cols, w, ws, a, as, y, ys)                                   \
  switch (left) {                                                                            \
    case 0: break;                                                                           \
    case 1: NAME##_tile(R, 1, cols, w, ws, a, as, y, ys); break;                             \
    QX_TAIL_MID(NAME, R, left, cols, w, ws, a, as, y, ys)                                    \
    QX_TAIL_WIDE(NAME, R, left, cols, w, ws, a, as, y, ys)                                   \
    default: break;                                                                          \
  }

/*
 * Walks an nr x nt block: one token in tiles of RV rows; more in R x T tiles (QX_R x QX_T but for
 * QX_GEMM_SHAPE's callers), the last tokens of a block (fewer than T) in one R-row tile of their
 * own width. Remainder rows use 1-row tiles. A row and token's sum is formed the same way in every
 * tile shape, so the results do not depend on the tiling (nor on the number of threads, nor on the
 * batch a token comes in).
 */
#define QX_GEMM(NAME) QX_GEMM_RV(NAME, QX_RV)
#define QX_GEMM_SHAPE(NAME, RV, RV_LONG, R, T)                                                                  \
  static void NAME(int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, int nt, float *y, \
                   size_t ys) {                                                                                \
    int r = 0;                                                                                                 \
    if (nt == 1) {                                                                                             \
      /* Rows past QX_FLOAT_LONG bytes may take their own count a tile (each row still its own chain). */     \
      if ((RV_LONG) != (RV) && ws > QX_FLOAT_LONG)                                                             \
        for (; r + (RV_LONG) <= nr; r += (RV_LONG)) NAME##_tile((RV_LONG), 1, cols, w + r * ws, ws, a, as, y + r, ys); \
      else                                                                                                     \
        for (; r + (RV) <= nr; r += (RV)) NAME##_tile((RV), 1, cols, w + r * ws, ws, a, as, y + r, ys);        \
    } else {                                                                                                   \
      for (; r + (R) <= nr; r += (R)) {                                                                        \
        int t = 0;                                                                                             \
        for (; t + (T) <= nt; t += (T)) NAME##_tile((R), (T), cols, w + r * ws, ws, a + t * as, as, y + t * ys + r, ys); \
        QX_TAIL(NAME, (R), nt - t, cols, w + r * ws, ws, a + t * as, as, y + t * ys + r, ys)                   \
      }                                                                                                        \
    }                                                                                                          \
    for (; r < nr; r++) {                                                                                      \
      int t = 0;                                                                                               \
      for (; t + QX_T <= nt; t += QX_T) NAME##_tile(1, QX_T, cols, w + r * ws, ws, a + t * as, as, y + t * ys + r, ys); \
      QX_TAIL(NAME, 1, nt - t, cols, w + r * ws, ws, a + t * as, as, y + t * ys + r, ys)                      \
    }                                                                                                          \
  }
#define QX_GEMM_RV(NAME, RV) QX_GEMM_SHAPE(NAME, RV, RV, QX_R, QX_T)

QX_TILE32X(qx_q4_0, qx_load_q4_0, 8, 0, 0, QX_INTERLEAVE, qx_load2_q4_0)
QX_TILE32(qx_q4_1, qx_load_q4_1, 0, 0, 1)
QX_TILE32X(qx_q5_0, qx_load_q5_0, 16, 0, 0, QX_INTERLEAVE, qx_load2_q5_0)
QX_TILE32(qx_q5_1, qx_load_q5_1, 0, 0, 1)
QX_TILE32X(qx_mxfp4, qx_load_mxfp4, 16, 0, 0, QX_INTERLEAVE, qx_load2_mxfp4)
#if QX_VNNI
QX_TILE32(qx_q8_0, qx_load_q8_0, 128, 0, 0)
#else
QX_TILE32(qx_q8_0, qx_load_q8_0, 0, 1, 0)
#endif
#if QX_INTERLEAVE
/*
 * One token against Q4_0 (or MXFP4, Q5_0) rows, a few rows at a time. A tile's per-block activation work
 * (the permuted quants and the offset lanes) is the same for every row: done here once per call
 * into a per-thread buffer instead of once per row, which is what kept one-row tiles of Q4_0
 * bound by instructions (bench/RESULTS.md). The rows a thread runs at once are adjacent, so they
 * read as one stretch of memory. The operations per row and block pair are those of the format's
 * tile with R = T = 1, in the same order, so the results are the same bit for bit.
 */
/* Unaligned vector members: the buffer lives in thread-local storage, whose alignment a
 * dynamically loaded library cannot count on everywhere (it is asked for, below, as whole cache
 * lines make the loads cheaper; correctness does not depend on it). */
typedef struct {
  __m512i_u aq, init;
  __m512_u da; /* the pair's activation scales, interleaved as the tiles' per-lane scales */
} qx_pair_prepared;

/* PERM: the interleaved pair layout (see qx_step512), else the plain one of formats loaded whole. */
QX_INLINE void qx_pairs_prepare(int cols, const uint8_t *a, qx_pair_prepared *p, const int offset, const int perm) {
  const int nb = cols / QK;
  const float *da = (const float *)(a + cols);
  const __m512i order = _mm512_setr_epi64(0, 1, 4, 5, 2, 3, 6, 7);
  int b = 0;
  for (; b + 2 <= nb; b += 2, p++) {
    const __m512i aq = _mm512_loadu_si512((const void *)(a + QK * b));
    p->aq = perm ? _mm512_permutexvar_epi64(order, aq) : aq;
    p->init = qx_offset_lanes512(p->aq, offset);
    p->da = perm ? qx_pair_interleaved_ps(da[b], da[b + 1]) : qx_pair_ps(da[b], da[b + 1]);
  }
  if (b < nb) { /* a lone last block, in the first block's place of a pair */
    const __m512i aq = _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)(a + QK * b)));
    p->aq = perm ? _mm512_permutexvar_epi64(order, aq) : aq;
    p->init = qx_offset_lanes512(p->aq, offset);
    p->da = perm ? qx_pair_interleaved_ps(da[b], 0.f) : qx_pair_ps(da[b], 0.f);
  }
}

/*
 * Rows a thread runs at once on this path. Each row's sum is one chain of dependent adds (one per
 * block pair, in order, so that results do not depend on the tiling): alone, a row waits on that
 * chain; 4 rows side by side (still adjacent memory, prefetched a whole 4-row tile ahead) keep
 * the vector units busy. Single thread, L2-resident 256x2880 MXFP4: 1 row 25, 2 rows 28, 4 rows
 * 32 GB/s; 2 threads over memory, 2880x2880: 46 -> 49 GB/s (bench/RESULTS.md).
 */
#ifndef QX_PAIR_RV
#define QX_PAIR_RV 4
#endif
/*
 * Q8_0 (twice the bytes per element) is bound by memory, not by that chain, and streams best as
 * one row: 2 threads over 8192x2048, against a plain read measured alongside (6 pairs): one row
 * 84%, 4 rows 66%, the 1-row tiles before this path 74%.
 */
#ifndef QX_Q8_RV
#define QX_Q8_RV 1
#endif
/* The weight scales of block pair b as the tiles' per-lane vector, from the loader's d0, d1. */
#define qx_scales2_loaded(row, b, d0, d1) qx_pair_interleaved_ps(d0, d1)
#define qx_scales2_plain(row, b, d0, d1) qx_pair_ps(d0, d1)
/* Two Q8_0 blocks as one 64-byte vector in the plain layout, as u8 = q + 128 (see qx_load_q8_0). */
QX_INLINE void qx_load2_q8_0(const uint8_t *row, int b, __m512i *q, float *d0, float *d1) {
  const block_q8_0 *x = (const block_q8_0 *)row + b;
  const __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)x[0].qs)),
                                          _mm256_loadu_si256((const __m256i *)x[1].qs), 1);
  *q = _mm512_xor_si512(both, _mm512_set1_epi8((char)0x80));
  *d0 = qx_half(&x[0].d);
  *d1 = qx_half(&x[1].d);
}
/*
 * MXFP4's straight from the E8M0 table: two broadcast loads (one into lanes 4-7, 12-15 under a
 * mask) instead of two table loads, two broadcasts from registers and a blend, which made the
 * scales cost as much as the dot itself (bench/RESULTS.md).
 */
QX_INLINE __m512 qx_scales2_mxfp4(const uint8_t *row, int b, float d0, float d1) {
  (void)d0, (void)d1;
  const block_mxfp4 *x = (const block_mxfp4 *)row + b;
  return _mm512_mask_mov_ps(_mm512_set1_ps(quant_e8m0_half_table[x[0].e]), (__mmask16)0xF0F0,
                            _mm512_set1_ps(quant_e8m0_half_table[x[1].e]));
}

/* NAME: the gemm of a 32-element format with a pair loader (LOAD2; PERM: interleaved layout), the
 * pair's weight scales as a vector (SCALES2), quant offset, and the row count of its tiles (TILE_RV). */
#define QX_PAIR_ROWS(NAME, LOAD, LOAD2, SCALES2, OFFSET, PERM, TILE_RV, RV)                                  \
  QX_GEMM_RV(NAME##_tiles, TILE_RV)                                                                              \
  /* R (1..4) rows at once: each row's sum is its own chain of adds, formed as with one row alone. */               \
  QX_INLINE void NAME##_rows(const int R, int cols, const uint8_t *w, size_t ws, const uint8_t *a,                \
                             const qx_pair_prepared *p, float *y) {                                              \
    const int nb = cols / QK;                                                                                    \
    const float *da = (const float *)(a + cols);                                                                 \
    const size_t bb = ws / (size_t)nb;                                                                           \
    const size_t ahead = qx_ahead(R, ws);                                                                        \
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};                                                  \
    int b = 0;                                                                                                   \
    for (; b + 2 <= nb; b += 2, p++) {                                                                           \
      for (int r = 0; r < R; r++) {                                                                              \
        /* One prefetch per step: a step moves ~36 bytes on, so every line of the next rows is asked for;    \
           into L2 (one thread from memory, Q5_0 on Zen 4: 12 -> 20 GB/s; into L1, 4 rows outran them). */       \
        _mm_prefetch((const char *)(w + r * ws + ahead + (size_t)b * bb), _MM_HINT_T1);                          \
        __m512i wq;                                                                                              \
        float d0, d1;                                                                                            \
        LOAD2(w + r * ws, b, &wq, &d0, &d1);                                                                     \
        const __m512i dot = _mm512_dpbusd_epi32(p->init, wq, p->aq);                                             \
        /* Lane by lane the same f32 products (weight scale x activation scale) as the tiles form. */           \
        acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(SCALES2(w + r * ws, b, d0, d1), p->da), acc[r]); \
      }                                                                                                          \
    }                                                                                                            \
    if (b < nb) {                                                                                                \
      for (int r = 0; r < R; r++) {                                                                              \
        qx_w32 lo;                                                                                               \
        LOAD(w + r * ws, b, &lo);                                                                                \
        const __m512i wq = PERM ? _mm512_permutexvar_epi64(_mm512_setr_epi64(0, 1, 4, 5, 2, 3, 6, 7), _mm512_zextsi256_si512(lo.q)) \
                                : _mm512_zextsi256_si512(lo.q);                                                  \
        const __m512i dot = _mm512_dpbusd_epi32(p->init, wq, p->aq);                                             \
        const __m512 sc = PERM ? qx_pair_interleaved_ps(lo.d * da[b], 0.f) : qx_pair_ps(lo.d * da[b], 0.f);      \
        acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), sc, acc[r]);                                           \
      }                                                                                                          \
    }                                                                                                            \
    /* + 0: as the tiles add their (zero) mins */                                                                \
    for (int r = 0; r < R; r++) y[r] = _mm512_reduce_add_ps(PERM ? qx_unpermute(acc[r]) : acc[r]) + 0.f;        \
  }                                                                                                              \
  static void NAME(int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, int nt, float *y,  \
                   size_t ys) {                                                                                  \
    /* 192 bytes per block pair, read again for every row: kept within L1 (24 KiB, rows of up to 8192            \
     * elements); longer rows take the tiles, whose rows share that work instead. */                             \
    enum { PAIRS = 128 };                                                                                        \
    static __thread qx_pair_prepared prepared[PAIRS] __attribute__((aligned(64))); /* no split loads */          \
    static __thread qx_prepared_for prepared_for;                                                                \
    const int pairs = (cols / QK + 1) / 2;                                                                       \
    if (nt != 1 || pairs > PAIRS) {                                                                              \
      NAME##_tiles(cols, w, ws, nr, a, as, nt, y, ys);                                                           \
      return;                                                                                                    \
    }                                                                                                            \
    if (qx_prepare_needed(&prepared_for, a, cols)) qx_pairs_prepare(cols, a, prepared, OFFSET, PERM);            \
    int r = 0;                                                                                                   \
    for (; r + (RV) <= nr; r += (RV)) NAME##_rows((RV), cols, w + (size_t)r * ws, ws, a, prepared, y + r);       \
    for (; r < nr; r++) NAME##_rows(1, cols, w + (size_t)r * ws, ws, a, prepared, y + r);                         \
  }

#define qx_q4_0_tiles_tile qx_q4_0_tile
#define qx_mxfp4_tiles_tile qx_mxfp4_tile
#define qx_q5_0_tiles_tile qx_q5_0_tile
#define qx_q8_0_tiles_tile qx_q8_0_tile
#if !QX_PANEL_ORDER /* else these formats take the panel kernels' arithmetic (the table at the end) */
QX_PAIR_ROWS(qx_q4_0, qx_load_q4_0, qx_load2_q4_0, qx_scales2_loaded, 8, 1, QX_RV_NIBBLE, QX_PAIR_RV)
QX_PAIR_ROWS(qx_mxfp4, qx_load_mxfp4, qx_load2_mxfp4, qx_scales2_mxfp4, 16, 1, QX_RV_NIBBLE, QX_PAIR_RV)
#endif
/* Q5_0 in the plain layout: its pair loader and scales cost about half the interleaved ones'
   instructions (the rows were bound by them: 13 GB/s against Q8_0's 19 in the same decode step). */
QX_PAIR_ROWS(qx_q5_0, qx_load_q5_0, qx_load2_q5_0_plain, qx_scales2_q5_0, 16, 0, QX_RV_NIBBLE, QX_PAIR_RV)
/* Q8_0 in the plain layout of its tiles (one 32-byte load per block), so that lanes sum as there:
 * the per-block activation work (the offset lanes) then comes from the per-call buffer instead of
 * being redone for every row. Single thread, L2-resident 256x2048: 37.6 -> 55.9 GB/s. */
#if !QX_PANEL_ORDER
QX_PAIR_ROWS(qx_q8_0, qx_load_q8_0, qx_load2_q8_0, qx_scales2_plain, 128, 0, QX_RV, QX_Q8_RV)
#endif
#else
QX_GEMM_RV(qx_q4_0, QX_RV_NIBBLE)
QX_GEMM_RV(qx_mxfp4, QX_RV_NIBBLE)
QX_GEMM_RV(qx_q5_0, QX_RV_NIBBLE)
#endif
QX_GEMM_RV(qx_q4_1, QX_RV_NIBBLE)
QX_GEMM_RV(qx_q5_1, QX_RV_NIBBLE)
#if !QX_INTERLEAVE
QX_GEMM(qx_q8_0)
#endif

/* ---- K formats with Q8_K activations ---- */

/* Activation parts of super-block b of a Q8_K row of `cols`. */
#define QX_Q8K(at, cols, b)                                                                \
  const int8_t *aq = (const int8_t *)(at) + QK_K * (b);                                    \
  const float da = ((const float *)((at) + (cols)))[b];                                     \
  const int16_t *bsums = (const int16_t *)((at) + (cols) + (size_t)((cols) / QK_K) * 4) + 16 * (b)

/* Sums of the 32-element halves' pairs of bsums: 8 int16 (each <= 32 * 127). */
QX_INLINE __m128i qx_bsum_pairs(const int16_t *bsums) {
  const __m128i lo = _mm_loadu_si128((const __m128i *)bsums), hi = _mm_loadu_si128((const __m128i *)(bsums + 8));
  return _mm_hadd_epi16(lo, hi);
}

/*
 * Scales and mins of a Q4_K/Q5_K super-block as bytes: 0-7 the scales, 8-15 the mins. Sub-blocks
 * 0-3 keep 6 bits in bytes 0-3 (scales) and 4-7 (mins); 4-7 keep their low 4 bits in bytes 8-11 and
 * their top 2 bits in the spare top bits of bytes 0-7. Unpacked in vector registers: the dwords
 * [w0, w2, w1, w2 >> 4] masked to 6 or 4 bits, and the top bits of w0 and w1 moved to bits 4-5.
 * Reads 16 bytes (12 used): the block runs on past them.
 */
QX_INLINE __m128i qx_scales_mins8(const uint8_t *scales) {
  const __m128i v = _mm_loadu_si128((const __m128i *)scales);
  const __m128i a = _mm_srlv_epi32(_mm_shuffle_epi32(v, _MM_SHUFFLE(2, 1, 2, 0)), _mm_setr_epi32(0, 0, 0, 4));
  const __m128i lo = _mm_and_si128(a, _mm_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f));
  const __m128i top = _mm_and_si128(_mm_srli_epi32(_mm_shuffle_epi32(v, _MM_SHUFFLE(1, 1, 0, 0)), 2),
                                    _mm_setr_epi32(0, 0x30303030, 0, 0x30303030));
  return _mm_or_si128(lo, top);
}

/* The same as int16: words 0-7 the scales, 8-15 the mins. */
QX_INLINE __m256i qx_scales_mins16(const uint8_t *scales) { return _mm256_cvtepu8_epi16(qx_scales_mins8(scales)); }

#if QX_VNNI && defined(__AVX512BW__)
/*
 * With AVX-512 the K formats run on 64-byte vectors: each holds two 32-element sub-blocks, so one
 * maddubs + one dpwssd covers 64 quants. Q4_K/Q5_K's nibbles pair sub-blocks (0,2), (1,3), (4,6),
 * (5,7); the activations are regrouped to match.
 */
typedef struct {
  __m512i q[4];
  __m512i sc[4];
  __m128i mins;
  __m128i sm8; /* bytes 0-7 the scales, 8-15 the mins (qx_scales_mins8) */
  float d, dmin;
} qx_k512;

QX_INLINE float qx_hsum512(__m512 v) { return _mm512_reduce_add_ps(v); }

/* Word index vectors picking scale `lo` for the first 16 words and `hi` for the last 16. */
QX_INLINE __m512i qx_pick2(int lo, int hi) {
  return _mm512_inserti64x4(_mm512_set1_epi16((short)lo), _mm256_set1_epi16((short)hi), 1);
}

/* A super-block's quants: sub-blocks (4h, 4h + 2) in q[2h], (4h + 1, 4h + 3) in q[2h + 1]. */
QX_INLINE void qx_k512_quants(const uint8_t *qs, const uint8_t *qh, qx_k512 *o) {
  const __m512i low = _mm512_set1_epi8(0x0f);
  for (int half = 0; half < 2; half++) {
    const __m512i raw = _mm512_loadu_si512((const void *)(qs + 64 * half));
    o->q[2 * half] = _mm512_and_si512(raw, low);                             /* sub-blocks 4h+0, 4h+2 */
    o->q[2 * half + 1] = _mm512_and_si512(_mm512_srli_epi16(raw, 4), low); /* sub-blocks 4h+1, 4h+3 */
  }
  if (qh) {
    /* Bit j of qh byte l is the fifth bit of element l of sub-block j. */
    const __m512i bits = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)qh));
    const __m512i one = _mm512_set1_epi8(1);
    for (int k = 0; k < 4; k++) {
      const int j = 4 * (k >> 1) + (k & 1); /* first sub-block of vector k; the second is j + 2 */
      const __m512i shift = qx_pick2(j, j + 2);
      const __m512i h = _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(bits, shift), one), 4);
      o->q[k] = _mm512_or_si512(o->q[k], h);
    }
  }
}

/* The scales of q[k] as words (qx_scales_mins8's bytes 0-7 in every 128-bit lane of sm512). */
QX_INLINE void qx_k512_spread_scales(__m512i sm512, qx_k512 *o) {
  for (int k = 0; k < 4; k++) {
    const int j = 4 * (k >> 1) + (k & 1);
    /* Words 0-15 take scale j, 16-31 scale j + 2: byte pairs (scale, 0) from the lane's copy
       (a byte shuffle: cheaper than a word permutation on every AVX-512 core). */
    const __m512i ctrl =
        _mm512_inserti64x4(_mm512_set1_epi16((short)(0x8000 | j)), _mm256_set1_epi16((short)(0x8000 | (j + 2))), 1);
    o->sc[k] = _mm512_shuffle_epi8(sm512, ctrl);
  }
}

QX_INLINE void qx_unpack_k512(const uint8_t *qs, const uint8_t *scales, const uint8_t *qh, quant_half d, quant_half dmin,
                              qx_k512 *o) {
  qx_k512_quants(qs, qh, o);
  const __m128i sm8 = qx_scales_mins8(scales); /* bytes 0-7 scales, 8-15 mins */
  qx_k512_spread_scales(_mm512_broadcast_i32x4(sm8), o);
  o->mins = _mm_cvtepu8_epi16(_mm_srli_si128(sm8, 8));
  o->sm8 = sm8;
  o->d = _cvtsh_ss(d);
  o->dmin = _cvtsh_ss(dmin);
}

QX_INLINE void qx_unpack_q4_K512(const uint8_t *row, int b, qx_k512 *o) {
  const block_q4_K *x = (const block_q4_K *)row + b;
  qx_unpack_k512(x->qs, x->scales, NULL, x->d, x->dmin, o);
}

QX_INLINE void qx_unpack_q5_K512(const uint8_t *row, int b, qx_k512 *o) {
  const block_q5_K *x = (const block_q5_K *)row + b;
  qx_unpack_k512(x->qs, x->scales, x->qh, x->d, x->dmin, o);
}

QX_INLINE void qx_quants_q4_K512(const uint8_t *row, int b, qx_k512 *o) { qx_k512_quants(((const block_q4_K *)row + b)->qs, NULL, o); }
QX_INLINE void qx_quants_q5_K512(const uint8_t *row, int b, qx_k512 *o) {
  const block_q5_K *x = (const block_q5_K *)row + b;
  qx_k512_quants(x->qs, x->qh, o);
}

/*
 * The 16-byte heads (d and dmin, then the 12 scale bytes) of m (<= 4) consecutive Q4_K/Q5_K blocks
 * bb bytes apart, one per 128-bit lane, zeros past m.
 */
QX_INLINE __m512i qx_k_heads4(const uint8_t *first, size_t bb, const int m) {
  __m512i v = _mm512_zextsi128_si512(_mm_loadu_si128((const __m128i *)first));
  if (m > 1) v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(first + bb)), 1);
  if (m > 2) v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(first + 2 * bb)), 2);
  if (m > 3) v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(first + 3 * bb)), 3);
  return v;
}

/* qx_scales_mins8 of the four heads of qx_k_heads4 at once (the scale bytes are dwords 1-3 of a head). */
QX_INLINE __m512i qx_scales_mins8_x4(__m512i heads) {
  const __m512i a = _mm512_srlv_epi32(_mm512_shuffle_epi32(heads, _MM_SHUFFLE(3, 2, 3, 1)), _mm512_set4_epi32(4, 0, 0, 0));
  const __m512i lo = _mm512_and_si512(a, _mm512_set4_epi32(0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f));
  const __m512i top = _mm512_and_si512(_mm512_srli_epi32(_mm512_shuffle_epi32(heads, _MM_SHUFFLE(2, 2, 1, 1)), 2),
                                       _mm512_set4_epi32(0x30303030, 0, 0x30303030, 0));
  return _mm512_or_si512(lo, top);
}

/* The sums of the 16 lanes of v[0..3], in lanes 0..3 (integers: exact in any order). */
QX_INLINE __m128i qx_sum4_epi32(const __m512i *v) {
  const __m512i a = _mm512_add_epi32(_mm512_unpacklo_epi32(v[0], v[1]), _mm512_unpackhi_epi32(v[0], v[1]));
  const __m512i b = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2], v[3]), _mm512_unpackhi_epi32(v[2], v[3]));
  const __m512i c = _mm512_add_epi32(_mm512_unpacklo_epi64(a, b), _mm512_unpackhi_epi64(a, b));
  const __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(c), _mm512_extracti64x4_epi64(c, 1));
  return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

/*
 * The super-block steps of n (<= QX_RMAX * QX_T + 3, four per vector) K-format sums:
 * acc[i] = fma(float(isum[i]'s lanes summed), scale[i], acc[i]): a super-block's exact integer
 * dot (every sub-block's times its scale) as one float, times d * da, added with one rounding. The
 * panel kernels (quant_panel_avx512.c) form each output with the same operations in the same
 * order, so a token's result is the same whichever path its batch takes.
 */
QX_INLINE void qx_k_steps(int n, __m512i *isum, const float *scale, float *acc) {
  for (int i = 0; i < n; i += 4) {
    for (int j = n - i; j < 4; j++) isum[i + j] = _mm512_setzero_si512();
    const __m128 f = _mm_cvtepi32_ps(qx_sum4_epi32(isum + i));
    _mm_storeu_ps(acc + i, _mm_fmadd_ps(f, _mm_loadu_ps(scale + i), _mm_loadu_ps(acc + i)));
  }
}

#define QX_TILE_SCALE_MIN(NAME, UNPACK)                                                                          \
  QX_INLINE void NAME##_tile(const int R, const int T, int cols, const uint8_t *w, size_t ws, const uint8_t *a, \
                             size_t as, float *y, size_t ys) {                                                  \
    const int nb = cols / QK_K;                                                                                 \
    const size_t bb = ws / (size_t)nb;                                                                          \
    const size_t ahead = qx_ahead(R, ws);                                                                       \
    float acc[QX_RMAX * QX_T + 3] = {0}, scale[QX_RMAX * QX_T + 3] = {0};                                      \
    __m512i isum[QX_RMAX * QX_T + 3];                                                                           \
    float mins[QX_RMAX][QX_T];                                                                                  \
    for (int r = 0; r < R; r++)                                                                                 \
      for (int t = 0; t < T; t++) mins[r][t] = 0;                                                               \
    for (int b = 0; b < nb; b++) {                                                                              \
      qx_k512 wb[QX_RMAX];                                                                                      \
      for (int r = 0; r < R; r++) qx_prefetch(w + r * ws + ahead + (size_t)b * bb, bb);                                  \
      for (int r = 0; r < R; r++) UNPACK(w + r * ws, b, &wb[r]);                                                \
      for (int t = 0; t < T; t++) {                                                                             \
        QX_Q8K(a + t * as, cols, b);                                                                            \
        const __m128i pairs = qx_bsum_pairs(bsums);                                                             \
        __m512i av[4];                                                                                          \
        for (int h = 0; h < 2; h++) {                                                                           \
          const __m512i x0 = _mm512_loadu_si512((const void *)(aq + 128 * h));                                  \
          const __m512i x1 = _mm512_loadu_si512((const void *)(aq + 128 * h + 64));                             \
          av[2 * h] = _mm512_shuffle_i64x2(x0, x1, 0x44);     /* sub-blocks 4h+0, 4h+2 */                      \
          av[2 * h + 1] = _mm512_shuffle_i64x2(x0, x1, 0xee); /* sub-blocks 4h+1, 4h+3 */                      \
        }                                                                                                       \
        for (int r = 0; r < R; r++) {                                                                           \
          __m512i is = _mm512_setzero_si512();                                                                  \
          for (int k = 0; k < 4; k++) {                                                                         \
            is = _mm512_dpwssd_epi32(is, _mm512_maddubs_epi16(wb[r].q[k], av[k]), wb[r].sc[k]);                 \
          }                                                                                                     \
          isum[r * T + t] = is;                                                                                 \
          scale[r * T + t] = wb[r].d * da;                                                                      \
          mins[r][t] += (wb[r].dmin * da) * (float)qx_hsum_i32_128(_mm_madd_epi16(wb[r].mins, pairs));          \
        }                                                                                                       \
      }                                                                                                         \
      qx_k_steps(R * T, isum, scale, acc);                                                                      \
    }                                                                                                           \
    for (int r = 0; r < R; r++)                                                                                 \
      for (int t = 0; t < T; t++) y[t * ys + r] = acc[r * T + t] - mins[r][t];                                  \
  }

QX_TILE_SCALE_MIN(qx_q4_K, qx_unpack_q4_K512)
QX_TILE_SCALE_MIN(qx_q5_K, qx_unpack_q5_K512)

/*
 * One token against Q4_K/Q5_K rows, one row at a time, as for Q4_0 (qx_q4_0): the activation work
 * a tile does per super-block (regrouped quants, pairs of block sums) is the same for every row,
 * so it is done once per call into a per-thread buffer. The per-row operations are those of the
 * tile with R = T = 1, in the same order: the same results bit for bit.
 */
typedef struct {
  __m512i_u av[4];
  __m128i_u pairs;
  uint8_t pad[48]; /* whole cache lines per super-block */
} qx_k_prepared;

/* Super-blocks per row the buffer holds (20 KiB: rows of up to 16384 elements). */
#define QX_K_PREPARED_MAX 64

QX_INLINE void qx_k_prepare(int cols, const uint8_t *a, qx_k_prepared *p) {
  const int nb = cols / QK_K;
  for (int b = 0; b < nb; b++, p++) {
    QX_Q8K(a, cols, b);
    (void)da;
    p->pairs = qx_bsum_pairs(bsums);
    for (int h = 0; h < 2; h++) {
      const __m512i x0 = _mm512_loadu_si512((const void *)(aq + 128 * h));
      const __m512i x1 = _mm512_loadu_si512((const void *)(aq + 128 * h + 64));
      p->av[2 * h] = _mm512_shuffle_i64x2(x0, x1, 0x44);
      p->av[2 * h + 1] = _mm512_shuffle_i64x2(x0, x1, 0xee);
    }
  }
}

/* What a one-row product needs once per four super-blocks: their pairs of block sums in one
   vector (a 128-bit lane each), and their activation scales twice over (for d and for dmin). */
typedef struct {
  __m512i_u pairs4;
  __m256_u da4x2;
  uint8_t pad[32];
} qx_k_group;

QX_INLINE void qx_k_prepare_groups(int cols, const uint8_t *a, const qx_k_prepared *p, qx_k_group *g) {
  const int nb = cols / QK_K;
  const float *da = (const float *)(a + cols);
  for (int b0 = 0; b0 < nb; b0 += 4, g++) {
    __m128i pairs[4];
    float d4[4];
    for (int j = 0; j < 4; j++) {
      pairs[j] = b0 + j < nb ? p[b0 + j].pairs : _mm_setzero_si128();
      d4[j] = b0 + j < nb ? da[b0 + j] : 0.f;
    }
    g->pairs4 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set_m128i(pairs[1], pairs[0])), _mm256_set_m128i(pairs[3], pairs[2]), 1);
    g->da4x2 = _mm256_set_m128(_mm_loadu_ps(d4), _mm_loadu_ps(d4));
  }
}


/* The mins' integer dots of four super-blocks: sm4 holds block j's qx_scales_mins8 in 128-bit lane j
   (mins in bytes 8-15), pairs4 their activation partners (words, a 128-bit lane per block). Exact,
   as qx_hsum_i32_128 of each. */
QX_INLINE __m128i qx_min4_epi32(__m512i sm4, __m512i pairs4) {
  const __m256i m8 = _mm512_castsi512_si256(_mm512_permutexvar_epi64(_mm512_setr_epi64(1, 3, 5, 7, 1, 3, 5, 7), sm4));
  const __m512i p = _mm512_madd_epi16(_mm512_cvtepu8_epi16(m8), pairs4); /* 4 dwords per block */
  /* Transpose the 4 x 4 dwords so lane i of every 128-bit lane holds block i's, then add lanes. */
  const __m512i t = _mm512_permutexvar_epi32(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), p);
  const __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(t), _mm512_extracti64x4_epi64(t, 1));
  return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

/* v with word j (< 4) replaced by the 2 bytes at p. */
QX_INLINE __m128i qx_insert_word(__m128i v, const void *p, int j) {
  uint16_t x;
  memcpy(&x, p, 2);
  switch (j) {
    case 0: return _mm_insert_epi16(v, x, 0);
    case 1: return _mm_insert_epi16(v, x, 1);
    case 2: return _mm_insert_epi16(v, x, 2);
    default: return _mm_insert_epi16(v, x, 3);
  }
}

/* acc = fma(f[j], s[j], acc) for j = 0 .. m - 1 in order, one rounding each (as qx_k_steps). */
QX_INLINE float qx_fma_lanes(float acc, __m128 f, __m128 s, const int m) {
  __m128 a = _mm_fmadd_ss(f, s, _mm_set_ss(acc));
  if (m > 1) a = _mm_fmadd_ss(_mm_movehdup_ps(f), _mm_movehdup_ps(s), a);
  if (m > 2) a = _mm_fmadd_ss(_mm_movehl_ps(f, f), _mm_movehl_ps(s, s), a);
  if (m > 3) a = _mm_fmadd_ss(_mm_shuffle_ps(f, f, 3), _mm_shuffle_ps(s, s, 3), a);
  return _mm_cvtss_f32(a);
}

/* acc + p[0] + ... + p[m - 1], in that order. */
QX_INLINE float qx_add_lanes(float acc, __m128 p, const int m) {
  __m128 a = _mm_add_ss(_mm_set_ss(acc), p);
  if (m > 1) a = _mm_add_ss(a, _mm_movehdup_ps(p));
  if (m > 2) a = _mm_add_ss(a, _mm_movehl_ps(p, p));
  if (m > 3) a = _mm_add_ss(a, _mm_shuffle_ps(p, p, 3));
  return _mm_cvtss_f32(a);
}

#define QX_K_ROWS(NAME, QUANTS)                                                                                 \
  QX_GEMM_RV(NAME##_tiles, QX_RV)                                                                              \
  /* Super-blocks b0 .. b0 + m - 1 (m <= 4) of a row: their steps run as vectors, in order. The block          \
     loop is unrolled so that isum[] and the scales stay in registers (as a loop, isum went through            \
     the stack and Q4_K rows ran 18% slower). The blocks' heads (d, dmin, scales) are unpacked together,       \
     a block's 12 scale bytes in a 128-bit lane each (one at a time cost 10% of a row's time). */             \
  QX_INLINE void NAME##_group(const int m, int b0, const uint8_t *w, size_t bb, size_t ahead,                 \
                              const qx_k_prepared *p, const qx_k_group *g, float *acc, float *mins) {          \
    const uint8_t *first = w + (size_t)b0 * bb;                                                                \
    qx_prefetch_l2(first + ahead, (size_t)m * bb);                                                             \
    const __m512i heads = qx_k_heads4(first, bb, m);                                                           \
    const __m512i sm4 = qx_scales_mins8_x4(heads);                                                             \
    __m512i isum[4];                                                                                           \
    for (int j = 0; j < 4; j++) isum[j] = _mm512_setzero_si512();                                              \
    _Pragma("GCC unroll 4") for (int j = 0; j < m; j++) {                                                      \
      const int b = b0 + j;                                                                                    \
      qx_k512 wb;                                                                                              \
      QUANTS(w, b, &wb);                                                                                       \
      qx_k512_spread_scales(_mm512_shuffle_i32x4(sm4, sm4, 0x55 * j), &wb);                                    \
      for (int k = 0; k < 4; k++) isum[j] = _mm512_dpwssd_epi32(isum[j], _mm512_maddubs_epi16(wb.q[k], p[b].av[k]), wb.sc[k]); \
    }                                                                                                          \
    const __m128 f = _mm_cvtepi32_ps(qx_sum4_epi32(isum));                                                     \
    const __m128 msum = _mm_cvtepi32_ps(qx_min4_epi32(sm4, g->pairs4));                                        \
    /* d of the blocks in halves 0-3, dmin in 4-7 (dword 0 of each head); times da, as the scalar steps do. */ \
    const __m128i dd = _mm512_castsi512_si128(_mm512_permutexvar_epi32(_mm512_setr_epi32(0, 4, 8, 12, 0, 4, 8, 12, 0, 4, 8, 12, 0, 4, 8, 12), heads)); \
    const __m128i dh = _mm_shuffle_epi8(dd, _mm_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15)); \
    const __m256 sd = _mm256_mul_ps(_mm256_cvtph_ps(dh), g->da4x2);                                            \
    *acc = qx_fma_lanes(*acc, f, _mm256_castps256_ps128(sd), m);                                               \
    *mins = qx_add_lanes(*mins, _mm_mul_ps(_mm256_extractf128_ps(sd, 1), msum), m);                            \
  }                                                                                                            \
  QX_INLINE float NAME##_row(int cols, const uint8_t *w, size_t ws, const qx_k_prepared *p, const qx_k_group *g) { \
    const int nb = cols / QK_K;                                                                                \
    const size_t bb = ws / (size_t)nb;                                                                         \
    const size_t ahead = QX_PFM * qx_ahead(1, ws);                                                             \
    float acc = 0, mins = 0;                                                                                   \
    int b0 = 0;                                                                                                \
    for (; b0 + 4 <= nb; b0 += 4, g++) NAME##_group(4, b0, w, bb, ahead, p, g, &acc, &mins);                   \
    switch (nb - b0) {                                                                                         \
      case 3: NAME##_group(3, b0, w, bb, ahead, p, g, &acc, &mins); break;                                     \
      case 2: NAME##_group(2, b0, w, bb, ahead, p, g, &acc, &mins); break;                                     \
      case 1: NAME##_group(1, b0, w, bb, ahead, p, g, &acc, &mins); break;                                     \
      default: break;                                                                                          \
    }                                                                                                          \
    return acc - mins;                                                                                         \
  }                                                                                                            \
  static void NAME(int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, int nt, float *y, \
                   size_t ys) {                                                                                \
    static __thread qx_k_prepared prepared[QX_K_PREPARED_MAX] __attribute__((aligned(64)));                    \
    static __thread qx_k_group groups[(QX_K_PREPARED_MAX + 3) / 4] __attribute__((aligned(64)));                     \
    static __thread qx_prepared_for prepared_for;                                                              \
    if (nt != 1 || cols / QK_K > QX_K_PREPARED_MAX) {                                                          \
      NAME##_tiles(cols, w, ws, nr, a, as, nt, y, ys);                                                         \
      return;                                                                                                  \
    }                                                                                                          \
    if (qx_prepare_needed(&prepared_for, a, cols)) {                                                           \
      qx_k_prepare(cols, a, prepared);                                                                         \
      qx_k_prepare_groups(cols, a, prepared, groups);                                                          \
    }                                                                                                          \
    for (int r = 0; r < nr; r++) y[r] = NAME##_row(cols, w + (size_t)r * ws, ws, prepared, groups);        \
  }

#define qx_q4_K_tiles_tile qx_q4_K_tile
#define qx_q6_K_tiles_tile qx_q6_K_tile
#define qx_q5_K_tiles_tile qx_q5_K_tile
QX_K_ROWS(qx_q4_K, qx_quants_q4_K512)
QX_K_ROWS(qx_q5_K, qx_quants_q5_K512)

/* A Q6_K super-block of one row in 64-byte vectors: quants 0..63 and int16 scale vectors. */
typedef struct {
  __m512i q[4]; /* elements 64k .. 64k + 63 */
  __m512i sc[4];
  __m256i sc16; /* the 16 scales as int16, in order */
  float d;
} qx_q6_512;

QX_INLINE void qx_unpack_q6_K512(const uint8_t *row, int b, qx_q6_512 *o) {
  const block_q6_K *x = (const block_q6_K *)row + b;
  const __m512i low = _mm512_set1_epi8(0x0f), two = _mm512_set1_epi8(0x30);
  for (int h = 0; h < 2; h++) {
    const __m512i l = _mm512_loadu_si512((const void *)(x->ql + 64 * h)); /* quarters 0, 1 low bits | 2, 3 in high nibbles */
    const __m512i hb = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x->qh + 32 * h)));
    /* Quarter i's two high bits sit at bits 2i..2i+1 of qh; move them to bits 4-5. */
    const __m512i h01 = _mm512_and_si512(_mm512_sllv_epi16(hb, qx_pick2(4, 2)), two);
    const __m512i h23 = _mm512_and_si512(_mm512_srlv_epi16(hb, qx_pick2(0, 2)), two);
    o->q[2 * h] = _mm512_or_si512(_mm512_and_si512(l, low), h01);
    o->q[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), low), h23);
  }
  o->sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x->scales));
  const __m512i sc16 = _mm512_castsi256_si512(o->sc16);
  for (int k = 0; k < 4; k++) {
    /* Word i of vector k covers elements 64k + 2i, 2i + 1: 16-element group 4k + i / 8. */
    const __m512i idx = _mm512_add_epi16(_mm512_set1_epi16((short)(4 * k)),
                                         _mm512_srli_epi16(_mm512_set_epi16(31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16,
                                                                            15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                                           3));
    o->sc[k] = _mm512_permutexvar_epi16(idx, sc16);
  }
  o->d = qx_half(&x->d);
}

QX_INLINE void qx_q6_K_tile(const int R, const int T, int cols, const uint8_t *w, size_t ws, const uint8_t *a,
                            size_t as, float *y, size_t ys) {
  const int nb = cols / QK_K;
  const size_t bb = ws / (size_t)nb;
  const size_t ahead = qx_ahead(R, ws);
  float acc[QX_RMAX * QX_T + 3] = {0}, scale[QX_RMAX * QX_T + 3] = {0};
  __m512i isum[QX_RMAX * QX_T + 3];
  for (int b = 0; b < nb; b++) {
    qx_q6_512 wb[QX_RMAX];
    for (int r = 0; r < R; r++) qx_prefetch(w + r * ws + ahead + (size_t)b * bb, bb);
    for (int r = 0; r < R; r++) qx_unpack_q6_K512(w + r * ws, b, &wb[r]);
    for (int t = 0; t < T; t++) {
      QX_Q8K(a + t * as, cols, b);
      (void)bsums;
      __m512i av[4], a32[4];
      for (int k = 0; k < 4; k++) {
        av[k] = _mm512_loadu_si512((const void *)(aq + 64 * k));
        /* Quants are stored + 32; take 32 * a back per int16 pair before scaling, as llama.cpp does. */
        a32[k] = _mm512_maddubs_epi16(_mm512_set1_epi8(32), av[k]);
      }
      for (int r = 0; r < R; r++) {
        __m512i is = _mm512_setzero_si512();
        for (int k = 0; k < 4; k++) {
          const __m512i p16 = _mm512_sub_epi16(_mm512_maddubs_epi16(wb[r].q[k], av[k]), a32[k]);
          is = _mm512_dpwssd_epi32(is, p16, wb[r].sc[k]);
        }
        isum[r * T + t] = is;
        scale[r * T + t] = wb[r].d * da;
      }
    }
    qx_k_steps(R * T, isum, scale, acc);
  }
  for (int r = 0; r < R; r++)
    for (int t = 0; t < T; t++) y[t * ys + r] = acc[r * T + t];
}
QX_GEMM_RV(qx_q6_K_tiles, QX_RV)
/*
 * One token, one row at a time, four super-blocks' sums reduced together. A super-block's integer
 * dot is taken as sum(q * sc * a) - 32 * sum(sc * bsum) (the tiles take 32 * a off each word pair
 * instead): integers, so exactly the same sum, and the steps after it are qx_k_steps'.
 */
QX_INLINE __m512i qx_q6_K_isum(const qx_q6_512 *wb, const int8_t *aq, const int16_t *bsums) {
  __m512i is = _mm512_setzero_si512();
  for (int k = 0; k < 4; k++)
    is = _mm512_dpwssd_epi32(is, _mm512_maddubs_epi16(wb->q[k], _mm512_loadu_si512((const void *)(aq + 64 * k))), wb->sc[k]);
  const __m256i off = _mm256_madd_epi16(wb->sc16, _mm256_loadu_si256((const __m256i *)bsums));
  return _mm512_sub_epi32(is, _mm512_zextsi256_si512(_mm256_slli_epi32(off, 5)));
}

/* Super-blocks b0 .. b0 + m - 1 (m <= 4) of a Q6_K row, their steps as vectors (the loop unrolled, as
   in QX_K_ROWS's group). */
QX_INLINE float qx_q6_K_group(const int m, int b0, int cols, const uint8_t *w, size_t bb, size_t ahead, const uint8_t *a, float acc) {
  __m512i isum[4];
  __m128i dh = _mm_setzero_si128();
  float da4[4] = {0, 0, 0, 0};
  for (int j = 0; j < 4; j++) isum[j] = _mm512_setzero_si512();
  _Pragma("GCC unroll 4") for (int j = 0; j < m; j++) {
    const int b = b0 + j;
    QX_Q8K(a, cols, b);
    da4[j] = da;
    qx_prefetch_l2(w + ahead + (size_t)b * bb, bb);
    qx_q6_512 wb;
    qx_unpack_q6_K512(w, b, &wb);
    isum[j] = qx_q6_K_isum(&wb, aq, bsums);
    dh = qx_insert_word(dh, &((const block_q6_K *)w + b)->d, j);
  }
  const __m128 f = _mm_cvtepi32_ps(qx_sum4_epi32(isum));
  return qx_fma_lanes(acc, f, _mm_mul_ps(_mm_cvtph_ps(dh), _mm_loadu_ps(da4)), m);
}

QX_INLINE float qx_q6_K_row(int cols, const uint8_t *w, size_t ws, const uint8_t *a) {
  const int nb = cols / QK_K;
  const size_t bb = ws / (size_t)nb;
  const size_t ahead = QX_PFM * qx_ahead(1, ws);
  float acc = 0;
  int b0 = 0;
  for (; b0 + 4 <= nb; b0 += 4) acc = qx_q6_K_group(4, b0, cols, w, bb, ahead, a, acc);
  switch (nb - b0) {
    case 3: return qx_q6_K_group(3, b0, cols, w, bb, ahead, a, acc);
    case 2: return qx_q6_K_group(2, b0, cols, w, bb, ahead, a, acc);
    case 1: return qx_q6_K_group(1, b0, cols, w, bb, ahead, a, acc);
    default: return acc;
  }
}

static void qx_q6_K(int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, int nt, float *y, size_t ys) {
  if (nt != 1) {
    qx_q6_K_tiles(cols, w, ws, nr, a, as, nt, y, ys);
    return;
  }
  for (int r = 0; r < nr; r++) y[r] = qx_q6_K_row(cols, w + (size_t)r * ws, ws, a);
}

#else
/* Word j (< 8) of each 128-bit half in every word: one byte shuffle with a constant pattern, not a store and a broadcast. */
QX_INLINE __m256i qx_word_all(__m256i v, int j) {
  return _mm256_shuffle_epi8(v, _mm256_set1_epi16((short)(0x0100 + 0x0202 * j)));
}

/* A Q4_K/Q5_K super-block of one row, unpacked: 8 vectors of 32 quants, scales, mins. */
typedef struct {
  __m256i q[8];
  __m256i sc; /* the 8 scales as int16, in both 128-bit halves */
  __m128i mins;
  float d, dmin;
} qx_k_scale_min;

QX_INLINE void qx_unpack_scales(const uint8_t *scales, qx_k_scale_min *o) {
  const __m256i sm = qx_scales_mins16(scales);
  o->sc = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(sm));
  o->mins = _mm256_extracti128_si256(sm, 1);
}

QX_INLINE void qx_unpack_q4_K(const uint8_t *row, int b, qx_k_scale_min *o) {
  const block_q4_K *x = (const block_q4_K *)row + b;
  const __m256i low = _mm256_set1_epi8(0x0f);
  for (int g = 0; g < 4; g++) {
    const __m256i raw = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * g));
    o->q[2 * g] = _mm256_and_si256(raw, low);
    o->q[2 * g + 1] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), low);
  }
  qx_unpack_scales(x->scales, o);
  o->d = qx_half(&x->d);
  o->dmin = qx_half(&x->dmin);
}

QX_INLINE void qx_unpack_q5_K(const uint8_t *row, int b, qx_k_scale_min *o) {
  const block_q5_K *x = (const block_q5_K *)row + b;
  const __m256i low = _mm256_set1_epi8(0x0f), bit = _mm256_set1_epi8(0x01);
  const __m256i qh = _mm256_loadu_si256((const __m256i *)x->qh);
  for (int g = 0; g < 4; g++) {
    const __m256i raw = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * g));
    /* Bit j of qh byte l is the fifth bit of element l of sub-block j; shifting 16-bit lanes keeps bit 0 clean. */
    const __m256i h0 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * g), bit), 4);
    const __m256i h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * g + 1), bit), 4);
    o->q[2 * g] = _mm256_or_si256(_mm256_and_si256(raw, low), h0);
    o->q[2 * g + 1] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(raw, 4), low), h1);
  }
  qx_unpack_scales(x->scales, o);
  o->d = qx_half(&x->d);
  o->dmin = qx_half(&x->dmin);
}

#define QX_TILE_SCALE_MIN(NAME, UNPACK)                                                                          \
  QX_INLINE void NAME##_tile(const int R, const int T, int cols, const uint8_t *w, size_t ws, const uint8_t *a, \
                             size_t as, float *y, size_t ys) {                                                  \
    const int nb = cols / QK_K;                                                                                 \
    const size_t bb = ws / (size_t)nb;                                                                          \
    const size_t ahead = qx_ahead(R, ws);                                                                       \
    __m256 acc[QX_RMAX][QX_T];                                                                                  \
    __m128 mins[QX_RMAX][QX_T];                                                                                 \
    for (int r = 0; r < R; r++)                                                                                 \
      for (int t = 0; t < T; t++) {                                                                             \
        acc[r][t] = _mm256_setzero_ps();                                                                        \
        mins[r][t] = _mm_setzero_ps();                                                                          \
      }                                                                                                         \
    for (int b = 0; b < nb; b++) {                                                                              \
      qx_k_scale_min wb[QX_RMAX];                                                                               \
      for (int r = 0; r < R; r++) qx_prefetch(w + r * ws + ahead + (size_t)b * bb, bb);                                  \
      for (int r = 0; r < R; r++) UNPACK(w + r * ws, b, &wb[r]);                                                \
      for (int t = 0; t < T; t++) {                                                                             \
        QX_Q8K(a + t * as, cols, b);                                                                            \
        const __m128i pairs = qx_bsum_pairs(bsums);                                                             \
        for (int r = 0; r < R; r++) {                                                                           \
          __m256i isum = _mm256_setzero_si256();                                                                \
          for (int j = 0; j < 8; j++) {                                                                         \
            const __m256i p16 =                                                                                 \
                _mm256_maddubs_epi16(wb[r].q[j], _mm256_loadu_si256((const __m256i *)(aq + 32 * j)));           \
            isum = qx_dot_scaled(isum, p16, qx_word_all(wb[r].sc, j));                                          \
          }                                                                                                     \
          acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(wb[r].d * da), acc[r][t]);        \
          /* The mins' 4 lanes summed across blocks as floats, one horizontal sum per row at the end. */          \
          mins[r][t] = _mm_fmadd_ps(_mm_cvtepi32_ps(_mm_madd_epi16(wb[r].mins, pairs)), _mm_set1_ps(wb[r].dmin * da), mins[r][t]); \
        }                                                                                                       \
      }                                                                                                         \
    }                                                                                                           \
    for (int r = 0; r < R; r++)                                                                                 \
      for (int t = 0; t < T; t++) y[t * ys + r] = qx_hsum(acc[r][t]) - qx_hsum128(mins[r][t]);                 \
  }

QX_TILE_SCALE_MIN(qx_q4_K, qx_unpack_q4_K)
QX_TILE_SCALE_MIN(qx_q5_K, qx_unpack_q5_K)
QX_GEMM(qx_q4_K)
QX_GEMM(qx_q5_K)

/* A Q6_K super-block of one row: 8 vectors of 32 quants (0..63) and its 16 scales. */
typedef struct {
  __m256i q[8];
  __m256i sc16; /* the 16 scales as int16, in element order (scale j: elements 16j..16j+15) */
  __m256i lo, hi; /* scales 0-7 and 8-15 as int16, each in both 128-bit halves */
  float d;
} qx_q6;

/*
 * Vector i's scale pair as int16 lanes: 0-7 the scale of its first 16 quants, 8-15 the second's.
 * One byte shuffle of a constant pattern, not two scalar broadcasts and an insert per vector.
 */
QX_INLINE __m256i qx_q6_scales(const qx_q6 *b, int i) {
  const short a = (short)(2 * (i & 3));
  const __m256i pick = _mm256_setr_m128i(_mm_set1_epi16((short)(0x0100 + 0x0202 * a)), _mm_set1_epi16((short)(0x0100 + 0x0202 * (a + 1))));
  return _mm256_shuffle_epi8(i < 4 ? b->lo : b->hi, pick);
}

QX_INLINE void qx_unpack_q6_K(const uint8_t *row, int b, qx_q6 *o) {
  const block_q6_K *x = (const block_q6_K *)row + b;
  const __m256i low = _mm256_set1_epi8(0x0f), two = _mm256_set1_epi8(0x30);
  for (int h = 0; h < 2; h++) {
    const __m256i l0 = _mm256_loadu_si256((const __m256i *)(x->ql + 64 * h));
    const __m256i l1 = _mm256_loadu_si256((const __m256i *)(x->ql + 64 * h + 32));
    const __m256i hb = _mm256_loadu_si256((const __m256i *)(x->qh + 32 * h));
    o->q[4 * h + 0] = _mm256_or_si256(_mm256_and_si256(l0, low), _mm256_and_si256(_mm256_slli_epi16(hb, 4), two));
    o->q[4 * h + 1] = _mm256_or_si256(_mm256_and_si256(l1, low), _mm256_and_si256(_mm256_slli_epi16(hb, 2), two));
    o->q[4 * h + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low), _mm256_and_si256(hb, two));
    o->q[4 * h + 3] =
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low), _mm256_and_si256(_mm256_srli_epi16(hb, 2), two));
  }
  o->sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x->scales));
  o->lo = _mm256_permute2x128_si256(o->sc16, o->sc16, 0x00);
  o->hi = _mm256_permute2x128_si256(o->sc16, o->sc16, 0x11);
  o->d = qx_half(&x->d);
}

QX_INLINE void qx_q6_K_tile(const int R, const int T, int cols, const uint8_t *w, size_t ws, const uint8_t *a,
                            size_t as, float *y, size_t ys) {
  const int nb = cols / QK_K;
  const size_t bb = ws / (size_t)nb;
  const size_t ahead = qx_ahead(R, ws);
  __m256 acc[QX_RMAX][QX_T];
  for (int r = 0; r < R; r++)
    for (int t = 0; t < T; t++) acc[r][t] = _mm256_setzero_ps();
  for (int b = 0; b < nb; b++) {
    qx_q6 wb[QX_RMAX];
    for (int r = 0; r < R; r++) qx_prefetch(w + r * ws + ahead + (size_t)b * bb, bb);
    for (int r = 0; r < R; r++) qx_unpack_q6_K(w + r * ws, b, &wb[r]);
    for (int t = 0; t < T; t++) {
      QX_Q8K(a + t * as, cols, b);
      /* Quants are stored + 32: 32 x (each 16 elements' scale x their activations' sum, the Q8_K
       * bsums) is taken back from the integer sum, one product for the block instead of 8. */
      const __m256i bs = _mm256_loadu_si256((const __m256i *)bsums);
      for (int r = 0; r < R; r++) {
        __m256i isum = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(_mm256_madd_epi16(wb[r].sc16, bs), 5));
        for (int i = 0; i < 8; i++) {
          const __m256i p16 = _mm256_maddubs_epi16(wb[r].q[i], _mm256_loadu_si256((const __m256i *)(aq + 32 * i)));
          isum = qx_dot_scaled(isum, p16, qx_q6_scales(&wb[r], i));
        }
        acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(wb[r].d * da), acc[r][t]);
      }
    }
  }
  for (int r = 0; r < R; r++)
    for (int t = 0; t < T; t++) y[t * ys + r] = qx_hsum(acc[r][t]);
}
QX_GEMM(qx_q6_K)
#endif


/* ---- float formats: products in f32, 8 lanes of f32 sums; the next tile's rows are prefetched as for the quants ---- */

QX_INLINE __m256 qx_load_f32(const uint8_t *p) { return _mm256_loadu_ps((const float *)p); }
QX_INLINE __m256 qx_load_f16(const uint8_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
QX_INLINE __m256 qx_load_bf16(const uint8_t *p) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}
QX_INLINE float qx_scalar_f32(const uint8_t *p) {
  float v;
  memcpy(&v, p, 4);
  return v;
}
QX_INLINE float qx_scalar_f16(const uint8_t *p) { return qx_half(p); }
QX_INLINE float qx_scalar_bf16(const uint8_t *p) {
  uint16_t h;
  memcpy(&h, p, 2);
  return quant_bf16_to_f32(h);
}

#if !(QX_VNNI && defined(__AVX512BW__))
#define QX_TILE_FLOAT(NAME, LOAD, SCALAR, ESIZE)                                                                \
  QX_INLINE void NAME##_tile_pf(const int PF, const int R, const int T, int cols, const uint8_t *w, size_t ws,   \
                                const uint8_t *a, size_t as, float *y, size_t ys) {                             \
    __m256 acc[QX_RMAX][QX_T];                                                                                  \
    for (int r = 0; r < R; r++)                                                                                 \
      for (int t = 0; t < T; t++) acc[r][t] = _mm256_setzero_ps();                                              \
    int i = 0;                                                                                                  \
    const size_t ahead = qx_ahead(R, ws);                                                                       \
    for (; i + 8 <= cols; i += 8) {                                                                             \
      __m256 wv[QX_RMAX];                                                                                       \
      /* Once per cache line of each row: ask for the same line of the next tile's rows. */                   \
      if ((PF || T == 1) && (i * (ESIZE)) % 64 == 0)                                                           \
        for (int r = 0; r < R; r++) _mm_prefetch((const char *)(w + r * ws + ahead + (size_t)i * (ESIZE)), _MM_HINT_T0); \
      for (int r = 0; r < R; r++) wv[r] = LOAD(w + r * ws + (size_t)i * (ESIZE));                                \
      for (int t = 0; t < T; t++) {                                                                             \
        const __m256 av = _mm256_loadu_ps((const float *)(a + t * as) + i);                                     \
        for (int r = 0; r < R; r++) acc[r][t] = _mm256_fmadd_ps(wv[r], av, acc[r][t]);                         \
      }                                                                                                         \
    }                                                                                                           \
    for (int r = 0; r < R; r++)                                                                                 \
      for (int t = 0; t < T; t++) {                                                                             \
        float s = qx_hsum(acc[r][t]);                                                                           \
        const float *at = (const float *)(a + t * as);                                                          \
        for (int k = i; k < cols; k++) s += SCALAR(w + r * ws + (size_t)k * (ESIZE)) * at[k];                   \
        y[t * ys + r] = s;                                                                                      \
      }                                                                                                         \
  }

#else
/*
 * With AVX-512: 16 elements per step in 512-bit registers (one conversion instruction per 16
 * halves); the last few elements of a row in scalar code.
 */
QX_INLINE __m512 qx_load16_f32(const uint8_t *p) { return _mm512_loadu_ps((const float *)p); }
QX_INLINE __m512 qx_load16_f16(const uint8_t *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }
QX_INLINE __m512 qx_load16_bf16(const uint8_t *p) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}
#define QX_TILE_FLOAT(NAME, LOAD, SCALAR, ESIZE)                                                                \
  QX_INLINE void NAME##_tile_pf(const int PF, const int R, const int T, int cols, const uint8_t *w, size_t ws,   \
                                const uint8_t *a, size_t as, float *y, size_t ys) {                             \
    __m512 acc[QX_RMAX][QX_T];                                                                                  \
    for (int r = 0; r < R; r++)                                                                                 \
      for (int t = 0; t < T; t++) acc[r][t] = _mm512_setzero_ps();                                              \
    int i = 0;                                                                                                  \
    /* One long row (past QX_FLOAT_LONG bytes) prefetches QX_FLOAT_LONG ahead into L2: a whole row    \
       ahead into L1 (16 KiB for an F16 row of 8192) evicted lines before they were used. */           \
    const int l2 = R == 1 && ws > QX_FLOAT_LONG;                                                                \
    const size_t ahead = l2 ? QX_FLOAT_LONG : qx_ahead(R, ws);                                                  \
    for (; i + 16 <= cols; i += 16) {                                                                           \
      __m512 wv[QX_RMAX];                                                                                       \
      if ((PF || T == 1) && (i * (ESIZE)) % 64 == 0) {                                                          \
        if (l2) _mm_prefetch((const char *)(w + ahead + (size_t)i * (ESIZE)), _MM_HINT_T1);                     \
        else                                                                                                    \
          for (int r = 0; r < R; r++) _mm_prefetch((const char *)(w + r * ws + ahead + (size_t)i * (ESIZE)), _MM_HINT_T0); \
      }                                                                                                         \
      for (int r = 0; r < R; r++) wv[r] = LOAD##16(w + r * ws + (size_t)i * (ESIZE));                          \
      for (int t = 0; t < T; t++) {                                                                             \
        const __m512 av = _mm512_loadu_ps((const float *)(a + t * as) + i);                                     \
        for (int r = 0; r < R; r++) acc[r][t] = _mm512_fmadd_ps(wv[r], av, acc[r][t]);                         \
      }                                                                                                         \
    }                                                                                                           \
    for (int r = 0; r < R; r++)                                                                                 \
      for (int t = 0; t < T; t++) {                                                                             \
        float s = _mm512_reduce_add_ps(acc[r][t]);                                                              \
        const float *at = (const float *)(a + t * as);                                                          \
        for (int k = i; k < cols; k++) s += SCALAR(w + r * ws + (size_t)k * (ESIZE)) * at[k];                   \
        y[t * ys + r] = s;                                                                                      \
      }                                                                                                         \
  }
#define qx_load_f3216 qx_load16_f32
#define qx_load_f1616 qx_load16_f16
#define qx_load_bf1616 qx_load16_bf16
#endif

QX_TILE_FLOAT(qx_f32, qx_load_f32, qx_scalar_f32, 4)
QX_TILE_FLOAT(qx_f16, qx_load_f16, qx_scalar_f16, 2)
QX_TILE_FLOAT(qx_bf16, qx_load_bf16, qx_scalar_bf16, 2)

/*
 * The float formats walk their own tile shape (QX_R_FLOAT x QX_T_FLOAT; see the ISA's file), and
 * prefetch the next tile's rows only in a call of one tile of tokens or fewer (PF), or for one
 * token: with more, every token tile of a row group reads the same rows again, and prefetching the
 * next group's rows into L1 evicted them. A Zen 5 host, F16, 2 threads, the same results bit for
 * bit: 2048 x 8192 x 512 tokens 67-80 -> 63-70 ms, 8192 x 2048 x 512 58-74 -> 52-59 ms, 64 tokens
 * 8.6-10.3 -> 7.2-8.8 ms; a call of one tile streams its rows from memory once, and without the
 * prefetch 8192 x 2048 x 6 tokens ran 25% slower (the AVX2 code, tiles of 8 tokens, 30%).
 */
#define QX_GEMM_FLOAT(NAME)                                                                                     \
  QX_INLINE void NAME##_few_tile(const int R, const int T, int cols, const uint8_t *w, size_t ws,              \
                                 const uint8_t *a, size_t as, float *y, size_t ys) {                           \
    NAME##_tile_pf(1, R, T, cols, w, ws, a, as, y, ys);                                                        \
  }                                                                                                            \
  QX_INLINE void NAME##_many_tile(const int R, const int T, int cols, const uint8_t *w, size_t ws,             \
                                  const uint8_t *a, size_t as, float *y, size_t ys) {                          \
    NAME##_tile_pf(0, R, T, cols, w, ws, a, as, y, ys);                                                        \
  }                                                                                                            \
  QX_GEMM_SHAPE(NAME##_few, QX_RV_FLOAT, QX_RV_FLOAT_LONG, QX_R_FLOAT, QX_T_FLOAT)                              \
  QX_GEMM_SHAPE(NAME##_many, QX_RV_FLOAT, QX_RV_FLOAT_LONG, QX_R_FLOAT, QX_T_FLOAT)                             \
  static void NAME(int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, int nt, float *y, \
                   size_t ys) {                                                                                \
    if (nt <= QX_T_FLOAT) NAME##_few(cols, w, ws, nr, a, as, nt, y, ys);                                        \
    else NAME##_many(cols, w, ws, nr, a, as, nt, y, ys);                                                        \
  }
QX_GEMM_FLOAT(qx_f32)
QX_GEMM_FLOAT(qx_f16)
QX_GEMM_FLOAT(qx_bf16)

/* ---- activation converters ---- */

QX_INLINE __m256 qx_abs(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }

QX_INLINE float qx_hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

/* Rounds to nearest even and packs 32 int32 results of one block into 32 int8, in order. */
QX_INLINE __m256i qx_pack_i8(__m256i i0, __m256i i1, __m256i i2, __m256i i3) {
  const __m256i a = _mm256_packs_epi32(i0, i1), b = _mm256_packs_epi32(i2, i3);
  return _mm256_permutevar8x32_epi32(_mm256_packs_epi16(a, b), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* The CPU backend's Q8_0/Q8_1 block rule (see quant_scalar.c); returns the sum of the quants. */
QX_INLINE int qx_convert_block_q8(const float *x, int8_t *qs, float *d) {
  __m256 v[4];
  __m256 amax = _mm256_setzero_ps();
  for (int k = 0; k < 4; k++) {
    v[k] = _mm256_loadu_ps(x + 8 * k);
    amax = _mm256_max_ps(amax, qx_abs(v[k]));
  }
  const float m = qx_hmax(amax);
  const __m256 id = _mm256_set1_ps(m != 0 ? 127.f / m : 0.f);
  __m256i q[4];
  __m256i sum = _mm256_setzero_si256();
  for (int k = 0; k < 4; k++) {
    q[k] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[k], id), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    sum = _mm256_add_epi32(sum, q[k]);
  }
  _mm256_storeu_si256((__m256i *)qs, qx_pack_i8(q[0], q[1], q[2], q[3]));
  *d = m / 127.f;
  return qx_hsum_i32(sum);
}

static void qx_convert_q8_0(const float *x, uint8_t *dst, int cols) {
  const int nb = cols / QK;
  float *d = (float *)(dst + cols);
  for (int b = 0; b < nb; b++) {
    float db;
    qx_convert_block_q8(x + QK * b, (int8_t *)dst + QK * b, &db);
    d[b] = _cvtsh_ss(_cvtss_sh(db, 0));
  }
}

static void qx_convert_q8_1(const float *x, uint8_t *dst, int cols) {
  const int nb = cols / QK;
  float *d = (float *)(dst + cols);
  float *s = (float *)(dst + cols + (size_t)nb * 4);
  for (int b = 0; b < nb; b++) {
    float db;
    const int sum = qx_convert_block_q8(x + QK * b, (int8_t *)dst + QK * b, &db);
    d[b] = _cvtsh_ss(_cvtss_sh(db, 0));
    s[b] = _cvtsh_ss(_cvtss_sh(db * sum, 0));
  }
}

static void qx_convert_q8_K(const float *x, uint8_t *dst, int cols) {
  const int nb = cols / QK_K;
  float *d = (float *)(dst + cols);
  int16_t *bsums = (int16_t *)(dst + cols + (size_t)nb * 4);
  for (int b = 0; b < nb; b++) {
    const float *xb = x + QK_K * b;
    int8_t *q = (int8_t *)dst + QK_K * b;
    __m256 amax = _mm256_setzero_ps();
    for (int k = 0; k < QK_K; k += 8) amax = _mm256_max_ps(amax, qx_abs(_mm256_loadu_ps(xb + k)));
    const float m = qx_hmax(amax);
    if (m == 0) {
      memset(q, 0, QK_K);
      memset(bsums + 16 * b, 0, 32);
      d[b] = 0;
      continue;
    }
    /* ggml keeps the sign of the first element whose magnitude is the maximum. */
    float max = m;
    for (int k = 0; k < QK_K; k += 8) {
      const int hit = _mm256_movemask_ps(_mm256_cmp_ps(qx_abs(_mm256_loadu_ps(xb + k)), _mm256_set1_ps(m), _CMP_EQ_OQ));
      if (hit) {
        max = xb[k + __builtin_ctz((unsigned)hit)];
        break;
      }
    }
    const float iscale = -127.f / max;
    const __m256 vs = _mm256_set1_ps(iscale);
    for (int g = 0; g < QK_K / 32; g++) {
      __m256i i[4];
      for (int k = 0; k < 4; k++) {
        const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(xb + 32 * g + 8 * k), vs);
        i[k] = _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)),
                                _mm256_set1_epi32(127));
      }
      bsums[16 * b + 2 * g] = (int16_t)qx_hsum_i32(_mm256_add_epi32(i[0], i[1]));
      bsums[16 * b + 2 * g + 1] = (int16_t)qx_hsum_i32(_mm256_add_epi32(i[2], i[3]));
      _mm256_storeu_si256((__m256i *)(q + 32 * g), qx_pack_i8(i[0], i[1], i[2], i[3]));
    }
    d[b] = 1 / iscale;
  }
}

static void qx_convert_f16(const float *x, uint8_t *dst, int cols) {
  float *out = (float *)dst;
  int i = 0;
  for (; i + 8 <= cols; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(h));
  }
  for (; i < cols; i++) out[i] = quant_half_to_f32(quant_f32_to_half(x[i]));
}

static void qx_convert_bf16(const float *x, uint8_t *dst, int cols) {
  float *out = (float *)dst;
  int i = 0;
  const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
  const __m256i top = _mm256_set1_epi32((int)0xffff0000u), one = _mm256_set1_epi32(1);
  for (; i + 8 <= cols; i += 8) {
    const __m256i u = _mm256_castps_si256(_mm256_loadu_ps(x + i));
    const __m256i rounding = _mm256_add_epi32(_mm256_set1_epi32(0x7fff), _mm256_and_si256(_mm256_srli_epi32(u, 16), one));
    const __m256i rounded = _mm256_and_si256(_mm256_add_epi32(u, rounding), top);
    const __m256i quiet = _mm256_and_si256(_mm256_or_si256(u, _mm256_set1_epi32(0x00400000)), top);
    const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, abs_mask), inf);
    _mm256_storeu_ps(out + i, _mm256_castsi256_ps(_mm256_blendv_epi8(rounded, quiet, nan)));
  }
  for (; i < cols; i++) out[i] = quant_bf16_to_f32(quant_f32_to_bf16(x[i]));
}

/*
 * Where the ISA has panel kernels for a 32-element format (quant_panel_avx512.c), its products of
 * any token count use their arithmetic (QX_PANEL_ORDER): the row tiles above sum a row in vector
 * lanes and round differently, and a token's result must not depend on whether its batch took the
 * panels. (The K formats' rows and panels share one arithmetic instead: qx_k_steps.)
 */
#if QX_PANEL_ORDER
#define QX_DIRECT(NAME) \
  void quant_direct_##NAME##_avx512(int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, int nt, float *y, size_t ys);
QX_DIRECT(q4_0)
QX_DIRECT(q8_0)
QX_DIRECT(mxfp4)
QX_DIRECT(q4_K)
QX_DIRECT(q5_K)
QX_DIRECT(q5_0)
QX_DIRECT(q6_K)
QX_DIRECT(iq4_nl)
QX_DIRECT(iq4_xs)
#define QX_GEMM_OF(NAME) quant_direct_##NAME##_avx512
/* K formats: one token on the row kernels, more on the direct panel products (the same arithmetic;
   the row tiles redo a row's unpacking for every token, the direct products once for all). */
#define QX_K_ROWS_OR_DIRECT(NAME)                                                                                \
  static void qx_##NAME##_any(int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, int nt, \
                              float *y, size_t ys) {                                                           \
    if (nt == 1) qx_##NAME(cols, w, ws, nr, a, as, nt, y, ys);                                                 \
    else quant_direct_##NAME##_avx512(cols, w, ws, nr, a, as, nt, y, ys);                                      \
  }
QX_K_ROWS_OR_DIRECT(q4_K)
QX_K_ROWS_OR_DIRECT(q5_K)
QX_K_ROWS_OR_DIRECT(q6_K)
#define QX_K_GEMM_OF(NAME) qx_##NAME##_any
#include "quant_x86_iq4_xs_rows.h"
#include "quant_x86_rows32.h"
#define QX_IQ4_XS_GEMM qx_iq4_xs_any
#define QX_Q5_0_GEMM qx_q5_0_any
#define QX_Q4_0_GEMM QX_GEMM_OF(q4_0)
#define QX_Q8_0_GEMM qx_q8_0_any
#define QX_IQ4_NL_GEMM QX_GEMM_OF(iq4_nl)
#else
#define QX_IQ4_XS_GEMM qx_iq4_xs_any
#define QX_IQ4_NL_GEMM qx_iq4_nl_t
#define QX_Q5_0_GEMM qx_q5_0
#ifndef QX_Q4_0_GEMM /* the ISA file may name its own */
#define QX_Q4_0_GEMM qx_q4_0
#endif
#define QX_Q8_0_GEMM qx_q8_0
#define QX_GEMM_OF(NAME) qx_##NAME
#define QX_K_GEMM_OF(NAME) qx_##NAME
#endif
#ifndef QX_MXFP4_GEMM /* the ISA file may name its own */
#define QX_MXFP4_GEMM QX_GEMM_OF(mxfp4)
#endif

#include "quant_x86_low_k.h"
#include "quant_x86_iq4_nl.h"
#if !QX_PANEL_ORDER
#include "quant_x86_iq4_xs_rows_avx2.h"
#endif

const quant_kernel_table QX_TABLE = {
    .convert =
        {
            [CAIRN_F16] = qx_convert_f16,
            [CAIRN_BF16] = qx_convert_bf16,
            [CAIRN_Q8_0] = qx_convert_q8_0,
            [CAIRN_Q8_1] = qx_convert_q8_1,
            [CAIRN_Q8_K] = qx_convert_q8_K,
        },
    .gemm =
        {
            [CAIRN_F32] = qx_f32,
            [CAIRN_F16] = qx_f16,
            [CAIRN_BF16] = qx_bf16,
            [CAIRN_Q4_0] = QX_Q4_0_GEMM,
            [CAIRN_Q4_1] = qx_q4_1,
            [CAIRN_Q5_0] = QX_Q5_0_GEMM,
            [CAIRN_Q5_1] = qx_q5_1,
            [CAIRN_Q8_0] = QX_Q8_0_GEMM,
            [CAIRN_MXFP4] = QX_MXFP4_GEMM,
            [CAIRN_Q2_K] = qx_q2_K,
            [CAIRN_Q3_K] = qx_q3_K,
            [CAIRN_Q4_K] = QX_K_GEMM_OF(q4_K),
            [CAIRN_Q5_K] = QX_K_GEMM_OF(q5_K),
            [CAIRN_Q6_K] = QX_K_GEMM_OF(q6_K),
            [CAIRN_IQ4_XS] = QX_IQ4_XS_GEMM,
            [CAIRN_IQ4_NL] = QX_IQ4_NL_GEMM,
            [CAIRN_IQ1_S] = qx_iq1_s,
            [CAIRN_IQ1_M] = qx_iq1_m,
            [CAIRN_IQ2_XXS] = qx_iq2_xxs,
            [CAIRN_IQ2_XS] = qx_iq2_xs,
            [CAIRN_IQ2_S] = qx_iq2_s,
            [CAIRN_IQ3_XXS] = qx_iq3_xxs,
            [CAIRN_IQ3_S] = qx_iq3_s,
        },
    .tile_tokens = {[CAIRN_F32] = QX_T_FLOAT, [CAIRN_F16] = QX_T_FLOAT, [CAIRN_BF16] = QX_T_FLOAT},
};

#endif
