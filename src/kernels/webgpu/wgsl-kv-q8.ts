/**
 * WGSL of a Q8_0 KV cache on the device, in the CPU cache's layout (rows of whole 34-byte blocks:
 * an f16 scale, 32 signed bytes): storing f32 rows as ggml's reference quantizer does (the scale is
 * the largest magnitude over 127, each value rounded half away from zero), and the readers the
 * attention kernel uses for such a cache (a query rounded to Q8_0 as ggml rounds it for a Q8_0 K).
 * Rows must hold an even number of blocks, so that each starts on a word and a thread writes a pair
 * of blocks as 17 whole words.
 */
import { WG } from './wgsl-ops.js';

/** C's roundf: halves away from zero (WGSL's round() takes them to even). */
const ROUND_AWAY = /* wgsl */ `
fn round_away(v: f32) -> f32 { return sign(v) * floor(abs(v) + 0.5); }`;

/** Quantizes the 32 f32 of `src` from element e into a block: its scale's f16 bits and its 32 bytes in 8 words. */
function quantizeBlockFn(src: string): string {
  return /* wgsl */ `
fn q8_block_${src}(e: u32) -> array<u32, 9> {
  var amax = 0.0;
  for (var j = 0u; j < 32u; j++) { amax = max(amax, abs(${src}[e + j])); }
  let d = amax / 127.0;
  var id = 0.0;
  if (d != 0.0) { id = 1.0 / d; }
  var out: array<u32, 9>;
  out[0] = pack2x16float(vec2f(d, 0.0)) & 0xffffu;
  for (var w = 0u; w < 8u; w++) {
    var word = 0u;
    for (var b = 0u; b < 4u; b++) { word |= (u32(i32(round_away(${src}[e + 4u * w + b] * id))) & 0xffu) << (8u * b); }
    out[w + 1u] = word;
  }
  return out;
}`;
}

/** Writes blocks 2p and 2p + 1 (from q8_block) as the 17 words at word `at`: d0 q0[0..32) d1 q1[0..32). */
function storePairFn(dst: string): string {
  return /* wgsl */ `
fn store_pair_${dst}(at: u32, a: array<u32, 9>, b: array<u32, 9>) {
  ${dst}[at] = a[0] | (a[1] << 16u);
  for (var w = 1u; w < 8u; w++) { ${dst}[at + w] = (a[w] >> 16u) | (a[w + 1u] << 16u); }
  ${dst}[at + 8u] = (a[8] >> 16u) | (b[0] << 16u);
  for (var w = 0u; w < 8u; w++) { ${dst}[at + 9u + w] = b[w + 1u]; }
}`;
}

/**
 * Rows [pos0, pos0 + n) of a Q8_0 cache (or of two: keys and values) from f32 rows starting at
 * element src_off: one thread per pair of blocks.
 */
export function storeQ8Wgsl(two: boolean): string {
  return /* wgsl */ `
struct Params { pairs: u32, row_elems: u32, pos0: u32, src_off: u32 }
@group(0) @binding(0) var<storage, read> k: array<f32>;
@group(0) @binding(1) var<storage, read_write> kc: array<u32>;
${two ? '@group(0) @binding(2) var<storage, read> v: array<f32>;\n@group(0) @binding(3) var<storage, read_write> vc: array<u32>;' : ''}
@group(0) @binding(${two ? 4 : 2}) var<uniform> P: Params;
${ROUND_AWAY}
${quantizeBlockFn('k')}
${storePairFn('kc')}
${two ? quantizeBlockFn('v') + storePairFn('vc') : ''}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * ${WG}u;
  if (i >= P.pairs) { return; }
  let e = P.src_off + 64u * i;
  // Rows of an even number of blocks: 17 words a pair, the cache's first row at word 0.
  let at = (P.pos0 * P.row_elems / 64u + i) * 17u;
  store_pair_kc(at, q8_block_k(e), q8_block_k(e + 32u));
  ${two ? 'store_pair_vc(at, q8_block_v(e), q8_block_v(e + 32u));' : ''}
}
`;
}

/**
 * The attention kernel's cache readers for a Q8_0 cache: the query rounded to Q8_0 per 32 elements
 * of its head (as ggml quantizes q for a Q8_0 K), a key row's dot with it, a value element.
 */
export const ATTENTION_Q8_READERS = /* wgsl */ `
${ROUND_AWAY}
fn cbyte_k(o: u32) -> u32 { return (kc[o >> 2u] >> ((o & 3u) * 8u)) & 0xffu; }
fn cbyte_v(o: u32) -> u32 { return (vc[o >> 2u] >> ((o & 3u) * 8u)) & 0xffu; }
fn i8_of(b: u32) -> f32 { return f32(i32(b << 24u) >> 24); }
fn load_query(v: f32) -> f32 { return v; }
fn round_query(li: u32, d: u32) {
  for (var blk = li; blk < d / 32u; blk += ${WG}u) {
    var amax = 0.0;
    for (var j = 0u; j < 32u; j++) { amax = max(amax, abs(qs[32u * blk + j])); }
    let sd = amax / 127.0;
    var id = 0.0;
    if (sd != 0.0) { id = 1.0 / sd; }
    let dh = unpack2x16float(pack2x16float(vec2f(sd, 0.0))).x;
    for (var j = 0u; j < 32u; j++) { qs[32u * blk + j] = round_away(qs[32u * blk + j] * id) * dh; }
  }
}
fn k_dot(ko: u32, d: u32) -> f32 {
  var dt = 0.0;
  for (var b = 0u; b < d / 32u; b++) {
    let o = ((ko >> 5u) + b) * 34u;
    var s = 0.0;
    for (var j = 0u; j < 32u; j++) { s += qs[32u * b + j] * i8_of(cbyte_k(o + 2u + j)); }
    dt += s * unpack2x16float(cbyte_k(o) | (cbyte_k(o + 1u) << 8u)).x;
  }
  return dt;
}
fn v_at(e: u32) -> f32 {
  let o = (e >> 5u) * 34u;
  return i8_of(cbyte_v(o + 2u + (e & 31u))) * unpack2x16float(cbyte_v(o) | (cbyte_v(o + 1u) << 8u)).x;
}
`;
