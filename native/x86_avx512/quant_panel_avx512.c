/*
 * Batch kernels (AVX-512 VNNI): weight rows are first unpacked into panels of 16 rows in which
 * each 32-bit lane of a vector belongs to another row, then every token is dotted against a
 * panel with one dpbusd per 4 elements of all 16 rows, its 4 activation bytes broadcast to every
 * lane.
 *
 * Why: the row-major tiles (quant_x86_kernels.h) finish every dot product in a horizontal layout
 * (one block's sum spread over 8 lanes), so each dpbusd needs its own int->float conversion and
 * scaling: about 6 instructions per 64 multiply-adds. In a panel the 16 lanes are 16 outputs, so a
 * block's conversion and scaling is shared by 16 rows: about 12 instructions per 512
 * multiply-adds. Unpacking costs one pass over the weights per call, shared by all the call's
 * tokens, which is why matmul.c takes this path only from a few dozen tokens on (min_tokens
 * below); fewer take the direct products (px_direct), which unpack the same units into L1 and use
 * each at once.
 *
 * Integer semantics stay llama.cpp's: each block's quants are dotted exactly in int32 (offsets
 * taken back through per-block activation sums that the prep step computes), then scaled in f32
 * by the weight and activation block scales.
 */
#if defined(__x86_64__)
#include <stdlib.h>

#include "panel_units.h"

/*
 * Tokens per tile: their float and int sums live in registers next to the 8 weight vectors of a
 * block. 6 measured best (14336x4096 Q4_0, 512 tokens, 2 threads: 4: 1201, 5: 1253, 6: 1288,
 * 7: 1301, 8: 1045, 12: 1098 GFLOP/s); px_gemm's switch lists the tile sizes up to it.
 */
#define PANEL_T 6
_Static_assert(PANEL_T == 6, "px_gemm's switch has tile sizes 1 to 6");

/*
 * T tokens against blocks b0 .. b0 + nblocks - 1 of a 16-row panel of a 32-element format
 * (`blocks` holds block b0 first), accumulated into acc[t] lane by lane: each block's integer dot
 * starts from the token's offset correction (prep) and is scaled by the block's two scales.
 * Every product of these formats, of any number of tokens, forms each output this way, block by
 * block in order: a token's result is the same whatever batch it comes in.
 */
/* start + the exact integer dot of a block's 8 quant vectors with its 32 activation bytes (four),
   in two chains of four: integers, so the same sum as one chain, in half its latency (one token
   has no other chain to overlap with). */
PX_INLINE __m512i px_dot8(__m512i start, const __m512i *w, const px_i32u *four) {
  __m512i s1 = _mm512_setzero_si512();
  for (int g = 0; g < 8; g += 2) {
    start = _mm512_dpbusd_epi32(start, w[g], _mm512_set1_epi32(four[g]));
    s1 = _mm512_dpbusd_epi32(s1, w[g + 1], _mm512_set1_epi32(four[g + 1]));
  }
  return _mm512_add_epi32(start, s1);
}

/* start + the integer dot of a half block's 4 quant vectors with its 16 activation bytes. */
PX_INLINE __m512i px_dot4(__m512i start, const __m512i *w, const px_i32u *four) {
  for (int g = 0; g < 4; g++) start = _mm512_dpbusd_epi32(start, w[g], _mm512_set1_epi32(four[g]));
  return start;
}

PX_INLINE void px_run_32(const int T, int b0, int nblocks, const uint8_t *blocks, const uint8_t *a, size_t as,
                         const int32_t *aux, size_t aux_stride, int cols, __m512 *acc) {
  for (int b = b0; b < b0 + nblocks; b++) {
    const __m512i *wv = (const __m512i *)(blocks + (size_t)(b - b0) * PANEL_BLOCK_BYTES);
    const __m512 f0 = _mm512_load_ps((const float *)(wv + 8));
    __m512i w[8];
    for (int g = 0; g < 8; g++) w[g] = _mm512_load_si512(wv + g);
    for (int t = 0; t < T; t++) {
      const uint8_t *at = a + (size_t)t * as;
      const px_i32u *four = (const px_i32u *)(at + (size_t)QK * b);
      float da;
      memcpy(&da, at + cols + (size_t)b * 4, 4);
      const __m512i s = px_dot8(_mm512_set1_epi32(aux[(size_t)t * aux_stride + b]), w, four);
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(f0, _mm512_set1_ps(da)), acc[t]);
    }
  }
}

/*
 * The same for super-blocks B0 .. B0 + n - 1 of a K format (8 panel blocks each): a super-block's
 * exact integer dot (each sub-block's, or half's, times its scale) as one float, times d * da, added
 * with one rounding; Q4_K's mins (their exact integer sum with the activation sums, times dmin * da)
 * gather in mins[t]. The K row kernels (qx_k_steps) do the same operations in the same order.
 */
