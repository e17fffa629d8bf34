/*
 * A 16-row transpose of 16-byte pieces, shared by the panel units of the batch products
 * (panel_units.h) and the Q8_0 attention scores (ops_avx512.c).
 */
#ifndef CAIRN_TRANSPOSE16_H
#define CAIRN_TRANSPOSE16_H

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Dword j (j < 4) of the 16 bytes at rows[r] + off, for r = 0..15, into out[j] lane r: a 4x4
 * dword transpose within each 128-bit lane, after loading rows k, k+4, k+8, k+12 into the
 * lanes of register k (so that lane positions come out in row order). Row by row reads keep
 * the weights streaming; a gather per dword measured 2-3x slower for the whole unpacking.
 */
static inline __attribute__((always_inline)) void px_transpose16(const uint8_t *const *rows, size_t off, __m512i out[4]) {
  __m512i v[4];
  for (int k = 0; k < 4; k++) {
    __m512i x = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(rows[k] + off)));
    x = _mm512_inserti32x4(x, _mm_loadu_si128((const __m128i *)(rows[k + 4] + off)), 1);
    x = _mm512_inserti32x4(x, _mm_loadu_si128((const __m128i *)(rows[k + 8] + off)), 2);
    v[k] = _mm512_inserti32x4(x, _mm_loadu_si128((const __m128i *)(rows[k + 12] + off)), 3);
  }
  const __m512i t0 = _mm512_unpacklo_epi32(v[0], v[1]), t1 = _mm512_unpackhi_epi32(v[0], v[1]);
  const __m512i t2 = _mm512_unpacklo_epi32(v[2], v[3]), t3 = _mm512_unpackhi_epi32(v[2], v[3]);
  out[0] = _mm512_unpacklo_epi64(t0, t2);
  out[1] = _mm512_unpackhi_epi64(t0, t2);
  out[2] = _mm512_unpacklo_epi64(t1, t3);
  out[3] = _mm512_unpackhi_epi64(t1, t3);
}

#endif
