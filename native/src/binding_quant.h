/* N-API functions of the matmul/quantization kernels (matmul, getRows, dequantize, quantize). */
#ifndef CAIRN_BINDING_QUANT_H
#define CAIRN_BINDING_QUANT_H
#include <node_api.h>
/* Adds the quantization and matmul functions to the addon's exports. */
void cairn_register_quant(napi_env env, napi_value exports);
#endif
