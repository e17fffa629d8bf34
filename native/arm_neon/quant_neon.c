/*
 * arm64 kernels of the quantized matmul (ARMv8.2-A with dotprod and fp16). Weight quants are
 * made signed (q - offset) and dotted with the signed dot instruction, so each int32 lane holds
 * the partial sum of 4 products llama.cpp's NEON lanes hold; blocks are then scaled in f32.
 * The activation converters are the portable ones (same layout, same values).
 */
#if defined(__aarch64__)
#include <arm_neon.h>
#include <string.h>

#include "quant_iq.h"
#include "quant_kernels.h"

#define QN_INLINE static inline __attribute__((always_inline))

/*
 * A tile reads R consecutive rows (one contiguous stretch) in R streams; while it works on block b
 * it prefetches block b of the next R rows, so the next stretch arrives as this one is consumed.
 */
QN_INLINE void qn_prefetch(const uint8_t *p, size_t bytes) {
  for (size_t off = 0; off < bytes; off += 64) __builtin_prefetch(p + off);
}
/* Weight rows x tokens per tile; rows per tile for one token. */
#define QN_R 4
#define QN_T 2
#define QN_RV 4
/*
 * Tokens per tile of the float formats (4 rows each): 16 sums, 4 weight vectors and an activation
 * vector of the 32 registers, so a step loads 8 vectors and converts 4 halves per 16 multiply-adds
 * where 4 x 2 loaded 6 and converted 4 per 8 (the x86 levels measured their float products held
 * back by the loads per multiply-add: bench/RESULTS.md). Each row and token's sum is formed as
 * before, so the results do not change; its speed is not measured on an ARM machine here.
 */
#define QN_T_FLOAT 4

QN_INLINE float qn_half(const void *p) {
  __fp16 h;
  memcpy(&h, p, 2);
  return (float)h;
}

/* Low nibbles then high nibbles of 16 bytes: ggml's element order of a 32-element block. */
QN_INLINE void qn_nibbles(const uint8_t *qs, int8x16_t *lo, int8x16_t *hi) {
  const uint8x16_t raw = vld1q_u8(qs);
  *lo = vreinterpretq_s8_u8(vandq_u8(raw, vdupq_n_u8(0x0f)));
  *hi = vreinterpretq_s8_u8(vshrq_n_u8(raw, 4));
}

