/*
 * Causal grouped-query attention over one sequence's KV cache, computed as llama.cpp's CPU path
 * does without flash attention: kq = k.q (q rounded to f16 for an F16 cache), soft_max_ext with
 * the scale, then kqv (weights rounded to f16 for an F16 cache), all accumulated in f32.
 *
 * The query heads that share a KV head are processed together over blocks of cache rows, so each
 * row is read from memory and converted once per group rather than once per head. Work items are
 * (token, KV head, slice of its query heads), claimed from a counter heaviest first (later
 * tokens see more positions), so threads stay busy to the end.
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

/* Element operations below which one thread does the whole op. */
#define MIN_PARALLEL_WORK 32768

/* ---- grow-only scratch of the calling thread, freed when that thread exits ---- */

typedef struct {
  void *p;
  size_t cap;
} scratch_buf;

static pthread_key_t g_scratch_key;
static pthread_once_t g_scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *v) {
  scratch_buf *s = v;
  free(s->p);
  free(s);
}

static void scratch_key_init(void) { pthread_key_create(&g_scratch_key, scratch_free); }

static void *scratch(size_t bytes) {
  pthread_once(&g_scratch_once, scratch_key_init);
  scratch_buf *s = pthread_getspecific(g_scratch_key);
  if (!s) {
    s = calloc(1, sizeof *s);
    if (!s || pthread_setspecific(g_scratch_key, s) != 0) {
      free(s);
      return NULL;
    }
  }
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

/* ---- the job ---- */

/*
 * Floats between the score rows of two heads: the positions rounded up to a cache line, plus one
 * more line so rows of a power-of-two length do not alias in the cache (or in store forwarding).
 */
static int64_t score_stride(const cairn_attention_params *p) { return ((p->pos0 + p->n_tokens + 15) & ~15) + 16; }

typedef struct {
  const cairn_ops_table *t;
  const float *q;
  const uint8_t *kc, *vc;
  const cairn_attention_params *p;
  float *out;
  uint8_t *scratch;
  size_t per_share;
  int64_t slice;       /* query heads per item */
  int64_t slices;      /* items per (tile, KV head) */
  int64_t span;        /* KV heads per item */
  int64_t tile;        /* tokens per item */
  int64_t tiles;
  int64_t n_items;
  atomic_llong next;   /* next unclaimed item */
} attn_job;

/* Cache rows per block: a block of K or V stays in L1 while the heads of a slice use it. */
#define ROW_BLOCK 64
/* Most tokens per tile, and the most bytes of scores one tile may hold. */
#define MAX_TILE 16
#define TILE_SCORE_BYTES (2u << 20)

static int64_t visible_from(const cairn_attention_params *p, int64_t n_ctx) {
  return p->window > 0 && n_ctx > p->window ? n_ctx - p->window : 0;
}

/*
 * Tokens [t0, t0 + nt) against KV heads [kvh0, kvh0 + nkv): for each of those KV heads, its query
 * heads of slice `si`. The tile's query vectors go through each block of K and V rows together, so
 * a prompt read at depth reads the cache once per tile rather than once per token; and the KV heads
 * of an item are read side by side in each cache row (a row holds every KV head), so one decode
 * token's threads stream contiguous stretches of the cache rather than a head's slice of every
 * row. Each vector's arithmetic is the same as alone (the rows a token does not see get weight 0,
 * which adds exact zeros), so results depend neither on the tiling nor on the grouping.
 */
static void attend_tile(attn_job *j, int64_t t0, int64_t nt, int64_t kvh0, int64_t nkv, int64_t si, float *scores, float *qf,
                        float *acc, uint8_t *qq) {
  const cairn_attention_params *p = j->p;
  const cairn_ops_table *tab = j->t;
  const int64_t d = p->head_dim, stride = score_stride(p), group = p->n_head / p->n_kv_head;
  const int64_t hs = si * j->slice, nh = group - hs < j->slice ? group - hs : j->slice, nv = nt * nh;
  const int64_t row = p->n_kv_head * d;
  const int half = p->kv_type == CAIRN_KV_F16, q8 = p->kv_type == CAIRN_KV_Q8_0;
  /* Bytes of a cache row (every KV head) and of one KV head's part of it. */
  const int64_t row_bytes = cairn_kv_bytes(p->kv_type, row), head_bytes = cairn_kv_bytes(p->kv_type, d);
  /* Each KV head's query vectors side by side: token by token, its heads of the slice. */
  for (int64_t k = 0; k < nkv; k++) {
    const int64_t h0 = (kvh0 + k) * group + hs;
    for (int64_t ti = 0; ti < nt; ti++) memcpy(qf + (k * nt + ti) * nh * d, j->q + ((t0 + ti) * p->n_head + h0) * d, (size_t)(nh * d) * sizeof(float));
  }
  /* kq: with an F16 cache ggml converts q to f16 first (kept here as f32 values). */
  if (half) tab->round_f16(qf, nkv * nv * d);
  if (q8) quant_encode_blocks(CAIRN_KV_Q8_0, qf, qq, nkv * nv * d / QK);
  const int64_t n_last = p->pos0 + t0 + nt, first_all = visible_from(p, p->pos0 + t0 + 1);
  for (int64_t i0 = first_all; i0 < n_last; i0 += ROW_BLOCK) {
    const int64_t rows = n_last - i0 < ROW_BLOCK ? n_last - i0 : ROW_BLOCK;
    for (int64_t k = 0; k < nkv; k++) {
      const int64_t off = i0 * row + (kvh0 + k) * d;
      float *sk = scores + k * nv * stride + i0;
      if (q8) {
        tab->dot_rows_q8(j->kc + i0 * row_bytes + (kvh0 + k) * head_bytes, row_bytes, rows, qq + k * nv * head_bytes, nv, d, p->scale, sk, stride);
      } else if (half) {
        tab->dot_rows_f16((const uint16_t *)j->kc + off, row, rows, qf + k * nv * d, nv, d, p->scale, sk, stride);
      } else {
        tab->dot_rows_f32((const float *)j->kc + off, row, rows, qf + k * nv * d, nv, d, p->scale, sk, stride);
      }
    }
  }
  /* soft_max_ext over each token's visible rows: exp(s - max) summed in f64, each weight e * f32(1/sum);
     f16 weights for an F16 V. A sink joins the maximum and adds expf(sink - max) to the sum, unscaled.
     Rows a token does not see (later in the tile, or out of its window) get weight 0. */
  for (int64_t k = 0; k < nkv; k++) {
    const int64_t h0 = (kvh0 + k) * group + hs;
    for (int64_t ti = 0; ti < nt; ti++) {
      const int64_t n_ctx = p->pos0 + t0 + ti + 1, first = visible_from(p, n_ctx), n_vis = n_ctx - first;
      for (int64_t g = 0; g < nh; g++) {
        float *v = scores + ((k * nt + ti) * nh + g) * stride;
        float *s = v + first;
        float m = tab->max(s, n_vis);
        const float sink = p->sinks ? p->sinks[h0 + g] : 0.f;
        if (p->sinks && sink > m) m = sink;
        double sum = tab->exp_sum(s, m, s, n_vis);
        if (p->sinks) sum += (double)expf(sink - m);
        tab->scale(s, (float)(1.0 / sum), n_vis);
        if (half) tab->round_f16(s, n_vis);
        if (first > first_all) memset(v + first_all, 0, (size_t)(first - first_all) * sizeof(float));
        if (n_last > n_ctx) memset(v + n_ctx, 0, (size_t)(n_last - n_ctx) * sizeof(float));
      }
    }
  }
  /* kqv */
  memset(acc, 0, (size_t)(nkv * nv * d) * sizeof(float));
  for (int64_t i0 = first_all; i0 < n_last; i0 += ROW_BLOCK) {
    const int64_t rows = n_last - i0 < ROW_BLOCK ? n_last - i0 : ROW_BLOCK;
    for (int64_t k = 0; k < nkv; k++) {
      const int64_t off = i0 * row + (kvh0 + k) * d;
      const float *wk = scores + k * nv * stride + i0;
      if (q8) {
        tab->wsum_rows_q8(j->vc + i0 * row_bytes + (kvh0 + k) * head_bytes, row_bytes, rows, wk, stride, nv, d, acc + k * nv * d);
      } else if (half) {
        tab->wsum_rows_f16((const uint16_t *)j->vc + off, row, rows, wk, stride, nv, d, acc + k * nv * d);
      } else {
        tab->wsum_rows_f32((const float *)j->vc + off, row, rows, wk, stride, nv, d, acc + k * nv * d);
      }
    }
  }
  for (int64_t k = 0; k < nkv; k++) {
    const int64_t h0 = (kvh0 + k) * group + hs;
    for (int64_t ti = 0; ti < nt; ti++) memcpy(j->out + ((t0 + ti) * p->n_head + h0) * d, acc + (k * nt + ti) * nh * d, (size_t)(nh * d) * sizeof(float));
  }
}

/* Scratch of one thread: the scores, query vectors and outputs of `span` KV heads' tiles. */
static size_t share_bytes(const cairn_attention_params *p, int64_t tile, int64_t slice, int64_t span) {
  const size_t vectors = (size_t)(tile * slice * span);
  /* A Q8_0 cache also holds the quantized queries. */
  const size_t quantized = p->kv_type == CAIRN_KV_Q8_0 ? vectors * (size_t)cairn_kv_bytes(CAIRN_KV_Q8_0, p->head_dim) : 0;
  return (vectors * (size_t)score_stride(p) * sizeof(float) + 2 * vectors * (size_t)p->head_dim * sizeof(float) + quantized + 63) & ~(size_t)63;
}

static void attention_share(void *ctx, int ith, int nth) {
  (void)nth;
  attn_job *j = ctx;
  const cairn_attention_params *p = j->p;
  uint8_t *mine = j->scratch + (size_t)ith * j->per_share;
  const size_t vectors = (size_t)(j->tile * j->slice * j->span);
  float *scores = (float *)mine;
  float *qf = scores + vectors * (size_t)score_stride(p);
  float *acc = qf + vectors * (size_t)p->head_dim;
  /* Q8_0 cache: the quantized queries (34/32 of a byte per element). */
  uint8_t *qq = (uint8_t *)(acc + vectors * (size_t)p->head_dim);
  const int64_t groups = (p->n_kv_head + j->span - 1) / j->span, per_tile = groups * j->slices;
  for (;;) {
    const int64_t item = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
    if (item >= j->n_items) return;
    const int64_t tile = j->tiles - 1 - item / per_tile; /* last tokens first: they cost most */
    const int64_t t0 = tile * j->tile, nt = p->n_tokens - t0 < j->tile ? p->n_tokens - t0 : j->tile;
    const int64_t kvh0 = ((item % per_tile) / j->slices) * j->span, si = item % j->slices;
    const int64_t nkv = p->n_kv_head - kvh0 < j->span ? p->n_kv_head - kvh0 : j->span;
    attend_tile(j, t0, nt, kvh0, nkv, si, scores, qf, acc, qq);
  }
}

int cairn_attention(const float *q, const void *k_cache, const void *v_cache, const cairn_attention_params *p,
                    float *out) {
  const int64_t group = p->n_head / p->n_kv_head;
  /* Two passes over the visible cache rows per query head. */
  const double work = 2.0 * (double)p->n_tokens * p->n_head * (double)(p->pos0 + 1 + p->n_tokens / 2) * p->head_dim;
  int nth = work < MIN_PARALLEL_WORK ? 1 : cairn_pool_threads();
  /* Tokens per tile: as many as keep the tile's scores small, while every thread gets items. */
  int64_t tile = p->n_tokens < MAX_TILE ? p->n_tokens : MAX_TILE;
  while (tile > 1 && (size_t)(tile * group * score_stride(p)) * sizeof(float) > TILE_SCORE_BYTES) tile = (tile + 1) / 2;
  while (tile > 1 && ((p->n_tokens + tile - 1) / tile) * p->n_kv_head < 2 * (int64_t)nth) tile = (tile + 1) / 2;
  const int64_t tiles = (p->n_tokens + tile - 1) / tile;
  /* One tile (a decode token): each thread takes a run of KV heads, read side by side in every
     cache row, as long as the scores of the run stay small. */
  int64_t span = 1;
  if (tiles == 1 && p->n_kv_head >= nth) {
    span = (p->n_kv_head + nth - 1) / nth;
    while (span > 1 && (size_t)(span * tile * group * score_stride(p)) * sizeof(float) > TILE_SCORE_BYTES) span = (span + 1) / 2;
  }
  const int64_t spans = (p->n_kv_head + span - 1) / span;
  /* Split a KV head's query heads into slices only when there are too few items to go round. */
  int64_t slice = group;
  while (slice > 1 && tiles * spans * ((group + slice - 1) / slice) < (span > 1 ? (int64_t)nth : 2 * (int64_t)nth)) {
    slice = (slice + 1) / 2;
  }
  const int64_t slices = (group + slice - 1) / slice, n_items = tiles * spans * slices;
  if (nth > n_items) nth = (int)n_items;
  const size_t per_share = share_bytes(p, tile, slice, span);
  uint8_t *buf = scratch(per_share * (size_t)nth);
  if (!buf) return -1;
  attn_job j = {cairn_ops_active(), q, k_cache, v_cache, p, out, buf, per_share, slice, slices, span, tile, tiles, n_items, 0};
  cairn_pool_run_n(attention_share, &j, nth);
  return 0;
}
