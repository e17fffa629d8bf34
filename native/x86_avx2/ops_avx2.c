/* Float-kernel primitives with AVX2, FMA and F16C: 8 lanes, scalar tails in portable C. */
#if defined(__x86_64__)
#include <immintrin.h>

#include "ops_portable.h"
#include "x86_prefetch.h"

static inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

static inline double hsum4d(__m256d v) {
  __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
  return _mm_cvtsd_f64(s);
}

/* Adds the 8 lanes of v, widened to f64, into acc. */
static inline __m256d add_widened(__m256d acc, __m256 v) {
  acc = _mm256_add_pd(acc, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
  return _mm256_add_pd(acc, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
}

/*
 * exp(x) to about 1 ulp: x = n*ln2 + r with |r| <= ln2/2, e^r by its degree-7 Taylor polynomial,
 * then 2^n applied as two halves so results that overflow, underflow or land in the subnormal
 * range still come out right. Inputs are clamped (NaN passes through) to keep n in range.
 */
static inline __m256 exp8(__m256 x) {
  x = _mm256_min_ps(_mm256_set1_ps(100.0f), _mm256_max_ps(_mm256_set1_ps(-150.0f), x));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606765330187e-6f), r);
  __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  const __m256i ni = _mm256_cvtps_epi32(n);
  const __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
  const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
  return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

static double avx2_sum_squares(const float *x, int64_t n) {
  __m256d acc0 = _mm256_setzero_pd(), acc1 = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
    acc0 = add_widened(acc0, _mm256_mul_ps(a, a));
    acc1 = add_widened(acc1, _mm256_mul_ps(b, b));
  }
  return hsum4d(_mm256_add_pd(acc0, acc1)) + portable_sum_squares(x + i, n - i);
}

static void avx2_scale_mul(const float *x, float s, const float *w, float *y, int64_t n) {
  const __m256 vs = _mm256_set1_ps(s);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vs), _mm256_loadu_ps(w + i)));
  }
  portable_scale_mul(x + i, s, w + i, y + i, n - i);
}

static void avx2_scale(float *y, float s, int64_t n) {
  const __m256 vs = _mm256_set1_ps(s);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(y + i), vs));
  portable_scale(y + i, s, n - i);
}

static float avx2_max(const float *x, int64_t n) {
  __m256 m = _mm256_set1_ps(-INFINITY);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_movehdup_ps(h));
  const float vm = _mm_cvtss_f32(h), tm = portable_max(x + i, n - i);
  return vm > tm ? vm : tm;
}

static double avx2_exp_sum(const float *x, float m, float *y, int64_t n) {
  const __m256 vm = _mm256_set1_ps(m);
  __m256d acc = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
    _mm256_storeu_ps(y + i, e);
    acc = add_widened(acc, e);
  }
  return hsum4d(acc) + portable_exp_sum(x + i, m, y + i, n - i);
}

static void avx2_swiglu(const float *g, const float *u, float *y, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 x = _mm256_loadu_ps(g + i);
    const __m256 silu = _mm256_div_ps(x, _mm256_add_ps(one, exp8(_mm256_sub_ps(zero, x))));
    _mm256_storeu_ps(y + i, _mm256_mul_ps(silu, _mm256_loadu_ps(u + i)));
  }
  portable_swiglu(g + i, u + i, y + i, n - i);
}

static void avx2_geglu(const float *g, const float *u, float *y, int64_t n, const float *table) {
  const __m256 lo = _mm256_set1_ps(-10.0f), hi = _mm256_set1_ps(10.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 x = _mm256_loadu_ps(g + i);
    const __m128i h = _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 v = _mm256_i32gather_ps(table, _mm256_cvtepu16_epi32(h), 4);
    v = _mm256_blendv_ps(v, x, _mm256_cmp_ps(x, hi, _CMP_GE_OQ));
    v = _mm256_mul_ps(v, _mm256_loadu_ps(u + i));
    /* Exactly zero below -10, as ggml, whatever u holds. */
    _mm256_storeu_ps(y + i, _mm256_blendv_ps(v, _mm256_setzero_ps(), _mm256_cmp_ps(x, lo, _CMP_LE_OQ)));
  }
  portable_geglu(g + i, u + i, y + i, n - i, table);
}

