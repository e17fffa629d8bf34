/**
 * WGSL of the GPU kernels other than the weight products: RMS norm, RoPE (angles from a table the
 * host computes once per step, as the CPU's rope cache), SwiGLU, add, storing keys and values into
 * an F16 cache, and attention over that cache (online softmax over chunks of 64 positions: no
 * score row over the whole context). Each mirrors its CPU twin in src/kernels/reference/ops.ts.
 * Sums are f32 here (the CPU keeps some in f64), so GPU and CPU agree to rounding, not bit for bit.
 */
import { unrolled } from './wgsl-items.js';

/** Workgroup size of the row kernels (matmul, norm, attention): a multiple of every GPU's SIMD width. */
export const WG = 64;

/** The parameters and bindings every weight product shares (gpu-kernels.ts binds them in this order). */
const MATMUL_BINDINGS = /* wgsl */ `struct Params { rows: u32, cols: u32, n: u32, row_bytes: u32, w_off: u32, x_off: u32, y_off: u32, y_stride: u32 }
@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> P: Params;`;

/**
 * A weight product's store of one output: y[i] = v, or with `accumulate` y[i] = y[i] + v (the
 * residual add folded into the product: the same f32 addition the add kernel makes).
 */
export function store(i: string, v: string, accumulate: boolean): string {
  return accumulate ? `y[${i}] = y[${i}] + ${v};` : `y[${i}] = ${v};`;
}

/** Tree reduction over `red` (`width` floats, a workgroup's) in uniform control flow; leaves the result in red[0]. */
const REDUCE = (op: string, width = WG) => /* wgsl */ `
  workgroupBarrier();
  for (var k = ${width / 2}u; k > 0u; k >>= 1u) {
    if (li < k) { red[li] = ${op}(red[li], red[li + k]); }
    workgroupBarrier();
  }`;

/**
 * y[y_off + t * y_stride + r] = dot(row r of W, x[x_off + t * cols ..]) for t < n: one workgroup
 * per row, its threads over the row's blocks, then a tree sum. Rows beyond 32768 go to the second
 * grid dimension.
 */
export function matmulWgsl(bytes: string, format: string, blockElems: number, blockBytes: number, accumulate = false): string {
  return /* wgsl */ `
${MATMUL_BINDINGS}
var<workgroup> red: array<f32, ${WG}>;
${bytes}
${format}
fn add2(a: f32, b: f32) -> f32 { return a + b; }
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let r = wg.x + wg.y * 32768u;
  if (r >= P.rows) { return; }
  let nb = P.cols / ${blockElems}u;
  let rb = P.w_off + r * P.row_bytes;
  for (var t = 0u; t < P.n; t++) {
    let xo = P.x_off + t * P.cols;
    var s = 0.0;
    for (var b = li; b < nb; b += ${WG}u) { s += block_dot(rb + b * ${blockBytes}u, xo + b * ${blockElems}u); }
    red[li] = s;
    ${REDUCE('add2')}
    if (li == 0u) { ${store('P.y_off + t * P.y_stride + r', 'red[0]', accumulate)} }
    workgroupBarrier();
  }
}
`;
}

/**
 * The same product with subgroups: each subgroup takes one row (its lanes over the row's blocks, one
 * subgroupAdd), so no workgroup barrier is needed; 64 / subgroup_size rows per workgroup. Assumes
 * subgroups of consecutive invocations, as Vulkan, Metal and Direct3D 12 form them for a 1-D
 * workgroup.
 */
export function matmulSubgroupWgsl(bytes: string, format: string, blockElems: number, blockBytes: number, accumulate = false): string {
  return /* wgsl */ `
enable subgroups;
diagnostic(off, subgroup_uniformity);
${MATMUL_BINDINGS}
${bytes}
${format}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32,
        @builtin(subgroup_size) sgs: u32, @builtin(subgroup_invocation_id) lane: u32) {
  let r = (wg.x + wg.y * 32768u) * (${WG}u / sgs) + li / sgs;
  let live = r < P.rows;
  let nb = P.cols / ${blockElems}u;
  let rb = P.w_off + r * P.row_bytes;
  for (var t = 0u; t < P.n; t++) {
    var s = 0.0;
    if (live) {
      let xo = P.x_off + t * P.cols;
      for (var b = lane; b < nb; b += sgs) { s += block_dot(rb + b * ${blockBytes}u, xo + b * ${blockElems}u); }
    }
    let total = subgroupAdd(s);
    if (live && lane == 0u) { ${store('P.y_off + t * P.y_stride + r', 'total', accumulate)} }
  }
}
`;
}

