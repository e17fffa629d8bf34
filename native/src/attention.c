/*
 * Causal grouped-query attention over one sequence's KV cache, fused and tiled: no score row over
 * the whole context is ever formed. The cache is cut into chunks of ATTN_CHUNK rows at fixed
 * positions (0, ATTN_CHUNK, 2 ATTN_CHUNK, ...). For each query vector and chunk, the kernel takes
 * the scores kq = k.q * scale (q rounded to f16 for an F16 cache, quantized to Q8_0 for a Q8_0
 * cache, as ggml converts it), their maximum m, the weights exp(s - m) with their sum l (f64),
 * and the weighted sum of the chunk's V rows (f32). The chunks' states are then merged in order
 * of position (online softmax: the running maximum, sum and vector rescaled by exp of the
 * difference of maxima), a sink logit joins last, and the vector is divided by the sum. A token
 * whose visible rows all lie in one chunk (every token of a context up to ATTN_CHUNK) gets the
 * unfused arithmetic instead, bit for bit what it was before this kernel was fused (llama.cpp's
 * CPU path without flash attention: softmax with the sink, weights rounded to f16 for an F16
 * cache, then the weighted sum): random-weight models compared with llama.cpp are that sensitive.
 *
 * Because chunk boundaries are fixed positions and the merge always runs in chunk order, a token's
 * result depends on neither its batch, its tile nor the number of threads: a prompt verified in
 * one pass gives each token exactly what it gets decoded alone (speculative decoding relies on
 * this).
 *
 * Two ways to share the work. A prompt (many tiles of tokens, or many KV heads) gives each item a
 * tile of tokens and one KV head's query heads, and the item folds the chunks in as it reads them.
 * A decode token (one tile) gives each item one KV head's rows of one chunk, the items in head
 * order and chunk order within a head, so each thread streams a head's K and V stretches front to
 * back (its own run of consecutive items first), two streams at a time; the chunks' states go to a
 * buffer and a second pass merges them per query vector. (Items of every KV head of a chunk, in
 * chunk order, had each thread hop between 16 stretches of 17 KiB for llama-1b: a layer's decode
 * attention over a 16k F16 cache 1.14-1.26 -> 1.04-1.12 ms, a Q8_0 cache level, on a Zen 5 host.)
 * A few tokens with too few (tile, KV head) items to go round split the same way, an item every KV
 * head of a chunk.
 *
 * The cache is stored head by head (ops.h): a KV head's rows of a chunk are one stretch of memory,
 * where rows of every head side by side gave each head a slice of each row to gather (a head of 64
 * f16 is 128 bytes of a 1 KiB row), which left the loads stalled at depth (a decode token at 16k
 * ran ~20% slower, with a Q8_0 cache ~35%).
 * Within an item the query heads that share a KV head go through each block of cache rows
 * together, so each row is read and converted once per group and tile rather than once per head
 * and token.
 *
 * A Q8_0 cache may be kept in tiles of 16 positions (ops.h CAIRN_KV_Q8_0_TILES; where the level's
 * kernels read those faster): a chunk's rows are then read from the tile that holds its first one,
 * from that row's lane, with the row kernels' arithmetic (the same results as a row cache). The
 * score kernels then load 16 rows' quants in their lanes as they lie instead of transposing every
 * 16 rows, and the sums load 16 rows' scales as one vector instead of gathering them: a llama-1b
 * layer's decode attention at 16k 0.73-0.80 -> 0.57-0.61 ms on a Zen 5 host (C harness, alternating).
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "ops_table.h"
#include "pool.h"
#include "quant_codecs.h"
#include "quant_formats.h"
#include "x86_prefetch.h"

/* Element operations below which one thread does the whole op. */
#define MIN_PARALLEL_WORK 32768

/* ---- grow-only scratch of the calling thread, freed when that thread exits ---- */

typedef struct {
  void *p;
  size_t cap;
} scratch_buf;

/* A thread's buffers: the attention's own, and the order of a call's spans (cairn_attention_spans). */
enum { SCRATCH_ATTENTION, SCRATCH_SPANS, SCRATCH_KINDS };

static pthread_key_t g_scratch_key;
static pthread_once_t g_scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *v) {
  scratch_buf *s = v;
  for (int k = 0; k < SCRATCH_KINDS; k++) free(s[k].p);
  free(s);
}

static void scratch_key_init(void) { pthread_key_create(&g_scratch_key, scratch_free); }

