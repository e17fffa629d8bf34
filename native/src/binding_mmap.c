/*
 * JS side of file mappings. mapOpen returns a handle object; mapRange returns external
 * ArrayBuffers over byte ranges of the mapping, with no copy. The handle and each view hold a
 * reference, so the file stays mapped while any view is reachable, even after the handle is
 * released or collected: no view can ever point at unmapped memory.
 */
#include <stdint.h>
#include <stdlib.h>

#include "binding_args.h"
#include "binding_parts.h"
#include "mmap.h"

/* What a handle object wraps; `m` is NULL once mapRelease dropped the handle's reference. */
typedef struct {
  cairn_mapping *m;
} map_handle;

static const napi_type_tag k_handle_tag = {0x6361697266696c65ULL, 0x6d6170706564aa01ULL};

#define PATH_CAP 4096

static void handle_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  map_handle *h = data;
  if (h->m) cairn_map_release(h->m);
  free(h);
}

/* One view's hold on its mapping. */
typedef struct {
  cairn_mapping *m;
} view_ref;

/* The last view_ref finalized on this thread, so make_view can tell whether a failed create already ran it. */
static _Thread_local const view_ref *t_last_finalized;

static void view_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)data;
  view_ref *ref = hint;
  t_last_finalized = ref;
  cairn_map_release(ref->m);
  free(ref);
}

static int open_path(napi_env env, napi_value v, cairn_mapping **out) {
  char path[PATH_CAP], err[PATH_CAP + 128];
  if (args_string(env, v, "path", path, sizeof path)) return -1;
  if (path[0] == '\0') {
    args_throw(env, "BAD_ARGUMENT", "cannot map a file: the path is empty");
    return -1;
  }
  cairn_map_status status;
  *out = cairn_map_open(path, &status, err, sizeof err);
  if (*out) return 0;
  napi_throw_error(env, status == CAIRN_MAP_NOT_FOUND ? "FILE_NOT_FOUND" : "BAD_ARGUMENT", err);
  return -1;
}

/* An external ArrayBuffer over [offset, offset + length) of `m`, holding its own reference. */
static napi_value make_view(napi_env env, cairn_mapping *m, int64_t offset, int64_t length) {
  napi_value ab;
  if (length == 0) {
    void *unused;
    napi_create_arraybuffer(env, 0, &unused, &ab);
    return ab;
  }
  view_ref *ref = malloc(sizeof *ref);
  if (!ref) {
    args_throw(env, "BAD_ARGUMENT", "out of memory");
    return NULL;
  }
  ref->m = m;
  cairn_map_retain(m);
  void *data = (void *)(cairn_map_data(m) + offset);
  t_last_finalized = NULL;
  if (napi_create_external_arraybuffer(env, data, (size_t)length, view_finalize, ref, &ab) == napi_ok) return ab;
  /* Node runs the finalizer itself when it rejects the buffer (e.g. past its size limit). */
  if (t_last_finalized != ref) {
    cairn_map_release(m);
    free(ref);
  }
  napi_value pending = NULL, msg = NULL;
  char reason[256] = "";
  size_t len = 0;
  if (napi_get_and_clear_last_exception(env, &pending) == napi_ok && pending &&
      napi_coerce_to_string(env, pending, &msg) == napi_ok) {
    napi_get_value_string_utf8(env, msg, reason, sizeof reason, &len);
  }
  args_throw(env, "BAD_ARGUMENT", "cannot create a view of %lld bytes (%s); map the file in smaller ranges with mapRange",
             (long long)length, reason[0] ? reason : "rejected by Node");
  return NULL;
}

static napi_value size_value(napi_env env, cairn_mapping *m) {
  napi_value v;
  napi_create_double(env, (double)cairn_map_size(m), &v);
  return v;
}

/* mapOpen(path): { size } with the mapping attached. */
static napi_value map_open(napi_env env, napi_callback_info info) {
  napi_value argv[1], obj;
  cairn_mapping *m;
  if (args_get(env, info, "mapOpen", 1, argv) || open_path(env, argv[0], &m)) return NULL;
  map_handle *h = malloc(sizeof *h);
  if (!h) {
    cairn_map_release(m);
    args_throw(env, "BAD_ARGUMENT", "out of memory");
    return NULL;
  }
  h->m = m;
  napi_create_object(env, &obj);
  napi_property_descriptor size = {"size", NULL, NULL, NULL, NULL, size_value(env, m), napi_enumerable, NULL};
  napi_define_properties(env, obj, 1, &size);
  if (napi_wrap(env, obj, h, handle_finalize, NULL, NULL) != napi_ok) {
    handle_finalize(env, h, NULL);
    args_throw(env, "BAD_ARGUMENT", "cannot attach the mapping to its handle");
    return NULL;
  }
  napi_type_tag_object(env, obj, &k_handle_tag);
  return obj;
}

static int get_handle(napi_env env, napi_value v, map_handle **out) {
  bool ok = false;
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t == napi_object) napi_check_object_type_tag(env, v, &k_handle_tag, &ok);
  if (!ok || napi_unwrap(env, v, (void **)out) != napi_ok) {
    args_throw(env, "BAD_ARGUMENT", "handle must be a mapping handle returned by mapOpen");
    return -1;
  }
  return 0;
}