/** Elements of a row one lane of the four-weight products takes at a time: a block, or 32 of a K-quant's 256. */
const W4_CHUNK = 32;

/**
 * The lanes' loop of a four-weight product over one row: the row cut into chunks of up to W4_CHUNK
 * elements (a K-quant block is eight), chunk c to lane c mod subgroup size, so a row of few large
 * blocks still keeps every lane reading; each chunk's weights decoded four at a time (w4) once for
 * every token of the tile, `dotFor(tt, e)` giving the token's activation index of the chunk's
 * element e. The chunks and a chunk's elements are summed in a fixed order, whatever the tile holds.
 */
export function w4RowLoop(blockElems: number, blockBytes: number, dotFor: (tt: string, e: string) => string): string {
  const chunk = Math.min(blockElems, W4_CHUNK);
  const per = blockElems / chunk;
  return /* wgsl */ `
      for (var c = lane; c < nb * ${per}u; c += sgs) {
        let b = c / ${per}u;
        let i0 = (c % ${per}u) * ${chunk}u;
        let wb = rb + b * ${blockBytes}u;
        for (var i = i0; i < i0 + ${chunk}u; i += 4u) {
          let wv = w4(wb, i);
          for (var tt = 0u; tt < nt; tt++) { acc[tt] += dot(wv, x4(${dotFor('tt', `b * ${blockElems}u + i`)})); }
        }
      }`;
}

/** Tokens whose sums one pass over a row's weights accumulates in the multi-token product. */
export const TOKEN_TILE = 8;

/**
 * The subgroup product over tiles of TOKEN_TILE tokens: each lane decodes four weights at a time
 * (w4) once for every token of the tile (w4RowLoop). A token's sum runs in the same order whatever the tile
 * holds, so a token's result does not depend on its batch.
 */
export function matmulTiledWgsl(bytes: string, w4: string, blockElems: number, blockBytes: number, accumulate = false): string {
  return /* wgsl */ `
enable subgroups;
diagnostic(off, subgroup_uniformity);
${MATMUL_BINDINGS}
${bytes}
${w4}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32,
        @builtin(subgroup_size) sgs: u32, @builtin(subgroup_invocation_id) lane: u32) {
  let r = (wg.x + wg.y * 32768u) * (${WG}u / sgs) + li / sgs;
  let live = r < P.rows;
  let nb = P.cols / ${blockElems}u;
  let rb = P.w_off + r * P.row_bytes;
  for (var t0 = 0u; t0 < P.n; t0 += ${TOKEN_TILE}u) {
    let nt = min(${TOKEN_TILE}u, P.n - t0);
    var acc: array<f32, ${TOKEN_TILE}>;
    for (var tt = 0u; tt < ${TOKEN_TILE}u; tt++) { acc[tt] = 0.0; }
    if (live) {
${w4RowLoop(blockElems, blockBytes, (tt, e) => `P.x_off + (t0 + ${tt}) * P.cols + ${e}`)}
    }
    for (var tt = 0u; tt < ${TOKEN_TILE}u; tt++) {
      let total = subgroupAdd(acc[tt]);
      if (live && lane == 0u && tt < nt) { ${store('P.y_off + (t0 + tt) * P.y_stride + r', 'total', accumulate)} }
    }
  }
}
`;
}

/** Threads of the norm's workgroup for long rows (a model's hidden state), and the row length from which it is used. */
export const NORM_WG = 256;
export const NORM_WIDE_FROM = 512;