PX_INLINE void px_run_k(const int T, const int mode, int B0, int n, const uint8_t *blocks, const uint8_t *a, size_t as,
                        const int32_t *aux, size_t aux_stride, int cols, __m512 *acc, __m512 *mins) {
  for (int B = B0; B < B0 + n; B++) {
    const uint8_t *sbp = blocks + (size_t)(B - B0) * 8 * PANEL_BLOCK_BYTES;
    const __m512i *head = (const __m512i *)sbp;
    __m512i isum[PANEL_T], msum[PANEL_T];
    for (int t = 0; t < T; t++) isum[t] = msum[t] = _mm512_setzero_si512();
    for (int sb = 0; sb < 8; sb++) {
      const __m512i *wv = (const __m512i *)(sbp + (size_t)sb * PANEL_BLOCK_BYTES);
      const __m512i sc = _mm512_load_si512(wv + 8);
      __m512i w[8];
      for (int g = 0; g < 8; g++) w[g] = _mm512_load_si512(wv + g);
      const int b = 8 * B + sb;
      for (int t = 0; t < T; t++) {
        const px_i32u *four = (const px_i32u *)(a + (size_t)t * as + (size_t)QK * b);
        const int32_t *xt = aux + (size_t)t * aux_stride;
        if (mode == PX_HALVES) {
          const __m512i s0 = px_dot4(_mm512_set1_epi32(xt[2 * b]), w, four), s1 = px_dot4(_mm512_set1_epi32(xt[2 * b + 1]), w + 4, four + 4);
          const __m512i lo = _mm512_srai_epi32(_mm512_slli_epi32(sc, 16), 16), hi = _mm512_srai_epi32(sc, 16);
          isum[t] = _mm512_add_epi32(isum[t], _mm512_add_epi32(_mm512_mullo_epi32(s0, lo), _mm512_mullo_epi32(s1, hi)));
        } else {
          isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(px_dot8(_mm512_setzero_si512(), w, four), sc));
          if (sb < 4) msum[t] = _mm512_dpwssd_epi32(msum[t], _mm512_load_si512(head + (size_t)sb * (PANEL_BLOCK_BYTES / 64) + 9), _mm512_set1_epi32(xt[8 * B + 2 * sb]));
        }
      }
    }
    const __m512 d = _mm512_load_ps((const float *)(head + (size_t)(mode == PX_MIN ? 4 : 0) * (PANEL_BLOCK_BYTES / 64) + 9));
    for (int t = 0; t < T; t++) {
      float da;
      memcpy(&da, a + (size_t)t * as + cols + (size_t)B * 4, 4);
      const __m512 vda = _mm512_set1_ps(da);
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[t]), _mm512_mul_ps(d, vda), acc[t]);
      if (mode == PX_MIN) {
        const __m512 dmin = _mm512_load_ps((const float *)(head + 5 * (PANEL_BLOCK_BYTES / 64) + 9));
        mins[t] = _mm512_add_ps(mins[t], _mm512_mul_ps(_mm512_mul_ps(dmin, vda), _mm512_cvtepi32_ps(msum[t])));
      }
    }
  }
}

/* T tokens against one whole 16-row panel: y[t][r] for the panel's live rows. */
PX_INLINE void px_tile(const int T, const int mode, int nb, const uint8_t *panel, const uint8_t *a,
                       size_t as, const int32_t *aux, size_t aux_stride, int cols, __mmask16 live, float *y,
                       size_t ys) {
  __m512 acc[PANEL_T], mins[PANEL_T];
  for (int t = 0; t < T; t++) acc[t] = mins[t] = _mm512_setzero_ps();
  if (mode == PX_OFFSET) px_run_32(T, 0, nb, panel, a, as, aux, aux_stride, cols, acc);
  else px_run_k(T, mode, 0, nb / 8, panel, a, as, aux, aux_stride, cols, acc, mins);
  for (int t = 0; t < T; t++)
    _mm512_mask_storeu_ps(y + (size_t)t * ys, live, mode == PX_MIN ? _mm512_sub_ps(acc[t], mins[t]) : acc[t]);
}


#define PX_TILE_CASE(N) \
  case N: px_tile(N, mode, nb, panel, at, as, xt, aux_stride, cols, live, yt, ys); break

/*
 * Unpacks the nr rows into panels, then walks the tokens in tiles of PANEL_T, each tile against
 * every panel while its activations are in cache.
 */
PX_INLINE void px_gemm(px_unit_fn unit, const int unit_blocks, const int mode, int cols, const uint8_t *w,
                       size_t ws, int nr, const uint8_t *a, size_t as, const int32_t *aux, size_t aux_stride, int nt,
                       float *y, size_t ys, uint8_t *panels) {
  const int nb = cols / QK;
  const size_t panel_bytes = (size_t)nb * PANEL_BLOCK_BYTES;
  const int np = (nr + PANEL_ROWS - 1) / PANEL_ROWS;
  px_unpack_panels(unit, nb / unit_blocks, (size_t)unit_blocks * PANEL_BLOCK_BYTES, w, ws, nr, panels);
  for (int t0 = 0; t0 < nt; t0 += PANEL_T) {
    const int T = nt - t0 < PANEL_T ? nt - t0 : PANEL_T;
    const uint8_t *at = a + (size_t)t0 * as;
    const int32_t *xt = aux + (size_t)t0 * aux_stride;
    for (int p = 0; p < np; p++) {
      const int rows = nr - p * PANEL_ROWS < PANEL_ROWS ? nr - p * PANEL_ROWS : PANEL_ROWS;
      const __mmask16 live = (__mmask16)((1u << rows) - 1);
      const uint8_t *panel = panels + (size_t)p * panel_bytes;
      float *yt = y + (size_t)t0 * ys + (size_t)p * PANEL_ROWS;
      switch (T) {
        PX_TILE_CASE(6);
        PX_TILE_CASE(5);
        PX_TILE_CASE(4);
        PX_TILE_CASE(3);
        PX_TILE_CASE(2);
        default: px_tile(1, mode, nb, panel, at, as, xt, aux_stride, cols, live, yt, ys); break;
      }
    }
  }
}

