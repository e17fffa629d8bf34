/* JS functions about the machine and the library itself: CPU, threads, ISA choice, memory. */
#include <stdlib.h>
#include <unistd.h>

#include "binding_args.h"
#include "binding_parts.h"
#include "cairn.h"
#include "cpu_features.h"
#include "pool.h"
#include "membench.h"

static napi_value str(napi_env env, const char *s) {
  napi_value v;
  napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &v);
  return v;
}

static napi_value num(napi_env env, double d) {
  napi_value v;
  napi_create_double(env, d, &v);
  return v;
}

static napi_value string_array(napi_env env, const char **items, int n) {
  napi_value arr;
  napi_create_array_with_length(env, (size_t)n, &arr);
  for (int i = 0; i < n; i++) napi_set_element(env, arr, (uint32_t)i, str(env, items[i]));
  return arr;
}

/* cpuInfo(): { isa, detectedIsa, threads, physicalCores, features, availableIsas } */
static napi_value cpu_info(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value o;
  napi_create_object(env, &o);
  napi_set_named_property(env, o, "isa", str(env, cairn_isa_name(cairn_isa_active())));
  napi_set_named_property(env, o, "detectedIsa", str(env, cairn_isa_name(cairn_isa_detect())));
  napi_set_named_property(env, o, "threads", num(env, cairn_pool_threads()));
  napi_set_named_property(env, o, "physicalCores", num(env, cairn_physical_cores()));
  const char *features[CAIRN_MAX_CPU_FEATURES];
  napi_set_named_property(env, o, "features",
                          string_array(env, features, cairn_cpu_features(features, CAIRN_MAX_CPU_FEATURES)));
  const cairn_isa all[] = {CAIRN_ISA_SCALAR, CAIRN_ISA_AVX2, CAIRN_ISA_AVX512, CAIRN_ISA_AMX, CAIRN_ISA_NEON};
  const int n_all = (int)(sizeof all / sizeof all[0]);
  const char *isas[sizeof all / sizeof all[0]];
  int n_isas = 0;
  for (int i = 0; i < n_all; i++) {
    if (cairn_isa_usable(all[i])) isas[n_isas++] = cairn_isa_name(all[i]);
  }
  napi_set_named_property(env, o, "availableIsas", string_array(env, isas, n_isas));
  return o;
}

/* setThreads(n): 1 <= n <= 256. */
static napi_value set_threads(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int64_t n;
  if (args_get(env, info, "setThreads", 1, argv) || args_int(env, argv[0], "threads", 1, 256, &n)) return NULL;
  cairn_pool_set_threads((int)n);
  return args_undefined(env);
}

/* forceIsa(name | null): null goes back to the detected level. */
static napi_value force_isa(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (args_get(env, info, "forceIsa", 1, argv)) return NULL;
  napi_valuetype t;
  napi_typeof(env, argv[0], &t);
  if (t == napi_null || t == napi_undefined) {
    cairn_isa_force(cairn_isa_detect());
    return args_undefined(env);
  }
  char name[32];
  cairn_isa isa;
  if (args_string(env, argv[0], "isa", name, sizeof name)) return NULL;
  if (cairn_isa_parse(name, &isa) != 0) {
    args_throw(env, "BAD_ARGUMENT", "unknown ISA '%s' (expected scalar, avx2, avx512 or neon)", name);
    return NULL;
  }
  if (cairn_isa_force(isa) != 0) {
    args_throw(env, "BAD_ARGUMENT", "this CPU cannot run the '%s' kernels (detected: %s)", name,
               cairn_isa_name(cairn_isa_detect()));
    return NULL;
  }
  return args_undefined(env);
}

/* residentBytes(): resident set size from /proc/self/statm, 0 where unavailable. */
static napi_value resident_bytes(napi_env env, napi_callback_info info) {
  (void)info;
  double bytes = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f) {
    unsigned long long size_pages, resident_pages;
    if (fscanf(f, "%llu %llu", &size_pages, &resident_pages) == 2) {
      bytes = (double)resident_pages * (double)sysconf(_SC_PAGESIZE);
    }
    fclose(f);
  }
  return num(env, bytes);
}

/* readBandwidth(bytes, runs): best memory read rate in bytes/s on the pool's threads. */
static napi_value read_bandwidth(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  size_t argc = 2;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  double bytes = 512.0 * 1024 * 1024, runs = 5;
  if (argc >= 1) napi_get_value_double(env, argv[0], &bytes);
  if (argc >= 2) napi_get_value_double(env, argv[1], &runs);
  if (!(bytes >= 4096 && bytes <= 64.0 * 1024 * 1024 * 1024) || !(runs >= 1 && runs <= 1000)) {
    napi_throw_range_error(env, "BAD_ARGUMENT", "readBandwidth(bytes, runs): bytes in [4096, 64 GiB], runs in [1, 1000]");
    return NULL;
  }
  const double rate = cairn_read_bandwidth((size_t)bytes, (int)runs);
  if (rate < 0) {
    napi_throw_error(env, "OUT_OF_MEMORY", "readBandwidth: could not allocate its buffer (ask for fewer bytes)");
    return NULL;
  }
  return num(env, rate);
}

/* poolRest(): polling pool workers go to sleep at once. */
static napi_value pool_rest(napi_env env, napi_callback_info info) {
  (void)info;
  cairn_pool_rest();
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

void cairn_register_system(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"cpuInfo", NULL, cpu_info, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setThreads", NULL, set_threads, NULL, NULL, NULL, napi_enumerable, NULL},
      {"forceIsa", NULL, force_isa, NULL, NULL, NULL, napi_enumerable, NULL},
      {"residentBytes", NULL, resident_bytes, NULL, NULL, NULL, napi_enumerable, NULL},
      {"readBandwidth", NULL, read_bandwidth, NULL, NULL, NULL, napi_enumerable, NULL},
      {"poolRest", NULL, pool_rest, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
