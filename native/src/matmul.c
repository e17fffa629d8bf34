/*
 * Driver of the quantized matmul, dequantize and quantize: validates the shapes, picks the active
 * ISA's kernels, converts the activation rows once per call into grow-only scratch, and splits
 * the dot products over the thread pool: in chunks of weight rows for batches (within a chunk the
 * kernels walk blocks of tokens, so each weight row is read from memory once per call even for
 * long prompts), in one contiguous range of rows per thread for a few tokens (decode).
 */
#include "matmul.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "pool.h"
#include "quant_codecs.h"
#include "quant_kernels.h"

/* Multiply-adds below which one thread does the whole product (waking workers costs ~1-2 us). */
#define MIN_PARALLEL_MACS 65536
/* Element conversions below which the caller converts the activations alone. */
#define MIN_PARALLEL_CONVERT 32768
/* Elements below which dequantize/quantize run on one thread. */
#define MIN_PARALLEL_CODEC (1 << 18)
/* Bytes of weights per chunk (kept in L2 while the chunk's token blocks stream by). */
#define CHUNK_WEIGHT_BYTES (192 * 1024)
/* Bytes of converted activations per token block. */
#define TOKEN_BLOCK_BYTES (256 * 1024)
/* Bytes of unpacked panels per chunk of weight rows (kept in L2 while every token tile passes). */
#define PANEL_CHUNK_BYTES (384 * 1024)

const quant_kernel_table *quant_active_kernels(void) {
  switch (cairn_isa_active()) {
#if defined(__x86_64__)
    case CAIRN_ISA_AMX: /* the AMX level differs in its batch products only (quant_active_panels) */
    case CAIRN_ISA_AVX512: return &quant_kernels_avx512;
    case CAIRN_ISA_AVX2: return &quant_kernels_avx2;
#elif defined(__aarch64__)
    case CAIRN_ISA_NEON: return &quant_kernels_neon;
#endif
    default: return &quant_kernels_scalar;
  }
}

/* The panel kernels of the active ISA, or NULL where it has none. */
const quant_panel_table *quant_active_panels(void) {
#if defined(__x86_64__)
  const cairn_isa isa = cairn_isa_active();
  if (isa == CAIRN_ISA_AMX) return &quant_panels_amx;
  if (isa == CAIRN_ISA_AVX512) return &quant_panels_avx512;
#endif
  return NULL;
}

quant_convert_fn quant_active_convert(int wtype, int cols, size_t *row_bytes) {
  const quant_panel_table *panels = quant_active_panels();
  if (quant_panels_own_layout(panels, wtype)) {
    *row_bytes = panels->row_bytes[wtype](cols);
    return panels->convert[wtype];
  }
  const quant_act_layout layout = quant_act_layout_for(wtype, cols);
  const quant_kernel_table *k = quant_active_kernels();
  *row_bytes = layout.row_bytes;
  /* An ISA table may leave a slot empty; the portable kernel fills it (same activation layout). */
  return k->convert[layout.type] ? k->convert[layout.type] : quant_kernels_scalar.convert[layout.type];
}

/* One matmul at a time owns the scratch (calls may come from several JS threads). */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

void quant_lock(void) { pthread_mutex_lock(&g_lock); }
void quant_unlock(void) { pthread_mutex_unlock(&g_lock); }
static uint8_t *g_scratch;
static size_t g_scratch_cap;

unsigned quant_activation_generation;

static uint8_t *g_panels;
static size_t g_panels_cap;

/* A grow-only, 64-byte aligned buffer (contents not kept when it grows). */
static uint8_t *grow(uint8_t **buf, size_t *cap, size_t bytes) {
  if (bytes <= *cap) return *buf;
  const size_t want = (bytes + bytes / 4 + 4095) & ~(size_t)4095;
  void *p = NULL;
  if (posix_memalign(&p, 64, want) != 0) return NULL;
  free(*buf);
  *buf = (uint8_t *)p;
  *cap = want;
  return *buf;
}

static uint8_t *scratch(size_t bytes) { return grow(&g_scratch, &g_scratch_cap, bytes); }

typedef struct {
  quant_convert_fn convert;
  const float *x;
  int cols, n;
  uint8_t *dst;
  size_t row_bytes;
} convert_ctx;