/**
 * out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * weight: one workgroup per row of dim, rows `stride`
 * apart in x and out from element `offset` (MLA norms the latent part of each cached row, a QK norm
 * the keys after the queries); or in place into x. `wg`
 * threads: WG for short rows (the heads of a QK norm), NORM_WG for long ones, where each thread
 * loads four elements before it sums them (a single decode token's norm is one workgroup, and
 * one load at a time left it waiting on memory for most of its time).
 */
function rmsNormWgsl(inPlace: boolean, wg = WG): string {
  const dst = inPlace ? 'x' : 'out';
  const four = (f: (k: number) => string) => unrolled(4, f);
  return /* wgsl */ `
struct Params { rows: u32, dim: u32, eps: f32, stride: u32, offset: u32, pad0: u32, pad1: u32, pad2: u32 }
@group(0) @binding(0) var<storage, ${inPlace ? 'read_write' : 'read'}> x: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
${inPlace ? '' : '@group(0) @binding(3) var<storage, read_write> out: array<f32>;'}
@group(0) @binding(2) var<uniform> P: Params;
var<workgroup> red: array<f32, ${wg}>;
fn add2(a: f32, b: f32) -> f32 { return a + b; }
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let r = wg.x + wg.y * 32768u;
  if (r >= P.rows) { return; }
  let o = P.offset + r * P.stride;
${four((k) => `  var s${k} = 0.0;`)}
  var i = li;
  for (; i + ${3 * wg}u < P.dim; i += ${4 * wg}u) {
${four((k) => `    let a${k} = x[o + i + ${k * wg}u];`)}
${four((k) => `    s${k} += a${k} * a${k};`)}
  }
  for (; i < P.dim; i += ${wg}u) { s0 += x[o + i] * x[o + i]; }
  red[li] = (s0 + s1) + (s2 + s3);
  ${REDUCE('add2', wg)}
  let scale = 1.0 / sqrt(red[0] / f32(P.dim) + P.eps);
  var j = li;
  for (; j + ${3 * wg}u < P.dim; j += ${4 * wg}u) {
${four((k) => `    let a${k} = x[o + j + ${k * wg}u];`)}
${four((k) => `    let w${k} = weight[j + ${k * wg}u];`)}
${four((k) => `    ${dst}[o + j + ${k * wg}u] = (a${k} * scale) * w${k};`)}
  }
  for (; j < P.dim; j += ${wg}u) { ${dst}[o + j] = (x[o + j] * scale) * weight[j]; }
}
`;
}

export const RMS_NORM = rmsNormWgsl(false);
export const RMS_NORM_IN_PLACE = rmsNormWgsl(true);
export const RMS_NORM_WIDE = rmsNormWgsl(false, NORM_WG);
export const RMS_NORM_WIDE_IN_PLACE = rmsNormWgsl(true, NORM_WG);

/**
 * Rotates x in place by the angles in `table` (per token: nRot/2 cosines then nRot/2 sines): head h
 * of token t starts at t * token_stride + h * head_stride + offset; normal mode pairs (2i, 2i+1),
 * neox pairs (i, i + nRot/2). One thread per pair.
 */
export const ROPE = /* wgsl */ `
struct Params { tokens: u32, heads: u32, token_stride: u32, n_rot: u32, neox: u32, head_stride: u32, offset: u32, pad2: u32 }
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> table: array<f32>;
@group(0) @binding(2) var<uniform> P: Params;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let half = P.n_rot / 2u;
  let idx = gid.x + gid.y * nwg.x * ${WG}u;
  if (idx >= P.tokens * P.heads * half) { return; }
  let i = idx % half;
  let th = idx / half;
  let t = th / P.heads;
  let base = t * P.token_stride + (th % P.heads) * P.head_stride + P.offset;
  var a = base + 2u * i;
  var b = a + 1u;
  if (P.neox != 0u) { a = base + i; b = a + half; }
  let c = table[t * P.n_rot + i];
  let s = table[t * P.n_rot + half + i];
  let x0 = x[a];
  let x1 = x[b];
  x[a] = x0 * c - x1 * s;
  x[b] = x0 * s + x1 * c;
}
`;

/**
 * An element-wise op of two f32 tensors: out[i] = expr(a[i], b[i]) for i < n, or in place into a
 * (WebGPU does not let one buffer be bound for reading and writing in the same dispatch).
 */
