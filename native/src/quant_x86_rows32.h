/*
 * One token against rows of Q5_0 or Q8_0 on AVX-512 (decode), included by quant_x86_kernels.h
 * where the panel kernels exist (QX_PANEL_ORDER); batches take the panel and direct products
 * (quant_panel_avx512.c), which form each output block by block: acc = fma(float(exact dot), d x
 * da, acc). The direct products of one token unpack 16 rows into a panel block by block: on Zen 4
 * Q5_0 decoded a quarter slower there than on rows, and on Zen 5 Q8_0 read memory at 49-53 GB/s
 * that way against 61-64 on these rows (8192 x 2048, 2 threads). (Q4_0 stays on the direct
 * products: on these rows it read 36-40 GB/s against their 41-51, its half-size blocks paying
 * the rows' scalar scale gathers twice as often per byte.) One token takes these rows, with the same steps: four rows side by
 * side, each row's block pair one dpbusd in the plain layout (lanes 0-7 the first block, 8-15 the
 * second) from the per-call prepared activations, the four rows' lane sums reduced together into
 * [row 0..3] of each block, and the four rows' chains of f32 steps one 128-bit vector, block by
 * block. The integer dots are exact, so their lane grouping does not change them.
 */
#ifndef CAIRN_QUANT_X86_ROWS32_H
#define CAIRN_QUANT_X86_ROWS32_H

/* The formats of these rows: their quants as unsigned bytes (value + offset) and block sizes. */
enum { QX_ROWS_Q5_0, QX_ROWS_Q8_0 };

QX_INLINE size_t qx_rows32_block_bytes(const int fmt) { return fmt == QX_ROWS_Q5_0 ? sizeof(block_q5_0) : sizeof(block_q8_0); }

/* The offset a format's unsigned quants carry, taken back through the activation sums. */
QX_INLINE int qx_rows32_offset(const int fmt) { return fmt == QX_ROWS_Q5_0 ? 16 : 128; }

/* Four rows' pair dots (exact int32 lanes) as [rows 0..3] of the first block in 128-bit lane 0 and of the second in lane 2. */
QX_INLINE __m512i qx_rows4_pair_sums(__m512i v0, __m512i v1, __m512i v2, __m512i v3) {
  const __m512i a = _mm512_add_epi32(_mm512_unpacklo_epi32(v0, v1), _mm512_unpackhi_epi32(v0, v1));
  const __m512i b = _mm512_add_epi32(_mm512_unpacklo_epi32(v2, v3), _mm512_unpackhi_epi32(v2, v3));
  const __m512i c = _mm512_add_epi32(_mm512_unpacklo_epi64(a, b), _mm512_unpackhi_epi64(a, b));
  return _mm512_add_epi32(c, _mm512_shuffle_i32x4(c, c, _MM_SHUFFLE(2, 3, 0, 1)));
}

/*
 * Blocks b and b + 1 (`two`) or b alone (its upper half meets zero activations) of a row in the plain layout: each
 * block's 32 elements in order as unsigned bytes (Q8_0's flipped to value + 128).
 */
QX_INLINE __m512i qx_rows32_load(const int fmt, const uint8_t *row, int b, const int two) {
  if (fmt == QX_ROWS_Q8_0) {
    const block_q8_0 *x = (const block_q8_0 *)row + b;
    const __m256i lo = _mm256_loadu_si256((const __m256i *)x[0].qs);
    const __m512i q = two ? _mm512_inserti64x4(_mm512_castsi256_si512(lo), _mm256_loadu_si256((const __m256i *)x[1].qs), 1)
                          : _mm512_zextsi256_si512(lo);
    /* A lone block's upper half flips to 128s, which meet zero activations there. */
    return _mm512_xor_si512(q, _mm512_set1_epi8((char)0x80));
  }
  if (!two) {
    qx_w32 lo;
    qx_load_q5_0(row, b, &lo);
    return _mm512_zextsi256_si512(lo.q);
  }
  __m512i q;
  float d0, d1;
  qx_load2_q5_0_plain(row, b, &q, &d0, &d1);
  return q;
}

/* The f16 scales of blocks b and b + 1 of R (<= 4) rows as [d(b) rows 0..3, d(b + 1) rows 0..3] in f32 (zero past R). */
QX_INLINE __m256 qx_rows32_scales4(const int fmt, const int R, const uint8_t *w, size_t ws, int b, const int two) {
  const size_t bb = qx_rows32_block_bytes(fmt);
  uint16_t h[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int r = 0; r < R; r++) {
    /* d is every one of these blocks' first field */
    memcpy(&h[r], w + (size_t)r * ws + (size_t)b * bb, 2);
    if (two) memcpy(&h[4 + r], w + (size_t)r * ws + (size_t)(b + 1) * bb, 2);
  }
  return _mm256_cvtph_ps(_mm_setr_epi16((short)h[0], (short)h[1], (short)h[2], (short)h[3], (short)h[4], (short)h[5], (short)h[6], (short)h[7]));
}

