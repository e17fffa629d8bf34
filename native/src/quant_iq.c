/*
 * The IQ grid formats as integers (quant_iq.h): the codebooks expanded at load, one unpacking per
 * format (as ggml's dequantizers read the bits), and the decoding to floats built on it.
 */
#include "quant_iq.h"

#include <string.h>

/* Codebooks as rows of bytes: 8 per entry (IQ2, IQ1), 4 per entry (IQ3). */
uint8_t quant_iq2xxs_rows[256 * 8] __attribute__((aligned(64))), quant_iq2xs_rows[512 * 8] __attribute__((aligned(64)));
uint8_t quant_iq2s_rows[1024 * 8] __attribute__((aligned(64))), quant_iq1s_rows[2048 * 8] __attribute__((aligned(64)));
uint8_t quant_iq3xxs_rows[256 * 4] __attribute__((aligned(64))), quant_iq3s_rows[512 * 4] __attribute__((aligned(64)));
/* Byte j 0xff where bit j of the index is set: the elements a sign byte negates. */
static uint64_t g_sign_mask[256];
uint64_t quant_iq_even_sign_masks[128] __attribute__((aligned(64)));

static void expand(const uint16_t *codes, int entries, int width, const int8_t *values, uint8_t *out) {
  const int bits = width == 8 ? 2 : 3;
  for (int i = 0; i < entries; i++)
    for (int j = 0; j < width; j++) out[i * width + j] = (uint8_t)values[(codes[i] >> (bits * j)) & ((1 << bits) - 1)];
}

const int8_t *quant_iq_values(int type, int *count) {
  static const int8_t v2[3] = {8, 25, 43}, v1[3] = {-1, 0, 1};
  static const int8_t v3xxs[8] = {4, 12, 20, 28, 36, 44, 52, 62}, v3s[8] = {1, 3, 5, 7, 9, 11, 13, 15};
  switch (type) {
    case CAIRN_IQ3_XXS: *count = 8; return v3xxs;
    case CAIRN_IQ3_S: *count = 8; return v3s;
    case CAIRN_IQ1_S: case CAIRN_IQ1_M: *count = 3; return v1;
    default: *count = 3; return v2;
  }
}

/* The 7 stored sign bits of 8 elements with the eighth that makes their count even (ggml's ksigns_iq2xs). */
static inline int even_signs(int s7) { return s7 | (__builtin_popcount((unsigned)s7) & 1) << 7; }

/* Before quant_iq_encode.c's search tables (priority 102), which read these. */
__attribute__((constructor(101))) static void quant_iq_expand(void) {
  static const struct {
    int type;
    const uint16_t *codes;
  } books[] = {{CAIRN_IQ2_XXS, quant_iq2xxs_codes}, {CAIRN_IQ2_XS, quant_iq2xs_codes}, {CAIRN_IQ2_S, quant_iq2s_codes},
               {CAIRN_IQ1_S, quant_iq1s_codes},     {CAIRN_IQ3_XXS, quant_iq3xxs_codes}, {CAIRN_IQ3_S, quant_iq3s_codes}};
  for (unsigned i = 0; i < sizeof books / sizeof books[0]; i++) {
    int entries, width, count;
    uint8_t *rows = (uint8_t *)quant_iq_grid(books[i].type, &entries, &width);
    expand(books[i].codes, entries, width, quant_iq_values(books[i].type, &count), rows);
  }
  for (int i = 0; i < 256; i++) {
    uint64_t m = 0;
    for (int j = 0; j < 8; j++)
      if (i >> j & 1) m |= (uint64_t)0xff << (8 * j);
    g_sign_mask[i] = m;
  }
  for (int i = 0; i < 128; i++) quant_iq_even_sign_masks[i] = g_sign_mask[even_signs(i)];
}

