/*
 * JS functions of the Mixture-of-Experts kernels (src/kernels/native.ts wraps them into
 * Kernels.createExpertBatch, prepareExperts, expertMatmul and moeCombine). Every shape, length,
 * overlap and expert id is checked here, before native code uses any of it as a size or an index.
 */
#include <stdbool.h>

#include "binding_args.h"
#include "binding_parts.h"
#include "binding_quant.h"
#include "experts.h"
#include "matmul.h"
#include "quant_kernels.h"

#define MAX_COUNT 2147483647.0

/* Two arrays of `a_bytes` and `b_bytes` where one is written and the other read must not overlap. */
static int disjoint(napi_env env, const char *a_name, const void *a, size_t a_bytes, const char *b_name, const void *b,
                    size_t b_bytes) {
  const uintptr_t pa = (uintptr_t)a, pb = (uintptr_t)b;
  if (a_bytes == 0 || b_bytes == 0 || pa + a_bytes <= pb || pb + b_bytes <= pa) return 0;
  args_throw(env, "BAD_ARGUMENT", "%s and %s share memory; pass separate arrays", a_name, b_name);
  return -1;
}

/* A weight type with a dot product; its activation form in *vt. */
static int weight_type(napi_env env, napi_value v, int *type, int *vt) {
  int64_t t;
  if (args_int(env, v, "wtype", 0, 1000, &t)) return -1;
  *vt = t < QUANT_MAX_TYPE ? quant_vec_dot_type((int)t) : -1;
  if (*vt < 0) {
    args_throw(env, "BAD_ARGUMENT", "expert products do not support weights of type %s (%lld)", quant_type_name((int)t),
               (long long)t);
    return -1;
  }
  *type = (int)t;
  return 0;
}

static int is_float_form(int vt) { return vt == CAIRN_F32 || vt == CAIRN_F16 || vt == CAIRN_BF16; }

/* The batch buffer (a Uint8Array) and the shape it holds. */
static int get_batch(napi_env env, napi_value v, uint8_t **buf, int64_t *bytes, cairn_expert_shape *shape) {
  if (args_typed(env, v, "batch", napi_uint8_array, 0, 1, (void **)buf, bytes)) return -1;
  if (cairn_expert_batch_shape(*buf, (size_t)*bytes, shape) != 0) {
    args_throw(env, "BAD_ARGUMENT", "batch is not an expert batch made by createExpertBatch");
    return -1;
  }
  return 0;
}

/* Reads (wtype, nExperts, nUsed, cols, maxTokens) from v[0..4] and checks them one by one. */
static int batch_shape_args(napi_env env, napi_value *v, int *wtype, int64_t *n_experts, int64_t *n_used, int64_t *cols,
                            int64_t *max_tokens) {
  int vt;
  if (weight_type(env, v[0], wtype, &vt) || args_int(env, v[1], "nExperts", 1, CAIRN_MAX_EXPERTS, n_experts) ||
      args_int(env, v[2], "nUsed", 1, CAIRN_MAX_EXPERTS_USED, n_used) || args_int(env, v[3], "cols", 1, MAX_COUNT, cols) ||
      args_int(env, v[4], "maxTokens", 1, MAX_COUNT, max_tokens)) {
    return -1;
  }
  const int bs = quant_block_size(*wtype);
  if (*cols % bs != 0) {
    args_throw(env, "BAD_ARGUMENT", "%s needs a multiple of %d columns, got cols = %lld", quant_type_name(*wtype), bs,
               (long long)*cols);
    return -1;
  }
  if (*max_tokens * *n_used > MAX_COUNT ||
      cairn_expert_batch_bytes(*wtype, (int)*n_experts, (int)*n_used, (int)*cols, (int)*max_tokens) == 0) {
    args_throw(env, "BAD_ARGUMENT", "an expert batch of %lld tokens x %lld experts of %lld columns is too large",
               (long long)*max_tokens, (long long)*n_used, (long long)*cols);
    return -1;
  }
  return 0;
}

/* expertBatchBytes(wtype, nExperts, nUsed, cols, maxTokens): bytes of the buffer to allocate. */
static napi_value batch_bytes(napi_env env, napi_callback_info info) {
  napi_value v[5], r;
  int wtype;
  int64_t n_experts, n_used, cols, max_tokens;
  if (args_get(env, info, "expertBatchBytes", 5, v) ||
      batch_shape_args(env, v, &wtype, &n_experts, &n_used, &cols, &max_tokens)) {
    return NULL;
  }
  const size_t bytes = cairn_expert_batch_bytes(wtype, (int)n_experts, (int)n_used, (int)cols, (int)max_tokens);
  napi_create_double(env, (double)bytes, &r);
  return r;
}

