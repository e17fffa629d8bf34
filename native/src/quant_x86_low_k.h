/*
 * The 2- and 3-bit K-quants (Q2_K, Q3_K) on AVX2, included by quant_x86_kernels.h for the AVX2 and
 * AVX-512 tables. A super-block's quants are unpacked once per row into eight vectors of 32
 * unsigned bytes (Q2_K: 0..3; Q3_K: 0..7, the stored q + 4) with a vector of their 16-element
 * groups' scales beside each, and serve every token of the call: per 32 quants one maddubs against
 * the activations, one madd with the scales. The integers are exactly the scalar kernel's
 * (Q3_K's offset 4 comes off as 4 x Σ scale x group sum, Q2_K's mins as Σ min x group sum), and the
 * f32 steps after them are its steps in its order, so the results are the scalar kernel's and a
 * token's result does not depend on its batch.
 */
#ifndef CAIRN_QUANT_X86_LOW_K_H
#define CAIRN_QUANT_X86_LOW_K_H

/* A Q2_K/Q3_K super-block of one row, unpacked. */
typedef struct {
  __m256i q[8];  /* elements 32k .. 32k + 31, unsigned */
  __m256i sc[8]; /* int16: the scale of group 2k in the low lane's 8 words, of 2k + 1 in the high lane's */
  __m256i sc16;  /* int16: the 16 groups' scales (Q3_K, signed) or mins (Q2_K), in order */
  float d, dmin;
} qx_low_k;

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

/* Σ_k scales x (quants . activations) over the super-block: the integer before the offset or mins. */
QX_INLINE int qx_low_k_isum(const qx_low_k *w, const int8_t *aq) {
  __m256i acc = _mm256_setzero_si256();
  for (int k = 0; k < 8; k++) {
    const __m256i p = _mm256_maddubs_epi16(w->q[k], _mm256_loadu_si256((const __m256i *)(aq + 32 * k)));
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, w->sc[k]));
  }
  return qx_hsum_i32(acc);
}

/* Σ_g sc16[g] x bsums[g]: Q2_K's mins term, Q3_K's offset term (before its factor 4). */
QX_INLINE int qx_low_k_groups(const qx_low_k *w, const int16_t *bsums) {
  return qx_hsum_i32(_mm256_madd_epi16(w->sc16, _mm256_loadu_si256((const __m256i *)bsums)));
}

/* Tokens whose sums one pass over a row's super-blocks keeps. */
#define QX_LOW_K_T 64

/* One super-block's step of a token's sum: the scalar kernel's f32 operations, in its order. */
QX_INLINE float qx_low_k_step(const int q2, float acc, float d, float dmin, float da, int isum, int groups) {
  if (q2) return acc + ((d * da) * isum - (dmin * da) * groups);
  return acc + (d * da) * (isum - 4 * groups);
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
} qx_low_k512;

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

/* Σ scales x (quants . activations) of a super-block, in lanes; and Σ sc16 x bsums, in lanes. */
QX_INLINE void qx_low_k512_sums(const qx_low_k512 *w, const int8_t *aq, const int16_t *bsums, __m512i *isum, __m512i *groups) {
  __m512i acc = _mm512_setzero_si512();
  for (int j = 0; j < 4; j++) {
    const __m512i a = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(aq + 32 * j))),
                                         _mm256_loadu_si256((const __m256i *)(aq + 128 + 32 * j)), 1);
    acc = _mm512_dpwssd_epi32(acc, _mm512_maddubs_epi16(w->q[j], a), w->sc[j]);
  }
  *isum = acc;
  *groups = _mm512_zextsi256_si512(_mm256_madd_epi16(w->sc16, _mm256_loadu_si256((const __m256i *)bsums)));
}

