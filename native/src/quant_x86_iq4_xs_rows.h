/*
 * One token against IQ4_XS rows on AVX-512 (decode), included by quant_x86_kernels.h where the
 * panel kernels exist (QX_PANEL_ORDER). Batches take the panel and direct products
 * (quant_panel_avx512.c), which form each output as: per super-block the exact integer
 * Σ_ib (scale_ib - 32) (values . activations of sub-block ib), then acc = fma(float(it), d x da,
 * acc), super-block by super-block. This kernel forms the same integer (any order: integers) and
 * takes the same steps, so a token's result is the same alone as in a batch; it exists because a
 * direct product of one token unpacks 16 rows into a panel block per unit, which left decode at
 * 65-83% of the bandwidth limit (bench/RESULTS.md).
 *
 * A row's 64 code bytes of four sub-blocks are one vector: low nibbles (elements 32 ib + j) and
 * high nibbles (32 ib + 16 + j) become the values + 128 by a byte shuffle, and each is dotted
 * (dpbusd) with the activations regrouped once per call into that order; every 32-bit lane holds
 * 8 elements of one sub-block, so the offset comes off lane by lane (a per-call start value) and
 * the sub-block's scale multiplies the lane.
 */
#ifndef CAIRN_QUANT_X86_IQ4_XS_ROWS_H
#define CAIRN_QUANT_X86_IQ4_XS_ROWS_H

/* Per super-block of the call's activations: for each half h (sub-blocks 4h..4h+3) the elements
   under the rows' low and high nibbles, and -128 x each lane's 8 of them. */
typedef struct {
  __m512i_u lo[2], hi[2], init[2];
} qx_iq4_xs_prepared;

/* Super-blocks per row the buffer holds (24 KiB: rows of up to 16384 elements; longer take the direct products). */
#define QX_IQ4_XS_PREPARED_MAX 64

QX_INLINE void qx_iq4_xs_prepare(int cols, const uint8_t *a, qx_iq4_xs_prepared *p) {
  const __m512i ones = _mm512_set1_epi8(1);
  for (int b = 0; b < cols / QK_K; b++, p++) {
    const int8_t *aq = (const int8_t *)a + QK_K * b;
    for (int h = 0; h < 2; h++) {
      const __m512i x0 = _mm512_loadu_si512((const void *)(aq + 128 * h)), x1 = _mm512_loadu_si512((const void *)(aq + 128 * h + 64));
      /* 128-bit lanes of x0, x1: [ib lo][ib hi][ib+1 lo][ib+1 hi] */
      const __m512i lo = _mm512_shuffle_i64x2(x0, x1, 0x88), hi = _mm512_shuffle_i64x2(x0, x1, 0xdd);
      const __m512i sums = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, lo), ones, hi);
      p->lo[h] = lo;
      p->hi[h] = hi;
      p->init[h] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(sums, 7));
    }
  }
}