static void avx2_add(const float *a, const float *b, float *y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
  portable_add(a + i, b + i, y + i, n - i);
}

static void avx2_to_f16(const float *x, uint16_t *y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm_storeu_si128((__m128i *)(y + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  portable_to_f16(x + i, y + i, n - i);
}

static inline __m256 load_f16(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }

static void avx2_round_f16(float *x, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(x + i, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)));
  }
  portable_round_f16(x + i, n - i);
}

/* [sum(a0), sum(a1), sum(a2), sum(a3)]: four horizontal sums sharing one shuffle tree. */
static inline __m128 reduce4(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
  const __m256 t01 = _mm256_add_ps(_mm256_unpacklo_ps(a0, a1), _mm256_unpackhi_ps(a0, a1));
  const __m256 t23 = _mm256_add_ps(_mm256_unpacklo_ps(a2, a3), _mm256_unpackhi_ps(a2, a3));
  const __m256d lo = _mm256_unpacklo_pd(_mm256_castps_pd(t01), _mm256_castps_pd(t23));
  const __m256d hi = _mm256_unpackhi_pd(_mm256_castps_pd(t01), _mm256_castps_pd(t23));
  const __m256 t = _mm256_add_ps(_mm256_castpd_ps(lo), _mm256_castpd_ps(hi));
  return _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
}

static inline __m256 load_k16(const uint16_t *p) { return load_f16(p); }
static inline __m256 load_k32(const float *p) { return _mm256_loadu_ps(p); }
static inline float scalar_k16(const uint16_t *p) { return quant_half_to_f32(*p); }
static inline float scalar_k32(const float *p) { return *p; }

/*
 * Cache rows ahead of the one in use that the score and weighted-sum loops ask for: a thread reads
 * one KV head's slice of each row, rows a whole cache row apart, a stride the hardware prefetchers
 * lose at every 4 KiB page, so without this a decode token at depth waits on memory for each row.
 */
#define ROWS_AHEAD 16

static inline void prefetch_row(const void *p, int64_t bytes) {
  for (int64_t off = 0; off < bytes; off += 64) cairn_prefetch_t0((const char *)p + off);
}

/*
 * Score kernels. Every (row, head) score is the lane-wise sum over the first d - d % 8 columns,
 * the same reduce4 tree, then the leftover columns in order, whether four rows (one head) or four
 * heads (one row) were computed together, so the grouping never changes a result.
 */
