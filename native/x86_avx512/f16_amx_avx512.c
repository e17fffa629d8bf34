/*
 * F16 weights on the AMX-BF16 tiles: the AMX level's products of F16 weights for every token
 * count, one token included. With two cores an F16 prompt was bound by f32 multiply-adds of
 * converted halves (about 120 tok/s for llama-1b at best); these CPUs' tiles multiply bf16 pairs.
 *
 * The split: an f16 value w has 11 significant bits, so it is exactly hi + lo, hi its top 8 bits
 * and lo the rest (at most 3 bits), both bf16. A weight is stored in a tile as the pair (lo, hi)
 * and an activation part x as the pair (x, x), so one pair of the tile's dot is lo*x + hi*x =
 * w*x exactly (11 x 8 bits fit f32). The activations are rounded to f16 first, as ggml converts
 * them for F16 weights and as the vector path does, and split the same way into xh (top 8 bits)
 * and xl (the rest), each its own sum: y = sum(w*xh) + sum(w*xl), every product exact.
 *
 * The tile unit's own sums are not IEEE sequential sums (measured: neither order of a pair's two
 * products nor one rounding of a step's 32 reproduces them), so no vector path can give its
 * results; a token's numbers must not depend on its batch (speculative checks, continuous batching
 * and resumed prompts rely on it), so every token count goes through the tiles, with each sum's
 * element formed by the same sequence of tile steps:
 *  - a few tokens (decode): 16 weight rows' pairs are an A tile as they lie (row by row, 16
 *    columns of pairs), the tokens' parts a B tile (per column, xh then xl of each token), so
 *    neither needs a transpose; sums C[row][2t] and C[row][2t + 1];
 *  - batches: the weights' pairs transposed once per call into B tiles (16 column pairs x 16
 *    rows), the tokens' xh and xl rows A tiles as the converter lays them out; sums Ch[t][row] and
 *    Cl[t][row].
 * The tile unit forms an element the same way whichever operand a value comes from (measured bit
 * for bit on random operands in both orientations), and both paths add the xl sum to the xh sum
 * last, so a token gets the same outputs alone and in any batch (tested).
 *
 * Batches come in chunks of 256 rows (the panel table's chunk_rows): the activations take 8 bytes a
 * column and each chunk reads them all again, so the kernel forms a chunk's units in blocks of
 * columns (in L2 while every token tile passes) rather than the driver keeping chunks small.
 *
 * The converted activation row (quant_amx_f16_row_bytes): pad16(cols) dwords (xh, xh), then as
 * many (xl, xl), zero past cols; weight columns past cols read as zero.
 *
 * Only the AMX level calls into this file (dispatch.c grants it where AMX-BF16 is there too).
 */
#if defined(__x86_64__)
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "amx_config.h"
#include "quant_formats.h"
#include "quant_kernels.h"

/* Weight rows per tile, and columns per tile step (16 pairs). */
#define F16_ROWS 16
#define F16_STEP 16
/* One unit: the B tile of 16 columns x 16 rows of weight pairs. */
#define F16_UNIT_BYTES 1024
/* Tokens per pass of the row path (three sums tiles of 8 tokens, two columns each). */
#define F16_ROW_TOKENS 24
/* Tokens per tile of the batch path. */
#define F16_M 16

#define F16_INLINE static inline __attribute__((always_inline))

static int f16_steps(int cols) { return (cols + F16_STEP - 1) / F16_STEP; }

/* The xl parts start a line after the xh parts end (F16_LO_GAP dwords) and the row ends a line after
   them: parts a power of two apart would put a tile's 16 token rows, and a token's xh and xl, in
   the same few L1 sets (2048-8192 columns: 10-20% slower batches). */
#define F16_LO_GAP 16
static size_t f16_lo_dwords(int cols) { return (size_t)f16_steps(cols) * F16_STEP + F16_LO_GAP; }
/* The row then ends F16_LO_GAP dwords after the xl parts: quant_amx_f16_row_bytes (quant_kernels.h). */

