/*
 * Drivers of the float kernels: split each op over the thread pool and run the active ISA's
 * primitives (ops_table.h) on each share. Small ops run on the calling thread alone, since
 * waking the workers costs about as much as a few thousand element operations.
 */
#include "ops.h"
#include "quant_codecs.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

#include "cairn.h"
#include "quant_formats.h"
#include "ops_table.h"
#include "pool.h"

/* Element operations below which one thread does the whole op. */
#define MIN_PARALLEL_WORK 32768
/* Element operations worth one more thread. */
#define WORK_PER_THREAD 16384
/* Chunk granularity for elementwise ops, so threads never share a cache line. */
#define CHUNK_ALIGN 16

const cairn_ops_table *cairn_ops_active(void) {
  switch (cairn_isa_active()) {
#if defined(__x86_64__)
    case CAIRN_ISA_AMX: /* AMX adds tile products only: the vector ops are AVX512's */
    case CAIRN_ISA_AVX512: return &cairn_ops_avx512;
    case CAIRN_ISA_AVX2: return &cairn_ops_avx2;
#elif defined(__aarch64__)
    case CAIRN_ISA_NEON: return &cairn_ops_neon;
#endif
    default: return &cairn_ops_scalar;
  }
}

int cairn_kv_tiles_preferred(void) {
#if defined(__x86_64__)
  /* The AVX-512 level's tile kernels (VNNI over the lanes); the others read tiles row by row. */
  return cairn_ops_active() == &cairn_ops_avx512;
#else
  return 0;
#endif
}

static int threads_for(double work) {
  if (work < MIN_PARALLEL_WORK) return 1;
  const double n = work / WORK_PER_THREAD;
  return n > 256 ? 256 : (int)n;
}

/* Share [*begin, *end) of `total` items for share ith of nth, starts rounded up to `align` items. */
static void share(int64_t total, int ith, int nth, int64_t align, int64_t *begin, int64_t *end) {
  int64_t per = (total + nth - 1) / nth;
  per = (per + align - 1) / align * align;
  *begin = per * ith < total ? per * ith : total;
  *end = *begin + per < total ? *begin + per : total;
}

/* ---- rms_norm ---- */

typedef struct {
  const cairn_ops_table *t;
  const float *x, *w;
  float *out;
  int64_t rows, dim;
  float eps;
} rms_job;

static void rms_norm_job(void *ctx, int ith, int nth) {
  const rms_job *j = ctx;
  int64_t r0, r1;
  share(j->rows, ith, nth, 1, &r0, &r1);
  for (int64_t r = r0; r < r1; r++) {
    const float *x = j->x + r * j->dim;
    /* ggml: mean in f32 from the f64 sum, then 1/sqrtf in f32. */
    const float mean = (float)(j->t->sum_squares(x, j->dim) / (double)j->dim);
    const float scale = 1.0f / sqrtf(mean + j->eps);
    j->t->scale_mul(x, scale, j->w, j->out + r * j->dim, j->dim);
  }
}

void cairn_rms_norm(const float *x, const float *w, int64_t rows, int64_t dim, float eps, float *out) {
  rms_job j = {cairn_ops_active(), x, w, out, rows, dim, eps};
  int nth = threads_for((double)rows * dim);
  if (nth > rows) nth = (int)rows;
  cairn_pool_run_n(rms_norm_job, &j, nth);
}

/* ---- rope ---- */

#define ROPE_MAX_DIMS 4096

typedef struct {
  float *x;
  int64_t n_tokens, n_heads, head_dim;
  const int32_t *pos;
  const cairn_rope_params *p;
  float theta_scale;
} rope_job;

/* cos/sin pairs of one position, as ggml's rope cache: theta advances by repeated f32 products. */
static void rope_angles(const rope_job *j, int32_t pos, float *cache) {
  const cairn_rope_params *p = j->p;
  float theta = (float)pos;
  for (int i = 0; i < p->n_rot; i += 2) {
    const float ff = p->freq_factors ? p->freq_factors[i / 2] : 1.0f;
    const float angle = p->freq_scale * (theta / ff);
    cache[i] = cosf(angle);
    cache[i + 1] = sinf(angle);
    theta *= j->theta_scale;
  }
}

