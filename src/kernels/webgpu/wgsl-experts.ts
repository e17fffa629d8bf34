/**
 * WGSL of the Mixture-of-Experts kernels (and of the per-head products latent attention runs as
 * experts): the router's choice of experts, the expert products of (token, slot) pairs reading each
 * pair's expert from a bank uploaded in its GGUF layout, the weighted sum of a token's expert
 * outputs, the shared experts' gated sum, the gated units (silu alone, gpt-oss's swiglu_oai), and a
 * strided row copy. Each mirrors a CPU twin (moe-router.ts, kernels/reference/experts.ts, ops.ts).
 */
import { WG, w4RowLoop } from './wgsl-ops.js';

/** Most expert groups the GPU router takes (a bit each in two words). */
export const ROUTE_MAX_GROUPS = 64;

/**
 * One thread per token: probabilities from the router logits (softmax over all, sigmoid of each,
 * or the raw logits for softmax-selected), written back in place; selection scores (plus the
 * score-correction bias); group-limited selection (groups ranked by the sum of their two best
 * scores); the top `used` by descending score, ties to the lower index (the order of llama.cpp's
 * sort for 16 experts or fewer); then the weights: softmax over the chosen, normalized by their
 * sum (clamped at the smallest normal f16) and scaled.
 */
export const MOE_ROUTE = /* wgsl */ `
struct Params {
  n: u32, experts: u32, used: u32, gating: u32,
  normalize: u32, scale: f32, groups: u32, groups_used: u32,
  has_bias: u32, pad0: u32, pad1: u32, pad2: u32,
}
@group(0) @binding(0) var<storage, read_write> probs: array<f32>;
@group(0) @binding(1) var<storage, read> bias: array<f32>;
@group(0) @binding(2) var<storage, read_write> ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> weights: array<f32>;
@group(0) @binding(4) var<uniform> P: Params;
const LOWEST = -3.0e38;
fn score(row: u32, e: u32) -> f32 {
  var v = probs[row + e];
  if (P.has_bias != 0u) { v += bias[e]; }
  return v;
}
fn in_groups(e: u32, per: u32, keep: vec2u) -> bool {
  if (P.groups <= 1u) { return true; }
  let g = e / per;
  return ((select(keep.x, keep.y, g >= 32u) >> (g & 31u)) & 1u) == 1u;
}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = gid.x + gid.y * nwg.x * ${WG}u;
  if (t >= P.n) { return; }
  let E = P.experts;
  let k = P.used;
  let row = t * E;
  if (P.gating == 0u) {
    var mx = LOWEST;
    for (var e = 0u; e < E; e++) { mx = max(mx, probs[row + e]); }
    var sum = 0.0;
    for (var e = 0u; e < E; e++) { let v = exp(probs[row + e] - mx); probs[row + e] = v; sum += v; }
    let inv = 1.0 / sum;
    for (var e = 0u; e < E; e++) { probs[row + e] = probs[row + e] * inv; }
  } else if (P.gating == 1u) {
    for (var e = 0u; e < E; e++) { probs[row + e] = 1.0 / (1.0 + exp(-probs[row + e])); }
  }
  var keep = vec2u(0u, 0u);
  let per = E / max(P.groups, 1u);
  if (P.groups > 1u) {
    // The best groups_used groups by (sum of the two best scores, lower index on ties).
    var prev_v = 3.0e38;
    var prev_g = -1;
    for (var j = 0u; j < P.groups_used; j++) {
      var best_v = LOWEST;
      var best_g = -1;
      for (var g = 0u; g < P.groups; g++) {
        var a = LOWEST;
        var b = LOWEST;
        for (var e = g * per; e < (g + 1u) * per; e++) {
          let v = score(row, e);
          if (v > a) { b = a; a = v; } else if (v > b) { b = v; }
        }
        let gs = a + b;
        let eligible = gs < prev_v || (gs == prev_v && i32(g) > prev_g);
        if (eligible && (best_g < 0 || gs > best_v)) { best_v = gs; best_g = i32(g); }
      }
      let bg = u32(best_g);
      if (bg < 32u) { keep.x |= 1u << bg; } else { keep.y |= 1u << (bg - 32u); }
      prev_v = best_v;
      prev_g = best_g;
    }
  }
  var prev_v = 3.0e38;
  var prev_e = -1;
  for (var j = 0u; j < k; j++) {
    var best_v = LOWEST;
    var best_e = -1;
    for (var e = 0u; e < E; e++) {
      if (!in_groups(e, per, keep)) { continue; }
      let v = score(row, e);
      let eligible = v < prev_v || (v == prev_v && i32(e) > prev_e);
      if (eligible && (best_e < 0 || v > best_v)) { best_v = v; best_e = i32(e); }
    }
    let be = u32(max(best_e, 0));
    ids[t * k + j] = be;
    weights[t * k + j] = probs[row + be];
    prev_v = best_v;
    prev_e = best_e;
  }
  if (P.gating == 2u) {
    var mx = LOWEST;
    for (var j = 0u; j < k; j++) { mx = max(mx, weights[t * k + j]); }
    var sum = 0.0;
    for (var j = 0u; j < k; j++) { let v = exp(weights[t * k + j] - mx); weights[t * k + j] = v; sum += v; }
    let inv = 1.0 / sum;
    for (var j = 0u; j < k; j++) { weights[t * k + j] = weights[t * k + j] * inv; }
  }
  if (P.normalize != 0u) {
    var sum = 0.0;
    for (var j = 0u; j < k; j++) { sum += weights[t * k + j]; }
    let d = max(sum, 6.103515625e-5);
    for (var j = 0u; j < k; j++) { weights[t * k + j] = weights[t * k + j] / d; }
  }
  if (P.scale != 0.0 && P.scale != 1.0) {
    for (var j = 0u; j < k; j++) { weights[t * k + j] = weights[t * k + j] * P.scale; }
  }
}
`;