/*
 * The same products for a few tokens (decode), without a panel in memory: each unit of 16 rows is
 * unpacked into a small buffer that stays in L1 and used at once by the call's tokens, so every
 * output is formed with the panel path's arithmetic, operation for operation. (Row kernels that
 * sum a row in vector lanes round differently: a token's result would then depend on whether its
 * batch took the panels, and speculative decoding, continuous batching and resumed sequences
 * would no longer give the tokens a sequence gets alone.)
 */
PX_INLINE void px_direct_tile(const int T, const int unit_blocks, const int mode, px_unit_fn unit, int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a,
                              size_t as, const int32_t *aux, size_t aux_stride, float *y, size_t ys) {
  const int units = cols / (QK * unit_blocks);
  uint8_t buf[8 * PANEL_BLOCK_BYTES] __attribute__((aligned(64)));
  for (int r0 = 0; r0 < nr; r0 += PANEL_ROWS) {
    const uint8_t *rp[PANEL_ROWS], *next;
    size_t next_bytes;
    const int rows = px_direct_rows(w, ws, nr, r0, rp, &next, &next_bytes);
    const size_t per_unit = (next_bytes + units - 1) / units;
    __m512 acc[PANEL_T], mins[PANEL_T];
    for (int t = 0; t < T; t++) acc[t] = mins[t] = _mm512_setzero_ps();
    for (int u = 0; u < units; u++) {
      px_direct_prefetch(next, next_bytes, per_unit, u);
      unit(rp, u, buf);
      if (mode == PX_OFFSET) px_run_32(T, u, 1, buf, a, as, aux, aux_stride, cols, acc);
      else px_run_k(T, mode, u, 1, buf, a, as, aux, aux_stride, cols, acc, mins);
    }
    px_direct_store(T, mode, rows, acc, mins, y, ys, r0);
  }
}


/* T (<= PANEL_T) tokens of a direct unit, their sums kept in memory between units. */
PX_INLINE void px_direct_group(const int T, const int mode, int u, const uint8_t *buf, const uint8_t *a, size_t as,
                               const int32_t *aux, size_t aux_stride, int cols, __m512 *acc, __m512 *mins) {
  __m512 ra[PANEL_T], rm[PANEL_T];
  for (int t = 0; t < T; t++) {
    ra[t] = acc[t];
    rm[t] = mins[t];
  }
  if (mode == PX_OFFSET) px_run_32(T, u, 1, buf, a, as, aux, aux_stride, cols, ra);
  else px_run_k(T, mode, u, 1, buf, a, as, aux, aux_stride, cols, ra, rm);
  for (int t = 0; t < T; t++) {
    acc[t] = ra[t];
    mins[t] = rm[t];
  }
}

#define PX_GROUP_CASE(N)                                                                           \
  case N:                                                                                          \
    px_direct_group(N, mode, u, buf, at, as, xt, aux_stride, cols, acc + t0, mins + t0);          \
    break

/*
 * More tokens than a tile holds in registers (up to PX_DIRECT_MAX_T): each unpacked unit serves
 * every token before the next is unpacked, in groups of PANEL_T whose sums wait in L1 meanwhile.
 * (Unpacking once per group instead cost as much as the panels: Q4_K 2048 x 2048, 2 threads,
 * 8 tokens 9.2 GB/s, 16 tokens 5.6.)
 */
PX_INLINE void px_direct_many(const int unit_blocks, const int mode, px_unit_fn unit, int cols, const uint8_t *w, size_t ws, int nr,
                              const uint8_t *a, size_t as, const int32_t *aux, size_t aux_stride, int nt, float *y, size_t ys) {
  const int units = cols / (QK * unit_blocks);
  uint8_t buf[8 * PANEL_BLOCK_BYTES] __attribute__((aligned(64)));
  __m512 acc[PX_DIRECT_MAX_T], mins[PX_DIRECT_MAX_T];
  for (int r0 = 0; r0 < nr; r0 += PANEL_ROWS) {
    const uint8_t *rp[PANEL_ROWS], *next;
    size_t next_bytes;
    const int rows = px_direct_rows(w, ws, nr, r0, rp, &next, &next_bytes);
    const size_t per_unit = (next_bytes + units - 1) / units;
    for (int t = 0; t < nt; t++) acc[t] = mins[t] = _mm512_setzero_ps();
    const int groups = (nt + PANEL_T - 1) / PANEL_T;
    for (int u = 0; u < units; u++) {
      unit(rp, u, buf);
      for (int t0 = 0; t0 < nt; t0 += PANEL_T) {
        px_direct_prefetch_part(next, next_bytes, per_unit, u, t0 / PANEL_T, groups);
        const uint8_t *at = a + (size_t)t0 * as;
        const int32_t *xt = aux + (size_t)t0 * aux_stride;
        switch (nt - t0 < PANEL_T ? nt - t0 : PANEL_T) {
          PX_GROUP_CASE(6);
          PX_GROUP_CASE(5);
          PX_GROUP_CASE(4);
          PX_GROUP_CASE(3);
          PX_GROUP_CASE(2);
          default: px_direct_group(1, mode, u, buf, at, as, xt, aux_stride, cols, acc + t0, mins + t0); break;
        }
      }
    }
    px_direct_store(nt, mode, rows, acc, mins, y, ys, r0);
  }
}


