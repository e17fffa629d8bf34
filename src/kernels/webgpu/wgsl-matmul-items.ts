/**
 * The item product: y = W x for any number of tokens, W read in items of 32 weights
 * (wgsl-items.ts). A subgroup takes ITEM_ROWS rows, its lanes the rows' items in turn (lane L the
 * items L, L + subgroup size, ...), and the tokens in tiles of ITEM_TOKENS: a lane decodes an item
 * of each row once per tile and each vec4 of a token's activations, loaded once, serves every row.
 * A token's sum is the same sequence of operations whatever the tile or batch holds (its lane's
 * items in order, then one subgroupAdd), so a token's result does not depend on its batch.
 */
import { WG } from './wgsl-ops.js';

/** Rows one subgroup computes together (sharing each load of the activations). */
export const ITEM_ROWS = 2;
/** Tokens whose sums one pass over the rows' items accumulates. */
export const ITEM_TOKENS = 8;

/** WGSL of the item product over `words` (WGSL_WORDS) and a format's item decoder. */
export function matmulItemsWgsl(words: string, items: string, unitElems: number, unitBytes: number, itemsPerUnit: number): string {
  const acc = ITEM_ROWS * ITEM_TOKENS;
  const rows = Array.from({ length: ITEM_ROWS }, (_, r) => r);
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
  let r0 = ((wg.x + wg.y * 32768u) * (${WG}u / sgs) + li / sgs) * ${ITEM_ROWS}u;
  if (r0 >= P.rows) { return; }
  let ni = (P.cols / ${unitElems}u) * ${itemsPerUnit}u;
  let cv = P.cols / 4u;
${rows.map((r) => `  let live${r} = r0 + ${r}u < P.rows;\n  let rb${r} = P.w_off + (r0 + ${r}u) * P.row_bytes;`).join('\n')}
  for (var t0 = 0u; t0 < P.n; t0 += ${ITEM_TOKENS}u) {
    let nt = min(${ITEM_TOKENS}u, P.n - t0);
    // Zeroed explicitly: a declaration without initializer inside a loop was seen keeping the last
    // iteration's values (lavapipe).
    var acc = array<f32, ${acc}>();
    for (var c = lane; c < ni; c += sgs) {
      let u = c / ${itemsPerUnit}u;
      let i = c % ${itemsPerUnit}u;
${rows.map((r) => `      var w${r} = array<vec4f, 8>();\n      if (live${r}) { w${r} = item_w(rb${r} + u * ${unitBytes}u, i); }`).join('\n')}
      let xb = P.x_off / 4u + u * ${unitElems / 4}u + t0 * cv;
      for (var tt = 0u; tt < nt; tt++) {
        let xo = xb + tt * cv;
${rows.map((r) => `        var s${r} = 0.0;`).join('\n')}
        for (var k = 0u; k < 8u; k++) {
          let xk = xv[xo + item_x(i, k) / 4u];
${rows.map((r) => `          s${r} += dot(w${r}[k], xk);`).join('\n')}
        }
${rows.map((r) => `        acc[${r * ITEM_TOKENS}u + tt] += s${r};`).join('\n')}
      }
    }
    for (var tt = 0u; tt < nt; tt++) {
${rows.map((r) => `      let total${r} = subgroupAdd(acc[${r * ITEM_TOKENS}u + tt]);\n      if (live${r} && lane == 0u) { y[P.y_off + (t0 + tt) * P.y_stride + r0 + ${r}u] = total${r}; }`).join('\n')}
    }
  }
}
`;
}
