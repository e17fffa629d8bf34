/*
 * Portable kernels of the quantized matmul: the activation converters (llama.cpp CPU backend
 * rules) and plain-C dot products with llama.cpp's integer semantics. They serve CPUs without a
 * SIMD path and are what the SIMD kernels are checked against.
 */
#include <math.h>

#include "quant_iq.h"
#include "quant_kernels.h"

/* ---- activation converters ---- */

void quant_convert_f16_scalar(const float *x, uint8_t *dst, int cols) {
  float *out = (float *)dst;
  for (int i = 0; i < cols; i++) out[i] = quant_half_to_f32(quant_f32_to_half(x[i]));
}

void quant_convert_bf16_scalar(const float *x, uint8_t *dst, int cols) {
  float *out = (float *)dst;
  for (int i = 0; i < cols; i++) out[i] = quant_bf16_to_f32(quant_f32_to_bf16(x[i]));
}

/*
 * One 32-element block under the CPU backend's Q8_0/Q8_1 rule: inverse scale 127/amax and
 * rounding to nearest even. Returns the sum of the quants; *d is the f32 scale amax/127.
 */
static int convert_block_q8(const float *x, int8_t *qs, float *d) {
  float amax = 0;
  for (int j = 0; j < QK; j++) amax = fmaxf(amax, fabsf(x[j]));
  const float id = amax != 0 ? 127.f / amax : 0.f;
  int sum = 0;
  for (int j = 0; j < QK; j++) {
    qs[j] = (int8_t)quant_nearest_int(x[j] * id);
    sum += qs[j];
  }
  *d = amax / 127.f;
  return sum;
}

void quant_convert_q8_0_scalar(const float *x, uint8_t *dst, int cols) {
  const int nb = cols / QK;
  float *d = (float *)(dst + cols);
  for (int b = 0; b < nb; b++) {
    float db;
    convert_block_q8(x + QK * b, (int8_t *)dst + QK * b, &db);
    d[b] = quant_half_to_f32(quant_f32_to_half(db));
  }
}

void quant_convert_q8_1_scalar(const float *x, uint8_t *dst, int cols) {
  const int nb = cols / QK;
  float *d = (float *)(dst + cols);
  float *s = (float *)(dst + cols + (size_t)nb * 4);
  for (int b = 0; b < nb; b++) {
    float db;
    const int sum = convert_block_q8(x + QK * b, (int8_t *)dst + QK * b, &db);
    d[b] = quant_half_to_f32(quant_f32_to_half(db));
    s[b] = quant_half_to_f32(quant_f32_to_half(db * sum));
  }
}

void quant_convert_q8_K_scalar(const float *x, uint8_t *dst, int cols) {
  const int nb = cols / QK_K;
  int8_t *qs = (int8_t *)dst;
  float *d = (float *)(dst + cols);
  int16_t *bsums = (int16_t *)(dst + cols + (size_t)nb * 4);
  for (int b = 0; b < nb; b++) {
    const float *xb = x + QK_K * b;
    int8_t *q = qs + QK_K * b;
    float amax = 0, max = 0;
    for (int j = 0; j < QK_K; j++) {
      if (fabsf(xb[j]) > amax) {
        amax = fabsf(xb[j]);
        max = xb[j];
      }
    }
    if (amax == 0) {
      d[b] = 0;
      for (int j = 0; j < QK_K; j++) q[j] = 0;
      for (int g = 0; g < QK_K / 16; g++) bsums[16 * b + g] = 0;
      continue;
    }
    const float iscale = -127.f / max;
    for (int j = 0; j < QK_K; j++) {
      const int v = quant_nearest_int(iscale * xb[j]);
      q[j] = (int8_t)(v > 127 ? 127 : v);
    }
    for (int g = 0; g < QK_K / 16; g++) {
      int sum = 0;
      for (int i = 0; i < 16; i++) sum += q[16 * g + i];
      bsums[16 * b + g] = (int16_t)sum;
    }
    d[b] = 1 / iscale;
  }
}

