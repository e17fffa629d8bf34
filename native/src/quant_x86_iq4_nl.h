/*
 * IQ4_NL on AVX2 (the AVX-512 table takes the same code), included by quant_x86_kernels.h: per
 * 32-element block the codes' values by a byte shuffle, the Q8_0 activations' signs moved onto them
 * (as IQ4_XS's kernels do), one maddubs and one madd; a block is unpacked once per row and serves
 * every token of the call. The integer sums and the f32 step per block are the scalar kernel's, so
 * the results are its results bit for bit, whatever the batch.
 */
#ifndef CAIRN_QUANT_X86_IQ4_NL_H
#define CAIRN_QUANT_X86_IQ4_NL_H

/* Tokens whose sums one pass over a row keeps. */
#define QX_IQ4_NL_T 64

QX_INLINE __m256i qx_iq4_nl_values(const block_iq4_nl *x) {
  const __m256i table = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)quant_iq4_values));
  const __m128i q = _mm_loadu_si128((const __m128i *)x->qs), low = _mm_set1_epi8(0x0f);
  return _mm256_shuffle_epi8(table, _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), low), _mm_and_si128(q, low)));
}

/* The block's integer dot: values . activations (|activation| <= 127 under the Q8_0 rule). */
QX_INLINE int qx_iq4_nl_dot(__m256i v, const int8_t *aq) {
  const __m256i a = _mm256_loadu_si256((const __m256i *)aq);
  return qx_hsum_i32(_mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(a), _mm256_sign_epi8(v, a)), _mm256_set1_epi16(1)));
}

static void qx_iq4_nl(int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, int nt, float *y, size_t ys) {
  const int nb = cols / QK;
  float acc[QX_IQ4_NL_T];
  for (int r = 0; r < nr; r++) {
    const block_iq4_nl *x = (const block_iq4_nl *)(w + (size_t)r * ws);
    for (int t0 = 0; t0 < nt; t0 += QX_IQ4_NL_T) {
      const int T = nt - t0 < QX_IQ4_NL_T ? nt - t0 : QX_IQ4_NL_T;
      for (int t = 0; t < T; t++) acc[t] = 0;
      for (int b = 0; b < nb; b++) {
        const __m256i v = qx_iq4_nl_values(x + b);
        const float d = qx_half(&x[b].d);
        for (int t = 0; t < T; t++) {
          const uint8_t *at = a + (size_t)(t0 + t) * as;
          const float da = ((const float *)(at + cols))[b];
          acc[t] = acc[t] + (d * da) * (float)qx_iq4_nl_dot(v, (const int8_t *)at + QK * b);
        }
      }
      for (int t = 0; t < T; t++) y[(size_t)(t0 + t) * ys + r] = acc[t];
    }
  }
}

#endif