static void *scratch_of(int kind, size_t bytes) {
  pthread_once(&g_scratch_once, scratch_key_init);
  scratch_buf *all = pthread_getspecific(g_scratch_key);
  if (!all) {
    all = calloc(SCRATCH_KINDS, sizeof *all);
    if (!all || pthread_setspecific(g_scratch_key, all) != 0) {
      free(all);
      return NULL;
    }
  }
  scratch_buf *s = all + kind;
  if (s->cap < bytes) {
    const size_t cap = (bytes + 4095) & ~(size_t)4095;
    void *p = aligned_alloc(64, cap);
    if (!p) return NULL;
    free(s->p);
    s->p = p;
    s->cap = cap;
  }
  return s->p;
}

static void *scratch(size_t bytes) { return scratch_of(SCRATCH_ATTENTION, bytes); }

/* ---- the job ---- */

/* Cache rows per chunk: the fixed boundaries of the online softmax (src/kernels/api.ts ATTENTION_CHUNK).
   512 rather than 256: each chunk costs its item's set-up, its kernels' query preparation, its state
   and a merge, which at 256 rows was a tenth of a decode token's attention at 16k (a llama-1b layer
   over a tiled Q8_0 cache 0.52 -> 0.47 ms, an F16 cache 0.87-0.90 -> 0.82-0.84; a prompt of 64 at
   16k no slower); 1024 halved a prompt's tiles of tokens (their scores outgrew TILE_SCORE_BYTES). */
#define ATTN_CHUNK 512
/* Floats between the score rows of two query vectors: a chunk plus one cache line, so rows of a
   power-of-two length do not alias in the cache (or in store forwarding). */
#define SCORE_STRIDE (ATTN_CHUNK + 16)
/* Cache rows per block: a block of K or V stays in L1 while the heads of a slice use it. */
#define ROW_BLOCK 16
/* Rows at the start of a head's stretch that are asked for while the stretch before it is read:
   the kernels prefetch rows ahead of the one in use, so without this each stretch's first rows
   (a head's rows of a chunk, 16 stretches an item) waited on memory. */
#define STRETCH_HEAD_ROWS 32

/* Asks for the first rows of a stretch of the cache into L2. */
static void prefetch_stretch(const uint8_t *p, int64_t rows, int64_t row_bytes) {
  const int64_t n = rows < STRETCH_HEAD_ROWS ? rows : STRETCH_HEAD_ROWS;
  for (int64_t off = 0; off < n * row_bytes; off += 64) {
#if defined(__x86_64__)
    cairn_prefetch_t1(p + off);
#else
    __builtin_prefetch(p + off, 0, 2);
#endif
  }
}
/* Most tokens per tile, and the most bytes of scores one tile may hold. */
#define MAX_TILE 16
#define TILE_SCORE_BYTES (256u << 10)
/* Most runs the items of a chunk split are cut into. */
#define MAX_RUNS 64
/* Most bytes of stored chunk states for the chunk-per-item split. */
#define MAX_STATE_BYTES (32u << 20)

/* The online-softmax state of a set of query vectors: per vector its maximum, its sum (f64) and its
   weighted sum of V rows (d floats); a sum of WHOLE marks a vector that sees only this chunk, its
   weighted sum already the output. */
#define WHOLE (-1.0)
typedef struct {
  float *m;
  double *l;
  float *acc;
} attn_state;

typedef struct {
  const cairn_ops_table *t;
  const float *q;
  const uint8_t *kc, *vc;
  const cairn_attention_params *p;
  float *out;
  uint8_t *scratch;
  size_t per_share;
  attn_state chunks; /* chunk per item: every (token, head, chunk) state, [token][head][chunk] */
  int64_t n_chunks;  /* chunks of the whole visible cache */
  int split;         /* 1: items are chunks (states stored, merged in a second pass); 0: items fold their chunks */
  int head_major;    /* split: items ordered by KV head, then chunk (a decode token); else by chunk, then heads */
  int64_t slice;     /* query heads per item */
  int64_t slices;    /* items per (tile, KV head) */
  int64_t span;      /* KV heads per item */
  int64_t tile;      /* tokens per item */
  int64_t tiles;
  int64_t n_items;
  atomic_llong next; /* next unclaimed item */
  int runs;          /* split: the items cut into this many runs of consecutive ones, a thread's own run first */
  /* Each run's next item (relative to its first), a cache line each, as threads claim from their own runs at once. */
  struct {
    _Alignas(64) atomic_llong next;
  } run_next[MAX_RUNS];
} attn_job;

static int64_t visible_from(const cairn_attention_params *p, int64_t n_ctx) {
  return p->window > 0 && n_ctx > p->window ? n_ctx - p->window : 0;
}

