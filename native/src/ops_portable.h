/*
 * Portable C versions of the float-kernel primitives (see ops_table.h). Included by each ISA
 * group, so the compiler vectorizes them with that group's flags; the x86 groups replace the
 * hot ones with intrinsics. Operation order follows ggml's scalar code.
 */
#ifndef CAIRN_OPS_PORTABLE_H
#define CAIRN_OPS_PORTABLE_H

#include <math.h>
#include <string.h>

#include "quant_formats.h"
#include "ops.h"
#include "ops_table.h"

#if defined(__F16C__)
#include <immintrin.h>

/* A Q8_0 block scale (f16) as f32 by the F16C conversion: exact, as quant_half_to_f32, whose
   branches per row and block cost the x86 Q8_0 cache kernels much of their time. */
static inline float q8_scale(const block_q8_0 *b) { return _cvtsh_ss(b->d); }
#endif

static double portable_sum_squares(const float *x, int64_t n) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; i++) sum += (double)(x[i] * x[i]);
  return sum;
}

static void portable_scale_mul(const float *x, float s, const float *w, float *y, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = (x[i] * s) * w[i];
}

static void portable_scale(float *y, float s, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] *= s;
}

static float portable_max(const float *x, int64_t n) {
  float m = -INFINITY;
  for (int64_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
  return m;
}

static double portable_exp_sum(const float *x, float m, float *y, int64_t n) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; i++) {
    const float e = expf(x[i] - m);
    y[i] = e;
    sum += (double)e;
  }
  return sum;
}

static void portable_swiglu(const float *g, const float *u, float *y, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = (g[i] / (1.0f + expf(-g[i]))) * u[i];
}

static void portable_geglu(const float *g, const float *u, float *y, int64_t n, const float *table) {
  for (int64_t i = 0; i < n; i++) {
    const float x = g[i];
    if (x <= -10.0f) {
      y[i] = 0.0f;
    } else if (x >= 10.0f) {
      y[i] = x * u[i];
    } else {
      y[i] = table[quant_f32_to_half(x)] * u[i];
    }
  }
}

static void portable_add(const float *a, const float *b, float *y, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

static void portable_to_f16(const float *x, uint16_t *y, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = quant_f32_to_half(x[i]);
}

static void portable_round_f16(float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) x[i] = quant_half_to_f32(quant_f32_to_half(x[i]));
}

static void portable_dot_rows_f16(const uint16_t *k, int64_t stride, int64_t rows, const float *q, int64_t nh, int64_t d,
                                  float scale, float *out, int64_t out_stride) {
  for (int64_t r = 0; r < rows; r++) {
    const uint16_t *kr = k + r * stride;
    for (int64_t g = 0; g < nh; g++) {
      float sum = 0.0f;
      for (int64_t i = 0; i < d; i++) sum += quant_half_to_f32(kr[i]) * q[g * d + i];
      out[g * out_stride + r] = sum * scale;
    }
  }
}

static void portable_dot_rows_f32(const float *k, int64_t stride, int64_t rows, const float *q, int64_t nh, int64_t d,
                                  float scale, float *out, int64_t out_stride) {
  for (int64_t r = 0; r < rows; r++) {
    const float *kr = k + r * stride;
    for (int64_t g = 0; g < nh; g++) {
      float sum = 0.0f;
      for (int64_t i = 0; i < d; i++) sum += kr[i] * q[g * d + i];
      out[g * out_stride + r] = sum * scale;
    }
  }
}

static void portable_wsum_rows_f16(const uint16_t *v, int64_t stride, int64_t rows, const float *w, int64_t w_stride,
                                   int64_t nh, int64_t d, float *out) {
  for (int64_t r = 0; r < rows; r++) {
    const uint16_t *vr = v + r * stride;
    for (int64_t g = 0; g < nh; g++) {
      const float wr = w[g * w_stride + r];
      for (int64_t i = 0; i < d; i++) out[g * d + i] += wr * quant_half_to_f32(vr[i]);
    }
  }
}