/* ---- dot products of one weight row with one converted activation row ---- */

static float dot_f32(int cols, const uint8_t *w, const uint8_t *a) {
  const float *x = (const float *)a;
  double sum = 0;
  for (int i = 0; i < cols; i++) {
    float wi;
    memcpy(&wi, w + 4 * (size_t)i, 4);
    sum += wi * x[i];
  }
  return (float)sum;
}

static float dot_f16(int cols, const uint8_t *w, const uint8_t *a) {
  const float *x = (const float *)a;
  double sum = 0;
  for (int i = 0; i < cols; i++) {
    quant_half h;
    memcpy(&h, w + 2 * (size_t)i, 2);
    sum += quant_half_to_f32(h) * x[i];
  }
  return (float)sum;
}

static float dot_bf16(int cols, const uint8_t *w, const uint8_t *a) {
  const float *x = (const float *)a;
  double sum = 0;
  for (int i = 0; i < cols; i++) {
    uint16_t h;
    memcpy(&h, w + 2 * (size_t)i, 2);
    sum += quant_bf16_to_f32(h) * x[i];
  }
  return (float)sum;
}

/* Activation parts of a Q8_0/Q8_1 row. */
#define Q8_ROW(a, cols)                          \
  const int8_t *aq = (const int8_t *)(a);        \
  const float *ad = (const float *)((a) + (cols)); \
  const float *aux = (const float *)((a) + (cols) + (size_t)((cols) / QK) * 4)

static float dot_q4_0(int cols, const uint8_t *w, const uint8_t *a) {
  Q8_ROW(a, cols);
  (void)aux;
  const block_q4_0 *x = (const block_q4_0 *)w;
  float sum = 0;
  for (int b = 0; b < cols / QK; b++) {
    const int8_t *q = aq + QK * b;
    int sumi = 0;
    for (int j = 0; j < QK / 2; j++) {
      sumi += ((x[b].qs[j] & 0xf) - 8) * q[j] + ((x[b].qs[j] >> 4) - 8) * q[j + QK / 2];
    }
    sum += sumi * quant_half_to_f32(x[b].d) * ad[b];
  }
  return sum;
}

static float dot_q4_1(int cols, const uint8_t *w, const uint8_t *a) {
  Q8_ROW(a, cols);
  const block_q4_1 *x = (const block_q4_1 *)w;
  float sum = 0;
  for (int b = 0; b < cols / QK; b++) {
    const int8_t *q = aq + QK * b;
    int sumi = 0;
    for (int j = 0; j < QK / 2; j++) sumi += (x[b].qs[j] & 0xf) * q[j] + (x[b].qs[j] >> 4) * q[j + QK / 2];
    sum += (quant_half_to_f32(x[b].d) * ad[b]) * sumi + quant_half_to_f32(x[b].m) * aux[b];
  }
  return sum;
}

static int q5_quant(const uint8_t *qs, uint32_t qh, int j) {
  const int nib = j < QK / 2 ? qs[j] & 0xf : qs[j - QK / 2] >> 4;
  return nib | (int)(((qh >> j) & 1) << 4);
}

static float dot_q5_0(int cols, const uint8_t *w, const uint8_t *a) {
  Q8_ROW(a, cols);
  (void)aux;
  const block_q5_0 *x = (const block_q5_0 *)w;
  float sum = 0;
  for (int b = 0; b < cols / QK; b++) {
    const int8_t *q = aq + QK * b;
    uint32_t qh;
    memcpy(&qh, x[b].qh, 4);
    int sumi = 0;
    for (int j = 0; j < QK; j++) sumi += (q5_quant(x[b].qs, qh, j) - 16) * q[j];
    sum += sumi * quant_half_to_f32(x[b].d) * ad[b];
  }
  return sum;
}