/* The per-thread prep values of the call's tokens (a kernel is called once per piece of rows). */
static __thread int32_t *px_direct_aux;
static __thread size_t px_direct_aux_cap;
static __thread const uint8_t *px_direct_a;
static __thread unsigned px_direct_generation;
static __thread int px_direct_cols, px_direct_nt;

#define PX_DIRECT_CASE(N)                                                                                   \
  case N:                                                                                                   \
    px_direct_tile(N, unit_blocks, mode, unit, cols, w, ws, nr, at, as, xt, aux_stride, yt, ys);                              \
    break

/* `amx`: whether the AMX level may take the products of many tokens (not from packed weights,
   which its tile kernels do not read). */
/* The prep values of the call's nt tokens (aux_stride apart), made once per thread and activations. */
PX_INLINE const int32_t *px_direct_prep(px_prep_fn prep, int cols, const uint8_t *a, size_t as, int nt, size_t aux_stride) {
  const size_t need = aux_stride * (size_t)nt;
  if (need > px_direct_aux_cap) {
    int32_t *grown = (int32_t *)realloc(px_direct_aux, need * sizeof(int32_t));
    if (!grown) abort(); /* a few KiB per token: the process is out of memory */
    px_direct_aux = grown;
    px_direct_aux_cap = need;
    px_direct_a = NULL;
  }
  if (px_direct_a != a || px_direct_generation != quant_activation_generation || px_direct_cols != cols || px_direct_nt < nt) {
    for (int t = 0; t < nt; t++) prep(a + (size_t)t * as, cols, px_direct_aux + (size_t)t * aux_stride);
    px_direct_a = a;
    px_direct_generation = quant_activation_generation;
    px_direct_cols = cols;
    px_direct_nt = nt;
  }
  return px_direct_aux;
}

PX_INLINE void px_direct(const int type, const int unit_blocks, const int mode, px_unit_fn unit, px_prep_fn prep, const int amx, int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, int nt, float *y, size_t ys) {
  const size_t aux_stride = quant_panel_aux_count(cols);
  const int32_t *aux = px_direct_prep(prep, cols, a, as, nt, aux_stride);
  for (int t0 = 0; t0 < nt; t0 += PX_DIRECT_MAX_T) {
    const int left = nt - t0;
    if (amx && left >= quant_amx_direct_min_t(type) && cairn_isa_active() == CAIRN_ISA_AMX) {
      const int n = left < PX_DIRECT_MAX_T ? left : PX_DIRECT_MAX_T;
      quant_amx_direct(type, cols, w, ws, nr, a + (size_t)t0 * as, as, aux + (size_t)t0 * aux_stride,
                       aux_stride, n, y + (size_t)t0 * ys, ys);
      continue;
    }
    if (left > PANEL_T) {
      const int n = left < PX_DIRECT_MAX_T ? left : PX_DIRECT_MAX_T;
      px_direct_many(unit_blocks, mode, unit, cols, w, ws, nr, a + (size_t)t0 * as, as, aux + (size_t)t0 * aux_stride, aux_stride, n,
                     y + (size_t)t0 * ys, ys);
      continue;
    }
    const int T = left;
    const uint8_t *at = a + (size_t)t0 * as;
    const int32_t *xt = aux + (size_t)t0 * aux_stride;
    float *yt = y + (size_t)t0 * ys;
    switch (T) {
      PX_DIRECT_CASE(6);
      PX_DIRECT_CASE(5);
      PX_DIRECT_CASE(4);
      PX_DIRECT_CASE(3);
      PX_DIRECT_CASE(2);
      default: px_direct_tile(1, unit_blocks, mode, unit, cols, w, ws, nr, at, as, xt, aux_stride, yt, ys); break;
    }
  }
}

#define PX_GEMM(NAME, UNIT, UNIT_BLOCKS, MODE)                                                                  \
  static void px_gemm_##NAME(int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, const int32_t *aux, \
                             size_t aux_stride, int nt, float *y, size_t ys, uint8_t *panels) {                \
    px_gemm(UNIT, UNIT_BLOCKS, MODE, cols, w, ws, nr, a, as, aux, aux_stride, nt, y, ys, panels);     \
  }
#define PX_GEMM_DIRECT(NAME, TYPE, UNIT, PREP)                                                                        \
  PX_GEMM(NAME, UNIT, 1, PX_OFFSET)                                                                             \
  void quant_direct_##NAME##_avx512(int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, int nt, \
                                    float *y, size_t ys) {                                                      \
    px_direct(TYPE, 1, PX_OFFSET, UNIT, PREP, 1, cols, w, ws, nr, a, as, nt, y, ys);                                                  \
  }

