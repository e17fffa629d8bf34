/*
 * Q2_K, Q3_K, IQ4_XS and the IQ grid formats (quant_iq.h: their integers unpacked by the shared
 * scalar code, then used like IQ4_XS's signed values) on AVX2 and AVX-512, included by quant_x86_kernels.h for both tables. A
 * super-block of a row is unpacked once into vectors of 32 (AVX-512: 64) quants with a vector of
 * their scales beside each, and serves every token of the call: per vector one maddubs against the
 * activations and one madd (vpdpwssd) with the scales. Q2_K's quants are 0..3 and Q3_K's the stored
 * q + 4 (0..7), unsigned; IQ4_XS's are its codes' values (a byte shuffle through the 16 values),
 * signed, so they take the activations' signs and meet their magnitudes (up to 128, which a Q8_K
 * row holds: as a signed byte it could not change sign). The integers are exactly the scalar
 * kernel's (Q3_K's offset 4 comes off as 4 x Σ scale x group sum, Q2_K's mins as Σ min x group
 * sum), and the f32 steps after them are its steps in its order, so the results are the scalar
 * kernel's at every level and a token's result does not depend on its batch.
 */
#ifndef CAIRN_QUANT_X86_LOW_K_H
#define CAIRN_QUANT_X86_LOW_K_H

/* The formats these kernels serve: from IQ4_XS on, signed values with no offset or mins term. */
enum { QX_LK_Q2_K, QX_LK_Q3_K, QX_LK_IQ4_XS, QX_LK_IQ1_S, QX_LK_IQ1_M, QX_LK_IQ2_XXS, QX_LK_IQ2_XS, QX_LK_IQ2_S, QX_LK_IQ3_XXS, QX_LK_IQ3_S };

#define QX_LK_SIGNED(kind) ((kind) >= QX_LK_IQ4_XS)

/* The IQ grid format of a kind (quant_iq.h unpacks it). */
QX_INLINE int qx_lk_grid_type(const int kind) {
  static const int types[] = {CAIRN_IQ1_S, CAIRN_IQ1_M, CAIRN_IQ2_XXS, CAIRN_IQ2_XS, CAIRN_IQ2_S, CAIRN_IQ3_XXS, CAIRN_IQ3_S};
  return types[kind - QX_LK_IQ1_S];
}

/* Tokens whose sums one pass over a row's super-blocks keeps. */
#define QX_LOW_K_T 64

/* The offset unsigned quants carry over the signed ones: Q3_K's 4; the IQ grid formats' 64 where taken unsigned. */
QX_INLINE int qx_lk_offset(const int kind) { return kind == QX_LK_Q3_K ? 4 : kind > QX_LK_IQ4_XS ? 64 : 0; }

/*
 * One super-block's step of a token's sum: the scalar kernel's f32 operations, in its order
 * (Q2_K's mins term; an offset's group term, zero where the quants went in signed).
 */
QX_INLINE float qx_low_k_step(const int kind, float acc, float d, float dmin, float da, int isum, int groups) {
  if (kind == QX_LK_Q2_K) return acc + ((d * da) * isum - (dmin * da) * groups);
  return acc + (d * da) * (isum - qx_lk_offset(kind) * groups);
}

/*
 * A Q3_K block's 16 signed scales (quant_q3_K_scale) as int16, four at a time: low nibbles from
 * bytes 0-7, high bits from 8-11. The words go in through registers: a vector load of the four
 * stores would wait on them.
 */
QX_INLINE __m256i qx_q3_K_scales16(const block_q3_K *x) {
  uint32_t aux[4], t;
  memcpy(aux, x->scales, 12);
  t = aux[2];
  aux[2] = ((aux[0] >> 4) & 0x0f0f0f0f) | (((t >> 4) & 0x03030303) << 4);
  aux[3] = ((aux[1] >> 4) & 0x0f0f0f0f) | (((t >> 6) & 0x03030303) << 4);
  aux[0] = (aux[0] & 0x0f0f0f0f) | (((t >> 0) & 0x03030303) << 4);
  aux[1] = (aux[1] & 0x0f0f0f0f) | (((t >> 2) & 0x03030303) << 4);
  const __m128i codes = _mm_setr_epi32((int)aux[0], (int)aux[1], (int)aux[2], (int)aux[3]);
  return _mm256_sub_epi16(_mm256_cvtepu8_epi16(codes), _mm256_set1_epi16(32));
}

#if defined(__AVX512BW__) && defined(__AVX512VNNI__)
/*
 * On AVX-512 a vector holds 64 quants: those of elements 32j .. 32j + 31 of both 128-element halves
 * (the bytes the same shift of qs gives), so four vectors and four scale vectors (by 16-element
 * group: lane l takes group 8 (l / 2) + 2j + l % 2) make a super-block, and its integer sums for
 * four super-blocks (or four tokens) are reduced together.
 */
typedef struct {
  __m512i q[4], sc[4];
  __m256i sc16;
  float d, dmin;
} qx_low_k512; /* IQ4_XS: q its values, sc16 zero */

/* Word w's group in scale vector 0 (add 2j for vector j). */
static const int16_t qx_low_k_group0[32] __attribute__((aligned(64))) = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                                                         8, 8, 8, 8, 8, 8, 8, 8, 9, 9, 9, 9, 9, 9, 9, 9};