#define QX_LOW_K_GEMM(NAME, UNPACK, Q2)                                                                             \
  static void NAME(int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, int nt, float *y, size_t ys) { \
    const int nb = cols / QK_K;                                                                                    \
    float acc[QX_LOW_K_T];                                                                                         \
    for (int r = 0; r < nr; r++) {                                                                                 \
      const uint8_t *row = w + (size_t)r * ws;                                                                     \
      if (nt == 1) {                                                                                               \
        /* One token: four super-blocks' sums reduced together. */                                                \
        float sum = 0;                                                                                             \
        for (int b0 = 0; b0 < nb; b0 += 4) {                                                                       \
          const int m = nb - b0 < 4 ? nb - b0 : 4;                                                                 \
          __m512i is[4], gs[4];                                                                                    \
          float d[4], dmin[4], da4[4];                                                                             \
          for (int i = 0; i < 4; i++) is[i] = gs[i] = _mm512_setzero_si512();                                     \
          for (int i = 0; i < m; i++) {                                                                            \
            qx_low_k512 wb;                                                                                        \
            UNPACK(row, b0 + i, &wb);                                                                              \
            QX_Q8K(a, cols, b0 + i);                                                                               \
            qx_low_k512_sums(&wb, aq, bsums, &is[i], &gs[i]);                                                      \
            d[i] = wb.d, dmin[i] = wb.dmin, da4[i] = da;                                                           \
          }                                                                                                        \
          int32_t isum[4], groups[4];                                                                              \
          _mm_storeu_si128((__m128i *)isum, qx_sum4_epi32(is));                                                    \
          _mm_storeu_si128((__m128i *)groups, qx_sum4_epi32(gs));                                                  \
          for (int i = 0; i < m; i++) sum = qx_low_k_step(Q2, sum, d[i], dmin[i], da4[i], isum[i], groups[i]);     \
        }                                                                                                          \
        y[r] = sum;                                                                                                \
        continue;                                                                                                  \
      }                                                                                                            \
      for (int t0 = 0; t0 < nt; t0 += QX_LOW_K_T) {                                                                \
        const int T = nt - t0 < QX_LOW_K_T ? nt - t0 : QX_LOW_K_T;                                                 \
        for (int t = 0; t < T; t++) acc[t] = 0;                                                                    \
        for (int b = 0; b < nb; b++) {                                                                             \
          qx_low_k512 wb;                                                                                          \
          UNPACK(row, b, &wb);                                                                                     \
          /* Four tokens' sums reduced together. */                                                               \
          for (int t1 = 0; t1 < T; t1 += 4) {                                                                      \
            const int m = T - t1 < 4 ? T - t1 : 4;                                                                 \
            __m512i is[4], gs[4];                                                                                  \
            float da4[4];                                                                                          \
            for (int i = 0; i < 4; i++) is[i] = gs[i] = _mm512_setzero_si512();                                    \
            for (int i = 0; i < m; i++) {                                                                          \
              QX_Q8K(a + (size_t)(t0 + t1 + i) * as, cols, b);                                                     \
              qx_low_k512_sums(&wb, aq, bsums, &is[i], &gs[i]);                                                    \
              da4[i] = da;                                                                                         \
            }                                                                                                      \
            int32_t isum[4], groups[4];                                                                            \
            _mm_storeu_si128((__m128i *)isum, qx_sum4_epi32(is));                                                  \
            _mm_storeu_si128((__m128i *)groups, qx_sum4_epi32(gs));                                                \
            for (int i = 0; i < m; i++) acc[t1 + i] = qx_low_k_step(Q2, acc[t1 + i], wb.d, wb.dmin, da4[i], isum[i], groups[i]); \
          }                                                                                                        \
        }                                                                                                          \
        for (int t = 0; t < T; t++) y[(size_t)(t0 + t) * ys + r] = acc[t];                                         \
      }                                                                                                            \
    }                                                                                                              \
  }
QX_LOW_K_GEMM(qx_q2_K, qx_unpack512_q2_K, 1)
QX_LOW_K_GEMM(qx_q3_K, qx_unpack512_q3_K, 0)
#undef QX_LOW_K_GEMM
#else
#define QX_LOW_K_GEMM(NAME, UNPACK, Q2)                                                                             \
  static void NAME(int cols, const uint8_t *w, size_t ws, int nr, const uint8_t *a, size_t as, int nt, float *y, size_t ys) { \
    const int nb = cols / QK_K;                                                                                    \
    float acc[QX_LOW_K_T];                                                                                         \
    for (int r = 0; r < nr; r++) {                                                                                 \
      const uint8_t *row = w + (size_t)r * ws;                                                                     \
      for (int t0 = 0; t0 < nt; t0 += QX_LOW_K_T) {                                                                \
        const int T = nt - t0 < QX_LOW_K_T ? nt - t0 : QX_LOW_K_T;                                                 \
        for (int t = 0; t < T; t++) acc[t] = 0;                                                                    \
        for (int b = 0; b < nb; b++) {                                                                             \
          qx_low_k wb;                                                                                             \
          UNPACK(row, b, &wb);                                                                                     \
          for (int t = 0; t < T; t++) {                                                                            \
            QX_Q8K(a + (size_t)(t0 + t) * as, cols, b);                                                            \
            acc[t] = qx_low_k_step(Q2, acc[t], wb.d, wb.dmin, da, qx_low_k_isum(&wb, aq), qx_low_k_groups(&wb, bsums)); \
          }                                                                                                        \
        }                                                                                                          \
        for (int t = 0; t < T; t++) y[(size_t)(t0 + t) * ys + r] = acc[t];                                         \
      }                                                                                                            \
    }                                                                                                              \
  }
QX_LOW_K_GEMM(qx_q2_K, qx_unpack_q2_K, 1)
QX_LOW_K_GEMM(qx_q3_K, qx_unpack_q3_K, 0)
#undef QX_LOW_K_GEMM
#endif

#endif