static void rope_job_fn(void *ctx, int ith, int nth) {
  const rope_job *j = ctx;
  float cache[ROPE_MAX_DIMS];
  int64_t i0, i1, cached_token = -1;
  share(j->n_tokens * j->n_heads, ith, nth, 1, &i0, &i1);
  const int n_rot = j->p->n_rot, half = n_rot / 2;
  for (int64_t item = i0; item < i1; item++) {
    const int64_t t = item / j->n_heads;
    if (t != cached_token) {
      rope_angles(j, j->pos[t], cache);
      cached_token = t;
    }
    float *x = j->x + item * j->head_dim;
    if (j->p->neox) {
      for (int i = 0; i < half; i++) {
        const float c = cache[2 * i], s = cache[2 * i + 1];
        const float x0 = x[i], x1 = x[i + half];
        x[i] = x0 * c - x1 * s;
        x[i + half] = x0 * s + x1 * c;
      }
    } else {
      for (int i = 0; i < n_rot; i += 2) {
        const float c = cache[i], s = cache[i + 1];
        const float x0 = x[i], x1 = x[i + 1];
        x[i] = x0 * c - x1 * s;
        x[i + 1] = x0 * s + x1 * c;
      }
    }
  }
}

void cairn_rope(float *x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, const int32_t *pos,
                const cairn_rope_params *p) {
  if (p->n_rot > ROPE_MAX_DIMS) return; /* the binding rejects this */
  rope_job j = {x, n_tokens, n_heads, head_dim, pos, p, powf(p->freq_base, -2.0f / (float)p->n_rot)};
  /* Each rotated pair costs about six flops, plus a sin/cos per pair and token. */
  int nth = threads_for(3.0 * (double)n_tokens * n_heads * p->n_rot);
  if (nth > n_tokens * n_heads) nth = (int)(n_tokens * n_heads);
  cairn_pool_run_n(rope_job_fn, &j, nth);
}

/* ---- softmax ---- */

typedef struct {
  const cairn_ops_table *t;
  float *x;
  int64_t rows, cols;
} softmax_job;

/* ggml's soft_max: exp(x - max) summed in f64, then scaled by the f32 of 1/sum. */
static void softmax_row(const cairn_ops_table *t, float *x, int64_t n) {
  const float m = t->max(x, n);
  const double sum = t->exp_sum(x, m, x, n);
  t->scale(x, (float)(1.0 / sum), n);
}

static void softmax_job_fn(void *ctx, int ith, int nth) {
  const softmax_job *j = ctx;
  int64_t r0, r1;
  share(j->rows, ith, nth, 1, &r0, &r1);
  for (int64_t r = r0; r < r1; r++) softmax_row(j->t, j->x + r * j->cols, j->cols);
}

void cairn_softmax(float *x, int64_t rows, int64_t cols) {
  softmax_job j = {cairn_ops_active(), x, rows, cols};
  int nth = threads_for(4.0 * (double)rows * cols);
  if (nth > rows) nth = (int)rows;
  cairn_pool_run_n(softmax_job_fn, &j, nth);
}

/* ---- log-sum-exp ---- */

/* Elements of a row whose exponentials one stack buffer holds at a time. */
#define LSE_CHUNK 1024

double cairn_log_sum_exp(const float *x, int64_t n) {
  const cairn_ops_table *t = cairn_ops_active();
  float buf[LSE_CHUNK] __attribute__((aligned(64)));
  const float m = t->max(x, n);
  double sum = 0.0;
  for (int64_t i = 0; i < n; i += LSE_CHUNK) sum += t->exp_sum(x + i, m, buf, n - i < LSE_CHUNK ? n - i : LSE_CHUNK);
  return (double)m + log(sum);
}

/* ---- gelu table ---- */