#define DEFINE_DOT_ROWS(NAME, KT, LOAD, SCALAR)                                                                 \
  static inline __attribute__((always_inline)) void NAME(const KT *k, int64_t stride, int64_t rows, const float *q,   \
                                                         int64_t nh, int64_t d, float scale, float *out,          \
                                                         int64_t out_stride) {                                    \
    const int64_t dv = d & ~(int64_t)7;                                                                         \
    float s[4];                                                                                                 \
    int64_t g = 0;                                                                                              \
    for (; g + 3 <= nh; g += 4) {                                                                               \
      const int ng = nh - g < 4 ? (int)(nh - g) : 4;                                                            \
      const float *qs[4] = {q + g * d, q + (g + 1) * d, q + (g + 2) * d, ng == 4 ? q + (g + 3) * d : q + g * d}; \
      int64_t r = 0;                                                                                            \
      /* Two rows at a time: each query load serves two rows (loads, not products, bound this loop). */         \
      for (; r + 2 <= rows; r += 2) {                                                                           \
        const KT *kr = k + r * stride, *kr1 = kr + stride;                                                      \
        prefetch_row(kr + ROWS_AHEAD * stride, d * (int64_t)sizeof(KT));                                        \
        prefetch_row(kr1 + ROWS_AHEAD * stride, d * (int64_t)sizeof(KT));                                       \
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;         \
        for (int64_t i = 0; i < dv; i += 8) {                                                                   \
          const __m256 kv = LOAD(kr + i), kv1 = LOAD(kr1 + i);                                                  \
          const __m256 q0 = _mm256_loadu_ps(qs[0] + i), q1 = _mm256_loadu_ps(qs[1] + i);                        \
          a0 = _mm256_fmadd_ps(kv, q0, a0);                                                                     \
          b0 = _mm256_fmadd_ps(kv1, q0, b0);                                                                    \
          a1 = _mm256_fmadd_ps(kv, q1, a1);                                                                     \
          b1 = _mm256_fmadd_ps(kv1, q1, b1);                                                                    \
          const __m256 q2 = _mm256_loadu_ps(qs[2] + i), q3 = _mm256_loadu_ps(qs[3] + i);                        \
          a2 = _mm256_fmadd_ps(kv, q2, a2);                                                                     \
          b2 = _mm256_fmadd_ps(kv1, q2, b2);                                                                    \
          a3 = _mm256_fmadd_ps(kv, q3, a3);                                                                     \
          b3 = _mm256_fmadd_ps(kv1, q3, b3);                                                                    \
        }                                                                                                       \
        float s1[4];                                                                                            \
        _mm_storeu_ps(s, reduce4(a0, a1, a2, a3));                                                              \
        _mm_storeu_ps(s1, reduce4(b0, b1, b2, b3));                                                             \
        for (int j = 0; j < ng; j++) {                                                                          \
          for (int64_t i = dv; i < d; i++) s[j] += SCALAR(kr + i) * qs[j][i];                                   \
          for (int64_t i = dv; i < d; i++) s1[j] += SCALAR(kr1 + i) * qs[j][i];                                 \
          out[(g + j) * out_stride + r] = s[j] * scale;                                                         \
          out[(g + j) * out_stride + r + 1] = s1[j] * scale;                                                    \
        }                                                                                                       \
      }                                                                                                         \
      for (; r < rows; r++) {                                                                                   \
        const KT *kr = k + r * stride;                                                                          \
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                                             \
        for (int64_t i = 0; i < dv; i += 8) {                                                                   \
          const __m256 kv = LOAD(kr + i);                                                                       \
          a0 = _mm256_fmadd_ps(kv, _mm256_loadu_ps(qs[0] + i), a0);                                             \
          a1 = _mm256_fmadd_ps(kv, _mm256_loadu_ps(qs[1] + i), a1);                                             \
          a2 = _mm256_fmadd_ps(kv, _mm256_loadu_ps(qs[2] + i), a2);                                             \
          a3 = _mm256_fmadd_ps(kv, _mm256_loadu_ps(qs[3] + i), a3);                                             \
        }                                                                                                       \
        _mm_storeu_ps(s, reduce4(a0, a1, a2, a3));                                                              \
        for (int j = 0; j < ng; j++) {                                                                          \
          for (int64_t i = dv; i < d; i++) s[j] += SCALAR(kr + i) * qs[j][i];                                   \
          out[(g + j) * out_stride + r] = s[j] * scale;                                                         \
        }                                                                                                       \
      }                                                                                                         \
    }                                                                                                           \
    for (; g < nh; g++) {                                                                                       \
      const float *qg = q + g * d;                                                                              \
      float *og = out + g * out_stride;                                                                         \
      for (int64_t r = 0; r < rows; r += 4) {                                                                   \
        const int nr = rows - r < 4 ? (int)(rows - r) : 4;                                                      \
        for (int j = 0; j < 4; j++) prefetch_row(k + (r + ROWS_AHEAD + j) * stride, d * (int64_t)sizeof(KT));   \
        const KT *ks[4] = {k + r * stride, nr > 1 ? k + (r + 1) * stride : k + r * stride,                      \
                           nr > 2 ? k + (r + 2) * stride : k + r * stride,                                      \
                           nr > 3 ? k + (r + 3) * stride : k + r * stride};                                     \
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                                             \
        for (int64_t i = 0; i < dv; i += 8) {                                                                   \
          const __m256 qv = _mm256_loadu_ps(qg + i);                                                            \
          a0 = _mm256_fmadd_ps(LOAD(ks[0] + i), qv, a0);                                                        \
          a1 = _mm256_fmadd_ps(LOAD(ks[1] + i), qv, a1);                                                        \
          a2 = _mm256_fmadd_ps(LOAD(ks[2] + i), qv, a2);                                                        \
          a3 = _mm256_fmadd_ps(LOAD(ks[3] + i), qv, a3);                                                        \
        }                                                                                                       \
        _mm_storeu_ps(s, reduce4(a0, a1, a2, a3));                                                              \
        for (int j = 0; j < nr; j++) {                                                                          \
          for (int64_t i = dv; i < d; i++) s[j] += SCALAR(ks[j] + i) * qg[i];                                   \
          og[r + j] = s[j] * scale;                                                                             \
        }                                                                                                       \
      }                                                                                                         \
    }                                                                                                           \
  }

