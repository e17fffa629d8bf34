/*
 * Batch products on AMX tiles (Intel Xeon from Sapphire Rapids on): the panel products of
 * quant_panel_avx512.c with each block's integer dots for 16 tokens x 16 weight rows formed by one
 * tile instruction (TDPBSUD) instead of 8 VNNI steps per token.
 *
 * Why it fits: a 32-element panel block (panel_units.h) is byte for byte the B operand of a tile
 * dot product (8 rows of 16 weight rows x 4 unsigned quants), and the converted activations of
 * a block are the A operand as they lie (one row of 32 signed quants per token, the tokens
 * `as` bytes apart). The tile unit returns the exact int32 dot of every token and row, which the
 * vector units then scale exactly as px_run_32 / px_run_k do, operation for operation: the
 * results are the VNNI kernels' bit for bit, so a token's result still does not depend on its
 * batch or on which of the two paths served it.
 *
 * What it costs: tile sums leave the tile unit only through memory (a 1 KiB store, then one
 * vector load per token), and a block's scaling stays on the vector units. Two sets of tiles
 * alternate between consecutive blocks so that one block's tile work overlaps the previous
 * block's scaling.
 *
 * Only the AMX level (dispatch.c: CAIRN_ISA_AMX, granted by the OS) calls into this file.
 */
#if defined(__x86_64__)
#include <stdlib.h>

#include "panel_units.h"

/* Tokens per tile: a tile's 16 rows. */
#define AMX_M 16

#define AMX_INLINE static inline __attribute__((always_inline))

/* The 64-byte tile configuration LDTILECFG reads (palette 1). */
typedef struct __attribute__((aligned(64))) {
  uint8_t palette, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
} amx_config;

/*
 * Tile shapes (configuration is per thread, so each call configures its own and releases the
 * tiles when done: unused tiles cost nothing at a context switch). 32-element formats, two sets
 * that alternate between blocks: tiles 0 and 3 activations (M tokens x 32 quants), 1 and 4
 * weights (8 rows of 16 weight rows x 4 quants), 2 and 5 sums (M tokens x 16 int32). Folded K
 * units: tile 0 activations (M x 64), 1 and 2 the hi and lo weights (16 rows of 16 x 4), 4 and
 * 5 their sums.
 */
static void amx_configure(int M, const int mode) {
  amx_config c;
  memset(&c, 0, sizeof c);
  c.palette = 1;
  const int k = mode == PX_OFFSET ? 32 : 64;
  const int a[2] = {0, 3}, b[2] = {1, mode == PX_OFFSET ? 4 : 2}, s[2] = {mode == PX_OFFSET ? 2 : 4, 5};
  for (int i = 0; i < 2; i++) {
    c.rows[a[i]] = (uint8_t)M;
    c.colsb[a[i]] = (uint16_t)k;
    c.rows[b[i]] = (uint8_t)(k / 4);
    c.colsb[b[i]] = 64;
    c.rows[s[i]] = (uint8_t)M;
    c.colsb[s[i]] = 64;
  }
  /* GCC 12 does not count LDTILECFG's read of the struct as a use and drops the stores above
     (the tiles then stay unconfigured and the first tile load faults): the empty asm reads them. */
  __asm__ volatile("" : : "m"(c) : "memory");
  _tile_loadconfig(&c);
}

/*
 * The exact int32 dots of M tokens' k activations at `act` (tokens `as` apart) with a panel
 * block's k / 4 weight vectors at `wv`, into sums[t][row]. `set` picks the tile set (0 or 1):
 * alternate sets let consecutive blocks overlap.
 */
AMX_INLINE void amx_dot(const int set, const uint8_t *act, size_t as, const void *wv, int32_t (*sums)[16]) {
  if (set == 0) {
    _tile_loadd(0, act, (long)as);
    _tile_loadd(1, wv, 64);
    _tile_zero(2);
    _tile_dpbsud(2, 0, 1);
    _tile_stored(2, sums, 64);
  } else {
    _tile_loadd(3, act, (long)as);
    _tile_loadd(4, wv, 64);
    _tile_zero(5);
    _tile_dpbsud(5, 3, 4);
    _tile_stored(5, sums, 64);
  }
}

