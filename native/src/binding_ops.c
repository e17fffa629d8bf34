/*
 * JS functions of the float kernels. Each checks every argument against the shapes it was given
 * (types, lengths, alignment, overlap), then runs the kernel on the typed arrays' memory in place.
 * Signatures follow src/kernels/api.ts.
 */
#include <stdlib.h>
#include <string.h>

#include "binding_args.h"
#include "binding_parts.h"
#include "ops.h"

#define MAX_DIM 2147483647.0

static int obj_prop(napi_env env, napi_value obj, const char *obj_name, const char *key, napi_value *out) {
  napi_valuetype t;
  napi_typeof(env, obj, &t);
  if (t != napi_object) {
    args_throw(env, "BAD_ARGUMENT", "%s must be an object", obj_name);
    return -1;
  }
  return napi_get_named_property(env, obj, key, out) == napi_ok ? 0 : -1;
}

static int prop_int(napi_env env, napi_value obj, const char *obj_name, const char *key, double lo, double hi,
                    int64_t *out) {
  napi_value v;
  char name[96];
  snprintf(name, sizeof name, "%s.%s", obj_name, key);
  return obj_prop(env, obj, obj_name, key, &v) || args_int(env, v, name, lo, hi, out);
}

static int prop_float(napi_env env, napi_value obj, const char *obj_name, const char *key, float *out) {
  napi_value v;
  char name[96];
  snprintf(name, sizeof name, "%s.%s", obj_name, key);
  return obj_prop(env, obj, obj_name, key, &v) || args_float(env, v, name, out);
}

static int is_nullish(napi_env env, napi_value v) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  return t == napi_undefined || t == napi_null;
}

/* rmsNorm(x, weight, rows, dim, eps, out) */
static napi_value rms_norm(napi_env env, napi_callback_info info) {
  napi_value a[6];
  int64_t rows, dim, total;
  float eps, *x, *w, *out;
  if (args_get(env, info, "rmsNorm", 6, a) || args_int(env, a[2], "rows", 0, MAX_DIM, &rows) ||
      args_int(env, a[3], "dim", 1, MAX_DIM, &dim) || args_float(env, a[4], "eps", &eps) ||
      args_mul(env, "rows * dim", rows, dim, &total) || args_f32(env, a[0], "x", total, &x) ||
      args_f32(env, a[1], "weight", dim, &w) || args_f32(env, a[5], "out", total, &out) ||
      args_same_or_disjoint(env, "out", out, "x", x, total * 4)) {
    return NULL;
  }
  if (eps < 0) {
    args_throw(env, "BAD_ARGUMENT", "eps must not be negative");
    return NULL;
  }
  cairn_rms_norm(x, w, rows, dim, eps, out);
  return args_undefined(env);
}

/* Reads api.ts RopeParams for heads of head_dim. */
static int rope_params(napi_env env, napi_value o, int64_t head_dim, cairn_rope_params *p) {
  int64_t n_rot;
  napi_value mode, factors;
  char mode_name[16];
  if (prop_int(env, o, "params", "nRot", 2, 4096, &n_rot) ||
      prop_float(env, o, "params", "freqBase", &p->freq_base) ||
      prop_float(env, o, "params", "freqScale", &p->freq_scale) || obj_prop(env, o, "params", "mode", &mode) ||
      args_string(env, mode, "params.mode", mode_name, sizeof mode_name) ||
      obj_prop(env, o, "params", "freqFactors", &factors)) {
    return -1;
  }
  if (n_rot % 2 != 0 || n_rot > head_dim) {
    args_throw(env, "BAD_ARGUMENT", "params.nRot must be even and at most headDim (%lld), got %lld",
               (long long)head_dim, (long long)n_rot);
    return -1;
  }
  if (!(p->freq_base > 0)) {
    args_throw(env, "BAD_ARGUMENT", "params.freqBase must be positive");
    return -1;
  }
  if (strcmp(mode_name, "normal") == 0) {
    p->neox = 0;
  } else if (strcmp(mode_name, "neox") == 0) {
    p->neox = 1;
  } else {
    args_throw(env, "BAD_ARGUMENT", "params.mode must be 'normal' or 'neox', got '%s'", mode_name);
    return -1;
  }
  p->n_rot = (int)n_rot;
  p->freq_factors = NULL;
  if (!is_nullish(env, factors)) {
    float *ff;
    if (args_f32(env, factors, "params.freqFactors", n_rot / 2, &ff)) return -1;
    p->freq_factors = ff;
  }
  return 0;
}