DEFINE_DOT_ROWS(avx2_dot_rows_f16_body, uint16_t, load_k16, scalar_k16)
DEFINE_DOT_ROWS(avx2_dot_rows_f32_body, float, load_k32, scalar_k32)

/* Head sizes 64 and 128 as constants: the same operations in the same order, so the same results
   bit for bit. */
CAIRN_DOT_ROWS_HEAD_SIZES(avx2_dot_rows_f16, uint16_t)
CAIRN_DOT_ROWS_HEAD_SIZES(avx2_dot_rows_f32, float)

/*
 * Weighted sums for up to four heads at once: 16 output columns per head stay in registers while
 * the rows stream past (then 8, then single leftovers), each V chunk converted once for all heads.
 */
static inline __attribute__((always_inline)) void wsum_heads(const uint16_t *v16, const float *v32, int64_t stride,
                                                             int64_t rows, const float *w, int64_t w_stride,
                                                             const int ng, int64_t d, float *out) {
  int64_t c = 0;
  for (; c + 16 <= d; c += 16) {
    __m256 acc[4][2];
    for (int g = 0; g < ng; g++) {
      acc[g][0] = _mm256_loadu_ps(out + g * d + c);
      acc[g][1] = _mm256_loadu_ps(out + g * d + c + 8);
    }
    for (int64_t r = 0; r < rows; r++) {
      const int64_t at = r * stride + c;
      if (c == 0) prefetch_row(v16 ? (const void *)(v16 + at + ROWS_AHEAD * stride) : (const void *)(v32 + at + ROWS_AHEAD * stride), d * (v16 ? 2 : 4));
      const __m256 v0 = v16 ? load_f16(v16 + at) : _mm256_loadu_ps(v32 + at);
      const __m256 v1 = v16 ? load_f16(v16 + at + 8) : _mm256_loadu_ps(v32 + at + 8);
      for (int g = 0; g < ng; g++) {
        const __m256 wr = _mm256_set1_ps(w[g * w_stride + r]);
        acc[g][0] = _mm256_fmadd_ps(wr, v0, acc[g][0]);
        acc[g][1] = _mm256_fmadd_ps(wr, v1, acc[g][1]);
      }
    }
    for (int g = 0; g < ng; g++) {
      _mm256_storeu_ps(out + g * d + c, acc[g][0]);
      _mm256_storeu_ps(out + g * d + c + 8, acc[g][1]);
    }
  }
  for (; c + 8 <= d; c += 8) {
    __m256 acc[4];
    for (int g = 0; g < ng; g++) acc[g] = _mm256_loadu_ps(out + g * d + c);
    for (int64_t r = 0; r < rows; r++) {
      const int64_t at = r * stride + c;
      const __m256 v0 = v16 ? load_f16(v16 + at) : _mm256_loadu_ps(v32 + at);
      for (int g = 0; g < ng; g++) acc[g] = _mm256_fmadd_ps(_mm256_set1_ps(w[g * w_stride + r]), v0, acc[g]);
    }
    for (int g = 0; g < ng; g++) _mm256_storeu_ps(out + g * d + c, acc[g]);
  }
  for (; c < d; c++) {
    for (int g = 0; g < ng; g++) {
      float a = out[g * d + c];
      for (int64_t r = 0; r < rows; r++) {
        const int64_t at = r * stride + c;
        a = fmaf(w[g * w_stride + r], v16 ? quant_half_to_f32(v16[at]) : v32[at], a);
      }
      out[g * d + c] = a;
    }
  }
}