static void convert_job(void *p, int ith, int nth) {
  const convert_ctx *c = (const convert_ctx *)p;
  for (int t = ith; t < c->n; t += nth) c->convert(c->x + (size_t)t * c->cols, c->dst + (size_t)t * c->row_bytes, c->cols);
}

typedef struct {
  quant_gemm_fn gemm;
  /* Weights packed at load (cairn_pack), where the call has them: the gemm over them, and them.
     A decode piece that starts off a 16-row group takes gemm and w instead (the same results). */
  quant_gemm_fn packed_gemm;
  const uint8_t *packed;
  /* Panel path (gemm unused): prep values per token and one panel buffer per share. */
  quant_panel_gemm_fn panel_gemm;
  const int32_t *aux;
  size_t aux_stride, panel_bytes;
  uint8_t *panels;
  int cols, rows, n;
  const uint8_t *w;
  size_t w_stride;
  const uint8_t *a;
  size_t a_stride;
  float *y;
  int chunk_rows, token_block;
  /* Work items: a chunk of weight rows times one group of token blocks (all of them when there
   * are enough row chunks to keep every thread busy). */
  int token_groups, items;
  atomic_int next_item;
} dot_ctx;

static void dot_job(void *p, int ith, int nth) {
  (void)nth;
  dot_ctx *c = (dot_ctx *)p;
  for (;;) {
    const int item = atomic_fetch_add_explicit(&c->next_item, 1, memory_order_relaxed);
    if (item >= c->items) return;
    const int64_t r0 = (int64_t)(item / c->token_groups) * c->chunk_rows;
    const int nr = (int)(c->rows - r0 < c->chunk_rows ? c->rows - r0 : c->chunk_rows);
    int t_begin = 0, t_end = c->n;
    if (c->token_groups > 1) {
      t_begin = (item % c->token_groups) * c->token_block;
      t_end = t_begin + c->token_block < c->n ? t_begin + c->token_block : c->n;
    }
    if (c->panel_gemm) {
      /* Shares run one at a time per index, so share `ith` owns panel buffer `ith`. */
      c->panel_gemm(c->cols, c->w + (size_t)r0 * c->w_stride, c->w_stride, nr, c->a + (size_t)t_begin * c->a_stride,
                    c->a_stride, c->aux + (size_t)t_begin * c->aux_stride, c->aux_stride, t_end - t_begin,
                    c->y + (size_t)t_begin * c->rows + (size_t)r0, (size_t)c->rows,
                    c->panels + (size_t)ith * c->panel_bytes);
      continue;
    }
    for (int t0 = t_begin; t0 < t_end; t0 += c->token_block) {
      const int nt = t_end - t0 < c->token_block ? t_end - t0 : c->token_block;
      c->gemm(c->cols, c->w + (size_t)r0 * c->w_stride, c->w_stride, nr, c->a + (size_t)t0 * c->a_stride, c->a_stride,
              nt, c->y + (size_t)t0 * c->rows + (size_t)r0, (size_t)c->rows);
    }
  }
}

typedef struct {
  quant_panel_prep_fn prep;
  const uint8_t *a;
  size_t a_stride;
  int cols, n;
  int32_t *aux;
  size_t aux_stride;
} prep_ctx;

static void prep_job(void *p, int ith, int nth) {
  const prep_ctx *c = (const prep_ctx *)p;
  for (int t = ith; t < c->n; t += nth) c->prep(c->a + (size_t)t * c->a_stride, c->cols, c->aux + (size_t)t * c->aux_stride);
}

static int clampi(int64_t v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : (int)v; }

/*
 * A few tokens (decode steps of up to VEC_MAX_TOKENS sequences): each thread owns a contiguous
 * range of rows and reads it front to back, one stream for the hardware prefetchers and no jumps
 * over other threads' chunks; a thread done with its range takes pieces from the back of the
 * others', so a thread slowed by a neighbour does not hold the product up. A range is one word:
 * next row to take from the front (high half), end of what is left (low half). A take is a share
 * of what is left (a quarter, whole 16-row units, down to `piece`): each take is a locked
 * compare-and-swap, which waits for the thread's memory requests in flight, and sixteen takes of
 * a sixteenth each held a 512 x 2048 Q4_K product of one token at 40-42 GB/s where two took it
 * to 47 (a C harness on a Zen 5 host, alternating).
 */