/* Token t's activation scale of block (or super-block) b. */
AMX_INLINE float amx_scale(const uint8_t *a, size_t as, int t, int cols, int b) {
  float da;
  memcpy(&da, a + (size_t)t * as + cols + (size_t)b * 4, 4);
  return da;
}

/* px_run_32 for M tokens: blocks b0 .. b0 + nblocks - 1 of a 32-element format into acc[t]. */
AMX_INLINE void amx_run_32(const int M, int b0, int nblocks, const uint8_t *blocks, const uint8_t *a, size_t as,
                           const int32_t *aux, size_t aux_stride, int cols, __m512 *acc) {
  int32_t sums[2][AMX_M][16] __attribute__((aligned(64)));
  for (int b = b0; b < b0 + nblocks; b++) {
    const uint8_t *wv = blocks + (size_t)(b - b0) * PANEL_BLOCK_BYTES;
    const int set = (b - b0) & 1;
    if (set == 0) amx_dot(0, a + (size_t)QK * b, as, wv, sums[0]);
    else amx_dot(1, a + (size_t)QK * b, as, wv, sums[1]);
    const __m512 f0 = _mm512_load_ps((const float *)(wv + 8 * 64));
    for (int t = 0; t < M; t++) {
      const __m512i s = _mm512_add_epi32(_mm512_load_si512(sums[set][t]), _mm512_set1_epi32(aux[(size_t)t * aux_stride + b]));
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(f0, _mm512_set1_ps(amx_scale(a, as, t, cols, b))), acc[t]);
    }
  }
}

/*
 * Folded K-quant units. A K super-block's exact integer dot sums, per sub-block (Q6_K: per half),
 * the scale times the quants' dot; scaling each sub-block's tile sums on the vector units cost more
 * than the dots. So a unit holds the integer weights w = scale x quant (Q4_K: 0..945) or
 * scale x (quant - 32) (Q6_K: -4064..4096, its offset folded in too), split as w = 64 hi + lo with
 * lo = w & 63: two byte panels in tile layout (4 tiles of 64 elements x 16 rows each), so the
 * super-block's integer dot is 64 dot(hi) + dot(lo), eight tile steps with nothing scaled
 * between them. The integer is the one px_run_k forms, so the results are the same bit for bit.
 */
#define AMX_K_HI 0
#define AMX_K_LO 4096
#define AMX_K_D 8192              /* d per row, f32 */
#define AMX_K_DMIN (AMX_K_D + 64) /* Q4_K: dmin per row, f32 */
#define AMX_K_MINS (AMX_K_D + 128) /* Q4_K: the mins as word pairs of sub-blocks (2k, 2k + 1), 4 vectors */
#define AMX_K_UNIT_BYTES (AMX_K_D + 128 + 256)
_Static_assert(AMX_K_UNIT_BYTES % 64 == 0 && AMX_K_UNIT_BYTES % 8 == 0, "folded units stay 64-byte aligned; block_bytes is an eighth of one");

/*
 * hi and lo bytes of w = q x scale - offset for the 4 quants (bytes) of each lane of v: scale_bytes
 * holds the lane's scale in each byte (signed), offset_words 32 x scale per word (Q6_K) or zero.
 */
AMX_INLINE void amx_fold(__m512i v, __m512i scale_bytes, __m512i offset_words, __m512i *hi, __m512i *lo) {
  const __m512i low_byte = _mm512_set1_epi16(0x00ff), six = _mm512_set1_epi16(63);
  /* Products of quants (0..63) and scales (|s| <= 128) fit a word: no saturation. */
  const __m512i we = _mm512_sub_epi16(_mm512_maddubs_epi16(_mm512_and_si512(v, low_byte), scale_bytes), offset_words);
  const __m512i wo = _mm512_sub_epi16(_mm512_maddubs_epi16(_mm512_srli_epi16(v, 8), scale_bytes), offset_words);
  *hi = _mm512_or_si512(_mm512_and_si512(_mm512_srai_epi16(we, 6), low_byte), _mm512_slli_epi16(_mm512_srai_epi16(wo, 6), 8));
  *lo = _mm512_or_si512(_mm512_and_si512(we, six), _mm512_slli_epi16(_mm512_and_si512(wo, six), 8));
}

