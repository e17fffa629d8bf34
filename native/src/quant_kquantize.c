/*
 * cairn's K-quant quantizers (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K): a small weighted least-squares search per
 * sub-block, then 6/8-bit scale codes against f16 super-scales. The same arithmetic, in the same
 * f32 order, as src/kernels/reference/quant/k-quantize.ts, so both produce identical bytes.
 */
#include <math.h>
#include <string.h>

#include "quant_codecs.h"
#include "quant_formats.h"

#define ASYM_FIRST (-1)
#define ASYM_STEP 0.1f
#define ASYM_STEPS 20
#define SYM_STEP 0.1f
#define SYM_STEPS 9

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Fits x ≈ scale * q - min, q in [0, nmax], min >= 0, weighted by w; writes q, returns scale. */
static float fit_scale_min(const float *x, int n, int nmax, const float *w, uint8_t *q, float *the_min) {
  float xmin = x[0], xmax = x[0];
  for (int i = 1; i < n; i++) {
    xmin = fminf(xmin, x[i]);
    xmax = fmaxf(xmax, x[i]);
  }
  if (xmin > 0) xmin = 0;
  if (xmax == xmin) {
    memset(q, 0, (size_t)n);
    *the_min = -xmin;
    return 0;
  }
  const float range = xmax - xmin;
  float best_err = INFINITY, best_scale = 0, best_min = 0;
  uint8_t trial[QK_K];
  for (int k = 0; k <= ASYM_STEPS; k++) {
    const float iscale = (ASYM_STEP * k + (float)(nmax + ASYM_FIRST)) / range;
    float sw = 0, sq = 0, sx = 0, sqq = 0, sqx = 0;
    for (int i = 0; i < n; i++) {
      const int l = clampi(quant_nearest_int(iscale * (x[i] - xmin)), 0, nmax);
      trial[i] = (uint8_t)l;
      const float wi = w[i];
      sw = sw + wi;
      sq = sq + wi * l;
      sx = sx + wi * x[i];
      sqq = sqq + (wi * l) * l;
      sqx = sqx + (wi * l) * x[i];
    }
    const float det = sw * sqq - sq * sq;
    float scale, offset;
    if (det > 0) {
      scale = (sw * sqx - sq * sx) / det;
      offset = (sqq * sx - sq * sqx) / det;
      if (offset > 0) {
        offset = 0;
        scale = sqq > 0 ? sqx / sqq : 0;
      }
    } else {
      scale = 1 / iscale;
      offset = xmin;
    }
    if (scale < 0) continue;
    float err = 0;
    for (int i = 0; i < n; i++) {
      const float diff = (scale * trial[i] + offset) - x[i];
      err = err + (w[i] * diff) * diff;
    }
    if (err < best_err) {
      best_err = err;
      best_scale = scale;
      best_min = -offset;
      memcpy(q, trial, (size_t)n);
    }
  }
  *the_min = best_min;
  return best_scale;
}

static void sub_block_weights(const float *x, int n, float *w) {
  float sum_sq = 0;
  for (int i = 0; i < n; i++) sum_sq = sum_sq + x[i] * x[i];
  const float rms = sqrtf(sum_sq / n);
  for (int i = 0; i < n; i++) w[i] = rms + fabsf(x[i]);
}

static void pack_scale_min(uint8_t *out, const uint8_t *ls, const uint8_t *lm) {
  memset(out, 0, 12);
  for (int j = 0; j < 8; j++) {
    if (j < 4) {
      out[j] |= ls[j];
      out[j + 4] |= lm[j];
    } else {
      out[j + 4] = (uint8_t)((ls[j] & 0xf) | ((lm[j] & 0xf) << 4));
      out[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
      out[j] |= (uint8_t)((lm[j] >> 4) << 6);
    }
  }
}

/* Q4_K/Q5_K body: fits, codes the scales, and returns the final quants (0..nmax) in q. */
static void quantize_scale_min(const float *x, int nmax, quant_half hd[2], uint8_t *scales, uint8_t *q) {
  float w[32], sc[8], mn[8], max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; j++) {
    sub_block_weights(x + 32 * j, 32, w);
    sc[j] = fit_scale_min(x + 32 * j, 32, nmax, w, q + 32 * j, &mn[j]);
    max_scale = fmaxf(max_scale, sc[j]);
    max_min = fmaxf(max_min, mn[j]);
  }
  const float inv_scale = max_scale > 0 ? 63 / max_scale : 0;
  const float inv_min = max_min > 0 ? 63 / max_min : 0;
  uint8_t ls[8], lm[8];
  for (int j = 0; j < 8; j++) {
    const int a = quant_nearest_int(inv_scale * sc[j]), b = quant_nearest_int(inv_min * mn[j]);
    ls[j] = (uint8_t)(a < 63 ? a : 63);
    lm[j] = (uint8_t)(b < 63 ? b : 63);
  }
  hd[0] = quant_f32_to_half(max_scale / 63);
  hd[1] = quant_f32_to_half(max_min / 63);
  pack_scale_min(scales, ls, lm);
  const float d = quant_half_to_f32(hd[0]), dmin = quant_half_to_f32(hd[1]);
  for (int j = 0; j < 8; j++) {
    const float dd = d * ls[j], dm = dmin * lm[j];
    for (int i = 0; i < 32; i++) {
      const float v = x[32 * j + i];
      q[32 * j + i] = (uint8_t)(dd == 0 ? 0 : clampi(quant_nearest_int((v + dm) / dd), 0, nmax));
    }
  }
}