/* Bytes 0x10 where bit j of `bits` is set, for the 16 bits starting at `first`. */
QN_INLINE int8x16_t qn_fifth_bits(uint32_t bits, int first) {
  static const uint8_t select[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
  const uint8x8_t lo = vdup_n_u8((uint8_t)(bits >> first)), hi = vdup_n_u8((uint8_t)(bits >> (first + 8)));
  const uint8x16_t set = vtstq_u8(vcombine_u8(lo, hi), vld1q_u8(select));
  return vreinterpretq_s8_u8(vandq_u8(set, vdupq_n_u8(0x10)));
}

/* A 32-element weight block as signed quants (two halves), scale and min. */
typedef struct {
  int8x16_t q0, q1;
  float d, m;
} qn_w32;

QN_INLINE void qn_load_q4_0(const uint8_t *row, int b, qn_w32 *o) {
  const block_q4_0 *x = (const block_q4_0 *)row + b;
  qn_nibbles(x->qs, &o->q0, &o->q1);
  o->q0 = vsubq_s8(o->q0, vdupq_n_s8(8));
  o->q1 = vsubq_s8(o->q1, vdupq_n_s8(8));
  o->d = qn_half(&x->d);
}

QN_INLINE void qn_load_q4_1(const uint8_t *row, int b, qn_w32 *o) {
  const block_q4_1 *x = (const block_q4_1 *)row + b;
  qn_nibbles(x->qs, &o->q0, &o->q1);
  o->d = qn_half(&x->d);
  o->m = qn_half(&x->m);
}

QN_INLINE void qn_q5(const uint8_t *qh, const uint8_t *qs, int8x16_t *q0, int8x16_t *q1) {
  uint32_t bits;
  memcpy(&bits, qh, 4);
  qn_nibbles(qs, q0, q1);
  *q0 = vorrq_s8(*q0, qn_fifth_bits(bits, 0));
  *q1 = vorrq_s8(*q1, qn_fifth_bits(bits, 16));
}

QN_INLINE void qn_load_q5_0(const uint8_t *row, int b, qn_w32 *o) {
  const block_q5_0 *x = (const block_q5_0 *)row + b;
  qn_q5(x->qh, x->qs, &o->q0, &o->q1);
  o->q0 = vsubq_s8(o->q0, vdupq_n_s8(16));
  o->q1 = vsubq_s8(o->q1, vdupq_n_s8(16));
  o->d = qn_half(&x->d);
}

QN_INLINE void qn_load_q5_1(const uint8_t *row, int b, qn_w32 *o) {
  const block_q5_1 *x = (const block_q5_1 *)row + b;
  qn_q5(x->qh, x->qs, &o->q0, &o->q1);
  o->d = qn_half(&x->d);
  o->m = qn_half(&x->m);
}

QN_INLINE void qn_load_q8_0(const uint8_t *row, int b, qn_w32 *o) {
  const block_q8_0 *x = (const block_q8_0 *)row + b;
  o->q0 = vld1q_s8(x->qs);
  o->q1 = vld1q_s8(x->qs + 16);
  o->d = qn_half(&x->d);
}

/* A 32-element block of nibble codes (byte j: element j low, j + 16 high) through a 16-entry signed table. */
QN_INLINE void qn_table_nibbles(const uint8_t *qs, const int8_t *values, qn_w32 *o) {
  const int8x16_t table = vld1q_s8(values);
  const uint8x16_t raw = vld1q_u8(qs);
  o->q0 = vqtbl1q_s8(table, vandq_u8(raw, vdupq_n_u8(0x0f)));
  o->q1 = vqtbl1q_s8(table, vshrq_n_u8(raw, 4));
}

/* MXFP4: each nibble looked up as its doubled E2M1 code (signed); the scale is the E8M0 byte halved. */
QN_INLINE void qn_load_mxfp4(const uint8_t *row, int b, qn_w32 *o) {
  const block_mxfp4 *x = (const block_mxfp4 *)row + b;
  qn_table_nibbles(x->qs, quant_mxfp4_values, o);
  o->d = quant_e8m0_half_table[x->e];
}

/* IQ4_NL: each nibble looked up as its code's value (signed), as MXFP4's; an f16 scale. */
QN_INLINE void qn_load_iq4_nl(const uint8_t *row, int b, qn_w32 *o) {
  const block_iq4_nl *x = (const block_iq4_nl *)row + b;
  qn_table_nibbles(x->qs, quant_iq4_values, o);
  o->d = qn_half(&x->d);
}

#define QN_TILE32(NAME, LOAD, HAS_MIN)                                                                         \
  QN_INLINE void NAME##_tile(const int R, const int T, int cols, const uint8_t *w, size_t ws, const uint8_t *a, \
                             size_t as, float *y, size_t ys) {                                                  \
    const int nb = cols / QK;                                                                                   \
    float32x4_t acc[QN_R][QN_T];                                                                                \
    float mins[QN_R][QN_T];                                                                                     \
    for (int r = 0; r < R; r++)                                                                                 \
      for (int t = 0; t < T; t++) {                                                                             \
        acc[r][t] = vdupq_n_f32(0);                                                                             \
        mins[r][t] = 0;                                                                                         \
      }                                                                                                         \
    for (int b = 0; b < nb; b++) {                                                                              \
      qn_w32 wb[QN_R];                                                                                          \
      for (int r = 0; r < R; r++) __builtin_prefetch(w + (r + R) * ws + (size_t)b * (ws / (size_t)nb));          \
      for (int r = 0; r < R; r++) LOAD(w + r * ws, b, &wb[r]);                                                  \
      for (int t = 0; t < T; t++) {                                                                             \
        const uint8_t *at = a + t * as;                                                                         \
        const int8x16_t a0 = vld1q_s8((const int8_t *)at + QK * b), a1 = vld1q_s8((const int8_t *)at + QK * b + 16); \
        const float da = ((const float *)(at + cols))[b];                                                       \
        for (int r = 0; r < R; r++) {                                                                           \
          const int32x4_t p = vdotq_s32(vdotq_s32(vdupq_n_s32(0), wb[r].q0, a0), wb[r].q1, a1);                 \
          acc[r][t] = vmlaq_n_f32(acc[r][t], vcvtq_f32_s32(p), wb[r].d * da);                                   \
          if (HAS_MIN) {                                                                                        \
            float s;                                                                                            \
            memcpy(&s, at + cols + (size_t)nb * 4 + (size_t)b * 4, 4);                                          \
            mins[r][t] += wb[r].m * s;                                                                          \
          }                                                                                                     \
        }                                                                                                       \
      }                                                                                                         \
    }                                                                                                           \
    for (int r = 0; r < R; r++)                                                                                 \
      for (int t = 0; t < T; t++) y[t * ys + r] = vaddvq_f32(acc[r][t]) + mins[r][t];                          \
  }

