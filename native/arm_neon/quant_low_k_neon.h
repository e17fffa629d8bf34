/*
 * The 2- and 3-bit K-quants (Q2_K, Q3_K), IQ4_XS and the IQ grid formats (quant_iq.h) on arm64, included by quant_neon.c. A super-block's
 * quants are unpacked once per row into sixteen vectors of 16 signed quants (Q2_K: 0..3; Q3_K:
 * q - 4, -4..3; IQ4_XS: its codes' values), one per 16-element group, and serve every token of the call: per group one signed
 * dot against the activations and one multiply-add by the group's scale. The integers are exactly
 * the scalar kernel's and the f32 steps after them are its steps in its order, so the results are
 * the scalar kernel's and a token's result does not depend on its batch.
 */
#ifndef CAIRN_QUANT_LOW_K_NEON_H
#define CAIRN_QUANT_LOW_K_NEON_H

typedef struct {
  int8x16_t q[16];
  int32_t sc[16]; /* Q2_K: the 4-bit scales; Q3_K: the signed scales */
  int16_t mins[16]; /* Q2_K: the 4-bit mins */
  float d, dmin;
} qn_low_k;

/* Bits 2j, 2j + 1 of 16 qs bytes. */
QN_INLINE uint8x16_t qn_low2(uint8x16_t qs, int j) { return vandq_u8(vshlq_u8(qs, vdupq_n_s8((int8_t)(-2 * j))), vdupq_n_u8(3)); }

/* Group g's 16 quants are bits 2 (g % 8 / 2) of qs[32 (g / 8) + 16 (g % 2) ..]; Q3_K's third bits are bit g / 2 of hmask[16 (g % 2) ..]. */
QN_INLINE void qn_unpack_q2_K(const uint8_t *row, int b, qn_low_k *o) {
  const block_q2_K *x = (const block_q2_K *)row + b;
  for (int g = 0; g < 16; g++) {
    const uint8x16_t qs = vld1q_u8(x->qs + 32 * (g >> 3) + 16 * (g & 1));
    o->q[g] = vreinterpretq_s8_u8(qn_low2(qs, (g & 7) >> 1));
    o->sc[g] = x->scales[g] & 0xf;
    o->mins[g] = (int16_t)(x->scales[g] >> 4);
  }
  o->d = qn_half(&x->d);
  o->dmin = qn_half(&x->dmin);
}

QN_INLINE void qn_unpack_q3_K(const uint8_t *row, int b, qn_low_k *o) {
  const block_q3_K *x = (const block_q3_K *)row + b;
  for (int g = 0; g < 16; g++) {
    const uint8x16_t qs = vld1q_u8(x->qs + 32 * (g >> 3) + 16 * (g & 1));
    const uint8x16_t hm = vld1q_u8(x->hmask + 16 * (g & 1));
    /* Bit g / 2 moved to bit 2 (a negative count shifts right). */
    const uint8x16_t high = vandq_u8(vshlq_u8(hm, vdupq_n_s8((int8_t)(2 - (g >> 1)))), vdupq_n_u8(4));
    o->q[g] = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(qn_low2(qs, (g & 7) >> 1), high)), vdupq_n_s8(4));
    o->sc[g] = quant_q3_K_scale(x->scales, g);
    o->mins[g] = 0;
  }
  o->d = qn_half(&x->d);
  o->dmin = 0;
}

/* Σ_g scale_g x (quants . activations of group g), and Σ_g min_g x bsum_g. */
QN_INLINE void qn_low_k_sums(const qn_low_k *w, const int8_t *aq, const int16_t *bsums, int *isum, int *groups) {
  int32x4_t acc = vdupq_n_s32(0);
  for (int g = 0; g < 16; g++) acc = vmlaq_n_s32(acc, vdotq_s32(vdupq_n_s32(0), w->q[g], vld1q_s8(aq + 16 * g)), w->sc[g]);
  *isum = vaddvq_s32(acc);
  const int16x8_t m0 = vld1q_s16(w->mins), m1 = vld1q_s16(w->mins + 8);
  const int32x4_t p = vmlal_s16(vmlal_s16(vmull_s16(vget_low_s16(m0), vld1_s16(bsums)), vget_high_s16(m0), vld1_s16(bsums + 4)),
                                vget_low_s16(m1), vld1_s16(bsums + 8));
  *groups = vaddvq_s32(vmlal_s16(p, vget_high_s16(m1), vld1_s16(bsums + 12)));
}

