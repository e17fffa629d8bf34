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
 * vector load per token), and a block's scaling stays on the vector units. So each unit's tile
 * steps are issued before the previous unit's scaling, which then overlaps them; K super-blocks
 * are folded so that they need one such round trip instead of eight (see the folded units).
 * Measured on a 2-core Xeon (bench/RESULTS.md): 512 tokens Q4_K 2.2x the VNNI panels, Q6_K 2.0x,
 * Q8_0 and Q4_0 1.3x; 16-32 tokens 1.0-1.4x (Q4_K from 8 tokens: see quant_amx_direct_min_t).
 *
 * Only the AMX level (dispatch.c: CAIRN_ISA_AMX, granted by the OS) calls into this file.
 */
#if defined(__x86_64__)
#include <stdlib.h>

#include "amx_config.h"
#include "panel_units.h"

/* Tokens per tile (a tile's 16 rows), and per pass: two tiles share each weight tile. */
#define AMX_M 16
#define AMX_PASS (2 * AMX_M)

#define AMX_INLINE static inline __attribute__((always_inline))

/*
 * Tile shapes for a pass of M0 (1..16) + M1 (0..16) tokens; configuration is per thread, so each
 * call configures its own and releases the tiles when done (unused tiles cost nothing at a context
 * switch). Tiles 0 and 1: the two token tiles' activations (M0 or M1 tokens x k quants); 2 (and 3,
 * folded K units: hi and lo): weights, k / 4 rows of 16 weight rows x 4 quants; 4 (and 5): the
 * first token tile's sums, 6 (and 7) the second's (M x 16 int32). k is 32 (a block) or 64 (a
 * quarter of a folded super-block). With M1 = 0, tiles 1, 6 and 7 stay unconfigured and unused.
 */
static void amx_configure(int M0, int M1, const int mode) {
  amx_config c;
  memset(&c, 0, sizeof c);
  c.palette = 1;
  const int k = mode == PX_OFFSET ? 32 : 64, parts = mode == PX_OFFSET ? 1 : 2;
  const int m[2] = {M0, M1};
  for (int i = 0; i < 2; i++) {
    if (!m[i]) continue;
    c.rows[i] = (uint8_t)m[i];
    c.colsb[i] = (uint16_t)k;
    for (int h = 0; h < parts; h++) {
      c.rows[4 + 2 * i + h] = (uint8_t)m[i];
      c.colsb[4 + 2 * i + h] = 64;
    }
  }
  for (int h = 0; h < parts; h++) {
    c.rows[2 + h] = (uint8_t)(k / 4);
    c.colsb[2 + h] = 64;
  }
  amx_load_config(&c);
}

/* Token t's activation scale of block (or super-block) b. */
AMX_INLINE float amx_scale(const uint8_t *a, size_t as, int t, int cols, int b) {
  float da;
  memcpy(&da, a + (size_t)t * as + cols + (size_t)b * 4, 4);
  return da;
}

/*
 * A pass's tile sums of one unit: sums[0][t] (and sums[1][t], folded K: the lo parts) for the
 * pass's tokens t, the second token tile's from t = 16.
 */
typedef int32_t amx_sums[2][AMX_PASS][16];

/*
 * The tile steps of block b of a 32-element format (its signed panel block at wv, amx_unit_32)
 * for a pass whose activations start at a: the exact int32 dots.
 */
AMX_INLINE void amx_tiles_32(const int pair, int b, const uint8_t *wv, const uint8_t *a, size_t as, amx_sums *out) {
  const uint8_t *act = a + (size_t)QK * b;
  _tile_loadd(2, wv, 64);
  _tile_loadd(0, act, (long)as);
  _tile_zero(4);
  _tile_dpbssd(4, 0, 2);
  if (pair) {
    _tile_loadd(1, act + (size_t)AMX_M * as, (long)as);
    _tile_zero(6);
    _tile_dpbssd(6, 1, 2);
  }
  _tile_stored(4, (*out)[0][0], 64);
  if (pair) _tile_stored(6, (*out)[0][AMX_M], 64);
}