static float g_gelu_table[1 << 16];
static pthread_once_t g_gelu_once = PTHREAD_ONCE_INIT;

/* ggml's tanh approximation, in f32 with ggml's operation order. */
static float gelu_f32(float x) {
  const float a = 0.044715f, s = 0.79788456080286535587989211986876f;
  return 0.5f * x * (1.0f + tanhf(s * x * (1.0f + a * x * x)));
}

static void gelu_table_init(void) {
  /* ggml stores gelu(h) as f16 for every f16 input h; we keep the same values as f32. */
  for (uint32_t h = 0; h < (1u << 16); h++) {
    g_gelu_table[h] = quant_half_to_f32(quant_f32_to_half(gelu_f32(quant_half_to_f32((uint16_t)h))));
  }
}

static const float *gelu_table(void) {
  pthread_once(&g_gelu_once, gelu_table_init);
  return g_gelu_table;
}

/* ---- elementwise: swiglu, geglu, add ---- */

typedef enum { EW_SWIGLU, EW_GEGLU, EW_ADD, EW_SWIGLU_OAI } ew_kind;

typedef struct {
  const cairn_ops_table *t;
  ew_kind kind;
  const float *a, *b;
  float *out;
  int64_t n;
  const float *table;
  float alpha, limit; /* swiglu_oai */
} ew_job;

/* ggml's swiglu_oai loop, operation for operation (std::min and std::clamp keep a NaN input). */
static void swiglu_oai_span(const float *g, const float *u, float *y, int64_t n, float alpha, float limit) {
  for (int64_t i = 0; i < n; i++) {
    const float x = limit < g[i] ? limit : g[i];
    const float v = u[i] < -limit ? -limit : limit < u[i] ? limit : u[i];
    const float glu = x / (1.f + expf(alpha * (-x)));
    y[i] = glu * (v + 1.f);
  }
}

static void ew_job_fn(void *ctx, int ith, int nth) {
  const ew_job *j = ctx;
  int64_t i0, i1;
  share(j->n, ith, nth, CHUNK_ALIGN, &i0, &i1);
  if (i0 >= i1) return;
  switch (j->kind) {
    case EW_SWIGLU: j->t->swiglu(j->a + i0, j->b + i0, j->out + i0, i1 - i0); break;
    case EW_GEGLU: j->t->geglu(j->a + i0, j->b + i0, j->out + i0, i1 - i0, j->table); break;
    case EW_ADD: j->t->add(j->a + i0, j->b + i0, j->out + i0, i1 - i0); break;
    case EW_SWIGLU_OAI: swiglu_oai_span(j->a + i0, j->b + i0, j->out + i0, i1 - i0, j->alpha, j->limit); break;
  }
}

static void run_elementwise(ew_kind kind, const float *a, const float *b, int64_t n, float *out, double cost) {
  ew_job j = {cairn_ops_active(), kind, a, b, out, n, NULL, 0, 0};
  if (kind == EW_GEGLU) j.table = gelu_table();
  cairn_pool_run_n(ew_job_fn, &j, threads_for(cost * (double)n));
}

void cairn_swiglu(const float *gate, const float *up, int64_t n, float *out) {
  run_elementwise(EW_SWIGLU, gate, up, n, out, 4.0);
}

void cairn_geglu(const float *gate, const float *up, int64_t n, float *out) {
  run_elementwise(EW_GEGLU, gate, up, n, out, 2.0);
}

void cairn_add(const float *a, const float *b, int64_t n, float *out) { run_elementwise(EW_ADD, a, b, n, out, 0.5); }

void cairn_swiglu_oai(const float *gate, const float *up, int64_t n, float alpha, float limit, float *out) {
  ew_job j = {cairn_ops_active(), EW_SWIGLU_OAI, gate, up, out, n, NULL, alpha, limit};
  cairn_pool_run_n(ew_job_fn, &j, threads_for(8.0 * (double)n));
}

/* ---- KV cache store ---- */