/*
 * Gemma 2's logit softcapping of a row of scores, in ggml's f32 steps (scale by 1/cap, tanh, scale
 * by cap). Scalar: it runs only for the models that ask for it.
 */
static void softcap_scores(float *w, int64_t n, float cap) {
  const float inv = 1.0f / cap;
  for (int64_t i = 0; i < n; i++) w[i] = cap * tanhf(w[i] * inv);
}

/* Per-item geometry: tokens [t0, t0 + nt), KV heads [kvh0, kvh0 + nkv), query heads [hs, hs + nh) of each. */
typedef struct {
  int64_t t0, nt, kvh0, nkv, hs, nh;
} attn_item;

/* Vector index within an item: KV head k, token ti, query head g of the slice. */
static inline int64_t item_vector(const attn_item *it, int64_t k, int64_t ti, int64_t g) { return (k * it->nt + ti) * it->nh + g; }

/* The item's query vectors, side by side as the row kernels take them, converted as ggml converts q for the cache's type. */
static void load_queries(const attn_job *j, const attn_item *it, float *qf, uint8_t *qq) {
  const cairn_attention_params *p = j->p;
  const int64_t d = p->head_dim, group = p->n_head / p->n_kv_head, nv = it->nt * it->nh;
  for (int64_t k = 0; k < it->nkv; k++) {
    const int64_t h0 = (it->kvh0 + k) * group + it->hs;
    for (int64_t ti = 0; ti < it->nt; ti++) {
      memcpy(qf + item_vector(it, k, ti, 0) * d, j->q + ((it->t0 + ti) * p->n_head + h0) * d, (size_t)(it->nh * d) * sizeof(float));
    }
  }
  if (p->kv_type == CAIRN_KV_F16) j->t->round_f16(qf, it->nkv * nv * d);
  if (cairn_kv_is_q8(p->kv_type)) quant_encode_blocks(CAIRN_KV_Q8_0, qf, qq, it->nkv * nv * d / QK);
}

/*
 * The state of chunk c for each of the item's vectors: m, l and the weighted V sum (a vector that
 * sees no row of the chunk gets l = 0). Rows a token does not see (later in its tile, or out of
 * its window) get weight 0, which adds exact zeros, so a vector's state is the same as alone.
 */