static void portable_wsum_rows_f32(const float *v, int64_t stride, int64_t rows, const float *w, int64_t w_stride,
                                   int64_t nh, int64_t d, float *out) {
  for (int64_t r = 0; r < rows; r++) {
    const float *vr = v + r * stride;
    for (int64_t g = 0; g < nh; g++) {
      const float wr = w[g * w_stride + r];
      for (int64_t i = 0; i < d; i++) out[g * d + i] += wr * vr[i];
    }
  }
}

static void portable_dot_rows_q8(const uint8_t *k, int64_t stride, int64_t rows, const uint8_t *q, int64_t nh, int64_t d,
                                 float scale, float *out, int64_t out_stride) {
  const int64_t nb = d / QK;
  for (int64_t r = 0; r < rows; r++) {
    const block_q8_0 *kb = (const block_q8_0 *)(k + r * stride);
    for (int64_t g = 0; g < nh; g++) {
      const block_q8_0 *qb = (const block_q8_0 *)q + g * nb;
      float sum = 0.0f;
      for (int64_t b = 0; b < nb; b++) {
        int32_t isum = 0;
        for (int i = 0; i < QK; i++) isum += (int32_t)kb[b].qs[i] * (int32_t)qb[b].qs[i];
        sum += (float)isum * (quant_half_to_f32(kb[b].d) * quant_half_to_f32(qb[b].d));
      }
      out[g * out_stride + r] = sum * scale;
    }
  }
}

static void portable_wsum_rows_q8(const uint8_t *v, int64_t stride, int64_t rows, const float *w, int64_t w_stride,
                                  int64_t nh, int64_t d, float *out) {
  for (int64_t r = 0; r < rows; r++) {
    const block_q8_0 *vb = (const block_q8_0 *)(v + r * stride);
    for (int64_t g = 0; g < nh; g++) {
      const float wr = w[g * w_stride + r];
      for (int64_t i = 0; i < d; i++) out[g * d + i] += wr * (quant_half_to_f32(vb[i / QK].d) * (float)vb[i / QK].qs[i % QK]);
    }
  }
}

/* Row r's quant e (a head of nb blocks) of a key tile (ops.h): its dword e/4's vector, lane r, byte e%4, less 128. */
static inline int32_t tile_key_quant(const uint8_t *tile, int r, int64_t e) {
  return (int32_t)tile[(e / 4) * 64 + 4 * r + e % 4] - 128;
}

/* Row r's scale of block b of a tile with nb blocks a head (keys and values alike). */
static inline float tile_scale(const uint8_t *tile, int64_t nb, int r, int64_t b) {
  uint16_t h;
  memcpy(&h, tile + 512 * nb + 32 * b + 2 * r, 2);
  return quant_half_to_f32(h);
}

static void portable_dot_tiles_q8(const uint8_t *k, int lane0, int64_t rows, const uint8_t *q, int64_t nh, int64_t d,
                                  float scale, float *out, int64_t out_stride) {
  const int64_t nb = d / QK, tile_bytes = CAIRN_KV_TILE_ROWS * nb * (int64_t)sizeof(block_q8_0);
  for (int64_t i = 0; i < rows; i++) {
    const int64_t at = lane0 + i;
    const uint8_t *tile = k + at / CAIRN_KV_TILE_ROWS * tile_bytes;
    const int r = (int)(at % CAIRN_KV_TILE_ROWS);
    for (int64_t g = 0; g < nh; g++) {
      const block_q8_0 *qb = (const block_q8_0 *)q + g * nb;
      float sum = 0.0f;
      for (int64_t b = 0; b < nb; b++) {
        int32_t isum = 0;
        for (int j = 0; j < QK; j++) isum += tile_key_quant(tile, r, b * QK + j) * (int32_t)qb[b].qs[j];
        sum += (float)isum * (tile_scale(tile, nb, r, b) * quant_half_to_f32(qb[b].d));
      }
      out[g * out_stride + i] = sum * scale;
    }
  }
}

