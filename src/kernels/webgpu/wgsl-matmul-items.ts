/**
 * The item product: y = W x for any number of tokens, W read in items of 32 weights
 * (wgsl-items.ts). A subgroup takes ITEM_ROWS rows, its lanes the rows' items in turn (lane L the
 * items L, L + subgroup size, ...), and the tokens in tiles of ITEM_TOKENS: a lane decodes an item
 * of each row once per tile and each vec4 of a token's activations, loaded once, serves every row.
 * A token's sum is the same sequence of operations whatever the tile or batch holds (its lane's
 * items in order, then one subgroupAdd), so a token's result does not depend on its batch.
 *
 * Staged (ItemStage): the workgroup first copies a stretch of the activations (every token of the
 * tile) into workgroup memory with whole-vector loads side by side, and its subgroups read them
 * there. Unstaged, each lane reads its items' activations from the storage buffer itself, its
 * vec4s 128 bytes apart from its neighbours', once for every pair of rows: several times the bytes
 * of the weights, through the caches. The lanes' items and their order are the same either way,
 * so staged and unstaged products give the same bits.
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
 * Activations staged in workgroup memory (see above): the invocations of a workgroup, and how many
 * units of a row (blocks, or a K-quant's super-blocks) one stage holds for each token of the tile.
 */
export interface ItemStage {
  readonly invocations: number;
  readonly units: number;
}

/**
 * Vec4s of workgroup memory a staged token takes for `vec4s` of activations: one vec4 of padding
 * after every 16, so that the lanes of a subgroup, each reading vec4 k of its own item, spread over
 * the memory banks (every format's items then take each bank at most twice as often as the fewest
 * a subgroup's reads could).
 */
function padded(vec4s: number): number {
  return vec4s + Math.floor(vec4s / 16);
}

/** The index of vec4 `e` of a staged token in WGSL (as padded counts). */
const paddedAt = (e: string) => `${e} + (${e} >> 4u)`;

/** Bytes of workgroup memory a stage of `units` units for `tokens` tokens takes. */
export function stageBytes(units: number, tokens: number, unitElems: number): number {
  return tokens * padded((units * unitElems) / 4) * 16;
}

/**
 * The tokens of a tile and the units of a stage for a staged item product: as many tokens as
 * asked for (`maxTokens`) or fewer, and the most units that fit `bytes` of workgroup memory for
 * them, in whole subgroups' worth of items (`lanes`, the largest subgroup: no lane waits on
 * another's extra item at a stage's end, and every stage starts on a subgroup's first lane, whose
 * items are then the same as unstaged). Undefined where not even one subgroup's worth fits.
 */
export function stageShape(bytes: number, maxTokens: number, unitElems: number, itemsPerUnit: number, lanes: number): { tokens: number; units: number } | undefined {
  const step = Math.max(1, Math.ceil(lanes / itemsPerUnit));
  for (let tokens = maxTokens; tokens >= 1; tokens--) {
    let units = Math.floor(bytes / 16 / tokens / (unitElems / 4) / step) * step;
    while (units >= step && stageBytes(units, tokens, unitElems) > bytes) units -= step;
    if (units >= step) return { tokens, units };
  }
  return undefined;
}

