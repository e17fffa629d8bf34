/*
 * arm64 kernels (ARMv8.2-A with fp16 and dotprod): the portable C, which the compiler vectorizes
 * where it may, and hand-written attention loops, exponentials (softmax, SwiGLU) and maximum. The
 * attention's score and weighted-sum loops are in-order float sums the compiler must leave scalar
 * (without fast-math it may not reorder them), and expf is a libm call per element, so on Apple
 * silicon a decode token at depth would spend its time in scalar code; here each
 * (row, head) score is the same lane-wise sum and reduction whatever the rows and heads computed
 * beside it, so a token's result does not depend on its batch.
 */
#if defined(__aarch64__)
#include <arm_neon.h>

#include "ops_portable.h"

#define ON_INLINE static inline __attribute__((always_inline))

/* Cache rows ahead of the one in use that the loops ask for (a KV head's slice, rows a whole cache row apart). */
#define ROWS_AHEAD 16

ON_INLINE void on_prefetch(const void *p, int64_t bytes) {
  for (int64_t off = 0; off < bytes; off += 64) __builtin_prefetch((const char *)p + off);
}

/*
 * exp(x) to about 1 ulp, 4 lanes: x = n*ln2 + r with |r| <= ln2/2, e^r by its degree-7 Taylor
 * polynomial, times 2^n applied in two steps so results down to the subnormals come out right.
 * The clamp (NaN passes through) keeps n in range for infinite inputs.
 */
ON_INLINE float32x4_t on_exp4(float32x4_t x) {
  x = vminq_f32(vdupq_n_f32(100.0f), vmaxq_f32(vdupq_n_f32(-150.0f), x));
  const float32x4_t n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(1.44269504088896341f)));
  float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(0.693145751953125f));
  r = vfmsq_f32(r, n, vdupq_n_f32(1.428606765330187e-6f));
  float32x4_t p = vdupq_n_f32(1.0f / 5040.0f);
  p = vfmaq_f32(vdupq_n_f32(1.0f / 720.0f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.0f / 120.0f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.0f / 24.0f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.0f / 6.0f), p, r);
  p = vfmaq_f32(vdupq_n_f32(0.5f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
  const int32x4_t ni = vcvtq_s32_f32(n), n1 = vshrq_n_s32(ni, 1), n2 = vsubq_s32(ni, n1);
  const float32x4_t s1 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n1, vdupq_n_s32(127)), 23));
  const float32x4_t s2 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n2, vdupq_n_s32(127)), 23));
  return vmulq_f32(vmulq_f32(p, s1), s2);
}

/* The largest value, NaNs ignored (as the portable loop: a NaN is never greater). */
static float neon_max(const float *x, int64_t n) {
  float32x4_t acc = vdupq_n_f32(-INFINITY);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) acc = vmaxnmq_f32(acc, vld1q_f32(x + i));
  float m = vmaxnmvq_f32(acc);
  for (; i < n; i++) m = x[i] > m ? x[i] : m;
  return m;
}

/* y = exp(x - m) and its sum in f64 (lanes added at the end); the tail goes through the same vector exp. */
static double neon_exp_sum(const float *x, float m, float *y, int64_t n) {
  const float32x4_t vm = vdupq_n_f32(m);
  float64x2_t a0 = vdupq_n_f64(0.0), a1 = a0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const float32x4_t e = on_exp4(vsubq_f32(vld1q_f32(x + i), vm));
    vst1q_f32(y + i, e);
    a0 = vaddq_f64(a0, vcvt_f64_f32(vget_low_f32(e)));
    a1 = vaddq_f64(a1, vcvt_high_f64_f32(e));
  }
  double sum = vaddvq_f64(vaddq_f64(a0, a1));
  if (i < n) {
    float t[4] = {0.f, 0.f, 0.f, 0.f};
    for (int64_t j = i; j < n; j++) t[j - i] = x[j];
    vst1q_f32(t, on_exp4(vsubq_f32(vld1q_f32(t), vm)));
    for (int64_t j = i; j < n; j++) y[j] = t[j - i], sum += (double)t[j - i];
  }
  return sum;
}

ON_INLINE float32x4_t on_swiglu4(float32x4_t g, float32x4_t u) {
  return vmulq_f32(vdivq_f32(g, vaddq_f32(vdupq_n_f32(1.0f), on_exp4(vnegq_f32(g)))), u);
}

