/*
 * The float kernels of the model code (everything but matmul and quantization), computed the way
 * llama.cpp's CPU backend computes them, split over the thread pool where the size pays for it.
 * Callers validate shapes; these functions trust them.
 */
#ifndef CAIRN_OPS_H
#define CAIRN_OPS_H

#include <stdint.h>

/* out[r] = (x[r] * 1/sqrt(mean(x[r]^2) + eps)) * w for `rows` rows of `dim`. out may alias x. */
void cairn_rms_norm(const float *x, const float *w, int64_t rows, int64_t dim, float eps, float *out);

/* Rotary embedding parameters (see src/kernels/api.ts RopeParams). */
typedef struct {
  int n_rot;
  float freq_base;
  float freq_scale;
  int neox; /* 0: rotate adjacent pairs (llama); 1: rotate halves (neox) */
  const float *freq_factors; /* n_rot/2 divisors of theta, or NULL */
} cairn_rope_params;

/* Rotates x (n_tokens x n_heads x head_dim) in place at positions pos[n_tokens]. */
void cairn_rope(float *x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, const int32_t *pos,
                const cairn_rope_params *p);

/* Softmax of each of `rows` rows of `cols`, in place. */
void cairn_softmax(float *x, int64_t rows, int64_t cols);
/*
 * log(sum(exp(x))) of one row on the calling thread (a sampler's logprobs, too small to share):
 * exp(x - max) in f32, summed in f64. NaN whenever the row holds a NaN or its maximum is infinite;
 * the caller then takes the exact path (src/sampling/logprobs.ts).
 */
double cairn_log_sum_exp(const float *x, int64_t n);

/* out = silu(gate) * up. out may alias either input. */
void cairn_swiglu(const float *gate, const float *up, int64_t n, float *out);

/*
 * gpt-oss's gated unit (ggml's swiglu_oai): g = min(gate, limit), u = clamp(up, -limit, limit),
 * out = g / (1 + expf(alpha * -g)) * (u + 1). out may alias either input.
 */
void cairn_swiglu_oai(const float *gate, const float *up, int64_t n, float alpha, float limit, float *out);

/* out = gelu(gate) * up with llama.cpp's f16 table of tanh-approximated gelu. out may alias. */
void cairn_geglu(const float *gate, const float *up, int64_t n, float *out);

/* out = a + b. out may alias either input. */
void cairn_add(const float *a, const float *b, int64_t n, float *out);

/* KV cache element types: GGML's numbers. */
#define CAIRN_KV_F32 0
#define CAIRN_KV_F16 1
#define CAIRN_KV_Q8_0 8
/*
 * A Q8_0 cache kept in tiles of 16 positions (not a GGML number: the binding's kvTiles flag). A
 * tile takes the bytes its 16 rows would take, at the same place (head h's tile t where rows
 * 16t..16t+15 of head h would start), so capacities, strides and sizes are those of Q8_0 (the
 * capacity a multiple of 16). With nb blocks a head, a tile holds 512 nb bytes of quants, then the
 * 16 rows' f16 scales of block 0, of block 1, ... (32 nb bytes). A key tile's quants are transposed
 * by dwords, each + 128 as an unsigned byte: its 64-byte vector i holds dword i (quants 4i..4i+3 of
 * the head) of rows 0..15 in turn, so a score kernel reads 16 rows' quants in its vector lanes as
 * they lie, with no transposes and no per-row offsets (the + 128 comes back once per query, not per
 * row). A value tile keeps each row's quants together (row r's at 32 nb r), the scales apart.
 * Latent attention, which reads one cache as keys and values, keeps rows (CAIRN_KV_Q8_0).
 */
#define CAIRN_KV_Q8_0_TILES 108
#define CAIRN_KV_TILE_ROWS 16

/* 1 where the active level's kernels read a tiled Q8_0 cache faster than rows (so new caches should be tiled), else 0. */
int cairn_kv_tiles_preferred(void);