QX_INLINE void qx_low_k512_scales(__m256i scales16, __m512i *sc) {
  const __m512i s = _mm512_castsi256_si512(scales16), g0 = _mm512_load_si512((const void *)qx_low_k_group0);
  for (int j = 0; j < 4; j++) sc[j] = _mm512_permutexvar_epi16(_mm512_add_epi16(g0, _mm512_set1_epi16((short)(2 * j))), s);
}

QX_INLINE __m512i qx_low2_512(__m512i qs, int j) { return _mm512_and_si512(_mm512_srli_epi16(qs, 2 * j), _mm512_set1_epi8(3)); }

QX_INLINE void qx_unpack512_q2_K(const uint8_t *row, int b, qx_low_k512 *o) {
  const block_q2_K *x = (const block_q2_K *)row + b;
  const __m512i qs = _mm512_loadu_si512((const void *)x->qs);
  for (int j = 0; j < 4; j++) o->q[j] = qx_low2_512(qs, j);
  const __m256i bytes = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)x->scales));
  qx_low_k512_scales(_mm256_and_si256(bytes, _mm256_set1_epi16(0xf)), o->sc);
  o->sc16 = _mm256_srli_epi16(bytes, 4);
  o->d = qx_half(&x->d);
  o->dmin = qx_half(&x->dmin);
}

QX_INLINE void qx_unpack512_q3_K(const uint8_t *row, int b, qx_low_k512 *o) {
  const block_q3_K *x = (const block_q3_K *)row + b;
  const __m512i qs = _mm512_loadu_si512((const void *)x->qs);
  const __m512i hm = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)x->hmask));
  /* The third bit of half n's elements 32j + l is bit 4n + j of hmask[l]: shifted down per half, then to bit 2. */
  const __m512i half = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(4), 1);
  for (int j = 0; j < 4; j++) {
    const __m512i high = _mm512_slli_epi16(_mm512_srlv_epi16(hm, _mm512_add_epi16(half, _mm512_set1_epi16((short)j))), 2);
    o->q[j] = _mm512_or_si512(qx_low2_512(qs, j), _mm512_and_si512(high, _mm512_set1_epi8(4)));
  }
  o->sc16 = qx_q3_K_scales16(x);
  qx_low_k512_scales(o->sc16, o->sc);
  o->d = qx_half(&x->d);
  o->dmin = 0;
}

/* IQ4_XS: two sub-blocks' 64 values a vector (each 16 code bytes broadcast to two lanes, low nibbles then high). */
QX_INLINE void qx_unpack512_iq4_xs(const uint8_t *row, int b, qx_low_k512 *o) {
  const block_iq4_xs *x = (const block_iq4_xs *)row + b;
  const __m512i table = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)quant_iq4_values));
  const __m256i lane_shifts = _mm256_setr_m128i(_mm_setzero_si128(), _mm_set1_epi16(4));
  const __m512i shifts = _mm512_inserti64x4(_mm512_castsi256_si512(lane_shifts), lane_shifts, 1);
  for (int p = 0; p < 4; p++) {
    const __m512i both = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x->qs + 32 * p)));
    const __m512i codes = _mm512_and_si512(_mm512_srlv_epi16(_mm512_shuffle_i64x2(both, both, 0x50), shifts), _mm512_set1_epi8(0x0f));
    o->q[p] = _mm512_shuffle_epi8(table, codes);
    o->sc[p] = _mm512_mask_set1_epi16(_mm512_set1_epi16((short)(quant_iq4_xs_scale(x, 2 * p) - 32)), (__mmask32)0xffff0000u,
                                      (short)(quant_iq4_xs_scale(x, 2 * p + 1) - 32));
  }
  o->sc16 = _mm256_setzero_si256();
  o->d = qx_half(&x->d);
  o->dmin = 0;
}

/* The scale vector of a pair of 32-element sub-blocks: s0 in words 0-15, s1 in 16-31 (s0/s1 per 16: four words' groups). */
QX_INLINE __m512i qx_grid_scales2(int s0, int s1) {
  return _mm512_mask_set1_epi16(_mm512_set1_epi16((short)s0), (__mmask32)0xffff0000u, (short)s1);
}

/* Each of 8 lanes' 8 signed bytes: rows (magnitudes >= 1) negated where the lane's mask bytes are 0xff. */
QX_INLINE __m512i qx_grid_signed(__m512i rows, __m512i masks) { return _mm512_sub_epi8(_mm512_xor_si512(rows, masks), masks); }

/* The parity-completed sign masks of four 7-bit fields of aux0 (lanes 0-3) and of aux1 (lanes 4-7). */
QX_INLINE __m512i qx_grid_even_signs(uint32_t aux0, uint32_t aux1) {
  const __m512i av = _mm512_set_epi64(aux1, aux1, aux1, aux1, aux0, aux0, aux0, aux0);
  const __m512i sidx = _mm512_and_si512(_mm512_srlv_epi64(av, _mm512_set_epi64(21, 14, 7, 0, 21, 14, 7, 0)), _mm512_set1_epi64(127));
  return _mm512_i64gather_epi64(sidx, (const void *)quant_iq_even_sign_masks, 8);
}