function binaryWgsl(expr: string, inPlace: boolean, helpers = ''): string {
  return /* wgsl */ `${helpers}
struct Params { n: u32, pad0: u32, pad1: u32, pad2: u32 }
@group(0) @binding(0) var<storage, ${inPlace ? 'read_write' : 'read'}> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
${inPlace ? '' : '@group(0) @binding(3) var<storage, read_write> out: array<f32>;'}
@group(0) @binding(2) var<uniform> P: Params;
fn op(x: f32, y: f32) -> f32 { return ${expr}; }
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * ${WG}u;
  if (i >= P.n) { return; }
  ${inPlace ? 'a[i] = op(a[i], b[i]);' : 'out[i] = op(a[i], b[i]);'}
}
`;
}

/** silu(gate) * up, and its in-place form (into gate). */
export const SWIGLU = binaryWgsl('x / (1.0 + exp(-x)) * y', false);
export const SWIGLU_IN_PLACE = binaryWgsl('x / (1.0 + exp(-x)) * y', true);
/**
 * gelu as llama.cpp's CPU takes it (the CPU kernels' twin, refGeglu): 0 at or below -10, the input
 * at or above 10, else the tanh approximation of the input rounded to f16, the result rounded to
 * f16 (its table of f16 inputs).
 */
const GELU_F16 = /* wgsl */ `
fn toF16(v: f32) -> f32 { return unpack2x16float(pack2x16float(vec2f(v, 0.0))).x; }
fn geluF16(x: f32) -> f32 {
  if (x <= -10.0) { return 0.0; }
  if (x >= 10.0) { return x; }
  let h = toF16(x);
  // tanh is 1 in f32 past 9: clamped so that no device's exp-based tanh overflows.
  return toF16(0.5 * h * (1.0 + tanh(clamp(0.7978845608028654 * h * (1.0 + 0.044715 * h * h), -15.0, 15.0))));
}`;

/** gelu(gate) * up, and its in-place form (into gate). */
export const GEGLU = binaryWgsl('geluF16(x) * y', false, GELU_F16);
export const GEGLU_IN_PLACE = binaryWgsl('geluF16(x) * y', true, GELU_F16);
/** a + b, and its in-place form (into a). */
export const ADD = binaryWgsl('x + y', false);
export const ADD_IN_PLACE = binaryWgsl('x + y', true);

/** y[r * dim + i] += bias[i] for rows of dim. */
export const ADD_BIAS = /* wgsl */ `
struct Params { n: u32, dim: u32, pad1: u32, pad2: u32 }
@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<storage, read> bias: array<f32>;
@group(0) @binding(2) var<uniform> P: Params;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * ${WG}u;
  if (i >= P.n) { return; }
  y[i] = y[i] + bias[i % P.dim];
}
`;

/**
 * Rows [pos0, pos0 + n) of an F16 cache (row_elems even: each u32 holds two halves) from f32 rows
 * starting at element src_off; one thread per pair of elements, keys and values alike.
 */
export const STORE_KV_F16 = /* wgsl */ `
struct Params { pairs: u32, row_elems: u32, pos0: u32, src_off: u32 }
@group(0) @binding(0) var<storage, read> k: array<f32>;
@group(0) @binding(1) var<storage, read> v: array<f32>;
@group(0) @binding(2) var<storage, read_write> kc: array<u32>;
@group(0) @binding(3) var<storage, read_write> vc: array<u32>;
@group(0) @binding(4) var<uniform> P: Params;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * ${WG}u;
  if (i >= P.pairs) { return; }
  let at = P.pos0 * P.row_elems / 2u + i;
  let e = P.src_off + 2u * i;
  kc[at] = pack2x16float(vec2f(k[e], k[e + 1u]));
  vc[at] = pack2x16float(vec2f(v[e], v[e + 1u]));
}
`;

/**
 * Where ropeStoreKvWgsl finds q, k and v: three buffers, q and k in one (v apart), or all three in
 * one (a decode token's stacked Q/K/V product). WebGPU lets no buffer be bound for writing and for
 * anything else in one dispatch, so a shared buffer is bound once.
 */