/* f32 sums a token tile carries between column blocks for a pair of panels (xh and xl of each). */
#define F16_PART_BYTES (4 * 16 * 16 * sizeof(float))
/* A share's buffer for the batch path at most, where the whole chunk's units would not fit: a
   column block of units and the sums carried between blocks (per thread, so kept well below what
   every panel of 256 rows of 28672 columns would take). */
#define F16_BUFFER_BYTES ((size_t)2 << 20)

/* The batch path's buffer for np panels of `steps` steps: every unit where they fit in
   F16_BUFFER_BYTES, else that (or at least one block of F16_FLUSH steps and one token tile's sums). */
static size_t f16_buffer_bytes(int np, int steps) {
  const size_t full = (size_t)np * (size_t)steps * F16_UNIT_BYTES;
  const size_t least = (size_t)np * 16 * F16_UNIT_BYTES + ((size_t)np + 1) / 2 * F16_PART_BYTES;
  const size_t cap = F16_BUFFER_BYTES > least ? F16_BUFFER_BYTES : least;
  return full < cap ? full : cap;
}

size_t quant_amx_f16_panel_bytes(int cols, int rows) { return f16_buffer_bytes((rows + F16_ROWS - 1) / F16_ROWS, f16_steps(cols)); }

/* (v, v) pairs of 16 f32 whose low 16 bits are zero: each the bf16 of v twice. */
F16_INLINE __m512i f16_twice(__m512i v) { return _mm512_or_si512(v, _mm512_srli_epi32(v, 16)); }

/*
 * The activation converter: x rounded to f16 as ggml does, then its parts. xl is 0 where x is not
 * finite, so that an infinite activation stays infinite rather than inf - inf.
 */
void quant_amx_convert_f16(const float *x, uint8_t *dst, int cols) {
  const int padded = f16_steps(cols) * F16_STEP;
  uint32_t *hi = (uint32_t *)dst, *lo = hi + f16_lo_dwords(cols);
  memset(hi + padded, 0, F16_LO_GAP * 4);
  memset(lo + padded, 0, 64);
  const __m512i top = _mm512_set1_epi32((int)0xffff0000u);
  for (int i = 0; i < padded; i += 16) {
    const __mmask16 live = cols - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (cols - i)) - 1);
    const __m512 v = _mm512_cvtph_ps(_mm512_cvtps_ph(_mm512_maskz_loadu_ps(live, x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    const __m512i h = _mm512_and_si512(_mm512_castps_si512(v), top);
    const __mmask16 finite = _mm512_cmp_ps_mask(_mm512_abs_ps(v), _mm512_set1_ps(__builtin_inff()), _CMP_LT_OQ);
    /* v - h has at most 3 significant bits: its low 16 bits are zero. */
    const __m512i l = _mm512_castps_si512(_mm512_maskz_sub_ps(finite, v, _mm512_castsi512_ps(h)));
    _mm512_storeu_si512(hi + i, f16_twice(h));
    _mm512_storeu_si512(lo + i, f16_twice(l));
  }
}

/* The (lo, hi) pairs of 16 f16 weights: hi = the top half of the f32 value, lo = value - hi. */
static const uint16_t f16_pair_words[32] = {33, 1, 35, 3, 37, 5, 39, 7, 41, 9, 43, 11, 45, 13, 47, 15,
                                            49, 17, 51, 19, 53, 21, 55, 23, 57, 25, 59, 27, 61, 29, 63, 31};
F16_INLINE __m512i f16_pairs(__m256i halves, __m512i words) {
  const __m512 v = _mm512_cvtph_ps(halves);
  const __m512 hi = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32((int)0xffff0000u)));
  /* Word 2i: the top half of lane i of v - hi (exact, at most 3 bits); word 2i + 1: that of v. */
  return _mm512_permutex2var_epi16(_mm512_castps_si512(v), words, _mm512_castps_si512(_mm512_sub_ps(v, hi)));
}