/*
 * An IQ grid super-block, 64 integers a vector, each 16's scale in its words: the codebook rows and
 * sign masks gathered straight into vectors (the integers of quant_iq_unpack).
 */
QX_INLINE void qx_unpack512_grid(int type, const uint8_t *row, int b, qx_low_k512 *o) {
  o->sc16 = _mm256_setzero_si256();
  o->dmin = 0;
  if (type == CAIRN_IQ2_XXS || type == CAIRN_IQ3_XXS) {
    const int xxs3 = type == CAIRN_IQ3_XXS;
    const uint8_t *x = row + (size_t)b * (xxs3 ? sizeof(block_iq3_xxs) : sizeof(block_iq2_xxs));
    for (int p = 0; p < 4; p++) {
      uint32_t a0, a1;
      __m512i g;
      if (xxs3) { /* 16 four-byte rows: indices qs[16p ..], signs and scales at qs + 64 */
        memcpy(&a0, x + 2 + 64 + 8 * p, 4);
        memcpy(&a1, x + 2 + 64 + 8 * p + 4, 4);
        g = _mm512_i32gather_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(x + 2 + 16 * p))), (const void *)quant_iq3xxs_rows, 4);
      } else { /* 8 eight-byte rows: per sub-block four index bytes, then its u32 of signs and scale */
        const __m128i raw = _mm_loadu_si128((const __m128i *)(x + 2 + 16 * p));
        memcpy(&a0, x + 2 + 16 * p + 4, 4);
        memcpy(&a1, x + 2 + 16 * p + 12, 4);
        const __m128i idx8 = _mm_shuffle_epi8(raw, _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, -1, -1, -1, -1, -1, -1, -1, -1));
        g = _mm512_i64gather_epi64(_mm512_cvtepu8_epi64(idx8), (const void *)quant_iq2xxs_rows, 8);
      }
      o->q[p] = qx_grid_signed(g, qx_grid_even_signs(a0, a1));
      o->sc[p] = qx_grid_scales2(2 * (int)(a0 >> 28) + 1, 2 * (int)(a1 >> 28) + 1);
    }
    o->d = qx_half(x) * (xxs3 ? 0.25f : 0.125f);
    return;
  }
  if (type == CAIRN_IQ2_XS) {
    const block_iq2_xs *x = (const block_iq2_xs *)row + b;
    for (int p = 0; p < 4; p++) {
      const __m512i v = _mm512_cvtepu16_epi64(_mm_loadu_si128((const __m128i *)(x->qs + 8 * p)));
      const __m512i g = _mm512_i64gather_epi64(_mm512_and_si512(v, _mm512_set1_epi64(511)), (const void *)quant_iq2xs_rows, 8);
      const __m512i m = _mm512_i64gather_epi64(_mm512_srli_epi64(v, 9), (const void *)quant_iq_even_sign_masks, 8);
      o->q[p] = qx_grid_signed(g, m);
      const int s0 = x->scales[2 * p], s1 = x->scales[2 * p + 1];
      const __m256i lo = _mm256_set_m128i(_mm_set1_epi16((short)(2 * (s0 >> 4) + 1)), _mm_set1_epi16((short)(2 * (s0 & 15) + 1)));
      const __m256i hi = _mm256_set_m128i(_mm_set1_epi16((short)(2 * (s1 >> 4) + 1)), _mm_set1_epi16((short)(2 * (s1 & 15) + 1)));
      o->sc[p] = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
    }
    o->d = qx_half(&x->d) * 0.125f;
    return;
  }
  if (type == CAIRN_IQ1_S) {
    const block_iq1_s *x = (const block_iq1_s *)row + b;
    for (int p = 0; p < 4; p++) {
      uint16_t h0, h1;
      memcpy(&h0, &x->qh[2 * p], 2);
      memcpy(&h1, &x->qh[2 * p + 1], 2);
      const __m512i hv = _mm512_set_epi64(h1, h1, h1, h1, h0, h0, h0, h0);
      const __m512i high = _mm512_slli_epi64(_mm512_and_si512(_mm512_srlv_epi64(hv, _mm512_set_epi64(9, 6, 3, 0, 9, 6, 3, 0)), _mm512_set1_epi64(7)), 8);
      const __m512i idx = _mm512_or_si512(_mm512_cvtepu8_epi64(_mm_loadl_epi64((const __m128i *)(x->qs + 8 * p))), high);
      const __m512i g = _mm512_i64gather_epi64(idx, (const void *)quant_iq1s_rows, 8);
      /* 8 g + delta per byte: g's bytes -1/0/1 shifted by 3 within each byte, the sub-block's delta added. */
      const __m512i g8 = _mm512_and_si512(_mm512_slli_epi64(g, 3), _mm512_set1_epi8((char)0xf8));
      const __m512i delta = _mm512_mask_set1_epi8(_mm512_set1_epi8(h0 & 0x8000 ? -1 : 1), (__mmask64)0xffffffff00000000ull, (char)(h1 & 0x8000 ? -1 : 1));
      o->q[p] = _mm512_add_epi8(g8, delta);
      o->sc[p] = qx_grid_scales2(2 * ((h0 >> 12) & 7) + 1, 2 * ((h1 >> 12) & 7) + 1);
    }
    o->d = qx_half(&x->d) * 0.125f;
    return;
  }
  if (type == CAIRN_IQ1_M) {
    const block_iq1_m *x = (const block_iq1_m *)row + b;
    uint16_t sw[4];
    memcpy(sw, x->scales, 8);
    const uint16_t dbits = (uint16_t)((sw[0] >> 12) | ((sw[1] >> 8) & 0x00f0) | ((sw[2] >> 4) & 0x0f00) | (sw[3] & 0xf000));
    for (int p = 0; p < 4; p++) {
      uint32_t h;
      memcpy(&h, x->qh + 4 * p, 4);
      /* Group n of the pair: its nibble of qh, three high index bits and the delta's sign. */
      const __m512i nib = _mm512_and_si512(_mm512_srlv_epi64(_mm512_set1_epi64(h), _mm512_setr_epi64(0, 4, 8, 12, 16, 20, 24, 28)), _mm512_set1_epi64(15));
      const __m512i idx = _mm512_or_si512(_mm512_cvtepu8_epi64(_mm_loadl_epi64((const __m128i *)(x->qs + 8 * p))),
                                          _mm512_slli_epi64(_mm512_and_si512(nib, _mm512_set1_epi64(7)), 8));
      const __m512i g = _mm512_i64gather_epi64(idx, (const void *)quant_iq1s_rows, 8);
      const __m512i g8 = _mm512_and_si512(_mm512_slli_epi64(g, 3), _mm512_set1_epi8((char)0xf8));
      const __mmask8 minus = _mm512_test_epi64_mask(nib, _mm512_set1_epi64(8));
      o->q[p] = _mm512_add_epi8(g8, _mm512_mask_blend_epi64(minus, _mm512_set1_epi8(1), _mm512_set1_epi8(-1)));
      const int sp = sw[p];
      const __m256i lo = _mm256_set_m128i(_mm_set1_epi16((short)(2 * ((sp >> 3) & 7) + 1)), _mm_set1_epi16((short)(2 * (sp & 7) + 1)));
      const __m256i hi = _mm256_set_m128i(_mm_set1_epi16((short)(2 * ((sp >> 9) & 7) + 1)), _mm_set1_epi16((short)(2 * ((sp >> 6) & 7) + 1)));
      o->sc[p] = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
    }
    o->d = qx_half(&dbits) * 0.125f;
    return;
  }
  if (type == CAIRN_IQ2_S || type == CAIRN_IQ3_S) {
    const int s3 = type == CAIRN_IQ3_S;
    const uint8_t *x = row + (size_t)b * (s3 ? sizeof(block_iq3_s) : sizeof(block_iq2_s));
    const uint8_t *qs = x + 2, *qh = x + 2 + QK_K / 4, *signs = s3 ? x + 2 + QK_K / 4 + QK_K / 32 : x + 2 + QK_K / 8;
    const uint8_t *scales = s3 ? x + 2 + QK_K / 4 + QK_K / 32 + QK_K / 8 : x + 2 + QK_K / 4 + QK_K / 32;
    /* Per 8 elements a sign byte: copied to its lane's 8 bytes, each byte testing its own bit. */
    const __m512i bits = _mm512_set1_epi64((long long)0x8040201008040201ull);
    const __m512i spread = _mm512_set_epi8(8, 8, 8, 8, 8, 8, 8, 8, 0, 0, 0, 0, 0, 0, 0, 0, 8, 8, 8, 8, 8, 8, 8, 8, 0, 0, 0, 0, 0, 0, 0, 0, 8, 8,
                                           8, 8, 8, 8, 8, 8, 0, 0, 0, 0, 0, 0, 0, 0, 8, 8, 8, 8, 8, 8, 8, 8, 0, 0, 0, 0, 0, 0, 0, 0);
    for (int p = 0; p < 4; p++) {
      const int h = qh[2 * p] | qh[2 * p + 1] << 8;
      __m512i g;
      if (s3) { /* 16 four-byte rows, row r's ninth index bit bit r of the pair's qh */
        const __m512i high = _mm512_slli_epi32(_mm512_and_si512(_mm512_srlv_epi32(_mm512_set1_epi32(h), _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)), _mm512_set1_epi32(1)), 8);
        g = _mm512_i32gather_epi32(_mm512_or_si512(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(qs + 16 * p))), high), (const void *)quant_iq3s_rows, 4);
      } else { /* 8 eight-byte rows, row r's two high index bits bits 2r, 2r + 1 of the pair's qh */
        const __m512i high = _mm512_slli_epi64(_mm512_and_si512(_mm512_srlv_epi64(_mm512_set1_epi64(h), _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14)), _mm512_set1_epi64(3)), 8);
        g = _mm512_i64gather_epi64(_mm512_or_si512(_mm512_cvtepu8_epi64(_mm_loadl_epi64((const __m128i *)(qs + 8 * p))), high), (const void *)quant_iq2s_rows, 8);
      }
      const __m512i sb = _mm512_shuffle_epi8(_mm512_cvtepu8_epi64(_mm_loadl_epi64((const __m128i *)(signs + 8 * p))), spread);
      o->q[p] = qx_grid_signed(g, _mm512_movm_epi8(_mm512_test_epi8_mask(sb, bits)));
      if (s3) {
        o->sc[p] = qx_grid_scales2(2 * (scales[p] & 15) + 1, 2 * (scales[p] >> 4) + 1);
      } else {
        const int s0 = scales[2 * p], s1 = scales[2 * p + 1];
        const __m256i lo = _mm256_set_m128i(_mm_set1_epi16((short)(2 * (s0 >> 4) + 1)), _mm_set1_epi16((short)(2 * (s0 & 15) + 1)));
        const __m256i hi = _mm256_set_m128i(_mm_set1_epi16((short)(2 * (s1 >> 4) + 1)), _mm_set1_epi16((short)(2 * (s1 & 15) + 1)));
        o->sc[p] = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
      }
    }
    o->d = qx_half(x) * (s3 ? 1.f : 0.125f);
    return;
  }
}