/* rope(x, nTokens, nHeads, headDim, positions, params) */
static napi_value rope(napi_env env, napi_callback_info info) {
  napi_value a[6];
  int64_t n_tokens, n_heads, head_dim, rows, total;
  float *x;
  int32_t *pos;
  cairn_rope_params p;
  if (args_get(env, info, "rope", 6, a) || args_int(env, a[1], "nTokens", 0, MAX_DIM, &n_tokens) ||
      args_int(env, a[2], "nHeads", 1, MAX_DIM, &n_heads) || args_int(env, a[3], "headDim", 1, MAX_DIM, &head_dim) ||
      args_mul(env, "nTokens * nHeads", n_tokens, n_heads, &rows) ||
      args_mul(env, "nTokens * nHeads * headDim", rows, head_dim, &total) || args_f32(env, a[0], "x", total, &x) ||
      args_i32(env, a[4], "positions", n_tokens, &pos) || rope_params(env, a[5], head_dim, &p)) {
    return NULL;
  }
  cairn_rope(x, n_tokens, n_heads, head_dim, pos, &p);
  return args_undefined(env);
}

/* softmax(x, rows, cols) */
static napi_value softmax(napi_env env, napi_callback_info info) {
  napi_value a[3];
  int64_t rows, cols, total;
  float *x;
  if (args_get(env, info, "softmax", 3, a) || args_int(env, a[1], "rows", 0, MAX_DIM, &rows) ||
      args_int(env, a[2], "cols", 1, MAX_DIM, &cols) || args_mul(env, "rows * cols", rows, cols, &total) ||
      args_f32(env, a[0], "x", total, &x)) {
    return NULL;
  }
  cairn_softmax(x, rows, cols);
  return args_undefined(env);
}

/* logSumExp(x, n): a number */
static napi_value log_sum_exp(napi_env env, napi_callback_info info) {
  napi_value a[2], r;
  int64_t n;
  float *x;
  if (args_get(env, info, "logSumExp", 2, a) || args_int(env, a[1], "n", 1, MAX_DIM, &n) || args_f32(env, a[0], "x", n, &x)) return NULL;
  if (napi_create_double(env, cairn_log_sum_exp(x, n), &r) != napi_ok) return NULL;
  return r;
}

/* Shared checks of (a, b, n, out) where out may alias a or b. */
static int binary_args(napi_env env, napi_callback_info info, const char *fn, const char *a_name, const char *b_name,
                       float **a, float **b, int64_t *n, float **out) {
  napi_value v[4];
  if (args_get(env, info, fn, 4, v) || args_int(env, v[2], "n", 0, ARGS_MAX_SAFE_INT / 4, n) ||
      args_f32(env, v[0], a_name, *n, a) || args_f32(env, v[1], b_name, *n, b) ||
      args_f32(env, v[3], "out", *n, out) || args_same_or_disjoint(env, "out", *out, a_name, *a, *n * 4) ||
      args_same_or_disjoint(env, "out", *out, b_name, *b, *n * 4)) {
    return -1;
  }
  return 0;
}

/* swiglu(gate, up, n, out) */
static napi_value swiglu(napi_env env, napi_callback_info info) {
  float *g, *u, *out;
  int64_t n;
  if (binary_args(env, info, "swiglu", "gate", "up", &g, &u, &n, &out)) return NULL;
  cairn_swiglu(g, u, n, out);
  return args_undefined(env);
}

/* swigluOai(gate, up, n, alpha, limit, out) */
static napi_value swiglu_oai(napi_env env, napi_callback_info info) {
  napi_value v[6];
  float *g, *u, *out, alpha, limit;
  int64_t n;
  if (args_get(env, info, "swigluOai", 6, v) || args_int(env, v[2], "n", 0, ARGS_MAX_SAFE_INT / 4, &n) ||
      args_f32(env, v[0], "gate", n, &g) || args_f32(env, v[1], "up", n, &u) || args_float(env, v[3], "alpha", &alpha) ||
      args_float(env, v[4], "limit", &limit) || args_f32(env, v[5], "out", n, &out) ||
      args_same_or_disjoint(env, "out", out, "gate", g, n * 4) || args_same_or_disjoint(env, "out", out, "up", u, n * 4)) {
    return NULL;
  }
  cairn_swiglu_oai(g, u, n, alpha, limit, out);
  return args_undefined(env);
}

