/* AVX2 kernels of the quantized matmul (FMA, F16C; integer dots with maddubs). */
#if defined(__x86_64__)
#define QX_TABLE quant_kernels_avx2
/*
 * 16 ymm registers: 1 weight row x 8 tokens of accumulators for a prompt, so that each block's
 * unpacking (the costly part on AVX2: maddubs needs the nibbles spread and the K-quants' scales and
 * mins) serves 8 tokens. Measured on an AVX2-only AMD EPYC (bench/RESULTS.md), prefill of 128
 * tokens: 4x2 15.9 / 40.0 / 25.8 tok/s (llama-1b Q4_K_M / qwen3-0.6b Q8_0 / Q4_0), 2x4 22.9 / - / -,
 * 2x6 26.0 / 43.0 / 35.7, 1x8 26.4 / 47.1 / 34.0. One row at a time for one token.
 */
#define QX_R 1
#define QX_T 8
#define QX_RV 1
/*
 * Q5_0 (and Q4_1, Q5_1) rows: with one row the unpacking, not memory, would set the pace (see the header). On
 * the AVX2-only EPYC (128-bit units), 2 threads over an 8192x2048 matrix: 8 rows 8.1 / 7.0 GB/s
 * (Q4_0 / Q5_0), 4 rows 8.3-8.7 / 7.5-7.8, 2 rows 8.0-8.1 / 7.5-7.7, 6 rows 7.8-8.1 / 7.1-7.2.
 */
#define QX_RV_NIBBLE 4
/* F16/F32 rows: one row's chain of 8-lane adds would bound the pace (74% of the read rate, vs 81% with 8 rows in flight). */
#define QX_RV_FLOAT 8
/*
 * Float weights over several tokens: 3 rows x 4 tokens a tile (12 sums, 3 weight vectors and one
 * activation vector: the 16 registers). The 1 x 8 tiles of the quants loaded 9 vectors per 8
 * multiply-adds, which the load ports, not the FMAs, paced; these load 7 per 12. Each row and
 * token's sum is formed as before, so the results are the same bit for bit. AVX2 code on a Zen 5
 * host, F16, 2 threads, ms: 8192 x 2048 x 512 tokens 168-171 -> 86-87, 2048 x 8192 x 512 124-130 ->
 * 103-104, 16 tokens 4.8-4.9 -> 3.1 and 4.9-5.1 -> 3.6-3.8 (2 x 6: 105 and 112; 2 x 4: 111-114 and 125).
 */
#define QX_R_FLOAT 3
#define QX_T_FLOAT 4
/* Q4_0 and MXFP4 with the rows in the vector lanes (nibble_lanes_avx2.c): the row tiles' arithmetic is not used for them. */
#include <stddef.h>
#include <stdint.h>
void quant_q4_0_lanes_avx2(int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, int nt, float *y, size_t ys);
void quant_mxfp4_lanes_avx2(int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, int nt, float *y, size_t ys);
#define QX_Q4_0_GEMM quant_q4_0_lanes_avx2
#define QX_MXFP4_GEMM quant_mxfp4_lanes_avx2
#include "quant_x86_kernels.h"
#endif
