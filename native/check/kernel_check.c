/*
 * Kernel check without Node.js: runs every kernel on the portable (scalar) path and on the best
 * path this CPU has, on random inputs of awkward sizes, and compares. It exists for machines and
 * emulators where the Node.js addon cannot run, chiefly arm64 under qemu-aarch64 (see
 * run-arm64.sh): the portable path is itself checked against the TypeScript twins by the test
 * suite on x86, so agreement here carries that check over to the NEON kernels.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "experts.h"
#include "matmul.h"
#include "ops.h"
#include "quant_formats.h"

static unsigned long long rng = 88172645463325252ull;
static double rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (double)(rng >> 11) * (1.0 / 9007199254740992.0);
}
static float *randoms(size_t n, double scale) {
  float *p = malloc(4 * n);
  for (size_t i = 0; i < n; i++) p[i] = (float)((rnd() - 0.5) * scale);
  return p;
}

static int fails = 0;
static cairn_isa best;

/* |a - b| <= tol * |b| + floor for every element. */
static void compare_within(const char *what, const float *a, const float *b, size_t n, double tol, double floor) {
  for (size_t i = 0; i < n; i++) {
    if (!(fabs((double)a[i] - b[i]) <= tol * fabs((double)b[i]) + floor)) {
      if (fails++ < 20) printf("MISMATCH %s at %zu: scalar %.9g vs %s %.9g\n", what, i, a[i], cairn_isa_name(best), b[i]);
      return;
    }
  }
}

/* |a - b| <= tol * (|b| + 1) for every element. */
static void compare(const char *what, const float *a, const float *b, size_t n, double tol) { compare_within(what, a, b, n, tol, tol); }

/*
 * Softmax of rows of x and SwiGLU of (x, u) on the scalar path and the best one. A `wide` x
 * reaches subnormal weights, so its softmax is compared by relative error alone.
 */
static void check_exponentials(const char *softmax_what, const char *swiglu_what, const float *x, const float *u, int64_t rows,
                               int64_t dim, float *a, float *b, int wide) {
  memcpy(a, x, 4 * rows * dim), memcpy(b, x, 4 * rows * dim);
  cairn_isa_force(CAIRN_ISA_SCALAR);
  cairn_softmax(a, rows, dim);
  cairn_isa_force(best);
  cairn_softmax(b, rows, dim);
  compare_within(softmax_what, a, b, rows * dim, 1e-5, wide ? 1e-44 : 1e-5);
  cairn_isa_force(CAIRN_ISA_SCALAR);
  cairn_swiglu(x, u, rows * dim, a);
  cairn_isa_force(best);
  cairn_swiglu(x, u, rows * dim, b);
  compare(swiglu_what, a, b, rows * dim, 1e-5);
}

static void check_matmul(void) {
  const int types[] = {CAIRN_F32, CAIRN_F16, CAIRN_BF16, CAIRN_Q4_0, CAIRN_Q4_1, CAIRN_Q5_0, CAIRN_Q5_1, CAIRN_Q8_0, CAIRN_Q2_K, CAIRN_Q3_K, CAIRN_Q4_K, CAIRN_Q5_K, CAIRN_Q6_K, CAIRN_MXFP4, CAIRN_IQ4_XS, CAIRN_IQ4_NL, CAIRN_IQ1_S, CAIRN_IQ1_M, CAIRN_IQ2_XXS, CAIRN_IQ2_XS, CAIRN_IQ2_S, CAIRN_IQ3_XXS, CAIRN_IQ3_S};
  const int shapes[][3] = {{1, 1, 1}, {31, 1, 17}, {33, 3, 2}, {9, 2, 5}, {67, 4, 1}, {40, 2, 9}, {20, 2, 7}};
  for (unsigned ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
    const int type = types[ti], bs = quant_block_size(type);
    for (unsigned si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
      const int rows = shapes[si][0], n = shapes[si][2];
      const int cols = bs == 1 ? 96 * shapes[si][1] + 5 : (bs == 256 ? 256 : 32) * shapes[si][1];
      float *wf = randoms((size_t)rows * cols, 2), *x = randoms((size_t)n * cols, 8);
      uint8_t *w = malloc(quant_row_bytes(type, cols) * rows);
      float *y0 = malloc(4ull * n * rows), *y1 = malloc(4ull * n * rows);
      cairn_quantize(type, wf, w, (int64_t)rows * cols);
      cairn_isa_force(CAIRN_ISA_SCALAR);
      cairn_matmul(type, w, rows, cols, x, n, y0);
      cairn_isa_force(best);
      cairn_matmul(type, w, rows, cols, x, n, y1);
      char what[64];
      snprintf(what, sizeof what, "matmul type %d %dx%d n %d", type, rows, cols, n);
      /* Same quantized integers; only float summation order differs. */
      compare(what, y0, y1, (size_t)n * rows, 2e-4);
      free(wf), free(x), free(w), free(y0), free(y1);
    }
  }
}

