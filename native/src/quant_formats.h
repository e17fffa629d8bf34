/*
 * Block layouts of the quantized formats (bit-compatible with ggml's), half/bfloat16 conversions,
 * and the internal layout of converted activation rows. Shared by the scalar and the per-ISA
 * quantization kernels.
 */
#ifndef CAIRN_QUANT_FORMATS_H
#define CAIRN_QUANT_FORMATS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cairn.h"

#define QK 32    /* elements per block of the 32-element formats */
#define QK_K 256 /* elements per K super-block */

typedef uint16_t quant_half;

/* Packed: weights come from files and JS buffers at any byte offset. */
#define QUANT_PACKED __attribute__((packed))
typedef struct QUANT_PACKED { quant_half d; uint8_t qs[QK / 2]; } block_q4_0;
typedef struct QUANT_PACKED { quant_half d, m; uint8_t qs[QK / 2]; } block_q4_1;
typedef struct QUANT_PACKED { quant_half d; uint8_t qh[4]; uint8_t qs[QK / 2]; } block_q5_0;
typedef struct QUANT_PACKED { quant_half d, m; uint8_t qh[4]; uint8_t qs[QK / 2]; } block_q5_1;
typedef struct QUANT_PACKED { quant_half d; int8_t qs[QK]; } block_q8_0;
typedef struct QUANT_PACKED { quant_half d, s; int8_t qs[QK]; } block_q8_1;
typedef struct QUANT_PACKED { quant_half d, dmin; uint8_t scales[12]; uint8_t qs[QK_K / 2]; } block_q4_K;
typedef struct QUANT_PACKED { quant_half d, dmin; uint8_t scales[12]; uint8_t qh[QK_K / 8]; uint8_t qs[QK_K / 2]; } block_q5_K;
typedef struct QUANT_PACKED { uint8_t ql[QK_K / 2]; uint8_t qh[QK_K / 4]; int8_t scales[QK_K / 16]; quant_half d; } block_q6_K;
typedef struct QUANT_PACKED { float d; int8_t qs[QK_K]; int16_t bsums[QK_K / 16]; } block_q8_K;
/* MXFP4: an E8M0 scale byte, then 32 E2M1 codes (x[j] in the low nibble of qs[j], x[j + 16] high). */
typedef struct QUANT_PACKED { uint8_t e; uint8_t qs[QK / 2]; } block_mxfp4;

_Static_assert(sizeof(block_q4_0) == 18, "Q4_0 block");
_Static_assert(sizeof(block_q4_1) == 20, "Q4_1 block");
_Static_assert(sizeof(block_q5_0) == 22, "Q5_0 block");
_Static_assert(sizeof(block_q5_1) == 24, "Q5_1 block");
_Static_assert(sizeof(block_q8_0) == 34, "Q8_0 block");
_Static_assert(sizeof(block_q8_1) == 36, "Q8_1 block");
_Static_assert(sizeof(block_q4_K) == 144, "Q4_K block");
_Static_assert(sizeof(block_q5_K) == 176, "Q5_K block");
_Static_assert(sizeof(block_q6_K) == 210, "Q6_K block");
_Static_assert(sizeof(block_q8_K) == 292, "Q8_K block");
_Static_assert(sizeof(block_mxfp4) == 17, "MXFP4 block");

/* The E2M1 codes doubled, as ggml's kvalues_mxfp4 (code 8, E2M1's -0, is the integer 0). */
static const int8_t quant_mxfp4_values[16] __attribute__((unused)) = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

/* Elements per block and bytes per block of a type; 0 for a type the kernels do not handle. */
int quant_block_size(int type);
size_t quant_block_bytes(int type);
/* Bytes of `n` elements (a multiple of the block size). */
static inline size_t quant_row_bytes(int type, int64_t n) {
  return (size_t)(n / quant_block_size(type)) * quant_block_bytes(type);
}

static inline uint32_t quant_f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