/*
 * px_run_32's scaling of block b for M tokens, from its tile sums: the signed quants' dots are
 * the integers px_run_32 forms from unsigned quants and the offset correction (prep), which the
 * tiles need not take back.
 */
AMX_INLINE void amx_post_32(int M, int b, const uint8_t *wv, const amx_sums *in, const uint8_t *a, size_t as, int cols, __m512 *acc) {
  const __m512 f0 = _mm512_load_ps((const float *)(wv + 8 * 64));
  for (int t = 0; t < M; t++)
    acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512((*in)[0][t])), _mm512_mul_ps(f0, _mm512_set1_ps(amx_scale(a, as, t, cols, b))), acc[t]);
}

/*
 * A 32-element format's unit for the tiles: its VNNI panel block with the quants' offset taken off
 * (Q8_0 128, Q4_0 8, Q5_0 16, MXFP4 16, IQ4_NL 128: then q, q - 8, q - 16, the doubled E2M1
 * values and IQ4_NL's code values, all signed bytes).
 */
AMX_INLINE void amx_unit_32(px_unit_fn unit, int offset, const uint8_t *const *rows, int b, uint8_t *dst) {
  unit(rows, b, dst);
  const __m512i off = _mm512_set1_epi8((char)offset);
  for (int g = 0; g < 8; g++) _mm512_store_si512(px_block(dst, 0) + g, _mm512_sub_epi8(_mm512_load_si512(px_block(dst, 0) + g), off));
}
static void amx_unit_q4_0(const uint8_t *const *rows, int b, uint8_t *dst) { amx_unit_32(px_unit_q4_0, 8, rows, b, dst); }
static void amx_unit_q8_0(const uint8_t *const *rows, int b, uint8_t *dst) { amx_unit_32(px_unit_q8_0, 128, rows, b, dst); }
static void amx_unit_mxfp4(const uint8_t *const *rows, int b, uint8_t *dst) { amx_unit_32(px_unit_mxfp4, 16, rows, b, dst); }
static void amx_unit_q5_0(const uint8_t *const *rows, int b, uint8_t *dst) { amx_unit_32(px_unit_q5_0, 16, rows, b, dst); }
static void amx_unit_iq4_nl(const uint8_t *const *rows, int b, uint8_t *dst) { amx_unit_32(px_unit_iq4_nl, 128, rows, b, dst); }

/*
 * Folded K-quant units. A K super-block's exact integer dot sums, per sub-block (Q6_K: per half),
 * the scale times the quants' dot; scaling each sub-block's tile sums on the vector units cost more
 * than the dots. So a unit holds the integer weights w = scale x quant (Q4_K: 0..945) or
 * scale x (quant - 32) (Q6_K: -4064..4096, its offset folded in too), split as w = 64 hi + lo with
 * lo = w & 63: two byte panels in tile layout (4 tiles of 64 elements x 16 rows each), so the
 * super-block's integer dot is 64 dot(hi) + dot(lo), eight tile steps with nothing scaled between
 * them. The integer is the one px_run_k forms, so the results are the same bit for bit.
 *
 * The lo panel holds 4 lo (0..252, unsigned): the word 4 w then has hi as its high byte and 4 lo
 * as its low byte, so a unit is formed by two byte-times-scale multiplies per 64 quants and a
 * byte interleave, and dot(lo) = dot(4 lo) / 4 exactly.
 */
#define AMX_K_HI 0
#define AMX_K_LO 4096
#define AMX_K_D 8192              /* d per row, f32 */
#define AMX_K_DMIN (AMX_K_D + 64) /* Q4_K: dmin per row, f32 */
#define AMX_K_MINS (AMX_K_D + 128) /* Q4_K: the mins as word pairs of sub-blocks (2k, 2k + 1), 4 vectors */
#define AMX_K_UNIT_BYTES (AMX_K_D + 128 + 256)
_Static_assert(AMX_K_UNIT_BYTES % 64 == 0 && AMX_K_UNIT_BYTES % 8 == 0, "folded units stay 64-byte aligned; block_bytes is an eighth of one");