PX_GEMM_DIRECT(q4_0, CAIRN_Q4_0, px_unit_q4_0, px_prep_q4_0)
PX_GEMM_DIRECT(q8_0, CAIRN_Q8_0, px_unit_q8_0, px_prep_q8_0)
PX_GEMM_DIRECT(mxfp4, CAIRN_MXFP4, px_unit_mxfp4, px_prep_mxfp4)
PX_GEMM_DIRECT(iq4_nl, CAIRN_IQ4_NL, px_unit_iq4_nl, px_prep_iq4_nl)
PX_GEMM_DIRECT(q5_0, CAIRN_Q5_0, px_unit_q5_0, px_prep_q5_0)
PX_GEMM(q4_K, px_unit_q4_K, 8, PX_MIN)
PX_GEMM(q5_K, px_unit_q5_K, 8, PX_MIN)
PX_GEMM(q6_K, px_unit_q6_K, 8, PX_HALVES)
PX_GEMM(iq4_xs, px_unit_iq4_xs, 8, PX_HALVES)
/* The K formats' direct products, for 2 or more tokens (one token takes the row kernels: the same
   arithmetic, a little faster alone). */
void quant_direct_q4_K_avx512(int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, int nt, float *y, size_t ys) {
  px_direct(CAIRN_Q4_K, 8, PX_MIN, px_unit_q4_K, px_prep_q4_K, 1, cols, w, ws, nr, a, as, nt, y, ys);
}
void quant_direct_q5_K_avx512(int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, int nt, float *y, size_t ys) {
  px_direct(CAIRN_Q5_K, 8, PX_MIN, px_unit_q5_K, px_prep_q4_K, 1, cols, w, ws, nr, a, as, nt, y, ys);
}
void quant_direct_q6_K_avx512(int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, int nt, float *y, size_t ys) {
  px_direct(CAIRN_Q6_K, 8, PX_HALVES, px_unit_q6_K, px_prep_q6_K, 1, cols, w, ws, nr, a, as, nt, y, ys);
}
/* IQ4_XS's, for any number of tokens (one token too: no row kernel shares this arithmetic). */
void quant_direct_iq4_xs_avx512(int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, int nt, float *y, size_t ys) {
  px_direct(CAIRN_IQ4_XS, 8, PX_HALVES, px_unit_iq4_xs, px_prep_iq4_xs, 1, cols, w, ws, nr, a, as, nt, y, ys);
}

/*
 * Weights of 4-bit codes packed at load (px_pack_block_codes): the same panel blocks as the units
 * make from the rows, so the same results bit for bit, without the 16-row transposes and scale
 * gathers that cost a one-token product more than its dots (llama-1b Q4_0 decode step 19.3-23.8
 * -> 14.9-18.1 ms on a Zen 5 host, profile.js with CAIRN_PACK_WEIGHTS=0 and 1 alternating). The
 * blocks are unpacked into px_direct's L1 buffer as from the rows: unpacking them in registers
 * and using them at once measured level (14.3-15.9 against 14.4-15.4 ms). For each format packed
 * (PX_PACKED): the packing (PACK_BLOCK for each block of a group), a row back in the file's layout
 * (UNPACK_ROW), the panel products and the direct ones (never AMX's).
 */
