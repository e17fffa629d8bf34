/* NEON kernels of the quantized matmul. */
#if defined(__aarch64__)
#include "quant_kernels.h"
const quant_kernel_table quant_kernels_neon = {{0}, {0}};
#endif