static void chunk_state(const attn_job *j, const attn_item *it, int64_t c, const float *qf, const uint8_t *qq, float *scores,
                        attn_state st) {
  const cairn_attention_params *p = j->p;
  const cairn_ops_table *tab = j->t;
  const int64_t d = p->head_dim, nv = it->nt * it->nh, group = p->n_head / p->n_kv_head;
  const int half = p->kv_type == CAIRN_KV_F16, q8 = cairn_kv_is_q8(p->kv_type), tiles = p->kv_type == CAIRN_KV_Q8_0_TILES;
  const int64_t head_bytes = cairn_kv_bytes(p->kv_type, d);
  const int64_t n_last = p->pos0 + it->t0 + it->nt, first_all = visible_from(p, p->pos0 + it->t0 + 1);
  const int64_t lo = c * ATTN_CHUNK, hi = lo + ATTN_CHUNK < n_last ? lo + ATTN_CHUNK : n_last;
  const int64_t start = lo > first_all ? lo : first_all;
  /* A tiled cache's rows from `start` lie in the tile that holds it, from its lane `lane0`. */
  const int64_t lane0 = tiles ? start % CAIRN_KV_TILE_ROWS : 0;
  const int64_t n_vec = it->nkv * nv;
  if (start >= hi) {
    for (int64_t v = 0; v < n_vec; v++) st.m[v] = -INFINITY, st.l[v] = 0;
    return;
  }
  /* Head by head: each KV head's rows of the chunk are one stretch of the cache. */
  for (int64_t k = 0; k < it->nkv; k++) {
    const int64_t first_row = (it->kvh0 + k) * p->k_capacity;
    /* The next stretch: the next head's K rows, after the last head the first head's V rows. */
    if (k + 1 < it->nkv) prefetch_stretch(j->kc + (first_row + p->k_capacity + start - lane0) * head_bytes, hi - start + lane0, head_bytes);
    else prefetch_stretch(j->vc + ((int64_t)it->kvh0 * p->v_capacity + start - lane0) * head_bytes, hi - start + lane0, head_bytes);
    if (tiles) {
      tab->dot_tiles_q8(j->kc + (first_row + start - lane0) * head_bytes, (int)lane0, hi - start, qq + k * nv * head_bytes, nv, d, p->scale,
                        scores + k * nv * SCORE_STRIDE + (start - lo), SCORE_STRIDE);
      continue;
    }
    if (q8) {
      /* The chunk's rows in one call: the kernel prepares the queries once and keeps a tile of
         rows in registers for all of them. */
      tab->dot_rows_q8(j->kc + (first_row + start) * head_bytes, head_bytes, hi - start, qq + k * nv * head_bytes, nv, d, p->scale,
                       scores + k * nv * SCORE_STRIDE + (start - lo), SCORE_STRIDE);
      continue;
    }
    for (int64_t i0 = start; i0 < hi; i0 += ROW_BLOCK) {
      const int64_t rows = hi - i0 < ROW_BLOCK ? hi - i0 : ROW_BLOCK, at = first_row + i0;
      float *sk = scores + k * nv * SCORE_STRIDE + (i0 - lo);
      if (half) {
        tab->dot_rows_f16((const uint16_t *)j->kc + at * d, d, rows, qf + k * nv * d, nv, d, p->scale, sk, SCORE_STRIDE);
      } else {
        tab->dot_rows_f32((const float *)j->kc + at * d, d, rows, qf + k * nv * d, nv, d, p->scale, sk, SCORE_STRIDE);
      }
    }
  }
  for (int64_t k = 0; k < it->nkv; k++) {
    for (int64_t ti = 0; ti < it->nt; ti++) {
      const int64_t n_ctx = p->pos0 + it->t0 + ti + 1, first = visible_from(p, n_ctx);
      const int64_t a = start > first ? start : first, b = hi < n_ctx ? hi : n_ctx;
      for (int64_t g = 0; g < it->nh; g++) {
        const int64_t v = item_vector(it, k, ti, g);
        float *w = scores + v * SCORE_STRIDE - lo;
        if (p->softcap > 0.f) softcap_scores(w + a, b - a, p->softcap);
        if (a >= b) {
          memset(w + start, 0, (size_t)(hi - start) * sizeof(float));
          st.m[v] = -INFINITY, st.l[v] = 0;
          continue;
        }
        float m = tab->max(w + a, b - a);
        if (first / ATTN_CHUNK == (n_ctx - 1) / ATTN_CHUNK) {
          /* All the token sees lies in this chunk: the unfused arithmetic (llama.cpp's without flash
             attention), weights normalized (and rounded to f16 for an F16 cache) before the
             weighted sum, which is then the output itself. */
          const int64_t h = (it->kvh0 + k) * group + it->hs + g;
          const float sink = p->sinks ? p->sinks[h] : 0.f;
          if (p->sinks && sink > m) m = sink;
          double sum = tab->exp_sum(w + a, m, w + a, b - a);
          if (p->sinks) sum += (double)expf(sink - m);
          tab->scale(w + a, (float)(1.0 / sum), b - a);
          if (half) tab->round_f16(w + a, b - a);
          st.m[v] = 0, st.l[v] = WHOLE;
        } else {
          st.m[v] = m;
          st.l[v] = tab->exp_sum(w + a, m, w + a, b - a);
        }
        if (a > start) memset(w + start, 0, (size_t)(a - start) * sizeof(float));
        if (hi > b) memset(w + b, 0, (size_t)(hi - b) * sizeof(float));
      }
    }
  }
  memset(st.acc, 0, (size_t)(n_vec * d) * sizeof(float));
  for (int64_t k = 0; k < it->nkv; k++) {
    const int64_t first_row = (it->kvh0 + k) * p->v_capacity;
    if (k + 1 < it->nkv) prefetch_stretch(j->vc + (first_row + p->v_capacity + start - lane0) * head_bytes, hi - start + lane0, head_bytes);
    const float *wk = scores + k * nv * SCORE_STRIDE - lo;
    float *acc = st.acc + k * nv * d;
    if (tiles) {
      tab->wsum_tiles_q8(j->vc + (first_row + start - lane0) * head_bytes, (int)lane0, hi - start, wk + start, SCORE_STRIDE, nv, d, acc);
      continue;
    }
    if (q8) {
      /* All of the chunk's rows in one call: the kernel folds the rows' block scales into the
         weights just ahead of their sums, 16 rows at a time. */
      tab->wsum_rows_q8(j->vc + (first_row + start) * head_bytes, head_bytes, hi - start, wk + start, SCORE_STRIDE, nv, d, acc);
      continue;
    }
    for (int64_t i0 = start; i0 < hi; i0 += ROW_BLOCK) {
      const int64_t rows = hi - i0 < ROW_BLOCK ? hi - i0 : ROW_BLOCK, at = first_row + i0;
      if (half) {
        tab->wsum_rows_f16((const uint16_t *)j->vc + at * d, d, rows, wk + i0, SCORE_STRIDE, nv, d, acc);
      } else {
        tab->wsum_rows_f32((const float *)j->vc + at * d, d, rows, wk + i0, SCORE_STRIDE, nv, d, acc);
      }
    }
  }
}

