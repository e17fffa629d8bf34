/*
 * Scalar dequantizers and ggml-compatible reference quantizers. Every intermediate is f32 in the
 * order ggml computes it (the build disables FMA contraction), so results match ggml bit for bit.
 */
#include "quant_codecs.h"

#include <math.h>
#include <string.h>

#include "quant_formats.h"
#include "quant_iq.h"

int quant_block_size(int type) {
  switch (type) {
    case CAIRN_F32: case CAIRN_F16: case CAIRN_BF16: return 1;
    case CAIRN_Q4_0: case CAIRN_Q4_1: case CAIRN_Q5_0: case CAIRN_Q5_1: case CAIRN_Q8_0: case CAIRN_Q8_1: case CAIRN_MXFP4: case CAIRN_IQ4_NL: return QK;
    case CAIRN_Q2_K: case CAIRN_Q3_K: case CAIRN_Q4_K: case CAIRN_Q5_K: case CAIRN_Q6_K: case CAIRN_Q8_K: case CAIRN_IQ4_XS: return QK_K;
    case CAIRN_IQ1_S: case CAIRN_IQ1_M: case CAIRN_IQ2_XXS: case CAIRN_IQ2_XS: case CAIRN_IQ2_S: case CAIRN_IQ3_XXS: case CAIRN_IQ3_S: return QK_K;
    default: return 0;
  }
}

size_t quant_block_bytes(int type) {
  switch (type) {
    case CAIRN_F32: return 4;
    case CAIRN_F16: case CAIRN_BF16: return 2;
    case CAIRN_Q4_0: return sizeof(block_q4_0);
    case CAIRN_Q4_1: return sizeof(block_q4_1);
    case CAIRN_Q5_0: return sizeof(block_q5_0);
    case CAIRN_Q5_1: return sizeof(block_q5_1);
    case CAIRN_Q8_0: return sizeof(block_q8_0);
    case CAIRN_Q8_1: return sizeof(block_q8_1);
    case CAIRN_Q2_K: return sizeof(block_q2_K);
    case CAIRN_Q3_K: return sizeof(block_q3_K);
    case CAIRN_Q4_K: return sizeof(block_q4_K);
    case CAIRN_Q5_K: return sizeof(block_q5_K);
    case CAIRN_Q6_K: return sizeof(block_q6_K);
    case CAIRN_Q8_K: return sizeof(block_q8_K);
    case CAIRN_MXFP4: return sizeof(block_mxfp4);
    case CAIRN_IQ4_XS: return sizeof(block_iq4_xs);
    case CAIRN_IQ4_NL: return sizeof(block_iq4_nl);
    case CAIRN_IQ1_S: return sizeof(block_iq1_s);
    case CAIRN_IQ1_M: return sizeof(block_iq1_m);
    case CAIRN_IQ2_XXS: return sizeof(block_iq2_xxs);
    case CAIRN_IQ2_XS: return sizeof(block_iq2_xs);
    case CAIRN_IQ2_S: return sizeof(block_iq2_s);
    case CAIRN_IQ3_XXS: return sizeof(block_iq3_xxs);
    case CAIRN_IQ3_S: return sizeof(block_iq3_s);
    default: return 0;
  }
}

int quant_vec_dot_type(int wtype) {
  switch (wtype) {
    case CAIRN_F32: case CAIRN_F16: case CAIRN_BF16: return wtype;
    case CAIRN_Q4_0: case CAIRN_Q5_0: case CAIRN_Q8_0: case CAIRN_MXFP4: case CAIRN_IQ4_NL: return CAIRN_Q8_0;
    case CAIRN_Q4_1: case CAIRN_Q5_1: return CAIRN_Q8_1;
    case CAIRN_Q2_K: case CAIRN_Q3_K: case CAIRN_Q4_K: case CAIRN_Q5_K: case CAIRN_Q6_K: case CAIRN_IQ4_XS: return CAIRN_Q8_K;
    case CAIRN_IQ1_S: case CAIRN_IQ1_M: case CAIRN_IQ2_XXS: case CAIRN_IQ2_XS: case CAIRN_IQ2_S: case CAIRN_IQ3_XXS: case CAIRN_IQ3_S: return CAIRN_Q8_K;
    default: return -1;
  }
}