/**
 * WGSL of the item product over `words` (WGSL_WORDS) and a format's item decoder: R rows a
 * subgroup, tiles of T tokens, U items a lane loads before it sums any (U > 1 keeps more loads in
 * flight; a row's sum still adds its lane's items in order, so every R, T and U give the same
 * bits), the activations read where they are or, with `stage`, from workgroup memory. Every loop
 * over rows, tokens of a tile and vec4s of an item is written out with constant indices; only the
 * loops over items, stages and tiles run as loops.
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
  stage?: ItemStage,
): string {
  if (output === 'swiglu' && R % 2 !== 0) throw new Error('a swiglu item product takes whole pairs of rows per subgroup');
  const rows = (f: (r: number) => string) => unrolled(R, f);
  const invocations = stage?.invocations ?? WG;
  const uv = unitElems / 4;
  // Where vec4 k of item q's activations is for token t: o{q}_{k} is set per item, then offset per token.
  const xAt = stage ? (q: number, k: number, t: number) => `xs[o${q}_${k} + ${t * padded(stage.units * uv)}u]` : (q: number, k: number, t: number) => `xv[o${q}_${k} + ${t}u * cv]`;
  const offsets = (q: number) =>
    stage
      ? `      let xb${q} = (u${q} - s0) * ${uv}u;
${unrolled(8, (k) => `      let e${q}_${k} = xb${q} + item_x(i${q}, ${k}u) / 4u;\n      let o${q}_${k} = ${paddedAt(`e${q}_${k}`)};`)}`
      : `      let xb${q} = P.x_off / 4u + u${q} * ${uv}u + t0 * cv;
${unrolled(8, (k) => `      let o${q}_${k} = xb${q} + item_x(i${q}, ${k}u) / 4u;`)}`;
  // The lane's items from c (its first in [.., end)), U at a time, each decoded once for every row and summed for every token.
  const itemLoop = (first: string, end: string) => `    for (var c = ${first}; c < ${end}; c += ${U}u * sgs) {
${unrolled(
  U,
  (q) => `      let c${q} = c + ${q}u * sgs;
      let ok${q} = c${q} < ${end};
      let u${q} = c${q} / ${itemsPerUnit}u;
      let i${q} = c${q} % ${itemsPerUnit}u;
${rows((r) => `      var w${q}_${r} = array<vec4f, 8>();
      if (ok${q} && live${r}) { w${q}_${r} = item_w(rb${r} + u${q} * ${unitBytes}u, i${q}); }`)}`,
)}
${unrolled(
  U,
  (q) => `${offsets(q)}
${unrolled(
  T,
  (t) => `      if (ok${q} && ${t}u < nt) {
${unrolled(8, (k) => `        let x${k} = ${xAt(q, k, t)};`)}
${rows((r) => `        a${t}[${r}] += ${Array.from({ length: 8 }, (_, k) => `dot(w${q}_${r}[${k}], x${k})`).join(' + ')};`)}
      }`,
)}`,
)}
    }`;
  const stagedLoop = (s: ItemStage) => {
    const sp = padded(s.units * uv);
    return `    for (var s0 = 0u; s0 < nu; s0 += ${s.units}u) {
      let sv = min(${s.units}u, nu - s0) * ${uv}u;
      // The previous stage's reads are done before its vec4s are overwritten.
      workgroupBarrier();
      for (var v = li; v < ${T}u * sv; v += ${invocations}u) {
        let t = v / sv;
        let e = v - t * sv;
        if (t < nt) { xs[t * ${sp}u + ${paddedAt('e')}] = xv[P.x_off / 4u + (t0 + t) * cv + s0 * ${uv}u + e]; }
      }
      workgroupBarrier();
      // A stage holds whole subgroups' worth of items (stageShape), so it starts on lane 0's item.
      let stage_first = s0 * ${itemsPerUnit}u;
      let stage_end = stage_first + (sv / ${uv}u) * ${itemsPerUnit}u;
      if (r0 < P.rows) {
    ${itemLoop('stage_first + lane', 'stage_end').replace(/\n/g, '\n    ')}
      }
    }`;
  };
  return /* wgsl */ `
enable subgroups;
diagnostic(off, subgroup_uniformity);
struct Params { rows: u32, cols: u32, n: u32, row_bytes: u32, w_off: u32, x_off: u32, y_off: u32, y_stride: u32 }
@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> xv: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> P: Params;
${stage ? `var<workgroup> xs: array<vec4f, ${T * padded(stage.units * uv)}>;` : ''}
${words}
${items}
@compute @workgroup_size(${invocations})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32,
        @builtin(subgroup_size) sgs: u32, @builtin(subgroup_invocation_id) lane: u32) {
  let r0 = ((wg.x + wg.y * 32768u) * (${invocations}u / sgs) + li / sgs) * ${R}u;
${stage ? '  // Every invocation takes part in the copies and reaches the barriers, rows or not.' : '  if (r0 >= P.rows) { return; }'}
  let nu = P.cols / ${unitElems}u;
${stage ? '' : `  let ni = nu * ${itemsPerUnit}u;`}
  let cv = P.cols / 4u;
${rows((r) => `  let live${r} = r0 + ${r}u < P.rows;
  let rb${r} = P.w_off + (r0 + ${r}u) * P.row_bytes;`)}
  for (var t0 = 0u; t0 < P.n; t0 += ${T}u) {
    let nt = min(${T}u, P.n - t0);
${unrolled(T, (t) => `    var a${t} = array<f32, ${R}>();`)}
${stage ? stagedLoop(stage) : itemLoop('lane', 'ni')}
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