void quant_encode_q4_K(const float *x, void *dst) {
  block_q4_K *b = (block_q4_K *)dst;
  uint8_t q[QK_K];
  quant_half hd[2];
  quantize_scale_min(x, 15, hd, b->scales, q);
  b->d = hd[0];
  b->dmin = hd[1];
  for (int g = 0; g < 4; g++) {
    for (int l = 0; l < 32; l++) b->qs[32 * g + l] = (uint8_t)(q[64 * g + l] | (q[64 * g + 32 + l] << 4));
  }
}

void quant_encode_q5_K(const float *x, void *dst) {
  block_q5_K *b = (block_q5_K *)dst;
  uint8_t q[QK_K];
  quant_half hd[2];
  quantize_scale_min(x, 31, hd, b->scales, q);
  b->d = hd[0];
  b->dmin = hd[1];
  memset(b->qh, 0, sizeof b->qh);
  for (int g = 0; g < 4; g++) {
    for (int l = 0; l < 32; l++) {
      const int lo = q[64 * g + l], hi = q[64 * g + 32 + l];
      b->qs[32 * g + l] = (uint8_t)((lo & 0xf) | ((hi & 0xf) << 4));
      b->qh[l] |= (uint8_t)(((lo >> 4) << (2 * g)) | ((hi >> 4) << (2 * g + 1)));
    }
  }
}

/* Fits x ≈ scale * l, l in [-nmax, nmax - 1], weights x^2; writes l + nmax, returns scale. */
static float fit_symmetric(const float *x, int n, int nmax, uint8_t *q) {
  float amax = 0, max = 0;
  for (int i = 0; i < n; i++) {
    if (fabsf(x[i]) > amax) {
      amax = fabsf(x[i]);
      max = x[i];
    }
  }
  if (amax < 1e-15f) {
    memset(q, nmax, (size_t)n);
    return 0;
  }
  float best_score = -1, best_scale = 0;
  uint8_t trial[QK_K];
  for (int k = -SYM_STEPS; k <= SYM_STEPS; k++) {
    const float iscale = -((float)nmax + SYM_STEP * k) / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
      const float v = x[i];
      const int l = clampi(quant_nearest_int(iscale * v), -nmax, nmax - 1);
      trial[i] = (uint8_t)(l + nmax);
      const float w = v * v;
      sumlx = sumlx + (w * v) * l;
      suml2 = suml2 + (w * l) * l;
    }
    if (suml2 > 0) {
      const float score = (sumlx * sumlx) / suml2;
      if (score > best_score) {
        best_score = score;
        best_scale = sumlx / suml2;
        memcpy(q, trial, (size_t)n);
      }
    }
  }
  return best_scale;
}

