/* Float-kernel primitives with AVX-512: 16 lanes, tails handled by masked loads and stores. */
#if defined(__x86_64__)
#include <immintrin.h>

#include "ops_portable.h"
#include "x86_prefetch.h"
#include "transpose16.h"

#define F16_ROUND (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)

static inline __mmask16 tail_mask(int64_t left) { return (__mmask16)(left >= 16 ? 0xffff : (1u << left) - 1); }

/* Adds the 16 lanes of v, widened to f64, into acc. */
static inline __m512d add_widened(__m512d acc, __m512 v) {
  acc = _mm512_add_pd(acc, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
  return _mm512_add_pd(acc, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
}

/*
 * exp(x) to about 1 ulp: x = n*ln2 + r with |r| <= ln2/2, e^r by its degree-7 Taylor polynomial,
 * and scalef applies 2^n with correct overflow, underflow and subnormals. The clamp (NaN passes
 * through) keeps n finite for infinite inputs.
 */
static inline __m512 exp16(__m512 x) {
  x = _mm512_min_ps(_mm512_set1_ps(100.0f), _mm512_max_ps(_mm512_set1_ps(-150.0f), x));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-6f), r);
  __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

static double avx512_sum_squares(const float *x, int64_t n) {
  __m512d acc = _mm512_setzero_pd();
  for (int64_t i = 0; i < n; i += 16) {
    const __m512 a = _mm512_maskz_loadu_ps(tail_mask(n - i), x + i);
    acc = add_widened(acc, _mm512_mul_ps(a, a));
  }
  return _mm512_reduce_add_pd(acc);
}

static void avx512_scale_mul(const float *x, float s, const float *w, float *y, int64_t n) {
  const __m512 vs = _mm512_set1_ps(s);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 v = _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), vs), _mm512_maskz_loadu_ps(m, w + i));
    _mm512_mask_storeu_ps(y + i, m, v);
  }
}

static void avx512_scale(float *y, float s, int64_t n) {
  const __m512 vs = _mm512_set1_ps(s);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, y + i), vs));
  }
}

static float avx512_max(const float *x, int64_t n) {
  const __m512 neg_inf = _mm512_set1_ps(-INFINITY);
  __m512 acc = neg_inf;
  for (int64_t i = 0; i < n; i += 16) acc = _mm512_max_ps(acc, _mm512_mask_loadu_ps(neg_inf, tail_mask(n - i), x + i));
  return _mm512_reduce_max_ps(acc);
}

/* Two sums, for the even and the odd 16 lanes: one chain of f64 adds held each step to its latency
   (attention's softmax over a chunk of 256 rows spent a tenth of a decode token's time here). */
static double avx512_exp_sum(const float *x, float m, float *y, int64_t n) {
  const __m512 vm = _mm512_set1_ps(m);
  __m512d acc = _mm512_setzero_pd(), acc1 = acc;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), vm));
    const __m512 e1 = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i + 16), vm));
    _mm512_storeu_ps(y + i, e);
    _mm512_storeu_ps(y + i + 16, e1);
    acc = add_widened(acc, e);
    acc1 = add_widened(acc1, e1);
  }
  for (; i < n; i += 16) {
    const __mmask16 k = tail_mask(n - i);
    const __m512 e = _mm512_maskz_mov_ps(k, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vm)));
    _mm512_mask_storeu_ps(y + i, k, e);
    acc = add_widened(acc, e);
  }
  return _mm512_reduce_add_pd(_mm512_add_pd(acc, acc1));
}

static void avx512_swiglu(const float *g, const float *u, float *y, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f), zero = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = tail_mask(n - i);
    const __m512 x = _mm512_maskz_loadu_ps(k, g + i);
    const __m512 silu = _mm512_div_ps(x, _mm512_add_ps(one, exp16(_mm512_sub_ps(zero, x))));
    _mm512_mask_storeu_ps(y + i, k, _mm512_mul_ps(silu, _mm512_maskz_loadu_ps(k, u + i)));
  }
}

static void avx512_geglu(const float *g, const float *u, float *y, int64_t n, const float *table) {
  const __m512 lo = _mm512_set1_ps(-10.0f), hi = _mm512_set1_ps(10.0f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = tail_mask(n - i);
    const __m512 x = _mm512_maskz_loadu_ps(k, g + i);
    const __m512i idx = _mm512_cvtepu16_epi32(_mm512_cvtps_ph(x, F16_ROUND));
    __m512 v = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), k, idx, table, 4);
    v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(x, hi, _CMP_GE_OQ), x);
    v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(k, u + i));
    /* Exactly zero below -10, as ggml, whatever u holds. */
    v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(x, lo, _CMP_LE_OQ), _mm512_setzero_ps());
    _mm512_mask_storeu_ps(y + i, k, v);
  }
}

static void avx512_add(const float *a, const float *b, float *y, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_add_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i)));
  if (i < n) {
    const __mmask16 k = tail_mask(n - i);
    _mm512_mask_storeu_ps(y + i, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, a + i), _mm512_maskz_loadu_ps(k, b + i)));
  }
}

static void avx512_to_f16(const float *x, uint16_t *y, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = tail_mask(n - i);
    _mm256_mask_storeu_epi16(y + i, k, _mm512_cvtps_ph(_mm512_maskz_loadu_ps(k, x + i), F16_ROUND));
  }
}

static inline __m512 load_f16(__mmask16 k, const uint16_t *p) {
  return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, p));
}

/* Mask of the lanes of a 16-lane vector that hold elements when `left` elements remain (may be <= 0). */
static inline __mmask16 lanes_left(int64_t left) { return left <= 0 ? 0 : tail_mask(left); }

static void avx512_round_f16(float *x, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = tail_mask(n - i);
    _mm512_mask_storeu_ps(x + i, k, _mm512_cvtph_ps(_mm512_cvtps_ph(_mm512_maskz_loadu_ps(k, x + i), F16_ROUND)));
  }
}

/* [sum(a0), sum(a1), sum(a2), sum(a3)]: four horizontal sums sharing one shuffle tree. */
static inline __m128 reduce4(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
  const __m512 t01 = _mm512_add_ps(_mm512_unpacklo_ps(a0, a1), _mm512_unpackhi_ps(a0, a1));
  const __m512 t23 = _mm512_add_ps(_mm512_unpacklo_ps(a2, a3), _mm512_unpackhi_ps(a2, a3));
  const __m512d lo = _mm512_unpacklo_pd(_mm512_castps_pd(t01), _mm512_castps_pd(t23));
  const __m512d hi = _mm512_unpackhi_pd(_mm512_castps_pd(t01), _mm512_castps_pd(t23));
  const __m512 t = _mm512_add_ps(_mm512_castpd_ps(lo), _mm512_castpd_ps(hi));
  const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(t), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(t), 1)));
  return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

