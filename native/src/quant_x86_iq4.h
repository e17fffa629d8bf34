/*
 * IQ4_XS on AVX2 (AVX-512 builds too), included by quant_x86_kernels.h. A super-block of a row is
 * unpacked once into eight vectors of 32 code values (a byte shuffle through the 16 values) and
 * serves every token of the call: per 32 weights the values take the activations' signs, one
 * maddubs with the activations' magnitudes (up to 128, which a Q8_K row holds: as a signed byte it
 * could not change sign) and one madd with the sub-block's scale. The
 * integer is exactly the scalar kernel's and the f32 steps after it are its steps in its order, so
 * the results are the scalar kernel's and a token's result does not depend on its batch.
 */
#ifndef CAIRN_QUANT_X86_IQ4_H
#define CAIRN_QUANT_X86_IQ4_H

typedef struct {
  __m256i v[8];  /* sub-block ib's 32 values (signed) */
  __m256i sc[8];        /* int16: the sub-block's scale - 32 in every word */
  float d;
} qx_iq4;

QX_INLINE void qx_unpack_iq4_xs(const uint8_t *row, int b, qx_iq4 *o) {
  const block_iq4_xs *x = (const block_iq4_xs *)row + b;
  const __m256i table = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)quant_iq4_values));
  const __m128i low = _mm_set1_epi8(0x0f);
  for (int ib = 0; ib < 8; ib++) {
    const __m128i q = _mm_loadu_si128((const __m128i *)(x->qs + 16 * ib));
    const __m256i codes = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), low), _mm_and_si128(q, low));
    o->v[ib] = _mm256_shuffle_epi8(table, codes);
    o->sc[ib] = _mm256_set1_epi16((short)(quant_iq4_xs_scale(x, ib) - 32));
  }
  o->d = qx_half(&x->d);
}

/* Σ_ib (scale_ib - 32) x (values . activations of sub-block ib). */
QX_INLINE int qx_iq4_isum(const qx_iq4 *w, const int8_t *aq) {
  __m256i acc = _mm256_setzero_si256();
  for (int ib = 0; ib < 8; ib++) {
    const __m256i a = _mm256_loadu_si256((const __m256i *)(aq + 32 * ib));
    const __m256i p = _mm256_maddubs_epi16(_mm256_abs_epi8(a), _mm256_sign_epi8(w->v[ib], a));
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, w->sc[ib]));
  }
  return qx_hsum_i32(acc);
}

#if defined(__AVX512BW__) && defined(__AVX512VNNI__)
/*
 * On AVX-512 a vector holds two sub-blocks' 64 values (each 16 code bytes broadcast to two lanes,
 * low nibbles then high), their scales beside them, and four super-blocks' (or tokens') sums are
 * reduced together. AVX-512 has no byte sign instruction: the values are negated under the
 * activations' sign mask instead.
 */
typedef struct {
  __m512i v[4], sc[4];
  float d;
} qx_iq4_512;

QX_INLINE void qx_unpack512_iq4_xs(const uint8_t *row, int b, qx_iq4_512 *o) {
  const block_iq4_xs *x = (const block_iq4_xs *)row + b;
  const __m512i table = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)quant_iq4_values));
  const __m512i shifts = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_setr_m128i(_mm_setzero_si128(), _mm_set1_epi16(4))),
                                            _mm256_setr_m128i(_mm_setzero_si128(), _mm_set1_epi16(4)), 1);
  for (int p = 0; p < 4; p++) {
    const __m512i both = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x->qs + 32 * p)));
    const __m512i codes = _mm512_and_si512(_mm512_srlv_epi16(_mm512_shuffle_i64x2(both, both, 0x50), shifts), _mm512_set1_epi8(0x0f));
    o->v[p] = _mm512_shuffle_epi8(table, codes);
    o->sc[p] = _mm512_mask_set1_epi16(_mm512_set1_epi16((short)(quant_iq4_xs_scale(x, 2 * p) - 32)), (__mmask32)0xffff0000u,
                                      (short)(quant_iq4_xs_scale(x, 2 * p + 1) - 32));
  }
  o->d = qx_half(&x->d);
}

