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