/*
 * The hi and 4 lo bytes of the 64 weights whose words 4 w are we (even bytes) and wo (odd bytes),
 * in the byte order of the quants.
 */
AMX_INLINE void amx_split(__m512i we, __m512i wo, __m512i *hi, __m512i *lo) {
  const __m512i high_byte = _mm512_set1_epi16((short)0xff00);
  *hi = _mm512_or_si512(_mm512_srli_epi16(we, 8), _mm512_and_si512(wo, high_byte));
  *lo = _mm512_or_si512(_mm512_andnot_si512(high_byte, we), _mm512_slli_epi16(wo, 8));
}

/* Q4_K: 4 scale x quant for the quants (0..15) of v: the scales 4 sc (0..252) are the unsigned
   factor, in the even (odd) bytes of each lane's words, the quants the signed one. */
AMX_INLINE void amx_fold_q4_K(__m512i v, __m512i sc4_even, __m512i sc4_odd, __m512i *hi, __m512i *lo) {
  amx_split(_mm512_maddubs_epi16(sc4_even, v), _mm512_maddubs_epi16(sc4_odd, v), hi, lo);
}

/* Q6_K: 4 scale x (quant - 32) for the quants (0..63) of v: the products scale x quant fit a word
   (|s| <= 128), then the offset's 4 x 32 x scale (off4) comes off the quadrupled product. IQ4_XS
   alike: its values + 128 (1..241) times its scale (-32..31), less 4 x 128 x scale; every word stays
   within int16 (|4 x 241 x 32| = 30848). */
AMX_INLINE void amx_fold_halves(__m512i v, __m512i sc_even, __m512i sc_odd, __m512i off4, __m512i *hi, __m512i *lo) {
  const __m512i we = _mm512_sub_epi16(_mm512_slli_epi16(_mm512_maddubs_epi16(v, sc_even), 2), off4);
  const __m512i wo = _mm512_sub_epi16(_mm512_slli_epi16(_mm512_maddubs_epi16(v, sc_odd), 2), off4);
  amx_split(we, wo, hi, lo);
}

/* Where vector g of sub-block sb goes in a unit's hi (or lo) panel: sub-blocks 2j and 2j + 1 are
   tile j, rows 0..7 and 8..15. */
AMX_INLINE __m512i *amx_slot(uint8_t *dst, size_t panel, int sb, int g) {
  return (__m512i *)(dst + panel + (size_t)(sb / 2) * 1024 + (size_t)(sb & 1) * 512) + g;
}

/* A lane's low byte in byte 0 (and 2) of the lane, or in byte 1 (and 3). */
AMX_INLINE __m512i amx_even_bytes(__m512i lanes) {
  const __m512i low = _mm512_and_si512(lanes, _mm512_set1_epi32(0xff));
  return _mm512_or_si512(low, _mm512_slli_epi32(low, 16));
}

/* Q4_K folded unit: the px unit's quants times their sub-block scales, folded as they are
   unpacked (no panel in between); d, dmin and mins as the px unit has them. Q5_K alike (FIVE):
   4 x scale x quant reaches 252 x 31 = 7812, within a word. */
