/*
 * Expert products of Mixture-of-Experts layers (llama.cpp's mul_mat_id) and the weighted sum of
 * the experts' outputs. See src/kernels/api.ts (createExpertBatch, prepareExperts, expertMatmul,
 * moeCombine) for the contract.
 *
 * An expert batch lives in one caller-owned buffer (a JS Uint8Array): a header, the routing grouped
 * by expert, and the activation rows converted once and stored grouped, so that each expert's rows
 * are one strided block the matmul kernels read directly. The header is validated on every use, so
 * a buffer changed behind the library's back gives wrong numbers at worst, never a bad access.
 */
#ifndef CAIRN_EXPERTS_H
#define CAIRN_EXPERTS_H

#include <stddef.h>
#include <stdint.h>

/* Bounds on a layer's experts and on the experts one token uses. */
#define CAIRN_MAX_EXPERTS 65536
#define CAIRN_MAX_EXPERTS_USED 256

/* Bytes of a batch buffer for the shape (slack for 64-byte alignment included); 0 when the
 * weight type has no dot product or the shape is out of range. */
size_t cairn_expert_batch_bytes(int wtype, int n_experts, int n_used, int cols, int max_tokens);

/* Starts a batch in `buf` (of `bytes`). Returns 0, or -1 when the shape is bad or buf too small. */
int cairn_expert_batch_init(void *buf, size_t bytes, int wtype, int n_experts, int n_used, int cols, int max_tokens);

/* The shape a valid batch buffer holds; returns 0, or -1 when `buf` is not a valid batch. */
typedef struct {
  int n_experts, n_used, cols, max_tokens;
  int n_tokens;  /* of the current preparation */
  int vec_type;  /* activation form of the current preparation, -1 before the first */
  int float_rows; /* 1: rows sized for float activations (any weight type) */
} cairn_expert_shape;
int cairn_expert_batch_shape(const void *buf, size_t bytes, cairn_expert_shape *out);

/*
 * Converts the activations for weights of `wtype` and groups the pairs by expert. ids: n_tokens *
 * n_used expert ids, each in [0, n_experts) (the caller checks them); x: n_tokens rows (per_slot 0)
 * or n_tokens * n_used rows (per_slot 1) of cols. Returns 0, or -1 when the batch cannot hold
 * this preparation (type, size).
 */
int cairn_expert_prepare(void *buf, size_t bytes, int wtype, const float *x, int n_tokens, const int32_t *ids,
                         int per_slot);

/*
 * y[p * rows + r] = dot(W[ids[p]][r, :], activation row of pair p) (+ bias[ids[p] * rows + r]) for
 * every pair p of the prepared batch. w: n_experts x rows x cols of wtype. packed (may be NULL):
 * w packed as one matrix by cairn_pack (matmul.h), read where the active level can (rows a
 * multiple of 16), with the same results. Returns 0; -1 when the batch is not prepared for wtype's
 * activation form or is inconsistent; -2 when scratch memory could not be allocated.
 */
int cairn_expert_matmul(const void *buf, size_t bytes, int wtype, const void *w, const void *packed, int rows, float *y, const float *bias);

/* out[t, :] = sum over s (in order) of weights[t * n_used + s] * y[t * n_used + s, :], rows of dim. */
void cairn_moe_combine(const float *y, const float *weights, int64_t n_tokens, int64_t n_used, int64_t dim, float *out);

#endif
