/*
 * IEEE half-precision conversions in portable C, bit-exact with the F16C and NEON instructions:
 * round to nearest even, subnormals kept, NaN payloads truncated and quieted.
 */
#ifndef CAIRN_OPS_F16_H
#define CAIRN_OPS_F16_H

#include <stdint.h>
#include <string.h>

static inline uint32_t ops_f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

static inline float ops_bits_f32(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static inline uint16_t ops_f32_to_f16(float f) {
  const uint32_t x = ops_f32_bits(f);
  const uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
  const uint32_t a = x & 0x7fffffff;
  if (a > 0x7f800000) return sign | 0x7e00 | (uint16_t)((a >> 13) & 0x3ff); /* NaN */
  if (a >= 0x477ff000) return sign | 0x7c00; /* >= 65520 rounds to infinity */
  if (a >= 0x38800000) {
    /* Normal: rebias the exponent, then round the 13 dropped mantissa bits to nearest even. */
    uint32_t h = (a >> 13) - (112u << 10);
    const uint32_t rest = a & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++;
    return sign | (uint16_t)h;
  }
  /* Subnormal result: count units of 2^-24. */
  const int shift = 126 - (int)(a >> 23);
  if (shift > 24) return sign;
  const uint32_t mant = (a & 0x7fffff) | 0x800000;
  uint32_t h = mant >> shift;
  const uint32_t rest = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
  if (rest > half || (rest == half && (h & 1))) h++;
  return sign | (uint16_t)h;
}

static inline float ops_f16_to_f32(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  const uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e == 0x1f) return ops_bits_f32(sign | 0x7f800000 | (m << 13));
  if (e != 0) return ops_bits_f32(sign | ((e + 112) << 23) | (m << 13));
  /* Zero or subnormal: m * 2^-24 is exact in f32. */
  const float v = (float)m * 5.9604644775390625e-8f;
  return sign ? -v : v;
}

#endif
