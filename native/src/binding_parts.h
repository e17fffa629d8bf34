/* The groups of N-API functions the addon's init adds to its exports (see binding.c). */
#ifndef CAIRN_BINDING_PARTS_H
#define CAIRN_BINDING_PARTS_H
#include <node_api.h>
/* cpuInfo, setThreads, forceIsa, residentBytes. */
void cairn_register_system(napi_env env, napi_value exports);
/* mapOpen, mapRange, mapRelease, mapFile, adviseWillNeed. */
void cairn_register_mmap(napi_env env, napi_value exports);
/* The float kernels: rmsNorm, rope, softmax, swiglu, swigluOai, geglu, add, storeKv, attention, attentionSpans. */
void cairn_register_ops(napi_env env, napi_value exports);
/* The Mixture-of-Experts kernels: expert batches, expert products, moeCombine. */
void cairn_register_experts(napi_env env, napi_value exports);
#endif