static float dot_q5_1(int cols, const uint8_t *w, const uint8_t *a) {
  Q8_ROW(a, cols);
  const block_q5_1 *x = (const block_q5_1 *)w;
  float sum = 0;
  for (int b = 0; b < cols / QK; b++) {
    const int8_t *q = aq + QK * b;
    uint32_t qh;
    memcpy(&qh, x[b].qh, 4);
    int sumi = 0;
    for (int j = 0; j < QK; j++) sumi += q5_quant(x[b].qs, qh, j) * q[j];
    sum += (quant_half_to_f32(x[b].d) * ad[b]) * sumi + quant_half_to_f32(x[b].m) * aux[b];
  }
  return sum;
}

static float dot_q8_0(int cols, const uint8_t *w, const uint8_t *a) {
  Q8_ROW(a, cols);
  (void)aux;
  const block_q8_0 *x = (const block_q8_0 *)w;
  float sum = 0;
  for (int b = 0; b < cols / QK; b++) {
    const int8_t *q = aq + QK * b;
    int sumi = 0;
    for (int j = 0; j < QK; j++) sumi += x[b].qs[j] * q[j];
    sum += sumi * quant_half_to_f32(x[b].d) * ad[b];
  }
  return sum;
}

/* MXFP4 with Q8_0 activations: ggml's block scale d_a * e8m0/2 times the integer dot of the doubled codes. */
static float dot_mxfp4(int cols, const uint8_t *w, const uint8_t *a) {
  Q8_ROW(a, cols);
  (void)aux;
  const block_mxfp4 *x = (const block_mxfp4 *)w;
  float sum = 0;
  for (int b = 0; b < cols / QK; b++) {
    const int8_t *q = aq + QK * b;
    int sumi = 0;
    for (int j = 0; j < QK / 2; j++) {
      sumi += quant_mxfp4_values[x[b].qs[j] & 0xf] * q[j] + quant_mxfp4_values[x[b].qs[j] >> 4] * q[j + QK / 2];
    }
    sum += (ad[b] * quant_e8m0_half(x[b].e)) * sumi;
  }
  return sum;
}

/* IQ4_NL with Q8_0 activations: the integer dot of the code values, times d x da. */
static float dot_iq4_nl(int cols, const uint8_t *w, const uint8_t *a) {
  Q8_ROW(a, cols);
  (void)aux;
  const block_iq4_nl *x = (const block_iq4_nl *)w;
  float sum = 0;
  for (int b = 0; b < cols / QK; b++) {
    const int8_t *q = aq + QK * b;
    int sumi = 0;
    for (int j = 0; j < QK / 2; j++) sumi += quant_iq4_values[x[b].qs[j] & 0xf] * q[j] + quant_iq4_values[x[b].qs[j] >> 4] * q[j + QK / 2];
    sum += (quant_half_to_f32(x[b].d) * ad[b]) * (float)sumi;
  }
  return sum;
}

/* Activation parts of a Q8_K row. */
#define Q8K_ROW(a, cols)                                  \
  const int8_t *aq = (const int8_t *)(a);                 \
  const float *ad = (const float *)((a) + (cols));          \
  const int16_t *bsums = (const int16_t *)((a) + (cols) + (size_t)((cols) / QK_K) * 4)