AMX_INLINE void amx_unit_k_min(const int five, const uint8_t *const *rows, int B, uint8_t *dst) {
  px_q4_K_head head;
  px_k_head_of(0, rows, B, five ? sizeof(block_q5_K) : sizeof(block_q4_K), &head);
  for (int j = 0; j < 4; j++) {
    const __m512i ev = amx_even_bytes(_mm512_slli_epi32(head.sc[2 * j], 2)), od = amx_even_bytes(_mm512_slli_epi32(head.sc[2 * j + 1], 2));
    const __m512i ev_odd = _mm512_slli_epi32(ev, 8), od_odd = _mm512_slli_epi32(od, 8);
    for (int h = 0; h < 2; h++) {
      __m512i even[4], odd[4];
      if (five) px_q5_K_quants(0, rows, B, j, h, even, odd);
      else px_q4_K_quants(0, rows, B, j, h, even, odd);
      for (int g = 0; g < 4; g++) {
        amx_fold_q4_K(even[g], ev, ev_odd, amx_slot(dst, AMX_K_HI, 2 * j, 4 * h + g), amx_slot(dst, AMX_K_LO, 2 * j, 4 * h + g));
        amx_fold_q4_K(odd[g], od, od_odd, amx_slot(dst, AMX_K_HI, 2 * j + 1, 4 * h + g), amx_slot(dst, AMX_K_LO, 2 * j + 1, 4 * h + g));
      }
    }
  }
  _mm512_store_ps((float *)(dst + AMX_K_D), head.d);
  _mm512_store_ps((float *)(dst + AMX_K_DMIN), head.dmin);
  for (int k = 0; k < 4; k++) _mm512_store_si512((__m512i *)(dst + AMX_K_MINS) + k, px_q4_K_min_pair(&head, k));
}
static void amx_unit_q4_K(const uint8_t *const *rows, int B, uint8_t *dst) { amx_unit_k_min(0, rows, B, dst); }
static void amx_unit_q5_K(const uint8_t *const *rows, int B, uint8_t *dst) { amx_unit_k_min(1, rows, B, dst); }

/* A folded unit from a PX_HALVES panel unit (UNIT): (quant - offset) times the half's scale, the
   offset 2^(SHIFT - 2) (Q6_K 32: SHIFT 7; IQ4_XS 128: SHIFT 9); d as it was. */
AMX_INLINE void amx_unit_halves(px_unit_fn unit, const int shift, const uint8_t *const *rows, int B, uint8_t *dst) {
  uint8_t tmp[8 * PANEL_BLOCK_BYTES] __attribute__((aligned(64)));
  unit(rows, B, tmp);
  for (int sb = 0; sb < 8; sb++) {
    const __m512i *blk = px_block(tmp, sb);
    const __m512i pair = _mm512_load_si512(blk + 8);
    for (int h = 0; h < 2; h++) {
      /* The half's signed scale: in the even (odd) bytes of each word for the multiplies, and 128 x it per word. */
      const __m512i sc = h ? _mm512_srai_epi32(pair, 16) : _mm512_srai_epi32(_mm512_slli_epi32(pair, 16), 16);
      const __m512i even = amx_even_bytes(sc), odd = _mm512_slli_epi32(even, 8);
      const __m512i off4 = _mm512_slli_epi16(_mm512_or_si512(_mm512_and_si512(sc, _mm512_set1_epi32(0xffff)), _mm512_slli_epi32(sc, 16)), shift);
      for (int g = 4 * h; g < 4 * h + 4; g++)
        amx_fold_halves(_mm512_load_si512(blk + g), even, odd, off4, amx_slot(dst, AMX_K_HI, sb, g), amx_slot(dst, AMX_K_LO, sb, g));
    }
  }
  _mm512_store_si512((__m512i *)(dst + AMX_K_D), _mm512_load_si512(px_block(tmp, 0) + 9));
}
static void amx_unit_q6_K(const uint8_t *const *rows, int B, uint8_t *dst) { amx_unit_halves(px_unit_q6_K, 7, rows, B, dst); }
static void amx_unit_iq4_xs(const uint8_t *const *rows, int B, uint8_t *dst) { amx_unit_halves(px_unit_iq4_xs, 9, rows, B, dst); }

/*
 * The tile steps of folded super-block B (its unit at u) for a pass: per token and row, dot(hi)
 * and dot(lo) over the super-block's 256 elements, four steps of 64 each.
 */