/* R (1..4) rows from w: y[r] for each. */
QX_INLINE void qx_rows32_rows4(const int fmt, const int R, int cols, const uint8_t *w, size_t ws, const uint8_t *a, const qx_pair_prepared *p, float *y) {
  const int nb = cols / QK;
  const float *da = (const float *)(a + cols);
  const size_t bb = qx_rows32_block_bytes(fmt), ahead = qx_ahead(R, ws);
  __m128 acc = _mm_setzero_ps();
  int b = 0;
  for (; b + 2 <= nb; b += 2, p++) {
    __m512i v[4];
    for (int r = 0; r < 4; r++) {
      if (r >= R) {
        v[r] = _mm512_setzero_si512();
        continue;
      }
      _mm_prefetch((const char *)(w + r * ws + ahead + (size_t)b * bb), _MM_HINT_T1);
      /* A Q8_0 pair spans 68 bytes: its second line too. */
      if (fmt == QX_ROWS_Q8_0) _mm_prefetch((const char *)(w + r * ws + ahead + (size_t)b * bb + 64), _MM_HINT_T1);
      v[r] = _mm512_dpbusd_epi32(p->init, qx_rows32_load(fmt, w + r * ws, b, 1), p->aq);
    }
    const __m512 f = _mm512_cvtepi32_ps(qx_rows4_pair_sums(v[0], v[1], v[2], v[3]));
    /* d x da, as the panels form each block's factor; then one fma per block, in order. */
    const __m256 s = _mm256_mul_ps(qx_rows32_scales4(fmt, R, w, ws, b, 1), _mm256_set_m128(_mm_set1_ps(da[b + 1]), _mm_set1_ps(da[b])));
    acc = _mm_fmadd_ps(_mm512_castps512_ps128(f), _mm256_castps256_ps128(s), acc);
    acc = _mm_fmadd_ps(_mm512_extractf32x4_ps(f, 2), _mm256_extractf128_ps(s, 1), acc);
  }
  if (b < nb) { /* a lone last block, in the first block's place of a pair (the prepared upper half is zero) */
    __m512i v[4];
    for (int r = 0; r < 4; r++)
      v[r] = r < R ? _mm512_dpbusd_epi32(p->init, qx_rows32_load(fmt, w + r * ws, b, 0), p->aq) : _mm512_setzero_si512();
    const __m512 f = _mm512_cvtepi32_ps(qx_rows4_pair_sums(v[0], v[1], v[2], v[3]));
    const __m256 s = _mm256_mul_ps(qx_rows32_scales4(fmt, R, w, ws, b, 0), _mm256_set1_ps(da[b]));
    acc = _mm_fmadd_ps(_mm512_castps512_ps128(f), _mm256_castps256_ps128(s), acc);
  }
  float out[4];
  _mm_storeu_ps(out, acc);
  for (int r = 0; r < R; r++) y[r] = out[r];
}

/* Products of a 32-element format: one token on these rows, more on the direct and panel products
   (the same steps), as is a row too long for the per-thread prepared activations. */
#define QX_ROWS32_ANY(NAME, FMT)                                                                                          \
  static void qx_##NAME##_any(int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, int nt, float *y, \
                              size_t ys) {                                                                                \
    enum { PAIRS = 128 };                                                                                                 \
    static __thread qx_pair_prepared prepared[PAIRS] __attribute__((aligned(64)));                                       \
    static __thread qx_prepared_for prepared_for;                                                                         \
    if (nt != 1 || (cols / QK + 1) / 2 > PAIRS) {                                                                         \
      quant_direct_##NAME##_avx512(cols, w, ws, nr, a, as, nt, y, ys);                                                    \
      return;                                                                                                             \
    }                                                                                                                     \
    if (qx_prepare_needed(&prepared_for, a, cols)) qx_pairs_prepare(cols, a, prepared, qx_rows32_offset(FMT), 0);        \
    int r = 0;                                                                                                            \
    for (; r + 4 <= nr; r += 4) qx_rows32_rows4(FMT, 4, cols, w + (size_t)r * ws, ws, a, prepared, y + r);               \
    switch (nr - r) {                                                                                                     \
      case 3: qx_rows32_rows4(FMT, 3, cols, w + (size_t)r * ws, ws, a, prepared, y + r); break;                           \
      case 2: qx_rows32_rows4(FMT, 2, cols, w + (size_t)r * ws, ws, a, prepared, y + r); break;                           \
      case 1: qx_rows32_rows4(FMT, 1, cols, w + (size_t)r * ws, ws, a, prepared, y + r); break;                           \
      default: break;                                                                                                     \
    }                                                                                                                     \
  }
QX_ROWS32_ANY(q5_0, QX_ROWS_Q5_0)
QX_ROWS32_ANY(q8_0, QX_ROWS_Q8_0)

#endif
