/*
 * Prefill kernels for many tokens at once (AVX-512 VNNI): weight rows are first unpacked into
 * panels of 16 rows in which each 32-bit lane of a vector belongs to another row, then every token
 * is dotted against a panel with one dpbusd per 4 elements of all 16 rows, its 4 activation bytes
 * broadcast straight from memory.
 *
 * Why: the row-major tiles (quant_x86_kernels.h) finish every dot product with a horizontal layout
 * (one block's sum spread over 8 lanes), so each dpbusd needs its own int->float conversion and
 * scaling: about 6 instructions per 64 multiply-adds. In a panel the 16 lanes are 16 outputs, so a
 * block's conversion and scaling is shared by 16 rows: 12 instructions per 512 multiply-adds.
 * Unpacking costs one pass over the weights per call and is shared by all the call's tokens, which
 * is why matmul.c takes this path only for batches (prompts), never for decoding.
 *
 * Integer semantics stay llama.cpp's: each block's quants are dotted exactly in int32 (offsets
 * taken back through the per-block activation sums that the prep step computes), then scaled in
 * f32 by the weight and activation block scales.
 */
#if defined(__x86_64__)
#include <immintrin.h>
#include <string.h>

#include "../src/quant_formats.h"
#include "../src/quant_kernels.h"

#define PANEL_ROWS QUANT_PANEL_ROWS
/* Tokens per tile: 8 float sums and 8 int sums live next to the 8 weight vectors of a block. */
#define PANEL_T 8
/* Bytes of one block of a panel: 8 vectors of 16 rows x 4 quants, then 16 f32 scales. */
#define PANEL_BLOCK_BYTES (8 * 64 + 64)

#define PX_INLINE static inline __attribute__((always_inline))

_Static_assert(PANEL_BLOCK_BYTES == 8 * 64 + 64, "quant_panel_bytes assumes this block size");

/* Row offsets of 16 rows as gather indices (rows past `nr` are masked off). */
PX_INLINE __m512i px_row_index(size_t ws) {
  return _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                            _mm512_set1_epi32((int)ws));
}

PX_INLINE __m512i px_gather(__mmask16 live, __m512i idx, const uint8_t *base) {
  return _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), live, idx, base, 1);
}

/* The f16 scale in the low half of each gathered dword, as f32. */
PX_INLINE __m512 px_half_lo(__m512i dw) { return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dw)); }

/* Q4_0 panel: quants as u8 0..15 (elements 4g..4g+3 in vector g), offset 8 via the activation sums. */
static void px_pack_q4_0(int cols, const uint8_t *w, size_t ws, int nr, uint8_t *panel) {
  const int nb = cols / QK;
  const __mmask16 live = (__mmask16)((1u << nr) - 1);
  const __m512i idx = px_row_index(ws), low = _mm512_set1_epi8(0x0f);
  for (int b = 0; b < nb; b++) {
    const uint8_t *blk = w + (size_t)b * sizeof(block_q4_0);
    __m512i *out = (__m512i *)(panel + (size_t)b * PANEL_BLOCK_BYTES);
    for (int g = 0; g < 4; g++) {
      const __m512i v = px_gather(live, idx, blk + 2 + 4 * g);
      _mm512_store_si512(out + g, _mm512_and_si512(v, low));
      _mm512_store_si512(out + g + 4, _mm512_and_si512(_mm512_srli_epi16(v, 4), low));
    }
    _mm512_store_ps((float *)(out + 8), px_half_lo(px_gather(live, idx, blk)));
  }
}

/* Q8_0 panel: quants as u8 q + 128, offset 128 via the activation sums. */
static void px_pack_q8_0(int cols, const uint8_t *w, size_t ws, int nr, uint8_t *panel) {
  const int nb = cols / QK;
  const __mmask16 live = (__mmask16)((1u << nr) - 1);
  const __m512i idx = px_row_index(ws), flip = _mm512_set1_epi8((char)0x80);
  for (int b = 0; b < nb; b++) {
    const uint8_t *blk = w + (size_t)b * sizeof(block_q8_0);
    __m512i *out = (__m512i *)(panel + (size_t)b * PANEL_BLOCK_BYTES);
    /* Rows past nr stay zero after the flip too: their scale is 0. */
    for (int g = 0; g < 8; g++) _mm512_store_si512(out + g, _mm512_xor_si512(px_gather(live, idx, blk + 2 + 4 * g), flip));
    _mm512_store_ps((float *)(out + 8), px_half_lo(px_gather(live, idx, blk)));
  }
}

/*
 * -offset * (sum of each 32-element block of a Q8_0 activation row), the start value of each
 * block's integer dot.
 */
PX_INLINE void px_block_sums(const uint8_t *a, int cols, int offset, int32_t *aux) {
  const __m512i ones = _mm512_set1_epi8(1);
  int b = 0;
  for (; b + 2 <= cols / QK; b += 2) {
    const __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, _mm512_loadu_si512((const void *)(a + QK * b)));
    aux[b] = -offset * _mm512_mask_reduce_add_epi32(0x00ff, s);
    aux[b + 1] = -offset * _mm512_mask_reduce_add_epi32(0xff00, s);
  }
  for (; b < cols / QK; b++) {
    int32_t s = 0;
    for (int j = 0; j < QK; j++) s += (int8_t)a[QK * b + j];
    aux[b] = -offset * s;
  }
}