QX_INLINE void qx_unpack512(const int kind, const uint8_t *row, int b, qx_low_k512 *o) {
  if (kind == QX_LK_Q2_K) qx_unpack512_q2_K(row, b, o);
  else if (kind == QX_LK_Q3_K) qx_unpack512_q3_K(row, b, o);
  else if (kind == QX_LK_IQ4_XS) qx_unpack512_iq4_xs(row, b, o);
  else qx_unpack512_grid(qx_lk_grid_type(kind), row, b, o);
}

/*
 * Σ scales x (quants . activations) of a super-block, in lanes; and Σ sc16 x bsums, in lanes. Q2_K/
 * Q3_K's vectors hold both halves' elements 32j ..; IQ4_XS's hold 64 consecutive ones, negated
 * under the activations' sign mask (AVX-512 has no byte sign instruction).
 */
QX_INLINE void qx_low_k512_sums(const int kind, const qx_low_k512 *w, const int8_t *aq, const int16_t *bsums, __m512i *isum, __m512i *groups) {
  __m512i acc = _mm512_setzero_si512();
  for (int j = 0; j < 4; j++) {
    __m512i p;
    if (QX_LK_SIGNED(kind)) {
      const __m512i a = _mm512_loadu_si512((const void *)(aq + 64 * j));
      p = _mm512_maddubs_epi16(_mm512_abs_epi8(a), _mm512_mask_sub_epi8(w->q[j], _mm512_movepi8_mask(a), _mm512_setzero_si512(), w->q[j]));
    } else {
      const __m512i a = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(aq + 32 * j))),
                                           _mm256_loadu_si256((const __m256i *)(aq + 128 + 32 * j)), 1);
      p = _mm512_maddubs_epi16(w->q[j], a);
    }
    acc = _mm512_dpwssd_epi32(acc, p, w->sc[j]);
  }
  *isum = acc;
  *groups = QX_LK_SIGNED(kind) ? _mm512_setzero_si512()
                                 : _mm512_zextsi256_si512(_mm256_madd_epi16(w->sc16, _mm256_loadu_si256((const __m256i *)bsums)));
}

