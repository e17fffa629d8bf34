/* arm64 kernels: the portable C, vectorized by the compiler with ARMv8.2-A (fp16, dotprod). */
#if defined(__aarch64__)
#include "ops_portable.h"

const cairn_ops_table cairn_ops_neon = CAIRN_PORTABLE_OPS_TABLE;
#endif