export type QkvBinding = 'separate' | 'qk' | 'qkv';

/**
 * A span of tokens' RoPE and cache store in one dispatch: rotates the queries of tokens [t0, t0 + n)
 * in place (ROPE over rows of n_head x head_dim), and writes their keys, rotated, and values into
 * rows [pos0, pos0 + n) of F16 caches (STORE_KV_F16). Each thread makes one word of the key cache
 * (two elements, each rotated from its own pair, so no two threads write one word) or of the value
 * cache, with the same arithmetic as ROPE then STORE_KV_F16. The keys are read, not rotated in
 * place. q, k and v start at elements q_off, k_off and v_off of their buffers (see QkvBinding).
 */
export function ropeStoreKvWgsl(binding: QkvBinding): string {
  const buffers =
    binding === 'qkv'
      ? ['@group(0) @binding(0) var<storage, read_write> x: array<f32>;']
      : binding === 'qk'
        ? ['@group(0) @binding(0) var<storage, read_write> x: array<f32>;', '@group(0) @binding(1) var<storage, read> vs: array<f32>;']
        : [
            '@group(0) @binding(0) var<storage, read_write> qs: array<f32>;',
            '@group(0) @binding(1) var<storage, read> ks: array<f32>;',
            '@group(0) @binding(2) var<storage, read> vs: array<f32>;',
          ];
  const n = buffers.length;
  const [q, k, v] = binding === 'qkv' ? ['x', 'x', 'x'] : binding === 'qk' ? ['x', 'x', 'vs'] : ['qs', 'ks', 'vs'];
  return /* wgsl */ `
struct Params { tokens: u32, n_head: u32, n_kv_head: u32, head_dim: u32, n_rot: u32, neox: u32, pos0: u32, t0: u32, q_pairs: u32, k_words: u32, q_off: u32, k_off: u32, v_off: u32, pad0: u32, pad1: u32, pad2: u32 }
${buffers.join('\n')}
@group(0) @binding(${n}) var<storage, read> table: array<f32>;
@group(0) @binding(${n + 1}) var<storage, read_write> kc: array<u32>;
@group(0) @binding(${n + 2}) var<storage, read_write> vc: array<u32>;
@group(0) @binding(${n + 3}) var<uniform> P: Params;
fn k_at(e: u32) -> f32 { return ${k}[P.k_off + e]; }
/** Element e (of the span's rows of keys) of batch token t, rotated. */
fn k_rot(e: u32, t: u32) -> f32 {
  let d = e % P.head_dim;
  if (d >= P.n_rot) { return k_at(e); }
  let base = e - d;
  let half = P.n_rot / 2u;
  var i = d / 2u;
  var a = base + 2u * i;
  var b = a + 1u;
  var second = (d & 1u) == 1u;
  if (P.neox != 0u) {
    i = d % half;
    a = base + i;
    b = a + half;
    second = d >= half;
  }
  let c = table[t * P.n_rot + i];
  let s = table[t * P.n_rot + half + i];
  let x0 = k_at(a);
  let x1 = k_at(b);
  if (second) { return x0 * s + x1 * c; }
  return x0 * c - x1 * s;
}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = gid.x + gid.y * nwg.x * ${WG}u;
  let half = P.n_rot / 2u;
  let row_elems = P.n_kv_head * P.head_dim;
  if (idx < P.q_pairs) {
    let i = idx % half;
    let th = idx / half + P.t0 * P.n_head;
    let t = th / P.n_head;
    let base = P.q_off + th * P.head_dim;
    var a = base + 2u * i;
    var b = a + 1u;
    if (P.neox != 0u) { a = base + i; b = a + half; }
    let c = table[t * P.n_rot + i];
    let s = table[t * P.n_rot + half + i];
    let x0 = ${q}[a];
    let x1 = ${q}[b];
    ${q}[a] = x0 * c - x1 * s;
    ${q}[b] = x0 * s + x1 * c;
    return;
  }
  var w = idx - P.q_pairs;
  let at = P.pos0 * row_elems / 2u;
  if (w < P.k_words) {
    let e = P.t0 * row_elems + 2u * w;
    let t = e / row_elems;
    kc[at + w] = pack2x16float(vec2f(k_rot(e, t), k_rot(e + 1u, t)));
    return;
  }
  w -= P.k_words;
  if (w < P.k_words) {
    let e = P.v_off + P.t0 * row_elems + 2u * w;
    vc[at + w] = pack2x16float(vec2f(${v}[e], ${v}[e + 1u]));
  }
}
`;
}