static void wsum_rows(const uint16_t *v16, const float *v32, int64_t stride, int64_t rows, const float *w,
                      int64_t w_stride, int64_t nh, int64_t d, float *out) {
  CAIRN_FOR_HEAD_GROUPS(nh, g, ng, wsum_heads(v16, v32, stride, rows, w + g * w_stride, w_stride, ng, d, out + g * d));
}

static void avx2_wsum_rows_f16(const uint16_t *v, int64_t stride, int64_t rows, const float *w, int64_t w_stride,
                               int64_t nh, int64_t d, float *out) {
  wsum_rows(v, NULL, stride, rows, w, w_stride, nh, d, out);
}

static void avx2_wsum_rows_f32(const float *v, int64_t stride, int64_t rows, const float *w, int64_t w_stride,
                               int64_t nh, int64_t d, float *out) {
  wsum_rows(NULL, v, stride, rows, w, w_stride, nh, d, out);
}

/* Signed 8-bit products of 32 pairs, summed in adjacent pairs and then pairs again: 8 int32 lanes whose sum is the
   exact dot (maddubs needs one unsigned side: |k|, given, and q*sign(k)). */
static inline __m256i dot_i8_lanes(__m256i abs_k, __m256i k, __m256i q) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(abs_k, _mm256_sign_epi8(q, k)), _mm256_set1_epi16(1));
}

/* Lane j: the sum of p[j]'s 8 lanes (exact: integers). One shuffle tree for the 8 sums. */
static inline __m256i sum_lanes_x8(const __m256i p[8]) {
  __m256i a[4], b[2];
  for (int i = 0; i < 4; i++) a[i] = _mm256_add_epi32(_mm256_unpacklo_epi32(p[2 * i], p[2 * i + 1]), _mm256_unpackhi_epi32(p[2 * i], p[2 * i + 1]));
  for (int i = 0; i < 2; i++) b[i] = _mm256_add_epi32(_mm256_unpacklo_epi64(a[2 * i], a[2 * i + 1]), _mm256_unpackhi_epi64(a[2 * i], a[2 * i + 1]));
  return _mm256_add_epi32(_mm256_permute2x128_si256(b[0], b[1], 0x20), _mm256_permute2x128_si256(b[0], b[1], 0x31));
}

/* The f16 scales of the Q8_0 blocks at p, p + stride, ..., p + 7 stride, as f32. */
static inline __m256 q8_scales8(const uint8_t *p, int64_t stride) {
  __m128i h = _mm_cvtsi32_si128(*(const uint16_t *)p);
  h = _mm_insert_epi16(h, *(const uint16_t *)(p + stride), 1);
  h = _mm_insert_epi16(h, *(const uint16_t *)(p + 2 * stride), 2);
  h = _mm_insert_epi16(h, *(const uint16_t *)(p + 3 * stride), 3);
  h = _mm_insert_epi16(h, *(const uint16_t *)(p + 4 * stride), 4);
  h = _mm_insert_epi16(h, *(const uint16_t *)(p + 5 * stride), 5);
  h = _mm_insert_epi16(h, *(const uint16_t *)(p + 6 * stride), 6);
  h = _mm_insert_epi16(h, *(const uint16_t *)(p + 7 * stride), 7);
  return _mm256_cvtph_ps(h);
}

/*
 * Q8_0 scores, 8 cache rows at a time: each row's block dot as 8 int32 lanes, the 8 rows' lanes
 * summed by one shuffle tree so that lane j ends with row j's exact integer dot (a horizontal sum
 * per row and head cost as much as the dots), then per head and block, for the 8 rows at once,
 * s = fma(float(dot), dk x dq, s) in block order, and s x scale: llama.cpp's arithmetic per block
 * (the AVX-512 kernel's too, so the two levels agree). Each tile's |k| is taken once for all heads.
 * Rows past the last whole 8 take the same steps one at a time, so a score never depends on its
 * row's place in a tile.
 */
#define Q8_TILE_ROWS 8
/* Blocks per head a tile holds (head sizes up to 256); larger heads take the rows one at a time. */
#define Q8_TILE_BLOCKS 8