/* On the best path, the float formats give each token the same result bit for bit whether it comes
   alone or in a batch (of every tile width and tail their kernels walk). */
static void check_float_batches(void) {
  const int types[] = {CAIRN_F32, CAIRN_F16, CAIRN_BF16};
  const int rows = 37, cols = 197, n = 23;
  cairn_isa_force(best);
  for (unsigned ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
    float *wf = randoms((size_t)rows * cols, 3), *x = randoms((size_t)n * cols, 9);
    uint8_t *w = malloc(quant_row_bytes(types[ti], cols) * rows);
    float *all = malloc(4ull * n * rows), *part = malloc(4ull * n * rows);
    cairn_quantize(types[ti], wf, w, (int64_t)rows * cols);
    cairn_matmul(types[ti], w, rows, cols, x, n, all);
    for (int b = 1; b <= n; b++) {
      for (int t0 = 0; t0 < n; t0 += b) {
        const int m = n - t0 < b ? n - t0 : b;
        cairn_matmul(types[ti], w, rows, cols, x + (size_t)t0 * cols, m, part + (size_t)t0 * rows);
      }
      if (memcmp(all, part, 4ull * n * rows) != 0 && fails++ < 20) printf("MISMATCH type %d: batches of %d differ from one batch of %d\n", types[ti], b, n);
    }
    free(wf), free(x), free(w), free(all), free(part);
  }
}

/* Expert products: scalar vs the best path, and on the best path each pair vs its expert's dense product. */
static void check_experts(void) {
  const int types[] = {CAIRN_F16, CAIRN_Q4_0, CAIRN_Q8_0, CAIRN_MXFP4, CAIRN_Q2_K, CAIRN_Q3_K, CAIRN_Q4_K, CAIRN_Q6_K, CAIRN_IQ4_XS, CAIRN_IQ4_NL, CAIRN_IQ2_XXS, CAIRN_IQ1_M, CAIRN_IQ3_S};
  const int n_experts = 6, n_used = 3;
  /* One token over many rows (the decode split over threads), then batches (with panels where the ISA has them). */
  const int cases[][2] = {{1, 600}, {9, 37}, {17, 37}};
  for (unsigned ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
    const int type = types[ti], cols = quant_block_size(type) == 256 ? 512 : 96;
    for (int ci = 0; ci < 3; ci++) {
      const int n_tokens = cases[ci][0], rows = cases[ci][1];
      const int pairs = n_tokens * n_used;
      const size_t row_bytes = quant_row_bytes(type, cols);
      float *wf = randoms((size_t)n_experts * rows * cols, 2), *x = randoms((size_t)n_tokens * cols, 8);
      uint8_t *w = malloc(row_bytes * rows * n_experts);
      cairn_quantize(type, wf, w, (int64_t)n_experts * rows * cols);
      int32_t *ids = malloc(4 * (size_t)pairs);
      for (int p = 0; p < pairs; p++) ids[p] = (int32_t)(rnd() * (n_experts - 1)); /* the last expert stays unused */
      const size_t bytes = cairn_expert_batch_bytes(type, n_experts, n_used, cols, n_tokens);
      void *batch = malloc(bytes);
      float *y0 = malloc(4ull * pairs * rows), *y1 = malloc(4ull * pairs * rows), *dense = malloc(4ull * pairs * rows);
      cairn_expert_batch_init(batch, bytes, type, n_experts, n_used, cols, n_tokens);
      cairn_isa_force(CAIRN_ISA_SCALAR);
      cairn_expert_prepare(batch, bytes, type, x, n_tokens, ids, 0);
      cairn_expert_matmul(batch, bytes, type, w, NULL, rows, y0, NULL);
      cairn_isa_force(best);
      cairn_expert_prepare(batch, bytes, type, x, n_tokens, ids, 0);
      cairn_expert_matmul(batch, bytes, type, w, NULL, rows, y1, NULL);
      char what[64];
      snprintf(what, sizeof what, "experts type %d, %d tokens", type, n_tokens);
      compare(what, y0, y1, (size_t)pairs * rows, 2e-4);
      /* Each expert with all its tokens, as a dense matmul (batches may take panel kernels in both). */
      float *xe = malloc(4ull * pairs * cols);
      for (int e = 0; e < n_experts; e++) {
        int n = 0;
        for (int p = 0; p < pairs; p++) {
          if (ids[p] == e) memcpy(xe + (size_t)n++ * cols, x + (size_t)(p / n_used) * cols, 4ull * cols);
        }
        if (n == 0) continue;
        cairn_matmul(type, w + (size_t)e * rows * row_bytes, rows, cols, xe, n, dense);
        for (int p = 0, i = 0; p < pairs; p++) {
          if (ids[p] != e) continue;
          snprintf(what, sizeof what, "experts type %d pair %d vs dense", type, p);
          compare(what, dense + (size_t)i++ * rows, y1 + (size_t)p * rows, rows, 0);
        }
      }
      free(xe);
      free(wf), free(x), free(w), free(ids), free(batch), free(y0), free(y1), free(dense);
    }
  }
}