/* geglu(gate, up, n, out) */
static napi_value geglu(napi_env env, napi_callback_info info) {
  float *g, *u, *out;
  int64_t n;
  if (binary_args(env, info, "geglu", "gate", "up", &g, &u, &n, &out)) return NULL;
  cairn_geglu(g, u, n, out);
  return args_undefined(env);
}

/* add(a, b, n, out) */
static napi_value add(napi_env env, napi_callback_info info) {
  float *x, *y, *out;
  int64_t n;
  if (binary_args(env, info, "add", "a", "b", &x, &y, &n, &out)) return NULL;
  cairn_add(x, y, n, out);
  return args_undefined(env);
}

/* KV cache element type: GGML F32 (0), F16 (1) or Q8_0 (8). */
static int kv_type_arg(napi_env env, napi_value v, const char *name, int *out) {
  int64_t t;
  if (args_int(env, v, name, 0, 8, &t)) return -1;
  if (t != CAIRN_KV_F32 && t != CAIRN_KV_F16 && t != CAIRN_KV_Q8_0) {
    args_throw(env, "BAD_ARGUMENT", "%s must be 0 (F32), 1 (F16) or 8 (Q8_0), got %lld", name, (long long)t);
    return -1;
  }
  *out = (int)t;
  return 0;
}

/*
 * An optional flag (undefined or null: false) that a Q8_0 cache is kept in tiles (ops.h): the cache
 * type becomes CAIRN_KV_Q8_0_TILES. A cache of another type cannot be.
 */
static int kv_tiles_arg(napi_env env, napi_value v, const char *name, int *kv_type) {
  if (is_nullish(env, v)) return 0;
  bool tiles;
  if (napi_get_value_bool(env, v, &tiles) != napi_ok) {
    args_throw(env, "BAD_ARGUMENT", "%s must be a boolean", name);
    return -1;
  }
  if (!tiles) return 0;
  if (*kv_type != CAIRN_KV_Q8_0) {
    args_throw(env, "BAD_ARGUMENT", "%s: only a Q8_0 cache (kvType 8) is kept in tiles", name);
    return -1;
  }
  *kv_type = CAIRN_KV_Q8_0_TILES;
  return 0;
}

/* A tiled cache's capacity (its head stride) must be whole tiles. */
static int tiles_capacity_ok(napi_env env, int kv_type, const char *name, int64_t capacity) {
  if (kv_type != CAIRN_KV_Q8_0_TILES || capacity % CAIRN_KV_TILE_ROWS == 0) return 0;
  args_throw(env, "BAD_ARGUMENT", "%s holds %lld positions, and a tiled Q8_0 cache holds a multiple of %d", name, (long long)capacity,
             CAIRN_KV_TILE_ROWS);
  return -1;
}

