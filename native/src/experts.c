/*
 * Driver of the expert products. Preparation converts each activation row once (for the gate and
 * up products, one row per token, copied to every expert the token uses) and stores the rows
 * grouped by expert, in a counting sort's order. A product then hands out work items of one
 * expert x one chunk of its weight rows, heaviest experts first, to the thread pool; each item
 * runs the matmul kernels over all the tokens routed to that expert, so an expert's weights are
 * read from memory once per product however many tokens use it, and both one token's few experts
 * (decode) and a batch's many (prefill) spread over every thread. An expert with as many tokens
 * as matmul would take the panel kernels for (quant_kernels.h) takes them here too, so each
 * pair's result equals a dense matmul of its expert with the expert's tokens.
 */
#include "experts.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"
#include "quant_kernels.h"

#define BATCH_MAGIC 0x42584543u /* "CEXB" */
/* Multiply-adds below which one thread does the whole product (waking workers costs ~1-2 us). */
#define MIN_PARALLEL_MACS 65536
/* Element conversions below which the caller converts the activations alone. */
#define MIN_PARALLEL_CONVERT 32768
/* Bytes of weights per work item at most (kept in L2 while the expert's token blocks pass). */
#define CHUNK_WEIGHT_BYTES (192 * 1024)
/* Bytes of converted activations per token block. */
#define TOKEN_BLOCK_BYTES (256 * 1024)
/* Work items per thread the chunk size aims at, so a slow thread does not hold the rest up. */
#define ITEMS_PER_THREAD 4
/* Most bytes a batch may span (far above any real layer; keeps every size computation exact). */
#define MAX_BATCH_BYTES ((size_t)1 << 44)

/* The header at the start of a batch buffer (after alignment to 64 bytes). */
typedef struct {
  uint32_t magic;
  int32_t n_experts, n_used, cols, max_tokens, float_rows;
  int32_t n_tokens, vec_type, per_slot, reserved;
  uint64_t row_cap; /* bytes of each row slot */
  uint64_t stride;  /* bytes per row of the current preparation (<= row_cap) */
  uint8_t pad[8];
} batch_header;
_Static_assert(sizeof(batch_header) == 64, "batch header is one cache line");

/* Byte offsets of a batch's parts from its aligned start, and its total size. */
typedef struct {
  size_t offsets, cursor, order, where, rows, total;
} batch_layout;

static size_t pad64(size_t n) { return (n + 63) & ~(size_t)63; }

/* Bytes of a row slot: for the float forms, f32 values or the AMX level's F16 parts (wider), whichever
   level is active; else the largest 8-bit form (Q8_0/1/K). */
static size_t row_capacity(int float_rows, int cols) {
  if (float_rows) return quant_amx_f16_row_bytes(cols);
  size_t cap = quant_act_layout_for(CAIRN_Q8_0, cols).row_bytes;
  const size_t q81 = quant_act_layout_for(CAIRN_Q4_1, cols).row_bytes, q8k = quant_act_layout_for(CAIRN_Q4_K, cols).row_bytes;
  if (q81 > cap) cap = q81;
  if (q8k > cap) cap = q8k;
  return cap;
}

static int shape_ok(int n_experts, int n_used, int cols, int max_tokens) {
  return n_experts >= 1 && n_experts <= CAIRN_MAX_EXPERTS && n_used >= 1 && n_used <= CAIRN_MAX_EXPERTS_USED &&
         cols >= 1 && max_tokens >= 1 && (int64_t)max_tokens * n_used <= INT32_MAX;
}

/* The layout of a batch; -1 when it would span more than MAX_BATCH_BYTES. */
static int layout_of(int n_experts, int n_used, int max_tokens, size_t row_cap, batch_layout *l) {
  const size_t pairs = (size_t)n_used * (size_t)max_tokens, per_expert = pad64(((size_t)n_experts + 1) * 4);
  l->offsets = sizeof(batch_header);
  l->cursor = l->offsets + per_expert;
  l->order = l->cursor + per_expert;
  l->where = l->order + pad64(pairs * 4);
  l->rows = l->where + pad64(pairs * 4);
  if (row_cap == 0 || pairs > MAX_BATCH_BYTES / row_cap) return -1;
  l->total = l->rows + pairs * row_cap;
  return l->total <= MAX_BATCH_BYTES ? 0 : -1;
}