/*
 * The sums of a[j][0..3] in lanes 4j .. 4j + 3: each vector's lanes added in the tree reduce4 uses
 * (within 128-bit lanes, then lanes 0 + 2 and 1 + 3, then those two), so a sum is the same bit for
 * bit whichever of the two formed it; the four groups share the steps across 128-bit lanes.
 */
static inline __m512 reduce16(__m512 a[4][4]) {
  __m512 t[4];
  for (int j = 0; j < 4; j++) {
    const __m512 t01 = _mm512_add_ps(_mm512_unpacklo_ps(a[j][0], a[j][1]), _mm512_unpackhi_ps(a[j][0], a[j][1]));
    const __m512 t23 = _mm512_add_ps(_mm512_unpacklo_ps(a[j][2], a[j][3]), _mm512_unpackhi_ps(a[j][2], a[j][3]));
    const __m512d lo = _mm512_unpacklo_pd(_mm512_castps_pd(t01), _mm512_castps_pd(t23));
    const __m512d hi = _mm512_unpackhi_pd(_mm512_castps_pd(t01), _mm512_castps_pd(t23));
    t[j] = _mm512_add_ps(_mm512_castpd_ps(lo), _mm512_castpd_ps(hi));
  }
  /* [j0 + j2, j1 + j3] of groups 0 and 1, then of 2 and 3 (jL: 128-bit lane L of t[j]). */
  const __m512 w01 = _mm512_add_ps(_mm512_shuffle_f32x4(t[0], t[1], _MM_SHUFFLE(1, 0, 1, 0)), _mm512_shuffle_f32x4(t[0], t[1], _MM_SHUFFLE(3, 2, 3, 2)));
  const __m512 w23 = _mm512_add_ps(_mm512_shuffle_f32x4(t[2], t[3], _MM_SHUFFLE(1, 0, 1, 0)), _mm512_shuffle_f32x4(t[2], t[3], _MM_SHUFFLE(3, 2, 3, 2)));
  return _mm512_add_ps(_mm512_shuffle_f32x4(w01, w23, _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_f32x4(w01, w23, _MM_SHUFFLE(3, 1, 3, 1)));
}

/* Loads 16 lanes of K (f16 or f32) as f32. */
static inline __m512 load_k16(__mmask16 m, const uint16_t *p) { return load_f16(m, p); }
static inline __m512 load_k32(__mmask16 m, const float *p) { return _mm512_maskz_loadu_ps(m, p); }

/*
 * Cache rows ahead of the one in use that the score and weighted-sum loops ask for. A thread reads
 * a KV head's stretch of a chunk (16 KiB or so), then another head's: the hardware prefetchers do
 * not follow such stretches far, and without these requests a decode token at 16k took 1.6-1.8x as
 * long in attention over a Q8_0 cache. About 4 KiB ahead: 32 rows of an F16 head of 64 (64 were
 * slower), 64 of a Q8_0 one (32 were 5% slower at 16k once a claim of work no longer waited on the
 * requests in flight, see attention.c; before that 64 and 96 were level or slower).
 */
#define ROWS_AHEAD 32
#define Q8_ROWS_AHEAD 64

static inline void prefetch_row(const void *p, int64_t bytes) {
  for (int64_t off = 0; off < bytes; off += 64) cairn_prefetch_t1((const char *)p + off);
}

/* Asks for n rows `stride` apart: line by line where they lie end to end (a head's stretch of the
   cache), so a line two rows share is asked for once. */
static inline void prefetch_rows(const uint8_t *p, int64_t stride, int64_t n, int64_t row_bytes) {
  if (stride == row_bytes) {
    const uintptr_t first = (uintptr_t)p & ~(uintptr_t)63, end = (uintptr_t)p + (uintptr_t)(n * row_bytes);
    for (uintptr_t a = first; a < end; a += 64) cairn_prefetch_t1((const void *)a);
  } else {
    for (int64_t j = 0; j < n; j++) prefetch_row(p + j * stride, row_bytes);
  }
}

/*
 * Score kernels. Every (row, head) score is the same lane-wise sum followed by the same reduce4
 * tree (reduce16 adds in that tree too), whether it was computed four or two rows and four heads at
 * a time, one row and four heads, or four rows of one head, so the grouping never changes a result.
 */
#define DEFINE_DOT_ROWS(NAME, KT, LOAD)                                                                        \
  static inline __attribute__((always_inline)) void NAME##_body(const KT *k, int64_t stride, int64_t rows, const float *q, \
                                                                int64_t nh, const int64_t d, float scale, float *out,     \
                                                                int64_t out_stride) {                                     \
    const __m128 vs = _mm_set1_ps(scale);                                                                      \
    const int64_t row_bytes = d * (int64_t)sizeof(KT);                                                         \
    float s[4], s1[4];                                                                                         \
    int64_t g = 0;                                                                                             \
    for (; g + 3 <= nh; g += 4) { /* four heads (the last one possibly a stand-in) per row */                  \
      const int ng = nh - g < 4 ? (int)(nh - g) : 4;                                                           \
      const float *q0 = q + g * d, *q1 = q0 + d, *q2 = q1 + d, *q3 = ng == 4 ? q2 + d : q0;                    \
      int64_t r = 0;                                                                                           \
      /* Four rows at a time: each query load serves four, and the sixteen sums share one tree and go  \
         out as one store per head. */                                                                         \
      for (; r + 4 <= rows; r += 4) {                                                                          \
        const KT *k0 = k + r * stride, *k1 = k0 + stride, *k2 = k1 + stride, *k3 = k2 + stride;                \
        for (int j = 0; j < 4; j++) prefetch_row(k0 + (ROWS_AHEAD + j) * stride, row_bytes);                  \
        const float *qh[4] = {q0, q1, q2, q3};                                                                 \
        __m512 a[4][4];                                                                                        \
        for (int h = 0; h < 4; h++)                                                                            \
          for (int j = 0; j < 4; j++) a[h][j] = _mm512_setzero_ps();                                           \
        for (int64_t i = 0; i < d; i += 16) {                                                                  \
          const __mmask16 m = tail_mask(d - i);                                                                \
          const __m512 kv0 = LOAD(m, k0 + i), kv1 = LOAD(m, k1 + i), kv2 = LOAD(m, k2 + i), kv3 = LOAD(m, k3 + i); \
          for (int h = 0; h < 4; h++) {                                                                        \
            const __m512 x = _mm512_maskz_loadu_ps(m, qh[h] + i);                                              \
            a[h][0] = _mm512_fmadd_ps(kv0, x, a[h][0]);                                                        \
            a[h][1] = _mm512_fmadd_ps(kv1, x, a[h][1]);                                                        \
            a[h][2] = _mm512_fmadd_ps(kv2, x, a[h][2]);                                                        \
            a[h][3] = _mm512_fmadd_ps(kv3, x, a[h][3]);                                                        \
          }                                                                                                    \
        }                                                                                                      \
        const __m512 z = _mm512_mul_ps(reduce16(a), _mm512_set1_ps(scale));                                   \
        _mm_storeu_ps(out + g * out_stride + r, _mm512_extractf32x4_ps(z, 0));                                 \
        _mm_storeu_ps(out + (g + 1) * out_stride + r, _mm512_extractf32x4_ps(z, 1));                           \
        _mm_storeu_ps(out + (g + 2) * out_stride + r, _mm512_extractf32x4_ps(z, 2));                           \
        if (ng == 4) _mm_storeu_ps(out + (g + 3) * out_stride + r, _mm512_extractf32x4_ps(z, 3));              \
      }                                                                                                        \
      /* Two rows at a time: each query load serves both. */                                                  \
      for (; r + 2 <= rows; r += 2) {                                                                          \
        const KT *kr = k + r * stride, *kr1 = kr + stride;                                                     \
        prefetch_row(kr + ROWS_AHEAD * stride, row_bytes);                                                     \
        prefetch_row(kr1 + ROWS_AHEAD * stride, row_bytes);                                                    \
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;        \
        for (int64_t i = 0; i < d; i += 16) {                                                                  \
          const __mmask16 m = tail_mask(d - i);                                                                \
          const __m512 kv = LOAD(m, kr + i), kv1 = LOAD(m, kr1 + i);                                           \
          const __m512 x0 = _mm512_maskz_loadu_ps(m, q0 + i), x1 = _mm512_maskz_loadu_ps(m, q1 + i);           \
          a0 = _mm512_fmadd_ps(kv, x0, a0);                                                                    \
          b0 = _mm512_fmadd_ps(kv1, x0, b0);                                                                   \
          a1 = _mm512_fmadd_ps(kv, x1, a1);                                                                    \
          b1 = _mm512_fmadd_ps(kv1, x1, b1);                                                                   \
          const __m512 x2 = _mm512_maskz_loadu_ps(m, q2 + i), x3 = _mm512_maskz_loadu_ps(m, q3 + i);           \
          a2 = _mm512_fmadd_ps(kv, x2, a2);                                                                    \
          b2 = _mm512_fmadd_ps(kv1, x2, b2);                                                                   \
          a3 = _mm512_fmadd_ps(kv, x3, a3);                                                                    \
          b3 = _mm512_fmadd_ps(kv1, x3, b3);                                                                   \
        }                                                                                                      \
        _mm_storeu_ps(s, _mm_mul_ps(reduce4(a0, a1, a2, a3), vs));                                             \
        _mm_storeu_ps(s1, _mm_mul_ps(reduce4(b0, b1, b2, b3), vs));                                            \
        for (int j = 0; j < ng; j++) {                                                                         \
          out[(g + j) * out_stride + r] = s[j];                                                                \
          out[(g + j) * out_stride + r + 1] = s1[j];                                                           \
        }                                                                                                      \
      }                                                                                                        \
      for (; r < rows; r++) {                                                                                  \
        const KT *kr = k + r * stride;                                                                         \
        prefetch_row(kr + ROWS_AHEAD * stride, row_bytes);                                                     \
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                                            \
        for (int64_t i = 0; i < d; i += 16) {                                                                  \
          const __mmask16 m = tail_mask(d - i);                                                                \
          const __m512 kv = LOAD(m, kr + i);                                                                   \
          a0 = _mm512_fmadd_ps(kv, _mm512_maskz_loadu_ps(m, q0 + i), a0);                                      \
          a1 = _mm512_fmadd_ps(kv, _mm512_maskz_loadu_ps(m, q1 + i), a1);                                      \
          a2 = _mm512_fmadd_ps(kv, _mm512_maskz_loadu_ps(m, q2 + i), a2);                                      \
          a3 = _mm512_fmadd_ps(kv, _mm512_maskz_loadu_ps(m, q3 + i), a3);                                      \
        }                                                                                                      \
        _mm_storeu_ps(s, _mm_mul_ps(reduce4(a0, a1, a2, a3), vs));                                             \
        for (int j = 0; j < ng; j++) out[(g + j) * out_stride + r] = s[j];                                     \
      }                                                                                                        \
    }                                                                                                          \
    for (; g < nh; g++) { /* remaining heads: four rows per pass */                                            \
      const float *qg = q + g * d;                                                                             \
      float *og = out + g * out_stride;                                                                        \
      for (int64_t r = 0; r < rows; r += 4) {                                                                  \
        const int nr = rows - r < 4 ? (int)(rows - r) : 4;                                                     \
        for (int j = 0; j < 4; j++) prefetch_row(k + (r + ROWS_AHEAD + j) * stride, row_bytes);               \
        const KT *k0 = k + r * stride, *k1 = nr > 1 ? k0 + stride : k0, *k2 = nr > 2 ? k0 + 2 * stride : k0;  \
        const KT *k3 = nr > 3 ? k0 + 3 * stride : k0;                                                          \
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                                            \
        for (int64_t i = 0; i < d; i += 16) {                                                                  \
          const __mmask16 m = tail_mask(d - i);                                                                \
          const __m512 qv = _mm512_maskz_loadu_ps(m, qg + i);                                                  \
          a0 = _mm512_fmadd_ps(LOAD(m, k0 + i), qv, a0);                                                       \
          a1 = _mm512_fmadd_ps(LOAD(m, k1 + i), qv, a1);                                                       \
          a2 = _mm512_fmadd_ps(LOAD(m, k2 + i), qv, a2);                                                       \
          a3 = _mm512_fmadd_ps(LOAD(m, k3 + i), qv, a3);                                                       \
        }                                                                                                      \
        _mm_storeu_ps(s, _mm_mul_ps(reduce4(a0, a1, a2, a3), vs));                                             \
        for (int j = 0; j < nr; j++) og[r + j] = s[j];                                                         \
      }                                                                                                        \
    }                                                                                                          \
  }