/* storeKv(k, v, kCache, vCache, kvType, rowElems, pos0, nTokens, nKvHead, kvTiles?) */
static napi_value store_kv(napi_env env, napi_callback_info info) {
  napi_value a[10];
  int64_t row_elems, pos0, n_tokens, n_kv_head, total, cache_elems, k_len, v_len;
  int kv_type;
  float *k, *v;
  uint8_t *kc, *vc;
  /* The tenth argument is optional: N-API fills the arguments not passed with undefined. */
  size_t argc = 10;
  if (napi_get_cb_info(env, info, &argc, a, NULL, NULL) != napi_ok) return NULL;
  if (argc < 9) {
    args_throw(env, "BAD_ARGUMENT", "storeKv expects 9 arguments, got %zu", argc);
    return NULL;
  }
  if (kv_type_arg(env, a[4], "kvType", &kv_type) || kv_tiles_arg(env, a[9], "kvTiles", &kv_type) ||
      args_int(env, a[5], "rowElems", 1, MAX_DIM, &row_elems) || args_int(env, a[6], "pos0", 0, MAX_DIM, &pos0) ||
      args_int(env, a[7], "nTokens", 0, MAX_DIM, &n_tokens) || args_int(env, a[8], "nKvHead", 1, MAX_DIM, &n_kv_head) ||
      args_mul(env, "nTokens * rowElems", n_tokens, row_elems, &total) ||
      args_mul(env, "(pos0 + nTokens) * rowElems", pos0 + n_tokens, row_elems, &cache_elems)) {
    return NULL;
  }
  if (row_elems % n_kv_head != 0) {
    args_throw(env, "BAD_ARGUMENT", "rowElems (%lld) must be a multiple of nKvHead (%lld)", (long long)row_elems, (long long)n_kv_head);
    return NULL;
  }
  if (cairn_kv_is_q8(kv_type) && (row_elems / n_kv_head) % 32 != 0) {
    args_throw(env, "BAD_ARGUMENT", "a Q8_0 cache needs heads of a multiple of 32 elements (rowElems %lld, nKvHead %lld)",
               (long long)row_elems, (long long)n_kv_head);
    return NULL;
  }
  const size_t align = cairn_kv_is_q8(kv_type) ? 1 : (size_t)cairn_kv_bytes(kv_type, 1);
  const int64_t row_bytes = cairn_kv_bytes(kv_type, row_elems);
  if (args_f32(env, a[0], "k", total, &k) || args_f32(env, a[1], "v", total, &v) ||
      args_u8_len(env, a[2], "kCache", cairn_kv_bytes(kv_type, cache_elems), align, &kc, &k_len) ||
      args_u8_len(env, a[3], "vCache", cairn_kv_bytes(kv_type, cache_elems), align, &vc, &v_len)) {
    return NULL;
  }
  if (kc == vc && cache_elems > 0) {
    args_throw(env, "BAD_ARGUMENT", "kCache and vCache must be different memory");
    return NULL;
  }
  /* Each cache's capacity (its head stride) is the positions it holds; the lengths were checked to hold pos0 + nTokens. */
  if (tiles_capacity_ok(env, kv_type, "kCache", k_len / row_bytes) || tiles_capacity_ok(env, kv_type, "vCache", v_len / row_bytes)) return NULL;
  cairn_store_kv(k, v, kc, vc, kv_type, row_elems, n_kv_head, k_len / row_bytes, v_len / row_bytes, pos0, n_tokens);
  return args_undefined(env);
}

/* Reads api.ts AttentionParams. */
static int attention_params(napi_env env, napi_value o, cairn_attention_params *p) {
  if (prop_int(env, o, "params", "nTokens", 0, MAX_DIM, &p->n_tokens) ||
      prop_int(env, o, "params", "nHead", 1, MAX_DIM, &p->n_head) ||
      prop_int(env, o, "params", "nKvHead", 1, MAX_DIM, &p->n_kv_head) ||
      prop_int(env, o, "params", "headDim", 1, MAX_DIM, &p->head_dim) ||
      prop_int(env, o, "params", "pos0", 0, MAX_DIM, &p->pos0) || prop_float(env, o, "params", "scale", &p->scale)) {
    return -1;
  }
  napi_value kv;
  napi_value tiles;
  if (obj_prop(env, o, "params", "kvType", &kv) || kv_type_arg(env, kv, "params.kvType", &p->kv_type) ||
      obj_prop(env, o, "params", "kvTiles", &tiles) || kv_tiles_arg(env, tiles, "params.kvTiles", &p->kv_type)) {
    return -1;
  }
  if (cairn_kv_is_q8(p->kv_type) && p->head_dim % 32 != 0) {
    args_throw(env, "BAD_ARGUMENT", "a Q8_0 cache needs params.headDim (%lld) to be a multiple of 32", (long long)p->head_dim);
    return -1;
  }
  if (p->n_head % p->n_kv_head != 0) {
    args_throw(env, "BAD_ARGUMENT", "params.nHead (%lld) must be a multiple of params.nKvHead (%lld)",
               (long long)p->n_head, (long long)p->n_kv_head);
    return -1;
  }
  /* Optional: sinks (one f32 per query head), a sliding window (0: none) and a logit softcap (0: none). */
  napi_value sinks, window, softcap;
  p->sinks = NULL;
  p->window = 0;
  p->softcap = 0.f;
  if (obj_prop(env, o, "params", "sinks", &sinks)) return -1;
  if (!is_nullish(env, sinks) && args_f32(env, sinks, "params.sinks", p->n_head, (float **)&p->sinks)) return -1;
  if (obj_prop(env, o, "params", "window", &window)) return -1;
  if (!is_nullish(env, window) && args_int(env, window, "params.window", 0, MAX_DIM, &p->window)) return -1;
  if (obj_prop(env, o, "params", "softcap", &softcap)) return -1;
  if (!is_nullish(env, softcap)) {
    if (args_float(env, softcap, "params.softcap", &p->softcap)) return -1;
    if (!(p->softcap >= 0.f) || isinf(p->softcap)) {
      args_throw(env, "BAD_ARGUMENT", "params.softcap must be a finite number of at least 0");
      return -1;
    }
  }
  return 0;
}

