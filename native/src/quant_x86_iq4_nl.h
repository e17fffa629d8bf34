/*
 * IQ4_NL on AVX2, included by quant_x86_kernels.h (AVX-512 takes the panel and direct products of
 * quant_panel_avx512.c instead): each block's codes become their signed values by a byte shuffle,
 * and the blocks go through Q8_0's tiles on that level (the sign-trick dot, per-lane sums of rows x
 * tokens), so a row's block is loaded once for the tile's tokens and one token keeps several rows
 * in flight. A token's result does not depend on its tile (each row and token sums in its own lanes).
 */
#ifndef CAIRN_QUANT_X86_IQ4_NL_H
#define CAIRN_QUANT_X86_IQ4_NL_H

/* A block's 32 values: its codes (qx_nibbles) through the table. */
QX_INLINE __m256i qx_iq4_nl_values(const block_iq4_nl *x) {
  return _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)quant_iq4_values)), qx_nibbles(x->qs));
}

#if !QX_PANEL_ORDER
/* A block's 32 values, signed (-127..113: the sign-trick dot holds them, as Q8_0's), and its scale. */
QX_INLINE void qx_load_iq4_nl(const uint8_t *row, int b, qx_w32 *o) {
  const block_iq4_nl *x = (const block_iq4_nl *)row + b;
  o->q = qx_iq4_nl_values(x);
  o->d = qx_half(&x->d);
}
/* The tiles of Q8_0's arithmetic (rows x tokens, per-lane sums): one token keeps QX_RV_NIBBLE rows' blocks in flight. */
QX_TILE32(qx_iq4_nl_t, qx_load_iq4_nl, 0, 1, 0)
QX_GEMM_RV(qx_iq4_nl_t, QX_RV_NIBBLE)
#endif

#endif