static void check_ops(void) {
  const int64_t rows = 7, dim = 4097;
  float *x = randoms(rows * dim, 6), *w = randoms(dim, 2), *a = malloc(4 * rows * dim), *b = malloc(4 * rows * dim);
  cairn_isa_force(CAIRN_ISA_SCALAR);
  cairn_rms_norm(x, w, rows, dim, 1e-5f, a);
  cairn_isa_force(best);
  cairn_rms_norm(x, w, rows, dim, 1e-5f, b);
  compare("rms_norm", a, b, rows * dim, 1e-5);

  float *g = randoms(rows * dim, 8);
  check_exponentials("softmax", "swiglu", x, x, rows, dim, a, b, 0);
  check_exponentials("softmax", "swiglu", g, x, rows, dim, a, b, 0);
  /* Exponentials far out: SwiGLU of -100 to 100, softmax rows spanning 200. */
  float *wide = randoms(rows * dim, 200), *ones = malloc(4 * rows * dim);
  for (int64_t i = 0; i < rows * dim; i++) ones[i] = 1.0f;
  check_exponentials("softmax, wide inputs", "swiglu, wide inputs", wide, ones, rows, dim, a, b, 1);
  free(wide), free(ones);

  const int64_t nt = 5, nh = 8, hd = 128;
  int32_t pos[5] = {0, 3, 17, 200, 4096};
  float ff[64];
  for (int i = 0; i < 64; i++) ff[i] = 1.0f + (float)i / 9.0f;
  for (int mode = 0; mode < 2; mode++) {
    cairn_rope_params p = {.n_rot = 96, .freq_base = 500000.0f, .freq_scale = 0.5f, .neox = mode, .freq_factors = mode ? ff : NULL};
    float *q = randoms(nt * nh * hd, 4);
    memcpy(a, q, 4 * nt * nh * hd), memcpy(b, q, 4 * nt * nh * hd);
    cairn_isa_force(CAIRN_ISA_SCALAR);
    cairn_rope(a, nt, nh, hd, pos, &p);
    cairn_isa_force(best);
    cairn_rope(b, nt, nh, hd, pos, &p);
    compare(mode ? "rope neox" : "rope normal", a, b, nt * nh * hd, 1e-5);
    free(q);
  }

  /* F32, F16 and Q8_0 caches; a context of several attention chunks; one token (a decode step,
     whose chunks are split among threads) and a few. */
  const int kvs[] = {0, 1, 8};
  for (int ki = 0; ki < 6; ki++) {
    const int kv = kvs[ki % 3];
    const int64_t n_kv = 2, ctx = 600, tokens = ki < 3 ? 3 : 1, pos0 = ctx - tokens;
    const size_t row = n_kv * hd, bytes = (size_t)cairn_kv_bytes(kv, ctx * row);
    float *k = randoms(ctx * row, 3), *v = randoms(ctx * row, 3), *q = randoms(tokens * nh * hd, 3);
    void *kc = calloc(bytes, 1), *vc = calloc(bytes, 1);
    cairn_store_kv(k, v, kc, vc, kv, row, n_kv, ctx, ctx, 0, ctx);
    cairn_attention_params p = {.n_tokens = tokens, .n_head = nh, .n_kv_head = n_kv, .head_dim = hd, .pos0 = pos0, .scale = 0.088f, .kv_type = kv, .k_capacity = ctx, .v_capacity = ctx};
    cairn_isa_force(CAIRN_ISA_SCALAR);
    cairn_attention(q, kc, vc, &p, a);
    cairn_isa_force(best);
    cairn_attention(q, kc, vc, &p, b);
    compare(kv == 8 ? "attention q8_0 cache" : kv ? "attention f16 cache" : "attention f32 cache", a, b, tokens * nh * hd, 1e-4);
    free(k), free(v), free(q), free(kc), free(vc);
  }
  free(x), free(w), free(a), free(b), free(g);
}

int main(void) {
  best = cairn_isa_active(); /* the best level, or the one CAIRN_ISA names (to check a lower level too) */
  for (int e = 0; e < 256; e++) {
    if (quant_e8m0_half_table[e] != quant_e8m0_half((uint8_t)e)) printf("MISMATCH e8m0 table at %d\n", e), fails++;
  }
  printf("comparing the scalar kernels with %s\n", cairn_isa_name(best));
  check_matmul();
  check_float_batches();
  check_experts();
  check_ops();
  if (fails) {
    printf("%d FAILURES\n", fails);
    return 1;
  }
  printf("all kernels agree\n");
  return 0;
}