/* Super-block x's exact integer against its prepared activations, in 16 lanes. */
QX_INLINE __m512i qx_iq4_xs_block(const block_iq4_xs *x, const qx_iq4_xs_prepared *p) {
  const __m512i low = _mm512_set1_epi8(0x0f);
  /* The code values + 128 (a flip of the top bit), unsigned for dpbusd. */
  const __m512i table = _mm512_xor_si512(_mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)quant_iq4_values)), _mm512_set1_epi8((char)0x80));
  uint32_t sl;
  uint16_t sh;
  memcpy(&sl, x->scales_l, 4);
  memcpy(&sh, &x->scales_h, 2);
  const __m512i vl = _mm512_set1_epi32((int)sl), vh = _mm512_set1_epi32(sh);
  __m512i isum = _mm512_setzero_si512();
  for (int h = 0; h < 2; h++) {
    /* Lane l belongs to sub-block ib = 4h + l / 4: its scale's low 4 bits at bit 4 ib of scales_l, high 2 at bit 2 ib of scales_h. */
    const __m512i s4 = _mm512_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12);
    const __m512i s2 = _mm512_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2, 4, 4, 4, 4, 6, 6, 6, 6);
    const __m512i ls = _mm512_or_si512(_mm512_and_si512(_mm512_srlv_epi32(vl, _mm512_add_epi32(s4, _mm512_set1_epi32(16 * h))), _mm512_set1_epi32(15)),
                                       _mm512_slli_epi32(_mm512_and_si512(_mm512_srlv_epi32(vh, _mm512_add_epi32(s2, _mm512_set1_epi32(8 * h))), _mm512_set1_epi32(3)), 4));
    const __m512i q = _mm512_loadu_si512((const void *)(x->qs + 64 * h));
    const __m512i wl = _mm512_shuffle_epi8(table, _mm512_and_si512(q, low));
    const __m512i wh = _mm512_shuffle_epi8(table, _mm512_and_si512(_mm512_srli_epi16(q, 4), low));
    const __m512i dot = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(p->init[h], wl, p->lo[h]), wh, p->hi[h]);
    isum = _mm512_add_epi32(isum, _mm512_mullo_epi32(dot, _mm512_sub_epi32(ls, _mm512_set1_epi32(32))));
  }
  return isum;
}

/* Super-blocks b0 .. b0 + m - 1 (m <= 4) of a row: their integers reduced together, then the steps in order. */
QX_INLINE float qx_iq4_xs_group(const int m, int b0, const block_iq4_xs *x, size_t ahead, const qx_iq4_xs_prepared *p, const float *da,
                                float acc) {
  qx_prefetch_l2((const uint8_t *)(x + b0) + ahead, (size_t)m * sizeof(block_iq4_xs));
  __m512i isum[4];
  float s[4] = {0, 0, 0, 0};
  for (int j = 0; j < 4; j++) isum[j] = _mm512_setzero_si512();
  _Pragma("GCC unroll 4") for (int j = 0; j < m; j++) {
    isum[j] = qx_iq4_xs_block(x + b0 + j, p + b0 + j);
    s[j] = qx_half(&x[b0 + j].d) * da[b0 + j];
  }
  return qx_fma_lanes(acc, _mm_cvtepi32_ps(qx_sum4_epi32(isum)), _mm_loadu_ps(s), m);
}

QX_INLINE float qx_iq4_xs_row(int cols, const uint8_t *w, size_t ws, const qx_iq4_xs_prepared *p, const float *da) {
  const int nb = cols / QK_K;
  const block_iq4_xs *x = (const block_iq4_xs *)w;
  const size_t ahead = QX_PFM * qx_ahead(1, ws);
  float acc = 0;
  int b0 = 0;
  for (; b0 + 4 <= nb; b0 += 4) acc = qx_iq4_xs_group(4, b0, x, ahead, p, da, acc);
  switch (nb - b0) {
    case 3: return qx_iq4_xs_group(3, b0, x, ahead, p, da, acc);
    case 2: return qx_iq4_xs_group(2, b0, x, ahead, p, da, acc);
    case 1: return qx_iq4_xs_group(1, b0, x, ahead, p, da, acc);
    default: return acc;
  }
}

/* IQ4_XS products: one token on these rows, more on the direct and panel products (the same arithmetic). */
static void qx_iq4_xs_any(int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, int nt, float *y, size_t ys) {
  static __thread qx_iq4_xs_prepared prepared[QX_IQ4_XS_PREPARED_MAX] __attribute__((aligned(64)));
  static __thread qx_prepared_for prepared_for;
  if (nt != 1 || cols / QK_K > QX_IQ4_XS_PREPARED_MAX) {
    quant_direct_iq4_xs_avx512(cols, w, ws, nr, a, as, nt, y, ys);
    return;
  }
  if (qx_prepare_needed(&prepared_for, a, cols)) qx_iq4_xs_prepare(cols, a, prepared);
  const float *da = (const float *)(a + cols);
  for (int r = 0; r < nr; r++) y[r] = qx_iq4_xs_row(cols, w + (size_t)r * ws, ws, prepared, da);
}

#endif