static uint8_t *aligned(const void *buf) { return (uint8_t *)(((uintptr_t)buf + 63) & ~(uintptr_t)63); }

/* The header of a valid batch in buf, with its layout; NULL when buf does not hold one. */
static batch_header *header_of(const void *buf, size_t bytes, batch_layout *l) {
  if (!buf) return NULL;
  uint8_t *base = aligned(buf);
  const size_t skip = (size_t)(base - (const uint8_t *)buf);
  if (bytes < skip + sizeof(batch_header)) return NULL;
  batch_header *h = (batch_header *)base;
  if (h->magic != BATCH_MAGIC || !shape_ok(h->n_experts, h->n_used, h->cols, h->max_tokens)) return NULL;
  if ((h->float_rows != 0 && h->float_rows != 1) || h->row_cap != row_capacity(h->float_rows, h->cols)) return NULL;
  if (layout_of(h->n_experts, h->n_used, h->max_tokens, h->row_cap, l) || bytes - skip < l->total) return NULL;
  if (h->n_tokens < 0 || h->n_tokens > h->max_tokens || (h->per_slot != 0 && h->per_slot != 1)) return NULL;
  if (h->vec_type != -1 && (h->stride == 0 || h->stride > h->row_cap)) return NULL;
  return h;
}

size_t cairn_expert_batch_bytes(int wtype, int n_experts, int n_used, int cols, int max_tokens) {
  const int vt = wtype >= 0 && wtype < QUANT_MAX_TYPE ? quant_vec_dot_type(wtype) : -1;
  if (vt < 0 || !shape_ok(n_experts, n_used, cols, max_tokens) || cols % quant_block_size(wtype) != 0) return 0;
  const int float_rows = vt == CAIRN_F32 || vt == CAIRN_F16 || vt == CAIRN_BF16;
  batch_layout l;
  if (layout_of(n_experts, n_used, max_tokens, row_capacity(float_rows, cols), &l)) return 0;
  return l.total + 64;
}

int cairn_expert_batch_init(void *buf, size_t bytes, int wtype, int n_experts, int n_used, int cols, int max_tokens) {
  const size_t need = cairn_expert_batch_bytes(wtype, n_experts, n_used, cols, max_tokens);
  if (need == 0 || bytes < need) return -1;
  const int vt = quant_vec_dot_type(wtype);
  batch_header *h = (batch_header *)aligned(buf);
  memset(h, 0, sizeof *h);
  h->magic = BATCH_MAGIC;
  h->n_experts = n_experts;
  h->n_used = n_used;
  h->cols = cols;
  h->max_tokens = max_tokens;
  h->float_rows = vt == CAIRN_F32 || vt == CAIRN_F16 || vt == CAIRN_BF16;
  h->row_cap = row_capacity(h->float_rows, cols);
  h->vec_type = -1;
  return 0;
}

int cairn_expert_batch_shape(const void *buf, size_t bytes, cairn_expert_shape *out) {
  batch_layout l;
  const batch_header *h = header_of(buf, bytes, &l);
  if (!h) return -1;
  *out = (cairn_expert_shape){h->n_experts, h->n_used, h->cols, h->max_tokens, h->n_tokens, h->vec_type, h->float_rows};
  return 0;
}

/* ---- preparation ---- */

typedef struct {
  quant_convert_fn convert; /* NULL: the f32 row as it is */
  const float *x;
  int cols, n_rows, n_used, per_slot;
  const int32_t *where;
  uint8_t *rows;
  size_t stride;
} prep_ctx;

static void prep_job(void *p, int ith, int nth) {
  const prep_ctx *c = (const prep_ctx *)p;
  for (int i = ith; i < c->n_rows; i += nth) {
    const float *src = c->x + (size_t)i * c->cols;
    const int first = c->per_slot ? i : i * c->n_used;
    uint8_t *dst = c->rows + (size_t)c->where[first] * c->stride;
    if (c->convert) c->convert(src, dst, c->cols);
    else memcpy(dst, src, (size_t)c->cols * 4);
    if (c->per_slot) continue;
    /* The token's other experts get copies of its converted row. */
    for (int s = 1; s < c->n_used; s++) memcpy(c->rows + (size_t)c->where[first + s] * c->stride, dst, c->stride);
  }
}

