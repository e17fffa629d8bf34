/*
 * Weight-by-activation products for every supported weight type, the way llama.cpp computes them:
 * activations are first converted to the weight type's partner ("vec-dot type": F32 for F32,
 * F16 for F16, BF16 for BF16, Q8_0 for Q4_0/Q5_0/Q8_0, Q8_1 for Q4_1/Q5_1, Q8_K for the K-quants),
 * then each output is one dot product of a weight row with an activation row in that form.
 */
#ifndef CAIRN_MATMUL_H
#define CAIRN_MATMUL_H

#include "cairn.h"

/*
 * y[t * rows + r] = dot(W[r, :], x[t, :]) for t < n, r < rows.
 * W is `rows` rows of `cols` elements of `wtype` in GGUF layout (row r starts at r * row_bytes).
 * x is n x cols f32; y is n x rows f32. Runs on the thread pool. Returns 0, or -1 for an
 * unsupported type or a cols value the type's block size does not divide.
 */
int cairn_matmul(int wtype, const void *w, int rows, int cols, const float *x, int n, float *y);

/*
 * Weights packed once for the active level's products (for AVX-512, Q4_0, IQ4_NL, MXFP4 and the K formats Q4_K, Q5_K, Q6_K in
 * 16-row groups whose vector lanes are the rows): cairn_packed_bytes is the size of wtype's packed rows x cols, 0 where
 * the level packs no such weights; cairn_pack writes them to dst (returns 0, or -1 where the level
 * does not pack them); cairn_matmul_packed is cairn_matmul reading `packed` where it can (the
 * results bit for bit those of w alone, which must stay readable: a level switched since packing,
 * or a piece of rows off the groups, reads w). packed may be NULL.
 */
size_t cairn_packed_bytes(int wtype, int rows, int cols);
int cairn_pack(int wtype, const void *w, int rows, int cols, void *dst);
int cairn_matmul_packed(int wtype, const void *w, const void *packed, int rows, int cols, const float *x, int n, float *y);

/* Dequantizes `n` elements of `type` to f32. Returns 0 or -1. */
int cairn_dequantize(int type, const void *src, float *dst, int64_t n);

/* Quantizes `n` f32 elements to `type` (any supported weight or activation type). Returns 0 or -1. */
int cairn_quantize(int type, const float *src, void *dst, int64_t n);

#endif
