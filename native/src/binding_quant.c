/*
 * JS functions of the quantization kernels: matmul, getRows, dequantize and quantize (signatures
 * of src/kernels/api.ts). Every argument is checked against the sizes it implies before any
 * memory is touched; wrong types throw TypeError, wrong sizes RangeError, both with the code
 * BAD_ARGUMENT. The kernels then work on the typed arrays' memory in place.
 */
#include "binding_quant.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "matmul.h"
#include "mmap.h"
#include "quant_codecs.h"
#include "quant_formats.h"

/* Largest count accepted for rows, cols, n and element counts (the kernels index with int). */
#define MAX_COUNT 2147483647.0

typedef struct {
  void *data;
  size_t length; /* elements */
  size_t bytes;
} typed_view;

static void throw_fmt(napi_env env, int range, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (range) napi_throw_range_error(env, "BAD_ARGUMENT", msg);
  else napi_throw_type_error(env, "BAD_ARGUMENT", msg);
}

static int get_args(napi_env env, napi_callback_info info, const char *fn, size_t n, napi_value *argv) {
  size_t argc = n;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return -1;
  if (argc < n) {
    throw_fmt(env, 0, "%s expects %zu arguments, got %zu", fn, n, argc);
    return -1;
  }
  return 0;
}

/* An integer-valued number in [lo, hi]. */
static int get_int(napi_env env, napi_value v, const char *name, double lo, double hi, int64_t *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) {
    throw_fmt(env, 0, "%s must be a number", name);
    return -1;
  }
  if (!(d >= lo && d <= hi) || d != floor(d)) {
    throw_fmt(env, 1, "%s must be an integer in [%.0f, %.0f], got %g", name, lo, hi, d);
    return -1;
  }
  *out = (int64_t)d;
  return 0;
}

static const char *typed_name(napi_typedarray_type t) {
  switch (t) {
    case napi_uint8_array: return "Uint8Array";
    case napi_float32_array: return "Float32Array";
    case napi_int32_array: return "Int32Array";
    default: return "typed array";
  }
}

/* A typed array of type `want`, without copying. */
static int get_typed(napi_env env, napi_value v, const char *name, napi_typedarray_type want, typed_view *out) {
  bool is_ta = false;
  napi_typedarray_type type;
  napi_value ab;
  size_t offset;
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta ||
      napi_get_typedarray_info(env, v, &type, &out->length, &out->data, &ab, &offset) != napi_ok || type != want) {
    throw_fmt(env, 0, "%s must be a %s", name, typed_name(want));
    return -1;
  }
  const size_t elem = want == napi_uint8_array ? 1 : 4;
  out->bytes = out->length * elem;
  if (out->data == NULL) out->length = out->bytes = 0; /* detached */
  return 0;
}

static int need(napi_env env, const typed_view *v, const char *name, double want, const char *unit, const char *why) {
  if ((double)v->length < want) {
    throw_fmt(env, 1, "%s holds %zu %s, %s need %.0f", name, v->length, unit, why, want);
    return -1;
  }
  return 0;
}

/* Arrays written by a kernel must not share memory with what it reads. */
static int disjoint(napi_env env, const char *a_name, const typed_view *a, const char *b_name, const typed_view *b) {
  const uintptr_t pa = (uintptr_t)a->data, pb = (uintptr_t)b->data;
  if (a->bytes == 0 || b->bytes == 0 || pa + a->bytes <= pb || pb + b->bytes <= pa) return 0;
  throw_fmt(env, 1, "%s and %s share memory; pass separate arrays", a_name, b_name);
  return -1;
}

const char *quant_type_name(int type) {
  switch (type) {
    case CAIRN_F32: return "F32";
    case CAIRN_F16: return "F16";
    case CAIRN_BF16: return "BF16";
    case CAIRN_Q4_0: return "Q4_0";
    case CAIRN_Q4_1: return "Q4_1";
    case CAIRN_Q5_0: return "Q5_0";
    case CAIRN_Q5_1: return "Q5_1";
    case CAIRN_Q8_0: return "Q8_0";
    case CAIRN_Q8_1: return "Q8_1";
    case CAIRN_Q2_K: return "Q2_K";
    case CAIRN_Q3_K: return "Q3_K";
    case CAIRN_Q4_K: return "Q4_K";
    case CAIRN_Q5_K: return "Q5_K";
    case CAIRN_Q6_K: return "Q6_K";
    case CAIRN_Q8_K: return "Q8_K";
    case CAIRN_MXFP4: return "MXFP4";
    case CAIRN_IQ4_XS: return "IQ4_XS";
    case CAIRN_IQ4_NL: return "IQ4_NL";
    case CAIRN_IQ1_S: return "IQ1_S";
    case CAIRN_IQ1_M: return "IQ1_M";
    case CAIRN_IQ2_XXS: return "IQ2_XXS";
    case CAIRN_IQ2_XS: return "IQ2_XS";
    case CAIRN_IQ2_S: return "IQ2_S";
    case CAIRN_IQ3_XXS: return "IQ3_XXS";
    case CAIRN_IQ3_S: return "IQ3_S";
    default: return "?";
  }
}