/* Q4_K and Q5_K: Σ_j scale_j (quants · activations of sub-block j) - Σ_j min_j (activation sums). */
static float dot_scale_min_k(int cols, const uint8_t *qs_base, const uint8_t *qh_base, const uint8_t *scales_base,
                             const uint8_t *d_base, size_t block_bytes, const uint8_t *a) {
  Q8K_ROW(a, cols);
  float sum = 0;
  for (int b = 0; b < cols / QK_K; b++) {
    const uint8_t *qs = qs_base + b * block_bytes, *scales = scales_base + b * block_bytes;
    const uint8_t *qh = qh_base ? qh_base + b * block_bytes : NULL;
    const int8_t *q8 = aq + QK_K * b;
    const int16_t *bs = bsums + 16 * b;
    int scaled = 0, mins = 0;
    for (int j = 0; j < 8; j++) {
      uint8_t sc, m;
      quant_k_scale_min(scales, j, &sc, &m);
      const int g = j >> 1, high = j & 1;
      int sumi = 0;
      for (int l = 0; l < 32; l++) {
        int q = high ? qs[32 * g + l] >> 4 : qs[32 * g + l] & 0xf;
        if (qh) q |= ((qh[l] >> j) & 1) << 4;
        sumi += q * q8[32 * j + l];
      }
      scaled += sc * sumi;
      mins += m * (bs[2 * j] + bs[2 * j + 1]);
    }
    quant_half hd[2];
    memcpy(hd, d_base + b * block_bytes, 4);
    const float da = ad[b];
    sum += (quant_half_to_f32(hd[0]) * da) * scaled - (quant_half_to_f32(hd[1]) * da) * mins;
  }
  return sum;
}

static float dot_q4_K(int cols, const uint8_t *w, const uint8_t *a) {
  const block_q4_K *x = (const block_q4_K *)w;
  return dot_scale_min_k(cols, x->qs, NULL, x->scales, w, sizeof(block_q4_K), a);
}

static float dot_q5_K(int cols, const uint8_t *w, const uint8_t *a) {
  const block_q5_K *x = (const block_q5_K *)w;
  return dot_scale_min_k(cols, x->qs, x->qh, x->scales, w, sizeof(block_q5_K), a);
}

