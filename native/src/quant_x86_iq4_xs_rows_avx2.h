/*
 * One token against IQ4_XS rows on AVX2 (decode), included by quant_x86_kernels.h after the
 * low-bit kernels (quant_x86_low_k.h), whose products serve batches. Those unpack a super-block
 * sub-block by sub-block (a scalar scale decode and a 16-byte nibble split each) and take every
 * activation's absolute value per row; here two sub-blocks' 32 code bytes are one vector (low
 * nibbles: elements 0-15 of each, high: 16-31), the activations are regrouped once per call under
 * them (with their absolute values), and the eight scales are decoded together. The integer of a
 * super-block is exact either way and its step is qx_low_k_step's, so a token's result is the same
 * alone as in a batch.
 */
#ifndef CAIRN_QUANT_X86_IQ4_XS_ROWS_AVX2_H
#define CAIRN_QUANT_X86_IQ4_XS_ROWS_AVX2_H

/* Per super-block of the call's activations, for each pair p of sub-blocks (2p, 2p + 1): the
   elements under the low and the high nibbles, and their absolute values. */
typedef struct {
  __m256i_u lo[4], hi[4], abs_lo[4], abs_hi[4];
} qx_iq4_xs_prepared2;

/* Super-blocks per row the buffer holds (16 KiB: rows of up to 8192 elements; longer take the batch kernels). */
#define QX_IQ4_XS_PREPARED2_MAX 32

QX_INLINE void qx_iq4_xs_prepare2(int cols, const uint8_t *a, qx_iq4_xs_prepared2 *p) {
  for (int b = 0; b < cols / QK_K; b++, p++) {
    const int8_t *aq = (const int8_t *)a + QK_K * b;
    for (int k = 0; k < 4; k++) {
      const __m256i x0 = _mm256_loadu_si256((const __m256i *)(aq + 64 * k)), x1 = _mm256_loadu_si256((const __m256i *)(aq + 64 * k + 32));
      /* x0 = [2k lo][2k hi], x1 = [2k+1 lo][2k+1 hi] (16 elements a 128-bit lane) */
      const __m256i lo = _mm256_permute2x128_si256(x0, x1, 0x20), hi = _mm256_permute2x128_si256(x0, x1, 0x31);
      p->lo[k] = lo;
      p->hi[k] = hi;
      p->abs_lo[k] = _mm256_abs_epi8(lo);
      p->abs_hi[k] = _mm256_abs_epi8(hi);
    }
  }
}

/* Super-block x's exact integer Σ_ib (scale_ib - 32) (values . activations) against its prepared activations. */
QX_INLINE int qx_iq4_xs_block2(const block_iq4_xs *x, const qx_iq4_xs_prepared2 *p) {
  const __m256i table = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)quant_iq4_values)), low = _mm256_set1_epi8(0x0f);
  uint32_t sl;
  uint16_t sh;
  memcpy(&sl, x->scales_l, 4);
  memcpy(&sh, &x->scales_h, 2);
  /* Scale ib - 32 in dword ib, then in both words of it. */
  const __m256i ls = _mm256_or_si256(
      _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)sl), _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28)), _mm256_set1_epi32(15)),
      _mm256_slli_epi32(_mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(sh), _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14)), _mm256_set1_epi32(3)), 4));
  const __m256i sc = _mm256_and_si256(_mm256_sub_epi32(ls, _mm256_set1_epi32(32)), _mm256_set1_epi32(0xffff));
  const __m256i sc2 = _mm256_or_si256(sc, _mm256_slli_epi32(sc, 16));
  __m256i acc = _mm256_setzero_si256();
  for (int k = 0; k < 4; k++) {
    /* Sub-block 2k's scale in the low 128-bit lane's words, 2k + 1's in the high one's. */
    const __m256i s = _mm256_permutevar8x32_epi32(sc2, _mm256_setr_epi32(2 * k, 2 * k, 2 * k, 2 * k, 2 * k + 1, 2 * k + 1, 2 * k + 1, 2 * k + 1));
    const __m256i q = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * k));
    const __m256i wl = _mm256_shuffle_epi8(table, _mm256_and_si256(q, low));
    const __m256i wh = _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16(q, 4), low));
    /* |a| x (w with a's sign): pairs within int16 (|w|, |a| <= 127). */
    const __m256i pl = _mm256_maddubs_epi16(p->abs_lo[k], _mm256_sign_epi8(wl, p->lo[k]));
    const __m256i ph = _mm256_maddubs_epi16(p->abs_hi[k], _mm256_sign_epi8(wh, p->hi[k]));
    acc = _mm256_add_epi32(acc, _mm256_add_epi32(_mm256_madd_epi16(pl, s), _mm256_madd_epi16(ph, s)));
  }
  return qx_hsum_i32(acc);
}

/* IQ4_XS products on AVX2: one token on these rows, more on the low-bit kernels (the same steps). */
static void qx_iq4_xs_any(int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, int nt, float *y, size_t ys) {
  static __thread qx_iq4_xs_prepared2 prepared[QX_IQ4_XS_PREPARED2_MAX] __attribute__((aligned(32)));
  static __thread qx_prepared_for prepared_for;
  const int nb = cols / QK_K;
  if (nt != 1 || nb > QX_IQ4_XS_PREPARED2_MAX) {
    qx_iq4_xs(cols, w, ws, nr, a, as, nt, y, ys);
    return;
  }
  if (qx_prepare_needed(&prepared_for, a, cols)) qx_iq4_xs_prepare2(cols, a, prepared);
  const float *da = (const float *)(a + cols);
  const size_t ahead = QX_PFM * qx_ahead(1, ws);
  for (int r = 0; r < nr; r++) {
    const block_iq4_xs *x = (const block_iq4_xs *)(w + (size_t)r * ws);
    float acc = 0;
    for (int b = 0; b < nb; b++) {
      qx_prefetch_l2((const uint8_t *)(x + b) + ahead, sizeof(block_iq4_xs));
      acc = qx_low_k_step(QX_LK_IQ4_XS, acc, qx_half(&x[b].d), 0.f, da[b], qx_iq4_xs_block2(x + b, prepared + b), 0);
    }
    y[r] = acc;
  }
}

#endif