/* expertBatchInit(batch, wtype, nExperts, nUsed, cols, maxTokens) */
static napi_value batch_init(napi_env env, napi_callback_info info) {
  napi_value v[6];
  int wtype;
  int64_t n_experts, n_used, cols, max_tokens, bytes;
  uint8_t *buf;
  if (args_get(env, info, "expertBatchInit", 6, v) ||
      batch_shape_args(env, v + 1, &wtype, &n_experts, &n_used, &cols, &max_tokens)) {
    return NULL;
  }
  const size_t need = cairn_expert_batch_bytes(wtype, (int)n_experts, (int)n_used, (int)cols, (int)max_tokens);
  if (args_typed(env, v[0], "batch", napi_uint8_array, (int64_t)need, 1, (void **)&buf, &bytes)) return NULL;
  if (cairn_expert_batch_init(buf, (size_t)bytes, wtype, (int)n_experts, (int)n_used, (int)cols, (int)max_tokens) != 0) {
    args_throw(env, "BAD_ARGUMENT", "batch cannot hold an expert batch of this shape");
    return NULL;
  }
  return args_undefined(env);
}

/* prepareExperts(batch, wtype, x, nTokens, ids, perSlot) */
static napi_value prepare(napi_env env, napi_callback_info info) {
  napi_value v[6];
  uint8_t *buf;
  int64_t bytes, n_tokens;
  cairn_expert_shape s;
  int wtype, vt;
  bool per_slot;
  if (args_get(env, info, "prepareExperts", 6, v) || get_batch(env, v[0], &buf, &bytes, &s) ||
      weight_type(env, v[1], &wtype, &vt) || args_int(env, v[3], "nTokens", 0, s.max_tokens, &n_tokens)) {
    return NULL;
  }
  if (napi_get_value_bool(env, v[5], &per_slot) != napi_ok) {
    args_throw(env, "BAD_ARGUMENT", "perSlot must be a boolean");
    return NULL;
  }
  if (s.cols % quant_block_size(wtype) != 0) {
    args_throw(env, "BAD_ARGUMENT", "%s needs a multiple of %d columns, the batch has %d", quant_type_name(wtype),
               quant_block_size(wtype), s.cols);
    return NULL;
  }
  if (is_float_form(vt) && !s.float_rows) {
    args_throw(env, "BAD_ARGUMENT", "this expert batch was made for quantized weights; %s weights need one made for a float type",
               quant_type_name(wtype));
    return NULL;
  }
  const int64_t pairs = n_tokens * s.n_used, n_rows = per_slot ? pairs : n_tokens;
  float *x;
  int32_t *ids;
  if (args_f32(env, v[2], "x", n_rows * s.cols, &x) || args_i32(env, v[4], "ids", pairs, &ids) ||
      disjoint(env, "batch", buf, (size_t)bytes, "x", x, (size_t)(n_rows * s.cols) * 4) ||
      disjoint(env, "batch", buf, (size_t)bytes, "ids", ids, (size_t)pairs * 4)) {
    return NULL;
  }
  for (int64_t p = 0; p < pairs; p++) {
    if (ids[p] < 0 || ids[p] >= s.n_experts) {
      args_throw(env, "BAD_ARGUMENT", "expert id %d at index %lld is outside the %d experts of the layer", ids[p],
                 (long long)p, s.n_experts);
      return NULL;
    }
  }
  if (cairn_expert_prepare(buf, (size_t)bytes, wtype, x, (int)n_tokens, ids, per_slot) != 0) {
    args_throw(env, "BAD_ARGUMENT", "the expert batch cannot hold this preparation");
    return NULL;
  }
  return args_undefined(env);
}