int cairn_expert_prepare(void *buf, size_t bytes, int wtype, const float *x, int n_tokens, const int32_t *ids,
                         int per_slot) {
  batch_layout l;
  batch_header *h = header_of(buf, bytes, &l);
  if (!h || wtype < 0 || wtype >= QUANT_MAX_TYPE) return -1;
  const int vt = quant_vec_dot_type(wtype);
  if (vt < 0 || h->cols % quant_block_size(wtype) != 0 || n_tokens < 0 || n_tokens > h->max_tokens) return -1;
  size_t row_bytes = 0;
  const quant_convert_fn convert = quant_active_convert(wtype, h->cols, &row_bytes);
  if (row_bytes > h->row_cap) return -1;
  uint8_t *base = (uint8_t *)h;
  int32_t *off = (int32_t *)(base + l.offsets), *cur = (int32_t *)(base + l.cursor);
  int32_t *order = (int32_t *)(base + l.order), *where = (int32_t *)(base + l.where);
  const int n_experts = h->n_experts, pairs = n_tokens * h->n_used;
  /* Counting sort of the pairs by expert (stable: pair order within an expert). */
  memset(off, 0, ((size_t)n_experts + 1) * 4);
  for (int p = 0; p < pairs; p++) off[ids[p] + 1]++;
  for (int e = 0; e < n_experts; e++) off[e + 1] += off[e];
  memcpy(cur, off, (size_t)n_experts * 4);
  for (int p = 0; p < pairs; p++) {
    const int pos = cur[ids[p]]++;
    order[pos] = p;
    where[p] = pos;
  }
  quant_lock();
  prep_ctx pc = {.convert = convert,
                 .x = x, .cols = h->cols, .n_rows = per_slot ? pairs : n_tokens, .n_used = h->n_used,
                 .per_slot = per_slot, .where = where, .rows = base + l.rows, .stride = row_bytes};
  if ((int64_t)pc.n_rows * h->cols >= MIN_PARALLEL_CONVERT && pc.n_rows > 1) cairn_pool_run_n(prep_job, &pc, pc.n_rows);
  else prep_job(&pc, 0, 1);
  /* The rows were rewritten in place: kernels must not reuse what they derived from the old ones. */
  quant_activation_generation++;
  h->n_tokens = n_tokens;
  h->vec_type = vt;
  h->per_slot = per_slot ? 1 : 0;
  h->stride = row_bytes;
  quant_unlock();
  return 0;
}

/* ---- products ---- */

typedef struct {
  quant_gemm_fn gemm;
  /* Packed weights (cairn_pack of the bank as one matrix, experts of whole 16-row groups) and the
     products over them, used for rows that start on a group (all of them, as chunks are cut). */
  const uint8_t *packed;
  quant_gemm_fn packed_gemm;
  quant_panel_gemm_fn packed_panel_gemm;
  /* Panel path for experts with at least panel_min tokens (panel_gemm NULL: none). */
  quant_panel_gemm_fn panel_gemm;
  int panel_min;
  const int32_t *aux; /* panel prep values per grouped row */
  size_t aux_stride, panel_bytes;
  uint8_t *panels; /* per share */
  int cols, rows;
  const uint8_t *w;
  size_t w_stride, expert_bytes;
  const uint8_t *a; /* the grouped activation rows */
  size_t a_stride;
  const int32_t *off, *order, *active;
  float *y;
  const float *bias;
  int chunk_rows, chunks, token_block, items;
  float *tmp; /* per share: token_block x chunk_rows outputs of a block of several tokens */
  size_t tmp_floats;
  atomic_int next_item;
} product_ctx;

/* Writes nr outputs of one pair (from `src`, stride 1) to its row of y, adding the expert's bias. */
static void put_row(const product_ctx *c, int e, int pos, int r0, int nr, const float *src) {
  float *dst = c->y + (size_t)c->order[pos] * c->rows + r0;
  if (c->bias) {
    const float *b = c->bias + (size_t)e * c->rows + r0;
    for (int r = 0; r < nr; r++) dst[r] = src[r] + b[r];
  } else if (dst != src) {
    memcpy(dst, src, (size_t)nr * 4);
  }
}