DEFINE_DOT_ROWS(avx512_dot_rows_f16, uint16_t, load_k16)
DEFINE_DOT_ROWS(avx512_dot_rows_f32, float, load_k32)
/* (The generic loop kept lane masks and counters and spilled one of its sums.) */
CAIRN_DOT_ROWS_HEAD_SIZES(avx512_dot_rows_f16, uint16_t)
CAIRN_DOT_ROWS_HEAD_SIZES(avx512_dot_rows_f32, float)

/*
 * Weighted sums for up to four heads at once: 64 output columns per head stay in registers while
 * the rows stream past, and each V row chunk is converted once for all of them.
 */
static inline __attribute__((always_inline)) void wsum_heads16(const uint16_t *v16, const float *v32, int64_t stride,
                                                               int64_t rows, const float *w, int64_t w_stride,
                                                               const int ng, int64_t d, float *out) {
  for (int64_t c = 0; c < d; c += 64) {
    __mmask16 m[4];
    for (int j = 0; j < 4; j++) m[j] = lanes_left(d - c - 16 * j);
    __m512 acc[4][4];
    for (int g = 0; g < ng; g++) {
      for (int j = 0; j < 4; j++) acc[g][j] = _mm512_maskz_loadu_ps(m[j], out + g * d + c + 16 * j);
    }
    for (int64_t r = 0; r < rows; r++) {
      if (c == 0) {
        const void *ahead = v16 ? (const void *)(v16 + (r + ROWS_AHEAD) * stride) : (const void *)(v32 + (r + ROWS_AHEAD) * stride);
        prefetch_row(ahead, d * (v16 ? 2 : 4));
      }
      __m512 vv[4];
      for (int j = 0; j < 4; j++) {
        vv[j] = v16 ? load_f16(m[j], v16 + r * stride + c + 16 * j) : _mm512_maskz_loadu_ps(m[j], v32 + r * stride + c + 16 * j);
      }
      for (int g = 0; g < ng; g++) {
        const __m512 wr = _mm512_set1_ps(w[g * w_stride + r]);
        for (int j = 0; j < 4; j++) acc[g][j] = _mm512_fmadd_ps(wr, vv[j], acc[g][j]);
      }
    }
    for (int g = 0; g < ng; g++) {
      for (int j = 0; j < 4; j++) _mm512_mask_storeu_ps(out + g * d + c + 16 * j, m[j], acc[g][j]);
    }
  }
}

