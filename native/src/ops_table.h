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
  /* x = f32(f16(x)), round to nearest even. */
  void (*round_f16)(float *x, int64_t n);
  /*
   * Scores of nh query heads against `rows` cache rows: out[g*out_stride + r] =
   * dot(k + r*stride, q + g*d, d) * scale, f32 accumulation. q is f32 (for an F16 cache, values
   * already rounded to f16). Each row's K values are converted once for all heads.
   */
  void (*dot_rows_f16)(const uint16_t *k, int64_t stride, int64_t rows, const float *q, int64_t nh, int64_t d,
                       float scale, float *out, int64_t out_stride);
  void (*dot_rows_f32)(const float *k, int64_t stride, int64_t rows, const float *q, int64_t nh, int64_t d,
                       float scale, float *out, int64_t out_stride);
  /*
   * Weighted sums for nh heads: out[g*d + c] += sum over r < rows (in order) of
   * w[g*w_stride + r] * v[r*stride + c], f32 accumulation; each V row is converted once.
   */
  void (*wsum_rows_f16)(const uint16_t *v, int64_t stride, int64_t rows, const float *w, int64_t w_stride, int64_t nh,
                        int64_t d, float *out);
  void (*wsum_rows_f32)(const float *v, int64_t stride, int64_t rows, const float *w, int64_t w_stride, int64_t nh,
                        int64_t d, float *out);
  /*
   * The same over a Q8_0 cache (`stride` in bytes; d a multiple of 32). Scores: queries given as
   * Q8_0 blocks (d/32 blocks of 34 bytes each, one query after another), per block the integer dot
   * times both scales, summed in f32. Weighted sums: f32 accumulation of each row's quants
   * times its block scale and weight (in either order of the two products).
   */
  void (*dot_rows_q8)(const uint8_t *k, int64_t stride, int64_t rows, const uint8_t *q, int64_t nh, int64_t d, float scale,
                      float *out, int64_t out_stride);
  void (*wsum_rows_q8)(const uint8_t *v, int64_t stride, int64_t rows, const float *w, int64_t w_stride, int64_t nh,
                       int64_t d, float *out);
  /*
   * The same over a tiled Q8_0 cache (ops.h CAIRN_KV_Q8_0_TILES): `rows` rows from lane `lane0` of
   * the tile at k (or v), through the tiles after it; out[g*out_stride + i] is the score of the
   * i-th of them, w[g*w_stride + i] its weight.
   */
  void (*dot_tiles_q8)(const uint8_t *k, int lane0, int64_t rows, const uint8_t *q, int64_t nh, int64_t d, float scale,
                       float *out, int64_t out_stride);
  void (*wsum_tiles_q8)(const uint8_t *v, int lane0, int64_t rows, const float *w, int64_t w_stride, int64_t nh, int64_t d,
                        float *out);
} cairn_ops_table;

/* The table of the active ISA level (see cairn_isa_active). */
const cairn_ops_table *cairn_ops_active(void);

extern const cairn_ops_table cairn_ops_scalar;
#if defined(__x86_64__)
extern const cairn_ops_table cairn_ops_avx2;
extern const cairn_ops_table cairn_ops_avx512;
#elif defined(__aarch64__)
extern const cairn_ops_table cairn_ops_neon;
#endif

#endif
