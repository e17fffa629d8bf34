/* AVX-512 kernels of the quantized matmul (VNNI integer dots). */
#if defined(__x86_64__)
#include "quant_kernels.h"
const quant_kernel_table quant_kernels_avx512 = {{0}, {0}};
#endif
