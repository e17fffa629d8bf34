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
/* Q2_K: per 16 elements a scale (low nibble) and a min (high nibble) against d and dmin; 2-bit quants. */
typedef struct QUANT_PACKED { uint8_t scales[QK_K / 16]; uint8_t qs[QK_K / 4]; quant_half d, dmin; } block_q2_K;
/* Q3_K: 3-bit quants (2 low bits in qs, the third in hmask), per 16 elements a 6-bit signed scale. */
typedef struct QUANT_PACKED { uint8_t hmask[QK_K / 8]; uint8_t qs[QK_K / 4]; uint8_t scales[12]; quant_half d; } block_q3_K;
typedef struct QUANT_PACKED { quant_half d, dmin; uint8_t scales[12]; uint8_t qs[QK_K / 2]; } block_q4_K;
typedef struct QUANT_PACKED { quant_half d, dmin; uint8_t scales[12]; uint8_t qh[QK_K / 8]; uint8_t qs[QK_K / 2]; } block_q5_K;
typedef struct QUANT_PACKED { uint8_t ql[QK_K / 2]; uint8_t qh[QK_K / 4]; int8_t scales[QK_K / 16]; quant_half d; } block_q6_K;
typedef struct QUANT_PACKED { float d; int8_t qs[QK_K]; int16_t bsums[QK_K / 16]; } block_q8_K;
/* IQ4_XS: per 32 elements a 6-bit scale (offset 32; low 4 bits in scales_l, high 2 in scales_h),
   the elements' 4-bit codes into quant_iq4_values (x[j] low nibble of qs[16 ib + j], x[j + 16] high). */
typedef struct QUANT_PACKED { quant_half d; uint16_t scales_h; uint8_t scales_l[QK_K / 64]; uint8_t qs[QK_K / 2]; } block_iq4_xs;
/* IQ4_NL: per 32 elements an f16 scale and 4-bit codes into quant_iq4_values (x[j] low nibble of qs[j], x[j + 16] high). */
typedef struct QUANT_PACKED { quant_half d; uint8_t qs[QK / 2]; } block_iq4_nl;
/* The IQ grid formats (quant_iq.h): groups of 8 (IQ3: 4) elements as indices into a codebook of
   magnitudes (IQ1: of -1/0/1), signs per 8 elements, odd scales 2s + 1 per 16 or 32 elements. */
typedef struct QUANT_PACKED { quant_half d; uint16_t qs[QK_K / 8]; } block_iq2_xxs;
typedef struct QUANT_PACKED { quant_half d; uint16_t qs[QK_K / 8]; uint8_t scales[QK_K / 32]; } block_iq2_xs;
typedef struct QUANT_PACKED { quant_half d; uint8_t qs[QK_K / 4]; uint8_t qh[QK_K / 32]; uint8_t scales[QK_K / 32]; } block_iq2_s;
typedef struct QUANT_PACKED { quant_half d; uint8_t qs[3 * QK_K / 8]; } block_iq3_xxs;
typedef struct QUANT_PACKED { quant_half d; uint8_t qs[QK_K / 4]; uint8_t qh[QK_K / 32]; uint8_t signs[QK_K / 8]; uint8_t scales[QK_K / 64]; } block_iq3_s;
typedef struct QUANT_PACKED { quant_half d; uint8_t qs[QK_K / 8]; uint16_t qh[QK_K / 32]; } block_iq1_s;
/* IQ1_M: no d field; its f16 scale is the top nibbles of the four 16-bit words of scales. */
typedef struct QUANT_PACKED { uint8_t qs[QK_K / 8]; uint8_t qh[QK_K / 16]; uint8_t scales[QK_K / 32]; } block_iq1_m;
/* MXFP4: an E8M0 scale byte, then 32 E2M1 codes (x[j] in the low nibble of qs[j], x[j + 16] high). */
typedef struct QUANT_PACKED { uint8_t e; uint8_t qs[QK / 2]; } block_mxfp4;