#define PX_PACKED(NAME, TYPE, BLOCK, UNIT_BLOCKS, MODE, PREP, PACK_BLOCK, UNPACK_ROW)                                       \
  static void px_pack_##NAME(const uint8_t *w, size_t ws, int nr, uint8_t *dst) {                                          \
    const int nb = (int)(ws / sizeof(BLOCK));                                                                              \
    for (int r0 = 0; r0 < nr; r0 += PANEL_ROWS) {                                                                          \
      const uint8_t *rp[PANEL_ROWS];                                                                                       \
      px_rows(w + (size_t)r0 * ws, ws, nr - r0 < PANEL_ROWS ? nr - r0 : PANEL_ROWS, rp);                                   \
      for (int b = 0; b < nb; b++) PACK_BLOCK(rp, b, dst + (size_t)r0 * ws + (size_t)b * PANEL_ROWS * sizeof(BLOCK));     \
    }                                                                                                                      \
  }                                                                                                                        \
  static void px_packed_row_##NAME(const uint8_t *packed, size_t ws, int row, int b0, int nb, uint8_t *dst) {              \
    const int lane = row % PANEL_ROWS;                                                                                     \
    UNPACK_ROW(packed + (size_t)(row - lane) * ws, lane, b0, nb, dst);                                                     \
  }                                                                                                                        \
  PX_GEMM(NAME##_packed, px_unit_##NAME##_packed, UNIT_BLOCKS, MODE)                                                       \
  static void px_direct_##NAME##_packed(int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, int nt, \
                                        float *y, size_t ys) {                                                             \
    px_direct(TYPE, UNIT_BLOCKS, MODE, px_unit_##NAME##_packed, PREP, 0, cols, w, ws, nr, a, as, nt, y, ys);               \
  }
/* The 32-element formats of 4-bit codes: each block's codes, then its scale field (SCALE) per row. */
#define PX_CODES_FIELDS(BLOCK, SCALE) offsetof(BLOCK, qs), offsetof(BLOCK, SCALE), sizeof(((BLOCK *)0)->SCALE)
#define PX_PACKED_CODES(NAME, TYPE, BLOCK, SCALE, PREP)                                                                    \
  PX_INLINE void px_pack_codes_##NAME(const uint8_t *const *rp, int b, uint8_t *dst) {                                     \
    px_pack_block_codes(rp, b, sizeof(BLOCK), PX_CODES_FIELDS(BLOCK, SCALE), dst);                                          \
  }                                                                                                                        \
  PX_INLINE void px_unpack_codes_##NAME(const uint8_t *group, int lane, int b0, int nb, uint8_t *dst) {                    \
    px_unpack_row_codes(group, lane, b0, nb, sizeof(BLOCK), PX_CODES_FIELDS(BLOCK, SCALE), dst);                            \
  }                                                                                                                        \
  PX_PACKED(NAME, TYPE, BLOCK, 1, PX_OFFSET, PREP, px_pack_codes_##NAME, px_unpack_codes_##NAME)
PX_PACKED_CODES(q4_0, CAIRN_Q4_0, block_q4_0, d, px_prep_q4_0)
PX_PACKED_CODES(iq4_nl, CAIRN_IQ4_NL, block_iq4_nl, d, px_prep_iq4_nl)
PX_PACKED_CODES(mxfp4, CAIRN_MXFP4, block_mxfp4, e, px_prep_mxfp4)

/*
 * How far ahead px_k_one's prefetches ask, in bytes: as far as the row kernels' (QX_PFM x qx_ahead).
 * The direct tiles' distance (the 16 rows two groups on) ran one token's packed Q4_K products from
 * memory (2 threads, Zen 5) at 38-40 GB/s, half a group on at 37-51 (8192 columns) and 43-44
 * (2048); 4-9 KiB at 54-61 and 58-63, against the row kernels' 44-47; 18 KiB at 45-59.
 */
#define PX_K_AHEAD 9216

/* The 16 rows of the packed group at r0 into rp, and what its one-token product prefetches: the
   stretch PX_K_AHEAD bytes on, a super-block's share (per_unit bytes) at a time. Returns its live rows. */
PX_INLINE int px_one_rows(const uint8_t *w, size_t ws, int nr, int r0, int nb, const uint8_t **rp, const uint8_t **next,
                          size_t *next_bytes, size_t *per_unit) {
  const int rows = nr - r0 < PANEL_ROWS ? nr - r0 : PANEL_ROWS;
  px_rows(w + (size_t)r0 * ws, ws, rows, rp);
  *next = w + (size_t)r0 * ws + PX_K_AHEAD;
  *next_bytes = PANEL_ROWS * ws;
  *per_unit = (*next_bytes + nb - 1) / nb;
  return rows;
}

/*
 * One token against packed Q4_K/Q5_K rows, 16 at a time, straight from the packed vectors: each
 * super-block's quants are split into nibbles in registers and dotted at once, where the direct
 * path stores a panel in L1 and reads it back (~80 stores a super-block of 16 rows: from memory
 * that path ran a llama-1b Q4_K_M step ~15% slower than the row kernels). The integer dots,
 * scales and float steps are px_run_k's with T = 1, in its order: the same results bit for bit.
 */
PX_INLINE void px_k_one(const int five, int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, const int32_t *xt, float *y) {
  const int nb = cols / QK_K;
  const size_t block_bytes = five ? sizeof(block_q5_K) : sizeof(block_q4_K);
  for (int r0 = 0; r0 < nr; r0 += PANEL_ROWS) {
    const uint8_t *rp[PANEL_ROWS], *next;
    size_t next_bytes, per_unit;
    const int rows = px_one_rows(w, ws, nr, r0, nb, rp, &next, &next_bytes, &per_unit);
    __m512 acc = _mm512_setzero_ps(), mins = _mm512_setzero_ps();
    for (int B = 0; B < nb; B++) {
      px_direct_prefetch(next, next_bytes, per_unit, B);
      px_q4_K_head head;
      px_k_head_of(1, rp, B, block_bytes, &head);
      __m512i isum = _mm512_setzero_si512(), msum = _mm512_setzero_si512();
      for (int j = 0; j < 4; j++) {
        __m512i even[8], odd[8];
        for (int h = 0; h < 2; h++) {
          if (five) px_q5_K_quants(1, rp, B, j, h, even + 4 * h, odd + 4 * h);
          else px_q4_K_quants(1, rp, B, j, h, even + 4 * h, odd + 4 * h);
        }
        for (int k = 0; k < 2; k++) {
          const int sb = 2 * j + k, b = 8 * B + sb;
          const __m512i s = px_dot8(_mm512_setzero_si512(), k ? odd : even, (const px_i32u *)(a + (size_t)QK * b));
          isum = _mm512_add_epi32(isum, _mm512_mullo_epi32(s, head.sc[sb]));
        }
        msum = _mm512_dpwssd_epi32(msum, px_q4_K_min_pair(&head, j), _mm512_set1_epi32(xt[8 * B + 2 * j]));
      }
      float da;
      memcpy(&da, a + cols + (size_t)B * 4, 4);
      const __m512 vda = _mm512_set1_ps(da);
      acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(head.d, vda), acc);
      mins = _mm512_add_ps(mins, _mm512_mul_ps(_mm512_mul_ps(head.dmin, vda), _mm512_cvtepi32_ps(msum)));
    }
    px_direct_store(1, PX_MIN, rows, &acc, &mins, y, 1, r0);
  }
}