static size_t pad64(size_t n) { return (n + 63) & ~(size_t)63; }

quant_act_layout quant_act_layout_for(int wtype, int cols) {
  quant_act_layout l = {quant_vec_dot_type(wtype), 0, 0, 0};
  switch (l.type) {
    case CAIRN_F32: case CAIRN_F16: case CAIRN_BF16:
      l.row_bytes = pad64((size_t)cols * 4);
      break;
    case CAIRN_Q8_0:
      l.d_off = (size_t)cols;
      l.row_bytes = pad64(l.d_off + (size_t)(cols / QK) * 4);
      break;
    case CAIRN_Q8_1:
      l.d_off = (size_t)cols;
      l.aux_off = l.d_off + (size_t)(cols / QK) * 4;
      l.row_bytes = pad64(l.aux_off + (size_t)(cols / QK) * 4);
      break;
    case CAIRN_Q8_K:
      l.d_off = (size_t)cols;
      l.aux_off = l.d_off + (size_t)(cols / QK_K) * 4;
      l.row_bytes = pad64(l.aux_off + (size_t)(cols / 16) * 2);
      break;
    default:
      break;
  }
  return l;
}

/* ---- dequantizers ---- */

static void decode_q4_0(const block_q4_0 *b, float *y) {
  const float d = quant_half_to_f32(b->d);
  for (int j = 0; j < QK / 2; j++) {
    y[j] = ((b->qs[j] & 0xf) - 8) * d;
    y[j + QK / 2] = ((b->qs[j] >> 4) - 8) * d;
  }
}

static void decode_q4_1(const block_q4_1 *b, float *y) {
  const float d = quant_half_to_f32(b->d), m = quant_half_to_f32(b->m);
  for (int j = 0; j < QK / 2; j++) {
    y[j] = (b->qs[j] & 0xf) * d + m;
    y[j + QK / 2] = (b->qs[j] >> 4) * d + m;
  }
}

static uint32_t load_u32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v; /* little-endian targets only (x86-64, arm64) */
}