/* What is left of a range over this is the size of a take, down to the call's least piece. */
#define VEC_TAKE_SHARE 4
#define VEC_MAX_THREADS 256
#define VEC_MAX_TOKENS 4
typedef struct {
  const dot_ctx *dc; /* the product: kernel, weights, activations, output */
  int piece;
  _Atomic uint64_t range[VEC_MAX_THREADS];
} vec_ctx;

/* Takes a share of a range, at least `want` rows (or what is left), from the front (or the back); false when it is empty. */
static int vec_take(_Atomic uint64_t *range, int want, int from_back, int *start, int *count) {
  uint64_t v = atomic_load_explicit(range, memory_order_relaxed);
  for (;;) {
    const uint32_t f = (uint32_t)(v >> 32), b = (uint32_t)v;
    if (f >= b) return 0;
    const uint32_t share = (b - f) / VEC_TAKE_SHARE & ~15u, size = share > (uint32_t)want ? share : (uint32_t)want;
    const uint32_t c = b - f < size ? b - f : size;
    const uint64_t next = from_back ? ((uint64_t)f << 32) | (b - c) : ((uint64_t)(f + c) << 32) | b;
    if (atomic_compare_exchange_weak_explicit(range, &v, next, memory_order_relaxed, memory_order_relaxed)) {
      *start = (int)(from_back ? b - c : f);
      *count = (int)c;
      return 1;
    }
  }
}

static void vec_job(void *p, int ith, int nth) {
  vec_ctx *c = (vec_ctx *)p;
  const dot_ctx *d = c->dc;
  int start, count;
  for (int k = 0; k < nth; k++) {
    const int r = (ith + k) % nth;
    while (vec_take(&c->range[r], c->piece, k > 0, &start, &count)) {
      const uint8_t *w = d->w + (size_t)start * d->w_stride;
      /* A panel path that serves a few tokens too (its own activation layout) takes them here. */
      if (d->packed_gemm && start % QUANT_PANEL_ROWS == 0)
        d->packed_gemm(d->cols, d->packed + (size_t)start * d->w_stride, d->w_stride, count, d->a, d->a_stride, d->n, d->y + start, (size_t)d->rows);
      else if (d->panel_gemm)
        d->panel_gemm(d->cols, w, d->w_stride, count, d->a, d->a_stride, d->aux, d->aux_stride, d->n, d->y + start, (size_t)d->rows, NULL);
      else d->gemm(d->cols, w, d->w_stride, count, d->a, d->a_stride, d->n, d->y + start, (size_t)d->rows);
    }
  }
}

const quant_panel_table *quant_active_packing(int wtype) {
  const quant_panel_table *panels = quant_active_panels();
  return wtype >= 0 && wtype < QUANT_MAX_TYPE && panels && panels->pack[wtype] && panels->packed[wtype] && panels->packed_gemm[wtype] &&
                 panels->packed_row[wtype]
             ? panels : NULL;
}

size_t cairn_packed_bytes(int wtype, int rows, int cols) {
  /* Fewer rows than a group: packing would pad them to 16. */
  if (!quant_active_packing(wtype) || rows < QUANT_PANEL_ROWS || cols <= 0 || cols % quant_block_size(wtype) != 0) return 0;
  return (size_t)((rows + QUANT_PANEL_ROWS - 1) / QUANT_PANEL_ROWS) * QUANT_PANEL_ROWS * quant_row_bytes(wtype, cols);
}

typedef struct {
  void (*pack)(const uint8_t *w, size_t ws, int nr, uint8_t *dst);
  const uint8_t *w;
  uint8_t *dst;
  size_t ws;
  int rows, groups;
} pack_ctx;

static void pack_job(void *p, int ith, int nth) {
  const pack_ctx *c = (const pack_ctx *)p;
  const int g0 = (int)((int64_t)c->groups * ith / nth), g1 = (int)((int64_t)c->groups * (ith + 1) / nth);
  if (g1 <= g0) return;
  const int r0 = g0 * QUANT_PANEL_ROWS, r1 = g1 * QUANT_PANEL_ROWS < c->rows ? g1 * QUANT_PANEL_ROWS : c->rows;
  c->pack(c->w + (size_t)r0 * c->ws, c->ws, r1 - r0, c->dst + (size_t)r0 * c->ws);
}