/*
 * One token against packed Q6_K rows, 16 at a time, as px_k_one: each 16-element half of a sub-block
 * dotted from its offset correction and times its own scale (px_run_k's PX_HALVES integers, exact
 * in any order), then its float steps in its order.
 */
PX_INLINE void px_q6_one(int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, const int32_t *xt, float *y) {
  const int nb = cols / QK_K;
  for (int r0 = 0; r0 < nr; r0 += PANEL_ROWS) {
    const uint8_t *rp[PANEL_ROWS], *next;
    size_t next_bytes, per_unit;
    const int rows = px_one_rows(w, ws, nr, r0, nb, rp, &next, &next_bytes, &per_unit);
    __m512 acc = _mm512_setzero_ps();
    for (int B = 0; B < nb; B++) {
      px_direct_prefetch(next, next_bytes, per_unit, B);
      __m512i scales[4], isum = _mm512_setzero_si512();
      px_block_vectors(1, rp, B, sizeof(block_q6_K), offsetof(block_q6_K, scales), scales);
      for (int n = 0; n < 2; n++)
        for (int h = 0; h < 2; h++) {
          __m512i vh[4], vl[4];
          px_block_vectors(1, rp, B, sizeof(block_q6_K), offsetof(block_q6_K, qh) + 32 * n + 16 * h, vh);
          for (int odd = 0; odd < 2; odd++) {
            px_block_vectors(1, rp, B, sizeof(block_q6_K), offsetof(block_q6_K, ql) + 64 * n + 32 * odd + 16 * h, vl);
            for (int hi = 0; hi < 2; hi++) {
              const int k = odd + 2 * hi, sb = 4 * n + k, b = 8 * B + sb;
              __m512i q[4];
              for (int g = 0; g < 4; g++) q[g] = px_q6_K_quant(vl, vh, k, hi, g);
              const __m512i s = px_dot4(_mm512_set1_epi32(xt[2 * b + h]), q, (const px_i32u *)(a + (size_t)QK * b) + 4 * h);
              isum = _mm512_add_epi32(isum, _mm512_mullo_epi32(s, px_sbyte(scales, 2 * sb + h)));
            }
          }
        }
      float da;
      memcpy(&da, a + cols + (size_t)B * 4, 4);
      acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(px_q6_K_packed_d(rp, B), _mm512_set1_ps(da)), acc);
    }
    px_direct_store(1, PX_HALVES, rows, &acc, &acc, y, 1, r0);
  }
}

/*
 * Q4_K, Q5_K and Q6_K packed at load (px_pack_block_dwords): their units load the vectors they
 * otherwise transpose out of 16 rows, which makes the products of a few tokens to a few dozen
 * faster (the transposes were much of a unit), and one token takes px_k_one or px_q6_one (one
 * token through the units' L1 panels ran 15-27% slower than the row kernels).
 */
#define PX_PACKED_K(NAME, TYPE, BLOCK, MODE, PREP)                                                                         \
  _Static_assert(sizeof(BLOCK) / 4 % 4 == 0 && sizeof(BLOCK) % 4 % 2 == 0, "px_pack_block_dwords takes dwords in fours"); \
  PX_INLINE void px_pack_dwords_##NAME(const uint8_t *const *rp, int b, uint8_t *dst) {                                    \
    px_pack_block_dwords(rp, b, sizeof(BLOCK), dst);                                                                       \
  }                                                                                                                        \
  PX_INLINE void px_unpack_dwords_##NAME(const uint8_t *group, int lane, int b0, int nb, uint8_t *dst) {                   \
    px_unpack_row_dwords(group, lane, b0, nb, sizeof(BLOCK), dst);                                                         \
  }                                                                                                                        \
  PX_PACKED(NAME, TYPE, BLOCK, 8, MODE, PREP, px_pack_dwords_##NAME, px_unpack_dwords_##NAME)
PX_PACKED_K(q4_K, CAIRN_Q4_K, block_q4_K, PX_MIN, px_prep_q4_K)
PX_PACKED_K(q5_K, CAIRN_Q5_K, block_q5_K, PX_MIN, px_prep_q4_K)
PX_PACKED_K(q6_K, CAIRN_Q6_K, block_q6_K, PX_HALVES, px_prep_q6_K)

/* The K formats packed: one token straight from the packed vectors (ONE), more through panels in L1. */
#define PX_PACKED_K_ONE(NAME, PREP, ONE)                                                                                     \
  static void px_direct_##NAME##_packed_one(int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, int nt, \
                                            float *y, size_t ys) {                                                          \
    if (nt != 1) {                                                                                                          \
      px_direct_##NAME##_packed(cols, w, ws, nr, a, as, nt, y, ys);                                                         \
      return;                                                                                                               \
    }                                                                                                                       \
    ONE(cols, w, ws, nr, a, px_direct_prep(PREP, cols, a, as, 1, quant_panel_aux_count(cols)), y);                          \
  }