const uint8_t *quant_iq_grid(int type, int *entries, int *width) {
  switch (type) {
    case CAIRN_IQ2_XXS: *entries = 256, *width = 8; return quant_iq2xxs_rows;
    case CAIRN_IQ2_XS: *entries = 512, *width = 8; return quant_iq2xs_rows;
    case CAIRN_IQ2_S: *entries = 1024, *width = 8; return quant_iq2s_rows;
    case CAIRN_IQ1_S: case CAIRN_IQ1_M: *entries = 2048, *width = 8; return quant_iq1s_rows;
    case CAIRN_IQ3_XXS: *entries = 256, *width = 4; return quant_iq3xxs_rows;
    case CAIRN_IQ3_S: *entries = 512, *width = 4; return quant_iq3s_rows;
    default: *entries = 0, *width = 0; return NULL;
  }
}

/* Eight magnitude bytes (all >= 1) with those under `signs` negated: per byte (g ^ 0xff) + 1, no carries. */
static inline void signed8(const uint8_t *grid8, int signs, int8_t *q) {
  uint64_t g;
  memcpy(&g, grid8, 8);
  const uint64_t m = g_sign_mask[signs & 0xff];
  g = (g ^ m) + (m & 0x0101010101010101ull);
  memcpy(q, &g, 8);
}

/* Two 4-element entries side by side as 8 bytes, then signed. */
static inline void signed4x2(const uint8_t *grid, int i1, int i2, int signs, int8_t *q) {
  uint8_t g[8];
  memcpy(g, grid + 4 * i1, 4);
  memcpy(g + 4, grid + 4 * i2, 4);
  signed8(g, signs, q);
}

/* IQ1: 8 g + delta per element (g in -1, 0, 1; delta +1 or -1). */
static inline void iq1_eight(int idx, int delta, int8_t *q) {
  const int8_t *g = (const int8_t *)quant_iq1s_rows + 8 * idx;
  for (int j = 0; j < 8; j++) q[j] = (int8_t)(8 * g[j] + delta);
}

static inline uint16_t read_u16(const void *p) {
  uint16_t v;
  memcpy(&v, p, 2);
  return v;
}

