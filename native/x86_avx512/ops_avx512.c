/* Float-kernel primitives with AVX-512: 16 lanes, tails handled by masked loads and stores. */
#if defined(__x86_64__)
#include <immintrin.h>

#include "ops_portable.h"

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

static double avx512_exp_sum(const float *x, float m, float *y, int64_t n) {
  const __m512 vm = _mm512_set1_ps(m);
  __m512d acc = _mm512_setzero_pd();
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = tail_mask(n - i);
    const __m512 e = _mm512_maskz_mov_ps(k, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vm)));
    _mm512_mask_storeu_ps(y + i, k, e);
    acc = add_widened(acc, e);
  }
  return _mm512_reduce_add_pd(acc);
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

/* Four rows per pass share each load of q; every row is summed the same way whatever its group. */
static void avx512_dot_rows_f16(const uint16_t *k, int64_t stride, int64_t rows, const uint16_t *q, int64_t d,
                                float scale, float *out) {
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    const uint16_t *k0 = k + r * stride, *k1 = k0 + stride, *k2 = k1 + stride, *k3 = k2 + stride;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t i = 0; i < d; i += 16) {
      const __mmask16 m = tail_mask(d - i);
      const __m512 qv = load_f16(m, q + i);
      a0 = _mm512_fmadd_ps(load_f16(m, k0 + i), qv, a0);
      a1 = _mm512_fmadd_ps(load_f16(m, k1 + i), qv, a1);
      a2 = _mm512_fmadd_ps(load_f16(m, k2 + i), qv, a2);
      a3 = _mm512_fmadd_ps(load_f16(m, k3 + i), qv, a3);
    }
    out[r] = _mm512_reduce_add_ps(a0) * scale;
    out[r + 1] = _mm512_reduce_add_ps(a1) * scale;
    out[r + 2] = _mm512_reduce_add_ps(a2) * scale;
    out[r + 3] = _mm512_reduce_add_ps(a3) * scale;
  }
  for (; r < rows; r++) {
    const uint16_t *kr = k + r * stride;
    __m512 a = _mm512_setzero_ps();
    for (int64_t i = 0; i < d; i += 16) {
      const __mmask16 m = tail_mask(d - i);
      a = _mm512_fmadd_ps(load_f16(m, kr + i), load_f16(m, q + i), a);
    }
    out[r] = _mm512_reduce_add_ps(a) * scale;
  }
}

static void avx512_dot_rows_f32(const float *k, int64_t stride, int64_t rows, const float *q, int64_t d, float scale,
                                float *out) {
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    const float *k0 = k + r * stride, *k1 = k0 + stride, *k2 = k1 + stride, *k3 = k2 + stride;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t i = 0; i < d; i += 16) {
      const __mmask16 m = tail_mask(d - i);
      const __m512 qv = _mm512_maskz_loadu_ps(m, q + i);
      a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, k0 + i), qv, a0);
      a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, k1 + i), qv, a1);
      a2 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, k2 + i), qv, a2);
      a3 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, k3 + i), qv, a3);
    }
    out[r] = _mm512_reduce_add_ps(a0) * scale;
    out[r + 1] = _mm512_reduce_add_ps(a1) * scale;
    out[r + 2] = _mm512_reduce_add_ps(a2) * scale;
    out[r + 3] = _mm512_reduce_add_ps(a3) * scale;
  }
  for (; r < rows; r++) {
    const float *kr = k + r * stride;
    __m512 a = _mm512_setzero_ps();
    for (int64_t i = 0; i < d; i += 16) {
      const __mmask16 m = tail_mask(d - i);
      a = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, kr + i), _mm512_maskz_loadu_ps(m, q + i), a);
    }
    out[r] = _mm512_reduce_add_ps(a) * scale;
  }
}

/* 64 output columns at a time stay in registers while all rows stream past. */
static void avx512_wsum_rows_f16(const uint16_t *v, int64_t stride, int64_t rows, const float *w, int64_t d,
                                 float *out) {
  for (int64_t c = 0; c < d; c += 64) {
    const __mmask16 m0 = lanes_left(d - c), m1 = lanes_left(d - c - 16), m2 = lanes_left(d - c - 32),
                    m3 = lanes_left(d - c - 48);
    __m512 a0 = _mm512_maskz_loadu_ps(m0, out + c), a1 = _mm512_maskz_loadu_ps(m1, out + c + 16);
    __m512 a2 = _mm512_maskz_loadu_ps(m2, out + c + 32), a3 = _mm512_maskz_loadu_ps(m3, out + c + 48);
    const uint16_t *vr = v + c;
    for (int64_t r = 0; r < rows; r++, vr += stride) {
      const __m512 wr = _mm512_set1_ps(w[r]);
      a0 = _mm512_fmadd_ps(wr, load_f16(m0, vr), a0);
      a1 = _mm512_fmadd_ps(wr, load_f16(m1, vr + 16), a1);
      a2 = _mm512_fmadd_ps(wr, load_f16(m2, vr + 32), a2);
      a3 = _mm512_fmadd_ps(wr, load_f16(m3, vr + 48), a3);
    }
    _mm512_mask_storeu_ps(out + c, m0, a0);
    _mm512_mask_storeu_ps(out + c + 16, m1, a1);
    _mm512_mask_storeu_ps(out + c + 32, m2, a2);
    _mm512_mask_storeu_ps(out + c + 48, m3, a3);
  }
}

static void avx512_wsum_rows_f32(const float *v, int64_t stride, int64_t rows, const float *w, int64_t d,
                                 float *out) {
  for (int64_t c = 0; c < d; c += 64) {
    const __mmask16 m0 = lanes_left(d - c), m1 = lanes_left(d - c - 16), m2 = lanes_left(d - c - 32),
                    m3 = lanes_left(d - c - 48);
    __m512 a0 = _mm512_maskz_loadu_ps(m0, out + c), a1 = _mm512_maskz_loadu_ps(m1, out + c + 16);
    __m512 a2 = _mm512_maskz_loadu_ps(m2, out + c + 32), a3 = _mm512_maskz_loadu_ps(m3, out + c + 48);
    const float *vr = v + c;
    for (int64_t r = 0; r < rows; r++, vr += stride) {
      const __m512 wr = _mm512_set1_ps(w[r]);
      a0 = _mm512_fmadd_ps(wr, _mm512_maskz_loadu_ps(m0, vr), a0);
      a1 = _mm512_fmadd_ps(wr, _mm512_maskz_loadu_ps(m1, vr + 16), a1);
      a2 = _mm512_fmadd_ps(wr, _mm512_maskz_loadu_ps(m2, vr + 32), a2);
      a3 = _mm512_fmadd_ps(wr, _mm512_maskz_loadu_ps(m3, vr + 48), a3);
    }
    _mm512_mask_storeu_ps(out + c, m0, a0);
    _mm512_mask_storeu_ps(out + c + 16, m1, a1);
    _mm512_mask_storeu_ps(out + c + 32, m2, a2);
    _mm512_mask_storeu_ps(out + c + 48, m3, a3);
  }
}

const cairn_ops_table cairn_ops_avx512 = {
    avx512_sum_squares,   avx512_scale_mul,     avx512_scale,         avx512_max,
    avx512_exp_sum,       avx512_swiglu,        avx512_geglu,         avx512_add,
    avx512_to_f16,        avx512_round_f16,     avx512_dot_rows_f16,  avx512_dot_rows_f32,
    avx512_wsum_rows_f16, avx512_wsum_rows_f32,
};
#endif