static void q8_scores_row(const block_q8_0 *kb, const block_q8_0 *qb, int64_t nh, int64_t nb, float scale, float *out, int64_t out_stride) {
  for (int64_t g = 0; g < nh; g++) {
    float sc = 0.f;
    for (int64_t b = 0; b < nb; b++) {
      const block_q8_0 *x = qb + g * nb + b;
      const __m256i kv = _mm256_loadu_si256((const __m256i *)kb[b].qs);
      const __m256i t = dot_i8_lanes(_mm256_abs_epi8(kv), kv, _mm256_loadu_si256((const __m256i *)x->qs));
      __m128i h = _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
      h = _mm_add_epi32(h, _mm_unpackhi_epi64(h, h));
      h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 1));
      sc = fmaf((float)_mm_cvtsi128_si32(h), q8_scale(kb + b) * q8_scale(x), sc);
    }
    out[g * out_stride] = sc * scale;
  }
}

static inline __attribute__((always_inline)) void q8_scores_tile(const uint8_t *k, int64_t stride, const block_q8_0 *qb, int64_t nh,
                                                                 const int64_t nb, float scale, float *out, int64_t out_stride) {
  __m256i abs_k[Q8_TILE_BLOCKS][Q8_TILE_ROWS];
  __m256 dk[Q8_TILE_BLOCKS];
  for (int64_t b = 0; b < nb; b++) {
    const size_t off = (size_t)b * sizeof(block_q8_0);
    for (int j = 0; j < Q8_TILE_ROWS; j++) abs_k[b][j] = _mm256_abs_epi8(_mm256_loadu_si256((const __m256i *)(k + j * stride + off + 2)));
    dk[b] = q8_scales8(k + off, stride);
  }
  for (int64_t g = 0; g < nh; g++) {
    __m256 sc = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
      const block_q8_0 *x = qb + g * nb + b;
      const __m256i qv = _mm256_loadu_si256((const __m256i *)x->qs);
      const size_t off = (size_t)b * sizeof(block_q8_0) + 2;
      __m256i p[Q8_TILE_ROWS];
      for (int j = 0; j < Q8_TILE_ROWS; j++) p[j] = dot_i8_lanes(abs_k[b][j], _mm256_loadu_si256((const __m256i *)(k + j * stride + off)), qv);
      const __m256 dot = _mm256_cvtepi32_ps(sum_lanes_x8(p));
      sc = _mm256_fmadd_ps(dot, _mm256_mul_ps(dk[b], _mm256_set1_ps(q8_scale(x))), sc);
    }
    _mm256_storeu_ps(out + g * out_stride, _mm256_mul_ps(sc, _mm256_set1_ps(scale)));
  }
}

static void avx2_dot_rows_q8(const uint8_t *k, int64_t stride, int64_t rows, const uint8_t *q, int64_t nh, int64_t d,
                             float scale, float *out, int64_t out_stride) {
  const int64_t nb = d / QK;
  const block_q8_0 *qb = (const block_q8_0 *)q;
  int64_t r = 0;
  if (nb <= Q8_TILE_BLOCKS) {
    for (; r + Q8_TILE_ROWS <= rows; r += Q8_TILE_ROWS) {
      const uint8_t *kr = k + r * stride;
      for (int64_t off = 0; off < Q8_TILE_ROWS * stride; off += 64) cairn_prefetch_t0(kr + ROWS_AHEAD * stride + off);
      if (nb == 2) q8_scores_tile(kr, stride, qb, nh, 2, scale, out + r, out_stride);
      else if (nb == 4) q8_scores_tile(kr, stride, qb, nh, 4, scale, out + r, out_stride);
      else if (nb == 1) q8_scores_tile(kr, stride, qb, nh, 1, scale, out + r, out_stride);
      else q8_scores_tile(kr, stride, qb, nh, nb, scale, out + r, out_stride);
    }
  }
  for (; r < rows; r++) {
    prefetch_row(k + (r + ROWS_AHEAD) * stride, nb * (int64_t)sizeof(block_q8_0));
    q8_scores_row((const block_q8_0 *)(k + r * stride), qb, nh, nb, scale, out + r, out_stride);
  }
}