/*
 * The (handle, offset, length) arguments of `name`: a live mapping and a byte range inside its
 * file. 0, or -1 with a JS exception pending.
 */
static int range_args(napi_env env, napi_callback_info info, const char *name, map_handle **h, int64_t *offset,
                      int64_t *length) {
  napi_value argv[3];
  if (args_get(env, info, name, 3, argv) || get_handle(env, argv[0], h)) return -1;
  if (!(*h)->m) {
    args_throw(env, "BAD_ARGUMENT", "the mapping handle was already released");
    return -1;
  }
  const double size = (double)cairn_map_size((*h)->m);
  if (args_int(env, argv[1], "offset", 0, size, offset) || args_int(env, argv[2], "length", 0, size, length)) return -1;
  if ((uint64_t)*offset + (uint64_t)*length > cairn_map_size((*h)->m)) {
    args_throw(env, "BAD_ARGUMENT", "range [%lld, %lld) runs past the end of the %.0f-byte file", (long long)*offset,
               (long long)(*offset + *length), size);
    return -1;
  }
  return 0;
}

/* mapRange(handle, offset, length): ArrayBuffer viewing those bytes of the file. */
static napi_value map_range(napi_env env, napi_callback_info info) {
  map_handle *h;
  int64_t offset, length;
  if (range_args(env, info, "mapRange", &h, &offset, &length)) return NULL;
  return make_view(env, h->m, offset, length);
}

/* mapRelease(handle): drops the handle's reference now; views keep the file mapped. */
static napi_value map_release(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  map_handle *h;
  if (args_get(env, info, "mapRelease", 1, argv) || get_handle(env, argv[0], &h)) return NULL;
  if (h->m) {
    cairn_map_release(h->m);
    h->m = NULL;
  }
  return args_undefined(env);
}

/* mapLargeBytes(handle): bytes of the mapping mapped with huge pages, or -1 where unknown. */
static napi_value map_large_bytes(napi_env env, napi_callback_info info) {
  napi_value argv[1], v;
  map_handle *h;
  if (args_get(env, info, "mapLargeBytes", 1, argv) || get_handle(env, argv[0], &h)) return NULL;
  napi_create_double(env, h->m ? (double)cairn_map_large_bytes(h->m) : -1, &v);
  return v;
}

/*
 * mapUnmapView(handle, view): unmaps the whole pages of a Uint8Array view of this mapping from
 * the mapping only (the page cache keeps them; a later read through any view maps them again);
 * true when the kernel accepted, false for a view of other memory (nothing is done then).
 */
static napi_value map_unmap_view(napi_env env, napi_callback_info info) {
  napi_value argv[2], v;
  map_handle *h;
  if (args_get(env, info, "mapUnmapView", 2, argv) || get_handle(env, argv[0], &h)) return NULL;
  if (!h->m) {
    args_throw(env, "BAD_ARGUMENT", "the mapping handle was already released");
    return NULL;
  }
  bool is_view = false;
  napi_typedarray_type type;
  size_t n = 0, offset;
  void *data = NULL;
  napi_value ab;
  if (napi_is_typedarray(env, argv[1], &is_view) != napi_ok || !is_view ||
      napi_get_typedarray_info(env, argv[1], &type, &n, &data, &ab, &offset) != napi_ok || type != napi_uint8_array) {
    args_throw(env, "BAD_ARGUMENT", "mapUnmapView expects a Uint8Array");
    return NULL;
  }
  /* Only bytes of this mapping: the view's address range inside it, compared as integers. */
  const uintptr_t base = (uintptr_t)cairn_map_data(h->m), p = (uintptr_t)data;
  const uint64_t size = cairn_map_size(h->m);
  const bool inside = n > 0 && p >= base && p - base <= size && n <= size - (p - base);
  napi_get_boolean(env, inside && cairn_map_unmap_range(h->m, (uint64_t)(p - base), (uint64_t)n) == 0, &v);
  return v;
}

/*
 * mapDropRange(handle, offset, length): drops those bytes of the file from this mapping and from
 * the page cache, so the next read reads them again; true when the kernel accepted both.
 */
static napi_value map_drop_range(napi_env env, napi_callback_info info) {
  napi_value v;
  map_handle *h;
  int64_t offset, length;
  if (range_args(env, info, "mapDropRange", &h, &offset, &length)) return NULL;
  napi_get_boolean(env, cairn_map_drop_range(h->m, (uint64_t)offset, (uint64_t)length) == 0, &v);
  return v;
}

/* mapFile(path): { buffer, size } viewing the whole file. */
static napi_value map_file(napi_env env, napi_callback_info info) {
  napi_value argv[1], obj;
  cairn_mapping *m;
  if (args_get(env, info, "mapFile", 1, argv) || open_path(env, argv[0], &m)) return NULL;
  napi_value buffer = make_view(env, m, 0, (int64_t)cairn_map_size(m));
  napi_value size = size_value(env, m);
  cairn_map_release(m); /* the view holds its own reference */
  if (!buffer) return NULL;
  napi_create_object(env, &obj);
  napi_set_named_property(env, obj, "buffer", buffer);
  napi_set_named_property(env, obj, "size", size);
  return obj;
}