/** The expert products' parameters and bindings (expert-kernels.ts binds them in this order). */
const MATMUL_ID_BINDINGS = /* wgsl */ `struct Params {
  rows: u32, cols: u32, pairs: u32, row_bytes: u32,
  expert_bytes: u32, first: u32, count: u32, x_off: u32,
  x_div: u32, x_stride: u32, y_off: u32, y_stride: u32,
  has_bias: u32, pair0: u32, pad1: u32, pad2: u32,
}
@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> ids: array<u32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<uniform> P: Params;`;

/** The part of a matmul-id kernel after its row's sum: the expert's bias, the store. */
const MATMUL_ID_STORE = /* wgsl */ `
fn store(p: u32, e: u32, r: u32, s: f32) {
  var v = s;
  if (P.has_bias != 0u) { v += bias[e * P.rows + r]; }
  y[P.y_off + p * P.y_stride + r] = v;
}`;

/**
 * Expert products of (token, slot) pairs: pair p takes expert ids[p] (a bank part holds experts
 * [first, first + count); pairs routed elsewhere are passed over) and its input row
 * x[x_off + (p / x_div) * x_stride ..] (x_div = used: the token's row, shared by its slots; 1: a
 * row of its own); writes rows of y[y_off + p * y_stride ..], plus the expert's bias. Workgroups:
 * rows (64 / subgroup size a workgroup with subgroups, else one) by pairs from pair0.
 */
export function matmulIdWgsl(bytes: string, format: string, blockElems: number, blockBytes: number, subgroups: boolean): string {
  const head = subgroups ? 'enable subgroups;\ndiagnostic(off, subgroup_uniformity);\n' : '';
  const body = subgroups
    ? /* wgsl */ `
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32,
        @builtin(subgroup_size) sgs: u32, @builtin(subgroup_invocation_id) lane: u32) {
  let p = P.pair0 + wg.y;
  let e = ids[p];
  if (e < P.first || e >= P.first + P.count) { return; }
  let r = wg.x * (${WG}u / sgs) + li / sgs;
  let live = r < P.rows;
  let nb = P.cols / ${blockElems}u;
  let rb = (e - P.first) * P.expert_bytes + r * P.row_bytes;
  let xo = P.x_off + (p / P.x_div) * P.x_stride;
  var s = 0.0;
  if (live) {
    for (var b = lane; b < nb; b += sgs) { s += block_dot(rb + b * ${blockBytes}u, xo + b * ${blockElems}u); }
  }
  let total = subgroupAdd(s);
  if (live && lane == 0u) { store(p, e, r, total); }
}`
    : /* wgsl */ `
var<workgroup> red: array<f32, ${WG}>;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let p = P.pair0 + wg.y;
  let e = ids[p];
  if (e < P.first || e >= P.first + P.count) { return; }
  let r = wg.x;
  let nb = P.cols / ${blockElems}u;
  let rb = (e - P.first) * P.expert_bytes + r * P.row_bytes;
  let xo = P.x_off + (p / P.x_div) * P.x_stride;
  var s = 0.0;
  for (var b = li; b < nb; b += ${WG}u) { s += block_dot(rb + b * ${blockBytes}u, xo + b * ${blockElems}u); }
  red[li] = s;
  workgroupBarrier();
  for (var k = ${WG / 2}u; k > 0u; k >>= 1u) {
    if (li < k) { red[li] += red[li + k]; }
    workgroupBarrier();
  }
  if (li == 0u) { store(p, e, r, red[0]); }
}`;
  return `${head}${MATMUL_ID_BINDINGS}\n${bytes}\n${format}\n${MATMUL_ID_STORE}\n${body}\n`;
}