/* Whether a cache type holds Q8_0 blocks (in rows or in tiles). */
static inline int cairn_kv_is_q8(int kv_type) { return kv_type == CAIRN_KV_Q8_0 || kv_type == CAIRN_KV_Q8_0_TILES; }

/* Bytes of `elems` cache elements of a type (Q8_0: elems a multiple of 32, 34 bytes per 32). */
static inline int64_t cairn_kv_bytes(int kv_type, int64_t elems) {
  return cairn_kv_is_q8(kv_type) ? elems / 32 * 34 : elems * (kv_type == CAIRN_KV_F16 ? 2 : 4);
}

/*
 * The cache layout (src/kernels/api.ts): a cache of `capacity` positions whose rows hold n_kv_head
 * heads stores them head by head, head h's row of position i at (h * capacity + i) * head bytes, so
 * the rows one KV head's attention reads lie in one stretch of memory. With one head, plain rows.
 */

/*
 * Copies n_tokens rows of row_elems f32 values (n_kv_head heads) from k and v into positions
 * [pos0, pos0 + n_tokens) of caches of k_capacity and v_capacity positions, as f32 (kv_type 0), f16
 * (kv_type 1, rounded to nearest even) or Q8_0 blocks (kv_type 8, ggml's reference quantizer; heads
 * in whole blocks of 32), or those blocks in tiles (CAIRN_KV_Q8_0_TILES; capacities multiples of 16).
 */
void cairn_store_kv(const float *k, const float *v, void *k_cache, void *v_cache, int kv_type, int64_t row_elems,
                    int64_t n_kv_head, int64_t k_capacity, int64_t v_capacity, int64_t pos0, int64_t n_tokens);

/* Causal grouped-query attention over one sequence's cache (see src/kernels/api.ts). */
typedef struct {
  int64_t n_tokens, n_head, n_kv_head, head_dim, pos0;
  float scale;
  int kv_type; /* CAIRN_KV_F32, CAIRN_KV_F16, CAIRN_KV_Q8_0 or CAIRN_KV_Q8_0_TILES (head_dim a multiple of 32) */
  /* One sink logit per query head (gpt-oss), joining each softmax as an entry without a value; NULL: none. */
  const float *sinks;
  /* A token sees only the last `window` positions (itself included); 0: all of them. */
  int64_t window;
  /* Scores squashed into (-softcap, softcap) as softcap * tanh(score / softcap) before the softmax (Gemma 2); 0: none. */
  float softcap;
  /* Positions each cache holds (the stride of its heads, see the layout above); >= pos0 + n_tokens. */
  int64_t k_capacity, v_capacity;
} cairn_attention_params;

/* Returns 0, or -1 when the scratch memory could not be allocated. */
int cairn_attention(const float *q, const void *k_cache, const void *v_cache, const cairn_attention_params *p,
                    float *out);

/*
 * One sequence's part of a batch for cairn_attention_spans: its n_tokens rows of queries (n_head x
 * head_dim each), new keys and values (n_kv_head x head_dim each) and outputs, and its caches
 * (capacities >= pos0 + n_tokens). Spans' caches and outputs are distinct memory.
 */
typedef struct {
  const float *q, *k, *v;
  void *k_cache, *v_cache;
  int64_t k_capacity, v_capacity, pos0, n_tokens;
  float *out;
} cairn_attention_span;

/*
 * For each span, cairn_store_kv of its new rows then cairn_attention (p: the heads, scale, cache
 * type, sinks and window; its n_tokens, pos0 and capacities are the spans'). Many small spans (the
 * decode tokens of many sequences) run side by side, each whole on one thread, instead of each
 * waking every thread for a few microseconds of work; every result is what cairn_attention gives
 * (it depends on no thread count). Returns 0, or -1 when scratch memory could not be allocated.
 */
int cairn_attention_spans(const cairn_attention_span *spans, int64_t n_spans, const cairn_attention_params *p);

#endif