/** Rows of one F16 cache from f32 rows (a key-only cache: latent attention's), as STORE_KV_F16 stores two. */
export const STORE_F16 = /* wgsl */ `
struct Params { pairs: u32, row_elems: u32, pos0: u32, src_off: u32 }
@group(0) @binding(0) var<storage, read> k: array<f32>;
@group(0) @binding(1) var<storage, read_write> kc: array<u32>;
@group(0) @binding(2) var<uniform> P: Params;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * ${WG}u;
  if (i >= P.pairs) { return; }
  let e = P.src_off + 2u * i;
  kc[P.pos0 * P.row_elems / 2u + i] = pack2x16float(vec2f(k[e], k[e + 1u]));
}
`;

/** Most key elements per head the GPU attention takes (its query row lives in workgroup memory). */
export const ATTENTION_MAX_KEY = 1024;
/** Most value elements per head (each of the WG threads accumulates up to ATTENTION_ACC of them). */
export const ATTENTION_ACC = 8;
export const ATTENTION_MAX_VALUE = ATTENTION_ACC * WG;

/**
 * Causal grouped-query attention of n tokens over an F16 cache, one workgroup per (head, token):
 * chunks of WG positions, one score per thread (q rounded to f16 first, as the CPU does for an F16
 * cache), the chunk's maximum and sum by tree reduction, the running state rescaled (online
 * softmax), each thread accumulating up to ATTENTION_ACC of the output's dimensions. A sliding
 * window and sink logits as the CPU kernel has them. Keys of head_dim (even) per KV head in rows of
 * k_row; values of v_dim per KV head in rows of v_row (the values may be the keys' own cache, as
 * latent attention reads its latent); output rows of n_head x v_dim. q rows start at element q_off,
 * output rows at out_off.
 */
/** The attention kernel's F16 cache readers: the query rounded to f16 as it is loaded, a key row's dot with it, a value element. */
const ATTENTION_F16_READERS = /* wgsl */ `
fn load_query(v: f32) -> f32 { return unpack2x16float(pack2x16float(vec2f(v, 0.0))).x; }
fn round_query(li: u32, d: u32) {}
fn k_dot(ko: u32, d: u32) -> f32 {
  // Four words loaded before any is used, two sums: a key row is a chain of loads otherwise.
  var d0 = 0.0;
  var d1 = 0.0;
  var i = 0u;
  for (; i + 8u <= d; i += 8u) {
    let w = (ko + i) >> 1u;
    let k0 = unpack2x16float(kc[w]);
    let k1 = unpack2x16float(kc[w + 1u]);
    let k2 = unpack2x16float(kc[w + 2u]);
    let k3 = unpack2x16float(kc[w + 3u]);
    d0 += k0.x * qs[i] + k0.y * qs[i + 1u] + k1.x * qs[i + 2u] + k1.y * qs[i + 3u];
    d1 += k2.x * qs[i + 4u] + k2.y * qs[i + 5u] + k3.x * qs[i + 6u] + k3.y * qs[i + 7u];
  }
  for (; i < d; i += 2u) {
    let kv = unpack2x16float(kc[(ko + i) >> 1u]);
    d0 += kv.x * qs[i] + kv.y * qs[i + 1u];
  }
  return d0 + d1;
}
fn v_at(e: u32) -> f32 { let v = unpack2x16float(vc[e >> 1u]); return select(v.x, v.y, (e & 1u) == 1u); }
`;