_Static_assert(sizeof(block_q4_0) == 18, "Q4_0 block");
_Static_assert(sizeof(block_q4_1) == 20, "Q4_1 block");
_Static_assert(sizeof(block_q5_0) == 22, "Q5_0 block");
_Static_assert(sizeof(block_q5_1) == 24, "Q5_1 block");
_Static_assert(sizeof(block_q8_0) == 34, "Q8_0 block");
_Static_assert(sizeof(block_q8_1) == 36, "Q8_1 block");
_Static_assert(sizeof(block_q2_K) == 84, "Q2_K block");
_Static_assert(sizeof(block_q3_K) == 110, "Q3_K block");
_Static_assert(sizeof(block_q4_K) == 144, "Q4_K block");
_Static_assert(sizeof(block_q5_K) == 176, "Q5_K block");
_Static_assert(sizeof(block_q6_K) == 210, "Q6_K block");
_Static_assert(sizeof(block_q8_K) == 292, "Q8_K block");
_Static_assert(sizeof(block_mxfp4) == 17, "MXFP4 block");
_Static_assert(sizeof(block_iq4_xs) == 136, "IQ4_XS block");
_Static_assert(sizeof(block_iq4_nl) == 18, "IQ4_NL block");
_Static_assert(sizeof(block_iq2_xxs) == 66, "IQ2_XXS block");
_Static_assert(sizeof(block_iq2_xs) == 74, "IQ2_XS block");
_Static_assert(sizeof(block_iq2_s) == 82, "IQ2_S block");
_Static_assert(sizeof(block_iq3_xxs) == 98, "IQ3_XXS block");
_Static_assert(sizeof(block_iq3_s) == 110, "IQ3_S block");
_Static_assert(sizeof(block_iq1_s) == 50, "IQ1_S block");
_Static_assert(sizeof(block_iq1_m) == 56, "IQ1_M block");

/* The values of IQ4_NL's and IQ4_XS's 4-bit codes (ggml's kvalues_iq4nl). */
static const int8_t quant_iq4_values[16] __attribute__((unused)) = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

/* The 6-bit scale (0..63, offset 32) of sub-block ib (0..7) of an IQ4_XS block. */
static inline int quant_iq4_xs_scale(const block_iq4_xs *x, int ib) {
  uint16_t h;
  memcpy(&h, &x->scales_h, 2);
  return ((x->scales_l[ib / 2] >> (4 * (ib % 2))) & 0xf) | (((h >> (2 * ib)) & 3) << 4);
}

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