/*
 * Folds a chunk's state (m, l, acc) into a running one (*rm, *rl, racc): both rescaled to the larger
 * maximum. An empty running state (rl 0) takes the chunk's as it is, as it does a WHOLE state (the
 * vector's only chunk); an empty chunk changes nothing.
 */
static void merge_state(float *rm, double *rl, float *racc, float m, double l, const float *acc, int64_t d) {
  if (l == 0) return;
  if (*rl == 0 || l == WHOLE) {
    *rm = m, *rl = l;
    memcpy(racc, acc, (size_t)d * sizeof(float));
    return;
  }
  const float mx = *rm > m ? *rm : m, a = expf(*rm - mx), b = expf(m - mx);
  *rl = *rl * a + l * b;
  for (int64_t i = 0; i < d; i++) racc[i] = racc[i] * a + acc[i] * b;
  *rm = mx;
}

/* out = acc / l, after the head's sink (if any) joined the softmax as an entry without a value. */
static void finish_vector(const cairn_attention_params *p, int64_t h, float m, double l, const float *acc, float *out) {
  const int64_t d = p->head_dim;
  if (l == WHOLE) {
    if (out != acc) memcpy(out, acc, (size_t)d * sizeof(float));
    return;
  }
  float a = 1.f;
  if (p->sinks) {
    const float sink = p->sinks[h], mx = m > sink ? m : sink;
    a = expf(m - mx);
    l = l * a + (double)expf(sink - mx);
  }
  const float inv = (float)(1.0 / l);
  for (int64_t i = 0; i < d; i++) out[i] = (acc[i] * a) * inv;
}

/* Item number -> its geometry; with the chunk split, also its chunk. */
static attn_item item_of(const attn_job *j, int64_t item, int64_t *chunk) {
  const cairn_attention_params *p = j->p;
  const int64_t group = p->n_head / p->n_kv_head, groups = (p->n_kv_head + j->span - 1) / j->span;
  const int64_t per_chunk = groups * j->slices, per_tile = per_chunk * (j->split ? j->n_chunks : 1);
  const int64_t tile = j->tiles - 1 - item / per_tile; /* last tokens first: they cost most */
  const int64_t in_tile = item % per_tile;
  *chunk = j->split ? (j->head_major ? in_tile % j->n_chunks : in_tile / per_chunk) : 0;
  /* The item's (KV heads, query heads) within its chunk. */
  const int64_t heads = j->head_major ? in_tile / j->n_chunks : in_tile % per_chunk;
  attn_item it;
  it.t0 = tile * j->tile;
  it.nt = p->n_tokens - it.t0 < j->tile ? p->n_tokens - it.t0 : j->tile;
  it.kvh0 = (heads / j->slices) * j->span;
  it.nkv = p->n_kv_head - it.kvh0 < j->span ? p->n_kv_head - it.kvh0 : j->span;
  it.hs = (heads % j->slices) * j->slice;
  it.nh = group - it.hs < j->slice ? group - it.hs : j->slice;
  return it;
}

/* Scratch of one thread: scores of one chunk, queries, a chunk's state and a running state. */
static size_t share_bytes(const cairn_attention_params *p, int64_t tile, int64_t slice, int64_t span) {
  const size_t vectors = (size_t)(tile * slice * span), d = (size_t)p->head_dim;
  /* A Q8_0 cache also holds the quantized queries. */
  const size_t quantized = cairn_kv_is_q8(p->kv_type) ? vectors * (size_t)cairn_kv_bytes(CAIRN_KV_Q8_0, p->head_dim) : 0;
  const size_t floats = vectors * (SCORE_STRIDE + 3 * d + 2);
  return (2 * vectors * sizeof(double) + floats * sizeof(float) + quantized + 63) & ~(size_t)63;
}

/*
 * The next item for thread ith. Split items go in runs of consecutive chunks, a thread first taking
 * its own run front to back, so what the row kernels prefetch past a chunk's end is its next
 * chunk rather than another thread's; a thread whose run is done helps with the others'. A claim
 * takes a share of what is left of a run (down to one item at its end) into `range`, the items the
 * thread has claimed and not yet begun: a locked add per item, which waits for the thread's memory
 * requests in flight, took 5% of a decode token's attention.
 */