int cairn_pack(int wtype, const void *w, int rows, int cols, void *dst) {
  const quant_panel_table *panels = quant_active_packing(wtype);
  if (!cairn_packed_bytes(wtype, rows, cols)) return -1;
  pack_ctx c = {panels->pack[wtype], (const uint8_t *)w, (uint8_t *)dst, quant_row_bytes(wtype, cols), rows,
                (rows + QUANT_PANEL_ROWS - 1) / QUANT_PANEL_ROWS};
  cairn_pool_run(pack_job, &c);
  return 0;
}

int cairn_matmul(int wtype, const void *w, int rows, int cols, const float *x, int n, float *y) {
  return cairn_matmul_packed(wtype, w, NULL, rows, cols, x, n, y);
}

int cairn_matmul_packed(int wtype, const void *w, const void *packed, int rows, int cols, const float *x, int n, float *y) {
  if (wtype < 0 || wtype >= QUANT_MAX_TYPE || quant_vec_dot_type(wtype) < 0) return -1;
  const int bs = quant_block_size(wtype);
  if (rows < 0 || n < 0 || cols <= 0 || cols % bs != 0) return -1;
  if (rows == 0 || n == 0) return 0;
  const quant_kernel_table *k = quant_active_kernels();
  int rc = 0;
  pthread_mutex_lock(&g_lock);
  const int threads = cairn_pool_threads();
  const uint8_t *act = (const uint8_t *)x;
  size_t a_stride = (size_t)cols * 4, row_bytes = 0;
  const quant_convert_fn convert = quant_active_convert(wtype, cols, &row_bytes);
  const quant_panel_table *panels = quant_active_panels();
  const int own_layout = quant_panels_own_layout(panels, wtype), panels_from = quant_panels_from(panels, wtype);
  const int use_panels = panels_from && n >= panels_from && convert;
  /* The panel path's prep values go after the converted rows in the same scratch. */
  const size_t act_bytes = (row_bytes * (size_t)n + 63) & ~(size_t)63;
  const size_t aux_stride = quant_panel_aux_count(cols);
  if (convert) {
    uint8_t *buf = scratch(act_bytes + (use_panels ? aux_stride * 4 * (size_t)n : 0));
    if (!buf) {
      rc = -1;
      goto out;
    }
    convert_ctx cc = {convert, x, cols, n, buf, row_bytes};
    if ((int64_t)n * cols >= MIN_PARALLEL_CONVERT && n > 1) cairn_pool_run_n(convert_job, &cc, n);
    else convert_job(&cc, 0, 1);
    act = buf;
    quant_activation_generation++;
    a_stride = row_bytes;
  }
  const size_t w_stride = quant_row_bytes(wtype, cols);
  dot_ctx dc = {.gemm = k->gemm[wtype] ? k->gemm[wtype] : quant_kernels_scalar.gemm[wtype],
                .cols = cols, .rows = rows, .n = n, .w = (const uint8_t *)w, .w_stride = w_stride,
                .a = act, .a_stride = a_stride, .y = y};
  /* Prep values of the panel path, for every token of the call. */
  prep_ctx pc = {use_panels ? panels->prep[wtype] : NULL, act, a_stride, cols, n, (int32_t *)(g_scratch + act_bytes), aux_stride};
  if (pc.prep) cairn_pool_run_n(prep_job, &pc, n);
  if (use_panels) {
    dc.panel_gemm = panels->gemm[wtype];
    dc.aux = pc.aux;
    dc.aux_stride = aux_stride;
  }
  /* Packed weights (made on this level: quant_active_packing() is the table that packed them, or none). */
  const quant_panel_table *pk = packed ? quant_active_packing(wtype) : NULL;
  if (pk) {
    dc.packed = (const uint8_t *)packed;
    dc.packed_gemm = pk->packed[wtype];
  }
  /* A few tokens read contiguous ranges; panel paths take them only where they serve a few tokens
     without a panel buffer (those with their own activation layout). */
  const int vec_ok = !use_panels || own_layout;
  if (vec_ok && n <= VEC_MAX_TOKENS && threads > 1 && (double)rows * cols >= MIN_PARALLEL_MACS && rows >= 16 * threads) {
    static vec_ctx vc; /* ranges for up to 256 threads: kept off the stack (calls are serialized) */
    vc.dc = &dc;
    const int nth = threads < VEC_MAX_THREADS ? threads : VEC_MAX_THREADS;
    /* Ranges in whole 16-row units; pieces of about a sixteenth of a range. */
    const int units = (rows + 15) / 16;
    for (int t = 0; t < nth; t++) {
      const int64_t lo = (int64_t)units * t / nth * 16, hi = t == nth - 1 ? rows : (int64_t)units * (t + 1) / nth * 16;
      atomic_store_explicit(&vc.range[t], ((uint64_t)lo << 32) | (uint64_t)hi, memory_order_relaxed);
    }
    vc.piece = clampi(rows / ((int64_t)nth * 16), 16, 1 << 20) & ~15;
    cairn_pool_run_n(vec_job, &vc, nth);
    goto out;
  }
  if (use_panels) {
    const size_t row_panel_bytes = quant_panel_bytes(panels, wtype, cols, QUANT_PANEL_ROWS) / QUANT_PANEL_ROWS;
    dc.chunk_rows = panels->chunk_rows[wtype] ? panels->chunk_rows[wtype]
                                              : clampi((int64_t)(PANEL_CHUNK_BYTES / row_panel_bytes), QUANT_PANEL_ROWS, 1 << 20);
    /* At least two chunks per thread when the matrix allows, whole panels always. */
    const int balanced = clampi(rows / ((int64_t)threads * 2), QUANT_PANEL_ROWS, 1 << 20);
    if (balanced < dc.chunk_rows) dc.chunk_rows = balanced;
    dc.chunk_rows &= ~(QUANT_PANEL_ROWS - 1);
    dc.panel_bytes = quant_panel_bytes(panels, wtype, cols, dc.chunk_rows);
    dc.panels = grow(&g_panels, &g_panels_cap, dc.panel_bytes * (size_t)threads);
    if (!dc.panels) {
      rc = -1;
      goto out;
    }
    dc.token_block = n;
    if (pk) {
      dc.panel_gemm = pk->packed_gemm[wtype];
      dc.w = dc.packed;
    }
  } else {
    /* Several chunks per thread so a thread slowed by a neighbour does not hold everyone up. */
    const int64_t cap_rows = (int64_t)(CHUNK_WEIGHT_BYTES / w_stride);
    dc.chunk_rows = clampi(rows / ((int64_t)threads * 8), 16, (int)(cap_rows > 16 ? cap_rows : 16));
    dc.chunk_rows = (dc.chunk_rows + 7) & ~7; /* whole tiles of 8 rows */
    if (pk) {
      /* Whole 16-row groups of the packed weights. */
      dc.chunk_rows = (dc.chunk_rows + QUANT_PANEL_ROWS - 1) & ~(QUANT_PANEL_ROWS - 1);
      dc.gemm = dc.packed_gemm;
      dc.w = dc.packed;
    }
    dc.token_block = quant_token_block((int64_t)(TOKEN_BLOCK_BYTES / a_stride), k->tile_tokens[wtype]);
  }
  const int row_chunks = (int)((rows + dc.chunk_rows - 1) / dc.chunk_rows);
  if (row_chunks < 2 * threads) {
    /* Few weight rows: hand out blocks of tokens too, small enough that every thread gets work. */
    const int groups = (2 * threads + row_chunks - 1) / row_chunks;
    const int per_group = quant_whole_tiles((int)(((int64_t)n + groups - 1) / groups + 3), k->tile_tokens[wtype]);
    if (per_group < dc.token_block) dc.token_block = per_group < 4 ? 4 : per_group;
  }
  const int token_blocks = (n + dc.token_block - 1) / dc.token_block;
  dc.token_groups = row_chunks >= 2 * threads ? 1 : token_blocks;
  dc.items = row_chunks * dc.token_groups;
  atomic_init(&dc.next_item, 0);
  const double macs = (double)rows * cols * n;
  if (macs < MIN_PARALLEL_MACS || dc.items == 1) dot_job(&dc, 0, 1);
  else cairn_pool_run_n(dot_job, &dc, dc.items);
out:
  pthread_mutex_unlock(&g_lock);
  return rc;
}