/* The lane's low byte in every byte, and the lane's low word times -offset... as words. */
AMX_INLINE __m512i amx_bytes_of(__m512i lanes) { return _mm512_mullo_epi32(_mm512_and_si512(lanes, _mm512_set1_epi32(0xff)), _mm512_set1_epi32(0x01010101)); }

/* Writes sub-block sb's 8 quant vectors (q, from a px unit) folded with its scales into the unit at dst. */
AMX_INLINE void amx_fold_block(const __m512i *q, int sb, __m512i scale_bytes_lo, __m512i offset_lo, __m512i scale_bytes_hi,
                               __m512i offset_hi, uint8_t *dst) {
  /* Sub-blocks 2j and 2j + 1 are tile j: rows 0..7 and 8..15 of it. */
  const size_t at = (size_t)(sb / 2) * 1024 + (size_t)(sb & 1) * 512;
  for (int g = 0; g < 8; g++) {
    __m512i hi, lo;
    amx_fold(_mm512_load_si512(q + g), g < 4 ? scale_bytes_lo : scale_bytes_hi, g < 4 ? offset_lo : offset_hi, &hi, &lo);
    _mm512_store_si512((__m512i *)(dst + AMX_K_HI + at) + g, hi);
    _mm512_store_si512((__m512i *)(dst + AMX_K_LO + at) + g, lo);
  }
}

/* Q4_K folded unit: the px unit's quants times their sub-block scales; d, dmin and mins as they were. */
static void amx_unit_q4_K(const uint8_t *const *rows, int B, uint8_t *dst) {
  uint8_t tmp[8 * PANEL_BLOCK_BYTES] __attribute__((aligned(64)));
  px_unit_q4_K(rows, B, tmp);
  for (int sb = 0; sb < 8; sb++) {
    const __m512i *blk = px_block(tmp, sb);
    const __m512i sc = amx_bytes_of(_mm512_load_si512(blk + 8));
    amx_fold_block(blk, sb, sc, _mm512_setzero_si512(), sc, _mm512_setzero_si512(), dst);
  }
  _mm512_store_si512((__m512i *)(dst + AMX_K_D), _mm512_load_si512(px_block(tmp, 4) + 9));
  _mm512_store_si512((__m512i *)(dst + AMX_K_DMIN), _mm512_load_si512(px_block(tmp, 5) + 9));
  for (int k = 0; k < 4; k++) _mm512_store_si512((__m512i *)(dst + AMX_K_MINS) + k, _mm512_load_si512(px_block(tmp, k) + 9));
}

/* Q6_K folded unit: (quant - 32) times the half's scale; d as it was. */
static void amx_unit_q6_K(const uint8_t *const *rows, int B, uint8_t *dst) {
  uint8_t tmp[8 * PANEL_BLOCK_BYTES] __attribute__((aligned(64)));
  px_unit_q6_K(rows, B, tmp);
  for (int sb = 0; sb < 8; sb++) {
    const __m512i *blk = px_block(tmp, sb);
    const __m512i pair = _mm512_load_si512(blk + 8);
    /* The halves' signed scales as words in every word of the lane, and 32 x them. */
    const __m512i lo = _mm512_srai_epi32(_mm512_slli_epi32(pair, 16), 16), hi = _mm512_srai_epi32(pair, 16);
    const __m512i lo_words = _mm512_or_si512(_mm512_and_si512(lo, _mm512_set1_epi32(0xffff)), _mm512_slli_epi32(lo, 16));
    const __m512i hi_words = _mm512_or_si512(_mm512_and_si512(hi, _mm512_set1_epi32(0xffff)), _mm512_slli_epi32(hi, 16));
    amx_fold_block(blk, sb, amx_bytes_of(lo), _mm512_slli_epi16(lo_words, 5), amx_bytes_of(hi), _mm512_slli_epi16(hi_words, 5), dst);
  }
  _mm512_store_si512((__m512i *)(dst + AMX_K_D), _mm512_load_si512(px_block(tmp, 0) + 9));
}