/** The attention kernel over a cache read by `readers` (ATTENTION_F16_READERS, or wgsl-kv-q8.ts's for Q8_0). */
export function attentionWgsl(readers: string): string {
  return /* wgsl */ `
struct Params {
  n_tokens: u32, n_head: u32, n_kv_head: u32, head_dim: u32,
  pos0: u32, window: u32, has_sinks: u32, scale: f32,
  q_off: u32, k_row: u32, v_dim: u32, v_row: u32,
  out_off: u32, softcap: f32, pad1: u32, pad2: u32,
}
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> kc: array<u32>;
@group(0) @binding(2) var<storage, read> vc: array<u32>;
@group(0) @binding(3) var<storage, read> sinks: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<uniform> P: Params;
var<workgroup> qs: array<f32, ${ATTENTION_MAX_KEY}>;
var<workgroup> red: array<f32, ${WG}>;
var<workgroup> wts: array<f32, ${WG}>;
const LOWEST = -3.0e38;
${readers}
fn max2(a: f32, b: f32) -> f32 { return max(a, b); }
fn add2(a: f32, b: f32) -> f32 { return a + b; }
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let h = wg.x;
  let t = wg.y;
  let d = P.head_dim;
  let vd = P.v_dim;
  let kvh = h / (P.n_head / P.n_kv_head);
  let qo = P.q_off + (t * P.n_head + h) * d;
  for (var i = li; i < d; i += ${WG}u) { qs[i] = load_query(q[qo + i]); }
  workgroupBarrier();
  round_query(li, d);
  workgroupBarrier();
  let n_ctx = P.pos0 + t + 1u;
  var first = 0u;
  if (P.window > 0u && n_ctx > P.window) { first = n_ctx - P.window; }
  var m = LOWEST;
  var l = 0.0;
${unrolled(ATTENTION_ACC, (k) => `  var acc${k} = 0.0;`)}
  for (var c0 = first; c0 < n_ctx; c0 += ${WG}u) {
    let j = c0 + li;
    var s = LOWEST;
    if (j < n_ctx) {
      s = k_dot(j * P.k_row + kvh * d, d) * P.scale;
      if (P.softcap > 0.0) { s = P.softcap * tanh(clamp(s * (1.0 / P.softcap), -15.0, 15.0)); }
    }
    red[li] = s;
    ${REDUCE('max2')}
    let mc = max(m, red[0]);
    var e = 0.0;
    if (j < n_ctx) { e = exp(s - mc); }
    workgroupBarrier();
    wts[li] = e;
    red[li] = e;
    ${REDUCE('add2')}
    let a = exp(m - mc);
    l = l * a + red[0];
    m = mc;
    let rows = min(${WG}u, n_ctx - c0);
${unrolled(
  ATTENTION_ACC,
  (k) => `    if (li + ${k * WG}u < vd) {
      // Four rows' values loaded before any is used, in four sums.
      let vb = c0 * P.v_row + kvh * vd + li + ${k * WG}u;
      var v0 = 0.0;
      var v1 = 0.0;
      var v2 = 0.0;
      var v3 = 0.0;
      var r = 0u;
      for (; r + 3u < rows; r += 4u) {
        let e = vb + r * P.v_row;
        v0 += wts[r] * v_at(e);
        v1 += wts[r + 1u] * v_at(e + P.v_row);
        v2 += wts[r + 2u] * v_at(e + 2u * P.v_row);
        v3 += wts[r + 3u] * v_at(e + 3u * P.v_row);
      }
      for (; r < rows; r++) { v0 += wts[r] * v_at(vb + r * P.v_row); }
      acc${k} = acc${k} * a + ((v0 + v1) + (v2 + v3));
    }`,
)}
    workgroupBarrier();
  }
  var a = 1.0;
  if (P.has_sinks != 0u) {
    let sink = sinks[h];
    let mx = max(m, sink);
    a = exp(m - mx);
    l = l * a + exp(sink - mx);
  }
  let oo = P.out_off + (t * P.n_head + h) * vd;
${unrolled(ATTENTION_ACC, (k) => `  if (li + ${k * WG}u < vd) { out[oo + li + ${k * WG}u] = acc${k} * a / l; }`)}
}
`;
}

/** Attention over an F16 cache. */
export const ATTENTION_F16 = attentionWgsl(ATTENTION_F16_READERS);
