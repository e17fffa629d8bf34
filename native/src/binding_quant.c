/* Placeholder until the matmul/quantization kernels land: registers nothing. */
#include "binding_quant.h"
void cairn_register_quant(napi_env env, napi_value exports) { (void)env; (void)exports; }