static void px_prep_q4_0(const uint8_t *a, int cols, int32_t *aux) { px_block_sums(a, cols, 8, aux); }
static void px_prep_q8_0(const uint8_t *a, int cols, int32_t *aux) { px_block_sums(a, cols, 128, aux); }

/*
 * T tokens against one 16-row panel over all blocks: y[t][r] for the panel's live rows. Each
 * block's int sum starts from the token's offset correction; its 8 dpbusd take the activation
 * bytes as a broadcast memory operand.
 */
PX_INLINE void px_tile(const int T, int nb, const uint8_t *panel, const uint8_t *a, size_t as, const int32_t *aux,
                       size_t aux_stride, int cols, __mmask16 live, float *y, size_t ys) {
  __m512 acc[PANEL_T];
  for (int t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();
  for (int b = 0; b < nb; b++) {
    const __m512i *wv = (const __m512i *)(panel + (size_t)b * PANEL_BLOCK_BYTES);
    const __m512 wd = _mm512_load_ps((const float *)(wv + 8));
    __m512i w[8];
    for (int g = 0; g < 8; g++) w[g] = _mm512_load_si512(wv + g);
    for (int t = 0; t < T; t++) {
      const uint8_t *at = a + (size_t)t * as + (size_t)QK * b;
      __m512i s = _mm512_set1_epi32(aux[(size_t)t * aux_stride + b]);
      for (int g = 0; g < 8; g++) {
        int32_t four;
        memcpy(&four, at + 4 * g, 4);
        s = _mm512_dpbusd_epi32(s, w[g], _mm512_set1_epi32(four));
      }
      float da;
      memcpy(&da, a + (size_t)t * as + cols + (size_t)b * 4, 4);
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(wd, _mm512_set1_ps(da)), acc[t]);
    }
  }
  for (int t = 0; t < T; t++) _mm512_mask_storeu_ps(y + (size_t)t * ys, live, acc[t]);
}

typedef void (*px_pack_fn)(int cols, const uint8_t *w, size_t ws, int nr, uint8_t *panel);

/*
 * Unpacks the nr rows into panels, then walks the tokens in tiles of PANEL_T, each tile against
 * every panel while its activations are in cache.
 */
PX_INLINE void px_gemm(px_pack_fn pack, int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as,
                       const int32_t *aux, size_t aux_stride, int nt, float *y, size_t ys, uint8_t *panels) {
  const int nb = cols / QK;
  const size_t panel_bytes = (size_t)nb * PANEL_BLOCK_BYTES;
  const int np = (nr + PANEL_ROWS - 1) / PANEL_ROWS;
  for (int p = 0; p < np; p++) {
    const int rows = nr - p * PANEL_ROWS < PANEL_ROWS ? nr - p * PANEL_ROWS : PANEL_ROWS;
    pack(cols, w + (size_t)p * PANEL_ROWS * ws, ws, rows, panels + (size_t)p * panel_bytes);
  }
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
        case 8: px_tile(8, nb, panel, at, as, xt, aux_stride, cols, live, yt, ys); break;
        case 7: px_tile(7, nb, panel, at, as, xt, aux_stride, cols, live, yt, ys); break;
        case 6: px_tile(6, nb, panel, at, as, xt, aux_stride, cols, live, yt, ys); break;
        case 5: px_tile(5, nb, panel, at, as, xt, aux_stride, cols, live, yt, ys); break;
        case 4: px_tile(4, nb, panel, at, as, xt, aux_stride, cols, live, yt, ys); break;
        case 3: px_tile(3, nb, panel, at, as, xt, aux_stride, cols, live, yt, ys); break;
        case 2: px_tile(2, nb, panel, at, as, xt, aux_stride, cols, live, yt, ys); break;
        default: px_tile(1, nb, panel, at, as, xt, aux_stride, cols, live, yt, ys); break;
      }
    }
  }
}

static void px_gemm_q4_0(int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, const int32_t *aux,
                         size_t aux_stride, int nt, float *y, size_t ys, uint8_t *panels) {
  px_gemm(px_pack_q4_0, cols, w, ws, nr, a, as, aux, aux_stride, nt, y, ys, panels);
}

static void px_gemm_q8_0(int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, const int32_t *aux,
                         size_t aux_stride, int nt, float *y, size_t ys, uint8_t *panels) {
  px_gemm(px_pack_q8_0, cols, w, ws, nr, a, as, aux, aux_stride, nt, y, ys, panels);
}

const quant_panel_table quant_panels_avx512 = {
    .prep = {[CAIRN_Q4_0] = px_prep_q4_0, [CAIRN_Q8_0] = px_prep_q8_0},
    .gemm = {[CAIRN_Q4_0] = px_gemm_q4_0, [CAIRN_Q8_0] = px_gemm_q8_0},
};
#endif
