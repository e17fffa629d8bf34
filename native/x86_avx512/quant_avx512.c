/* AVX-512 kernels of the quantized matmul: VNNI integer dots, 32 registers for larger tiles. */
#if defined(__x86_64__)
#define QX_TABLE quant_kernels_avx512
#define QX_R 3
#define QX_T 8
#define QX_RV 1
/* Q4_0/Q5_0 rows: with one row the unpacking, not memory, would set the pace (see the header). */
#define QX_RV_NIBBLE 4
#define QX_RV_FLOAT 1
/* Products of the formats with panel kernels take their arithmetic (see the table at the end). */
#define QX_PANEL_ORDER 1
#include "quant_x86_kernels.h"
#endif