static void wsum_rows(const uint16_t *v16, const float *v32, int64_t stride, int64_t rows, const float *w,
                      int64_t w_stride, int64_t nh, int64_t d, float *out) {
  /* d = 64 as a constant: one unmasked piece of 64 columns. */
  if (d == 64) {
    CAIRN_FOR_HEAD_GROUPS(nh, g, ng, wsum_heads16(v16, v32, stride, rows, w + g * w_stride, w_stride, ng, 64, out + g * 64));
  } else {
    CAIRN_FOR_HEAD_GROUPS(nh, g, ng, wsum_heads16(v16, v32, stride, rows, w + g * w_stride, w_stride, ng, d, out + g * d));
  }
}

static void avx512_wsum_rows_f16(const uint16_t *v, int64_t stride, int64_t rows, const float *w, int64_t w_stride,
                                 int64_t nh, int64_t d, float *out) {
  wsum_rows(v, NULL, stride, rows, w, w_stride, nh, d, out);
}

static void avx512_wsum_rows_f32(const float *v, int64_t stride, int64_t rows, const float *w, int64_t w_stride,
                                 int64_t nh, int64_t d, float *out) {
  wsum_rows(NULL, v, stride, rows, w, w_stride, nh, d, out);
}

/* Byte offsets of 16 cache rows `stride` apart, for q8_block_scales. */
static inline __m512i q8_row_offsets(int64_t stride) {
  return _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32((int)stride));
}

/* The f16 scales of the blocks starting at p + at[r] (rows in m; 0 elsewhere) as f32: each the low
   half of the dword at its block's start. */
static inline __m512 q8_block_scales(__mmask16 m, __m512i at, const uint8_t *p) {
  return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, at, (const void *)p, 1)));
}

/*
 * Q8_0 scores, 16 cache rows at a time with the rows in the vector lanes: each 16-byte piece of the
 * 16 rows is transposed (px_transpose16), so that a vector holds one dword (4 quants) of every row,
 * and each head's 4 query quants, + 128 as unsigned bytes and broadcast, go against it (dpbusd):
 * every lane ends with its row's exact integer dot of a block, with no horizontal sums (the
 * row-major kernel before this spent as much on reducing lanes as on the dots). The offset 128
 * comes back through each row's block sum (dpbusd with ones), shared by all heads. A score is then
 * llama.cpp's per head and row: per block in order s = fma(float(dot), dk x dq, s), then s x scale.
 * Rows past the last whole 16 take the same steps one at a time, so a score never depends on the
 * way its row went (tiles start at fixed cache positions, but a window can move a call's first row).
 */
#define Q8_TILE_ROWS 16
/* Blocks per head the tile holds (head sizes up to 256); larger heads take the rows one at a time. */
#define Q8_TILE_BLOCKS 8
/* Query vectors prepared at once per call (their quants + 128, and their scales). */
#define Q8_CALL_HEADS 64

/* nh query vectors' quants + 128 (u8), dword by dword, into qx (nh x nb x 8 dwords), their scales into dq. */
static inline void q8_queries_unsigned(const block_q8_0 *qb, int64_t nh, int64_t nb, int32_t *qx, float *dq) {
  for (int64_t i = 0; i < nh * nb; i++) {
    const __m256i q = _mm256_loadu_si256((const __m256i *)qb[i].qs);
    _mm256_storeu_si256((__m256i *)(qx + 8 * i), _mm256_xor_si256(q, _mm256_set1_epi8((char)0x80)));
    dq[i] = q8_scale(qb + i);
  }
}

/* One tile of 16 rows; nb is a constant where the caller can make it one, so that the transposed
   rows stay in registers. Each dot runs as two chains of four dpbusd (exact sums, added after). */
static inline __attribute__((always_inline)) void q8_scores_tile(const uint8_t *k, int64_t stride, const int32_t *qx, const float *dq,
                                                                 int64_t nh, const int64_t nb, float scale, float *out,
                                                                 int64_t out_stride) {
  const uint8_t *rp[Q8_TILE_ROWS];
  for (int j = 0; j < Q8_TILE_ROWS; j++) rp[j] = k + j * stride;
  __m512i kt[Q8_TILE_BLOCKS][8], start[Q8_TILE_BLOCKS];
  __m512 dk[Q8_TILE_BLOCKS];
  const __m512i ones = _mm512_set1_epi8(1);
  const __m512i at = q8_row_offsets(stride);
  for (int64_t b = 0; b < nb; b++) {
    const size_t off = (size_t)b * sizeof(block_q8_0);
    px_transpose16(rp, off + 2, kt[b]);
    px_transpose16(rp, off + 18, kt[b] + 4);
    __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
    for (int i = 0; i < 8; i += 2) s0 = _mm512_dpbusd_epi32(s0, ones, kt[b][i]), s1 = _mm512_dpbusd_epi32(s1, ones, kt[b][i + 1]);
    start[b] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(_mm512_add_epi32(s0, s1), 7));
    dk[b] = q8_block_scales(0xffff, at, k + off);
  }
  for (int64_t g = 0; g < nh; g++) {
    __m512 sc = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
      const int32_t *q4 = qx + (g * nb + b) * 8;
      __m512i a0 = start[b], a1 = _mm512_setzero_si512();
      for (int i = 0; i < 8; i += 2) {
        a0 = _mm512_dpbusd_epi32(a0, _mm512_set1_epi32(q4[i]), kt[b][i]);
        a1 = _mm512_dpbusd_epi32(a1, _mm512_set1_epi32(q4[i + 1]), kt[b][i + 1]);
      }
      sc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(a0, a1)), _mm512_mul_ps(dk[b], _mm512_set1_ps(dq[g * nb + b])), sc);
    }
    _mm512_storeu_ps(out + g * out_stride, _mm512_mul_ps(sc, _mm512_set1_ps(scale)));
  }
}