/* y = silu(g) * u. */
static void neon_swiglu(const float *g, const float *u, float *y, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, on_swiglu4(vld1q_f32(g + i), vld1q_f32(u + i)));
  if (i < n) {
    float tg[4] = {0.f, 0.f, 0.f, 0.f}, tu[4] = {0.f, 0.f, 0.f, 0.f};
    for (int64_t j = i; j < n; j++) tg[j - i] = g[j], tu[j - i] = u[j];
    vst1q_f32(tg, on_swiglu4(vld1q_f32(tg), vld1q_f32(tu)));
    for (int64_t j = i; j < n; j++) y[j] = tg[j - i];
  }
}

/* 8 f16 or f32 values of K or V as two f32 vectors. */
ON_INLINE void on_load8_f16(const uint16_t *p, float32x4_t *lo, float32x4_t *hi) {
  const float16x8_t h = vld1q_f16((const __fp16 *)p);
  *lo = vcvt_f32_f16(vget_low_f16(h));
  *hi = vcvt_high_f32_f16(h);
}
ON_INLINE void on_load8_f32(const float *p, float32x4_t *lo, float32x4_t *hi) {
  *lo = vld1q_f32(p);
  *hi = vld1q_f32(p + 4);
}
ON_INLINE float on_scalar_f16(const uint16_t *p) { return quant_half_to_f32(*p); }
ON_INLINE float on_scalar_f32(const float *p) { return *p; }

/*
 * Scores of up to four heads (ng, constant where inlined) against each row: per head two 4-lane
 * sums over the first d - d % 8 columns, added and reduced, then the leftover columns in order.
 * Each K chunk is loaded and converted once for all heads.
 */
