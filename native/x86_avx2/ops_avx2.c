/* Float-kernel primitives with AVX2, FMA and F16C: 8 lanes, scalar tails in portable C. */
#if defined(__x86_64__)
#include <immintrin.h>

#include "ops_portable.h"

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

/* Lanes over the first d - d % 8 elements, then the rest in order: the same for every row. */
static inline float dot_f16_row(const uint16_t *k, const uint16_t *q, int64_t d) {
  __m256 a = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= d; i += 8) a = _mm256_fmadd_ps(load_f16(k + i), load_f16(q + i), a);
  float sum = hsum8(a);
  for (; i < d; i++) sum += ops_f16_to_f32(k[i]) * ops_f16_to_f32(q[i]);
  return sum;
}

static inline float dot_f32_row(const float *k, const float *q, int64_t d) {
  __m256 a = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= d; i += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(k + i), _mm256_loadu_ps(q + i), a);
  float sum = hsum8(a);
  for (; i < d; i++) sum += k[i] * q[i];
  return sum;
}

static void avx2_dot_rows_f16(const uint16_t *k, int64_t stride, int64_t rows, const uint16_t *q, int64_t d, float scale,
                              float *out) {
  for (int64_t r = 0; r < rows; r++) out[r] = dot_f16_row(k + r * stride, q, d) * scale;
}

static void avx2_dot_rows_f32(const float *k, int64_t stride, int64_t rows, const float *q, int64_t d, float scale,
                              float *out) {
  for (int64_t r = 0; r < rows; r++) out[r] = dot_f32_row(k + r * stride, q, d) * scale;
}

/* 32 output columns at a time stay in registers while all rows stream past; leftovers go by 8, then singly. */
static void avx2_wsum_rows_f16(const uint16_t *v, int64_t stride, int64_t rows, const float *w, int64_t d, float *out) {
  int64_t c = 0;
  for (; c + 32 <= d; c += 32) {
    __m256 a0 = _mm256_loadu_ps(out + c), a1 = _mm256_loadu_ps(out + c + 8);
    __m256 a2 = _mm256_loadu_ps(out + c + 16), a3 = _mm256_loadu_ps(out + c + 24);
    const uint16_t *vr = v + c;
    for (int64_t r = 0; r < rows; r++, vr += stride) {
      const __m256 wr = _mm256_set1_ps(w[r]);
      a0 = _mm256_fmadd_ps(wr, load_f16(vr), a0);
      a1 = _mm256_fmadd_ps(wr, load_f16(vr + 8), a1);
      a2 = _mm256_fmadd_ps(wr, load_f16(vr + 16), a2);
      a3 = _mm256_fmadd_ps(wr, load_f16(vr + 24), a3);
    }
    _mm256_storeu_ps(out + c, a0);
    _mm256_storeu_ps(out + c + 8, a1);
    _mm256_storeu_ps(out + c + 16, a2);
    _mm256_storeu_ps(out + c + 24, a3);
  }
  for (; c + 8 <= d; c += 8) {
    __m256 a = _mm256_loadu_ps(out + c);
    const uint16_t *vr = v + c;
    for (int64_t r = 0; r < rows; r++, vr += stride) a = _mm256_fmadd_ps(_mm256_set1_ps(w[r]), load_f16(vr), a);
    _mm256_storeu_ps(out + c, a);
  }
  if (c < d) portable_wsum_rows_f16(v + c, stride, rows, w, d - c, out + c);
}

static void avx2_wsum_rows_f32(const float *v, int64_t stride, int64_t rows, const float *w, int64_t d, float *out) {
  int64_t c = 0;
  for (; c + 32 <= d; c += 32) {
    __m256 a0 = _mm256_loadu_ps(out + c), a1 = _mm256_loadu_ps(out + c + 8);
    __m256 a2 = _mm256_loadu_ps(out + c + 16), a3 = _mm256_loadu_ps(out + c + 24);
    const float *vr = v + c;
    for (int64_t r = 0; r < rows; r++, vr += stride) {
      const __m256 wr = _mm256_set1_ps(w[r]);
      a0 = _mm256_fmadd_ps(wr, _mm256_loadu_ps(vr), a0);
      a1 = _mm256_fmadd_ps(wr, _mm256_loadu_ps(vr + 8), a1);
      a2 = _mm256_fmadd_ps(wr, _mm256_loadu_ps(vr + 16), a2);
      a3 = _mm256_fmadd_ps(wr, _mm256_loadu_ps(vr + 24), a3);
    }
    _mm256_storeu_ps(out + c, a0);
    _mm256_storeu_ps(out + c + 8, a1);
    _mm256_storeu_ps(out + c + 16, a2);
    _mm256_storeu_ps(out + c + 24, a3);
  }
  for (; c + 8 <= d; c += 8) {
    __m256 a = _mm256_loadu_ps(out + c);
    const float *vr = v + c;
    for (int64_t r = 0; r < rows; r++, vr += stride) a = _mm256_fmadd_ps(_mm256_set1_ps(w[r]), _mm256_loadu_ps(vr), a);
    _mm256_storeu_ps(out + c, a);
  }
  if (c < d) portable_wsum_rows_f32(v + c, stride, rows, w, d - c, out + c);
}

const cairn_ops_table cairn_ops_avx2 = {
    avx2_sum_squares,   avx2_scale_mul,     avx2_scale,         avx2_max,          avx2_exp_sum,
    avx2_swiglu,        avx2_geglu,         avx2_add,           avx2_to_f16,       avx2_round_f16,
    avx2_dot_rows_f16,  avx2_dot_rows_f32,  avx2_wsum_rows_f16, avx2_wsum_rows_f32,
};
#endif