/* Rows [r0, r0 + nr) (nr <= chunk_rows) of expert e against all the tokens routed to it, on share ith. */
static void run_rows(const product_ctx *c, int ith, int e, int r0, int nr) {
  const int pos0 = c->off[e], n_e = c->off[e + 1] - pos0;
  const int packed = c->packed && r0 % QUANT_PANEL_ROWS == 0;
  const uint8_t *we = (packed ? c->packed : c->w) + (size_t)e * c->expert_bytes + (size_t)r0 * c->w_stride;
  const quant_gemm_fn gemm = packed ? c->packed_gemm : c->gemm;
  const quant_panel_gemm_fn panel_gemm = packed ? c->packed_panel_gemm : c->panel_gemm;
  if (c->panel_gemm && n_e >= c->panel_min) {
    /* Shares run one at a time per index, so share `ith` owns panel and output buffer `ith`. */
    float *tmp = c->tmp + (size_t)ith * c->tmp_floats;
    for (int t0 = 0; t0 < n_e; t0 += c->token_block) {
      const int nt = n_e - t0 < c->token_block ? n_e - t0 : c->token_block;
      panel_gemm(c->cols, we, c->w_stride, nr, c->a + (size_t)(pos0 + t0) * c->a_stride, c->a_stride,
                    c->aux + (size_t)(pos0 + t0) * c->aux_stride, c->aux_stride, nt, tmp, (size_t)nr,
                    c->panels + (size_t)ith * c->panel_bytes);
      for (int i = 0; i < nt; i++) put_row(c, e, pos0 + t0 + i, r0, nr, tmp + (size_t)i * nr);
    }
    return;
  }
  for (int t0 = 0; t0 < n_e; t0 += c->token_block) {
    const int nt = n_e - t0 < c->token_block ? n_e - t0 : c->token_block;
    const uint8_t *a = c->a + (size_t)(pos0 + t0) * c->a_stride;
    if (nt == 1) {
      /* One token: straight into its output row. */
      float *dst = c->y + (size_t)c->order[pos0 + t0] * c->rows + r0;
      gemm(c->cols, we, c->w_stride, nr, a, c->a_stride, 1, dst, (size_t)c->rows);
      if (c->bias) put_row(c, e, pos0 + t0, r0, nr, dst);
      continue;
    }
    /* Several: their rows of y are scattered, so the tile goes through this share's buffer. */
    float *tmp = c->tmp + (size_t)ith * c->tmp_floats;
    gemm(c->cols, we, c->w_stride, nr, a, c->a_stride, nt, tmp, (size_t)nr);
    for (int i = 0; i < nt; i++) put_row(c, e, pos0 + t0 + i, r0, nr, tmp + (size_t)i * nr);
  }
}

/* Batches: work items of one expert x one chunk of rows, heaviest experts first. */
static void product_job(void *p, int ith, int nth) {
  (void)nth;
  product_ctx *c = (product_ctx *)p;
  for (;;) {
    const int item = atomic_fetch_add_explicit(&c->next_item, 1, memory_order_relaxed);
    if (item >= c->items) return;
    const int r0 = (item % c->chunks) * c->chunk_rows;
    run_rows(c, ith, c->active[item / c->chunks], r0, c->rows - r0 < c->chunk_rows ? c->rows - r0 : c->chunk_rows);
  }
}

/*
 * A few tokens (decode): memory-bound, so each thread reads one contiguous stretch, as matmul's
 * one-token path does: the active experts' rows laid end to end (expert i's row r is row
 * i * rows + r) are cut into one range per thread; a thread done with its own takes pieces from
 * the back of the others'. A range is one word: next row from the front (high half), end (low).
 */
#define RANGE_MAX_THREADS 256
#define RANGE_MAX_TOKENS 4
typedef struct {
  const product_ctx *pc;
  int piece;
  _Atomic uint64_t range[RANGE_MAX_THREADS];
} range_ctx;