/* attention(q, kCache, vCache, params, out) */
static napi_value attention(napi_env env, napi_callback_info info) {
  napi_value a[5];
  cairn_attention_params p;
  int64_t q_rows, q_elems, kv_row, cache_elems;
  float *q, *out;
  uint8_t *kc, *vc;
  if (args_get(env, info, "attention", 5, a) || attention_params(env, a[3], &p) ||
      args_mul(env, "nTokens * nHead", p.n_tokens, p.n_head, &q_rows) ||
      args_mul(env, "nTokens * nHead * headDim", q_rows, p.head_dim, &q_elems) ||
      args_mul(env, "nKvHead * headDim", p.n_kv_head, p.head_dim, &kv_row) ||
      args_mul(env, "(pos0 + nTokens) * nKvHead * headDim", p.pos0 + p.n_tokens, kv_row, &cache_elems)) {
    return NULL;
  }
  const size_t align = cairn_kv_is_q8(p.kv_type) ? 1 : (size_t)cairn_kv_bytes(p.kv_type, 1);
  int64_t k_len, v_len;
  if (args_f32(env, a[0], "q", q_elems, &q) || args_u8_len(env, a[1], "kCache", cairn_kv_bytes(p.kv_type, cache_elems), align, &kc, &k_len) ||
      args_u8_len(env, a[2], "vCache", cairn_kv_bytes(p.kv_type, cache_elems), align, &vc, &v_len) ||
      args_f32(env, a[4], "out", q_elems, &out)) {
    return NULL;
  }
  /* The positions each cache holds: the stride of its heads (ops.h). */
  const int64_t row_bytes = cairn_kv_bytes(p.kv_type, kv_row);
  p.k_capacity = k_len / row_bytes;
  p.v_capacity = v_len / row_bytes;
  if (tiles_capacity_ok(env, p.kv_type, "kCache", p.k_capacity) || tiles_capacity_ok(env, p.kv_type, "vCache", p.v_capacity)) return NULL;
  const uintptr_t qb = (uintptr_t)q, ob = (uintptr_t)out, bytes = (uintptr_t)q_elems * 4;
  if (q_elems > 0 && qb < ob + bytes && ob < qb + bytes) {
    args_throw(env, "BAD_ARGUMENT", "out must not overlap q");
    return NULL;
  }
  if (p.n_tokens == 0) return args_undefined(env);
  if (cairn_attention(q, kc, vc, &p, out) != 0) {
    args_throw(env, "BAD_ARGUMENT", "attention: out of memory for %lld cache positions", (long long)(p.pos0 + p.n_tokens));
    return NULL;
  }
  return args_undefined(env);
}

/* Spans up to this many take their working arrays from the stack; more than MAX_SPANS are refused. */
#define SPANS_ON_STACK 64
#define MAX_SPANS (1u << 20)

/* A range of addresses (or of batch rows), for the overlap checks. */
typedef struct {
  uintptr_t at, end;
} byte_range;

static int by_start(const void *a, const void *b) {
  const uintptr_t x = ((const byte_range *)a)->at, y = ((const byte_range *)b)->at;
  return x < y ? -1 : x > y ? 1 : 0;
}

/* Sorts the ranges and says whether any two of the non-empty ones overlap. */
static int ranges_overlap(byte_range *r, size_t n) {
  qsort(r, n, sizeof *r, by_start);
  uintptr_t end = 0;
  int any = 0;
  for (size_t i = 0; i < n; i++) {
    if (r[i].end == r[i].at) continue;
    if (any && r[i].at < end) return 1;
    if (!any || r[i].end > end) end = r[i].end;
    any = 1;
  }
  return 0;
}