/* 16 columns of a weight row from column k, zero past cols. */
F16_INLINE __m256i f16_piece(const uint8_t *row, int k, int cols) {
  const uint16_t *p = (const uint16_t *)row + k;
  if (cols - k >= 16) return _mm256_loadu_si256((const __m256i *)p);
  return _mm256_maskz_loadu_epi16((__mmask16)((1u << (cols - k)) - 1), p);
}

/* ---- a few tokens: the weights as A tiles, row by row ---- */

/*
 * Steps a sums tile runs before its sums go into f32 sums in memory, for every token count alike:
 * the tile unit's own sums over a whole row of 2048-8192 columns came out twice as far from the
 * exact sum as the f32 path's; flushed every 256 columns, half as far (bench/RESULTS.md).
 */
#define F16_FLUSH 16

/* Tokens of one sums tile (two columns each), and tiles per pass. */
#define F16_GROUP 8
#define F16_GROUPS 3

/* Tokens in group g of a pass of nt. */
F16_INLINE int f16_group_tokens(int nt, int g) {
  const int left = nt - g * F16_GROUP;
  return left <= 0 ? 0 : left < F16_GROUP ? left : F16_GROUP;
}

/*
 * Step s of the tokens' B tiles, one per group of up to 8 tokens, one after the other: each 16
 * rows (columns 16s + k) of the group's (xh, xl) pairs.
 */
F16_INLINE void f16_token_step(const uint8_t *a, size_t as, int padded, int nt, int s, uint32_t *dst) {
  for (int t = 0; t < nt; t++) {
    const int g = t / F16_GROUP, n = f16_group_tokens(nt, g), j = t % F16_GROUP;
    uint32_t *tile = dst + (size_t)F16_STEP * 2 * g * F16_GROUP;
    const uint32_t *hi = (const uint32_t *)(a + (size_t)t * as) + (size_t)s * F16_STEP, *lo = hi + padded + F16_LO_GAP;
    for (int k = 0; k < F16_STEP; k++) {
      tile[(k * n + j) * 2] = hi[k];
      tile[(k * n + j) * 2 + 1] = lo[k];
    }
  }
}

/*
 * Every step's token tiles, laid out once per call per thread (a decode step calls the kernel once
 * per piece of rows): NULL only where a few bytes a column could not be had, and then the row path
 * lays out each step as it goes.
 */
typedef struct {
  unsigned generation;
  const uint8_t *a;
  size_t as;
  int cols, nt;
  uint32_t *tiles;
  size_t cap;
} f16_token_tiles;

static const uint32_t *f16_tokens(const uint8_t *a, size_t as, int cols, int nt) {
  static __thread f16_token_tiles tt;
  const int steps = f16_steps(cols), padded = steps * F16_STEP;
  if (tt.tiles && tt.generation == quant_activation_generation && tt.a == a && tt.as == as && tt.cols == cols && tt.nt == nt)
    return tt.tiles;
  const size_t need = (size_t)padded * (size_t)nt * 2;
  if (need > tt.cap) {
    void *p = NULL;
    if (posix_memalign(&p, 64, need * 4) != 0) return NULL;
    free(tt.tiles);
    tt.tiles = (uint32_t *)p;
    tt.cap = need;
  }
  for (int s = 0; s < steps; s++) f16_token_step(a, as, padded, nt, s, tt.tiles + (size_t)s * F16_STEP * nt * 2);
  tt.generation = quant_activation_generation, tt.a = a, tt.as = as, tt.cols = cols, tt.nt = nt;
  return tt.tiles;
}

/* Tiles 0-2: the groups' sums (16 rows x 2n); 3-5: their tokens (16 columns x 2n); 6-7: weight pairs
   (16 rows x 16 columns), written and loaded in turn. */
static void f16_rows_config(int nt) {
  amx_config c;
  memset(&c, 0, sizeof c);
  c.palette = 1;
  for (int g = 0; g < F16_GROUPS; g++) {
    const int n = f16_group_tokens(nt, g);
    if (!n) continue;
    c.rows[g] = c.rows[3 + g] = 16;
    c.colsb[g] = c.colsb[3 + g] = (uint16_t)(8 * n);
  }
  c.rows[6] = c.rows[7] = 16;
  c.colsb[6] = c.colsb[7] = 64;
  amx_load_config(&c);
}