static void portable_wsum_tiles_q8(const uint8_t *v, int lane0, int64_t rows, const float *w, int64_t w_stride, int64_t nh,
                                   int64_t d, float *out) {
  const int64_t nb = d / QK, tile_bytes = CAIRN_KV_TILE_ROWS * nb * (int64_t)sizeof(block_q8_0);
  for (int64_t i = 0; i < rows; i++) {
    const int64_t at = lane0 + i;
    const uint8_t *tile = v + at / CAIRN_KV_TILE_ROWS * tile_bytes;
    const int r = (int)(at % CAIRN_KV_TILE_ROWS);
    const int8_t *qs = (const int8_t *)(tile + (int64_t)r * d);
    for (int64_t b = 0; b < nb; b++) {
      const float dv = tile_scale(tile, nb, r, b);
      for (int64_t g = 0; g < nh; g++) {
        const float wr = w[g * w_stride + i];
        for (int64_t c = b * QK; c < (b + 1) * QK; c++) out[g * d + c] += wr * (dv * (float)qs[c]);
      }
    }
  }
}

/*
 * Defines NAME (the table's score kernel over K rows of type KT) calling NAME##_body, an always-inline
 * body, with the common head sizes 64, 128 and 256 (Gemma) as constants: their loops unroll whole,
 * with no lane masks or leftover-column code (256: one KV head of 4096 F16 rows 88 -> 74 us on Zen
 * 5, two threads). The same arithmetic for every size. Shared by the ISA groups.
 */
#define CAIRN_DOT_ROWS_HEAD_SIZES(NAME, KT)                                                                     \
  static void NAME(const KT *k, int64_t stride, int64_t rows, const float *q, int64_t nh, int64_t d, float scale, \
                   float *out, int64_t out_stride) {                                                            \
    if (d == 64) NAME##_body(k, stride, rows, q, nh, 64, scale, out, out_stride);                               \
    else if (d == 128) NAME##_body(k, stride, rows, q, nh, 128, scale, out, out_stride);                        \
    else if (d == 256) NAME##_body(k, stride, rows, q, nh, 256, scale, out, out_stride);                        \
    else NAME##_body(k, stride, rows, q, nh, d, scale, out, out_stride);                                        \
  }

/*
 * Runs CALL once for each group of up to four heads of nh: g is the group's first head and ng its
 * size, declared as a constant in each branch, so an always-inline body that CALL names is
 * compiled once per group size with its loops over heads unrolled. Shared by the ISA groups'
 * attention loops, which take up to four heads at once.
 */
#define CAIRN_FOR_HEAD_GROUPS(nh, g, ng, CALL)              \
  for (int64_t g = 0; g < (nh); g += 4) {                   \
    const int64_t ng##_left = (nh) - g;                     \
    if (ng##_left >= 4) {                                   \
      const int ng = 4;                                     \
      CALL;                                                 \
    } else if (ng##_left == 3) {                            \
      const int ng = 3;                                     \
      CALL;                                                 \
    } else if (ng##_left == 2) {                            \
      const int ng = 2;                                     \
      CALL;                                                 \
    } else {                                                \
      const int ng = 1;                                     \
      CALL;                                                 \
    }                                                       \
  }

/* The whole portable table, for groups with no hand-written kernels. */
#define CAIRN_PORTABLE_OPS_TABLE                                                                       \
  {                                                                                                    \
    portable_sum_squares, portable_scale_mul, portable_scale, portable_max, portable_exp_sum,          \
        portable_swiglu, portable_geglu, portable_add, portable_to_f16, portable_round_f16,            \
        portable_dot_rows_f16, portable_dot_rows_f32, portable_wsum_rows_f16, portable_wsum_rows_f32,  \
        portable_dot_rows_q8, portable_wsum_rows_q8, portable_dot_tiles_q8, portable_wsum_tiles_q8     \
  }

#endif