static int64_t claim(attn_job *j, int ith, int64_t range[2]) {
  if (range[0] < range[1]) return range[0]++;
  if (!j->split) return atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
  for (int r = 0; r < j->runs; r++) {
    const int run = (ith + r) % j->runs;
    const int64_t first = j->n_items * run / j->runs, end = j->n_items * (run + 1) / j->runs;
    const int64_t left = end - first - atomic_load_explicit(&j->run_next[run].next, memory_order_relaxed);
    if (left <= 0) continue;
    const int64_t take = left / (2 * j->runs) > 1 ? left / (2 * j->runs) : 1;
    const int64_t item = first + atomic_fetch_add_explicit(&j->run_next[run].next, take, memory_order_relaxed);
    if (item < end) {
      range[0] = item + 1;
      range[1] = item + take < end ? item + take : end;
      return item;
    }
  }
  return j->n_items;
}

static void attention_share(void *ctx, int ith, int nth) {
  (void)nth;
  attn_job *j = ctx;
  const cairn_attention_params *p = j->p;
  const int64_t d = p->head_dim, group = p->n_head / p->n_kv_head;
  const size_t vectors = (size_t)(j->tile * j->slice * j->span);
  uint8_t *mine = j->scratch + (size_t)ith * j->per_share;
  double *cl = (double *)mine, *rl = cl + vectors;
  float *scores = (float *)(rl + vectors);
  float *qf = scores + vectors * SCORE_STRIDE;
  float *cacc = qf + vectors * d, *racc = cacc + vectors * d;
  float *cm = racc + vectors * d, *rm = cm + vectors;
  uint8_t *qq = (uint8_t *)(rm + vectors);
  /* The geometry whose queries qf/qq hold: the chunks of a decode token share theirs, and
     converting them (rounding or quantizing) anew for every chunk cost a tenth of the call. */
  attn_item loaded = {-1, 0, 0, 0, 0, 0};
  int64_t range[2] = {0, 0};
  for (;;) {
    const int64_t item = claim(j, ith, range);
    if (item >= j->n_items) return;
    int64_t c;
    const attn_item it = item_of(j, item, &c);
    const int64_t nv = it.nt * it.nh;
    if (memcmp(&it, &loaded, sizeof it) != 0) {
      load_queries(j, &it, qf, qq);
      loaded = it;
    }
    if (j->split) {
      chunk_state(j, &it, c, qf, qq, scores, (attn_state){cm, cl, cacc});
      /* Into the buffer, [token][head][chunk]. */
      for (int64_t k = 0; k < it.nkv; k++) {
        for (int64_t ti = 0; ti < it.nt; ti++) {
          for (int64_t g = 0; g < it.nh; g++) {
            const int64_t v = item_vector(&it, k, ti, g), h = (it.kvh0 + k) * group + it.hs + g;
            const int64_t s = ((it.t0 + ti) * p->n_head + h) * j->n_chunks + c;
            j->chunks.m[s] = cm[v], j->chunks.l[s] = cl[v];
            if (cl[v] != 0) memcpy(j->chunks.acc + s * d, cacc + v * d, (size_t)d * sizeof(float));
          }
        }
      }
      continue;
    }
    const int64_t n_vec = it.nkv * nv;
    for (int64_t v = 0; v < n_vec; v++) rm[v] = -INFINITY, rl[v] = 0;
    const int64_t n_last = p->pos0 + it.t0 + it.nt, first_all = visible_from(p, p->pos0 + it.t0 + 1);
    for (int64_t ch = first_all / ATTN_CHUNK; ch * ATTN_CHUNK < n_last; ch++) {
      chunk_state(j, &it, ch, qf, qq, scores, (attn_state){cm, cl, cacc});
      for (int64_t v = 0; v < n_vec; v++) merge_state(rm + v, rl + v, racc + v * d, cm[v], cl[v], cacc + v * d, d);
    }
    for (int64_t k = 0; k < it.nkv; k++) {
      for (int64_t ti = 0; ti < it.nt; ti++) {
        for (int64_t g = 0; g < it.nh; g++) {
          const int64_t v = item_vector(&it, k, ti, g), h = (it.kvh0 + k) * group + it.hs + g;
          finish_vector(p, h, rm[v], rl[v], racc + v * d, j->out + ((it.t0 + ti) * p->n_head + h) * d);
        }
      }
    }
  }
}

