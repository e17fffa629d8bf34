/*
 * IQ4_NL on AVX2 (the AVX-512 table takes the same code), included by quant_x86_kernels.h: per
 * 32-element block the codes' values by a byte shuffle, the Q8_0 activations' signs moved onto them
 * (as IQ4_XS's kernels do), one maddubs and one madd; a block is unpacked once per row and serves
 * every token of the call. The integer sums and the f32 step per block are the scalar kernel's, so
 * the results are its results bit for bit, whatever the batch.
 */
#ifndef CAIRN_QUANT_X86_IQ4_NL_H
#define CAIRN_QUANT_X86_IQ4_NL_H

/* A block's 32 values: its codes (qx_nibbles) through the table. */
QX_INLINE __m256i qx_iq4_nl_values(const block_iq4_nl *x) {
  return _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)quant_iq4_values)), qx_nibbles(x->qs));
}

/* The block's integer dot in 8 lanes: values . activations (|activation| <= 127 under the Q8_0 rule). */
QX_INLINE __m256i qx_iq4_nl_lanes(__m256i v, const int8_t *aq) {
  const __m256i a = _mm256_loadu_si256((const __m256i *)aq);
  return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(a), _mm256_sign_epi8(v, a)), _mm256_set1_epi16(1));
}

/* Four blocks' lane sums reduced together: element i the sum of v[i]'s 8 lanes (exact integers). */
QX_INLINE __m128i qx_iq4_nl_sum4(__m256i v0, __m256i v1, __m256i v2, __m256i v3) {
  const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(v0, v1), _mm256_hadd_epi32(v2, v3));
  return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

/*
 * Each row's blocks four at a time: unpacked once for every token of the call, each token's four
 * integer dots reduced together, then the scalar kernel's f32 step per block, in block order.
 */
static void qx_iq4_nl(int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, int nt, float *y, size_t ys) {
  const int nb = cols / QK;
  float acc[QX_LOW_K_T];
  for (int r = 0; r < nr; r++) {
    const block_iq4_nl *x = (const block_iq4_nl *)(w + (size_t)r * ws);
    for (int t0 = 0; t0 < nt; t0 += QX_LOW_K_T) {
      const int T = nt - t0 < QX_LOW_K_T ? nt - t0 : QX_LOW_K_T;
      for (int t = 0; t < T; t++) acc[t] = 0;
      int b = 0;
      for (; b + 4 <= nb; b += 4) {
        const __m256i v0 = qx_iq4_nl_values(x + b), v1 = qx_iq4_nl_values(x + b + 1), v2 = qx_iq4_nl_values(x + b + 2), v3 = qx_iq4_nl_values(x + b + 3);
        const float d[4] = {qx_half(&x[b].d), qx_half(&x[b + 1].d), qx_half(&x[b + 2].d), qx_half(&x[b + 3].d)};
        for (int t = 0; t < T; t++) {
          const uint8_t *at = a + (size_t)(t0 + t) * as;
          const int8_t *aq = (const int8_t *)at + QK * b;
          const float *da = (const float *)(at + cols) + b;
          int32_t s[4];
          _mm_storeu_si128((__m128i *)s, qx_iq4_nl_sum4(qx_iq4_nl_lanes(v0, aq), qx_iq4_nl_lanes(v1, aq + QK), qx_iq4_nl_lanes(v2, aq + 2 * QK),
                                                          qx_iq4_nl_lanes(v3, aq + 3 * QK)));
          float sum = acc[t];
          for (int i = 0; i < 4; i++) sum = sum + (d[i] * da[i]) * (float)s[i];
          acc[t] = sum;
        }
      }
      for (; b < nb; b++) {
        const __m256i v = qx_iq4_nl_values(x + b);
        const float d = qx_half(&x[b].d);
        for (int t = 0; t < T; t++) {
          const uint8_t *at = a + (size_t)(t0 + t) * as;
          const float da = ((const float *)(at + cols))[b];
          acc[t] = acc[t] + (d * da) * (float)qx_hsum_i32(qx_iq4_nl_lanes(v, (const int8_t *)at + QK * b));
        }
      }
      for (int t = 0; t < T; t++) y[(size_t)(t0 + t) * ys + r] = acc[t];
    }
  }
}

#endif
