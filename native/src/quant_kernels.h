/*
 * The per-instruction-set kernels of the quantized matmul. Each ISA group fills one table; matmul.c
 * picks the active level's table, converts the activations once, and splits the dot products over
 * the thread pool. The kernels only hold inner loops.
 */
#ifndef CAIRN_QUANT_KERNELS_H
#define CAIRN_QUANT_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "quant_formats.h"

/* Converts one f32 activation row of `cols` into the converted layout (quant_formats.h). */
typedef void (*quant_convert_fn)(const float *x, uint8_t *dst, int cols);

/*
 * y[t * y_stride + r] = dot(weight row r, activation row t) for r < nr, t < nt. Weight row r
 * starts at w + r * w_stride; converted activation row t at a + t * a_stride. Each kernel tiles
 * rows x tokens so a weight block is loaded once for several tokens.
 */
typedef void (*quant_gemm_fn)(int cols, const uint8_t *w, size_t w_stride, int nr, const uint8_t *a, size_t a_stride,
                              int nt, float *y, size_t y_stride);

/*
 * Bumped by the driver each time it writes new converted activations. A kernel that derives
 * per-call data from the activations (the one-row decode kernels) keeps it per thread and redoes
 * it only when this, the activation pointer or the row length changed: the driver calls a kernel
 * many times per product, once per piece of rows.
 */
extern unsigned quant_activation_generation;

/* Highest GGML type id the tables index. */
#define QUANT_MAX_TYPE 40

typedef struct {
  /* Indexed by the vec-dot type; NULL for F32 (the row is used as is). */
  quant_convert_fn convert[QUANT_MAX_TYPE];
  /* Indexed by the weight type; NULL when the type has no dot product. */
  quant_gemm_fn gemm[QUANT_MAX_TYPE];
  /* Tokens of a gemm's full tile, by weight type, where the table names them (0: blocks of a
     multiple of 4 tokens): the drivers' token blocks are made whole tiles, as a narrower tile at
     the end of each block reads its rows' weights again for a few tokens. */
  int tile_tokens[QUANT_MAX_TYPE];
} quant_kernel_table;

/* A token block of about `tokens` for a gemm whose full tiles are `tile` tokens wide
   (quant_kernel_table.tile_tokens): a multiple of 4 where that is 0, else of the tile (one at least). */
static inline int quant_whole_tiles(int tokens, int tile) {
  if (tile <= 0) return tokens & ~3;
  return tokens < tile ? tile : tokens / tile * tile;
}

/* A driver's token block: about `tokens` (its byte budget over the activations' stride), whole
   tiles, and two full tiles at least, so that a block of long rows (an F16 row of 8192 takes 32
   KiB of activations a token) still re-reads its rows from L2 rather than streaming them once:
   the float kernels prefetch the next rows only for a call of one tile of tokens (see
   QX_GEMM_FLOAT). Quant formats without a tile keep blocks of 4 tokens at least. */
static inline int quant_token_block(int64_t tokens, int tile) {
  const int least = tile > 0 ? 2 * tile : 4;
  return quant_whole_tiles(tokens < least ? least : tokens > (1 << 20) ? 1 << 20 : (int)tokens, tile);
}

extern const quant_kernel_table quant_kernels_scalar;

/* The table of the active ISA level (empty slots: use quant_kernels_scalar's). */
const quant_kernel_table *quant_active_kernels(void);

/*
 * The lock of the product drivers (matmul.c, experts.c): held while a product uses its scratch
 * and bumps quant_activation_generation, so calls from several JS threads take turns.
 */
void quant_lock(void);
void quant_unlock(void);
#if defined(__x86_64__)
extern const quant_kernel_table quant_kernels_avx2;
extern const quant_kernel_table quant_kernels_avx512;
#elif defined(__aarch64__)
extern const quant_kernel_table quant_kernels_neon;
#endif

/*
 * Prefill path for batches (native/x86_avx512/quant_panel_avx512.c): weight rows unpacked into
 * panels of 16 rows whose vector lanes are the rows, shared by every token of the call.
 *
 * prep: per converted activation row, up to cols / 16 int32 of per-block values (the start of a
 * block's integer dot, which takes back the offset of unsigned weight quants, or the partner of
 * the K-quant mins).
 * gemm: like quant_gemm_fn over nr rows and nt tokens, with token t's prep values at
 * aux + t * aux_stride and `panels` a private buffer of quant_panel_bytes(table, type, cols, nr).
 */
typedef void (*quant_panel_prep_fn)(const uint8_t *a, int cols, int32_t *aux);
typedef void (*quant_panel_gemm_fn)(int cols, const uint8_t *w, size_t w_stride, int nr, const uint8_t *a,
                                    size_t a_stride, const int32_t *aux, size_t aux_stride, int nt, float *y,
                                    size_t y_stride, uint8_t *panels);