/* The second pass of the chunk split: each query vector's chunk states merged in chunk order. */
static void merge_share(void *ctx, int ith, int nth) {
  attn_job *j = ctx;
  const cairn_attention_params *p = j->p;
  const int64_t d = p->head_dim, n_vec = p->n_tokens * p->n_head;
  const int64_t v0 = n_vec * ith / nth, v1 = n_vec * (ith + 1) / nth;
  for (int64_t v = v0; v < v1; v++) {
    float m = -INFINITY;
    double l = 0;
    float *acc = j->out + v * d;
    const int64_t s0 = v * j->n_chunks;
    for (int64_t c = 0; c < j->n_chunks; c++) merge_state(&m, &l, acc, j->chunks.m[s0 + c], j->chunks.l[s0 + c], j->chunks.acc + (s0 + c) * d, d);
    finish_vector(p, v % p->n_head, m, l, acc, acc);
  }
}

/* Multiply-adds of one sequence's attention: two passes over the visible cache rows per query head. */
static double attention_work(const cairn_attention_params *p) {
  return 2.0 * (double)p->n_tokens * p->n_head * (double)(p->pos0 + 1 + p->n_tokens / 2) * p->head_dim;
}

/* cairn_attention on at most max_threads threads (1: on the calling thread alone, no pool). */
static int attention_run(const float *q, const void *k_cache, const void *v_cache, const cairn_attention_params *p,
                         float *out, int max_threads) {
  const int64_t group = p->n_head / p->n_kv_head, d = p->head_dim;
  int nth = attention_work(p) < MIN_PARALLEL_WORK ? 1 : cairn_pool_threads();
  if (nth > max_threads) nth = max_threads;
  /* Tokens per tile: as many as keep the tile's scores small, while every thread gets items. */
  int64_t tile = p->n_tokens < MAX_TILE ? p->n_tokens : MAX_TILE;
  while (tile > 1 && (size_t)(tile * group * SCORE_STRIDE) * sizeof(float) > TILE_SCORE_BYTES) tile = (tile + 1) / 2;
  while (tile > 1 && ((p->n_tokens + tile - 1) / tile) * p->n_kv_head < 2 * (int64_t)nth) tile = (tile + 1) / 2;
  const int64_t tiles = (p->n_tokens + tile - 1) / tile;
  const int64_t n_chunks = (p->pos0 + p->n_tokens + ATTN_CHUNK - 1) / ATTN_CHUNK;
  /* One tile (a decode token), or too few (tile, KV head) items to go round: split the cache into
     its chunks instead, each item every KV head of a chunk's rows (fewer heads per item only when
     chunks are few too), when the chunks' states fit. */
  const size_t state_bytes = (size_t)(p->n_tokens * p->n_head * n_chunks) * ((size_t)d * sizeof(float) + sizeof(float) + sizeof(double));
  const int split = nth > 1 && n_chunks > 1 && state_bytes <= MAX_STATE_BYTES && (tiles == 1 || tiles * p->n_kv_head < 2 * (int64_t)nth);
  int64_t span = 1, slice = group;
  /* A decode token: an item a KV head's rows of a chunk (see the file's comment). */
  const int head_major = split && tiles == 1;
  if (split && !head_major) {
    span = p->n_kv_head;
    while (span > 1 && (size_t)(span * tile * group * SCORE_STRIDE) * sizeof(float) > TILE_SCORE_BYTES) span = (span + 1) / 2;
    while (span > 1 && tiles * n_chunks * ((p->n_kv_head + span - 1) / span) < 2 * (int64_t)nth) span = (span + 1) / 2;
  } else {
    /* Split a KV head's query heads into slices only when there are fewer items than threads (a
       decode token's items are its chunks too): every slice converts the head's cache rows again,
       which with one KV head of 256 at 4k read the cache at a third of the rate (225 against 75
       us), and at 511 rows asking for two items a thread instead of one took 29 against 18 us. */
    const int64_t per_slice = tiles * p->n_kv_head * (head_major ? n_chunks : 1);
    while (slice > 1 && per_slice * ((group + slice - 1) / slice) < (int64_t)nth) slice = (slice + 1) / 2;
  }
  const int64_t spans = (p->n_kv_head + span - 1) / span, slices = (group + slice - 1) / slice;
  const int64_t n_items = tiles * spans * slices * (split ? n_chunks : 1);
  int item_threads = nth > n_items ? (int)n_items : nth;
  const size_t per_share = share_bytes(p, tile, slice, span);
  const size_t states = split ? state_bytes + 64 : 0;
  uint8_t *buf = scratch(per_share * (size_t)item_threads + states);
  if (!buf) return -1;
  const int runs = item_threads < MAX_RUNS ? item_threads : MAX_RUNS;
  attn_job j = {cairn_ops_active(), q, k_cache, v_cache, p, out, buf, per_share, {0}, n_chunks, split, head_major, slice, slices, span, tile, tiles, n_items, 0, runs, {{0}}};
  if (split) {
    const size_t n_states = (size_t)(p->n_tokens * p->n_head * n_chunks);
    uint8_t *sb = buf + per_share * (size_t)item_threads;
    j.chunks.l = (double *)sb;
    j.chunks.m = (float *)(j.chunks.l + n_states);
    j.chunks.acc = j.chunks.m + n_states;
  }
  if (item_threads <= 1) {
    attention_share(&j, 0, 1);
    if (split) merge_share(&j, 0, 1);
    return 0;
  }
  cairn_pool_run_n(attention_share, &j, item_threads);
  if (split) cairn_pool_run_n(merge_share, &j, nth);
  return 0;
}

