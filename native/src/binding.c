/* N-API entry point of the kernel library: each group of functions registers itself. */
#include <node_api.h>

#include "binding_parts.h"
#include "binding_quant.h"

static napi_value init(napi_env env, napi_value exports) {
  cairn_register_system(env, exports);
  cairn_register_mmap(env, exports);
  cairn_register_ops(env, exports);
  cairn_register_quant(env, exports);
  cairn_register_experts(env, exports);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