static void decode_q5_0(const block_q5_0 *b, float *y) {
  const float d = quant_half_to_f32(b->d);
  const uint32_t qh = load_u32(b->qh);
  for (int j = 0; j < QK / 2; j++) {
    const int lo = (b->qs[j] & 0xf) | (((qh >> j) & 1) << 4);
    const int hi = (b->qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
    y[j] = (lo - 16) * d;
    y[j + QK / 2] = (hi - 16) * d;
  }
}

static void decode_q5_1(const block_q5_1 *b, float *y) {
  const float d = quant_half_to_f32(b->d), m = quant_half_to_f32(b->m);
  const uint32_t qh = load_u32(b->qh);
  for (int j = 0; j < QK / 2; j++) {
    const int lo = (b->qs[j] & 0xf) | (((qh >> j) & 1) << 4);
    const int hi = (b->qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
    y[j] = lo * d + m;
    y[j + QK / 2] = hi * d + m;
  }
}

static void decode_q8_0(const block_q8_0 *b, float *y) {
  const float d = quant_half_to_f32(b->d);
  for (int j = 0; j < QK; j++) y[j] = b->qs[j] * d;
}

static void decode_q8_1(const block_q8_1 *b, float *y) {
  const float d = quant_half_to_f32(b->d);
  for (int j = 0; j < QK; j++) y[j] = b->qs[j] * d;
}

static void decode_q4_K(const block_q4_K *b, float *y) {
  const float d = quant_half_to_f32(b->d), dmin = quant_half_to_f32(b->dmin);
  for (int g = 0; g < 4; g++) {
    uint8_t sc1, m1, sc2, m2;
    quant_k_scale_min(b->scales, 2 * g, &sc1, &m1);
    quant_k_scale_min(b->scales, 2 * g + 1, &sc2, &m2);
    const float d1 = d * sc1, min1 = dmin * m1, d2 = d * sc2, min2 = dmin * m2;
    const uint8_t *q = b->qs + 32 * g;
    for (int l = 0; l < 32; l++) {
      y[64 * g + l] = d1 * (q[l] & 0xf) - min1;
      y[64 * g + 32 + l] = d2 * (q[l] >> 4) - min2;
    }
  }
}

static void decode_q5_K(const block_q5_K *b, float *y) {
  const float d = quant_half_to_f32(b->d), dmin = quant_half_to_f32(b->dmin);
  for (int g = 0; g < 4; g++) {
    uint8_t sc1, m1, sc2, m2;
    quant_k_scale_min(b->scales, 2 * g, &sc1, &m1);
    quant_k_scale_min(b->scales, 2 * g + 1, &sc2, &m2);
    const float d1 = d * sc1, min1 = dmin * m1, d2 = d * sc2, min2 = dmin * m2;
    const uint8_t *q = b->qs + 32 * g;
    for (int l = 0; l < 32; l++) {
      const int lo = (q[l] & 0xf) + (((b->qh[l] >> (2 * g)) & 1) << 4);
      const int hi = (q[l] >> 4) + (((b->qh[l] >> (2 * g + 1)) & 1) << 4);
      y[64 * g + l] = d1 * lo - min1;
      y[64 * g + 32 + l] = d2 * hi - min2;
    }
  }
}

static void decode_q6_K(const block_q6_K *b, float *y) {
  const float d = quant_half_to_f32(b->d);
  for (int h = 0; h < 2; h++) {
    const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
    const int8_t *sc = b->scales + 8 * h;
    float *out = y + 128 * h;
    for (int l = 0; l < 32; l++) {
      const int is = l / 16;
      const int q1 = ((ql[l] & 0xf) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = ((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      out[l] = d * sc[is] * q1;
      out[l + 32] = d * sc[is + 2] * q2;
      out[l + 64] = d * sc[is + 4] * q3;
      out[l + 96] = d * sc[is + 6] * q4;
    }
  }
}

/* Q2_K, as ggml: x = (d * scale) * q - dmin * min per 16 elements. */
static void decode_q2_K(const block_q2_K *b, float *y) {
  const float d = quant_half_to_f32(b->d), dmin = quant_half_to_f32(b->dmin);
  for (int e = 0; e < QK_K; e++) {
    const uint8_t sc = b->scales[e >> 4];
    const float dl = d * (sc & 0xf), ml = dmin * (sc >> 4);
    y[e] = dl * quant_k_low2(b->qs, e) - ml;
  }
}

/* Q3_K, as ggml: x = (d * scale) * (q - 4) per 16 elements, q's third bit from hmask. */
static void decode_q3_K(const block_q3_K *b, float *y) {
  const float d = quant_half_to_f32(b->d);
  for (int e = 0; e < QK_K; e++) {
    const float dl = d * quant_q3_K_scale(b->scales, e >> 4);
    const int high = (b->hmask[e & 31] >> (e >> 5)) & 1;
    y[e] = dl * (quant_k_low2(b->qs, e) - (high ? 0 : 4));
  }
}

/* IQ4_XS, as ggml: x = (d * (scale - 32)) * value(code) per 32 elements. */
static void decode_iq4_xs(const block_iq4_xs *b, float *y) {
  const float d = quant_half_to_f32(b->d);
  for (int ib = 0; ib < 8; ib++) {
    const float dl = d * (quant_iq4_xs_scale(b, ib) - 32);
    for (int j = 0; j < 16; j++) {
      y[32 * ib + j] = dl * quant_iq4_values[b->qs[16 * ib + j] & 0xf];
      y[32 * ib + j + 16] = dl * quant_iq4_values[b->qs[16 * ib + j] >> 4];
    }
  }
}

/* IQ4_NL, as ggml: x = d * value(code). */
static void decode_iq4_nl(const block_iq4_nl *b, float *y) {
  const float d = quant_half_to_f32(b->d);
  for (int j = 0; j < QK / 2; j++) {
    y[j] = d * quant_iq4_values[b->qs[j] & 0xf];
    y[j + QK / 2] = d * quant_iq4_values[b->qs[j] >> 4];
  }
}

static void decode_mxfp4(const block_mxfp4 *b, float *y) {
  const float d = quant_e8m0_half(b->e);
  for (int j = 0; j < QK / 2; j++) {
    y[j] = quant_mxfp4_values[b->qs[j] & 0xf] * d;
    y[j + QK / 2] = quant_mxfp4_values[b->qs[j] >> 4] * d;
  }
}

static void decode_q8_K(const block_q8_K *b, float *y) {
  for (int j = 0; j < QK_K; j++) y[j] = b->d * b->qs[j];
}

int quant_decode_blocks(int type, const void *src, float *dst, int64_t nb) {
  const uint8_t *s = (const uint8_t *)src;
  switch (type) {
    case CAIRN_F32: memcpy(dst, src, (size_t)nb * 4); return 0;
    case CAIRN_F16:
      for (int64_t i = 0; i < nb; i++) {
        quant_half h;
        memcpy(&h, s + 2 * i, 2);
        dst[i] = quant_half_to_f32(h);
      }
      return 0;
    case CAIRN_BF16:
      for (int64_t i = 0; i < nb; i++) {
        uint16_t h;
        memcpy(&h, s + 2 * i, 2);
        dst[i] = quant_bf16_to_f32(h);
      }
      return 0;
#define DECODE(T, fn, n)                                                               \
  case T:                                                                              \
    for (int64_t i = 0; i < nb; i++) fn((const void *)(s + i * quant_block_bytes(T)), dst + i * (n)); \
    return 0;
    DECODE(CAIRN_Q4_0, decode_q4_0, QK)
    DECODE(CAIRN_Q4_1, decode_q4_1, QK)
    DECODE(CAIRN_Q5_0, decode_q5_0, QK)
    DECODE(CAIRN_Q5_1, decode_q5_1, QK)
    DECODE(CAIRN_Q8_0, decode_q8_0, QK)
    DECODE(CAIRN_Q8_1, decode_q8_1, QK)
    DECODE(CAIRN_Q2_K, decode_q2_K, QK_K)
    DECODE(CAIRN_Q3_K, decode_q3_K, QK_K)
    DECODE(CAIRN_Q4_K, decode_q4_K, QK_K)
    DECODE(CAIRN_Q5_K, decode_q5_K, QK_K)
    DECODE(CAIRN_Q6_K, decode_q6_K, QK_K)
    DECODE(CAIRN_Q8_K, decode_q8_K, QK_K)
    DECODE(CAIRN_MXFP4, decode_mxfp4, QK)
    DECODE(CAIRN_IQ4_XS, decode_iq4_xs, QK_K)
    DECODE(CAIRN_IQ4_NL, decode_iq4_nl, QK)
    case CAIRN_IQ1_S: case CAIRN_IQ1_M: case CAIRN_IQ2_XXS: case CAIRN_IQ2_XS: case CAIRN_IQ2_S: case CAIRN_IQ3_XXS: case CAIRN_IQ3_S:
      for (int64_t i = 0; i < nb; i++) quant_iq_decode(type, s + i * quant_block_bytes(type), dst + i * QK_K);
      return 0;
#undef DECODE
    default: return -1;
  }
}

/* ---- ggml's reference quantizers ---- */

/* Largest |x| and the signed value holding it (the first on ties). */
static float signed_abs_max(const float *x, int n, float *max) {
  float amax = 0, m = 0;
  for (int j = 0; j < n; j++) {
    if (amax < fabsf(x[j])) {
      amax = fabsf(x[j]);
      m = x[j];
    }
  }
  *max = m;
  return amax;
}

static void min_max(const float *x, int n, float *mn, float *mx) {
  float lo = INFINITY, hi = -INFINITY;
  for (int j = 0; j < n; j++) {
    if (x[j] < lo) lo = x[j];
    if (x[j] > hi) hi = x[j];
  }
  *mn = lo;
  *mx = hi;
}

static void encode_q4_0(const float *x, block_q4_0 *b) {
  float max;
  signed_abs_max(x, QK, &max);
  const float d = max / -8;
  const float id = d ? 1.0f / d : 0.0f;
  b->d = quant_f32_to_half(d);
  for (int j = 0; j < QK / 2; j++) {
    const float x0 = x[j] * id, x1 = x[j + QK / 2] * id;
    int q0 = (int8_t)(x0 + 8.5f), q1 = (int8_t)(x1 + 8.5f);
    if (q0 > 15) q0 = 15;
    if (q1 > 15) q1 = 15;
    b->qs[j] = (uint8_t)(q0 | (q1 << 4));
  }
}

static void encode_q4_1(const float *x, block_q4_1 *b) {
  float min, max;
  min_max(x, QK, &min, &max);
  const float d = (max - min) / 15;
  const float id = d ? 1.0f / d : 0.0f;
  b->d = quant_f32_to_half(d);
  b->m = quant_f32_to_half(min);
  for (int j = 0; j < QK / 2; j++) {
    const float x0 = (x[j] - min) * id, x1 = (x[j + QK / 2] - min) * id;
    int q0 = (int8_t)(x0 + 0.5f), q1 = (int8_t)(x1 + 0.5f);
    if (q0 > 15) q0 = 15;
    if (q1 > 15) q1 = 15;
    b->qs[j] = (uint8_t)(q0 | (q1 << 4));
  }
}

/* Stores 32 five-bit quants: nibbles in qs, fifth bits in the qh word. */
static void pack_q5(const int *q, uint8_t *qh_bytes, uint8_t *qs) {
  uint32_t qh = 0;
  for (int j = 0; j < QK / 2; j++) {
    qs[j] = (uint8_t)((q[j] & 0xf) | ((q[j + QK / 2] & 0xf) << 4));
    qh |= (uint32_t)((q[j] >> 4) & 1) << j;
    qh |= (uint32_t)((q[j + QK / 2] >> 4) & 1) << (j + QK / 2);
  }
  memcpy(qh_bytes, &qh, 4);
}

static void encode_q5_0(const float *x, block_q5_0 *b) {
  float max;
  signed_abs_max(x, QK, &max);
  const float d = max / -16;
  const float id = d ? 1.0f / d : 0.0f;
  b->d = quant_f32_to_half(d);
  int q[QK];
  for (int j = 0; j < QK; j++) {
    q[j] = (int8_t)(x[j] * id + 16.5f);
    if (q[j] > 31) q[j] = 31;
  }
  pack_q5(q, b->qh, b->qs);
}

static void encode_q5_1(const float *x, block_q5_1 *b) {
  float min, max;
  min_max(x, QK, &min, &max);
  const float d = (max - min) / 31;
  const float id = d ? 1.0f / d : 0.0f;
  b->d = quant_f32_to_half(d);
  b->m = quant_f32_to_half(min);
  int q[QK];
  for (int j = 0; j < QK; j++) q[j] = (uint8_t)((x[j] - min) * id + 0.5f);
  pack_q5(q, b->qh, b->qs);
}

/*
 * roundf(v) (halves away from zero) for |v| < 2^23, as an int, without the library call, so that
 * loops of it vectorize: v minus its truncation is exact, and says which way to go.
 */
static inline int round_half_away(float v) {
  const int t = (int)v;
  const float f = v - (float)t;
  return t + (f >= 0.5f) - (f <= -0.5f);
}

static void encode_q8_0(const float *x, block_q8_0 *b) {
  float max;
  const float amax = signed_abs_max(x, QK, &max);
  const float d = amax / 127;
  const float id = d ? 1.0f / d : 0.0f;
  b->d = quant_f32_to_half(d);
  for (int j = 0; j < QK; j++) b->qs[j] = (int8_t)round_half_away(x[j] * id);
}

static void encode_q8_1(const float *x, block_q8_1 *b) {
  float max;
  const float amax = signed_abs_max(x, QK, &max);
  const float d = amax / 127;
  const float id = d ? 1.0f / d : 0.0f;
  int sum = 0;
  for (int j = 0; j < QK; j++) {
    b->qs[j] = (int8_t)roundf(x[j] * id);
    sum += b->qs[j];
  }
  b->d = quant_f32_to_half(d);
  b->s = quant_f32_to_half(sum * d);
}

static void encode_q8_K(const float *x, block_q8_K *b) {
  float max;
  const float amax = signed_abs_max(x, QK_K, &max);
  if (amax == 0) {
    memset(b, 0, sizeof *b);
    return;
  }
  const float iscale = -127.f / max;
  for (int j = 0; j < QK_K; j++) {
    const int v = quant_nearest_int(iscale * x[j]);
    b->qs[j] = (int8_t)(v > 127 ? 127 : v);
  }
  for (int g = 0; g < QK_K / 16; g++) {
    int sum = 0;
    for (int i = 0; i < 16; i++) sum += b->qs[16 * g + i];
    b->bsums[g] = (int16_t)sum;
  }
  b->d = 1 / iscale;
}

/* The code whose value times d is nearest x, the first on ties (ggml's best_index_mxfp4). */
static int mxfp4_nearest(float x, float d) {
  int best = 0;
  float best_err = fabsf(quant_mxfp4_values[0] * d - x);
  for (int i = 1; i < 16; i++) {
    const float err = fabsf(quant_mxfp4_values[i] * d - x);
    if (err < best_err) {
      best = i;
      best_err = err;
    }
  }
  return best;
}

/* ggml's quantize_row_mxfp4_ref: exponent floor(log2f(amax)) - 2 + 127, then the nearest code. */
static void encode_mxfp4(const float *x, block_mxfp4 *b) {
  float amax = 0;
  for (int j = 0; j < QK; j++) {
    if (amax < fabsf(x[j])) amax = fabsf(x[j]);
  }
  /* Through int, so an exponent below 0 (amax under 2^-125) wraps as ggml's x86 build does. */
  const uint8_t e = amax > 0.0f ? (uint8_t)(int)(floorf(log2f(amax)) - 2 + 127) : 0;
  const float d = quant_e8m0_half(e);
  b->e = e;
  for (int j = 0; j < QK / 2; j++) {
    b->qs[j] = (uint8_t)(mxfp4_nearest(x[j], d) | (mxfp4_nearest(x[j + QK / 2], d) << 4));
  }
}

int quant_encode_blocks(int type, const float *src, void *dst, int64_t nb) {
  uint8_t *d = (uint8_t *)dst;
  switch (type) {
    case CAIRN_F32: memcpy(dst, src, (size_t)nb * 4); return 0;
    case CAIRN_F16:
      for (int64_t i = 0; i < nb; i++) {
        const quant_half h = quant_f32_to_half(src[i]);
        memcpy(d + 2 * i, &h, 2);
      }
      return 0;
    case CAIRN_BF16:
      for (int64_t i = 0; i < nb; i++) {
        const uint16_t h = quant_f32_to_bf16(src[i]);
        memcpy(d + 2 * i, &h, 2);
      }
      return 0;
#define ENCODE(T, fn, n)                                                              \
  case T:                                                                             \
    for (int64_t i = 0; i < nb; i++) fn(src + i * (n), (void *)(d + i * quant_block_bytes(T))); \
    return 0;
    ENCODE(CAIRN_Q4_0, encode_q4_0, QK)
    ENCODE(CAIRN_Q4_1, encode_q4_1, QK)
    ENCODE(CAIRN_Q5_0, encode_q5_0, QK)
    ENCODE(CAIRN_Q5_1, encode_q5_1, QK)
    ENCODE(CAIRN_Q8_0, encode_q8_0, QK)
    ENCODE(CAIRN_Q8_1, encode_q8_1, QK)
    ENCODE(CAIRN_Q2_K, quant_encode_q2_K, QK_K)
    ENCODE(CAIRN_Q3_K, quant_encode_q3_K, QK_K)
    ENCODE(CAIRN_Q4_K, quant_encode_q4_K, QK_K)
    ENCODE(CAIRN_Q5_K, quant_encode_q5_K, QK_K)
    ENCODE(CAIRN_Q6_K, quant_encode_q6_K, QK_K)
    ENCODE(CAIRN_Q8_K, encode_q8_K, QK_K)
    ENCODE(CAIRN_MXFP4, encode_mxfp4, QK)
    ENCODE(CAIRN_IQ4_XS, quant_encode_iq4_xs, QK_K)
    ENCODE(CAIRN_IQ4_NL, quant_encode_iq4_nl, QK)
    case CAIRN_IQ1_S: case CAIRN_IQ1_M: case CAIRN_IQ2_XXS: case CAIRN_IQ2_XS: case CAIRN_IQ2_S: case CAIRN_IQ3_XXS: case CAIRN_IQ3_S:
      for (int64_t i = 0; i < nb; i++) quant_iq_encode(type, src + i * QK_K, d + i * quant_block_bytes(type));
      return 0;
#undef ENCODE
    default: return -1;
  }
}
