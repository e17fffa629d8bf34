/*
 * The per-instruction-set primitives the float kernels are built from. Each ISA group fills one
 * table; ops.c splits the work and calls the table of the active level, so the ISA files hold
 * only inner loops.
 */
#ifndef CAIRN_OPS_TABLE_H
#define CAIRN_OPS_TABLE_H

#include <stdint.h>

typedef struct {
  /* Sum of x[i]*x[i] (each product rounded to f32), accumulated in f64 like ggml. */
  double (*sum_squares)(const float *x, int64_t n);
  /* y = (x * s) * w, rounding after each product. y may alias x. */
  void (*scale_mul)(const float *x, float s, const float *w, float *y, int64_t n);
  /* y = x * s. */
  void (*scale)(float *y, float s, int64_t n);
  /* max of x (n >= 1). */
  float (*max)(const float *x, int64_t n);
  /* y = exp(x - m); returns the sum of y in f64. y may alias x. */
  double (*exp_sum)(const float *x, float m, float *y, int64_t n);
  /* y = silu(g) * u. */
  void (*swiglu)(const float *g, const float *u, float *y, int64_t n);
  /* y = table[f16(g)] * u, with the <= -10 and >= 10 cut-offs. */
  void (*geglu)(const float *g, const float *u, float *y, int64_t n, const float *table);
  /* y = a + b. */
  void (*add)(const float *a, const float *b, float *y, int64_t n);
  /* f32 -> f16, round to nearest even. */
  void (*to_f16)(const float *x, uint16_t *y, int64_t n);
  /* Dot products with f32 accumulation. */
  float (*dot_f16)(const uint16_t *a, const uint16_t *b, int64_t n);
  float (*dot_f32)(const float *a, const float *b, int64_t n);
  /* y += a * x. */
  void (*axpy_f16)(float a, const uint16_t *x, float *y, int64_t n);
  void (*axpy_f32)(float a, const float *x, float *y, int64_t n);
} cairn_ops_table;

extern const cairn_ops_table cairn_ops_scalar;
#if defined(__x86_64__)
extern const cairn_ops_table cairn_ops_avx2;
extern const cairn_ops_table cairn_ops_avx512;
#elif defined(__aarch64__)
extern const cairn_ops_table cairn_ops_neon;
#endif

#endif