/* expertMatmul(batch, w, wtype, rows, y, bias?, packed?): packed is w packed as one matrix (packInto), or undefined. */
static napi_value matmul(napi_env env, napi_callback_info info) {
  napi_value v[7];
  uint8_t *buf, *w;
  int64_t bytes, rows, w_len;
  cairn_expert_shape s;
  int wtype, vt;
  if (args_get(env, info, "expertMatmul", 5, v) || get_batch(env, v[0], &buf, &bytes, &s) ||
      weight_type(env, v[2], &wtype, &vt) || args_int(env, v[3], "rows", 0, MAX_COUNT, &rows)) {
    return NULL;
  }
  size_t argc = 7;
  napi_get_cb_info(env, info, &argc, v, NULL, NULL);
  if (s.vec_type < 0) {
    args_throw(env, "BAD_ARGUMENT", "the expert batch has not been prepared");
    return NULL;
  }
  if (vt != s.vec_type || s.cols % quant_block_size(wtype) != 0) {
    args_throw(env, "BAD_ARGUMENT", "the expert batch was prepared for %s activations, %s weights need %s",
               quant_type_name(s.vec_type), quant_type_name(wtype), quant_type_name(vt));
    return NULL;
  }
  const double w_need = (double)s.n_experts * (double)rows * (double)quant_row_bytes(wtype, s.cols);
  const int64_t pairs = (int64_t)s.n_tokens * s.n_used;
  float *y, *bias = NULL;
  if (args_typed(env, v[1], "w", napi_uint8_array, 0, 1, (void **)&w, &w_len)) return NULL;
  if ((double)w_len < w_need) {
    args_throw(env, "BAD_ARGUMENT", "w holds %lld bytes, %d experts of %lld rows of %d %s need %.0f", (long long)w_len,
               s.n_experts, (long long)rows, s.cols, quant_type_name(wtype), w_need);
    return NULL;
  }
  int64_t y_need;
  if (args_mul(env, "pairs * rows", pairs, rows, &y_need) || args_f32(env, v[4], "y", y_need, &y) ||
      disjoint(env, "y", y, (size_t)y_need * 4, "w", w, (size_t)w_len) ||
      disjoint(env, "y", y, (size_t)y_need * 4, "batch", buf, (size_t)bytes)) {
    return NULL;
  }
  napi_valuetype bt = napi_undefined;
  if (argc > 5) napi_typeof(env, v[5], &bt);
  if (bt != napi_undefined && bt != napi_null) {
    if (args_f32(env, v[5], "bias", (int64_t)s.n_experts * rows, &bias) ||
        disjoint(env, "y", y, (size_t)y_need * 4, "bias", bias, (size_t)s.n_experts * (size_t)rows * 4)) {
      return NULL;
    }
  }
  /* The packed copy: of every expert w holds, in whole 16-row groups, never overlapping y. */
  uint8_t *packed = NULL;
  napi_valuetype pt = napi_undefined;
  if (argc > 6) napi_typeof(env, v[6], &pt);
  if (pt != napi_undefined && pt != napi_null) {
    int64_t packed_len;
    if (args_typed(env, v[6], "packed", napi_uint8_array, 0, 1, (void **)&packed, &packed_len)) return NULL;
    const size_t row_bytes = quant_row_bytes(wtype, s.cols);
    const size_t want = cairn_packed_bytes(wtype, (int)((size_t)w_len / row_bytes), s.cols);
    if (want && ((size_t)packed_len != want || rows % 16 != 0 || (size_t)w_len % row_bytes != 0)) {
      args_throw(env, "BAD_ARGUMENT", "packed holds %lld bytes, not the %s bank's %zu packed in experts of whole 16-row groups",
                 (long long)packed_len, quant_type_name(wtype), want);
      return NULL;
    }
    if (disjoint(env, "y", y, (size_t)y_need * 4, "packed", packed, (size_t)packed_len)) return NULL;
    if (!want) packed = NULL;
  }
  const int rc = cairn_expert_matmul(buf, (size_t)bytes, wtype, w, packed, (int)rows, y, bias);
  if (rc == -2) {
    napi_throw_error(env, NULL, "expertMatmul could not allocate its scratch memory");
    return NULL;
  }
  if (rc != 0) {
    args_throw(env, "BAD_ARGUMENT", "the expert batch is inconsistent (changed outside the kernels); prepare it again");
    return NULL;
  }
  return args_undefined(env);
}

/* moeCombine(y, weights, nTokens, nUsed, dim, out) */
static napi_value combine(napi_env env, napi_callback_info info) {
  napi_value v[6];
  int64_t n_tokens, n_used, dim, pairs, y_len, out_len;
  float *y, *weights, *out;
  if (args_get(env, info, "moeCombine", 6, v) || args_int(env, v[2], "nTokens", 0, MAX_COUNT, &n_tokens) ||
      args_int(env, v[3], "nUsed", 1, CAIRN_MAX_EXPERTS_USED, &n_used) || args_int(env, v[4], "dim", 1, MAX_COUNT, &dim) ||
      args_mul(env, "nTokens * nUsed", n_tokens, n_used, &pairs) || args_mul(env, "nTokens * nUsed * dim", pairs, dim, &y_len) ||
      args_mul(env, "nTokens * dim", n_tokens, dim, &out_len) || args_f32(env, v[0], "y", y_len, &y) ||
      args_f32(env, v[1], "weights", pairs, &weights) || args_f32(env, v[5], "out", out_len, &out) ||
      disjoint(env, "out", out, (size_t)out_len * 4, "y", y, (size_t)y_len * 4) ||
      disjoint(env, "out", out, (size_t)out_len * 4, "weights", weights, (size_t)pairs * 4)) {
    return NULL;
  }
  cairn_moe_combine(y, weights, n_tokens, n_used, dim, out);
  return args_undefined(env);
}

void cairn_register_experts(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"expertBatchBytes", NULL, batch_bytes, NULL, NULL, NULL, napi_enumerable, NULL},
      {"expertBatchInit", NULL, batch_init, NULL, NULL, NULL, napi_enumerable, NULL},
      {"prepareExperts", NULL, prepare, NULL, NULL, NULL, napi_enumerable, NULL},
      {"expertMatmul", NULL, matmul, NULL, NULL, NULL, napi_enumerable, NULL},
      {"moeCombine", NULL, combine, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