static int range_take(_Atomic uint64_t *range, int want, int from_back, int *start, int *count) {
  uint64_t v = atomic_load_explicit(range, memory_order_relaxed);
  for (;;) {
    const uint32_t f = (uint32_t)(v >> 32), b = (uint32_t)v;
    if (f >= b) return 0;
    const uint32_t n = b - f < (uint32_t)want ? b - f : (uint32_t)want;
    const uint64_t next = from_back ? ((uint64_t)f << 32) | (b - n) : ((uint64_t)(f + n) << 32) | b;
    if (atomic_compare_exchange_weak_explicit(range, &v, next, memory_order_relaxed, memory_order_relaxed)) {
      *start = (int)(from_back ? b - n : f);
      *count = (int)n;
      return 1;
    }
  }
}

static void range_job(void *p, int ith, int nth) {
  range_ctx *rc = (range_ctx *)p;
  const product_ctx *c = rc->pc;
  int start, count;
  for (int k = 0; k < nth; k++) {
    const int r = (ith + k) % nth;
    while (range_take(&rc->range[r], rc->piece, k > 0, &start, &count)) {
      /* A piece may span the end of one expert and the start of the next. */
      while (count > 0) {
        const int r0 = start % c->rows;
        int n = c->rows - r0 < count ? c->rows - r0 : count;
        if (n > c->chunk_rows) n = c->chunk_rows;
        run_rows(c, ith, c->active[start / c->rows], r0, n);
        start += n;
        count -= n;
      }
    }
  }
}

/* One product at a time owns this scratch (under quant_lock). */
static uint8_t *g_scratch;
static size_t g_scratch_cap;

static uint8_t *scratch(size_t bytes) {
  if (bytes <= g_scratch_cap) return g_scratch;
  const size_t want = (bytes + bytes / 4 + 4095) & ~(size_t)4095;
  void *p = NULL;
  if (posix_memalign(&p, 64, want) != 0) return NULL;
  free(g_scratch);
  g_scratch = (uint8_t *)p;
  g_scratch_cap = want;
  return g_scratch;
}

static const int32_t *g_sort_offsets; /* the comparator's view of the counts (under quant_lock) */

/* Most tokens first; ties by expert id, so the order never depends on the sort. */
static int by_tokens_desc(const void *a, const void *b) {
  const int ea = *(const int32_t *)a, eb = *(const int32_t *)b;
  const int na = g_sort_offsets[ea + 1] - g_sort_offsets[ea], nb = g_sort_offsets[eb + 1] - g_sort_offsets[eb];
  if (na != nb) return na > nb ? -1 : 1;
  return ea < eb ? -1 : ea > eb;
}

static int clampi(int64_t v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : (int)v; }

typedef struct {
  quant_panel_prep_fn prep;
  const uint8_t *a;
  size_t a_stride;
  int cols;
  const int32_t *off, *active;
  int n_panel_experts; /* the first n of `active` (most tokens first) take the panels */
  int32_t *aux;
  size_t aux_stride;
} aux_ctx;

static void aux_job(void *p, int ith, int nth) {
  const aux_ctx *c = (const aux_ctx *)p;
  for (int i = ith; i < c->n_panel_experts; i += nth) {
    const int e = c->active[i];
    for (int pos = c->off[e]; pos < c->off[e + 1]; pos++) {
      c->prep(c->a + (size_t)pos * c->a_stride, c->cols, c->aux + (size_t)pos * c->aux_stride);
    }
  }
}