/* One step of 16 rows' pairs into a unit (missing rows zero), asking for the next group's lines. */
F16_INLINE void f16_rows_unit(const uint8_t *w, size_t ws, int rows, int k, int cols, __m512i words, __m512i *unit,
                              const uint8_t *next) {
  for (int n = 0; n < F16_ROWS; n++) {
    if (next && (k & 31) == 0) _mm_prefetch((const char *)(next + (size_t)n * ws + (size_t)k * 2), _MM_HINT_T0);
    unit[n] = n < rows ? f16_pairs(f16_piece(w + (size_t)n * ws, k, cols), words) : _mm512_setzero_si512();
  }
}

/* The tile steps of one unit (tile U, a constant as tile instructions need) against the groups'
   token tiles of its step. */
#define F16_ROWS_STEP(U, groups, ts, nt)                                                \
  do {                                                                                  \
    _tile_loadd(3, (ts), 8 * f16_group_tokens((nt), 0));                                \
    _tile_dpbf16ps(0, U, 3);                                                            \
    if ((groups) > 1) {                                                                 \
      _tile_loadd(4, (ts) + F16_STEP * 2 * F16_GROUP, 8 * f16_group_tokens((nt), 1));     \
      _tile_dpbf16ps(1, U, 4);                                                          \
    }                                                                                   \
    if ((groups) > 2) {                                                                 \
      _tile_loadd(5, (ts) + F16_STEP * 2 * 2 * F16_GROUP, 8 * f16_group_tokens((nt), 2)); \
      _tile_dpbf16ps(2, U, 5);                                                          \
    }                                                                                   \
  } while (0)

/* acc[r] += tile T's sums (16 rows of 16 floats), through `tmp`. */
#define F16_FLUSH_TILE(T, acc, tmp)                                                                    \
  do {                                                                                                 \
    _tile_stored(T, (tmp), 64);                                                                        \
    for (int r_ = 0; r_ < F16_ROWS; r_++)                                                              \
      _mm512_store_ps((acc)[r_], _mm512_add_ps(_mm512_load_ps((acc)[r_]), _mm512_load_ps((tmp)[r_]))); \
  } while (0)

/* y = the xh sums + the xl sums of group g's tokens, for the live rows of a 16-row group. */
F16_INLINE void f16_rows_store(const float (*sums)[16], int rows, int g, int n, float *y, size_t ys) {
  for (int r = 0; r < rows; r++)
    for (int j = 0; j < n; j++) y[(size_t)(g * F16_GROUP + j) * ys + r] = sums[r][2 * j] + sums[r][2 * j + 1];
}