/*
 * The bytes of an ArrayBuffer, or of a view's own bytes (a typed array's elements, a DataView's
 * range), into *data and *len; false (with a BAD_ARGUMENT thrown naming `fn`) for anything else.
 */
static bool buffer_bytes(napi_env env, napi_value value, const char *fn, void **data, size_t *len) {
  bool is_ab = false, is_view = false;
  *data = NULL;
  *len = 0;
  napi_is_arraybuffer(env, value, &is_ab);
  if (is_ab) {
    napi_get_arraybuffer_info(env, value, data, len);
    return true;
  }
  bool is_data_view = false;
  napi_is_dataview(env, value, &is_data_view);
  if (is_data_view) {
    napi_value ab;
    size_t offset;
    napi_get_dataview_info(env, value, len, data, &ab, &offset);
    return true;
  }
  napi_is_typedarray(env, value, &is_view);
  if (!is_view) {
    args_throw(env, "BAD_ARGUMENT", "%s expects an ArrayBuffer or a typed array", fn);
    return false;
  }
  napi_typedarray_type type;
  size_t n, offset;
  napi_value ab;
  napi_get_typedarray_info(env, value, &type, &n, data, &ab, &offset);
  /* Only the view's own bytes: element size times count. */
  static const size_t elem[] = {1, 1, 1, 2, 2, 4, 4, 4, 8, 8, 8};
  *len = n * ((unsigned)type < sizeof elem / sizeof elem[0] ? elem[type] : 1);
  return true;
}

/*
 * adviseWillNeed(bufferOrView, populate?): true when the kernel accepted the read-ahead hint.
 * With populate, the pages are faulted in before it returns.
 */
static napi_value advise_will_need(napi_env env, napi_callback_info info) {
  /* Arguments not given read as undefined, which buffer_bytes refuses. */
  napi_value argv[2];
  size_t argc = 2;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  bool populate = false;
  if (argc >= 2) napi_get_value_bool(env, argv[1], &populate);
  void *data = NULL;
  size_t len = 0;
  if (!buffer_bytes(env, argv[0], "adviseWillNeed", &data, &len)) return NULL;
  napi_value result;
  napi_get_boolean(env, (populate ? cairn_populate_read(data, len) : cairn_advise_willneed(data, len)) == 0, &result);
  return result;
}

/*
 * populateWrite(bufferOrView): the pages under it faulted in, writable, before it returns, its
 * bytes unchanged (cairn_populate_write); false where the OS cannot.
 */
static napi_value populate_write(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc = 1;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *data = NULL;
  size_t len = 0;
  if (!buffer_bytes(env, argv[0], "populateWrite", &data, &len)) return NULL;
  napi_value result;
  napi_get_boolean(env, cairn_populate_write(data, len) == 0, &result);
  return result;
}

/*
 * adviseHuge(arrayBuffer): huge pages asked for under the buffer's whole 2 MiB pages
 * (cairn_advise_huge), for a large buffer just allocated and not yet touched; true where
 * the kernel took the advice.
 */
static napi_value advise_huge(napi_env env, napi_callback_info info) {
  napi_value argv[1], result;
  size_t argc = 1;
  bool is_ab = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc >= 1) napi_is_arraybuffer(env, argv[0], &is_ab);
  if (!is_ab) {
    args_throw(env, "BAD_ARGUMENT", "adviseHuge expects an ArrayBuffer");
    return NULL;
  }
  void *data = NULL;
  size_t len = 0;
  napi_get_arraybuffer_info(env, argv[0], &data, &len);
  napi_get_boolean(env, data && cairn_advise_huge(data, len) == 0, &result);
  return result;
}

/* evictFile(path): drops the file's pages from the page cache; true on success. */
static napi_value evict_file(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc = 1;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char path[4096];
  size_t len = 0;
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], path, sizeof path, &len) != napi_ok) {
    napi_throw_type_error(env, "BAD_ARGUMENT", "evictFile expects a path");
    return NULL;
  }
  napi_value result;
  napi_get_boolean(env, cairn_evict_file(path) == 0, &result);
  return result;
}

void cairn_register_mmap(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"mapOpen", NULL, map_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mapRange", NULL, map_range, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mapRelease", NULL, map_release, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mapLargeBytes", NULL, map_large_bytes, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mapDropRange", NULL, map_drop_range, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mapUnmapView", NULL, map_unmap_view, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mapFile", NULL, map_file, NULL, NULL, NULL, napi_enumerable, NULL},
      {"adviseWillNeed", NULL, advise_will_need, NULL, NULL, NULL, napi_enumerable, NULL},
      {"populateWrite", NULL, populate_write, NULL, NULL, NULL, napi_enumerable, NULL},
      {"evictFile", NULL, evict_file, NULL, NULL, NULL, napi_enumerable, NULL},
      {"adviseHuge", NULL, advise_huge, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