static inline float quant_bits_f32(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

/* Half -> f32 (exact). */
static inline float quant_half_to_f32(quant_half h) {
  const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  const uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e == 0x1f) return quant_bits_f32(sign | 0x7f800000 | (m << 13));
  if (e != 0) return quant_bits_f32(sign | ((e + 112) << 23) | (m << 13));
  const float v = (float)m * 5.9604644775390625e-8f; /* subnormal: m * 2^-24, exact */
  return sign ? -v : v;
}

/* f32 -> half, round to nearest even (as F16C and ggml do); NaN stays a quiet NaN. */
static inline quant_half quant_f32_to_half(float f) {
  const uint32_t x = quant_f32_bits(f);
  const uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
  const uint32_t a = x & 0x7fffffff;
  if (a > 0x7f800000) return sign | 0x7e00;
  if (a >= 0x477ff000) return sign | 0x7c00; /* >= 65520: infinity */
  if (a >= 0x38800000) {
    uint32_t h = (a >> 13) - (112u << 10);
    const uint32_t rest = a & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++;
    return sign | (uint16_t)h;
  }
  const int shift = 126 - (int)(a >> 23);
  if (shift > 24) return sign;
  const uint32_t mant = (a & 0x7fffff) | 0x800000;
  uint32_t h = mant >> shift;
  const uint32_t rest = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
  if (rest > half || (rest == half && (h & 1))) h++;
  return sign | (uint16_t)h;
}

/* Half the value of an E8M0 scale byte, 2^(e - 128) (ggml_e8m0_to_fp32_half): the factor of the doubled codes. */
static inline float quant_e8m0_half(uint8_t e) {
  return quant_bits_f32(e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23);
}

static inline float quant_bf16_to_f32(uint16_t h) { return quant_bits_f32((uint32_t)h << 16); }

/* f32 -> bfloat16, round to nearest even, NaN kept quiet (ggml's rule). */
static inline uint16_t quant_f32_to_bf16(float f) {
  const uint32_t u = quant_f32_bits(f);
  if ((u & 0x7fffffff) > 0x7f800000) return (uint16_t)((u >> 16) | 64);
  return (uint16_t)((u + (0x7fff + ((u >> 16) & 1))) >> 16);
}

/* ggml's nearest_int: round to nearest, ties to even, for |v| < 2^22. */
static inline int quant_nearest_int(float v) {
  const float shifted = v + 12582912.f;
  int32_t i;
  memcpy(&i, &shifted, 4);
  return (i & 0x007fffff) - 0x00400000;
}

/* The 6-bit scale and min of sub-block j of a Q4_K/Q5_K block. */
static inline void quant_k_scale_min(const uint8_t *q, int j, uint8_t *sc, uint8_t *m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

/*
 * Converted activation rows. Before a dot product, an f32 activation row is turned into the form
 * llama.cpp pairs with the weight type; inside cairn that form has its own row layout, chosen for
 * the SIMD loops (the values equal llama.cpp's):
 *   F32  - the f32 row itself.
 *   F16  - f32 values rounded through half (products with half weights are exact in f32).
 *   BF16 - f32 values rounded through bfloat16.
 *   Q8_0 - int8 qs[cols]; float d[nb] (the f16-rounded block scales).
 *   Q8_1 - int8 qs[cols]; float d[nb]; float s[nb] (f16-rounded d * sum of qs, as llama stores it).
 *   Q8_K - int8 qs[cols]; float d[nb]; int16 bsums[cols / 16].
 * Rows are padded to 64 bytes.
 */
typedef struct {
  int type;      /* the vec-dot type (CAIRN_F32, CAIRN_F16, CAIRN_BF16, CAIRN_Q8_0, CAIRN_Q8_1, CAIRN_Q8_K) */
  size_t d_off;  /* byte offset of the scales (quantized forms) */
  size_t aux_off; /* byte offset of Q8_1's s or Q8_K's bsums */
  size_t row_bytes;
} quant_act_layout;

/* The vec-dot type of a weight type, or -1 when it has no dot product. */
int quant_vec_dot_type(int wtype);
/* Layout of one converted row of `cols` activations for weights of `wtype`. */
quant_act_layout quant_act_layout_for(int wtype, int cols);

#endif
