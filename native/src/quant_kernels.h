/*
 * The per-instruction-set kernels of the quantized matmul. Each ISA group fills one table; matmul.c
 * picks the active level's table, converts the activations once, and splits the dot products over
 * the thread pool. The kernels only hold inner loops.
 */
#ifndef CAIRN_QUANT_KERNELS_H
#define CAIRN_QUANT_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "quant_formats.h"

/* Converts one f32 activation row of `cols` into the converted layout (quant_formats.h). */
typedef void (*quant_convert_fn)(const float *x, uint8_t *dst, int cols);

/*
 * y[t * y_stride + r] = dot(weight row r, activation row t) for r < nr, t < nt. Weight row r
 * starts at w + r * w_stride; converted activation row t at a + t * a_stride. Each kernel tiles
 * rows x tokens so a weight block is loaded once for several tokens.
 */
typedef void (*quant_gemm_fn)(int cols, const uint8_t *w, size_t w_stride, int nr, const uint8_t *a, size_t a_stride,
                              int nt, float *y, size_t y_stride);

/* Highest GGML type id the tables index. */
#define QUANT_MAX_TYPE 31

typedef struct {
  /* Indexed by the vec-dot type; NULL for F32 (the row is used as is). */
  quant_convert_fn convert[QUANT_MAX_TYPE];
  /* Indexed by the weight type; NULL when the type has no dot product. */
  quant_gemm_fn gemm[QUANT_MAX_TYPE];
} quant_kernel_table;

extern const quant_kernel_table quant_kernels_scalar;
#if defined(__x86_64__)
extern const quant_kernel_table quant_kernels_avx2;
extern const quant_kernel_table quant_kernels_avx512;
#elif defined(__aarch64__)
extern const quant_kernel_table quant_kernels_neon;
#endif

/* Scalar converters, shared by the ISA tables that have no faster one. */
void quant_convert_f16_scalar(const float *x, uint8_t *dst, int cols);
void quant_convert_bf16_scalar(const float *x, uint8_t *dst, int cols);
void quant_convert_q8_0_scalar(const float *x, uint8_t *dst, int cols);
void quant_convert_q8_1_scalar(const float *x, uint8_t *dst, int cols);
void quant_convert_q8_K_scalar(const float *x, uint8_t *dst, int cols);

#endif