/*
 * Q8_0 weighted sums for up to four heads, WSUM_Q8_ROWS rows at a time: first each row's block
 * scales go into the heads' weights (w x dv, 8 rows per vector), then for each 16 columns (half a
 * block) the heads' sums stay in registers while the rows' quants, only widened to f32, stream past
 * (scaling each quant by its block scale, once per column, had cost a third of the work). Per row
 * and head the sum takes fma((w x dv), q, acc) where llama.cpp's dequantized rows take fma(w, dv x
 * q, acc) (dv x q is exact in f32): one more rounding, of 2^-24, as the AVX-512 kernel.
 */
#define WSUM_Q8_ROWS 32

static inline __attribute__((always_inline)) void wsum_heads_q8(const uint8_t *v, int64_t stride, int64_t rows, const float *w,
                                                                int64_t w_stride, const int ng, int64_t d, float *out) {
  const int64_t nb = d / QK;
  float wd[4][WSUM_Q8_ROWS] __attribute__((aligned(32)));
  /* One block column at a time: the weights of its rows scaled once, then its two halves. */
  for (int64_t b = 0; b < nb; b++) {
    const uint8_t *vb = v + b * (int64_t)sizeof(block_q8_0);
    for (int64_t s0 = 0; s0 < rows; s0 += WSUM_Q8_ROWS) {
      const int64_t n = rows - s0 < WSUM_Q8_ROWS ? rows - s0 : WSUM_Q8_ROWS;
      const uint8_t *vs = vb + s0 * stride;
      if (b == 0) {
        for (int64_t off = 0; off < n * stride; off += 64) cairn_prefetch_t0(vs + WSUM_Q8_ROWS * stride + off);
      }
      int64_t i = 0;
      for (; i + 8 <= n; i += 8) {
        const __m256 dv = q8_scales8(vs + i * stride, stride);
        for (int g = 0; g < ng; g++) _mm256_store_ps(wd[g] + i, _mm256_mul_ps(_mm256_loadu_ps(w + g * w_stride + s0 + i), dv));
      }
      for (; i < n; i++) {
        const float dv = q8_scale((const block_q8_0 *)(vs + i * stride));
        for (int g = 0; g < ng; g++) wd[g][i] = w[g * w_stride + s0 + i] * dv;
      }
      for (int h = 0; h < 2; h++) {
        float *o = out + b * QK + 16 * h;
        __m256 acc[4][2];
        for (int g = 0; g < ng; g++) acc[g][0] = _mm256_loadu_ps(o + g * d), acc[g][1] = _mm256_loadu_ps(o + g * d + 8);
        const uint8_t *qs = vs + 2 + 16 * h;
        for (int64_t r = 0; r < n; r++) {
          const __m128i x = _mm_loadu_si128((const __m128i *)(qs + r * stride));
          const __m256 v0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(x));
          const __m256 v1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(x, 8)));
          for (int g = 0; g < ng; g++) {
            const __m256 wr = _mm256_broadcast_ss(wd[g] + r);
            acc[g][0] = _mm256_fmadd_ps(wr, v0, acc[g][0]);
            acc[g][1] = _mm256_fmadd_ps(wr, v1, acc[g][1]);
          }
        }
        for (int g = 0; g < ng; g++) _mm256_storeu_ps(o + g * d, acc[g][0]), _mm256_storeu_ps(o + g * d + 8, acc[g][1]);
      }
    }
  }
}

static void avx2_wsum_rows_q8(const uint8_t *v, int64_t stride, int64_t rows, const float *w, int64_t w_stride, int64_t nh,
                              int64_t d, float *out) {
  CAIRN_FOR_HEAD_GROUPS(nh, g, ng, wsum_heads_q8(v, stride, rows, w + g * w_stride, w_stride, ng, d, out + g * d));
}

const cairn_ops_table cairn_ops_avx2 = {
    avx2_sum_squares,   avx2_scale_mul,     avx2_scale,         avx2_max,          avx2_exp_sum,
    avx2_swiglu,        avx2_geglu,         avx2_add,           avx2_to_f16,       avx2_round_f16,
    avx2_dot_rows_f16,  avx2_dot_rows_f32,  avx2_wsum_rows_f16, avx2_wsum_rows_f32, avx2_dot_rows_q8,
    avx2_wsum_rows_q8,  portable_dot_tiles_q8, portable_wsum_tiles_q8,
};
#endif