/*
 * The steps of m (<= 4) (super-block, token) items whose sums are in lanes, reduced together; item i
 * adds to acc[i * stride], in order (stride 0: one token's sum over consecutive super-blocks).
 */
QX_INLINE void qx_low_k512_steps(const int kind, int m, const __m512i *is, const __m512i *gs, const float *d, const float *dmin,
                                 const float *da, float *acc, const int stride) {
  int32_t isum[4], groups[4] = {0, 0, 0, 0};
  _mm_storeu_si128((__m128i *)isum, qx_sum4_epi32(is));
  if (kind != QX_LK_IQ4_XS) _mm_storeu_si128((__m128i *)groups, qx_sum4_epi32(gs));
  for (int i = 0; i < m; i++) acc[i * stride] = qx_low_k_step(kind, acc[i * stride], d[i], dmin[i], da[i], isum[i], groups[i]);
}

/* The 16 group scales (int16, in order) of a grid super-block's scale vectors: words 0, 8, 16, 24 of each. */
QX_INLINE __m256i qx_grid_scales16(const __m512i *sc) {
  const __m512i pick = _mm512_zextsi128_si512(_mm_setr_epi16(0, 8, 16, 24, 32, 40, 48, 56));
  const __m512i lo = _mm512_permutex2var_epi16(sc[0], pick, sc[1]), hi = _mm512_permutex2var_epi16(sc[2], pick, sc[3]);
  return _mm256_inserti128_si256(_mm512_castsi512_si256(lo), _mm512_castsi512_si128(hi), 1);
}

/*
 * Several tokens over a grid super-block: its integers as unsigned q + 64 (2..126: a maddubs pair
 * stays within int16 against activations up to 128 in size), so each vector is one maddubs against
 * the activations as they lie and one vpdpwssd with its scales, the offset taken back as 64 x
 * Σ_g scale_g x bsum_g: the same integers as the signed one-token sums.
 */
QX_INLINE void qx_grid_offset(qx_low_k512 *w) {
  for (int j = 0; j < 4; j++) w->q[j] = _mm512_add_epi8(w->q[j], _mm512_set1_epi8(64));
  w->sc16 = qx_grid_scales16(w->sc);
}