/*
 * px_run_k for M tokens over folded units U0 .. U0 + n - 1 (`units` holds U0 first): per
 * super-block, eight tile steps give 64 dot(hi) and dot(lo) for every token and row; then
 * d x da scales the integer once, and Q4_K's mins go as in px_run_k.
 */
AMX_INLINE void amx_run_k(const int M, const int mode, int U0, int n, const uint8_t *units, const uint8_t *a, size_t as,
                          const int32_t *aux, size_t aux_stride, int cols, __m512 *acc, __m512 *mins) {
  int32_t sums[2][AMX_M][16] __attribute__((aligned(64)));
  for (int B = U0; B < U0 + n; B++) {
    const uint8_t *u = units + (size_t)(B - U0) * AMX_K_UNIT_BYTES;
    const uint8_t *act = a + (size_t)QK_K * B;
    _tile_zero(4);
    _tile_zero(5);
    for (int j = 0; j < 4; j++) {
      _tile_loadd(0, act + 64 * j, (long)as);
      _tile_loadd(1, u + AMX_K_HI + 1024 * j, 64);
      _tile_loadd(2, u + AMX_K_LO + 1024 * j, 64);
      if (mode == PX_MIN) {
        _tile_dpbsud(4, 0, 1);
        _tile_dpbsud(5, 0, 2);
      } else {
        _tile_dpbssd(4, 0, 1);
        _tile_dpbssd(5, 0, 2);
      }
    }
    _tile_stored(4, sums[0], 64);
    _tile_stored(5, sums[1], 64);
    const __m512 d = _mm512_load_ps((const float *)(u + AMX_K_D));
    for (int t = 0; t < M; t++) {
      const __m512i isum = _mm512_add_epi32(_mm512_slli_epi32(_mm512_load_si512(sums[0][t]), 6), _mm512_load_si512(sums[1][t]));
      const __m512 vda = _mm512_set1_ps(amx_scale(a, as, t, cols, B));
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(d, vda), acc[t]);
      if (mode == PX_MIN) {
        const int32_t *xt = aux + (size_t)t * aux_stride;
        const __m512i *m = (const __m512i *)(u + AMX_K_MINS);
        __m512i msum = _mm512_setzero_si512();
        for (int k = 0; k < 4; k++) msum = _mm512_dpwssd_epi32(msum, _mm512_load_si512(m + k), _mm512_set1_epi32(xt[8 * B + 2 * k]));
        const __m512 dmin = _mm512_load_ps((const float *)(u + AMX_K_DMIN));
        mins[t] = _mm512_add_ps(mins[t], _mm512_mul_ps(_mm512_mul_ps(dmin, vda), _mm512_cvtepi32_ps(msum)));
      }
    }
  }
}

/* Units u0 .. u0 + n - 1 of a panel (or one unpacked unit) for M tokens. */
AMX_INLINE void amx_run(const int M, const int mode, const int unit_blocks, int u0, int n, const uint8_t *blocks, const uint8_t *a,
                        size_t as, const int32_t *aux, size_t aux_stride, int cols, __m512 *acc, __m512 *mins) {
  if (mode == PX_OFFSET) amx_run_32(M, u0 * unit_blocks, n * unit_blocks, blocks, a, as, aux, aux_stride, cols, acc);
  else amx_run_k(M, mode, u0, n, blocks, a, as, aux, aux_stride, cols, acc, mins);
}