#define QN_LOW_K_T 64
#define QN_LOW_K_GEMM(NAME, UNPACK, Q2)                                                                              \
  static void NAME(int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, int nt, float *y, size_t ys) { \
    const int nb = cols / QK_K;                                                                                    \
    float acc[QN_LOW_K_T];                                                                                         \
    for (int r = 0; r < nr; r++) {                                                                                 \
      const uint8_t *row = w + (size_t)r * ws;                                                                     \
      for (int t0 = 0; t0 < nt; t0 += QN_LOW_K_T) {                                                                \
        const int T = nt - t0 < QN_LOW_K_T ? nt - t0 : QN_LOW_K_T;                                                 \
        for (int t = 0; t < T; t++) acc[t] = 0;                                                                    \
        for (int b = 0; b < nb; b++) {                                                                             \
          qn_low_k wb;                                                                                             \
          UNPACK(row, b, &wb);                                                                                     \
          for (int t = 0; t < T; t++) {                                                                            \
            QN_Q8K(a + (size_t)(t0 + t) * as, cols, b);                                                            \
            int isum, groups;                                                                                      \
            qn_low_k_sums(&wb, aq, bsums, &isum, &groups);                                                         \
            if (Q2) acc[t] = acc[t] + ((wb.d * da) * isum - (wb.dmin * da) * groups);                              \
            else acc[t] = acc[t] + (wb.d * da) * isum;                                                             \
          }                                                                                                        \
        }                                                                                                          \
        for (int t = 0; t < T; t++) y[(size_t)(t0 + t) * ys + r] = acc[t];                                         \
      }                                                                                                            \
    }                                                                                                              \
  }
/* IQ4_XS: group g (16 elements) of sub-block g / 2 takes code values through a table lookup; its scale - 32 per group. */
QN_INLINE void qn_unpack_iq4_xs(const uint8_t *row, int b, qn_low_k *o) {
  const block_iq4_xs *x = (const block_iq4_xs *)row + b;
  const int8x16_t table = vld1q_s8(quant_iq4_values);
  for (int ib = 0; ib < 8; ib++) {
    const uint8x16_t q = vld1q_u8(x->qs + 16 * ib);
    o->q[2 * ib] = vqtbl1q_s8(table, vandq_u8(q, vdupq_n_u8(0x0f)));
    o->q[2 * ib + 1] = vqtbl1q_s8(table, vshrq_n_u8(q, 4));
    o->sc[2 * ib] = o->sc[2 * ib + 1] = quant_iq4_xs_scale(x, ib) - 32;
  }
  for (int g = 0; g < 16; g++) o->mins[g] = 0;
  o->d = qn_half(&x->d);
  o->dmin = 0;
}

/* An IQ grid format (quant_iq.h): its integers unpacked by the shared scalar code, a group of 16 a vector. */
QN_INLINE void qn_unpack_grid(int type, const uint8_t *row, int b, qn_low_k *o) {
  int8_t q[QK_K];
  int16_t sc[16];
  o->d = quant_iq_unpack(type, row + (size_t)b * quant_block_bytes(type), q, sc);
  for (int g = 0; g < 16; g++) {
    o->q[g] = vld1q_s8(q + 16 * g);
    o->sc[g] = sc[g];
    o->mins[g] = 0;
  }
  o->dmin = 0;
}
#define QN_GRID_UNPACK(NAME, TYPE) \
  QN_INLINE void NAME(const uint8_t *row, int b, qn_low_k *o) { qn_unpack_grid(TYPE, row, b, o); }
QN_GRID_UNPACK(qn_unpack_iq1_s, CAIRN_IQ1_S)
QN_GRID_UNPACK(qn_unpack_iq1_m, CAIRN_IQ1_M)
QN_GRID_UNPACK(qn_unpack_iq2_xxs, CAIRN_IQ2_XXS)
QN_GRID_UNPACK(qn_unpack_iq2_xs, CAIRN_IQ2_XS)
QN_GRID_UNPACK(qn_unpack_iq2_s, CAIRN_IQ2_S)
QN_GRID_UNPACK(qn_unpack_iq3_xxs, CAIRN_IQ3_XXS)
QN_GRID_UNPACK(qn_unpack_iq3_s, CAIRN_IQ3_S)
#undef QN_GRID_UNPACK

QN_LOW_K_GEMM(qn_q2_K, qn_unpack_q2_K, 1)
QN_LOW_K_GEMM(qn_q3_K, qn_unpack_q3_K, 0)
QN_LOW_K_GEMM(qn_iq4_xs, qn_unpack_iq4_xs, 0)
QN_LOW_K_GEMM(qn_iq1_s, qn_unpack_iq1_s, 0)
QN_LOW_K_GEMM(qn_iq1_m, qn_unpack_iq1_m, 0)
QN_LOW_K_GEMM(qn_iq2_xxs, qn_unpack_iq2_xxs, 0)
QN_LOW_K_GEMM(qn_iq2_xs, qn_unpack_iq2_xs, 0)
QN_LOW_K_GEMM(qn_iq2_s, qn_unpack_iq2_s, 0)
QN_LOW_K_GEMM(qn_iq3_xxs, qn_unpack_iq3_xxs, 0)
QN_LOW_K_GEMM(qn_iq3_s, qn_unpack_iq3_s, 0)
#undef QN_LOW_K_GEMM

#endif
