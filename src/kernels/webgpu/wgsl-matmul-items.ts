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

/** Rows one subgroup computes together (sharing each load of the activations). */
export const ITEM_ROWS = 2;
/** Tokens whose sums one pass over the rows' items accumulates. */
export const ITEM_TOKENS = 8;

/**
 * What the item product does with a row's sum: writes it ('set'), adds it to y ('add': the residual
 * folded in), or, for rows in (gate, up) pairs, writes silu(gate) x up at half the row index
 * ('swiglu': a SwiGLU FFN's two products and its activation in one dispatch, the activation the
 * same expression as the swiglu kernel's). 'swiglu' needs ITEM_ROWS = 2, a subgroup's rows being
 * one pair.
 */
export type ItemOutput = 'set' | 'add' | 'swiglu';

/**
 * WGSL of the item product over `words` (WGSL_WORDS) and a format's item decoder. Every loop over
 * rows, tokens of a tile and vec4s of an item is written out with constant indices; only the loop
 * over items and the one over tiles run as loops.
 */
export function matmulItemsWgsl(words: string, items: string, unitElems: number, unitBytes: number, itemsPerUnit: number, output: ItemOutput = 'set'): string {
  const R = ITEM_ROWS;
  const T = ITEM_TOKENS;
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
    for (var c = lane; c < ni; c += sgs) {
      let u = c / ${itemsPerUnit}u;
      let i = c % ${itemsPerUnit}u;
${rows((r) => `      var w${r} = array<vec4f, 8>();
      if (live${r}) { w${r} = item_w(rb${r} + u * ${unitBytes}u, i); }`)}
      let xb = P.x_off / 4u + u * ${unitElems / 4}u + t0 * cv;
${unrolled(8, (k) => `      let o${k} = xb + item_x(i, ${k}u) / 4u;`)}
${unrolled(
  T,
  (t) => `      if (${t}u < nt) {
        let xt = ${t}u * cv;
${unrolled(8, (k) => `        let x${k} = xv[o${k} + xt];`)}
${rows((r) => `        a${t}[${r}] += ${Array.from({ length: 8 }, (_, k) => `dot(w${r}[${k}], x${k})`).join(' + ')};`)}
      }`,
)}
    }
${unrolled(
  T,
  (t) => `    if (${t}u < nt) {
${rows((r) => `      let total${t}_${r} = subgroupAdd(a${t}[${r}]);`)}
${
  output === 'swiglu'
    ? `      if (live1 && lane == 0u) { y[P.y_off + (t0 + ${t}u) * P.y_stride + r0 / 2u] = total${t}_0 / (1.0 + exp(-total${t}_0)) * total${t}_1; }`
    : rows((r) => `      if (live${r} && lane == 0u) { ${store(`P.y_off + (t0 + ${t}u) * P.y_stride + r0 + ${r}u`, `total${t}_${r}`, output === 'add')} }`)
}
    }`,
)}
  }
}
`;
}