static inline uint32_t read_u32(const void *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

float quant_iq_unpack(int type, const void *block, int8_t *q, int16_t *sc) {
  switch (type) {
    case CAIRN_IQ2_XXS: {
      const block_iq2_xxs *x = block;
      for (int ib = 0; ib < 8; ib++) {
        const uint32_t idx = read_u32(&x->qs[4 * ib]), aux = read_u32(&x->qs[4 * ib + 2]);
        sc[2 * ib] = sc[2 * ib + 1] = (int16_t)(2 * (aux >> 28) + 1);
        for (int l = 0; l < 4; l++) signed8(quant_iq2xxs_rows + 8 * ((idx >> (8 * l)) & 0xff), even_signs((aux >> (7 * l)) & 127), q + 32 * ib + 8 * l);
      }
      return quant_half_to_f32(x->d) * 0.125f;
    }
    case CAIRN_IQ2_XS: {
      const block_iq2_xs *x = block;
      for (int ib = 0; ib < 8; ib++) {
        sc[2 * ib] = (int16_t)(2 * (x->scales[ib] & 0xf) + 1);
        sc[2 * ib + 1] = (int16_t)(2 * (x->scales[ib] >> 4) + 1);
        for (int l = 0; l < 4; l++) {
          const uint16_t v = read_u16(&x->qs[4 * ib + l]);
          signed8(quant_iq2xs_rows + 8 * (v & 511), even_signs(v >> 9), q + 32 * ib + 8 * l);
        }
      }
      return quant_half_to_f32(x->d) * 0.125f;
    }
    case CAIRN_IQ2_S: {
      const block_iq2_s *x = block;
      const uint8_t *signs = x->qs + QK_K / 8;
      for (int ib = 0; ib < 8; ib++) {
        sc[2 * ib] = (int16_t)(2 * (x->scales[ib] & 0xf) + 1);
        sc[2 * ib + 1] = (int16_t)(2 * (x->scales[ib] >> 4) + 1);
        for (int l = 0; l < 4; l++) {
          const int idx = x->qs[4 * ib + l] | ((x->qh[ib] << (8 - 2 * l)) & 0x300);
          signed8(quant_iq2s_rows + 8 * idx, signs[4 * ib + l], q + 32 * ib + 8 * l);
        }
      }
      return quant_half_to_f32(x->d) * 0.125f;
    }
    case CAIRN_IQ3_XXS: {
      const block_iq3_xxs *x = block;
      const uint8_t *scales_signs = x->qs + QK_K / 4;
      for (int ib = 0; ib < 8; ib++) {
        const uint32_t aux = read_u32(scales_signs + 4 * ib);
        sc[2 * ib] = sc[2 * ib + 1] = (int16_t)(2 * (aux >> 28) + 1);
        for (int l = 0; l < 4; l++)
          signed4x2(quant_iq3xxs_rows, x->qs[8 * ib + 2 * l], x->qs[8 * ib + 2 * l + 1], even_signs((aux >> (7 * l)) & 127), q + 32 * ib + 8 * l);
      }
      return quant_half_to_f32(x->d) * 0.25f;
    }
    case CAIRN_IQ3_S: {
      const block_iq3_s *x = block;
      for (int ib = 0; ib < 8; ib++) {
        sc[2 * ib] = sc[2 * ib + 1] = (int16_t)(2 * ((x->scales[ib / 2] >> (4 * (ib % 2))) & 0xf) + 1);
        const int qh = x->qh[ib];
        for (int l = 0; l < 4; l++) {
          const int i1 = x->qs[8 * ib + 2 * l] | ((qh << (8 - 2 * l)) & 256), i2 = x->qs[8 * ib + 2 * l + 1] | ((qh << (7 - 2 * l)) & 256);
          signed4x2(quant_iq3s_rows, i1, i2, x->signs[4 * ib + l], q + 32 * ib + 8 * l);
        }
      }
      return quant_half_to_f32(x->d);
    }
    case CAIRN_IQ1_S: {
      const block_iq1_s *x = block;
      for (int ib = 0; ib < 8; ib++) {
        const uint16_t qh = read_u16(&x->qh[ib]);
        sc[2 * ib] = sc[2 * ib + 1] = (int16_t)(2 * ((qh >> 12) & 7) + 1);
        const int delta = qh & 0x8000 ? -1 : 1;
        for (int l = 0; l < 4; l++) iq1_eight(x->qs[4 * ib + l] | (((qh >> (3 * l)) & 7) << 8), delta, q + 32 * ib + 8 * l);
      }
      return quant_half_to_f32(x->d) * 0.125f;
    }
    case CAIRN_IQ1_M: {
      const block_iq1_m *x = block;
      uint16_t s[4];
      memcpy(s, x->scales, 8);
      const quant_half d = (quant_half)((s[0] >> 12) | ((s[1] >> 8) & 0x00f0) | ((s[2] >> 4) & 0x0f00) | (s[3] & 0xf000));
      for (int ib = 0; ib < 8; ib++) {
        sc[2 * ib] = (int16_t)(2 * ((s[ib / 2] >> (6 * (ib % 2))) & 7) + 1);
        sc[2 * ib + 1] = (int16_t)(2 * ((s[ib / 2] >> (6 * (ib % 2) + 3)) & 7) + 1);
        const int h0 = x->qh[2 * ib], h1 = x->qh[2 * ib + 1];
        iq1_eight(x->qs[4 * ib + 0] | ((h0 << 8) & 0x700), h0 & 0x08 ? -1 : 1, q + 32 * ib);
        iq1_eight(x->qs[4 * ib + 1] | ((h0 << 4) & 0x700), h0 & 0x80 ? -1 : 1, q + 32 * ib + 8);
        iq1_eight(x->qs[4 * ib + 2] | ((h1 << 8) & 0x700), h1 & 0x08 ? -1 : 1, q + 32 * ib + 16);
        iq1_eight(x->qs[4 * ib + 3] | ((h1 << 4) & 0x700), h1 & 0x80 ? -1 : 1, q + 32 * ib + 24);
      }
      return quant_half_to_f32(d) * 0.125f;
    }
    default:
      memset(q, 0, QK_K);
      memset(sc, 0, 16 * sizeof *sc);
      return 0;
  }
}

void quant_iq_decode(int type, const void *block, float *y) {
  int8_t q[QK_K];
  int16_t sc[16];
  const float f = quant_iq_unpack(type, block, q, sc);
  for (int j = 0; j < QK_K; j++) y[j] = (f * sc[j / 16]) * q[j];
}