QX_INLINE __m512i qx_grid_offset_sums(const qx_low_k512 *w, const int8_t *aq, const int16_t *bsums) {
  __m512i acc = _mm512_setzero_si512();
  for (int j = 0; j < 4; j++) acc = _mm512_dpwssd_epi32(acc, _mm512_maddubs_epi16(w->q[j], _mm512_loadu_si512((const void *)(aq + 64 * j))), w->sc[j]);
  const __m256i offset = _mm256_slli_epi32(_mm256_madd_epi16(w->sc16, _mm256_loadu_si256((const __m256i *)bsums)), 6);
  return _mm512_sub_epi32(acc, _mm512_zextsi256_si512(offset));
}

/*
 * Four tokens' steps on one super-block, lane by lane: the scalar kernel's f32 operations for each
 * (Q2_K: acc + ((d da) isum - (dmin da) groups); the others acc + (d da) isum, Q3_K's offset taken
 * off the integer first).
 */
QX_INLINE void qx_low_k512_steps4(const int kind, const __m512i *is, const __m512i *gs, float d, float dmin, const float *da4, float *acc) {
  __m128i isum = qx_sum4_epi32(is);
  const __m128 da = _mm_loadu_ps(da4), a = _mm_loadu_ps(acc);
  if (kind == QX_LK_Q2_K) {
    const __m128 t = _mm_sub_ps(_mm_mul_ps(_mm_mul_ps(_mm_set1_ps(d), da), _mm_cvtepi32_ps(isum)),
                                _mm_mul_ps(_mm_mul_ps(_mm_set1_ps(dmin), da), _mm_cvtepi32_ps(qx_sum4_epi32(gs))));
    _mm_storeu_ps(acc, _mm_add_ps(a, t));
    return;
  }
  if (kind == QX_LK_Q3_K) isum = _mm_sub_epi32(isum, _mm_slli_epi32(qx_sum4_epi32(gs), 2));
  _mm_storeu_ps(acc, _mm_add_ps(a, _mm_mul_ps(_mm_mul_ps(_mm_set1_ps(d), da), _mm_cvtepi32_ps(isum))));
}

/* One token: four super-blocks' sums reduced together; more: each super-block for four tokens at a time. */
QX_INLINE void qx_low_k_gemm(const int kind, int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, int nt, float *y,
                             size_t ys) {
  const int nb = cols / QK_K;
  float acc[QX_LOW_K_T];
  for (int r = 0; r < nr; r++) {
    const uint8_t *row = w + (size_t)r * ws;
    if (nt == 1) {
      float sum = 0;
      for (int b0 = 0; b0 < nb; b0 += 4) {
        const int m = nb - b0 < 4 ? nb - b0 : 4;
        __m512i is[4], gs[4];
        float d[4], dmin[4], da4[4];
        for (int i = 0; i < 4; i++) is[i] = gs[i] = _mm512_setzero_si512();
        for (int i = 0; i < m; i++) {
          qx_low_k512 wb;
          qx_unpack512(kind, row, b0 + i, &wb);
          QX_Q8K(a, cols, b0 + i);
          qx_low_k512_sums(kind, &wb, aq, bsums, &is[i], &gs[i]);
          d[i] = wb.d, dmin[i] = wb.dmin, da4[i] = da;
        }
        qx_low_k512_steps(kind, m, is, gs, d, dmin, da4, &sum, 0);
      }
      y[r] = sum;
      continue;
    }
    for (int t0 = 0; t0 < nt; t0 += QX_LOW_K_T) {
      const int T = nt - t0 < QX_LOW_K_T ? nt - t0 : QX_LOW_K_T;
      for (int t = 0; t < T; t++) acc[t] = 0;
      for (int b = 0; b < nb; b++) {
        qx_low_k512 wb;
        qx_unpack512(kind, row, b, &wb);
        const int grid = kind > QX_LK_IQ4_XS;
        if (grid) qx_grid_offset(&wb);
        const float d[4] = {wb.d, wb.d, wb.d, wb.d}, dmin[4] = {wb.dmin, wb.dmin, wb.dmin, wb.dmin};
        for (int t1 = 0; t1 < T; t1 += 4) {
          const int m = T - t1 < 4 ? T - t1 : 4;
          __m512i is[4], gs[4];
          float da4[4];
          for (int i = 0; i < 4; i++) is[i] = gs[i] = _mm512_setzero_si512();
          for (int i = 0; i < m; i++) {
            QX_Q8K(a + (size_t)(t0 + t1 + i) * as, cols, b);
            if (grid) is[i] = qx_grid_offset_sums(&wb, aq, bsums);
            else qx_low_k512_sums(kind, &wb, aq, bsums, &is[i], &gs[i]);
            da4[i] = da;
          }
          if (m == 4) qx_low_k512_steps4(kind, is, gs, wb.d, wb.dmin, da4, acc + t1);
          else qx_low_k512_steps(kind, m, is, gs, d, dmin, da4, acc + t1, 1);
        }
      }
      for (int t = 0; t < T; t++) y[(size_t)(t0 + t) * ys + r] = acc[t];
    }
  }
}
#else
/* A super-block of one row, unpacked in 32-element vectors. */
typedef struct {
  __m256i q[8];  /* elements 32k .. 32k + 31: unsigned quants, or IQ4_XS's values */
  __m256i sc[8]; /* int16 per pair of products: Q2_K/Q3_K group 2k in the low lane's words, 2k + 1 in the high lane's */
  __m256i sc16;  /* int16: the 16 groups' scales (Q3_K, signed) or mins (Q2_K), in order; IQ4_XS: zero */
  float d, dmin;
} qx_low_k;