/*
 * The same scores for an even number of blocks per head, with each block's scale taken from the
 * transposed rows instead of a gather (two gathers per tile took a third of the kernel's time).
 * Two blocks are 68 bytes, 17 dwords: dword 0 holds the first block's scale and quants 0-1, dwords
 * 1-7 its quants 2-29, dword 8 its quants 30-31 and the second block's scale, dwords 9-16 the second
 * block's quants. The rows' dwords are transposed whole (a last transpose overlapping the one
 * before it where the dwords do not come in fours), and each query is laid out the same way with
 * zeros over the scale bytes, so a scale byte meets a zero in every dot; the offset sums skip
 * them too. Every block's dot is the same exact integer, so the scores are q8_scores_tile's bit
 * for bit.
 */
/* Most dwords a head's row may have here (8 blocks). */
#define Q8_PAIR_DWORDS (Q8_TILE_BLOCKS / 2 * 17)

/* nh query vectors as the tile's dwords (q8_queries_unsigned's quants + 128, in the blocks' own layout with
   the scale bytes 0); their scales into dq. */
static inline void q8_queries_pairs(const block_q8_0 *qb, int64_t nh, int64_t nb, int32_t *qx, float *dq) {
  const int64_t ndw = nb / 2 * 17;
  for (int64_t g = 0; g < nh; g++) {
    const uint8_t *src = (const uint8_t *)(qb + g * nb);
    uint8_t *dst = (uint8_t *)(qx + g * ndw);
    for (int64_t b = 0; b < nb; b++) {
      uint8_t *o = dst + b * (int64_t)sizeof(block_q8_0);
      o[0] = o[1] = 0;
      const __m256i q = _mm256_loadu_si256((const __m256i *)(src + b * (int64_t)sizeof(block_q8_0) + 2));
      _mm256_storeu_si256((__m256i *)(o + 2), _mm256_xor_si256(q, _mm256_set1_epi8((char)0x80)));
      dq[g * nb + b] = q8_scale(qb + g * nb + b);
    }
  }
}

static inline __attribute__((always_inline)) void q8_scores_tile_pairs(const uint8_t *k, int64_t stride, const int32_t *qx,
                                                                       const float *dq, int64_t nh, const int64_t nb, float scale,
                                                                       float *out, int64_t out_stride) {
  const int64_t ndw = nb / 2 * 17, whole = ndw / 4 * 4;
  const uint8_t *rp[Q8_TILE_ROWS];
  for (int j = 0; j < Q8_TILE_ROWS; j++) rp[j] = k + j * stride;
  __m512i kt[Q8_PAIR_DWORDS + 3], start[Q8_TILE_BLOCKS];
  __m512 dk[Q8_TILE_BLOCKS];
  for (int64_t i = 0; i < whole; i += 4) px_transpose16(rp, (size_t)(4 * i), kt + i);
  if (whole < ndw) {
    __m512i last[4];
    px_transpose16(rp, (size_t)(4 * (ndw - 4)), last);
    for (int64_t i = whole; i < ndw; i++) kt[i] = last[i - (ndw - 4)];
  }
  const __m512i ones = _mm512_set1_epi8(1), ones_hi = _mm512_set1_epi32(0x01010000), ones_lo = _mm512_set1_epi32(0x00000101);
  for (int64_t p = 0; p < nb / 2; p++) {
    const __m512i *t = kt + 17 * p;
    __m512i e0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ones_hi, t[0]), e1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ones_lo, t[8]);
    for (int i = 1; i < 7; i += 2) e0 = _mm512_dpbusd_epi32(e0, ones, t[i]), e1 = _mm512_dpbusd_epi32(e1, ones, t[i + 1]);
    e0 = _mm512_dpbusd_epi32(e0, ones, t[7]);
    __m512i o0 = _mm512_setzero_si512(), o1 = o0;
    for (int i = 9; i < 17; i += 2) o0 = _mm512_dpbusd_epi32(o0, ones, t[i]), o1 = _mm512_dpbusd_epi32(o1, ones, t[i + 1]);
    start[2 * p] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(_mm512_add_epi32(e0, e1), 7));
    start[2 * p + 1] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(_mm512_add_epi32(o0, o1), 7));
    dk[2 * p] = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(t[0]));
    dk[2 * p + 1] = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(t[8], 16)));
  }
  for (int64_t g = 0; g < nh; g++) {
    __m512 sc = _mm512_setzero_ps();
    const int32_t *q = qx + g * ndw;
    for (int64_t p = 0; p < nb / 2; p++) {
      const __m512i *t = kt + 17 * p;
      const int32_t *qp = q + 17 * p;
      __m512i a0 = start[2 * p], a1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi32(qp[8]), t[8]);
      for (int i = 0; i < 8; i += 2) {
        a0 = _mm512_dpbusd_epi32(a0, _mm512_set1_epi32(qp[i]), t[i]);
        a1 = _mm512_dpbusd_epi32(a1, _mm512_set1_epi32(qp[i + 1]), t[i + 1]);
      }
      sc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(a0, a1)), _mm512_mul_ps(dk[2 * p], _mm512_set1_ps(dq[g * nb + 2 * p])), sc);
      __m512i b0 = start[2 * p + 1], b1 = _mm512_setzero_si512();
      for (int i = 9; i < 17; i += 2) {
        b0 = _mm512_dpbusd_epi32(b0, _mm512_set1_epi32(qp[i]), t[i]);
        b1 = _mm512_dpbusd_epi32(b1, _mm512_set1_epi32(qp[i + 1]), t[i + 1]);
      }
      sc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(b0, b1)), _mm512_mul_ps(dk[2 * p + 1], _mm512_set1_ps(dq[g * nb + 2 * p + 1])), sc);
    }
    _mm512_storeu_ps(out + g * out_stride, _mm512_mul_ps(sc, _mm512_set1_ps(scale)));
  }
}