#define QN_GEMM(NAME) QN_GEMM_SHAPE(NAME, QN_T)
/* T tokens a tile (QN_T, or QN_T_FLOAT for the float formats); a block's last tokens in a tile of their own width. */
#define QN_GEMM_SHAPE(NAME, T)                                                                                 \
  static void NAME(int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, int nt, float *y, \
                   size_t ys) {                                                                                \
    int r = 0;                                                                                                 \
    if (nt == 1) {                                                                                             \
      for (; r + QN_RV <= nr; r += QN_RV) NAME##_tile(QN_RV, 1, cols, w + r * ws, ws, a, as, y + r, ys);          \
    } else {                                                                                                   \
      for (; r + QN_R <= nr; r += QN_R) {                                                                      \
        int t = 0;                                                                                             \
        for (; t + (T) <= nt; t += (T)) NAME##_tile(QN_R, (T), cols, w + r * ws, ws, a + t * as, as, y + t * ys + r, ys); \
        if ((T) > 3 && nt - t == 3) NAME##_tile(QN_R, 3, cols, w + r * ws, ws, a + t * as, as, y + t * ys + r, ys); \
        else if ((T) > 2 && nt - t == 2) NAME##_tile(QN_R, 2, cols, w + r * ws, ws, a + t * as, as, y + t * ys + r, ys); \
        else                                                                                                   \
          for (; t < nt; t++) NAME##_tile(QN_R, 1, cols, w + r * ws, ws, a + t * as, as, y + t * ys + r, ys);     \
      }                                                                                                        \
    }                                                                                                          \
    for (; r < nr; r++)                                                                                        \
      for (int t = 0; t < nt; t++) NAME##_tile(1, 1, cols, w + r * ws, ws, a + t * as, as, y + t * ys + r, ys);    \
  }

QN_TILE32(qn_q4_0, qn_load_q4_0, 0)
QN_TILE32(qn_q4_1, qn_load_q4_1, 1)
QN_TILE32(qn_q5_0, qn_load_q5_0, 0)
QN_TILE32(qn_q5_1, qn_load_q5_1, 1)
QN_TILE32(qn_q8_0, qn_load_q8_0, 0)
QN_TILE32(qn_mxfp4, qn_load_mxfp4, 0)
QN_TILE32(qn_iq4_nl, qn_load_iq4_nl, 0)
QN_GEMM(qn_q4_0)
QN_GEMM(qn_q4_1)
QN_GEMM(qn_q5_0)
QN_GEMM(qn_q5_1)
QN_GEMM(qn_q8_0)
QN_GEMM(qn_mxfp4)
QN_GEMM(qn_iq4_nl)

/* ---- K formats ---- */

#define QN_Q8K(at, cols, b)                                                               \
  const int8_t *aq = (const int8_t *)(at) + QK_K * (b);                                   \
  const float da = ((const float *)((at) + (cols)))[b];                                    \
  const int16_t *bsums = (const int16_t *)((at) + (cols) + (size_t)((cols) / QK_K) * 4) + 16 * (b)

/* Q4_K/Q5_K super-block of one row: 16 vectors of 16 quants (sub-block j = vectors 2j, 2j+1). */
typedef struct {
  int8x16_t q[16];
  int32_t sc[8];
  int16x8_t mins;
  float d, dmin;
} qn_k_scale_min;

QN_INLINE void qn_scales(const uint8_t *scales, qn_k_scale_min *o) {
  int16_t mins[8];
  for (int j = 0; j < 8; j++) {
    uint8_t sc, m;
    quant_k_scale_min(scales, j, &sc, &m);
    o->sc[j] = sc;
    mins[j] = m;
  }
  o->mins = vld1q_s16(mins);
}