/* A type the codecs handle (weight or activation format). */
static int get_codec_type(napi_env env, napi_value v, const char *name, int *type) {
  int64_t t;
  if (get_int(env, v, name, 0, 1000, &t)) return -1;
  if (quant_block_size((int)t) == 0) {
    throw_fmt(env, 1, "%s %lld is not a type the quantization kernels support", name, (long long)t);
    return -1;
  }
  *type = (int)t;
  return 0;
}

/* A count that is a multiple of the type's block size. */
static int get_elements(napi_env env, napi_value v, const char *name, int type, double lo, int64_t *out) {
  if (get_int(env, v, name, lo, MAX_COUNT, out)) return -1;
  const int bs = quant_block_size(type);
  if (*out % bs != 0) {
    throw_fmt(env, 1, "%s needs a multiple of %d elements, got %s = %lld", quant_type_name(type), bs, name, (long long)*out);
    return -1;
  }
  return 0;
}

static napi_value undefined(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

/*
 * The optional packed copy at a[index] (argc arguments given) of `rows` x `cols` weights of `type`:
 * 0 with *packed zeroed where it is absent or undefined; -1 (thrown) where it is not a Uint8Array,
 * is not of the size packWeights makes (where the active level packs such weights), or overlaps
 * `out`.
 */
static int get_packed(napi_env env, napi_value *a, size_t argc, size_t index, int type, int64_t rows, int64_t cols,
                      const typed_view *out, typed_view *packed) {
  memset(packed, 0, sizeof *packed);
  napi_valuetype kind = napi_undefined;
  if (argc <= index) return 0;
  if (napi_typeof(env, a[index], &kind) != napi_ok) return -1;
  if (kind == napi_undefined) return 0;
  if (get_typed(env, a[index], "packed", napi_uint8_array, packed)) return -1;
  /* 0 where the level packs none: then it is not read. */
  const size_t want = cairn_packed_bytes(type, (int)rows, (int)cols);
  if (want && packed->bytes != want) {
    throw_fmt(env, 1, "packed has %zu bytes, packed %s weights of %lld x %lld have %zu", packed->bytes, quant_type_name(type),
              (long long)rows, (long long)cols, want);
    return -1;
  }
  return disjoint(env, "out", out, "packed", packed);
}

/* matmul(w, wtype, rows, cols, x, n, y, packed?): packed is packWeights' copy of w, or undefined. */
static napi_value js_matmul(napi_env env, napi_callback_info info) {
  napi_value a[8];
  size_t argc = 8;
  int type;
  int64_t rows, cols, n;
  typed_view w, x, y, packed;
  if (napi_get_cb_info(env, info, &argc, a, NULL, NULL) != napi_ok) return NULL;
  if (argc < 7) {
    throw_fmt(env, 0, "matmul expects 7 arguments, got %zu", argc);
    return NULL;
  }
  if (get_typed(env, a[0], "w", napi_uint8_array, &w) ||
      get_codec_type(env, a[1], "wtype", &type)) {
    return NULL;
  }
  if (quant_vec_dot_type(type) < 0) {
    throw_fmt(env, 1, "matmul does not support weights of type %s (%d)", quant_type_name(type), type);
    return NULL;
  }
  if (get_int(env, a[2], "rows", 0, MAX_COUNT, &rows) || get_elements(env, a[3], "cols", type, 1, &cols) ||
      get_typed(env, a[4], "x", napi_float32_array, &x) || get_int(env, a[5], "n", 0, MAX_COUNT, &n) ||
      get_typed(env, a[6], "y", napi_float32_array, &y)) {
    return NULL;
  }
  char why[96];
  snprintf(why, sizeof why, "%lld rows of %lld %s", (long long)rows, (long long)cols, quant_type_name(type));
  if (need(env, &w, "w", (double)rows * (double)quant_row_bytes(type, cols), "bytes", why)) return NULL;
  snprintf(why, sizeof why, "%lld rows of %lld", (long long)n, (long long)cols);
  if (need(env, &x, "x", (double)n * (double)cols, "floats", why)) return NULL;
  snprintf(why, sizeof why, "%lld rows of %lld", (long long)n, (long long)rows);
  if (need(env, &y, "y", (double)n * (double)rows, "floats", why) || disjoint(env, "y", &y, "x", &x) ||
      disjoint(env, "y", &y, "w", &w)) {
    return NULL;
  }
  if (get_packed(env, a, argc, 7, type, rows, cols, &y, &packed)) return NULL;
  if (cairn_matmul_packed(type, w.data, packed.bytes ? packed.data : NULL, (int)rows, (int)cols, (const float *)x.data, (int)n, (float *)y.data) != 0) {
    napi_throw_error(env, NULL, "matmul could not allocate its activation scratch");
    return NULL;
  }
  return undefined(env);
}

/* getRows(w, wtype, cols, ids, out, packed?): packed is packWeights' copy of w, or undefined. */
static napi_value js_get_rows(napi_env env, napi_callback_info info) {
  napi_value a[6];
  size_t argc = 6;
  int type;
  int64_t cols;
  typed_view w, ids, out, packed;
  if (napi_get_cb_info(env, info, &argc, a, NULL, NULL) != napi_ok) return NULL;
  if (argc < 5) {
    throw_fmt(env, 0, "getRows expects 5 arguments, got %zu", argc);
    return NULL;
  }
  if (get_typed(env, a[0], "w", napi_uint8_array, &w) ||
      get_codec_type(env, a[1], "wtype", &type) || get_elements(env, a[2], "cols", type, 1, &cols) ||
      get_typed(env, a[3], "ids", napi_int32_array, &ids) || get_typed(env, a[4], "out", napi_float32_array, &out)) {
    return NULL;
  }
  const size_t row_bytes = quant_row_bytes(type, cols);
  const int64_t rows = (int64_t)(w.length / row_bytes);
  char why[96];
  snprintf(why, sizeof why, "%zu rows of %lld", ids.length, (long long)cols);
  if (need(env, &out, "out", (double)ids.length * (double)cols, "floats", why) ||
      disjoint(env, "out", &out, "w", &w) || disjoint(env, "out", &out, "ids", &ids)) {
    return NULL;
  }
  if (ids.length > (size_t)MAX_COUNT) {
    throw_fmt(env, 1, "ids holds too many rows (%zu)", ids.length);
    return NULL;
  }
  const int32_t *id = (const int32_t *)ids.data;
  for (size_t i = 0; i < ids.length; i++) {
    if (id[i] < 0 || id[i] >= rows) {
      throw_fmt(env, 1, "row id %d at index %zu is outside the %lld rows of w", id[i], i, (long long)rows);
      return NULL;
    }
  }
  if (get_packed(env, a, argc, 5, type, rows, cols, &out, &packed)) return NULL;
  quant_get_rows_packed(type, w.data, packed.bytes ? packed.data : NULL, (int)cols, id, (int)ids.length, (float *)out.data);
  return undefined(env);
}

/* dequantize(type, src, dst, n) */
static napi_value js_dequantize(napi_env env, napi_callback_info info) {
  napi_value a[4];
  int type;
  int64_t n;
  typed_view src, dst;
  if (get_args(env, info, "dequantize", 4, a) || get_codec_type(env, a[0], "type", &type) ||
      get_typed(env, a[1], "src", napi_uint8_array, &src) || get_typed(env, a[2], "dst", napi_float32_array, &dst) ||
      get_elements(env, a[3], "n", type, 0, &n)) {
    return NULL;
  }
  char why[64];
  snprintf(why, sizeof why, "%lld elements of %s", (long long)n, quant_type_name(type));
  if (need(env, &src, "src", (double)quant_row_bytes(type, n), "bytes", why) ||
      need(env, &dst, "dst", (double)n, "floats", "the elements") || disjoint(env, "dst", &dst, "src", &src)) {
    return NULL;
  }
  cairn_dequantize(type, src.data, (float *)dst.data, n);
  return undefined(env);
}

/* quantize(type, src, dst, n) */
static napi_value js_quantize(napi_env env, napi_callback_info info) {
  napi_value a[4];
  int type;
  int64_t n;
  typed_view src, dst;
  if (get_args(env, info, "quantize", 4, a) || get_codec_type(env, a[0], "type", &type) ||
      get_typed(env, a[1], "src", napi_float32_array, &src) || get_typed(env, a[2], "dst", napi_uint8_array, &dst) ||
      get_elements(env, a[3], "n", type, 0, &n)) {
    return NULL;
  }
  char why[64];
  snprintf(why, sizeof why, "%lld elements of %s", (long long)n, quant_type_name(type));
  if (need(env, &src, "src", (double)n, "floats", "the elements") ||
      need(env, &dst, "dst", (double)quant_row_bytes(type, n), "bytes", why) || disjoint(env, "dst", &dst, "src", &src)) {
    return NULL;
  }
  cairn_quantize(type, (const float *)src.data, dst.data, n);
  return undefined(env);
}

static void free_packed(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

/* Huge pages for packed weights: a decode step streams them, and 4 KiB pages cost it a TLB walk
   and a restarted prefetcher every page (engine/large-pages.ts). */
#define PACK_ALIGN (2u << 20)
/* Largest arena: the kernels index a matrix's bytes with size_t, JS views with numbers. */
#define MAX_ARENA 9007199254740991.0

/* packedBytes(wtype, rows, cols): bytes of packed rows x cols weights on the active level (0: none). */
static napi_value js_packed_bytes(napi_env env, napi_callback_info info) {
  napi_value a[3], v;
  int type;
  int64_t rows, cols;
  if (get_args(env, info, "packedBytes", 3, a) || get_codec_type(env, a[0], "wtype", &type) ||
      get_int(env, a[1], "rows", 0, MAX_COUNT, &rows) || get_elements(env, a[2], "cols", type, 1, &cols)) {
    return NULL;
  }
  napi_create_double(env, quant_vec_dot_type(type) < 0 ? 0 : (double)cairn_packed_bytes(type, (int)rows, (int)cols), &v);
  return v;
}

/* packArena(bytes): memory of its own for packed weights, huge pages where the OS gives them
   (not cleared: packInto fills it). */
static napi_value js_pack_arena(napi_env env, napi_callback_info info) {
  napi_value a[1], ab, out;
  int64_t bytes;
  if (get_args(env, info, "packArena", 1, a) || get_int(env, a[0], "bytes", 1, MAX_ARENA, &bytes)) return NULL;
  const size_t align = (size_t)bytes >= PACK_ALIGN ? PACK_ALIGN : 64;
  const size_t size = ((size_t)bytes + align - 1) / align * align;
  void *dst = NULL;
  if (posix_memalign(&dst, align, size) != 0) {
    napi_throw_error(env, "OUT_OF_MEMORY", "could not allocate memory for packed weights");
    return NULL;
  }
  if (align == PACK_ALIGN) cairn_advise_huge(dst, size);
  if (napi_create_external_arraybuffer(env, dst, (size_t)bytes, free_packed, NULL, &ab) != napi_ok) {
    /* Node runs the finalizer itself when it rejects the buffer; a failure before that leaves it to us. */
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) napi_throw_error(env, NULL, "could not hand packed weights' memory to JavaScript");
    return NULL;
  }
  if (napi_create_typedarray(env, napi_uint8_array, (size_t)bytes, ab, 0, &out) != napi_ok) return NULL;
  return out;
}

/* packInto(w, wtype, rows, cols, dst): w's rows packed for the active level's products into dst (packedBytes of them). */
static napi_value js_pack_into(napi_env env, napi_callback_info info) {
  napi_value a[5];
  int type;
  int64_t rows, cols;
  typed_view w, dst;
  if (get_args(env, info, "packInto", 5, a) || get_typed(env, a[0], "w", napi_uint8_array, &w) ||
      get_codec_type(env, a[1], "wtype", &type) || get_int(env, a[2], "rows", 0, MAX_COUNT, &rows) ||
      get_elements(env, a[3], "cols", type, 1, &cols) || get_typed(env, a[4], "dst", napi_uint8_array, &dst)) {
    return NULL;
  }
  char why[96];
  snprintf(why, sizeof why, "%lld rows of %lld %s", (long long)rows, (long long)cols, quant_type_name(type));
  if (need(env, &w, "w", (double)rows * (double)quant_row_bytes(type, cols), "bytes", why) || disjoint(env, "dst", &dst, "w", &w)) return NULL;
  const size_t bytes = quant_vec_dot_type(type) < 0 ? 0 : cairn_packed_bytes(type, (int)rows, (int)cols);
  if (!bytes) {
    throw_fmt(env, 1, "%s weights of %lld x %lld are not packed on this CPU level (packedBytes is 0)", quant_type_name(type), (long long)rows,
              (long long)cols);
    return NULL;
  }
  if (dst.bytes != bytes) {
    throw_fmt(env, 1, "dst has %zu bytes, packed %s weights of %lld x %lld have %zu", dst.bytes, quant_type_name(type), (long long)rows,
              (long long)cols, bytes);
    return NULL;
  }
  cairn_pack(type, w.data, (int)rows, (int)cols, dst.data);
  return undefined(env);
}

void cairn_register_quant(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"matmul", NULL, js_matmul, NULL, NULL, NULL, napi_enumerable, NULL},
      {"packedBytes", NULL, js_packed_bytes, NULL, NULL, NULL, napi_enumerable, NULL},
      {"packArena", NULL, js_pack_arena, NULL, NULL, NULL, napi_enumerable, NULL},
      {"packInto", NULL, js_pack_into, NULL, NULL, NULL, napi_enumerable, NULL},
      {"getRows", NULL, js_get_rows, NULL, NULL, NULL, napi_enumerable, NULL},
      {"dequantize", NULL, js_dequantize, NULL, NULL, NULL, napi_enumerable, NULL},
      {"quantize", NULL, js_quantize, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