/* One row's scores: q8_scores_tile's steps for a single lane. */
static void q8_scores_row(const block_q8_0 *kb, const block_q8_0 *qb, int64_t nh, int64_t nb, float scale, float *out, int64_t out_stride) {
  for (int64_t g = 0; g < nh; g++) {
    float sc = 0.f;
    for (int64_t b = 0; b < nb; b++) {
      const block_q8_0 *x = qb + g * nb + b;
      const __m256i p = _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)kb[b].qs)), _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x->qs)));
      const __m256i p1 = _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(kb[b].qs + 16))),
                                           _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(x->qs + 16))));
      const __m256i t = _mm256_add_epi32(p, p1);
      __m128i h = _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
      h = _mm_add_epi32(h, _mm_unpackhi_epi64(h, h));
      h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 1));
      sc = fmaf((float)_mm_cvtsi128_si32(h), q8_scale(kb + b) * q8_scale(x), sc);
    }
    out[g * out_stride] = sc * scale;
  }
}

static void avx512_dot_rows_q8(const uint8_t *k, int64_t stride, int64_t rows, const uint8_t *q, int64_t nh, int64_t d,
                               float scale, float *out, int64_t out_stride) {
  const int64_t nb = d / QK;
  const block_q8_0 *qb = (const block_q8_0 *)q;
  int64_t whole = 0;
  if (nb <= Q8_TILE_BLOCKS) {
    /* An even number of blocks: the pair tiles (scales from the transposed rows); else the gathers. */
    const int pairs = nb % 2 == 0;
    whole = rows / Q8_TILE_ROWS * Q8_TILE_ROWS;
    int32_t qx[Q8_CALL_HEADS * Q8_PAIR_DWORDS]; /* also holds the 8 dwords a block of q8_queries_unsigned (nb <= 7) */
    float dq[Q8_CALL_HEADS * Q8_TILE_BLOCKS];
    for (int64_t g0 = 0; g0 < nh; g0 += Q8_CALL_HEADS) {
      const int64_t n = nh - g0 < Q8_CALL_HEADS ? nh - g0 : Q8_CALL_HEADS;
      if (pairs) q8_queries_pairs(qb + g0 * nb, n, nb, qx, dq);
      else q8_queries_unsigned(qb + g0 * nb, n, nb, qx, dq);
      for (int64_t r = 0; r < whole; r += Q8_TILE_ROWS) {
        if (g0 == 0) prefetch_rows(k + (r + Q8_ROWS_AHEAD) * stride, stride, Q8_TILE_ROWS, nb * (int64_t)sizeof(block_q8_0));
        const uint8_t *kr = k + r * stride;
        float *o = out + g0 * out_stride + r;
        if (nb == 2) q8_scores_tile_pairs(kr, stride, qx, dq, n, 2, scale, o, out_stride);
        else if (nb == 4) q8_scores_tile_pairs(kr, stride, qx, dq, n, 4, scale, o, out_stride);
        else if (pairs) q8_scores_tile_pairs(kr, stride, qx, dq, n, nb, scale, o, out_stride);
        else if (nb == 1) q8_scores_tile(kr, stride, qx, dq, n, 1, scale, o, out_stride);
        else q8_scores_tile(kr, stride, qx, dq, n, nb, scale, o, out_stride);
      }
    }
  }
  for (int64_t r = whole; r < rows; r++) {
    prefetch_row(k + (r + Q8_ROWS_AHEAD) * stride, nb * (int64_t)sizeof(block_q8_0));
    q8_scores_row((const block_q8_0 *)(k + r * stride), qb, nh, nb, scale, out + r, out_stride);
  }
}

/*
 * Q8_0 weighted sums for up to four heads: 64 output columns per head in registers while the rows
 * stream past (d is a multiple of 32, so the lanes of a 64-column piece are whole blocks: all of
 * it, or its first half). Each row's block scale goes into the heads' weights first, 16 rows at a
 * time (w x dv), so a row's quants are only widened to f32 before the multiply-adds: the kernel
 * that scaled each quant by its block scale spent a third of its instructions on that. Per row
 * and head the sum takes fma((w x dv), q, acc) where llama.cpp's dequantized rows take
 * fma(w, dv x q, acc) (dv x q is exact in f32): one more rounding, of 2^-24.
 */
/* Rows ahead of a block's scale gathers that are asked for. The gathers are the first reads of a
   block's rows: a pass over 256 rows' gathers before their arithmetic left the core waiting on
   memory (half the kernel's time at depth), then the memory idle while it computed. Twice the
   scores' distance: the sums take longer a row. */
#define WSUM_Q8_AHEAD 128

static inline __attribute__((always_inline)) void wsum_piece_q8(const uint8_t *v, int64_t stride, int64_t rows, const float *w,
                                                                int64_t w_stride, const int ng, const int nbp, int64_t b0, int64_t d,
                                                                float *out) {
  const int parts = 2 * nbp;
  const int64_t row_bytes = d / QK * (int64_t)sizeof(block_q8_0);
  __m512 acc[4][4];
  for (int g = 0; g < ng; g++)
    for (int j = 0; j < parts; j++) acc[g][j] = _mm512_loadu_ps(out + g * d + b0 * QK + 16 * j);
  float wd[4][2][16] __attribute__((aligned(64)));
  const __m512i at = q8_row_offsets(stride);
  for (int64_t s0 = 0; s0 < rows; s0 += 16) {
    const int64_t n = rows - s0 < 16 ? rows - s0 : 16;
    const __mmask16 m = lanes_left(n);
    const uint8_t *vs = v + s0 * stride;
    if (b0 == 0) prefetch_rows(vs + WSUM_Q8_AHEAD * stride, stride, 16, row_bytes);
    for (int b = 0; b < nbp; b++) {
      const __m512 dv = q8_block_scales(m, at, vs + (b0 + b) * (int64_t)sizeof(block_q8_0));
      for (int g = 0; g < ng; g++) _mm512_store_ps(wd[g][b], _mm512_mul_ps(_mm512_maskz_loadu_ps(m, w + g * w_stride + s0), dv));
    }
    for (int64_t r = 0; r < n; r++) {
      const uint8_t *q = vs + r * stride + b0 * (int64_t)sizeof(block_q8_0) + 2;
      __m512 vv[4];
      for (int j = 0; j < parts; j++) {
        vv[j] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(q + (j / 2) * (int64_t)sizeof(block_q8_0) + 16 * (j % 2)))));
      }
      for (int g = 0; g < ng; g++) {
        for (int j = 0; j < parts; j++) acc[g][j] = _mm512_fmadd_ps(_mm512_set1_ps(wd[g][j / 2][r]), vv[j], acc[g][j]);
      }
    }
  }
  for (int g = 0; g < ng; g++)
    for (int j = 0; j < parts; j++) _mm512_storeu_ps(out + g * d + b0 * QK + 16 * j, acc[g][j]);
}