AMX_INLINE void amx_tiles_k(const int pair, const int mode, int B, const uint8_t *u, const uint8_t *a, size_t as, amx_sums *out) {
  const uint8_t *act = a + (size_t)QK_K * B;
  _tile_zero(4);
  _tile_zero(5);
  if (pair) {
    _tile_zero(6);
    _tile_zero(7);
  }
  for (int j = 0; j < 4; j++) {
    _tile_loadd(2, u + AMX_K_HI + 1024 * j, 64);
    _tile_loadd(3, u + AMX_K_LO + 1024 * j, 64);
    _tile_loadd(0, act + 64 * j, (long)as);
    /* hi: unsigned for Q4_K, signed for Q6_K; 4 lo: unsigned for both. */
    if (mode == PX_MIN) _tile_dpbsud(4, 0, 2);
    else _tile_dpbssd(4, 0, 2);
    _tile_dpbsud(5, 0, 3);
    if (pair) {
      _tile_loadd(1, act + 64 * j + (size_t)AMX_M * as, (long)as);
      if (mode == PX_MIN) _tile_dpbsud(6, 1, 2);
      else _tile_dpbssd(6, 1, 2);
      _tile_dpbsud(7, 1, 3);
    }
  }
  _tile_stored(4, (*out)[0][0], 64);
  _tile_stored(5, (*out)[1][0], 64);
  if (pair) {
    _tile_stored(6, (*out)[0][AMX_M], 64);
    _tile_stored(7, (*out)[1][AMX_M], 64);
  }
}

/*
 * px_run_k's scaling of super-block B for M tokens, from its tile sums: the integer
 * 64 dot(hi) + dot(4 lo) / 4 times d x da, and Q4_K's mins as in px_run_k.
 */
