/* N-API functions of the matmul/quantization kernels (matmul, getRows, dequantize, quantize). */
#ifndef CAIRN_BINDING_QUANT_H
#define CAIRN_BINDING_QUANT_H
#include <node_api.h>
/* Adds the quantization and matmul functions to the addon's exports. */
void cairn_register_quant(napi_env env, napi_value exports);
/* The name of a type the quantization kernels handle ("?" for others). */
const char *quant_type_name(int type);
#endif