static inline __attribute__((always_inline)) void wsum_heads_q8(const uint8_t *v, int64_t stride, int64_t rows, const float *w,
                                                                int64_t w_stride, const int ng, int64_t d, float *out) {
  const int64_t nb = d / QK;
  for (int64_t b0 = 0; b0 < nb; b0 += 2) {
    if (nb - b0 >= 2) wsum_piece_q8(v, stride, rows, w, w_stride, ng, 2, b0, d, out);
    else wsum_piece_q8(v, stride, rows, w, w_stride, ng, 1, b0, d, out);
  }
}

static void avx512_wsum_rows_q8(const uint8_t *v, int64_t stride, int64_t rows, const float *w, int64_t w_stride, int64_t nh,
                                int64_t d, float *out) {
  CAIRN_FOR_HEAD_GROUPS(nh, g, ng, wsum_heads_q8(v, stride, rows, w + g * w_stride, w_stride, ng, d, out + g * d));
}

/*
 * Scores and weighted sums over a tiled Q8_0 cache (ops.h CAIRN_KV_Q8_0_TILES). A key tile's
 * vectors are the 16 rows' dwords as they lie, + 128: per block, eight dpbusd of them against a
 * query's dwords (broadcast) give each lane its row's exact dot + 128 x the query's block sum, which
 * the sum's start takes back (once per query and block, where the row tiles paid a transpose of
 * every row and an offset per row and block). Each block's scale is one vector of the tile's 16
 * scales. The scores are then those of the row kernels: per block in order s = fma(float(dot),
 * dk x dq, s), then s x scale. The weighted sums read a value tile's rows as the row kernels read
 * rows, their 16 scales as one vector instead of a gather (a fifth of those kernels' time). Rows
 * before the first or after the last one asked for share their tiles: masked out (their weights
 * are 0, their scores not stored).
 */
/* Tiles asked for ahead (4.3 KiB for heads of 64, as the row kernels' 64 rows). */
#define TILES_AHEAD 4
/* Most dwords of queries prepared per call: heads x blocks x 8. */
#define TILE_QUERY_DWORDS (64 * 8 * 8)

/* The lanes [l0, l1) of a tile. */
static inline __mmask16 lane_range(int l0, int l1) { return (__mmask16)(((1u << l1) - 1) & ~((1u << l0) - 1)); }

static inline void prefetch_tile(const uint8_t *t, int64_t tile_bytes) {
  for (int64_t off = 0; off < tile_bytes; off += 64) cairn_prefetch_t1(t + off);
}

/* nh queries' quants as dwords, each block's scale and -128 x its quant sum. */
static void tile_queries(const block_q8_0 *qb, int64_t nh, int64_t nb, int32_t *qd, float *dq, int32_t *qoff) {
  for (int64_t i = 0; i < nh * nb; i++) {
    memcpy(qd + 8 * i, qb[i].qs, QK);
    dq[i] = q8_scale(qb + i);
    const __m256i q = _mm256_loadu_si256((const __m256i *)qb[i].qs);
    const __m256i s16 = _mm256_maddubs_epi16(_mm256_set1_epi8(1), q);
    const __m256i s32 = _mm256_madd_epi16(s16, _mm256_set1_epi16(1));
    __m128i h = _mm_add_epi32(_mm256_castsi256_si128(s32), _mm256_extracti128_si256(s32, 1));
    h = _mm_add_epi32(h, _mm_unpackhi_epi64(h, h));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 1));
    qoff[i] = -128 * _mm_cvtsi128_si32(h);
  }
}

/* One tile's scores for nh queries, lanes m stored at out (lane 0's place) + g x out_stride; nb a
   constant where the caller can make it one. Blocks two at a time (16 vectors in registers); with
   more than two, each query's running sums wait in `part` between pairs. */
static inline __attribute__((always_inline)) void tile_scores(const uint8_t *t, const int64_t nb, const int32_t *qd, const float *dq,
                                                              const int32_t *qoff, int64_t nh, float scale, float *out,
                                                              int64_t out_stride, __mmask16 m, float *part) {
  for (int64_t b0 = 0; b0 < nb; b0 += 2) {
    const int nbp = nb - b0 >= 2 ? 2 : 1;
    __m512i kt[16];
    __m512 dk[2];
    for (int i = 0; i < 8 * nbp; i++) kt[i] = _mm512_loadu_si512((const void *)(t + (b0 * 8 + i) * 64));
    for (int i = 0; i < nbp; i++) dk[i] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(t + 512 * nb + 32 * (b0 + i))));
    for (int64_t g = 0; g < nh; g++) {
      __m512 sc = b0 == 0 ? _mm512_setzero_ps() : _mm512_load_ps(part + 16 * g);
      for (int i = 0; i < nbp; i++) {
        const int64_t qb = g * nb + b0 + i;
        const int32_t *q = qd + 8 * qb;
        __m512i a0 = _mm512_set1_epi32(qoff[qb]), a1 = _mm512_setzero_si512();
        for (int c = 0; c < 8; c += 2) {
          a0 = _mm512_dpbusd_epi32(a0, kt[8 * i + c], _mm512_set1_epi32(q[c]));
          a1 = _mm512_dpbusd_epi32(a1, kt[8 * i + c + 1], _mm512_set1_epi32(q[c + 1]));
        }
        sc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(a0, a1)), _mm512_mul_ps(dk[i], _mm512_set1_ps(dq[qb])), sc);
      }
      if (b0 + 2 < nb) _mm512_store_ps(part + 16 * g, sc);
      else _mm512_mask_storeu_ps(out + g * out_stride, m, _mm512_mul_ps(sc, _mm512_set1_ps(scale)));
    }
  }
}

static inline __attribute__((always_inline)) void tiles_scores(const uint8_t *k, int lane0, int64_t rows, const int32_t *qd,
                                                               const float *dq, const int32_t *qoff, int64_t nh, const int64_t nb,
                                                               float scale, float *out, int64_t out_stride, int prefetch, float *part) {
  const int64_t tile_bytes = CAIRN_KV_TILE_ROWS * nb * (int64_t)sizeof(block_q8_0), end = lane0 + rows;
  for (int64_t t0 = 0; t0 < end; t0 += CAIRN_KV_TILE_ROWS) {
    const uint8_t *t = k + t0 / CAIRN_KV_TILE_ROWS * tile_bytes;
    if (prefetch) prefetch_tile(t + TILES_AHEAD * tile_bytes, tile_bytes);
    const int l0 = t0 == 0 ? lane0 : 0, l1 = end - t0 < CAIRN_KV_TILE_ROWS ? (int)(end - t0) : CAIRN_KV_TILE_ROWS;
    /* Lane L of this tile is row t0 + L - lane0 of the call. */
    tile_scores(t, nb, qd, dq, qoff, nh, scale, out + t0 - lane0, out_stride, lane_range(l0, l1), part);
  }
}