int cairn_expert_matmul(const void *buf, size_t bytes, int wtype, const void *w, const void *packed, int rows, float *y, const float *bias) {
  batch_layout l;
  const batch_header *h = header_of(buf, bytes, &l);
  if (!h || wtype < 0 || wtype >= QUANT_MAX_TYPE || rows < 0) return -1;
  const int vt = quant_vec_dot_type(wtype);
  if (vt < 0 || h->vec_type != vt || h->cols % quant_block_size(wtype) != 0) return -1;
  size_t row_bytes = 0;
  (void)quant_active_convert(wtype, h->cols, &row_bytes);
  if (row_bytes != h->stride) return -1;
  const uint8_t *base = (const uint8_t *)h;
  const int32_t *off = (const int32_t *)(base + l.offsets), *order = (const int32_t *)(base + l.order);
  const int n_experts = h->n_experts, pairs = h->n_tokens * h->n_used;
  /* The grouping must be a partition of the pairs before any of it is used as an index. */
  if (off[0] != 0 || off[n_experts] != pairs) return -1;
  int n_active = 0, max_tokens = 0;
  for (int e = 0; e < n_experts; e++) {
    if (off[e + 1] < off[e]) return -1;
    n_active += off[e + 1] > off[e];
    if (off[e + 1] - off[e] > max_tokens) max_tokens = off[e + 1] - off[e];
  }
  for (int i = 0; i < pairs; i++) {
    if (order[i] < 0 || order[i] >= pairs) return -1;
  }
  if (rows == 0 || pairs == 0) return 0;

  quant_lock();
  int rc = 0;
  const quant_kernel_table *k = quant_active_kernels();
  const int threads = cairn_pool_threads();
  product_ctx c = {.gemm = k->gemm[wtype] ? k->gemm[wtype] : quant_kernels_scalar.gemm[wtype],
                   .cols = h->cols, .rows = rows, .w = (const uint8_t *)w, .w_stride = quant_row_bytes(wtype, h->cols),
                   .a = base + l.rows, .a_stride = h->stride, .off = off, .order = order, .y = y, .bias = bias};
  c.expert_bytes = (size_t)rows * c.w_stride;
  /* Chunks of rows: enough items for every thread, few enough bytes to stay in L2, whole tiles. */
  const int cap_rows = clampi((int64_t)(CHUNK_WEIGHT_BYTES / c.w_stride), 16, 1 << 20);
  c.chunk_rows = clampi((int64_t)n_active * rows / ((int64_t)threads * ITEMS_PER_THREAD), 16, cap_rows);
  c.chunk_rows = (c.chunk_rows + 15) & ~15;
  if (c.chunk_rows > rows) c.chunk_rows = rows;
  c.chunks = (rows + c.chunk_rows - 1) / c.chunk_rows;
  c.items = n_active * c.chunks;
  c.token_block = quant_token_block((int64_t)(TOKEN_BLOCK_BYTES / c.a_stride), k->tile_tokens[wtype]);
  c.tmp_floats = (size_t)c.token_block * (size_t)c.chunk_rows;
  const double macs = (double)pairs * rows * h->cols;
  /* Panels as matmul takes them: where the ISA has them for the type, from min_tokens tokens. */
  const quant_panel_table *panels = quant_active_panels();
  const int own_layout = quant_panels_own_layout(panels, wtype), panels_from = quant_panels_from(panels, wtype);
  if (panels_from && vt != CAIRN_F32 && max_tokens >= panels_from) {
    c.panel_gemm = panels->gemm[wtype];
    c.panel_min = panels_from;
    c.aux_stride = quant_panel_aux_count(h->cols);
    c.panel_bytes = pad64(quant_panel_bytes(panels, wtype, h->cols, c.chunk_rows));
  }
  /* Packed weights where this level reads them: experts of whole groups only (the caller checks). */
  const quant_panel_table *pk = packed && rows % QUANT_PANEL_ROWS == 0 ? quant_active_packing(wtype) : NULL;
  if (pk) {
    c.packed = (const uint8_t *)packed;
    c.packed_gemm = pk->packed[wtype];
    c.packed_panel_gemm = pk->packed_gemm[wtype];
  }
  /* Panel paths with their own activation layout serve a few tokens too, without a panel buffer. */
  const int few_ok = !c.panel_gemm || own_layout;
  const int use_ranges = threads > 1 && macs >= MIN_PARALLEL_MACS && max_tokens <= RANGE_MAX_TOKENS && few_ok &&
                         (int64_t)n_active * rows <= INT32_MAX;
  const int shares = use_ranges ? (threads < RANGE_MAX_THREADS ? threads : RANGE_MAX_THREADS)
                     : macs < MIN_PARALLEL_MACS ? 1
                     : c.items < threads ? c.items
                                         : threads;
  const size_t active_bytes = pad64((size_t)n_active * 4), tmp_bytes = pad64((size_t)shares * c.tmp_floats * 4);
  const size_t aux_bytes = c.panel_gemm ? pad64((size_t)pairs * c.aux_stride * 4) : 0;
  const size_t panel_bytes = c.panel_gemm ? (size_t)shares * c.panel_bytes : 0;
  uint8_t *s = scratch(active_bytes + tmp_bytes + aux_bytes + panel_bytes);
  if (!s) {
    rc = -2;
    goto out;
  }
  int32_t *active = (int32_t *)s;
  for (int e = 0, i = 0; e < n_experts; e++) {
    if (off[e + 1] > off[e]) active[i++] = e;
  }
  g_sort_offsets = off;
  qsort(active, (size_t)n_active, 4, by_tokens_desc);
  c.active = active;
  c.tmp = (float *)(s + active_bytes);
  if (c.panel_gemm) {
    /* Most tokens first: the experts that take the panels lead the list. */
    int n_panel = 0;
    while (n_panel < n_active && off[active[n_panel] + 1] - off[active[n_panel]] >= c.panel_min) n_panel++;
    if (n_panel == 0) {
      c.panel_gemm = NULL;
    } else {
      aux_ctx ac = {panels->prep[wtype], c.a, c.a_stride, h->cols, off, active, n_panel,
                    (int32_t *)(s + active_bytes + tmp_bytes), c.aux_stride};
      /* No prep function: the table's kernels for this type take no prep values. */
      if (ac.prep) {
        if (shares > 1 && n_panel > 1) cairn_pool_run_n(aux_job, &ac, n_panel);
        else aux_job(&ac, 0, 1);
      }
      c.aux = ac.aux;
      c.panels = s + active_bytes + tmp_bytes + aux_bytes;
    }
  }
  atomic_init(&c.next_item, 0);
  if (use_ranges) {
    static range_ctx rc; /* up to 256 ranges: kept off the stack (calls are serialized by quant_lock) */
    rc.pc = &c;
    const int64_t total = (int64_t)n_active * rows, units = (total + 15) / 16;
    for (int t = 0; t < shares; t++) {
      const int64_t lo = units * t / shares * 16, hi = t == shares - 1 ? total : units * (t + 1) / shares * 16;
      atomic_store_explicit(&rc.range[t], ((uint64_t)(lo < total ? lo : total) << 32) | (uint64_t)(hi < total ? hi : total),
                            memory_order_relaxed);
    }
    /* Pieces of about a sixteenth of a range, whole tiles, at most a chunk (the output buffer). */
    rc.piece = clampi(total / ((int64_t)shares * 16), 16, c.chunk_rows > 16 ? c.chunk_rows : 16) & ~15;
    cairn_pool_run_n(range_job, &rc, shares);
  } else if (shares <= 1) {
    product_job(&c, 0, 1);
  } else {
    cairn_pool_run_n(product_job, &c, shares);
  }
out:
  quant_unlock();
  return rc;
}