/* Checks and fills the spans of attentionSpans; ranges has room for 2 x n_spans. */
static int attention_spans_args(napi_env env, napi_value *a, const cairn_attention_params *p, const int32_t *rows,
                                int64_t n_spans, cairn_attention_span *spans, byte_range *ranges) {
  const int64_t q_row = p->n_head * p->head_dim, kv_row = p->n_kv_head * p->head_dim;
  const size_t align = cairn_kv_is_q8(p->kv_type) ? 1 : (size_t)cairn_kv_bytes(p->kv_type, 1);
  const int64_t row_bytes = cairn_kv_bytes(p->kv_type, kv_row);
  int64_t n_rows = 0;
  for (int64_t i = 0; i < n_spans; i++) {
    const int64_t start = rows[3 * i], n = rows[3 * i + 1], pos0 = rows[3 * i + 2];
    if (start < 0 || n < 0 || pos0 < 0 || (double)pos0 + (double)n > MAX_DIM || (double)start + (double)n > MAX_DIM) {
      args_throw(env, "BAD_ARGUMENT", "span %lld: start, nTokens and pos0 must be integers from 0 (got %lld, %lld, %lld)",
                 (long long)i, (long long)start, (long long)n, (long long)pos0);
      return -1;
    }
    if (start + n > n_rows) n_rows = start + n;
    napi_value kv[2];
    if (napi_get_element(env, a[3], (uint32_t)i, &kv[0]) != napi_ok || napi_get_element(env, a[4], (uint32_t)i, &kv[1]) != napi_ok) {
      args_throw(env, "BAD_ARGUMENT", "kCaches and vCaches must be arrays of one cache per span");
      return -1;
    }
    int64_t cache_elems, len[2];
    uint8_t *cache[2];
    if (args_mul(env, "(pos0 + nTokens) * nKvHead * headDim", pos0 + n, kv_row, &cache_elems)) return -1;
    for (int c = 0; c < 2; c++) {
      char name[48];
      snprintf(name, sizeof name, "%s[%lld]", c ? "vCaches" : "kCaches", (long long)i);
      if (args_u8_len(env, kv[c], name, cairn_kv_bytes(p->kv_type, cache_elems), align, &cache[c], &len[c])) return -1;
      ranges[2 * i + c] = (byte_range){(uintptr_t)cache[c], n ? (uintptr_t)cache[c] + (uintptr_t)len[c] : (uintptr_t)cache[c]};
      if (tiles_capacity_ok(env, p->kv_type, name, len[c] / row_bytes)) return -1;
    }
    spans[i] = (cairn_attention_span){NULL, NULL, NULL, cache[0], cache[1], len[0] / row_bytes, len[1] / row_bytes, pos0, n, NULL};
  }
  /* A span's caches are written while the others are read: every cache its own memory. */
  if (ranges_overlap(ranges, (size_t)(2 * n_spans))) {
    args_throw(env, "BAD_ARGUMENT", "the spans' caches must be distinct, non-overlapping memory (one sequence per span)");
    return -1;
  }
  /* The spans' rows must not overlap either: their outputs are written side by side. */
  for (int64_t i = 0; i < n_spans; i++) ranges[i] = (byte_range){(uintptr_t)rows[3 * i], (uintptr_t)rows[3 * i] + (uintptr_t)rows[3 * i + 1]};
  if (ranges_overlap(ranges, (size_t)n_spans)) {
    args_throw(env, "BAD_ARGUMENT", "the spans' rows must not overlap");
    return -1;
  }
  int64_t q_elems, kv_elems;
  float *q, *k, *v, *out;
  if (args_mul(env, "rows * nHead * headDim", n_rows, q_row, &q_elems) || args_mul(env, "rows * nKvHead * headDim", n_rows, kv_row, &kv_elems) ||
      args_f32(env, a[0], "q", q_elems, &q) || args_f32(env, a[1], "k", kv_elems, &k) || args_f32(env, a[2], "v", kv_elems, &v) ||
      args_f32(env, a[7], "out", q_elems, &out)) {
    return -1;
  }
  const uintptr_t qb = (uintptr_t)q, ob = (uintptr_t)out, bytes = (uintptr_t)q_elems * 4;
  if (q_elems > 0 && qb < ob + bytes && ob < qb + bytes) {
    args_throw(env, "BAD_ARGUMENT", "out must not overlap q");
    return -1;
  }
  for (int64_t i = 0; i < n_spans; i++) {
    const int64_t start = rows[3 * i];
    spans[i].q = q + start * q_row;
    spans[i].out = out + start * q_row;
    spans[i].k = k + start * kv_row;
    spans[i].v = v + start * kv_row;
  }
  return 0;
}

