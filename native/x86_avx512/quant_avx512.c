/* AVX-512 kernels of the quantized matmul: VNNI integer dots, 32 registers for larger tiles. */
#if defined(__x86_64__)
#define QX_TABLE quant_kernels_avx512
#define QX_R 3
#define QX_T 8
#define QX_RV 1
/* Q4_0/Q5_0 rows: with one row the unpacking, not memory, would set the pace (see the header). */
#define QX_RV_NIBBLE 4
#define QX_RV_FLOAT 1
/*
 * One token's float rows past QX_FLOAT_LONG bytes (an F16 row of 8192) four at a time: on a Zen 5
 * host the 2048 x 8192 F16 product from memory took 0.78-0.81 ms one row a tile, 0.64-0.65 four
 * (0.68-0.70 two), the results the same (each row one chain either way).
 */
#define QX_RV_FLOAT_LONG 4
/*
 * Float weights over several tokens: 4 rows x 6 tokens a tile (24 sums, 4 weight vectors, one
 * activation vector in registers). Measured against 3 x 8 (F16, 64 tokens, 2048 x 8192): 187
 * against 155 GFLOP/s; 6 x 4 and 5 x 5 between them; 2 x 12 and 8 x 3 slower (bench/RESULTS.md).
 */
#define QX_R_FLOAT 4
#define QX_T_FLOAT 6
/* Products of the formats with panel kernels take their arithmetic (see the table at the end). */
#define QX_PANEL_ORDER 1
#include "quant_x86_kernels.h"
#endif