static void avx512_dot_tiles_q8(const uint8_t *k, int lane0, int64_t rows, const uint8_t *q, int64_t nh, int64_t d, float scale,
                                float *out, int64_t out_stride) {
  const int64_t nb = d / QK;
  if (8 * nb > TILE_QUERY_DWORDS) { /* heads of more than 16384 elements: not a real model's */
    portable_dot_tiles_q8(k, lane0, rows, q, nh, d, scale, out, out_stride);
    return;
  }
  const int64_t per_call = TILE_QUERY_DWORDS / (8 * nb);
  int32_t qd[TILE_QUERY_DWORDS], qoff[TILE_QUERY_DWORDS / 8];
  float dq[TILE_QUERY_DWORDS / 8];
  float part[16 * 64] __attribute__((aligned(64)));
  const block_q8_0 *qb = (const block_q8_0 *)q;
  for (int64_t g0 = 0; g0 < nh; g0 += per_call) {
    const int64_t n = nh - g0 < per_call ? nh - g0 : per_call;
    tile_queries(qb + g0 * nb, n, nb, qd, dq, qoff);
    float *o = out + g0 * out_stride;
    /* part holds 64 queries' sums: more queries per call only with two blocks or fewer a head. */
    for (int64_t h0 = 0; h0 < n; h0 += 64) {
      const int64_t m = n - h0 < 64 ? n - h0 : 64;
      const int32_t *qh = qd + 8 * nb * h0, *oh = qoff + nb * h0;
      const float *dh = dq + nb * h0;
      const int pf = g0 == 0 && h0 == 0;
      if (nb == 2) tiles_scores(k, lane0, rows, qh, dh, oh, m, 2, scale, o + h0 * out_stride, out_stride, pf, part);
      else if (nb == 4) tiles_scores(k, lane0, rows, qh, dh, oh, m, 4, scale, o + h0 * out_stride, out_stride, pf, part);
      else if (nb == 1) tiles_scores(k, lane0, rows, qh, dh, oh, m, 1, scale, o + h0 * out_stride, out_stride, pf, part);
      else tiles_scores(k, lane0, rows, qh, dh, oh, m, nb, scale, o + h0 * out_stride, out_stride, pf, part);
    }
  }
}

/* The weighted sums of up to four heads over blocks [b0, b0 + nbp) of each row (64 columns or 32). */
static inline __attribute__((always_inline)) void tiles_wsum_piece(const uint8_t *v, int lane0, int64_t rows, const float *w,
                                                                   int64_t w_stride, const int ng, const int nbp, int64_t b0,
                                                                   const int64_t nb, float *out) {
  const int parts = 2 * nbp;
  const int64_t d = nb * QK, tile_bytes = CAIRN_KV_TILE_ROWS * nb * (int64_t)sizeof(block_q8_0), end = lane0 + rows;
  __m512 acc[4][4];
  for (int g = 0; g < ng; g++)
    for (int j = 0; j < parts; j++) acc[g][j] = _mm512_loadu_ps(out + g * d + b0 * QK + 16 * j);
  float wd[4][2][16] __attribute__((aligned(64)));
  for (int64_t t0 = 0; t0 < end; t0 += CAIRN_KV_TILE_ROWS) {
    const uint8_t *t = v + t0 / CAIRN_KV_TILE_ROWS * tile_bytes;
    if (b0 == 0) prefetch_tile(t + 2 * TILES_AHEAD * tile_bytes, tile_bytes);
    const int l0 = t0 == 0 ? lane0 : 0, l1 = end - t0 < CAIRN_KV_TILE_ROWS ? (int)(end - t0) : CAIRN_KV_TILE_ROWS;
    const __mmask16 m = lane_range(l0, l1);
    for (int b = 0; b < nbp; b++) {
      const __m512 dv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(t + 512 * nb + 32 * (b0 + b))));
      for (int g = 0; g < ng; g++) _mm512_store_ps(wd[g][b], _mm512_maskz_mul_ps(m, _mm512_maskz_loadu_ps(m, w + g * w_stride + t0 - lane0), dv));
    }
    for (int r = l0; r < l1; r++) {
      const uint8_t *q = t + (int64_t)r * d + b0 * QK;
      __m512 vv[4];
      for (int j = 0; j < parts; j++) vv[j] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(q + 16 * j))));
      for (int g = 0; g < ng; g++)
        for (int j = 0; j < parts; j++) acc[g][j] = _mm512_fmadd_ps(_mm512_set1_ps(wd[g][j / 2][r]), vv[j], acc[g][j]);
    }
  }
  for (int g = 0; g < ng; g++)
    for (int j = 0; j < parts; j++) _mm512_storeu_ps(out + g * d + b0 * QK + 16 * j, acc[g][j]);
}

static inline __attribute__((always_inline)) void tiles_wsum_heads(const uint8_t *v, int lane0, int64_t rows, const float *w,
                                                                   int64_t w_stride, const int ng, const int64_t nb, float *out) {
  for (int64_t b0 = 0; b0 < nb; b0 += 2) {
    if (nb - b0 >= 2) tiles_wsum_piece(v, lane0, rows, w, w_stride, ng, 2, b0, nb, out);
    else tiles_wsum_piece(v, lane0, rows, w, w_stride, ng, 1, b0, nb, out);
  }
}

static void avx512_wsum_tiles_q8(const uint8_t *v, int lane0, int64_t rows, const float *w, int64_t w_stride, int64_t nh, int64_t d,
                                 float *out) {
  const int64_t nb = d / QK;
  if (nb == 2) {
    CAIRN_FOR_HEAD_GROUPS(nh, g, ng, tiles_wsum_heads(v, lane0, rows, w + g * w_stride, w_stride, ng, 2, out + g * d));
  } else {
    CAIRN_FOR_HEAD_GROUPS(nh, g, ng, tiles_wsum_heads(v, lane0, rows, w + g * w_stride, w_stride, ng, nb, out + g * d));
  }
}

const cairn_ops_table cairn_ops_avx512 = {
    avx512_sum_squares,   avx512_scale_mul,     avx512_scale,         avx512_max,
    avx512_exp_sum,       avx512_swiglu,        avx512_geglu,         avx512_add,
    avx512_to_f16,        avx512_round_f16,     avx512_dot_rows_f16,  avx512_dot_rows_f32,
    avx512_wsum_rows_f16, avx512_wsum_rows_f32, avx512_dot_rows_q8,   avx512_wsum_rows_q8,
    avx512_dot_tiles_q8,  avx512_wsum_tiles_q8,
};
#endif
