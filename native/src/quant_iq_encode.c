/*
 * cairn's quantizers for the IQ grid formats (quant_iq.h): per 16 or 32 elements the odd scale that
 * brings the largest |x| nearest the codebook's largest value, the scales as codes against one f16
 * d, then each group of 8 elements' nearest codebook entry (squared distance, ties to the first;
 * signs from the elements, the parity formats flipping the smallest one's sign when their count
 * is odd; IQ1's delta the better of +1 and -1). Not ggml's search, but any valid encoding reads the
 * same everywhere. The same f32 operations, in the same order, as
 * src/kernels/reference/quant/iq-quantize.ts, so both give identical bytes.
 */
#include <math.h>
#include <string.h>

#include "quant_codecs.h"
#include "quant_iq.h"

typedef struct {
  int per_scale; /* elements per scale: 16 or 32 */
  int smax;      /* largest scale code: 2 smax + 1 is the largest scale */
  float factor;  /* element = d x factor x scale x q */
  int qmax;      /* largest |q| */
  int signs;     /* 0: none (IQ1), 7: seven stored with even parity, 8: eight stored */
} iq_shape;

static iq_shape shape_of(int type) {
  switch (type) {
    case CAIRN_IQ2_XXS: return (iq_shape){32, 15, 0.125f, 43, 7};
    case CAIRN_IQ2_XS: return (iq_shape){16, 15, 0.125f, 43, 7};
    case CAIRN_IQ2_S: return (iq_shape){16, 15, 0.125f, 43, 8};
    case CAIRN_IQ3_XXS: return (iq_shape){32, 15, 0.25f, 62, 7};
    case CAIRN_IQ3_S: return (iq_shape){32, 15, 1.f, 15, 8};
    case CAIRN_IQ1_S: return (iq_shape){32, 7, 0.125f, 9, 0};
    default: return (iq_shape){16, 7, 0.125f, 9, 0}; /* IQ1_M */
  }
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* A codebook for the search: its rows, and which row (if any) each combination of values is. */
typedef struct {
  const uint8_t *grid;
  int entries, width, nvals;
  int8_t vals[8];
  int16_t *row_of; /* nvals^width combinations, -1 where none */
} iq_book;

/* Books of IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S and IQ1 (IQ1_S and IQ1_M share theirs). */
static iq_book g_books[6];
static int16_t g_row_of[6][6561]; /* 3^8 combinations for the 8-element books, 8^4 for IQ3 */

static void build_book(iq_book *b, int type, int16_t *row_of) {
  b->grid = quant_iq_grid(type, &b->entries, &b->width);
  const int8_t *v = quant_iq_values(type, &b->nvals);
  memcpy(b->vals, v, (size_t)b->nvals);
  b->row_of = row_of;
  int combos = 1;
  for (int j = 0; j < b->width; j++) combos *= b->nvals;
  for (int c = 0; c < combos; c++) row_of[c] = -1;
  for (int i = b->entries - 1; i >= 0; i--) {
    int c = 0;
    for (int j = b->width - 1; j >= 0; j--) {
      int k = 0;
      while (b->vals[k] != (int8_t)b->grid[i * b->width + j]) k++;
      c = c * b->nvals + k;
    }
    row_of[c] = (int16_t)i;
  }
}

/* After quant_iq.c's expansion of the codebooks (priority 101). */
__attribute__((constructor(102))) static void build_books(void) {
  static const int types[6] = {CAIRN_IQ2_XXS, CAIRN_IQ2_XS, CAIRN_IQ2_S, CAIRN_IQ3_XXS, CAIRN_IQ3_S, CAIRN_IQ1_S};
  for (int i = 0; i < 6; i++) build_book(&g_books[i], types[i], g_row_of[i]);
}

static const iq_book *book_for(int type) {
  switch (type) {
    case CAIRN_IQ2_XXS: return &g_books[0];
    case CAIRN_IQ2_XS: return &g_books[1];
    case CAIRN_IQ2_S: return &g_books[2];
    case CAIRN_IQ3_XXS: return &g_books[3];
    case CAIRN_IQ3_S: return &g_books[4];
    default: return &g_books[5];
  }
}

/* The squared distance of row i to t (f32, in element order); IQ1 rows compare as 8 g + delta. */
static inline float row_distance(const iq_book *b, const float *t, int i, int iq1, int delta, float stop) {
  const uint8_t *g = b->grid + i * b->width;
  float e = 0;
  for (int j = 0; j < b->width; j++) {
    const float v = iq1 ? (float)(8 * (int8_t)g[j] + delta) : (float)g[j];
    const float dj = t[j] - v;
    e = e + dj * dj;
    if (e > stop) return e;
  }
  return e;
}

/* A nearest-row search: each element's squared distance to each value, and the best row so far. */
typedef struct {
  const iq_book *b;
  float err[8][8];
  int best;
  float best_err;
} iq_search;

/* Depth first over the elements' values, in element order; a branch whose partial sum exceeds the best is cut. */
static void search_from(iq_search *s, int j, int code, int mul, float e) {
  const iq_book *b = s->b;
  if (j == b->width) {
    const int row = b->row_of[code];
    if (row >= 0 && (e < s->best_err || (e == s->best_err && row < s->best))) {
      s->best = row;
      s->best_err = e;
    }
    return;
  }
  for (int m = 0; m < b->nvals; m++) {
    const float ej = e + s->err[j][m];
    if (!(ej > s->best_err)) search_from(s, j + 1, code + m * mul, mul * b->nvals, ej);
  }
}

/*
 * The row nearest t by squared distance (summed in f32 in element order; ties to the lowest row),
 * and its distance: the answer of a scan over every row (what the TypeScript twin does), found by
 * a search over the values each element can take that starts from the row of each element's
 * nearest value (where the codebook has it) and cuts every branch already past the best (the sums
 * only grow). IQ1 rows compare as 8 g + delta.
 */
static int nearest(const float *t, const iq_book *b, int iq1, int delta, float *err) {
  iq_search s;
  s.b = b;
  int c = 0, mul = 1;
  for (int j = 0; j < b->width; j++) {
    int k = 0;
    for (int m = 0; m < b->nvals; m++) {
      const float v = iq1 ? (float)(8 * b->vals[m] + delta) : (float)b->vals[m];
      const float dj = t[j] - v;
      s.err[j][m] = dj * dj;
      if (s.err[j][m] < s.err[j][k]) k = m;
    }
    c += k * mul;
    mul *= b->nvals;
  }
  s.best = 0;
  s.best_err = INFINITY;
  if (b->row_of[c] >= 0) {
    s.best = b->row_of[c];
    s.best_err = row_distance(b, t, s.best, iq1, delta, INFINITY);
  }
  search_from(&s, 0, 0, 1, 0.f);
  *err = s.best_err;
  return s.best;
}

/* Magnitudes and sign bits of 8 targets; with parity, the smallest magnitude's sign flipped to make the count even. */
static int signs_of(float *t, int parity) {
  int neg = 0;
  for (int j = 0; j < 8; j++)
    if (t[j] < 0) {
      neg |= 1 << j;
      t[j] = -t[j];
    }
  if (parity && __builtin_popcount((unsigned)neg) % 2) {
    int k = 0;
    for (int j = 1; j < 8; j++)
      if (t[j] < t[k]) k = j;
    neg ^= 1 << k;
  }
  return neg;
}

static inline void put_u16(void *p, uint16_t v) { memcpy(p, &v, 2); }
static inline void put_u32(void *p, uint32_t v) { memcpy(p, &v, 4); }

void quant_iq_encode(int type, const float *x, void *block) {
  const iq_shape sh = shape_of(type);
  const iq_book *book = book_for(type);
  const int width = book->width;
  const int groups = QK_K / sh.per_scale;
  float want[16], most = 0;
  for (int g = 0; g < groups; g++) {
    float amax = 0;
    for (int j = 0; j < sh.per_scale; j++) amax = fmaxf(amax, fabsf(x[g * sh.per_scale + j]));
    want[g] = amax / (float)sh.qmax;
    most = fmaxf(most, want[g]);
  }
  memset(block, 0, quant_block_bytes(type));
  const quant_half d = quant_f32_to_half(most / (float)(2 * sh.smax + 1) / sh.factor);
  const float deff = quant_half_to_f32(d) * sh.factor;
  if (!(deff > 0)) return; /* all zero (IQ1_M: d's bits zero too) */
  int scale[16], idx[32], neg[32], del[32];
  for (int g = 0; g < groups; g++) scale[g] = clampi(quant_nearest_int((want[g] / deff - 1) * 0.5f), 0, sh.smax);
  for (int k = 0; k < 32; k++) { /* group of 8 elements */
    const int sk = scale[8 * k / sh.per_scale];
    const float inv = 1 / (deff * (float)(2 * sk + 1));
    float t[8];
    for (int j = 0; j < 8; j++) t[j] = x[8 * k + j] * inv;
    del[k] = 1;
    neg[k] = 0;
    idx[k] = 0;
    if (type == CAIRN_IQ1_S) continue; /* one delta per 32: chosen below */
    if (sh.signs == 0) {
      float e_plus, e_minus;
      const int i_plus = nearest(t, book, 1, 1, &e_plus), i_minus = nearest(t, book, 1, -1, &e_minus);
      idx[k] = e_minus < e_plus ? i_minus : i_plus;
      del[k] = e_minus < e_plus ? -1 : 1;
      continue;
    }
    neg[k] = signs_of(t, sh.signs == 7);
    float e;
    if (width == 8) {
      idx[k] = nearest(t, book, 0, 0, &e);
    } else { /* two 4-element entries: low bits the first, high the second */
      idx[k] = nearest(t, book, 0, 0, &e) | nearest(t + 4, book, 0, 0, &e) << 16;
    }
  }
  if (type == CAIRN_IQ1_S) { /* one delta per 32: the better total over its four groups */
    for (int ib = 0; ib < 8; ib++) {
      float e_plus = 0, e_minus = 0;
      int i_plus[4], i_minus[4];
      for (int l = 0; l < 4; l++) {
        const int k = 4 * ib + l;
        const float inv = 1 / (deff * (float)(2 * scale[ib] + 1));
        float t[8], e;
        for (int j = 0; j < 8; j++) t[j] = x[8 * k + j] * inv;
        i_plus[l] = nearest(t, book, 1, 1, &e);
        e_plus = e_plus + e;
        i_minus[l] = nearest(t, book, 1, -1, &e);
        e_minus = e_minus + e;
      }
      for (int l = 0; l < 4; l++) {
        idx[4 * ib + l] = e_minus < e_plus ? i_minus[l] : i_plus[l];
        del[4 * ib + l] = e_minus < e_plus ? -1 : 1;
      }
    }
  }
  switch (type) {
    case CAIRN_IQ2_XXS: {
      block_iq2_xxs *b = block;
      b->d = d;
      for (int ib = 0; ib < 8; ib++) {
        uint32_t a0 = 0, a1 = (uint32_t)scale[ib] << 28;
        for (int l = 0; l < 4; l++) {
          a0 |= (uint32_t)idx[4 * ib + l] << (8 * l);
          a1 |= (uint32_t)(neg[4 * ib + l] & 127) << (7 * l);
        }
        put_u32(&b->qs[4 * ib], a0);
        put_u32(&b->qs[4 * ib + 2], a1);
      }
      break;
    }
    case CAIRN_IQ2_XS: {
      block_iq2_xs *b = block;
      b->d = d;
      for (int k = 0; k < 32; k++) put_u16(&b->qs[k], (uint16_t)(idx[k] | (neg[k] & 127) << 9));
      for (int ib = 0; ib < 8; ib++) b->scales[ib] = (uint8_t)(scale[2 * ib] | scale[2 * ib + 1] << 4);
      break;
    }
    case CAIRN_IQ2_S: {
      block_iq2_s *b = block;
      b->d = d;
      for (int k = 0; k < 32; k++) {
        b->qs[k] = (uint8_t)(idx[k] & 255);
        b->qs[QK_K / 8 + k] = (uint8_t)neg[k];
        b->qh[k / 4] |= (uint8_t)((idx[k] >> 8) << (2 * (k % 4)));
      }
      for (int ib = 0; ib < 8; ib++) b->scales[ib] = (uint8_t)(scale[2 * ib] | scale[2 * ib + 1] << 4);
      break;
    }
    case CAIRN_IQ3_XXS: {
      block_iq3_xxs *b = block;
      b->d = d;
      for (int ib = 0; ib < 8; ib++) {
        uint32_t aux = (uint32_t)scale[ib] << 28;
        for (int l = 0; l < 4; l++) {
          const int k = 4 * ib + l;
          b->qs[2 * k] = (uint8_t)(idx[k] & 0xffff);
          b->qs[2 * k + 1] = (uint8_t)(idx[k] >> 16);
          aux |= (uint32_t)(neg[k] & 127) << (7 * l);
        }
        put_u32(b->qs + QK_K / 4 + 4 * ib, aux);
      }
      break;
    }
    case CAIRN_IQ3_S: {
      block_iq3_s *b = block;
      b->d = d;
      for (int k = 0; k < 32; k++) {
        const int i1 = idx[k] & 0xffff, i2 = idx[k] >> 16, l = k % 4;
        b->qs[2 * k] = (uint8_t)(i1 & 255);
        b->qs[2 * k + 1] = (uint8_t)(i2 & 255);
        b->qh[k / 4] |= (uint8_t)((i1 >> 8) << (2 * l) | (i2 >> 8) << (2 * l + 1));
        b->signs[k] = (uint8_t)neg[k];
      }
      for (int ib = 0; ib < 8; ib++) b->scales[ib / 2] |= (uint8_t)(scale[ib] << (4 * (ib % 2)));
      break;
    }
    case CAIRN_IQ1_S: {
      block_iq1_s *b = block;
      b->d = d;
      for (int ib = 0; ib < 8; ib++) {
        uint16_t qh = (uint16_t)(scale[ib] << 12 | (del[4 * ib] < 0 ? 0x8000 : 0));
        for (int l = 0; l < 4; l++) {
          b->qs[4 * ib + l] = (uint8_t)(idx[4 * ib + l] & 255);
          qh |= (uint16_t)((idx[4 * ib + l] >> 8) << (3 * l));
        }
        put_u16(&b->qh[ib], qh);
      }
      break;
    }
    default: { /* IQ1_M */
      block_iq1_m *b = block;
      uint16_t s[4] = {0, 0, 0, 0};
      for (int ib = 0; ib < 8; ib++) s[ib / 2] |= (uint16_t)((scale[2 * ib] | scale[2 * ib + 1] << 3) << (6 * (ib % 2)));
      for (int n = 0; n < 4; n++) s[n] |= (uint16_t)(((d >> (4 * n)) & 0xf) << 12);
      memcpy(b->scales, s, 8);
      for (int k = 0; k < 32; k++) {
        b->qs[k] = (uint8_t)(idx[k] & 255);
        b->qh[k / 2] |= (uint8_t)((((idx[k] >> 8) & 7) | (del[k] < 0 ? 8 : 0)) << (4 * (k % 2)));
      }
      break;
    }
  }
}
