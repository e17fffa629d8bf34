/**
 * The item product: y = W x for any number of tokens, W read in items of 32 weights
 * (wgsl-items.ts). A subgroup takes ITEM_ROWS rows, its lanes the rows' items in turn (lane L the
 * items L, L + subgroup size, ...), and the tokens in tiles of ITEM_TOKENS: a lane decodes an item
 * of each row once per tile and each vec4 of a token's activations, loaded once, serves every row.
 * A token's sum is the same sequence of operations whatever the tile or batch holds (its lane's
 * items in order, then one subgroupAdd), so a token's result does not depend on its batch.
 */
import { store, WG } from './wgsl-ops.js';
import { unrolled } from './wgsl-items.js';

/** Rows one subgroup computes together (sharing each load of the activations), for several tokens. */
export const ITEM_ROWS = 2;
/** Tokens whose sums one pass over the rows' items accumulates. */
export const ITEM_TOKENS = 8;
/**
 * Rows a subgroup computes together for a single token (decode), and the items a lane loads at
 * once there. Measured on an NVIDIA H200 (bench/gpu-step.ts --decode-rows): 4 or 8 rows, each
 * sharing the activations' loads, ran slower than 2 (fewer subgroups to hide the loads' latency).
 */
export const ITEM_DECODE_ROWS = 2;
export const ITEM_DECODE_ITEMS = 1;

/**
 * What the item product does with a row's sum: writes it ('set'), adds it to y ('add': the residual
 * folded in), or, for rows in (gate, up) pairs, writes silu(gate) x up at half the row index
 * ('swiglu': a SwiGLU FFN's two products and its activation in one dispatch, the activation the
 * same expression as the swiglu kernel's). 'swiglu' needs ITEM_ROWS = 2, a subgroup's rows being
 * one pair.
 */
export type ItemOutput = 'set' | 'add' | 'swiglu';

/**
 * WGSL of the item product over `words` (WGSL_WORDS) and a format's item decoder: R rows a
 * subgroup, tiles of T tokens, U items a lane loads before it sums any (U > 1 keeps more loads in
 * flight; a row's sum still adds its lane's items in order, so every R, T and U give the same
 * bits). Every loop over rows, tokens of a tile and vec4s of an item is written out with constant
 * indices; only the loop over items and the one over tiles run as loops.
 */
export function matmulItemsWgsl(
  words: string,
  items: string,
  unitElems: number,
  unitBytes: number,
  itemsPerUnit: number,
  output: ItemOutput = 'set',
  R = ITEM_ROWS,
  T = ITEM_TOKENS,
  U = 1,
): string {
  if (output === 'swiglu' && R % 2 !== 0) throw new Error('a swiglu item product takes whole pairs of rows per subgroup');
  const rows = (f: (r: number) => string) => unrolled(R, f);
  return /* wgsl */ `
enable subgroups;
diagnostic(off, subgroup_uniformity);
struct Params { rows: u32, cols: u32, n: u32, row_bytes: u32, w_off: u32, x_off: u32, y_off: u32, y_stride: u32 }
@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> xv: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> P: Params;
${words}
${items}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32,
        @builtin(subgroup_size) sgs: u32, @builtin(subgroup_invocation_id) lane: u32) {
  let r0 = ((wg.x + wg.y * 32768u) * (${WG}u / sgs) + li / sgs) * ${R}u;
  if (r0 >= P.rows) { return; }
  let ni = (P.cols / ${unitElems}u) * ${itemsPerUnit}u;
  let cv = P.cols / 4u;
${rows((r) => `  let live${r} = r0 + ${r}u < P.rows;
  let rb${r} = P.w_off + (r0 + ${r}u) * P.row_bytes;`)}
  for (var t0 = 0u; t0 < P.n; t0 += ${T}u) {
    let nt = min(${T}u, P.n - t0);
${unrolled(T, (t) => `    var a${t} = array<f32, ${R}>();`)}
    for (var c = lane; c < ni; c += ${U}u * sgs) {
${unrolled(
  U,
  (q) => `      let c${q} = c + ${q}u * sgs;
      let ok${q} = c${q} < ni;
      let u${q} = c${q} / ${itemsPerUnit}u;
      let i${q} = c${q} % ${itemsPerUnit}u;
${rows((r) => `      var w${q}_${r} = array<vec4f, 8>();
      if (ok${q} && live${r}) { w${q}_${r} = item_w(rb${r} + u${q} * ${unitBytes}u, i${q}); }`)}`,
)}
${unrolled(
  U,
  (q) => `      let xb${q} = P.x_off / 4u + u${q} * ${unitElems / 4}u + t0 * cv;
${unrolled(8, (k) => `      let o${q}_${k} = xb${q} + item_x(i${q}, ${k}u) / 4u;`)}
${unrolled(
  T,
  (t) => `      if (ok${q} && ${t}u < nt) {
        let xt = ${t}u * cv;
${unrolled(8, (k) => `        let x${k} = xv[o${q}_${k} + xt];`)}
${rows((r) => `        a${t}[${r}] += ${Array.from({ length: 8 }, (_, k) => `dot(w${q}_${r}[${k}], x${k})`).join(' + ')};`)}
      }`,
)}`,
)}
    }
${unrolled(
  T,
  (t) => `    if (${t}u < nt) {
${rows((r) => `      let total${t}_${r} = subgroupAdd(a${t}[${r}]);`)}
${
  output === 'swiglu'
    ? unrolled(
        R / 2,
        (j) =>
          `      if (live${2 * j + 1} && lane == 0u) { y[P.y_off + (t0 + ${t}u) * P.y_stride + r0 / 2u + ${j}u] = total${t}_${2 * j} / (1.0 + exp(-total${t}_${2 * j})) * total${t}_${2 * j + 1}; }`,
      )
    : rows((r) => `      if (live${r} && lane == 0u) { ${store(`P.y_off + (t0 + ${t}u) * P.y_stride + r0 + ${r}u`, `total${t}_${r}`, output === 'add')} }`)
}
    }`,
)}
  }
}
`;
}
