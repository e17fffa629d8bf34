/* AVX2 kernels of the quantized matmul (FMA, F16C; integer dots with maddubs). */
#if defined(__x86_64__)
#define QX_TABLE quant_kernels_avx2
/* 16 ymm registers: 4 weight rows x 2 tokens of accumulators; one row at a time for one token. */
#define QX_R 4
#define QX_T 2
#define QX_RV 1
/* Q4_0/Q5_0 rows: with one row the unpacking, not memory, would set the pace (see the header). */
#define QX_RV_NIBBLE 8
/* F16/F32 rows: one row's chain of 8-lane adds would bound the pace (74% of the read rate, vs 81% with 8 rows in flight). */
#define QX_RV_FLOAT 8
#include "quant_x86_kernels.h"
#endif