static float dot_q6_K(int cols, const uint8_t *w, const uint8_t *a) {
  Q8K_ROW(a, cols);
  (void)bsums;
  const block_q6_K *x = (const block_q6_K *)w;
  float sum = 0;
  for (int b = 0; b < cols / QK_K; b++) {
    const int8_t *q8 = aq + QK_K * b;
    int scaled = 0;
    for (int h = 0; h < 2; h++) {
      const uint8_t *ql = x[b].ql + 64 * h, *qh = x[b].qh + 32 * h;
      const int8_t *a8 = q8 + 128 * h;
      int s[8] = {0};
      for (int l = 0; l < 32; l++) {
        const int is = l / 16;
        s[is + 0] += (((ql[l] & 0xf) | (((qh[l] >> 0) & 3) << 4)) - 32) * a8[l];
        s[is + 2] += (((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32) * a8[l + 32];
        s[is + 4] += (((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32) * a8[l + 64];
        s[is + 6] += (((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32) * a8[l + 96];
      }
      for (int k = 0; k < 8; k++) scaled += x[b].scales[8 * h + k] * s[k];
    }
    sum += (quant_half_to_f32(x[b].d) * ad[b]) * scaled;
  }
  return sum;
}

/*
 * Q2_K: Σ_j scale_j (quants · activations of group j) - Σ_j min_j (activation sums of group j),
 * 16-element groups; then (d da) x the first minus (dmin da) x the second, as Q4_K.
 */
static float dot_q2_K(int cols, const uint8_t *w, const uint8_t *a) {
  Q8K_ROW(a, cols);
  const block_q2_K *x = (const block_q2_K *)w;
  float sum = 0;
  for (int b = 0; b < cols / QK_K; b++) {
    const int8_t *q8 = aq + QK_K * b;
    int scaled = 0, mins = 0;
    for (int j = 0; j < 16; j++) {
      int sumi = 0;
      for (int e = 16 * j; e < 16 * j + 16; e++) sumi += quant_k_low2(x[b].qs, e) * q8[e];
      scaled += (x[b].scales[j] & 0xf) * sumi;
      mins += (x[b].scales[j] >> 4) * bsums[16 * b + j];
    }
    const float da = ad[b];
    sum += (quant_half_to_f32(x[b].d) * da) * scaled - (quant_half_to_f32(x[b].dmin) * da) * mins;
  }
  return sum;
}

/* Q3_K: Σ_j scale_j (quants - 4) · activations of 16-element group j, times d da. */
static float dot_q3_K(int cols, const uint8_t *w, const uint8_t *a) {
  Q8K_ROW(a, cols);
  (void)bsums;
  const block_q3_K *x = (const block_q3_K *)w;
  float sum = 0;
  for (int b = 0; b < cols / QK_K; b++) {
    const int8_t *q8 = aq + QK_K * b;
    int scaled = 0;
    for (int j = 0; j < 16; j++) {
      int sumi = 0;
      for (int e = 16 * j; e < 16 * j + 16; e++) {
        const int high = (x[b].hmask[e & 31] >> (e >> 5)) & 1;
        sumi += (quant_k_low2(x[b].qs, e) + 4 * high - 4) * q8[e];
      }
      scaled += quant_q3_K_scale(x[b].scales, j) * sumi;
    }
    sum += (quant_half_to_f32(x[b].d) * ad[b]) * scaled;
  }
  return sum;
}

/* IQ4_XS: Σ_ib (scale_ib - 32) (code values · activations of sub-block ib), times d da. */
static float dot_iq4_xs(int cols, const uint8_t *w, const uint8_t *a) {
  Q8K_ROW(a, cols);
  (void)bsums;
  const block_iq4_xs *x = (const block_iq4_xs *)w;
  float sum = 0;
  for (int b = 0; b < cols / QK_K; b++) {
    const int8_t *q8 = aq + QK_K * b;
    int scaled = 0;
    for (int ib = 0; ib < 8; ib++) {
      int sumi = 0;
      for (int j = 0; j < 16; j++) {
        const uint8_t q = x[b].qs[16 * ib + j];
        sumi += quant_iq4_values[q & 0xf] * q8[32 * ib + j] + quant_iq4_values[q >> 4] * q8[32 * ib + 16 + j];
      }
      scaled += (quant_iq4_xs_scale(&x[b], ib) - 32) * sumi;
    }
    sum += (quant_half_to_f32(x[b].d) * ad[b]) * (float)scaled;
  }
  return sum;
}

/* The IQ grid formats: Σ_g scale_g (q . activations of group g) per super-block, times factor x da. */
static float dot_iq_grid(int type, int cols, const uint8_t *w, const uint8_t *a) {
  Q8K_ROW(a, cols);
  (void)bsums;
  const size_t bytes = quant_block_bytes(type);
  int8_t q[QK_K];
  int16_t sc[16];
  float sum = 0;
  for (int b = 0; b < cols / QK_K; b++) {
    const int8_t *q8 = aq + QK_K * b;
    const float f = quant_iq_unpack(type, w + b * bytes, q, sc);
    int scaled = 0;
    for (int g = 0; g < 16; g++) {
      int sumi = 0;
      for (int j = 0; j < 16; j++) sumi += q[16 * g + j] * q8[16 * g + j];
      scaled += sc[g] * sumi;
    }
    sum += (f * ad[b]) * (float)scaled;
  }
  return sum;
}

#define IQ_DOT(NAME, TYPE) \
  static float NAME(int cols, const uint8_t *w, const uint8_t *a) { return dot_iq_grid(TYPE, cols, w, a); }
IQ_DOT(dot_iq1_s, CAIRN_IQ1_S)
IQ_DOT(dot_iq1_m, CAIRN_IQ1_M)
IQ_DOT(dot_iq2_xxs, CAIRN_IQ2_XXS)
IQ_DOT(dot_iq2_xs, CAIRN_IQ2_XS)
IQ_DOT(dot_iq2_s, CAIRN_IQ2_S)
IQ_DOT(dot_iq3_xxs, CAIRN_IQ3_XXS)
IQ_DOT(dot_iq3_s, CAIRN_IQ3_S)
#undef IQ_DOT

typedef float (*row_dot_fn)(int cols, const uint8_t *w, const uint8_t *a);

static inline void gemm_rows(row_dot_fn dot, int cols, const uint8_t *w, size_t w_stride, int nr, const uint8_t *a,
                             size_t a_stride, int nt, float *y, size_t y_stride) {
  for (int r = 0; r < nr; r++) {
    for (int t = 0; t < nt; t++) y[t * y_stride + r] = dot(cols, w + r * w_stride, a + t * a_stride);
  }
}

#define GEMM(name, dot)                                                                                  \
  static void name(int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, int nt, float *y, \
                   size_t ys) {                                                                          \
    gemm_rows(dot, cols, w, ws, nr, a, as, nt, y, ys);                                                   \
  }
GEMM(gemm_f32, dot_f32)
GEMM(gemm_f16, dot_f16)
GEMM(gemm_bf16, dot_bf16)
GEMM(gemm_q4_0, dot_q4_0)
GEMM(gemm_q4_1, dot_q4_1)
GEMM(gemm_q5_0, dot_q5_0)
GEMM(gemm_q5_1, dot_q5_1)
GEMM(gemm_q8_0, dot_q8_0)
GEMM(gemm_mxfp4, dot_mxfp4)
GEMM(gemm_q2_K, dot_q2_K)
GEMM(gemm_q3_K, dot_q3_K)
GEMM(gemm_q4_K, dot_q4_K)
GEMM(gemm_iq4_xs, dot_iq4_xs)
GEMM(gemm_iq4_nl, dot_iq4_nl)
GEMM(gemm_iq1_s, dot_iq1_s)
GEMM(gemm_iq1_m, dot_iq1_m)
GEMM(gemm_iq2_xxs, dot_iq2_xxs)
GEMM(gemm_iq2_xs, dot_iq2_xs)
GEMM(gemm_iq2_s, dot_iq2_s)
GEMM(gemm_iq3_xxs, dot_iq3_xxs)
GEMM(gemm_iq3_s, dot_iq3_s)
GEMM(gemm_q5_K, dot_q5_K)
GEMM(gemm_q6_K, dot_q6_K)
#undef GEMM

const quant_kernel_table quant_kernels_scalar = {
    .convert =
        {
            [CAIRN_F16] = quant_convert_f16_scalar,
            [CAIRN_BF16] = quant_convert_bf16_scalar,
            [CAIRN_Q8_0] = quant_convert_q8_0_scalar,
            [CAIRN_Q8_1] = quant_convert_q8_1_scalar,
            [CAIRN_Q8_K] = quant_convert_q8_K_scalar,
        },
    .gemm =
        {
            [CAIRN_F32] = gemm_f32,
            [CAIRN_F16] = gemm_f16,
            [CAIRN_BF16] = gemm_bf16,
            [CAIRN_Q4_0] = gemm_q4_0,
            [CAIRN_Q4_1] = gemm_q4_1,
            [CAIRN_Q5_0] = gemm_q5_0,
            [CAIRN_Q5_1] = gemm_q5_1,
            [CAIRN_Q8_0] = gemm_q8_0,
            [CAIRN_MXFP4] = gemm_mxfp4,
            [CAIRN_Q2_K] = gemm_q2_K,
            [CAIRN_Q3_K] = gemm_q3_K,
            [CAIRN_Q4_K] = gemm_q4_K,
            [CAIRN_Q5_K] = gemm_q5_K,
            [CAIRN_Q6_K] = gemm_q6_K,
            [CAIRN_IQ4_XS] = gemm_iq4_xs,
            [CAIRN_IQ4_NL] = gemm_iq4_nl,
            [CAIRN_IQ1_S] = gemm_iq1_s,
            [CAIRN_IQ1_M] = gemm_iq1_m,
            [CAIRN_IQ2_XXS] = gemm_iq2_xxs,
            [CAIRN_IQ2_XS] = gemm_iq2_xs,
            [CAIRN_IQ2_S] = gemm_iq2_s,
            [CAIRN_IQ3_XXS] = gemm_iq3_xxs,
            [CAIRN_IQ3_S] = gemm_iq3_s,
        },
};