int cairn_attention(const float *q, const void *k_cache, const void *v_cache, const cairn_attention_params *p,
                    float *out) {
  return attention_run(q, k_cache, v_cache, p, out, 1 << 30);
}

/* ---- several sequences in one call ---- */

/*
 * A span whose attention does at least this many multiply-adds runs on every thread by itself (a
 * prompt, a token deep in its context); smaller ones each run whole on one thread, side by side.
 */
#define SPAN_ALONE_WORK (4.0 * 1024 * 1024)

/* A span that shares the threads, with its work (the order they are taken in: largest first). */
typedef struct {
  double work;
  int64_t span;
} span_work;

static int by_work_descending(const void *a, const void *b) {
  const double x = ((const span_work *)a)->work, y = ((const span_work *)b)->work;
  return x < y ? 1 : x > y ? -1 : 0;
}

typedef struct {
  const cairn_attention_span *spans;
  const cairn_attention_params *p;
  const span_work *order;
  int64_t n;
  atomic_llong next;
  atomic_int failed;
} spans_job;

/* The span's attention parameters: the call's, with its own tokens, position and capacities. */
static cairn_attention_params span_params(const cairn_attention_params *p, const cairn_attention_span *s) {
  cairn_attention_params sp = *p;
  sp.n_tokens = s->n_tokens;
  sp.pos0 = s->pos0;
  sp.k_capacity = s->k_capacity;
  sp.v_capacity = s->v_capacity;
  return sp;
}

/* Stores a span's new rows and runs its attention on at most max_threads threads. */
static int span_run(const cairn_attention_params *p, const cairn_attention_span *s, int max_threads) {
  const cairn_attention_params sp = span_params(p, s);
  /* Inside a pool job the store runs on the calling thread (a nested pool call does: pool.c). */
  cairn_store_kv(s->k, s->v, s->k_cache, s->v_cache, p->kv_type, p->n_kv_head * p->head_dim, p->n_kv_head, s->k_capacity,
                 s->v_capacity, s->pos0, s->n_tokens);
  return attention_run(s->q, s->k_cache, s->v_cache, &sp, s->out, max_threads);
}

static void spans_share(void *ctx, int ith, int nth) {
  (void)ith, (void)nth;
  spans_job *j = ctx;
  for (;;) {
    const int64_t i = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
    if (i >= j->n) return;
    if (span_run(j->p, &j->spans[j->order[i].span], 1) != 0) atomic_store_explicit(&j->failed, 1, memory_order_relaxed);
  }
}

int cairn_attention_spans(const cairn_attention_span *spans, int64_t n_spans, const cairn_attention_params *p) {
  const int nth = cairn_pool_threads();
  span_work *order = scratch_of(SCRATCH_SPANS, (size_t)n_spans * sizeof(span_work) + 1);
  if (!order) return -1;
  /* Large spans first, each on every thread; the small ones then shared out, largest first. */
  int64_t n_small = 0;
  for (int64_t i = 0; i < n_spans; i++) {
    if (spans[i].n_tokens == 0) continue;
    const cairn_attention_params sp = span_params(p, &spans[i]);
    const double work = attention_work(&sp);
    if (nth <= 1 || work >= SPAN_ALONE_WORK) {
      if (span_run(p, &spans[i], 1 << 30) != 0) return -1;
    } else {
      order[n_small++] = (span_work){work, i};
    }
  }
  if (n_small == 0) return 0;
  qsort(order, (size_t)n_small, sizeof *order, by_work_descending);
  spans_job j = {spans, p, order, n_small, 0, 0};
  cairn_pool_run_n(spans_share, &j, n_small < nth ? (int)n_small : nth);
  return atomic_load(&j.failed) ? -1 : 0;
}