/* M tokens against one whole 16-row panel: y[t][r] for the panel's live rows. */
AMX_INLINE void amx_tile(const int M, const int mode, const int unit_blocks, int nb, const uint8_t *panel, const uint8_t *a, size_t as,
                         const int32_t *aux, size_t aux_stride, int cols, __mmask16 live, float *y, size_t ys) {
  __m512 acc[AMX_M], mins[AMX_M];
  for (int t = 0; t < M; t++) acc[t] = mins[t] = _mm512_setzero_ps();
  amx_run(M, mode, unit_blocks, 0, nb / unit_blocks, panel, a, as, aux, aux_stride, cols, acc, mins);
  for (int t = 0; t < M; t++)
    _mm512_mask_storeu_ps(y + (size_t)t * ys, live, mode == PX_MIN ? _mm512_sub_ps(acc[t], mins[t]) : acc[t]);
}

/* Bytes of a unit of 16 rows: a 32-element block, or a folded K super-block. */
AMX_INLINE size_t amx_unit_bytes(const int mode) { return mode == PX_OFFSET ? PANEL_BLOCK_BYTES : AMX_K_UNIT_BYTES; }

/* px_gemm on tiles: the rows unpacked into panels, then tiles of 16 tokens against every panel. */
AMX_INLINE void amx_gemm(px_unit_fn unit, const int unit_blocks, const int mode, int cols, const uint8_t *w, size_t ws, int nr,
                         const uint8_t *a, size_t as, const int32_t *aux, size_t aux_stride, int nt, float *y, size_t ys,
                         uint8_t *panels) {
  const int nb = cols / QK;
  const size_t panel_bytes = (size_t)(nb / unit_blocks) * amx_unit_bytes(mode);
  const int np = (nr + PANEL_ROWS - 1) / PANEL_ROWS;
  for (int p = 0; p < np; p++) {
    const int rows = nr - p * PANEL_ROWS < PANEL_ROWS ? nr - p * PANEL_ROWS : PANEL_ROWS;
    const uint8_t *rp[PANEL_ROWS];
    px_rows(w + (size_t)p * PANEL_ROWS * ws, ws, rows, rp);
    uint8_t *panel = panels + (size_t)p * panel_bytes;
    for (int u = 0; u < nb / unit_blocks; u++) unit(rp, u, panel + (size_t)u * amx_unit_bytes(mode));
  }
  int shape = 0;
  for (int t0 = 0; t0 < nt; t0 += AMX_M) {
    const int M = nt - t0 < AMX_M ? nt - t0 : AMX_M;
    if (M != shape) amx_configure(M, mode);
    shape = M;
    const uint8_t *at = a + (size_t)t0 * as;
    const int32_t *xt = aux + (size_t)t0 * aux_stride;
    for (int p = 0; p < np; p++) {
      const int rows = nr - p * PANEL_ROWS < PANEL_ROWS ? nr - p * PANEL_ROWS : PANEL_ROWS;
      const __mmask16 live = (__mmask16)((1u << rows) - 1);
      const uint8_t *panel = panels + (size_t)p * panel_bytes;
      float *yt = y + (size_t)t0 * ys + (size_t)p * PANEL_ROWS;
      if (M == AMX_M) amx_tile(AMX_M, mode, unit_blocks, nb, panel, at, as, xt, aux_stride, cols, live, yt, ys);
      else amx_tile(M, mode, unit_blocks, nb, panel, at, as, xt, aux_stride, cols, live, yt, ys);
    }
  }
  _tile_release();
}

#define AMX_GEMM(NAME, UNIT, UNIT_BLOCKS, MODE)                                                                          \
  static void amx_gemm_##NAME(int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, const int32_t *aux, \
                              size_t aux_stride, int nt, float *y, size_t ys, uint8_t *panels) {                        \
    amx_gemm(UNIT, UNIT_BLOCKS, MODE, cols, w, ws, nr, a, as, aux, aux_stride, nt, y, ys, panels);                        \
  }
AMX_GEMM(q4_0, px_unit_q4_0, 1, PX_OFFSET)
AMX_GEMM(q8_0, px_unit_q8_0, 1, PX_OFFSET)
AMX_GEMM(mxfp4, px_unit_mxfp4, 1, PX_OFFSET)
AMX_GEMM(q4_K, amx_unit_q4_K, 8, PX_MIN)
AMX_GEMM(q6_K, amx_unit_q6_K, 8, PX_HALVES)

