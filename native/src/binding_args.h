/*
 * Argument checking for the N-API functions of the float kernels, mappings and system calls.
 * Every helper throws a JS error with a stable `code` and a message naming the argument, and
 * returns -1, so a binding can simply `return NULL` when a helper fails.
 */
#ifndef CAIRN_BINDING_ARGS_H
#define CAIRN_BINDING_ARGS_H

#include <node_api.h>

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Largest integer a JS number holds exactly. */
#define ARGS_MAX_SAFE_INT 9007199254740991.0

static void args_throw(napi_env env, const char *code, const char *fmt, ...) {
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  napi_throw_error(env, code, msg);
}

/* Fetches exactly `n` arguments of a call to `fn`. */
static int args_get(napi_env env, napi_callback_info info, const char *fn, size_t n, napi_value *argv) {
  size_t argc = n;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return -1;
  if (argc < n) {
    args_throw(env, "BAD_ARGUMENT", "%s expects %zu arguments, got %zu", fn, n, argc);
    return -1;
  }
  return 0;
}

/* An integer-valued number in [lo, hi]. */
static int args_int(napi_env env, napi_value v, const char *name, double lo, double hi, int64_t *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) {
    args_throw(env, "BAD_ARGUMENT", "%s must be a number", name);
    return -1;
  }
  if (!(d >= lo && d <= hi) || d != floor(d)) {
    args_throw(env, "BAD_ARGUMENT", "%s must be an integer in [%.0f, %.0f], got %g", name, lo, hi, d);
    return -1;
  }
  *out = (int64_t)d;
  return 0;
}

/* A finite number, narrowed to f32 as the kernels use it. */
static int args_float(napi_env env, napi_value v, const char *name, float *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || !isfinite(d)) {
    args_throw(env, "BAD_ARGUMENT", "%s must be a finite number", name);
    return -1;
  }
  *out = (float)d;
  return 0;
}

/* A string copied into `buf`. */
static int args_string(napi_env env, napi_value v, const char *name, char *buf, size_t cap) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) {
    args_throw(env, "BAD_ARGUMENT", "%s must be a string", name);
    return -1;
  }
  if (len + 1 > cap) {
    args_throw(env, "BAD_ARGUMENT", "%s is too long (%zu bytes)", name, len);
    return -1;
  }
  napi_get_value_string_utf8(env, v, buf, cap, &len);
  if (strlen(buf) != len) {
    args_throw(env, "BAD_ARGUMENT", "%s must not contain NUL characters", name);
    return -1;
  }
  return 0;
}

static const char *args_typed_array_name(napi_typedarray_type t) {
  switch (t) {
    case napi_float32_array: return "Float32Array";
    case napi_int32_array: return "Int32Array";
    case napi_uint8_array: return "Uint8Array";
    default: return "typed array";
  }
}

/*
 * A typed array of type `want` holding at least `min_len` elements; its element data start
 * must be aligned to `align` bytes. Writes the data pointer and the element count.
 */
static int args_typed(napi_env env, napi_value v, const char *name, napi_typedarray_type want, int64_t min_len,
                      size_t align, void **data, int64_t *len) {
  bool is_ta = false;
  napi_typedarray_type type;
  size_t length = 0, offset = 0;
  napi_value ab;
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta ||
      napi_get_typedarray_info(env, v, &type, &length, data, &ab, &offset) != napi_ok || type != want) {
    args_throw(env, "BAD_ARGUMENT", "%s must be a %s", name, args_typed_array_name(want));
    return -1;
  }
  if ((int64_t)length < min_len) {
    args_throw(env, "BAD_ARGUMENT", "%s is too short: %lld elements, need %lld", name, (long long)length,
               (long long)min_len);
    return -1;
  }
  if (align > 1 && ((uintptr_t)*data % align) != 0) {
    args_throw(env, "BAD_ARGUMENT", "%s must start at a multiple of %zu bytes in its buffer", name, align);
    return -1;
  }
  if (len) *len = (int64_t)length;
  return 0;
}

static int args_f32(napi_env env, napi_value v, const char *name, int64_t min_len, float **out) {
  return args_typed(env, v, name, napi_float32_array, min_len, 4, (void **)out, NULL);
}

static int args_i32(napi_env env, napi_value v, const char *name, int64_t min_len, int32_t **out) {
  return args_typed(env, v, name, napi_int32_array, min_len, 4, (void **)out, NULL);
}

static int args_u8(napi_env env, napi_value v, const char *name, int64_t min_len, size_t align, uint8_t **out) {
  return args_typed(env, v, name, napi_uint8_array, min_len, align, (void **)out, NULL);
}

/* args_u8 that also gives the array's length. */
static int args_u8_len(napi_env env, napi_value v, const char *name, int64_t min_len, size_t align, uint8_t **out, int64_t *len) {
  return args_typed(env, v, name, napi_uint8_array, min_len, align, (void **)out, len);
}

/* a * b with an error instead of overflow past the safe-integer range. */
static int args_mul(napi_env env, const char *what, int64_t a, int64_t b, int64_t *out) {
  if (a != 0 && (double)a * (double)b > ARGS_MAX_SAFE_INT) {
    args_throw(env, "BAD_ARGUMENT", "%s is too large", what);
    return -1;
  }
  *out = a * b;
  return 0;
}

/* Two arrays the kernel reads and writes must either be the same memory or not overlap. */
static int args_same_or_disjoint(napi_env env, const char *a_name, const void *a, const char *b_name, const void *b,
                                 int64_t bytes) {
  const uintptr_t pa = (uintptr_t)a, pb = (uintptr_t)b;
  if (pa == pb || pa + (uintptr_t)bytes <= pb || pb + (uintptr_t)bytes <= pa) return 0;
  args_throw(env, "BAD_ARGUMENT", "%s and %s partly overlap; pass the same array or separate ones", a_name, b_name);
  return -1;
}

static napi_value args_undefined(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

#endif