/* ---- weighted sum of the experts' outputs ---- */

typedef struct {
  const float *y, *weights;
  int64_t n_tokens, n_used, dim;
  float *out;
} combine_ctx;

static void combine_job(void *p, int ith, int nth) {
  const combine_ctx *c = (const combine_ctx *)p;
  /* Shares of the flattened tokens x dim outputs, in runs of 16 so threads never share a line. */
  const int64_t total = c->n_tokens * c->dim, per = ((total + nth - 1) / nth + 15) & ~(int64_t)15;
  const int64_t begin = per * ith < total ? per * ith : total, end = begin + per < total ? begin + per : total;
  for (int64_t i = begin; i < end;) {
    const int64_t t = i / c->dim, d0 = i - t * c->dim, n = (c->dim - d0 < end - i) ? c->dim - d0 : end - i;
    float *o = c->out + i;
    const float *ys = c->y + (t * c->n_used) * c->dim + d0;
    const float w0 = c->weights[t * c->n_used];
    for (int64_t j = 0; j < n; j++) o[j] = w0 * ys[j];
    for (int64_t s = 1; s < c->n_used; s++) {
      const float ws = c->weights[t * c->n_used + s];
      const float *ysl = ys + s * c->dim;
      for (int64_t j = 0; j < n; j++) o[j] = o[j] + ws * ysl[j];
    }
    i += n;
  }
}

void cairn_moe_combine(const float *y, const float *weights, int64_t n_tokens, int64_t n_used, int64_t dim, float *out) {
  combine_ctx c = {y, weights, n_tokens, n_used, dim, out};
  const double work = (double)n_tokens * (double)dim * (double)n_used;
  const int nth = work < 32768 ? 1 : work / 16384 > 256 ? 256 : (int)(work / 16384);
  cairn_pool_run_n(combine_job, &c, nth);
}