PX_INLINE void px_q4_K_one(int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, const int32_t *xt, float *y) {
  px_k_one(0, cols, w, ws, nr, a, xt, y);
}
PX_INLINE void px_q5_K_one(int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, const int32_t *xt, float *y) {
  px_k_one(1, cols, w, ws, nr, a, xt, y);
}
PX_PACKED_K_ONE(q4_K, px_prep_q4_K, px_q4_K_one)
PX_PACKED_K_ONE(q5_K, px_prep_q4_K, px_q5_K_one)
PX_PACKED_K_ONE(q6_K, px_prep_q6_K, px_q6_one)

const quant_panel_table quant_panels_avx512 = {
    .prep = {[CAIRN_Q4_0] = px_prep_q4_0, [CAIRN_Q8_0] = px_prep_q8_0, [CAIRN_Q4_K] = px_prep_q4_K, [CAIRN_Q5_K] = px_prep_q4_K, [CAIRN_Q6_K] = px_prep_q6_K,
             [CAIRN_MXFP4] = px_prep_mxfp4, [CAIRN_IQ4_NL] = px_prep_iq4_nl, [CAIRN_IQ4_XS] = px_prep_iq4_xs,
             [CAIRN_Q5_0] = px_prep_q5_0},
    .gemm = {[CAIRN_Q4_0] = px_gemm_q4_0, [CAIRN_Q8_0] = px_gemm_q8_0, [CAIRN_Q4_K] = px_gemm_q4_K, [CAIRN_Q5_K] = px_gemm_q5_K,
             [CAIRN_Q6_K] = px_gemm_q6_K, [CAIRN_MXFP4] = px_gemm_mxfp4, [CAIRN_IQ4_NL] = px_gemm_iq4_nl, [CAIRN_IQ4_XS] = px_gemm_iq4_xs,
             [CAIRN_Q5_0] = px_gemm_q5_0},
    /* Below this, the direct products (no panel in memory: each unit unpacked into L1 and used by
     * every token at once) beat the panels: 2048 x 2048, 2 threads, from memory, GB/s, panels ->
     * direct: Q4_K 4 tokens 8.7 -> 19.3, 16: 5.3 -> 6.7, 48: 2.4 -> 2.8, 64: 2.0 -> 2.1; Q8_0 4:
     * 18.3 -> 34.4, 16: 10.8 -> 13.0, 48: 5.1 -> 5.4; Q4_0, MXFP4 alike; Q6_K level to 16, 32:
     * 4.1 -> 4.7. */
    .min_tokens = {[CAIRN_Q4_0] = PX_DIRECT_MAX_T + 1, [CAIRN_Q8_0] = PX_DIRECT_MAX_T + 1, [CAIRN_Q4_K] = PX_DIRECT_MAX_T + 1,
                   [CAIRN_Q6_K] = PX_DIRECT_MAX_T + 1, [CAIRN_MXFP4] = PX_DIRECT_MAX_T + 1, [CAIRN_IQ4_NL] = PX_DIRECT_MAX_T + 1,
                   [CAIRN_IQ4_XS] = PX_DIRECT_MAX_T + 1, [CAIRN_Q5_K] = PX_DIRECT_MAX_T + 1, [CAIRN_Q5_0] = PX_DIRECT_MAX_T + 1},
    .pack = {[CAIRN_Q4_0] = px_pack_q4_0, [CAIRN_IQ4_NL] = px_pack_iq4_nl, [CAIRN_MXFP4] = px_pack_mxfp4,
             [CAIRN_Q4_K] = px_pack_q4_K, [CAIRN_Q5_K] = px_pack_q5_K, [CAIRN_Q6_K] = px_pack_q6_K},
    .packed_row = {[CAIRN_Q4_0] = px_packed_row_q4_0, [CAIRN_IQ4_NL] = px_packed_row_iq4_nl, [CAIRN_MXFP4] = px_packed_row_mxfp4,
                   [CAIRN_Q4_K] = px_packed_row_q4_K, [CAIRN_Q5_K] = px_packed_row_q5_K, [CAIRN_Q6_K] = px_packed_row_q6_K},
    .packed = {[CAIRN_Q4_0] = px_direct_q4_0_packed, [CAIRN_IQ4_NL] = px_direct_iq4_nl_packed, [CAIRN_MXFP4] = px_direct_mxfp4_packed,
               [CAIRN_Q4_K] = px_direct_q4_K_packed_one, [CAIRN_Q5_K] = px_direct_q5_K_packed_one,
               [CAIRN_Q6_K] = px_direct_q6_K_packed_one},
    .packed_gemm = {[CAIRN_Q4_0] = px_gemm_q4_0_packed, [CAIRN_IQ4_NL] = px_gemm_iq4_nl_packed, [CAIRN_MXFP4] = px_gemm_mxfp4_packed,
                    [CAIRN_Q4_K] = px_gemm_q4_K_packed, [CAIRN_Q5_K] = px_gemm_q5_K_packed, [CAIRN_Q6_K] = px_gemm_q6_K_packed},
};
#endif