/* quant_e8m0_half as a table: 2^(e - 128) for every byte e (2^-128 and 2^-127 are f32 subnormals). */
static const float quant_e8m0_half_table[256] __attribute__((unused, aligned(64))) = {
    0x1p-128f, 0x1p-127f, 0x1p-126f, 0x1p-125f, 0x1p-124f, 0x1p-123f, 0x1p-122f, 0x1p-121f,
    0x1p-120f, 0x1p-119f, 0x1p-118f, 0x1p-117f, 0x1p-116f, 0x1p-115f, 0x1p-114f, 0x1p-113f,
    0x1p-112f, 0x1p-111f, 0x1p-110f, 0x1p-109f, 0x1p-108f, 0x1p-107f, 0x1p-106f, 0x1p-105f,
    0x1p-104f, 0x1p-103f, 0x1p-102f, 0x1p-101f, 0x1p-100f, 0x1p-99f, 0x1p-98f, 0x1p-97f,
    0x1p-96f, 0x1p-95f, 0x1p-94f, 0x1p-93f, 0x1p-92f, 0x1p-91f, 0x1p-90f, 0x1p-89f,
    0x1p-88f, 0x1p-87f, 0x1p-86f, 0x1p-85f, 0x1p-84f, 0x1p-83f, 0x1p-82f, 0x1p-81f,
    0x1p-80f, 0x1p-79f, 0x1p-78f, 0x1p-77f, 0x1p-76f, 0x1p-75f, 0x1p-74f, 0x1p-73f,
    0x1p-72f, 0x1p-71f, 0x1p-70f, 0x1p-69f, 0x1p-68f, 0x1p-67f, 0x1p-66f, 0x1p-65f,
    0x1p-64f, 0x1p-63f, 0x1p-62f, 0x1p-61f, 0x1p-60f, 0x1p-59f, 0x1p-58f, 0x1p-57f,
    0x1p-56f, 0x1p-55f, 0x1p-54f, 0x1p-53f, 0x1p-52f, 0x1p-51f, 0x1p-50f, 0x1p-49f,
    0x1p-48f, 0x1p-47f, 0x1p-46f, 0x1p-45f, 0x1p-44f, 0x1p-43f, 0x1p-42f, 0x1p-41f,
    0x1p-40f, 0x1p-39f, 0x1p-38f, 0x1p-37f, 0x1p-36f, 0x1p-35f, 0x1p-34f, 0x1p-33f,
    0x1p-32f, 0x1p-31f, 0x1p-30f, 0x1p-29f, 0x1p-28f, 0x1p-27f, 0x1p-26f, 0x1p-25f,
    0x1p-24f, 0x1p-23f, 0x1p-22f, 0x1p-21f, 0x1p-20f, 0x1p-19f, 0x1p-18f, 0x1p-17f,
    0x1p-16f, 0x1p-15f, 0x1p-14f, 0x1p-13f, 0x1p-12f, 0x1p-11f, 0x1p-10f, 0x1p-9f,
    0x1p-8f, 0x1p-7f, 0x1p-6f, 0x1p-5f, 0x1p-4f, 0x1p-3f, 0x1p-2f, 0x1p-1f,
    0x1p0f, 0x1p1f, 0x1p2f, 0x1p3f, 0x1p4f, 0x1p5f, 0x1p6f, 0x1p7f,
    0x1p8f, 0x1p9f, 0x1p10f, 0x1p11f, 0x1p12f, 0x1p13f, 0x1p14f, 0x1p15f,
    0x1p16f, 0x1p17f, 0x1p18f, 0x1p19f, 0x1p20f, 0x1p21f, 0x1p22f, 0x1p23f,
    0x1p24f, 0x1p25f, 0x1p26f, 0x1p27f, 0x1p28f, 0x1p29f, 0x1p30f, 0x1p31f,
    0x1p32f, 0x1p33f, 0x1p34f, 0x1p35f, 0x1p36f, 0x1p37f, 0x1p38f, 0x1p39f,
    0x1p40f, 0x1p41f, 0x1p42f, 0x1p43f, 0x1p44f, 0x1p45f, 0x1p46f, 0x1p47f,
    0x1p48f, 0x1p49f, 0x1p50f, 0x1p51f, 0x1p52f, 0x1p53f, 0x1p54f, 0x1p55f,
    0x1p56f, 0x1p57f, 0x1p58f, 0x1p59f, 0x1p60f, 0x1p61f, 0x1p62f, 0x1p63f,
    0x1p64f, 0x1p65f, 0x1p66f, 0x1p67f, 0x1p68f, 0x1p69f, 0x1p70f, 0x1p71f,
    0x1p72f, 0x1p73f, 0x1p74f, 0x1p75f, 0x1p76f, 0x1p77f, 0x1p78f, 0x1p79f,
    0x1p80f, 0x1p81f, 0x1p82f, 0x1p83f, 0x1p84f, 0x1p85f, 0x1p86f, 0x1p87f,
    0x1p88f, 0x1p89f, 0x1p90f, 0x1p91f, 0x1p92f, 0x1p93f, 0x1p94f, 0x1p95f,
    0x1p96f, 0x1p97f, 0x1p98f, 0x1p99f, 0x1p100f, 0x1p101f, 0x1p102f, 0x1p103f,
    0x1p104f, 0x1p105f, 0x1p106f, 0x1p107f, 0x1p108f, 0x1p109f, 0x1p110f, 0x1p111f,
    0x1p112f, 0x1p113f, 0x1p114f, 0x1p115f, 0x1p116f, 0x1p117f, 0x1p118f, 0x1p119f,
    0x1p120f, 0x1p121f, 0x1p122f, 0x1p123f, 0x1p124f, 0x1p125f, 0x1p126f, 0x1p127f,
};

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

/* The signed scale (-32..31) of 16-element group j (0..15) of a Q3_K block: 6 bits packed in its 12 scale bytes. */
static inline int quant_q3_K_scale(const uint8_t *scales, int j) {
  const int low = j < 8 ? scales[j] & 0xf : scales[j - 8] >> 4;
  const int high = (scales[8 + (j & 3)] >> (2 * (j >> 2))) & 3;
  return (low | (high << 4)) - 32;
}

/*
 * Element e of a Q2_K/Q3_K block takes bits 2 (e % 128 / 32) .. + 1 of qs[32 (e / 128) + e % 32]
 * (and Q3_K its third bit from bit e / 32 of hmask[e % 32]).
 */
static inline int quant_k_low2(const uint8_t *qs, int e) { return (qs[32 * (e >> 7) + (e & 31)] >> (2 * ((e >> 5) & 3))) & 3; }

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