void quant_encode_q6_K(const float *x, void *dst) {
  block_q6_K *b = (block_q6_K *)dst;
  uint8_t q[QK_K];
  float sc[16], max_scale = 0, max_abs = 0;
  for (int k = 0; k < 16; k++) {
    sc[k] = fit_symmetric(x + 16 * k, 16, 32, q + 16 * k);
    if (fabsf(sc[k]) > max_abs) {
      max_abs = fabsf(sc[k]);
      max_scale = sc[k];
    }
  }
  memset(b, 0, sizeof *b);
  if (max_abs == 0) {
    memset(q, 32, sizeof q);
  } else {
    const float iscale = -128 / max_scale;
    b->d = quant_f32_to_half(1 / iscale);
    const float d = quant_half_to_f32(b->d);
    for (int k = 0; k < 16; k++) {
      const int s = quant_nearest_int(iscale * sc[k]);
      b->scales[k] = (int8_t)(s < 127 ? s : 127);
      const float dd = d * b->scales[k];
      for (int i = 0; i < 16; i++) {
        const float v = x[16 * k + i];
        q[16 * k + i] = (uint8_t)(dd == 0 ? 32 : clampi(quant_nearest_int(v / dd), -32, 31) + 32);
      }
    }
  }
  for (int h = 0; h < 2; h++) {
    for (int l = 0; l < 32; l++) {
      const int base = 128 * h + l;
      const int q1 = q[base], q2 = q[base + 32], q3 = q[base + 64], q4 = q[base + 96];
      b->ql[64 * h + l] = (uint8_t)((q1 & 0xf) | ((q3 & 0xf) << 4));
      b->ql[64 * h + 32 + l] = (uint8_t)((q2 & 0xf) | ((q4 & 0xf) << 4));
      b->qh[32 * h + l] = (uint8_t)((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
    }
  }
}

/* Quants of 256 elements (0..3) packed as Q2_K/Q3_K's qs: four elements 32 apart share a byte. */
static void pack_low2(const uint8_t *q, uint8_t *qs) {
  for (int h = 0; h < 2; h++)
    for (int l = 0; l < 32; l++) {
      const uint8_t *e = q + 128 * h + l;
      qs[32 * h + l] = (uint8_t)((e[0] & 3) | ((e[32] & 3) << 2) | ((e[64] & 3) << 4) | ((e[96] & 3) << 6));
    }
}

/* Q2_K: Q4_K's fit per 16 elements (quants 0..3), scales and mins as 4-bit codes against d and dmin. */
void quant_encode_q2_K(const float *x, void *dst) {
  block_q2_K *b = (block_q2_K *)dst;
  uint8_t q[QK_K];
  float w[16], sc[16], mn[16], max_scale = 0, max_min = 0;
  for (int j = 0; j < 16; j++) {
    sub_block_weights(x + 16 * j, 16, w);
    sc[j] = fit_scale_min(x + 16 * j, 16, 3, w, q + 16 * j, &mn[j]);
    max_scale = fmaxf(max_scale, sc[j]);
    max_min = fmaxf(max_min, mn[j]);
  }
  const float inv_scale = max_scale > 0 ? 15 / max_scale : 0;
  const float inv_min = max_min > 0 ? 15 / max_min : 0;
  b->d = quant_f32_to_half(max_scale / 15);
  b->dmin = quant_f32_to_half(max_min / 15);
  const float d = quant_half_to_f32(b->d), dmin = quant_half_to_f32(b->dmin);
  for (int j = 0; j < 16; j++) {
    const int ls = clampi(quant_nearest_int(inv_scale * sc[j]), 0, 15), lm = clampi(quant_nearest_int(inv_min * mn[j]), 0, 15);
    b->scales[j] = (uint8_t)(ls | (lm << 4));
    const float dd = d * ls, dm = dmin * lm;
    for (int i = 0; i < 16; i++) {
      const float v = x[16 * j + i];
      q[16 * j + i] = (uint8_t)(dd == 0 ? 0 : clampi(quant_nearest_int((v + dm) / dd), 0, 3));
    }
  }
  pack_low2(q, b->qs);
}

/* Q3_K: Q6_K's symmetric fit per 16 elements (quants -4..3), scales as 6-bit codes against d. */
void quant_encode_q3_K(const float *x, void *dst) {
  block_q3_K *b = (block_q3_K *)dst;
  uint8_t q[QK_K];
  float sc[16], max_scale = 0, max_abs = 0;
  for (int k = 0; k < 16; k++) {
    sc[k] = fit_symmetric(x + 16 * k, 16, 4, q + 16 * k);
    if (fabsf(sc[k]) > max_abs) {
      max_abs = fabsf(sc[k]);
      max_scale = sc[k];
    }
  }
  memset(b, 0, sizeof *b);
  uint8_t ls[16];
  if (max_abs == 0) {
    memset(q, 4, sizeof q);
    memset(ls, 32, sizeof ls);
  } else {
    const float iscale = -32 / max_scale;
    b->d = quant_f32_to_half(1 / iscale);
    const float d = quant_half_to_f32(b->d);
    for (int k = 0; k < 16; k++) {
      const int l = clampi(quant_nearest_int(iscale * sc[k]), -32, 31);
      ls[k] = (uint8_t)(l + 32);
      const float dd = d * l;
      for (int i = 0; i < 16; i++) {
        const float v = x[16 * k + i];
        q[16 * k + i] = (uint8_t)(dd == 0 ? 4 : clampi(quant_nearest_int(v / dd), -4, 3) + 4);
      }
    }
  }
  for (int j = 0; j < 16; j++) {
    if (j < 8) b->scales[j] = ls[j] & 0xf;
    else b->scales[j - 8] |= (uint8_t)((ls[j] & 0xf) << 4);
    b->scales[8 + (j & 3)] |= (uint8_t)((ls[j] >> 4) << (2 * (j >> 2)));
  }
  for (int e = 0; e < QK_K; e++)
    if (q[e] > 3) b->hmask[e & 31] |= (uint8_t)(1 << (e >> 5));
  pack_low2(q, b->qs);
}

/* The code whose IQ4 value is nearest v (the first on ties). */
static int nearest_iq4(float v) {
  int best = 0;
  float err = fabsf(v - quant_iq4_values[0]);
  for (int k = 1; k < 16; k++) {
    const float e = fabsf(v - quant_iq4_values[k]);
    if (e < err) {
      err = e;
      best = k;
    }
  }
  return best;
}

/*
 * IQ4_XS: per 32 elements the scale that maps the largest |x| onto the code value -127, the eight
 * scales as 6-bit codes against d (as Q3_K's), then each element's nearest code value.
 */
void quant_encode_iq4_xs(const float *x, void *dst) {
  block_iq4_xs *b = (block_iq4_xs *)dst;
  float sc[8], max_scale = 0, max_abs = 0;
  for (int ib = 0; ib < 8; ib++) {
    float amax = 0, m = 0;
    for (int j = 0; j < 32; j++)
      if (fabsf(x[32 * ib + j]) > amax) {
        amax = fabsf(x[32 * ib + j]);
        m = x[32 * ib + j];
      }
    sc[ib] = m / -127;
    if (fabsf(sc[ib]) > max_abs) {
      max_abs = fabsf(sc[ib]);
      max_scale = sc[ib];
    }
  }
  memset(b, 0, sizeof *b);
  uint16_t h = 0;
  if (max_abs == 0) {
    for (int ib = 0; ib < 8; ib++) b->scales_l[ib / 2] |= (uint8_t)((32 & 0xf) << (4 * (ib % 2)));
    h = 0xaaaa; /* every scale 32: high bits 2 */
    for (int j = 0; j < 128; j++) b->qs[j] = (uint8_t)(8 | (8 << 4)); /* value 1 times scale 0 */
  } else {
    const float iscale = -32 / max_scale;
    b->d = quant_f32_to_half(1 / iscale);
    const float d = quant_half_to_f32(b->d);
    for (int ib = 0; ib < 8; ib++) {
      const int l = clampi(quant_nearest_int(iscale * sc[ib]), -32, 31), ls = l + 32;
      b->scales_l[ib / 2] |= (uint8_t)((ls & 0xf) << (4 * (ib % 2)));
      h |= (uint16_t)((ls >> 4) << (2 * ib));
      const float dl = d * l, id = dl == 0 ? 0 : 1 / dl;
      for (int j = 0; j < 16; j++) {
        const int lo = nearest_iq4(id * x[32 * ib + j]), hi = nearest_iq4(id * x[32 * ib + 16 + j]);
        b->qs[16 * ib + j] = (uint8_t)(lo | (hi << 4));
      }
    }
  }
  memcpy(&b->scales_h, &h, 2);
}

/* IQ4_NL: the block's scale maps its largest |x| onto the code value -127, then each element's nearest code value. */
void quant_encode_iq4_nl(const float *x, void *dst) {
  block_iq4_nl *b = (block_iq4_nl *)dst;
  float amax = 0, m = 0;
  for (int j = 0; j < QK; j++)
    if (fabsf(x[j]) > amax) {
      amax = fabsf(x[j]);
      m = x[j];
    }
  b->d = quant_f32_to_half(m / -127);
  const float d = quant_half_to_f32(b->d), id = d == 0 ? 0 : 1 / d;
  for (int j = 0; j < QK / 2; j++) b->qs[j] = (uint8_t)(nearest_iq4(id * x[j]) | nearest_iq4(id * x[j + QK / 2]) << 4);
}