/** Pairs of one expert that one workgroup of the grouped product takes together. */
export const PAIR_TILE = 8;

/** Grids of grouped products one grouping writes the workgroup counts of (their row groups differ). */
export const GROUP_GRIDS = 4;

/**
 * Groups a step's (token, slot) pairs by expert, in one workgroup: `sorted` gets the pair indices
 * expert by expert (in pair order within each), `offsets` the pair offset of each expert (experts + 1
 * entries) and then the offset of its first tile of PAIR_TILE pairs (experts + 1 entries); `args`
 * the workgroup counts of the grouped products that follow (row groups x tiles x 1, for each of
 * n_grids row-group counts), so they launch only the tiles there are.
 */
export const MOE_GROUP = /* wgsl */ `
struct Params { pairs: u32, experts: u32, n_grids: u32, pad0: u32, row_groups: vec4u }
@group(0) @binding(0) var<storage, read> ids: array<u32>;
@group(0) @binding(1) var<storage, read_write> sorted: array<u32>;
@group(0) @binding(2) var<storage, read_write> offsets: array<u32>;
@group(0) @binding(3) var<storage, read_write> args: array<u32>;
@group(0) @binding(4) var<uniform> P: Params;
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_index) li: u32) {
  let E = P.experts;
  for (var e = li; e < E; e += ${WG}u) {
    var c = 0u;
    for (var p = 0u; p < P.pairs; p++) { if (ids[p] == e) { c++; } }
    offsets[e] = c;
  }
  storageBarrier();
  if (li == 0u) {
    var pairs = 0u;
    var tiles = 0u;
    for (var e = 0u; e < E; e++) {
      let c = offsets[e];
      offsets[e] = pairs;
      offsets[E + 1u + e] = tiles;
      pairs += c;
      tiles += (c + ${PAIR_TILE - 1}u) / ${PAIR_TILE}u;
    }
    offsets[E] = pairs;
    offsets[E + 1u + E] = tiles;
    for (var g = 0u; g < P.n_grids; g++) {
      args[3u * g] = P.row_groups[g];
      args[3u * g + 1u] = tiles;
      args[3u * g + 2u] = 1u;
    }
  }
  storageBarrier();
  for (var e = li; e < E; e += ${WG}u) {
    var at = offsets[e];
    for (var p = 0u; p < P.pairs; p++) { if (ids[p] == e) { sorted[at] = p; at++; } }
  }
}
`;

/**
 * The expert products over pairs grouped by expert (MOE_GROUP): each workgroup takes one tile of up
 * to PAIR_TILE pairs of one expert and a few rows (a subgroup each), decoding each four weights once
 * (w4) for every pair of the tile, so an expert's weights are read once per tile rather than once
 * per pair. A pair's sum runs in the same order whatever its tile holds: its result does not depend
 * on the rest of the batch. Workgroups: rows by tiles (the counts MOE_GROUP wrote); tiles of experts
 * the part does not hold are passed over.
 */