QN_INLINE void qn_unpack_q4_K(const uint8_t *row, int b, qn_k_scale_min *o) {
  const block_q4_K *x = (const block_q4_K *)row + b;
  for (int g = 0; g < 4; g++) {
    for (int h = 0; h < 2; h++) {
      const uint8x16_t raw = vld1q_u8(x->qs + 32 * g + 16 * h);
      o->q[4 * g + h] = vreinterpretq_s8_u8(vandq_u8(raw, vdupq_n_u8(0x0f)));
      o->q[4 * g + 2 + h] = vreinterpretq_s8_u8(vshrq_n_u8(raw, 4));
    }
  }
  qn_scales(x->scales, o);
  o->d = qn_half(&x->d);
  o->dmin = qn_half(&x->dmin);
}

QN_INLINE void qn_unpack_q5_K(const uint8_t *row, int b, qn_k_scale_min *o) {
  const block_q5_K *x = (const block_q5_K *)row + b;
  for (int g = 0; g < 4; g++) {
    for (int h = 0; h < 2; h++) {
      const uint8x16_t raw = vld1q_u8(x->qs + 32 * g + 16 * h);
      const uint8x16_t qh = vld1q_u8(x->qh + 16 * h);
      /* Bit j of qh byte l is the fifth bit of element l of sub-block j. */
      const uint8x16_t h0 = vandq_u8(vtstq_u8(qh, vdupq_n_u8((uint8_t)(1u << (2 * g)))), vdupq_n_u8(0x10));
      const uint8x16_t h1 = vandq_u8(vtstq_u8(qh, vdupq_n_u8((uint8_t)(1u << (2 * g + 1)))), vdupq_n_u8(0x10));
      o->q[4 * g + h] = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(raw, vdupq_n_u8(0x0f)), h0));
      o->q[4 * g + 2 + h] = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(raw, 4), h1));
    }
  }
  qn_scales(x->scales, o);
  o->d = qn_half(&x->d);
  o->dmin = qn_half(&x->dmin);
}

#define QN_TILE_SCALE_MIN(NAME, UNPACK)                                                                          \
  QN_INLINE void NAME##_tile(const int R, const int T, int cols, const uint8_t *w, size_t ws, const uint8_t *a, \
                             size_t as, float *y, size_t ys) {                                                  \
    const int nb = cols / QK_K;                                                                                 \
    float32x4_t acc[QN_R][QN_T];                                                                                \
    float mins[QN_R][QN_T];                                                                                     \
    for (int r = 0; r < R; r++)                                                                                 \
      for (int t = 0; t < T; t++) {                                                                             \
        acc[r][t] = vdupq_n_f32(0);                                                                             \
        mins[r][t] = 0;                                                                                         \
      }                                                                                                         \
    for (int b = 0; b < nb; b++) {                                                                              \
      qn_k_scale_min wb[QN_R];                                                                                  \
      for (int r = 0; r < R; r++) qn_prefetch(w + (r + R) * ws + (size_t)b * (ws / (size_t)nb), ws / (size_t)nb); \
      for (int r = 0; r < R; r++) UNPACK(w + r * ws, b, &wb[r]);                                                \
      for (int t = 0; t < T; t++) {                                                                             \
        QN_Q8K(a + t * as, cols, b);                                                                            \
        const int16x8_t pairs = vpaddq_s16(vld1q_s16(bsums), vld1q_s16(bsums + 8));                           \
        for (int r = 0; r < R; r++) {                                                                           \
          int32x4_t isum = vdupq_n_s32(0);                                                                      \
          for (int j = 0; j < 8; j++) {                                                                         \
            int32x4_t p = vdotq_s32(vdupq_n_s32(0), wb[r].q[2 * j], vld1q_s8(aq + 32 * j));                     \
            p = vdotq_s32(p, wb[r].q[2 * j + 1], vld1q_s8(aq + 32 * j + 16));                                   \
            isum = vmlaq_n_s32(isum, p, wb[r].sc[j]);                                                           \
          }                                                                                                     \
          acc[r][t] = vmlaq_n_f32(acc[r][t], vcvtq_f32_s32(isum), wb[r].d * da);                                \
          const int32x4_t m = vmull_s16(vget_low_s16(wb[r].mins), vget_low_s16(pairs));                        \
          const int32x4_t m2 = vmlal_s16(m, vget_high_s16(wb[r].mins), vget_high_s16(pairs));                   \
          mins[r][t] += (wb[r].dmin * da) * (float)vaddvq_s32(m2);                                              \
        }                                                                                                       \
      }                                                                                                         \
    }                                                                                                           \
    for (int r = 0; r < R; r++)                                                                                 \
      for (int t = 0; t < T; t++) y[t * ys + r] = vaddvq_f32(acc[r][t]) - mins[r][t];                          \
  }