typedef struct {
  quant_panel_prep_fn prep[QUANT_MAX_TYPE];  /* indexed by weight type; NULL: its kernels take no prep values */
  quant_panel_gemm_fn gemm[QUANT_MAX_TYPE];  /* indexed by weight type; NULL: no panel path */
  /* Tokens from which the panel path beats the row tiles (unpacking is paid once per call). */
  int min_tokens[QUANT_MAX_TYPE];
  /* Panel bytes per 32 elements of 16 rows where a type's layout needs more than
     QUANT_PANEL_BLOCK_BYTES (0: that). */
  int block_bytes[QUANT_MAX_TYPE];
  /* Where a type's panel products take activations in a layout of their own: its converter and
     the bytes of a converted row (NULL: the kernel table's converter, quant_act_layout_for's
     bytes). The drivers then take such a type's panel path for every token count and expert
     (quant_panels_own_layout), whatever min_tokens says: its rows exist only in that layout. */
  quant_convert_fn convert[QUANT_MAX_TYPE];
  size_t (*row_bytes[QUANT_MAX_TYPE])(int cols);
  /* Bytes of the panels of `rows` rows where a type's are not laid out in 32-element blocks
     (NULL: block_bytes'). */
  size_t (*panel_bytes[QUANT_MAX_TYPE])(int cols, int rows);
  /* Weight rows per work item where a type's kernels block the columns themselves, so that a
     chunk's panels need not fit L2 and more rows share each pass over the activations (0: as many
     as PANEL_CHUNK_BYTES of panels hold, matmul.c). */
  int chunk_rows[QUANT_MAX_TYPE];
  /* Weights packed at load into the table's own layout (NULL: a type it does not pack): pack
     writes rows [0, nr) of w as ceil(nr / 16) groups of 16 rows, group g at dst + 16 g ws (the
     same bytes as the rows, the last group padded); packed and packed_gemm are gemm and the
     direct products over such groups (w at a group's start), with the same results bit for bit. */
  void (*pack[QUANT_MAX_TYPE])(const uint8_t *w, size_t ws, int nr, uint8_t *dst);
  /* Blocks [b0, b0 + nb) of row `row` of such packed weights back in the file's layout at dst:
     table lookups (an embedding's rows) read the packed copy too. */
  void (*packed_row[QUANT_MAX_TYPE])(const uint8_t *packed, size_t ws, int row, int b0, int nb, uint8_t *dst);
  quant_gemm_fn packed[QUANT_MAX_TYPE];
  quant_panel_gemm_fn packed_gemm[QUANT_MAX_TYPE];
} quant_panel_table;

/* Panel rows, and bytes per 32 elements of a panel of 16 rows in the common layout. */
#define QUANT_PANEL_ROWS 16
#define QUANT_PANEL_BLOCK_BYTES (8 * 64 + 2 * 64)
/* Bytes of the panels of `rows` rows of `cols` of a type, in the layout of `table`. */
static inline size_t quant_panel_bytes(const quant_panel_table *table, int type, int cols, int rows) {
  if (table->panel_bytes[type]) return table->panel_bytes[type](cols, rows);
  const size_t block = table->block_bytes[type] ? (size_t)table->block_bytes[type] : QUANT_PANEL_BLOCK_BYTES;
  return (size_t)((rows + QUANT_PANEL_ROWS - 1) / QUANT_PANEL_ROWS) * (size_t)(cols / QK) * block;
}
/* Whether `table` (may be NULL) takes a type's activations in a layout of its own (see convert). */
static inline int quant_panels_own_layout(const quant_panel_table *table, int type) {
  return table && table->convert[type] && table->row_bytes[type];
}
/* Tokens from which `table`'s panel path takes a type's products: 1 for a type with its own
   activation layout (whatever min_tokens says), 0 where the table has no path for the type. */
static inline int quant_panels_from(const quant_panel_table *table, int type) {
  if (!table || !table->gemm[type]) return 0;
  return quant_panels_own_layout(table, type) || table->min_tokens[type] < 1 ? 1 : table->min_tokens[type];
}
/* int32 prep values per activation row. */
static inline size_t quant_panel_aux_count(int cols) { return (size_t)(cols / 16); }

#if defined(__x86_64__)
extern const quant_panel_table quant_panels_avx512;
/* The same products on AMX tiles (native/x86_avx512/quant_amx_avx512.c), same results bit for bit. */
extern const quant_panel_table quant_panels_amx;
#endif
/* The panel kernels of the active ISA, or NULL where it has none. */
const quant_panel_table *quant_active_panels(void);
/* The active ISA's panel table where it packs wtype's weights (pack, packed, packed_gemm and
   packed_row all there), else NULL. */
const quant_panel_table *quant_active_packing(int wtype);

/*
 * The converter of wtype's activations on the active level (NULL: F32 rows are used as they
 * are) and the bytes of a converted row in *row_bytes: the panel path's own layout where it has
 * one, else the kernel table's (quant_act_layout_for).
 */
quant_convert_fn quant_active_convert(int wtype, int cols, size_t *row_bytes);

/*
 * Bytes of an activation row in the AMX level's F16 layout (f16_amx_avx512.c): the xh parts of every
 * 16-column step, a line, the xl parts, a line. Defined on every platform: expert batches size
 * their float rows for it, whichever level runs.
 */
static inline size_t quant_amx_f16_row_bytes(int cols) { return (((size_t)cols + 15) / 16 * 16 * 2 + 32) * 4; }

#if defined(__x86_64__)
/* F16 weights on AMX-BF16 tiles (native/x86_avx512/f16_amx_avx512.c): the AMX level's products
   of every token count, with the activations in a layout of their own. */
void quant_amx_convert_f16(const float *x, uint8_t *dst, int cols);
size_t quant_amx_f16_panel_bytes(int cols, int rows);
void quant_amx_gemm_f16(int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, const int32_t *aux,
                        size_t aux_stride, int nt, float *y, size_t ys, uint8_t *panels);
#endif

/* Scalar converters, shared by the ISA tables that have no faster one. */
void quant_convert_f16_scalar(const float *x, uint8_t *dst, int cols);
void quant_convert_bf16_scalar(const float *x, uint8_t *dst, int cols);
void quant_convert_q8_0_scalar(const float *x, uint8_t *dst, int cols);
void quant_convert_q8_1_scalar(const float *x, uint8_t *dst, int cols);
void quant_convert_q8_K_scalar(const float *x, uint8_t *dst, int cols);

#endif