/* Bits 2j, 2j + 1 of each byte of 32 qs bytes: the low quants of elements 32j .. 32j + 31 of a half. */
QX_INLINE __m256i qx_low2(__m256i qs, int j) { return _mm256_and_si256(_mm256_srli_epi16(qs, 2 * j), _mm256_set1_epi8(3)); }

/* The per-pair scale vectors from 16 int16 scales: word 2k of each lane's copy of the 8 scales of a half, then 2k + 1. */
QX_INLINE void qx_low_k_scales(__m256i sc16, __m256i *sc) {
  const __m256i halves[2] = {_mm256_permute2x128_si256(sc16, sc16, 0x00), _mm256_permute2x128_si256(sc16, sc16, 0x11)};
  for (int k = 0; k < 8; k++) {
    const int lo = 2 * (k & 3), hi = lo + 1; /* words of the half's 8 scales */
    const __m256i pick = _mm256_setr_epi8(2 * lo, 2 * lo + 1, 2 * lo, 2 * lo + 1, 2 * lo, 2 * lo + 1, 2 * lo, 2 * lo + 1, 2 * lo, 2 * lo + 1,
                                          2 * lo, 2 * lo + 1, 2 * lo, 2 * lo + 1, 2 * lo, 2 * lo + 1, 2 * hi, 2 * hi + 1, 2 * hi, 2 * hi + 1,
                                          2 * hi, 2 * hi + 1, 2 * hi, 2 * hi + 1, 2 * hi, 2 * hi + 1, 2 * hi, 2 * hi + 1, 2 * hi, 2 * hi + 1,
                                          2 * hi, 2 * hi + 1);
    sc[k] = _mm256_shuffle_epi8(halves[k >> 2], pick);
  }
}

QX_INLINE void qx_unpack_q2_K(const uint8_t *row, int b, qx_low_k *o) {
  const block_q2_K *x = (const block_q2_K *)row + b;
  for (int n = 0; n < 2; n++) {
    const __m256i qs = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * n));
    for (int j = 0; j < 4; j++) o->q[4 * n + j] = qx_low2(qs, j);
  }
  const __m256i bytes = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)x->scales));
  qx_low_k_scales(_mm256_and_si256(bytes, _mm256_set1_epi16(0xf)), o->sc);
  o->sc16 = _mm256_srli_epi16(bytes, 4);
  o->d = qx_half(&x->d);
  o->dmin = qx_half(&x->dmin);
}

QX_INLINE void qx_unpack_q3_K(const uint8_t *row, int b, qx_low_k *o) {
  const block_q3_K *x = (const block_q3_K *)row + b;
  const __m256i hm = _mm256_loadu_si256((const __m256i *)x->hmask), four = _mm256_set1_epi8(4);
  for (int n = 0; n < 2; n++) {
    const __m256i qs = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * n));
    for (int j = 0; j < 4; j++) {
      /* Element 128n + 32j + l's third bit is bit 4n + j of hmask[l]: moved to bit 2. */
      const int s = 4 * n + j;
      const __m256i high = _mm256_and_si256(s >= 2 ? _mm256_srli_epi16(hm, s - 2) : _mm256_slli_epi16(hm, 2 - s), four);
      o->q[s] = _mm256_or_si256(qx_low2(qs, j), high);
    }
  }
  o->sc16 = qx_q3_K_scales16(x);
  qx_low_k_scales(o->sc16, o->sc);
  o->d = qx_half(&x->d);
  o->dmin = 0;
}

/* IQ4_XS: sub-block ib's 32 values by a byte shuffle, its scale - 32 in every word. */
QX_INLINE void qx_unpack_iq4_xs(const uint8_t *row, int b, qx_low_k *o) {
  const block_iq4_xs *x = (const block_iq4_xs *)row + b;
  const __m256i table = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)quant_iq4_values));
  for (int ib = 0; ib < 8; ib++) {
    o->q[ib] = _mm256_shuffle_epi8(table, qx_nibbles(x->qs + 16 * ib));
    o->sc[ib] = _mm256_set1_epi16((short)(quant_iq4_xs_scale(x, ib) - 32));
  }
  o->sc16 = _mm256_setzero_si256();
  o->d = qx_half(&x->d);
  o->dmin = 0;
}

/*
 * An IQ grid super-block: its integers unpacked (quant_iq_unpack), 32 a vector as unsigned q + 64
 * (2..126: a maddubs pair stays within int16), each 16's scale in its lane's words and in sc16,
 * through which the offset comes back off (as Q3_K's).
 */