#define DEFINE_NEON_DOT(NAME, KT, LOAD8, SCALAR)                                                                      \
  ON_INLINE void NAME##_heads(const KT *k, int64_t stride, int64_t rows, const float *q, const int ng, int64_t d,     \
                              float scale, float *out, int64_t out_stride) {                                          \
    const int64_t dv = d & ~(int64_t)7;                                                                               \
    for (int64_t r = 0; r < rows; r++) {                                                                              \
      const KT *kr = k + r * stride;                                                                                  \
      on_prefetch(kr + ROWS_AHEAD * stride, d * (int64_t)sizeof(KT));                                                 \
      float32x4_t a[4][2];                                                                                            \
      for (int g = 0; g < ng; g++) a[g][0] = a[g][1] = vdupq_n_f32(0.f);                                              \
      for (int64_t i = 0; i < dv; i += 8) {                                                                           \
        float32x4_t lo, hi;                                                                                           \
        LOAD8(kr + i, &lo, &hi);                                                                                      \
        for (int g = 0; g < ng; g++) {                                                                                \
          a[g][0] = vfmaq_f32(a[g][0], lo, vld1q_f32(q + g * d + i));                                                 \
          a[g][1] = vfmaq_f32(a[g][1], hi, vld1q_f32(q + g * d + i + 4));                                             \
        }                                                                                                             \
      }                                                                                                               \
      for (int g = 0; g < ng; g++) {                                                                                  \
        float s = vaddvq_f32(vaddq_f32(a[g][0], a[g][1]));                                                            \
        for (int64_t i = dv; i < d; i++) s += SCALAR(kr + i) * q[g * d + i];                                          \
        out[g * out_stride + r] = s * scale;                                                                          \
      }                                                                                                               \
    }                                                                                                                 \
  }                                                                                                                   \
  static void NAME(const KT *k, int64_t stride, int64_t rows, const float *q, int64_t nh, int64_t d, float scale,      \
                   float *out, int64_t out_stride) {                                                                  \
    CAIRN_FOR_HEAD_GROUPS(nh, g, ng, NAME##_heads(k, stride, rows, q + g * d, ng, d, scale, out + g * out_stride, out_stride)); \
  }

DEFINE_NEON_DOT(neon_dot_rows_f16, uint16_t, on_load8_f16, on_scalar_f16)
DEFINE_NEON_DOT(neon_dot_rows_f32, float, on_load8_f32, on_scalar_f32)

/*
 * Weighted sums of up to four heads: 16 output columns per head stay in registers while the rows
 * stream past (then 8, then single leftovers), each V chunk converted once for all heads.
 */
#define DEFINE_NEON_WSUM(NAME, VT, LOAD8, SCALAR)                                                                     \
  ON_INLINE void NAME##_heads(const VT *v, int64_t stride, int64_t rows, const float *w, int64_t w_stride,            \
                              const int ng, int64_t d, float *out) {                                                  \
    int64_t c = 0;                                                                                                    \
    for (; c + 16 <= d; c += 16) {                                                                                    \
      float32x4_t acc[4][4];                                                                                          \
      for (int g = 0; g < ng; g++)                                                                                    \
        for (int j = 0; j < 4; j++) acc[g][j] = vld1q_f32(out + g * d + c + 4 * j);                                  \
      for (int64_t r = 0; r < rows; r++) {                                                                            \
        const VT *vr = v + r * stride + c;                                                                            \
        if (c == 0) on_prefetch(v + (r + ROWS_AHEAD) * stride, d * (int64_t)sizeof(VT));                              \
        float32x4_t x[4];                                                                                             \
        LOAD8(vr, &x[0], &x[1]);                                                                                      \
        LOAD8(vr + 8, &x[2], &x[3]);                                                                                  \
        for (int g = 0; g < ng; g++) {                                                                                \
          const float wr = w[g * w_stride + r];                                                                       \
          for (int j = 0; j < 4; j++) acc[g][j] = vfmaq_n_f32(acc[g][j], x[j], wr);                                   \
        }                                                                                                             \
      }                                                                                                               \
      for (int g = 0; g < ng; g++)                                                                                    \
        for (int j = 0; j < 4; j++) vst1q_f32(out + g * d + c + 4 * j, acc[g][j]);                                    \
    }                                                                                                                 \
    for (; c + 8 <= d; c += 8) {                                                                                      \
      float32x4_t acc[4][2];                                                                                          \
      for (int g = 0; g < ng; g++) acc[g][0] = vld1q_f32(out + g * d + c), acc[g][1] = vld1q_f32(out + g * d + c + 4); \
      for (int64_t r = 0; r < rows; r++) {                                                                            \
        float32x4_t lo, hi;                                                                                           \
        LOAD8(v + r * stride + c, &lo, &hi);                                                                          \
        for (int g = 0; g < ng; g++) {                                                                                \
          acc[g][0] = vfmaq_n_f32(acc[g][0], lo, w[g * w_stride + r]);                                                \
          acc[g][1] = vfmaq_n_f32(acc[g][1], hi, w[g * w_stride + r]);                                                \
        }                                                                                                             \
      }                                                                                                               \
      for (int g = 0; g < ng; g++) vst1q_f32(out + g * d + c, acc[g][0]), vst1q_f32(out + g * d + c + 4, acc[g][1]);  \
    }                                                                                                                 \
    for (; c < d; c++) {                                                                                              \
      for (int g = 0; g < ng; g++) {                                                                                  \
        float a = out[g * d + c];                                                                                     \
        for (int64_t r = 0; r < rows; r++) a = fmaf(w[g * w_stride + r], SCALAR(v + r * stride + c), a);             \
        out[g * d + c] = a;                                                                                           \
      }                                                                                                               \
    }                                                                                                                 \
  }                                                                                                                   \
  static void NAME(const VT *v, int64_t stride, int64_t rows, const float *w, int64_t w_stride, int64_t nh, int64_t d, \
                   float *out) {                                                                                      \
    CAIRN_FOR_HEAD_GROUPS(nh, g, ng, NAME##_heads(v, stride, rows, w + g * w_stride, w_stride, ng, d, out + g * d)); \
  }

DEFINE_NEON_WSUM(neon_wsum_rows_f16, uint16_t, on_load8_f16, on_scalar_f16)
DEFINE_NEON_WSUM(neon_wsum_rows_f32, float, on_load8_f32, on_scalar_f32)

/*
 * Q8_0 scores with the portable arithmetic (each block's exact integer dot, by the dot-product
 * instruction, times both block scales, added in block order), so they equal the scalar path's
 * bit for bit. Each K block is loaded once for all heads of a group of four.
 */
static void neon_dot_rows_q8(const uint8_t *k, int64_t stride, int64_t rows, const uint8_t *q, int64_t nh, int64_t d,
                             float scale, float *out, int64_t out_stride) {
  const int64_t nb = d / QK;
  for (int64_t g0 = 0; g0 < nh; g0 += 4) {
    const int ng = nh - g0 < 4 ? (int)(nh - g0) : 4;
    const block_q8_0 *qb = (const block_q8_0 *)q + g0 * nb;
    for (int64_t r = 0; r < rows; r++) {
      const block_q8_0 *kb = (const block_q8_0 *)(k + r * stride);
      on_prefetch(k + (r + ROWS_AHEAD) * stride, nb * (int64_t)sizeof(block_q8_0));
      float sum[4] = {0.f, 0.f, 0.f, 0.f};
      for (int64_t b = 0; b < nb; b++) {
        const int8x16_t k0 = vld1q_s8((const int8_t *)kb[b].qs), k1 = vld1q_s8((const int8_t *)kb[b].qs + 16);
        const float dk = quant_half_to_f32(kb[b].d);
        for (int g = 0; g < ng; g++) {
          const block_q8_0 *x = qb + g * nb + b;
          int32x4_t acc = vdotq_s32(vdupq_n_s32(0), k0, vld1q_s8((const int8_t *)x->qs));
          acc = vdotq_s32(acc, k1, vld1q_s8((const int8_t *)x->qs + 16));
          sum[g] += (float)vaddvq_s32(acc) * (dk * quant_half_to_f32(x->d));
        }
      }
      for (int g = 0; g < ng; g++) out[(g0 + g) * out_stride + r] = sum[g] * scale;
    }
  }
}

/*
 * Q8_0 weighted sums: 16 columns (half a block) per head in registers while the rows stream past,
 * each half block dequantized once (d * q, as the portable code) for all four heads.
 */
ON_INLINE void neon_wsum_heads_q8(const uint8_t *v, int64_t stride, int64_t rows, const float *w, int64_t w_stride,
                                  const int ng, int64_t d, float *out) {
  for (int64_t c = 0; c < d; c += 16) {
    float32x4_t acc[4][4];
    for (int g = 0; g < ng; g++)
      for (int j = 0; j < 4; j++) acc[g][j] = vld1q_f32(out + g * d + c + 4 * j);
    for (int64_t r = 0; r < rows; r++) {
      if (c == 0) on_prefetch(v + (r + ROWS_AHEAD) * stride, d / QK * (int64_t)sizeof(block_q8_0));
      const block_q8_0 *b = (const block_q8_0 *)(v + r * stride) + c / QK;
      const float32x4_t dv = vdupq_n_f32(quant_half_to_f32(b->d));
      const int8x16_t qs = vld1q_s8((const int8_t *)b->qs + c % QK);
      const int16x8_t h0 = vmovl_s8(vget_low_s8(qs)), h1 = vmovl_high_s8(qs);
      const float32x4_t x[4] = {vmulq_f32(dv, vcvtq_f32_s32(vmovl_s16(vget_low_s16(h0)))), vmulq_f32(dv, vcvtq_f32_s32(vmovl_high_s16(h0))),
                                vmulq_f32(dv, vcvtq_f32_s32(vmovl_s16(vget_low_s16(h1)))), vmulq_f32(dv, vcvtq_f32_s32(vmovl_high_s16(h1)))};
      for (int g = 0; g < ng; g++) {
        const float wr = w[g * w_stride + r];
        for (int j = 0; j < 4; j++) acc[g][j] = vfmaq_n_f32(acc[g][j], x[j], wr);
      }
    }
    for (int g = 0; g < ng; g++)
      for (int j = 0; j < 4; j++) vst1q_f32(out + g * d + c + 4 * j, acc[g][j]);
  }
}

static void neon_wsum_rows_q8(const uint8_t *v, int64_t stride, int64_t rows, const float *w, int64_t w_stride, int64_t nh,
                              int64_t d, float *out) {
  CAIRN_FOR_HEAD_GROUPS(nh, g, ng, neon_wsum_heads_q8(v, stride, rows, w + g * w_stride, w_stride, ng, d, out + g * d));
}

const cairn_ops_table cairn_ops_neon = {
    portable_sum_squares,  portable_scale_mul,    portable_scale,     neon_max,          neon_exp_sum,
    neon_swiglu,           portable_geglu,        portable_add,       portable_to_f16,   portable_round_f16,
    neon_dot_rows_f16,     neon_dot_rows_f32,     neon_wsum_rows_f16, neon_wsum_rows_f32, neon_dot_rows_q8,
    neon_wsum_rows_q8,     portable_dot_tiles_q8, portable_wsum_tiles_q8,
};
#endif
