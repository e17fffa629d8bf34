/*
 * The IQ grid formats (IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S): what the 1- to 3-bit
 * files of the large MoE models are made of. Every element of a 256-element super-block is an
 * integer q (a codebook entry's element with its sign; IQ1's 8 x (-1, 0, 1) +- 1 for its delta) times
 * an odd integer scale 2s + 1 per 16 elements, times one f32 factor per super-block (the f16 d times
 * 1/8, 1/4 or 1). quant_iq_unpack gives those integers, and every kernel (scalar, AVX2, AVX-512,
 * NEON) forms its sums from them: Σ_g scale_g x (q . activations of group g) exactly, then one
 * multiply by factor x the activations' scale, as the scalar kernel does; so every level gives
 * the scalar kernel's results bit for bit.
 */
#ifndef CAIRN_QUANT_IQ_H
#define CAIRN_QUANT_IQ_H

#include <stdint.h>

#include "cairn.h"
#include "quant_formats.h"

/* Compact codebooks (quant_iq_grids.c): 2-bit (8 elements) or 3-bit (4 elements) value indices. */
extern const uint16_t quant_iq2xxs_codes[256], quant_iq2xs_codes[512], quant_iq2s_codes[1024];
extern const uint16_t quant_iq3xxs_codes[256], quant_iq3s_codes[512], quant_iq1s_codes[2048];

/* The codebooks expanded (filled at load): entry i's elements as bytes at 8 i (IQ2, IQ1: int8 -1/0/1) or 4 i (IQ3). */
extern uint8_t quant_iq2xxs_rows[256 * 8], quant_iq2xs_rows[512 * 8], quant_iq2s_rows[1024 * 8], quant_iq1s_rows[2048 * 8];
extern uint8_t quant_iq3xxs_rows[256 * 4], quant_iq3s_rows[512 * 4];
/* Per 7 stored sign bits (with the eighth that makes their count even), byte j 0xff where element j is negative. */
extern uint64_t quant_iq_even_sign_masks[128];

/* The values a format's codebook elements take (IQ2: 3 magnitudes; IQ3: 8; IQ1: -1, 0, 1), and their count. */
const int8_t *quant_iq_values(int type, int *count);

/*
 * One super-block as integers: q[256] (|q| <= 62), scales[16] (odd, 1..31, one per 16 elements);
 * returns the super-block's factor: element j = factor x scales[j / 16] x q[j].
 */
float quant_iq_unpack(int type, const void *block, int8_t *q, int16_t *scales);

/* Decodes one super-block into 256 floats ((factor x scale) x q, in f32). */
void quant_iq_decode(int type, const void *block, float *y);

/* Encodes 256 floats as one super-block (quant_iq_encode.c; the same bytes as the TypeScript twin). */
void quant_iq_encode(int type, const float *x, void *block);

/* The codebook of a format expanded: entry i's elements as bytes (IQ1: -1, 0, 1 as int8). */
const uint8_t *quant_iq_grid(int type, int *entries, int *width);

#endif