QX_INLINE __m512i qx_iq4_512_sums(const qx_iq4_512 *w, const int8_t *aq) {
  __m512i acc = _mm512_setzero_si512();
  for (int p = 0; p < 4; p++) {
    const __m512i a = _mm512_loadu_si512((const void *)(aq + 64 * p));
    const __m512i v = _mm512_mask_sub_epi8(w->v[p], _mm512_movepi8_mask(a), _mm512_setzero_si512(), w->v[p]);
    acc = _mm512_dpwssd_epi32(acc, _mm512_maddubs_epi16(_mm512_abs_epi8(a), v), w->sc[p]);
  }
  return acc;
}

static void qx_iq4_xs(int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, int nt, float *y, size_t ys) {
  const int nb = cols / QK_K;
  float acc[64];
  for (int r = 0; r < nr; r++) {
    const uint8_t *row = w + (size_t)r * ws;
    if (nt == 1) {
      float sum = 0;
      for (int b0 = 0; b0 < nb; b0 += 4) {
        const int m = nb - b0 < 4 ? nb - b0 : 4;
        __m512i is[4];
        float d[4], da4[4];
        for (int i = 0; i < 4; i++) is[i] = _mm512_setzero_si512();
        for (int i = 0; i < m; i++) {
          qx_iq4_512 wb;
          qx_unpack512_iq4_xs(row, b0 + i, &wb);
          QX_Q8K(a, cols, b0 + i);
          (void)bsums;
          is[i] = qx_iq4_512_sums(&wb, aq);
          d[i] = wb.d, da4[i] = da;
        }
        int32_t isum[4];
        _mm_storeu_si128((__m128i *)isum, qx_sum4_epi32(is));
        for (int i = 0; i < m; i++) sum = sum + (d[i] * da4[i]) * (float)isum[i];
      }
      y[r] = sum;
      continue;
    }
    for (int t0 = 0; t0 < nt; t0 += 64) {
      const int T = nt - t0 < 64 ? nt - t0 : 64;
      for (int t = 0; t < T; t++) acc[t] = 0;
      for (int b = 0; b < nb; b++) {
        qx_iq4_512 wb;
        qx_unpack512_iq4_xs(row, b, &wb);
        for (int t1 = 0; t1 < T; t1 += 4) {
          const int m = T - t1 < 4 ? T - t1 : 4;
          __m512i is[4];
          float da4[4];
          for (int i = 0; i < 4; i++) is[i] = _mm512_setzero_si512();
          for (int i = 0; i < m; i++) {
            QX_Q8K(a + (size_t)(t0 + t1 + i) * as, cols, b);
            (void)bsums;
            is[i] = qx_iq4_512_sums(&wb, aq);
            da4[i] = da;
          }
          int32_t isum[4];
          _mm_storeu_si128((__m128i *)isum, qx_sum4_epi32(is));
          for (int i = 0; i < m; i++) acc[t1 + i] = acc[t1 + i] + (wb.d * da4[i]) * (float)isum[i];
        }
      }
      for (int t = 0; t < T; t++) y[(size_t)(t0 + t) * ys + r] = acc[t];
    }
  }
}
#else
static void qx_iq4_xs(int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, int nt, float *y, size_t ys) {
  const int nb = cols / QK_K;
  float acc[64];
  for (int r = 0; r < nr; r++) {
    const uint8_t *row = w + (size_t)r * ws;
    for (int t0 = 0; t0 < nt; t0 += 64) {
      const int T = nt - t0 < 64 ? nt - t0 : 64;
      for (int t = 0; t < T; t++) acc[t] = 0;
      for (int b = 0; b < nb; b++) {
        qx_iq4 wb;
        qx_unpack_iq4_xs(row, b, &wb);
        for (int t = 0; t < T; t++) {
          QX_Q8K(a + (size_t)(t0 + t) * as, cols, b);
          (void)bsums;
          acc[t] = acc[t] + (wb.d * da) * (float)qx_iq4_isum(&wb, aq);
        }
      }
      for (int t = 0; t < T; t++) y[(size_t)(t0 + t) * ys + r] = acc[t];
    }
  }
}

#endif

#endif