export function matmulIdGroupedWgsl(bytes: string, w4: string, blockElems: number, blockBytes: number): string {
  return /* wgsl */ `
enable subgroups;
diagnostic(off, subgroup_uniformity);
struct Params {
  rows: u32, cols: u32, experts: u32, row_bytes: u32,
  expert_bytes: u32, first: u32, count: u32, x_off: u32,
  x_div: u32, x_stride: u32, y_off: u32, y_stride: u32,
  has_bias: u32, tile0: u32, pad1: u32, pad2: u32,
}
@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> sorted: array<u32>;
@group(0) @binding(4) var<storage, read> offsets: array<u32>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;
@group(0) @binding(6) var<uniform> P: Params;
${bytes}
${w4}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32,
        @builtin(subgroup_size) sgs: u32, @builtin(subgroup_invocation_id) lane: u32) {
  let E = P.experts;
  let tile = P.tile0 + wg.y;
  if (tile >= offsets[E + 1u + E]) { return; }
  // The expert whose tiles hold this one: the last e with tile start <= tile.
  var lo = 0u;
  var hi = E;
  while (hi - lo > 1u) {
    let mid = (lo + hi) / 2u;
    if (offsets[E + 1u + mid] <= tile) { lo = mid; } else { hi = mid; }
  }
  let e = lo;
  if (e < P.first || e >= P.first + P.count) { return; }
  let ps = offsets[e] + (tile - offsets[E + 1u + e]) * ${PAIR_TILE}u;
  let nt = min(${PAIR_TILE}u, offsets[e + 1u] - ps);
  var pair: array<u32, ${PAIR_TILE}>;
  var xo: array<u32, ${PAIR_TILE}>;
  for (var tt = 0u; tt < ${PAIR_TILE}u; tt++) {
    pair[tt] = 0u;
    xo[tt] = 0u;
    if (tt < nt) {
      pair[tt] = sorted[ps + tt];
      xo[tt] = P.x_off + (pair[tt] / P.x_div) * P.x_stride;
    }
  }
  let r = wg.x * (${WG}u / sgs) + li / sgs;
  let live = r < P.rows;
  let nb = P.cols / ${blockElems}u;
  let rb = (e - P.first) * P.expert_bytes + r * P.row_bytes;
  var acc: array<f32, ${PAIR_TILE}>;
  for (var tt = 0u; tt < ${PAIR_TILE}u; tt++) { acc[tt] = 0.0; }
  if (live) {
${w4RowLoop(blockElems, blockBytes, (tt, e) => `xo[${tt}] + ${e}`)}
  }
  for (var tt = 0u; tt < ${PAIR_TILE}u; tt++) {
    let total = subgroupAdd(acc[tt]);
    if (live && lane == 0u && tt < nt) {
      var v = total;
      if (P.has_bias != 0u) { v += bias[e * P.rows + r]; }
      y[P.y_off + pair[tt] * P.y_stride + r] = v;
    }
  }
}
`;
}

/** out[t, i] = Σ_j weights[t, j] x y[t x used + j, i], slots in order; one thread per output element. */
export const MOE_COMBINE = /* wgsl */ `
struct Params { n: u32, used: u32, dim: u32, pad0: u32 }
@group(0) @binding(0) var<storage, read> y: array<f32>;
@group(0) @binding(1) var<storage, read> weights: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> P: Params;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = gid.x + gid.y * nwg.x * ${WG}u;
  if (idx >= P.n * P.dim) { return; }
  let t = idx / P.dim;
  let i = idx % P.dim;
  var s = 0.0;
  for (var j = 0u; j < P.used; j++) {
    let p = t * P.used + j;
    s += weights[p] * y[p * P.dim + i];
  }
  out[idx] = s;
}
`;

/** out[t, i] += sh[t, i] x silu(g[t]) / g[t]: Qwen2-MoE's gated shared experts. */
export const GATED_ADD = /* wgsl */ `
struct Params { n: u32, dim: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> sh: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<uniform> P: Params;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = gid.x + gid.y * nwg.x * ${WG}u;
  if (idx >= P.n * P.dim) { return; }
  let gt = g[idx / P.dim];
  let gate = (gt / (1.0 + exp(-gt))) / gt;
  out[idx] = out[idx] + sh[idx] * gate;
}
`;

/** x[i] = silu(x[i]) for i < n, in place (llama experts without a gate tensor). */
export const SILU_IN_PLACE = /* wgsl */ `
struct Params { n: u32, pad0: u32, pad1: u32, pad2: u32 }
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<uniform> P: Params;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * ${WG}u;
  if (i >= P.n) { return; }
  let v = x[i];
  x[i] = v / (1.0 + exp(-v));
}
`;

/**
 * gpt-oss's swiglu_oai in place into gate: g = min(gate, limit), u = clamp(up, -limit, limit),
 * gate = g x sigmoid(alpha g) x (u + 1).
 */
export const SWIGLU_OAI_IN_PLACE = /* wgsl */ `
struct Params { n: u32, alpha: f32, limit: f32, pad0: u32 }
@group(0) @binding(0) var<storage, read_write> gate: array<f32>;
@group(0) @binding(1) var<storage, read> up: array<f32>;
@group(0) @binding(2) var<uniform> P: Params;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * ${WG}u;
  if (i >= P.n) { return; }
  let g = min(gate[i], P.limit);
  let u = clamp(up[i], -P.limit, P.limit);
  gate[i] = (g / (1.0 + exp(-P.alpha * g))) * (u + 1.0);
}
`;

/** dst[d_off + i x d_stride + j] = src[s_off + i x s_stride + j] for i < rows, j < len; a thread per element. */
export const COPY_ROWS = /* wgsl */ `
struct Params { rows: u32, len: u32, s_off: u32, s_stride: u32, d_off: u32, d_stride: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> P: Params;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = gid.x + gid.y * nwg.x * ${WG}u;
  if (idx >= P.rows * P.len) { return; }
  let i = idx / P.len;
  let j = idx % P.len;
  dst[P.d_off + i * P.d_stride + j] = src[P.s_off + i * P.s_stride + j];
}
`;