/* Up to 24 tokens over nr rows: each unit of weight pairs formed once for all of them. */
static void f16_rows(int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, int nt, float *y, size_t ys) {
  const int steps = f16_steps(cols), groups = (nt + F16_GROUP - 1) / F16_GROUP;
  const uint32_t *tok = f16_tokens(a, as, cols, nt);
  uint32_t own[F16_STEP * F16_GROUP * F16_GROUPS * 2] __attribute__((aligned(64)));
  const __m512i words = _mm512_loadu_si512(f16_pair_words);
  __m512i units[2][F16_ROWS];
  float tmp[F16_ROWS][16] __attribute__((aligned(64)));
  float acc[F16_GROUPS][F16_ROWS][16] __attribute__((aligned(64)));
  /* A partial group's tile leaves some of tmp's columns as they were: never garbage. */
  memset(tmp, 0, sizeof tmp);
  f16_rows_config(nt);
  for (int r0 = 0; r0 < nr; r0 += F16_ROWS) {
    const int rows = nr - r0 < F16_ROWS ? nr - r0 : F16_ROWS;
    const uint8_t *wr = w + (size_t)r0 * ws, *next = r0 + F16_ROWS < nr ? wr + (size_t)F16_ROWS * ws : NULL;
    memset(acc, 0, (size_t)groups * sizeof acc[0]);
    /* Each unit is written a step before the tiles load it (a tile load waits for the stores to its
       lines to finish). */
    f16_rows_unit(wr, ws, rows, 0, cols, words, units[0], next);
    for (int s = 0; s < steps; s++) {
      if (s % F16_FLUSH == 0) {
        _tile_zero(0);
        if (groups > 1) _tile_zero(1);
        if (groups > 2) _tile_zero(2);
      }
      if (s + 1 < steps) f16_rows_unit(wr, ws, rows, (s + 1) * F16_STEP, cols, words, units[(s + 1) & 1], next);
      const uint32_t *ts = own;
      if (tok) ts = tok + (size_t)s * F16_STEP * nt * 2;
      else f16_token_step(a, as, steps * F16_STEP, nt, s, own);
      if (s & 1) {
        _tile_loadd(7, units[1], 64);
        F16_ROWS_STEP(7, groups, ts, nt);
      } else {
        _tile_loadd(6, units[0], 64);
        F16_ROWS_STEP(6, groups, ts, nt);
      }
      if ((s + 1) % F16_FLUSH == 0 || s + 1 == steps) {
        F16_FLUSH_TILE(0, acc[0], tmp);
        if (groups > 1) F16_FLUSH_TILE(1, acc[1], tmp);
        if (groups > 2) F16_FLUSH_TILE(2, acc[2], tmp);
      }
    }
    for (int g = 0; g < groups; g++) f16_rows_store((const float (*)[16])acc[g], rows, g, f16_group_tokens(nt, g), y + r0, ys);
  }
  _tile_release();
}

/* ---- batches: the weights transposed once per call into B tiles ---- */