QN_TILE_SCALE_MIN(qn_q4_K, qn_unpack_q4_K)
QN_TILE_SCALE_MIN(qn_q5_K, qn_unpack_q5_K)
QN_GEMM(qn_q4_K)
QN_GEMM(qn_q5_K)

/* Q6_K super-block of one row: 16 vectors of 16 signed quants (q - 32), 16 scales. */
typedef struct {
  int8x16_t q[16];
  int32_t sc[16];
  float d;
} qn_q6;

QN_INLINE void qn_unpack_q6_K(const uint8_t *row, int b, qn_q6 *o) {
  const block_q6_K *x = (const block_q6_K *)row + b;
  const uint8x16_t low = vdupq_n_u8(0x0f), two = vdupq_n_u8(0x30);
  const int8x16_t off = vdupq_n_s8(32);
  for (int h = 0; h < 2; h++) {
    for (int k = 0; k < 2; k++) { /* 16-byte halves of the 32-element quarters */
      const uint8x16_t l0 = vld1q_u8(x->ql + 64 * h + 16 * k), l1 = vld1q_u8(x->ql + 64 * h + 32 + 16 * k);
      const uint8x16_t hb = vld1q_u8(x->qh + 32 * h + 16 * k);
      const uint8x16_t q0 = vorrq_u8(vandq_u8(l0, low), vandq_u8(vshlq_n_u8(hb, 4), two));
      const uint8x16_t q1 = vorrq_u8(vandq_u8(l1, low), vandq_u8(vshlq_n_u8(hb, 2), two));
      const uint8x16_t q2 = vorrq_u8(vshrq_n_u8(l0, 4), vandq_u8(hb, two));
      const uint8x16_t q3 = vorrq_u8(vshrq_n_u8(l1, 4), vandq_u8(vshrq_n_u8(hb, 2), two));
      /* Element 128h + 32i + 16k + l is quant i's vector 8h + 2i + k. */
      o->q[8 * h + 0 + k] = vsubq_s8(vreinterpretq_s8_u8(q0), off);
      o->q[8 * h + 2 + k] = vsubq_s8(vreinterpretq_s8_u8(q1), off);
      o->q[8 * h + 4 + k] = vsubq_s8(vreinterpretq_s8_u8(q2), off);
      o->q[8 * h + 6 + k] = vsubq_s8(vreinterpretq_s8_u8(q3), off);
    }
  }
  for (int k = 0; k < 16; k++) o->sc[k] = x->scales[k];
  o->d = qn_half(&x->d);
}

QN_INLINE void qn_q6_K_tile(const int R, const int T, int cols, const uint8_t *w, size_t ws, const uint8_t *a,
                            size_t as, float *y, size_t ys) {
  const int nb = cols / QK_K;
  float32x4_t acc[QN_R][QN_T];
  for (int r = 0; r < R; r++)
    for (int t = 0; t < T; t++) acc[r][t] = vdupq_n_f32(0);
  for (int b = 0; b < nb; b++) {
    qn_q6 wb[QN_R];
    for (int r = 0; r < R; r++) qn_prefetch(w + (r + R) * ws + (size_t)b * (ws / (size_t)nb), ws / (size_t)nb);
    for (int r = 0; r < R; r++) qn_unpack_q6_K(w + r * ws, b, &wb[r]);
    for (int t = 0; t < T; t++) {
      QN_Q8K(a + t * as, cols, b);
      (void)bsums;
      for (int r = 0; r < R; r++) {
        int32x4_t isum = vdupq_n_s32(0);
        for (int k = 0; k < 16; k++) {
          isum = vmlaq_n_s32(isum, vdotq_s32(vdupq_n_s32(0), wb[r].q[k], vld1q_s8(aq + 16 * k)), wb[r].sc[k]);
        }
        acc[r][t] = vmlaq_n_f32(acc[r][t], vcvtq_f32_s32(isum), wb[r].d * da);
      }
    }
  }
  for (int r = 0; r < R; r++)
    for (int t = 0; t < T; t++) y[t * ys + r] = vaddvq_f32(acc[r][t]);
}
QN_GEMM(qn_q6_K)

#include "quant_low_k_neon.h"

/* ---- float formats ---- */

