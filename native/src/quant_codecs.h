/*
 * Scalar block codecs: dequantizers and ggml's reference quantizers for every format the kernels
 * handle (bit-exact with ggml), plus cairn's own K-quant quantizers (valid blocks, low error).
 */
#ifndef CAIRN_QUANT_CODECS_H
#define CAIRN_QUANT_CODECS_H

#include <stdint.h>

/* Decodes `nb` blocks (elements, for the float formats) of `type` into dst. Returns 0 or -1. */
int quant_decode_blocks(int type, const void *src, float *dst, int64_t nb);
/* Encodes `nb` blocks of `type` from src. Returns 0 or -1. */
int quant_encode_blocks(int type, const float *src, void *dst, int64_t nb);

/* out[i * cols ..] = dequantized row ids[i] of w (rows of `cols` elements of `type`); ids must be
 * valid rows (the caller checks them). Returns 0 or -1. */
int quant_get_rows(int type, const void *w, int cols, const int32_t *ids, int n_ids, float *out);
/* The same from weights packed by cairn_pack (matmul.h) where the active level reads them (packed may be NULL). */
int quant_get_rows_packed(int type, const void *w, const void *packed, int cols, const int32_t *ids, int n_ids, float *out);

void quant_encode_q2_K(const float *x, void *dst);
void quant_encode_q3_K(const float *x, void *dst);
void quant_encode_q4_K(const float *x, void *dst);
void quant_encode_iq4_xs(const float *x, void *dst);
void quant_encode_iq4_nl(const float *x, void *dst);
void quant_encode_q5_K(const float *x, void *dst);
void quant_encode_q6_K(const float *x, void *dst);

#endif