QX_INLINE void qx_unpack_grid(int type, const uint8_t *row, int b, qx_low_k *o) {
  int8_t q[QK_K] __attribute__((aligned(32)));
  int16_t sc[16] __attribute__((aligned(32)));
  o->d = quant_iq_unpack(type, row + (size_t)b * quant_block_bytes(type), q, sc);
  for (int k = 0; k < 8; k++) {
    o->q[k] = _mm256_add_epi8(_mm256_load_si256((const __m256i *)(q + 32 * k)), _mm256_set1_epi8(64));
    o->sc[k] = _mm256_set_m128i(_mm_set1_epi16(sc[2 * k + 1]), _mm_set1_epi16(sc[2 * k]));
  }
  o->sc16 = _mm256_load_si256((const __m256i *)sc);
  o->dmin = 0;
}

QX_INLINE void qx_unpack(const int kind, const uint8_t *row, int b, qx_low_k *o) {
  if (kind == QX_LK_Q2_K) qx_unpack_q2_K(row, b, o);
  else if (kind == QX_LK_Q3_K) qx_unpack_q3_K(row, b, o);
  else if (kind == QX_LK_IQ4_XS) qx_unpack_iq4_xs(row, b, o);
  else qx_unpack_grid(qx_lk_grid_type(kind), row, b, o);
}

/* Σ_k scales x (quants . activations) over the super-block (IQ4_XS: its values take the activations' signs; the others unsigned). */
QX_INLINE int qx_low_k_isum(const int kind, const qx_low_k *w, const int8_t *aq) {
  __m256i acc = _mm256_setzero_si256();
  for (int k = 0; k < 8; k++) {
    const __m256i a = _mm256_loadu_si256((const __m256i *)(aq + 32 * k));
    const __m256i p = kind == QX_LK_IQ4_XS ? _mm256_maddubs_epi16(_mm256_abs_epi8(a), _mm256_sign_epi8(w->q[k], a))
                                           : _mm256_maddubs_epi16(w->q[k], a);
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, w->sc[k]));
  }
  return qx_hsum_i32(acc);
}

/* Σ_g sc16[g] x bsums[g]: Q2_K's mins term, Q3_K's and the grid formats' offset term (before its factor); IQ4_XS none. */
QX_INLINE int qx_low_k_groups(const int kind, const qx_low_k *w, const int16_t *bsums) {
  if (kind == QX_LK_IQ4_XS) return 0;
  return qx_hsum_i32(_mm256_madd_epi16(w->sc16, _mm256_loadu_si256((const __m256i *)bsums)));
}

QX_INLINE void qx_low_k_gemm(const int kind, int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, int nt, float *y,
                             size_t ys) {
  const int nb = cols / QK_K;
  float acc[QX_LOW_K_T];
  for (int r = 0; r < nr; r++) {
    const uint8_t *row = w + (size_t)r * ws;
    for (int t0 = 0; t0 < nt; t0 += QX_LOW_K_T) {
      const int T = nt - t0 < QX_LOW_K_T ? nt - t0 : QX_LOW_K_T;
      for (int t = 0; t < T; t++) acc[t] = 0;
      for (int b = 0; b < nb; b++) {
        qx_low_k wb;
        qx_unpack(kind, row, b, &wb);
        for (int t = 0; t < T; t++) {
          QX_Q8K(a + (size_t)(t0 + t) * as, cols, b);
          acc[t] = qx_low_k_step(kind, acc[t], wb.d, wb.dmin, da, qx_low_k_isum(kind, &wb, aq), qx_low_k_groups(kind, &wb, bsums));
        }
      }
      for (int t = 0; t < T; t++) y[(size_t)(t0 + t) * ys + r] = acc[t];
    }
  }
}
#endif

static void qx_q2_K(int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, int nt, float *y, size_t ys) {
  qx_low_k_gemm(QX_LK_Q2_K, cols, w, ws, nr, a, as, nt, y, ys);
}
static void qx_q3_K(int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, int nt, float *y, size_t ys) {
  qx_low_k_gemm(QX_LK_Q3_K, cols, w, ws, nr, a, as, nt, y, ys);
}
static void qx_iq4_xs(int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, int nt, float *y, size_t ys) {
  qx_low_k_gemm(QX_LK_IQ4_XS, cols, w, ws, nr, a, as, nt, y, ys);
}
#define QX_IQ_GEMM(NAME, KIND)                                                                                              \
  static void NAME(int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, int nt, float *y, size_t ys) { \
    qx_low_k_gemm(KIND, cols, w, ws, nr, a, as, nt, y, ys);                                                                 \
  }
QX_IQ_GEMM(qx_iq1_s, QX_LK_IQ1_S)
QX_IQ_GEMM(qx_iq1_m, QX_LK_IQ1_M)
QX_IQ_GEMM(qx_iq2_xxs, QX_LK_IQ2_XXS)
QX_IQ_GEMM(qx_iq2_xs, QX_LK_IQ2_XS)
QX_IQ_GEMM(qx_iq2_s, QX_LK_IQ2_S)
QX_IQ_GEMM(qx_iq3_xxs, QX_LK_IQ3_XXS)
QX_IQ_GEMM(qx_iq3_s, QX_LK_IQ3_S)
#undef QX_IQ_GEMM

#endif