QN_INLINE float32x4_t qn_load_f32(const uint8_t *p) { return vld1q_f32((const float *)p); }
QN_INLINE float32x4_t qn_load_f16(const uint8_t *p) { return vcvt_f32_f16(vld1_f16((const __fp16 *)p)); }
QN_INLINE float32x4_t qn_load_bf16(const uint8_t *p) {
  return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16((const uint16_t *)p), 16));
}
QN_INLINE float qn_scalar_f32(const uint8_t *p) {
  float v;
  memcpy(&v, p, 4);
  return v;
}
QN_INLINE float qn_scalar_f16(const uint8_t *p) { return qn_half(p); }
QN_INLINE float qn_scalar_bf16(const uint8_t *p) {
  uint16_t h;
  memcpy(&h, p, 2);
  return quant_bf16_to_f32(h);
}

#define QN_TILE_FLOAT(NAME, LOAD, SCALAR, ESIZE)                                                                \
  QN_INLINE void NAME##_tile(const int R, const int T, int cols, const uint8_t *w, size_t ws, const uint8_t *a, \
                             size_t as, float *y, size_t ys) {                                                  \
    float32x4_t acc[QN_R][QN_T_FLOAT];                                                                          \
    for (int r = 0; r < R; r++)                                                                                 \
      for (int t = 0; t < T; t++) acc[r][t] = vdupq_n_f32(0);                                                   \
    int i = 0;                                                                                                  \
    for (; i + 4 <= cols; i += 4) {                                                                             \
      float32x4_t wv[QN_R];                                                                                     \
      for (int r = 0; r < R; r++) wv[r] = LOAD(w + r * ws + (size_t)i * (ESIZE));                                \
      for (int t = 0; t < T; t++) {                                                                             \
        const float32x4_t av = vld1q_f32((const float *)(a + t * as) + i);                                      \
        for (int r = 0; r < R; r++) acc[r][t] = vfmaq_f32(acc[r][t], wv[r], av);                                \
      }                                                                                                         \
    }                                                                                                           \
    for (int r = 0; r < R; r++)                                                                                 \
      for (int t = 0; t < T; t++) {                                                                             \
        float s = vaddvq_f32(acc[r][t]);                                                                        \
        const float *at = (const float *)(a + t * as);                                                          \
        for (int k = i; k < cols; k++) s += SCALAR(w + r * ws + (size_t)k * (ESIZE)) * at[k];                   \
        y[t * ys + r] = s;                                                                                      \
      }                                                                                                         \
  }

QN_TILE_FLOAT(qn_f32, qn_load_f32, qn_scalar_f32, 4)
QN_TILE_FLOAT(qn_f16, qn_load_f16, qn_scalar_f16, 2)
QN_TILE_FLOAT(qn_bf16, qn_load_bf16, qn_scalar_bf16, 2)
QN_GEMM_SHAPE(qn_f32, QN_T_FLOAT)
QN_GEMM_SHAPE(qn_f16, QN_T_FLOAT)
QN_GEMM_SHAPE(qn_bf16, QN_T_FLOAT)

const quant_kernel_table quant_kernels_neon = {
    .convert = {0}, /* the portable converters */
    .gemm =
        {
            [CAIRN_F32] = qn_f32,
            [CAIRN_F16] = qn_f16,
            [CAIRN_BF16] = qn_bf16,
            [CAIRN_Q4_0] = qn_q4_0,
            [CAIRN_Q4_1] = qn_q4_1,
            [CAIRN_Q5_0] = qn_q5_0,
            [CAIRN_Q5_1] = qn_q5_1,
            [CAIRN_Q8_0] = qn_q8_0,
            [CAIRN_MXFP4] = qn_mxfp4,
            [CAIRN_Q2_K] = qn_q2_K,
            [CAIRN_Q3_K] = qn_q3_K,
            [CAIRN_Q4_K] = qn_q4_K,
            [CAIRN_Q5_K] = qn_q5_K,
            [CAIRN_Q6_K] = qn_q6_K,
            [CAIRN_IQ4_XS] = qn_iq4_xs,
            [CAIRN_IQ4_NL] = qn_iq4_nl,
            [CAIRN_IQ1_S] = qn_iq1_s,
            [CAIRN_IQ1_M] = qn_iq1_m,
            [CAIRN_IQ2_XXS] = qn_iq2_xxs,
            [CAIRN_IQ2_XS] = qn_iq2_xs,
            [CAIRN_IQ2_S] = qn_iq2_s,
            [CAIRN_IQ3_XXS] = qn_iq3_xxs,
            [CAIRN_IQ3_S] = qn_iq3_s,
        },
};
#endif