/* ---- dequantize, quantize and row gathers, split by blocks over the pool when large ---- */

typedef struct {
  int type, encode;
  const uint8_t *src;
  uint8_t *dst;
  int64_t nb;
  size_t block_bytes;
  int block_size;
} codec_ctx;

static void codec_job(void *p, int ith, int nth) {
  const codec_ctx *c = (const codec_ctx *)p;
  const int64_t b0 = c->nb * ith / nth, b1 = c->nb * (ith + 1) / nth;
  if (b1 <= b0) return;
  if (c->encode) {
    quant_encode_blocks(c->type, (const float *)c->src + b0 * c->block_size, c->dst + b0 * c->block_bytes, b1 - b0);
  } else {
    quant_decode_blocks(c->type, c->src + b0 * c->block_bytes, (float *)c->dst + b0 * c->block_size, b1 - b0);
  }
}

static int run_codec(int type, int encode, const void *src, void *dst, int64_t n) {
  const int bs = quant_block_size(type);
  if (bs == 0 || n < 0 || n % bs != 0) return -1;
  codec_ctx c = {type, encode, (const uint8_t *)src, (uint8_t *)dst, n / bs, quant_block_bytes(type), bs};
  if (n >= MIN_PARALLEL_CODEC) cairn_pool_run(codec_job, &c);
  else codec_job(&c, 0, 1);
  return 0;
}