/*
 * px_direct_many on tiles (a few dozen tokens: several streams' decode step, a speculative
 * check): each 16-row unit unpacked into L1 and used at once by every token, 16 at a time, their
 * sums kept in memory between units.
 */
void quant_amx_direct(const int unit_blocks, const int mode, px_unit_fn unit, int cols, const uint8_t *w, size_t ws, int nr,
                      const uint8_t *a, size_t as, const int32_t *aux, size_t aux_stride, int nt, float *y, size_t ys) {
  const int units = cols / (QK * unit_blocks);
  uint8_t buf[AMX_K_UNIT_BYTES] __attribute__((aligned(64)));
  /* The K formats' units are folded here (the caller passes the VNNI panels' unpacking). */
  if (mode == PX_MIN) unit = amx_unit_q4_K;
  else if (mode == PX_HALVES) unit = amx_unit_q6_K;
  __m512 acc[PX_DIRECT_MAX_T], mins[PX_DIRECT_MAX_T];
  int shape = 0;
  for (int r0 = 0; r0 < nr; r0 += PANEL_ROWS) {
    const int rows = nr - r0 < PANEL_ROWS ? nr - r0 : PANEL_ROWS;
    const uint8_t *rp[PANEL_ROWS];
    px_rows(w + (size_t)r0 * ws, ws, rows, rp);
    const uint8_t *next;
    size_t next_bytes;
    px_direct_ahead(w, ws, r0, &next, &next_bytes);
    const size_t per_unit = (next_bytes + units - 1) / units;
    for (int t = 0; t < nt; t++) acc[t] = mins[t] = _mm512_setzero_ps();
    for (int u = 0; u < units; u++) {
      px_direct_prefetch(next, next_bytes, per_unit, u);
      unit(rp, u, buf);
      for (int t0 = 0; t0 < nt; t0 += AMX_M) {
        const int M = nt - t0 < AMX_M ? nt - t0 : AMX_M;
        if (M != shape) amx_configure(M, mode);
        shape = M;
        const uint8_t *at = a + (size_t)t0 * as;
        const int32_t *xt = aux + (size_t)t0 * aux_stride;
        if (M == AMX_M) amx_run(AMX_M, mode, unit_blocks, u, 1, buf, at, as, xt, aux_stride, cols, acc + t0, mins + t0);
        else amx_run(M, mode, unit_blocks, u, 1, buf, at, as, xt, aux_stride, cols, acc + t0, mins + t0);
      }
    }
    px_direct_store(nt, mode, rows, acc, mins, y, ys, r0);
  }
  _tile_release();
}

const quant_panel_table quant_panels_amx = {
    .prep = {[CAIRN_Q4_0] = px_prep_q4_0, [CAIRN_Q8_0] = px_prep_q8_0, [CAIRN_Q4_K] = px_prep_q4_K, [CAIRN_Q6_K] = px_prep_q6_K,
             [CAIRN_MXFP4] = px_prep_mxfp4},
    .gemm = {[CAIRN_Q4_0] = amx_gemm_q4_0, [CAIRN_Q8_0] = amx_gemm_q8_0, [CAIRN_Q4_K] = amx_gemm_q4_K, [CAIRN_Q6_K] = amx_gemm_q6_K,
             [CAIRN_MXFP4] = amx_gemm_mxfp4},
    .min_tokens = {[CAIRN_Q4_0] = PX_DIRECT_MAX_T + 1, [CAIRN_Q8_0] = PX_DIRECT_MAX_T + 1,
                   [CAIRN_Q4_K] = PX_DIRECT_MAX_T + 1, [CAIRN_Q6_K] = PX_DIRECT_MAX_T + 1,
                   [CAIRN_MXFP4] = PX_DIRECT_MAX_T + 1},
    .block_bytes = {[CAIRN_Q4_K] = AMX_K_UNIT_BYTES / 8, [CAIRN_Q6_K] = AMX_K_UNIT_BYTES / 8},
};
#endif