AMX_INLINE void amx_post_k(int M, const int mode, int B, const uint8_t *u, const amx_sums *in, const uint8_t *a, size_t as,
                           const int32_t *aux, size_t aux_stride, int cols, __m512 *acc, __m512 *mins) {
  const __m512 d = _mm512_load_ps((const float *)(u + AMX_K_D));
  for (int t = 0; t < M; t++) {
    const __m512i isum = _mm512_add_epi32(_mm512_slli_epi32(_mm512_load_si512((*in)[0][t]), 6), _mm512_srai_epi32(_mm512_load_si512((*in)[1][t]), 2));
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

/* Bytes of a unit of 16 rows: a 32-element block, or a folded K super-block. */
AMX_INLINE size_t amx_unit_bytes(const int mode) { return mode == PX_OFFSET ? PANEL_BLOCK_BYTES : AMX_K_UNIT_BYTES; }

/* The tile steps of unit v (at u) for a pass. */
AMX_INLINE void amx_tiles(const int pair, const int mode, int v, const uint8_t *u, const uint8_t *a, size_t as, amx_sums *out) {
  if (mode == PX_OFFSET) amx_tiles_32(pair, v, u, a, as, out);
  else amx_tiles_k(pair, mode, v, u, a, as, out);
}

/* The scaling of unit v (at u) for the pass's M tokens. */
AMX_INLINE void amx_post(int M, const int mode, int v, const uint8_t *u, const amx_sums *in, const uint8_t *a, size_t as,
                         const int32_t *aux, size_t aux_stride, int cols, __m512 *acc, __m512 *mins) {
  if (mode == PX_OFFSET) amx_post_32(M, v, u, in, a, as, cols, acc);
  else amx_post_k(M, mode, v, u, in, a, as, aux, aux_stride, cols, acc, mins);
}

/*
 * A pass's tokens against one whole panel of `units` units, software-pipelined: unit v's tile
 * steps are issued before unit v - 1's scaling, so the vector units work while the tile unit does.
 */
AMX_INLINE void amx_panel(const int pair, int M, const int mode, int units, const uint8_t *panel, const uint8_t *a, size_t as,
                          const int32_t *aux, size_t aux_stride, int cols, __m512 *acc, __m512 *mins) {
  amx_sums sums[2] __attribute__((aligned(64)));
  const size_t ub = amx_unit_bytes(mode);
  for (int v = 0; v < units; v++) {
    amx_tiles(pair, mode, v, panel + (size_t)v * ub, a, as, &sums[v & 1]);
    if (v > 0) amx_post(M, mode, v - 1, panel + (size_t)(v - 1) * ub, &sums[(v - 1) & 1], a, as, aux, aux_stride, cols, acc, mins);
  }
  amx_post(M, mode, units - 1, panel + (size_t)(units - 1) * ub, &sums[(units - 1) & 1], a, as, aux, aux_stride, cols, acc, mins);
}

/* The sums of a pass's M tokens for a panel's live rows into y (K formats with mins take them off). */
AMX_INLINE void amx_store(int M, const int mode, int rows, const __m512 *acc, const __m512 *mins, float *y, size_t ys) {
  const __mmask16 live = (__mmask16)((1u << rows) - 1);
  for (int t = 0; t < M; t++) _mm512_mask_storeu_ps(y + (size_t)t * ys, live, mode == PX_MIN ? _mm512_sub_ps(acc[t], mins[t]) : acc[t]);
}

/* Configures the tiles for a pass of M tokens (one or two token tiles). */
AMX_INLINE void amx_pass_shape(int M, const int mode) { amx_configure(M < AMX_M ? M : AMX_M, M > AMX_M ? M - AMX_M : 0, mode); }

/* px_gemm on tiles: the rows unpacked into panels, then passes of up to 32 tokens against every panel. */
AMX_INLINE void amx_gemm(px_unit_fn unit, const int unit_blocks, const int mode, int cols, const uint8_t *w, size_t ws, int nr,
                         const uint8_t *a, size_t as, const int32_t *aux, size_t aux_stride, int nt, float *y, size_t ys,
                         uint8_t *panels) {
  const int units = cols / (QK * unit_blocks);
  const size_t panel_bytes = (size_t)units * amx_unit_bytes(mode);
  const int np = (nr + PANEL_ROWS - 1) / PANEL_ROWS;
  px_unpack_panels(unit, units, amx_unit_bytes(mode), w, ws, nr, panels);
  int shape = 0;
  __m512 acc[AMX_PASS], mins[AMX_PASS];
  for (int t0 = 0; t0 < nt; t0 += AMX_PASS) {
    const int M = nt - t0 < AMX_PASS ? nt - t0 : AMX_PASS;
    if (M != shape) amx_pass_shape(M, mode);
    shape = M;
    const uint8_t *at = a + (size_t)t0 * as;
    const int32_t *xt = aux + (size_t)t0 * aux_stride;
    for (int p = 0; p < np; p++) {
      const int rows = nr - p * PANEL_ROWS < PANEL_ROWS ? nr - p * PANEL_ROWS : PANEL_ROWS;
      for (int t = 0; t < M; t++) acc[t] = mins[t] = _mm512_setzero_ps();
      const uint8_t *panel = panels + (size_t)p * panel_bytes;
      if (M > AMX_M) amx_panel(1, M, mode, units, panel, at, as, xt, aux_stride, cols, acc, mins);
      else amx_panel(0, M, mode, units, panel, at, as, xt, aux_stride, cols, acc, mins);
      amx_store(M, mode, rows, acc, mins, y + (size_t)t0 * ys + (size_t)p * PANEL_ROWS, ys);
    }
  }
  _tile_release();
}

#define AMX_GEMM(NAME, UNIT, UNIT_BLOCKS, MODE)                                                                          \
  static void amx_gemm_##NAME(int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, const int32_t *aux, \
                              size_t aux_stride, int nt, float *y, size_t ys, uint8_t *panels) {                        \
    amx_gemm(UNIT, UNIT_BLOCKS, MODE, cols, w, ws, nr, a, as, aux, aux_stride, nt, y, ys, panels);                        \
  }
AMX_GEMM(q4_0, amx_unit_q4_0, 1, PX_OFFSET)
AMX_GEMM(q8_0, amx_unit_q8_0, 1, PX_OFFSET)
AMX_GEMM(mxfp4, amx_unit_mxfp4, 1, PX_OFFSET)
AMX_GEMM(q4_K, amx_unit_q4_K, 8, PX_MIN)
AMX_GEMM(q5_K, amx_unit_q5_K, 8, PX_MIN)
AMX_GEMM(q6_K, amx_unit_q6_K, 8, PX_HALVES)
AMX_GEMM(iq4_nl, amx_unit_iq4_nl, 1, PX_OFFSET)
AMX_GEMM(q5_0, amx_unit_q5_0, 1, PX_OFFSET)
AMX_GEMM(iq4_xs, amx_unit_iq4_xs, 8, PX_HALVES)

/*
 * One 16-row group of a direct product: each unit unpacked into L1 one unit ahead of its tile
 * steps (the tile loads then find it written: a tile load right after the vector stores of the
 * same lines waited for them), and its tile steps issued before the previous unit's scaling.
 * Three buffers: the unit being unpacked, the one the tiles read, the one being scaled.
 */
AMX_INLINE void amx_direct_rows(const int pair, int M, const int mode, px_unit_fn unit, int units, const uint8_t *const *rp,
                                const uint8_t *next, size_t next_bytes, const uint8_t *a, size_t as, const int32_t *aux,
                                size_t aux_stride, int cols, __m512 *acc, __m512 *mins) {
  uint8_t buf[3][AMX_K_UNIT_BYTES] __attribute__((aligned(64)));
  amx_sums sums[2] __attribute__((aligned(64)));
  const size_t per_unit = (next_bytes + units - 1) / units;
  unit(rp, 0, buf[0]);
  for (int v = 0; v < units; v++) {
    amx_tiles(pair, mode, v, buf[v % 3], a, as, &sums[v & 1]);
    px_direct_prefetch(next, next_bytes, per_unit, v);
    if (v + 1 < units) unit(rp, v + 1, buf[(v + 1) % 3]);
    if (v > 0) amx_post(M, mode, v - 1, buf[(v - 1) % 3], &sums[(v - 1) & 1], a, as, aux, aux_stride, cols, acc, mins);
  }
  amx_post(M, mode, units - 1, buf[(units - 1) % 3], &sums[(units - 1) & 1], a, as, aux, aux_stride, cols, acc, mins);
}

/*
 * px_direct_many on tiles (several streams' decode step, a speculative check): up to 32 tokens,
 * each 16-row unit unpacked once into L1 and used at once by all of them.
 */
AMX_INLINE void amx_direct(const int unit_blocks, const int mode, px_unit_fn unit, int cols, const uint8_t *w, size_t ws, int nr,
                           const uint8_t *a, size_t as, const int32_t *aux, size_t aux_stride, int nt, float *y, size_t ys) {
  const int units = cols / (QK * unit_blocks);
  __m512 acc[AMX_PASS], mins[AMX_PASS];
  for (int t0 = 0; t0 < nt; t0 += AMX_PASS) {
    const int M = nt - t0 < AMX_PASS ? nt - t0 : AMX_PASS;
    amx_pass_shape(M, mode);
    const uint8_t *at = a + (size_t)t0 * as;
    const int32_t *xt = aux + (size_t)t0 * aux_stride;
    for (int r0 = 0; r0 < nr; r0 += PANEL_ROWS) {
      const uint8_t *rp[PANEL_ROWS], *next;
      size_t next_bytes;
      const int rows = px_direct_rows(w, ws, nr, r0, rp, &next, &next_bytes);
      for (int t = 0; t < M; t++) acc[t] = mins[t] = _mm512_setzero_ps();
      if (M > AMX_M) amx_direct_rows(1, M, mode, unit, units, rp, next, next_bytes, at, as, xt, aux_stride, cols, acc, mins);
      else amx_direct_rows(0, M, mode, unit, units, rp, next, next_bytes, at, as, xt, aux_stride, cols, acc, mins);
      amx_store(M, mode, rows, acc, mins, y + (size_t)t0 * ys + r0, ys);
    }
  }
  _tile_release();
}

/* The direct products of one format on tiles, with the units the tiles take. */
void quant_amx_direct(int type, int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, const int32_t *aux,
                      size_t aux_stride, int nt, float *y, size_t ys) {
  if (type == CAIRN_Q4_K) amx_direct(8, PX_MIN, amx_unit_q4_K, cols, w, ws, nr, a, as, aux, aux_stride, nt, y, ys);
  else if (type == CAIRN_Q5_K) amx_direct(8, PX_MIN, amx_unit_q5_K, cols, w, ws, nr, a, as, aux, aux_stride, nt, y, ys);
  else if (type == CAIRN_Q6_K) amx_direct(8, PX_HALVES, amx_unit_q6_K, cols, w, ws, nr, a, as, aux, aux_stride, nt, y, ys);
  else if (type == CAIRN_Q8_0) amx_direct(1, PX_OFFSET, amx_unit_q8_0, cols, w, ws, nr, a, as, aux, aux_stride, nt, y, ys);
  else if (type == CAIRN_Q4_0) amx_direct(1, PX_OFFSET, amx_unit_q4_0, cols, w, ws, nr, a, as, aux, aux_stride, nt, y, ys);
  else if (type == CAIRN_MXFP4) amx_direct(1, PX_OFFSET, amx_unit_mxfp4, cols, w, ws, nr, a, as, aux, aux_stride, nt, y, ys);
  else if (type == CAIRN_Q5_0) amx_direct(1, PX_OFFSET, amx_unit_q5_0, cols, w, ws, nr, a, as, aux, aux_stride, nt, y, ys);
  else if (type == CAIRN_IQ4_NL) amx_direct(1, PX_OFFSET, amx_unit_iq4_nl, cols, w, ws, nr, a, as, aux, aux_stride, nt, y, ys);
  else if (type == CAIRN_IQ4_XS) amx_direct(8, PX_HALVES, amx_unit_iq4_xs, cols, w, ws, nr, a, as, aux, aux_stride, nt, y, ys);
  else abort(); /* px_direct serves only these formats */
}

const quant_panel_table quant_panels_amx = {
    /* The signed 32-element units and the folded Q6_K units need no offset correction; Q4_K's mins
       still take the activation sums. */
    .prep = {[CAIRN_Q4_K] = px_prep_q4_K, [CAIRN_Q5_K] = px_prep_q4_K},
    .gemm = {[CAIRN_Q4_0] = amx_gemm_q4_0, [CAIRN_Q8_0] = amx_gemm_q8_0, [CAIRN_Q4_K] = amx_gemm_q4_K, [CAIRN_Q5_K] = amx_gemm_q5_K, [CAIRN_Q6_K] = amx_gemm_q6_K,
             [CAIRN_MXFP4] = amx_gemm_mxfp4, [CAIRN_IQ4_NL] = amx_gemm_iq4_nl, [CAIRN_IQ4_XS] = amx_gemm_iq4_xs,
             [CAIRN_Q5_0] = amx_gemm_q5_0, [CAIRN_F16] = quant_amx_gemm_f16},
    .min_tokens = {[CAIRN_Q4_0] = PX_DIRECT_MAX_T + 1, [CAIRN_Q8_0] = PX_DIRECT_MAX_T + 1,
                   [CAIRN_Q4_K] = PX_DIRECT_MAX_T + 1, [CAIRN_Q6_K] = PX_DIRECT_MAX_T + 1,
                   [CAIRN_MXFP4] = PX_DIRECT_MAX_T + 1, [CAIRN_IQ4_NL] = PX_DIRECT_MAX_T + 1,
                   [CAIRN_IQ4_XS] = PX_DIRECT_MAX_T + 1, [CAIRN_Q5_K] = PX_DIRECT_MAX_T + 1, [CAIRN_Q5_0] = PX_DIRECT_MAX_T + 1},
    .block_bytes = {[CAIRN_Q4_K] = AMX_K_UNIT_BYTES / 8, [CAIRN_Q5_K] = AMX_K_UNIT_BYTES / 8, [CAIRN_Q6_K] = AMX_K_UNIT_BYTES / 8, [CAIRN_IQ4_XS] = AMX_K_UNIT_BYTES / 8},
    /* F16: its own activation layout, so every token count, one included (f16_amx_avx512.c: a
       token's sums must not depend on its batch, and the tiles' sums are the tiles' own). */
    .convert = {[CAIRN_F16] = quant_amx_convert_f16},
    .row_bytes = {[CAIRN_F16] = quant_amx_f16_row_bytes},
    .panel_bytes = {[CAIRN_F16] = quant_amx_f16_panel_bytes},
    /* F16's activations take 8 bytes a column: a chunk re-reads them all, so chunks are large and
       its kernel blocks the columns (f16_batch). */
    .chunk_rows = {[CAIRN_F16] = 256},
};
#endif