int cairn_dequantize(int type, const void *src, float *dst, int64_t n) { return run_codec(type, 0, src, dst, n); }

int cairn_quantize(int type, const float *src, void *dst, int64_t n) { return run_codec(type, 1, src, dst, n); }

typedef struct {
  int type, cols;
  const uint8_t *w;
  size_t row_bytes;
  const int32_t *ids;
  int n_ids;
  float *out;
  /* Packed weights (cairn_pack) read instead of w, a row's blocks put back in the file's layout a
     stretch at a time. */
  void (*packed_row)(const uint8_t *packed, size_t ws, int row, int b0, int nb, uint8_t *dst);
  const uint8_t *packed;
} rows_ctx;

/* Bytes of a row's blocks put back in the file's layout at once (on the stack). */
#define ROW_STRETCH_BYTES 4096

static void rows_job(void *p, int ith, int nth) {
  const rows_ctx *c = (const rows_ctx *)p;
  const int bs = quant_block_size(c->type), nb = c->cols / bs;
  const size_t block_bytes = c->row_bytes / (size_t)nb;
  const int stretch = (int)(ROW_STRETCH_BYTES / block_bytes);
  uint8_t blocks[ROW_STRETCH_BYTES];
  for (int i = ith; i < c->n_ids; i += nth) {
    float *out = c->out + (size_t)i * c->cols;
    if (!c->packed_row) {
      quant_decode_blocks(c->type, c->w + (size_t)c->ids[i] * c->row_bytes, out, nb);
      continue;
    }
    for (int b0 = 0; b0 < nb; b0 += stretch) {
      const int n = nb - b0 < stretch ? nb - b0 : stretch;
      c->packed_row(c->packed, c->row_bytes, c->ids[i], b0, n, blocks);
      quant_decode_blocks(c->type, blocks, out + (size_t)b0 * bs, n);
    }
  }
}

int quant_get_rows(int type, const void *w, int cols, const int32_t *ids, int n_ids, float *out) {
  return quant_get_rows_packed(type, w, NULL, cols, ids, n_ids, out);
}

int quant_get_rows_packed(int type, const void *w, const void *packed, int cols, const int32_t *ids, int n_ids, float *out) {
  const int bs = quant_block_size(type);
  if (bs == 0 || cols <= 0 || cols % bs != 0 || n_ids < 0) return -1;
  const quant_panel_table *pk = packed ? quant_active_packing(type) : NULL;
  rows_ctx c = {type, cols, (const uint8_t *)w, quant_row_bytes(type, cols), ids, n_ids, out,
                pk ? pk->packed_row[type] : NULL, (const uint8_t *)packed};
  if ((int64_t)n_ids * cols >= MIN_PARALLEL_CODEC && n_ids > 1) cairn_pool_run_n(rows_job, &c, n_ids);
  else rows_job(&c, 0, 1);
  return 0;
}