/* attentionSpans(q, k, v, kCaches, vCaches, rows, params, out): rows holds (start, nTokens, pos0) per span. */
static napi_value attention_spans(napi_env env, napi_callback_info info) {
  napi_value a[8];
  cairn_attention_params p;
  int32_t *rows;
  int64_t n_rows;
  if (args_get(env, info, "attentionSpans", 8, a) || attention_params(env, a[6], &p) ||
      args_typed(env, a[5], "rows", napi_int32_array, 0, 4, (void **)&rows, &n_rows)) {
    return NULL;
  }
  uint32_t nk = 0, nv = 0;
  bool ka = false, va = false;
  napi_is_array(env, a[3], &ka);
  napi_is_array(env, a[4], &va);
  if (!ka || !va || napi_get_array_length(env, a[3], &nk) != napi_ok || napi_get_array_length(env, a[4], &nv) != napi_ok ||
      n_rows % 3 != 0 || nk != n_rows / 3 || nv != nk || nk > MAX_SPANS) {
    args_throw(env, "BAD_ARGUMENT", "rows must hold (start, nTokens, pos0) for each span (at most %u), and kCaches and vCaches one cache each", MAX_SPANS);
    return NULL;
  }
  const int64_t n_spans = n_rows / 3;
  cairn_attention_span stack_spans[SPANS_ON_STACK];
  byte_range stack_ranges[2 * SPANS_ON_STACK];
  cairn_attention_span *spans = stack_spans;
  byte_range *ranges = stack_ranges;
  if (n_spans > SPANS_ON_STACK) {
    spans = malloc((size_t)n_spans * sizeof *spans);
    ranges = malloc((size_t)n_spans * 2 * sizeof *ranges);
  }
  napi_value result = NULL;
  if (!spans || !ranges) {
    args_throw(env, "BAD_ARGUMENT", "attentionSpans: out of memory for %lld spans", (long long)n_spans);
  } else if (attention_spans_args(env, a, &p, rows, n_spans, spans, ranges) == 0) {
    if (cairn_attention_spans(spans, n_spans, &p) != 0) {
      args_throw(env, "BAD_ARGUMENT", "attentionSpans: out of memory for the spans' attention");
    } else {
      result = args_undefined(env);
    }
  }
  if (spans != stack_spans) free(spans);
  if (ranges != stack_ranges) free(ranges);
  return result;
}

/* kvTilesPreferred(): whether new Q8_0 caches should be tiled for the active level's kernels. */
static napi_value kv_tiles_preferred(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  napi_get_boolean(env, cairn_kv_tiles_preferred() != 0, &out);
  return out;
}

void cairn_register_ops(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"rmsNorm", NULL, rms_norm, NULL, NULL, NULL, napi_enumerable, NULL},
      {"rope", NULL, rope, NULL, NULL, NULL, napi_enumerable, NULL},
      {"softmax", NULL, softmax, NULL, NULL, NULL, napi_enumerable, NULL},
      {"logSumExp", NULL, log_sum_exp, NULL, NULL, NULL, napi_enumerable, NULL},
      {"swiglu", NULL, swiglu, NULL, NULL, NULL, napi_enumerable, NULL},
      {"geglu", NULL, geglu, NULL, NULL, NULL, napi_enumerable, NULL},
      {"swigluOai", NULL, swiglu_oai, NULL, NULL, NULL, napi_enumerable, NULL},
      {"add", NULL, add, NULL, NULL, NULL, napi_enumerable, NULL},
      {"storeKv", NULL, store_kv, NULL, NULL, NULL, napi_enumerable, NULL},
      {"attention", NULL, attention, NULL, NULL, NULL, napi_enumerable, NULL},
      {"attentionSpans", NULL, attention_spans, NULL, NULL, NULL, napi_enumerable, NULL},
      {"kvTilesPreferred", NULL, kv_tiles_preferred, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