/* out[k] = dword k of every in[n] (in[n] = row n's 16 pairs), as lanes n. */
F16_INLINE void f16_transpose(const __m512i in[16], __m512i out[16]) {
  __m512i t[16], u[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(in[i], in[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(in[i], in[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    u[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    u[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    u[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    u[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  /* u[4g + j], 128-bit lane b: dword 4b + j of rows 4g..4g+3. */
  for (int j = 0; j < 4; j++) {
    const __m512i a = _mm512_shuffle_i32x4(u[j], u[4 + j], 0x88), b = _mm512_shuffle_i32x4(u[j], u[4 + j], 0xdd);
    const __m512i c = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0x88), d = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0xdd);
    out[j] = _mm512_shuffle_i32x4(a, c, 0x88);
    out[8 + j] = _mm512_shuffle_i32x4(a, c, 0xdd);
    out[4 + j] = _mm512_shuffle_i32x4(b, d, 0x88);
    out[12 + j] = _mm512_shuffle_i32x4(b, d, 0xdd);
  }
}

/* Steps s0..s1 of one panel of up to 16 rows (missing rows zero) into its units, one per step. */
static void f16_panel(const uint8_t *w, size_t ws, int rows, int cols, int s0, int s1, uint8_t *panel) {
  const __m512i words = _mm512_loadu_si512(f16_pair_words);
  for (int s = s0; s < s1; s++) {
    __m512i in[16], out[16];
    f16_rows_unit(w, ws, rows, s * F16_STEP, cols, words, in, NULL);
    f16_transpose(in, out);
    uint8_t *unit = panel + (size_t)(s - s0) * F16_UNIT_BYTES;
    for (int k = 0; k < 16; k++) _mm512_store_si512(unit + 64 * k, out[k]);
  }
}

/* Tiles 0-3: sums (xh and xl of two panels, M x 16); 4-5: the tokens' xh and xl (M x 16 pairs);
   6-7: two panels' units. */
static void f16_batch_config(int M) {
  amx_config c;
  memset(&c, 0, sizeof c);
  c.palette = 1;
  for (int i = 0; i < 8; i++) {
    c.rows[i] = (uint8_t)(i >= 6 ? 16 : M);
    c.colsb[i] = 64;
  }
  amx_load_config(&c);
}

/*
 * The tile steps s0..s1 of one token tile against one or two panels (units from p0, p1 for step
 * s0 on), flushed into the f32 sums acc (xh and xl of each panel, 16 tokens x 16 rows) every
 * F16_FLUSH steps as the row path flushes its tiles.
 */
F16_INLINE void f16_batch_sums(const int two, int s0, int s1, int steps, const uint8_t *p0, const uint8_t *p1,
                               const uint8_t *a, size_t as, size_t lo, float (*acc)[F16_M][16], float (*tmp)[16]) {
  for (int s = s0; s < s1; s++) {
    if (s % F16_FLUSH == 0) {
      _tile_zero(0);
      _tile_zero(1);
      if (two) {
        _tile_zero(2);
        _tile_zero(3);
      }
    }
    const size_t u = (size_t)(s - s0) * F16_UNIT_BYTES;
    _tile_loadd(4, a + (size_t)s * 64, (long)as);
    _tile_loadd(5, a + lo + (size_t)s * 64, (long)as);
    _tile_loadd(6, p0 + u, 64);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 5, 6);
    if (two) {
      _tile_loadd(7, p1 + u, 64);
      _tile_dpbf16ps(2, 4, 7);
      _tile_dpbf16ps(3, 5, 7);
    }
    if ((s + 1) % F16_FLUSH == 0 || s + 1 == steps) {
      F16_FLUSH_TILE(0, acc[0], tmp);
      F16_FLUSH_TILE(1, acc[1], tmp);
      if (two) {
        F16_FLUSH_TILE(2, acc[2], tmp);
        F16_FLUSH_TILE(3, acc[3], tmp);
      }
    }
  }
}

/* y = the xh sums + the xl sums, for M tokens and the live rows of a panel. */
F16_INLINE void f16_batch_store(int M, int rows, const float (*h)[16], const float (*l)[16], float *y, size_t ys) {
  const __mmask16 live = (__mmask16)((1u << rows) - 1);
  for (int t = 0; t < M; t++) _mm512_mask_storeu_ps(y + (size_t)t * ys, live, _mm512_add_ps(_mm512_load_ps(h[t]), _mm512_load_ps(l[t])));
}

/* Units of a column block of all the chunk's panels (kept in L2 while every token tile passes). */
#define F16_BLOCK_UNITS 1024

/*
 * A chunk of rows against all the tokens, in blocks of columns: each block's units formed once and
 * used by every token tile, the f32 sums carried from block to block in the part of the panel
 * buffer the block leaves free (in token blocks that fit there). Blocks end where flushes do, so
 * every sum takes the same tile steps and flushes in the same order as in the row path.
 */
static void f16_batch(int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, int nt, float *y, size_t ys,
                      uint8_t *panels) {
  const int steps = f16_steps(cols), np = (nr + F16_ROWS - 1) / F16_ROWS;
  const size_t lo = f16_lo_dwords(cols) * 4, part_bytes = F16_PART_BYTES, pairs = ((size_t)np + 1) / 2;
  const size_t room = f16_buffer_bytes(np, steps), full = (size_t)np * (size_t)steps * F16_UNIT_BYTES;
  /* All the units in one block where they fit in F16_BLOCK_UNITS KiB and the buffer; else blocks of
     whole flushes, leaving room for at least one token tile's sums. */
  int block = steps;
  if (full > (size_t)F16_BLOCK_UNITS * F16_UNIT_BYTES || full > room) {
    size_t b = (size_t)F16_BLOCK_UNITS / (size_t)np, fit = (room - pairs * part_bytes) / ((size_t)np * F16_UNIT_BYTES);
    if (b > fit) b = fit;
    b = b / F16_FLUSH * F16_FLUSH;
    block = b < F16_FLUSH ? F16_FLUSH : b >= (size_t)steps ? steps : (int)b;
  }
  /* Sums: 4 KiB per token tile and panel pair, in the room the block leaves. */
  size_t tiles = block == steps ? (size_t)(nt + F16_M - 1) / F16_M : (room - (size_t)np * block * F16_UNIT_BYTES) / (pairs * part_bytes);
  if (tiles < 1) tiles = 1;
  int tb = tiles * F16_M < (size_t)nt ? (int)(tiles * F16_M) : nt;
  uint8_t *part = panels + (size_t)np * block * F16_UNIT_BYTES;
  float acc[4][F16_M][16] __attribute__((aligned(64)));
  float tmp[F16_M][16] __attribute__((aligned(64)));
  memset(tmp, 0, sizeof tmp);
  for (int b0 = 0; b0 < nt; b0 += tb) {
    const int bn = nt - b0 < tb ? nt - b0 : tb;
    for (int s0 = 0; s0 < steps; s0 += block) {
      const int s1 = s0 + block < steps ? s0 + block : steps, first = s0 == 0, last = s1 == steps;
      for (int p = 0; p < np; p++) {
        const int rows = nr - p * F16_ROWS < F16_ROWS ? nr - p * F16_ROWS : F16_ROWS;
        f16_panel(w + (size_t)p * F16_ROWS * ws, ws, rows, cols, s0, s1, panels + (size_t)p * block * F16_UNIT_BYTES);
      }
      int shape = 0;
      for (int t0 = 0; t0 < bn; t0 += F16_M) {
        const int M = bn - t0 < F16_M ? bn - t0 : F16_M;
        if (M != shape) f16_batch_config(M);
        shape = M;
        const uint8_t *at = a + (size_t)(b0 + t0) * as;
        float *yt = y + (size_t)(b0 + t0) * ys;
        for (int p = 0; p < np; p += 2) {
          const uint8_t *p0 = panels + (size_t)p * block * F16_UNIT_BYTES;
          uint8_t *pp = part + ((size_t)(t0 / F16_M) * pairs + p / 2) * part_bytes;
          const int two = p + 1 < np;
          if (first) memset(acc, 0, part_bytes);
          else memcpy(acc, pp, part_bytes);
          if (two) f16_batch_sums(1, s0, s1, steps, p0, p0 + (size_t)block * F16_UNIT_BYTES, at, as, lo, acc, tmp);
          else f16_batch_sums(0, s0, s1, steps, p0, NULL, at, as, lo, acc, tmp);
          if (!last) {
            memcpy(pp, acc, part_bytes);
            continue;
          }
          const int rows0 = nr - p * F16_ROWS < F16_ROWS ? nr - p * F16_ROWS : F16_ROWS;
          f16_batch_store(M, rows0, (const float (*)[16])acc[0], (const float (*)[16])acc[1], yt + (size_t)p * F16_ROWS, ys);
          if (two) {
            const int rows1 = nr - (p + 1) * F16_ROWS < F16_ROWS ? nr - (p + 1) * F16_ROWS : F16_ROWS;
            f16_batch_store(M, rows1, (const float (*)[16])acc[2], (const float (*)[16])acc[3], yt + (size_t)(p + 1) * F16_ROWS, ys);
          }
        }
      }
    }
  }
  _tile_release();
}

/* Tokens from which the batch path's transposes pay for themselves: the row path serves up to 24
   tokens per unit of weight pairs, 1.6-2x the batch path's speed there (bench/RESULTS.md). */
#define F16_BATCH_MIN (F16_ROW_TOKENS + 1)

/* The panel-table product: the row path for a few tokens, else the batch path. */
void quant_amx_gemm_f16(int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, const int32_t *aux,
                        size_t aux_stride, int nt, float *y, size_t ys, uint8_t *panels) {
  (void)aux, (void)aux_stride;
  if (nt >= F16_BATCH_MIN && panels) {
    f16_batch(cols, w, ws, nr, a, as, nt, y, ys, panels);
    return;
  }
  for (int t0 = 0; t0 < nt; t0 += F16_ROW_TOKENS) {
    const int n = nt - t0 < F16_ROW_TOKENS ? nt - t0 : F16_ROW_TOKENS;
    f16_rows(cols, w, ws, nr, a + (size_t)t0 * as, as, n, y + (size_t)t0 * ys, ys);
  }
}
#endif