typedef struct {
  const cairn_ops_table *t;
  const float *k, *v;
  uint8_t *kc, *vc;
  int kv_type;
  int64_t row_elems, n_kv_head, k_capacity, v_capacity, pos0, n_tokens;
} store_job;

/*
 * One head's row of nb blocks into lane r of its tile (ops.h CAIRN_KV_Q8_0_TILES): quantized as a
 * Q8_0 row is, then a key's quants transposed by dwords and + 128, a value's kept together.
 */
static void store_tile_row(const float *src, uint8_t *tile, int r, int64_t nb, int is_v) {
  block_q8_0 blk[8];
  for (int64_t b0 = 0; b0 < nb; b0 += 8) {
    const int64_t n = nb - b0 < 8 ? nb - b0 : 8;
    quant_encode_blocks(CAIRN_KV_Q8_0, src + b0 * QK, blk, n);
    for (int64_t i = 0; i < n; i++) {
      const int64_t b = b0 + i;
      memcpy(tile + 512 * nb + 32 * b + 2 * r, &blk[i].d, 2);
      if (is_v) {
        memcpy(tile + (int64_t)r * QK * nb + b * QK, blk[i].qs, QK);
        continue;
      }
      for (int w = 0; w < QK / 4; w++) {
        uint8_t *o = tile + (b * (QK / 4) + w) * 64 + 4 * r;
        for (int c = 0; c < 4; c++) o[c] = (uint8_t)blk[i].qs[4 * w + c] ^ 0x80;
      }
    }
  }
}

static void store_job_fn(void *ctx, int ith, int nth) {
  const store_job *j = ctx;
  int64_t r0, r1;
  /* Rows of k then rows of v, as one list of 2 * n_tokens copies. */
  share(2 * j->n_tokens, ith, nth, 1, &r0, &r1);
  const int64_t head_elems = j->row_elems / j->n_kv_head;
  const size_t head_bytes = (size_t)cairn_kv_bytes(j->kv_type, head_elems);
  for (int64_t r = r0; r < r1; r++) {
    const int is_v = r >= j->n_tokens;
    const int64_t t = is_v ? r - j->n_tokens : r, capacity = is_v ? j->v_capacity : j->k_capacity;
    for (int64_t h = 0; h < j->n_kv_head; h++) {
      const float *src = (is_v ? j->v : j->k) + t * j->row_elems + h * head_elems;
      const int64_t pos = j->pos0 + t;
      if (j->kv_type == CAIRN_KV_Q8_0_TILES) {
        uint8_t *tile = (is_v ? j->vc : j->kc) + (size_t)(h * capacity + (pos & ~(int64_t)(CAIRN_KV_TILE_ROWS - 1))) * head_bytes;
        store_tile_row(src, tile, (int)(pos & (CAIRN_KV_TILE_ROWS - 1)), head_elems / QK, is_v);
        continue;
      }
      uint8_t *dst = (is_v ? j->vc : j->kc) + (size_t)(h * capacity + pos) * head_bytes;
      if (j->kv_type == CAIRN_KV_Q8_0) {
        quant_encode_blocks(CAIRN_KV_Q8_0, src, dst, head_elems / 32);
      } else if (j->kv_type == CAIRN_KV_F16) {
        j->t->to_f16(src, (uint16_t *)dst, head_elems);
      } else {
        memcpy(dst, src, (size_t)head_elems * 4);
      }
    }
  }
}

void cairn_store_kv(const float *k, const float *v, void *k_cache, void *v_cache, int kv_type, int64_t row_elems,
                    int64_t n_kv_head, int64_t k_capacity, int64_t v_capacity, int64_t pos0, int64_t n_tokens) {
  store_job j = {cairn_ops_active(), k, v, k_cache, v_cache, kv_type, row_elems, n_kv_head, k_capacity, v_capacity, pos0, n_tokens};
  int nth = threads_for(2.0 * (double)n_tokens * row_elems);
  if (nth > 2 * n_tokens) nth = (int)(2 * n_tokens);
  cairn_pool_run_n(store_job_fn, &j, nth);
}
