/**
 * The GPU's Mixture-of-Experts kernels over device tensors (WGSL in wgsl-experts.ts), recorded into
 * the kernels' pending command encoder like every other kernel: routing, expert products of
 * (token, slot) pairs, the weighted sum, the shared experts' gate, the gated units, and a strided
 * row copy. Arguments are checked here, before anything reaches the device.
 */
import { CairnError } from '../../util/errors.js';
import { ggmlTypeName, type GgmlType } from '../../gguf/ggml-types.js';
import type { GpuTensor, WebGpuKernels } from './gpu-kernels.js';
import { gpuWeightFormat, WGSL_BYTES, type GpuWeightFormat } from './wgsl-weights.js';
import { WG } from './wgsl-ops.js';
import { COPY_ROWS, GATED_ADD, GROUP_GRIDS, MOE_COMBINE, MOE_GROUP, MOE_ROUTE, PAIR_TILE, ROUTE_MAX_GROUPS, SILU_IN_PLACE, SWIGLU_OAI_IN_PLACE, matmulIdGroupedWgsl, matmulIdWgsl } from './wgsl-experts.js';

function bad(message: string): never {
  throw new CairnError('BAD_ARGUMENT', message);
}

function count(name: string, v: number): void {
  if (!(Number.isInteger(v) && v >= 0 && v < 2 ** 31)) bad(`${name} must be a non-negative integer below 2^31 (got ${v})`);
}

function need(t: GpuTensor, bytes: number, what: string): void {
  if (t.bytes < bytes) bad(`${what} holds ${t.bytes} bytes, less than the ${bytes} needed`);
}

const threads = (n: number) => Math.ceil(n / WG);
/** Workgroups one grid dimension takes (WebGPU's default limit). */
const MAX_GRID = 65535;
const f32Bits = (v: number) => new Uint32Array(new Float32Array([v]).buffer)[0];

/** The router's rule as the GPU takes it (moe-router.ts's MoeRouting). */
export interface GpuRouting {
  readonly experts: number;
  readonly used: number;
  readonly gating: 'softmax' | 'sigmoid' | 'softmax-selected';
  readonly normalize: boolean;
  readonly scale: number;
  readonly groups: number;
  readonly groupsUsed: number;
}

/** Throws MODEL_UNSUPPORTED where the GPU router cannot follow the rule. */
export function checkGpuRouting(r: GpuRouting): void {
  if (r.groups > ROUTE_MAX_GROUPS) throw new CairnError('MODEL_UNSUPPORTED', `routing over ${r.groups} expert groups does not run on the GPU (at most ${ROUTE_MAX_GROUPS}); use --backend cpu`);
}

/**
 * Routes n tokens from their router logits (n x experts, overwritten with the probabilities):
 * ids (u32) and weights (f32) get n x used entries, token t's at t x used, in summation order.
 * `selectionBias` (experts) is added to the scores that choose, not to the weights.
 */
export function moeRoute(gpu: WebGpuKernels, logits: GpuTensor, n: number, r: GpuRouting, selectionBias: GpuTensor | undefined, ids: GpuTensor, weights: GpuTensor): void {
  count('n', n);
  if (!(Number.isInteger(r.experts) && r.experts >= 1 && Number.isInteger(r.used) && r.used >= 1 && r.used <= r.experts)) bad(`routing ${r.used} of ${r.experts} experts`);
  checkGpuRouting(r);
  if (r.groups > 1 && !(r.experts % r.groups === 0 && r.groupsUsed >= 1 && r.groupsUsed <= r.groups)) bad(`${r.groupsUsed} of ${r.groups} expert groups over ${r.experts} experts`);
  need(logits, n * r.experts * 4, 'logits');
  need(ids, n * r.used * 4, 'ids');
  need(weights, n * r.used * 4, 'weights');
  if (selectionBias) need(selectionBias, r.experts * 4, 'the selection bias');
  if (n === 0) return;
  const gating = r.gating === 'softmax' ? 0 : r.gating === 'sigmoid' ? 1 : 2;
  const params = new Uint32Array([n, r.experts, r.used, gating, r.normalize ? 1 : 0, f32Bits(r.scale), r.groups > 1 ? r.groups : 0, r.groupsUsed, selectionBias ? 1 : 0, 0, 0, 0]);
  gpu.run('moe-route', () => MOE_ROUTE, [logits, selectionBias ?? gpu.empty, ids, weights, params], threads(n));
}

/** A bank of experts (or one part of one) on the device: experts [first, first + count) in their file layout. */
export interface GpuBankPart {
  readonly t: GpuTensor;
  readonly first: number;
  readonly count: number;
}

/** Where a matmul-id finds each pair's input and puts its output (f32 elements). */
export interface MatmulIdLayout {
  /** Pair p reads row (p / xDiv) of x, rows xStride apart from xOffset. */
  readonly xDiv: number;
  readonly xStride: number;
  readonly xOffset?: number;
  /** Pair p writes row p of y, rows yStride apart from yOffset (default rows, 0). */
  readonly yStride?: number;
  readonly yOffset?: number;
}

/**
 * Checks an expert product's arguments (both kinds: pair by pair, grouped): the weight type, counts,
 * strides and every tensor's size. Returns the type's format, the row and expert sizes and the
 * layout with its defaults, or undefined where there is nothing to compute.
 */
function checkIdProduct(
  what: string,
  part: GpuBankPart,
  wtype: GgmlType,
  rows: number,
  cols: number,
  x: GpuTensor,
  pairs: number,
  y: GpuTensor,
  at: MatmulIdLayout,
  bias: GpuTensor | undefined,
): { f: GpuWeightFormat; rowBytes: number; expertBytes: number; at: Required<MatmulIdLayout> } | undefined {
  const f = gpuWeightFormat(wtype);
  if (!f) bad(`the GPU kernels do not read ${ggmlTypeName(wtype)} weights yet`);
  const { xDiv, xStride, xOffset = 0, yStride = rows, yOffset = 0 } = at;
  for (const [k, v] of [['rows', rows], ['cols', cols], ['pairs', pairs], ['xDiv', xDiv], ['xStride', xStride], ['xOffset', xOffset], ['yStride', yStride], ['yOffset', yOffset], ['first', part.first], ['count', part.count]] as const) count(k, v);
  if (cols % f.blockElems !== 0) bad(`cols ${cols} is not a multiple of ${f.blockElems} (a ${ggmlTypeName(wtype)} block)`);
  if (xDiv < 1 || xStride < cols || yStride < rows) bad(`${what}: a row stride below its row, or xDiv 0`);
  const rowBytes = (cols / f.blockElems) * f.blockBytes;
  const expertBytes = rows * rowBytes;
  need(part.t, part.count * expertBytes, 'the expert bank');
  if (pairs === 0 || rows === 0) return undefined;
  need(x, (xOffset + Math.floor((pairs - 1) / xDiv) * xStride + cols) * 4, 'x');
  need(y, (yOffset + (pairs - 1) * yStride + rows) * 4, 'y');
  if (bias) need(bias, (part.first + part.count) * rows * 4, 'the expert biases');
  return { f, rowBytes, expertBytes, at: { xDiv, xStride, xOffset, yStride, yOffset } };
}

/**
 * Expert products of `pairs` (token, slot) pairs: y[p] = W[ids[p]] x[p / xDiv] (+ bias[ids[p]])
 * for the pairs whose expert the part holds; W is rows x cols of wtype per expert. `bias` holds
 * every expert's rows (experts x rows, by the layer's expert id).
 */
export function matmulId(
  gpu: WebGpuKernels,
  part: GpuBankPart,
  wtype: GgmlType,
  rows: number,
  cols: number,
  x: GpuTensor,
  pairs: number,
  ids: GpuTensor,
  y: GpuTensor,
  at: MatmulIdLayout,
  bias?: GpuTensor,
): void {
  const c = checkIdProduct('matmulId', part, wtype, rows, cols, x, pairs, y, at, bias);
  if (!c) return;
  const { f, rowBytes, expertBytes } = c;
  const { xDiv, xStride, xOffset, yStride, yOffset } = c.at;
  need(ids, pairs * 4, 'ids');
  const sg = gpu.gpu.subgroups;
  const perGroup = sg ? WG / gpu.gpu.subgroupMaxSize : 1;
  const groups = Math.ceil(rows / perGroup);
  if (groups > MAX_GRID) bad(`${rows} rows per expert are more than one product takes`);
  const key = `matmul-id-${sg ? 'sg-' : ''}${wtype}`;
  // A grid dimension holds at most MAX_GRID workgroups: more pairs go in several dispatches.
  for (let p0 = 0; p0 < pairs; p0 += MAX_GRID) {
    const params = new Uint32Array([rows, cols, pairs, rowBytes, expertBytes, part.first, part.count, xOffset, xDiv, xStride, yOffset, yStride, bias ? 1 : 0, p0, 0, 0]);
    gpu.run(key, () => matmulIdWgsl(WGSL_BYTES, f.wgsl, f.blockElems, f.blockBytes, sg), [part.t, x, y, ids, bias ?? gpu.empty, params], [groups, Math.min(MAX_GRID, pairs - p0)]);
  }
}

/** A step's pairs grouped by expert (moeGroup): the pair indices expert by expert, and the offsets. */
export interface PairGroups {
  readonly experts: number;
  readonly pairs: number;
  /** pairs u32: pair indices, expert by expert. */
  readonly sorted: GpuTensor;
  /** 2 x (experts + 1) u32: each expert's first pair in `sorted`, then its first tile. */
  readonly meta: GpuTensor;
  /** Workgroup counts of the grouped products (an indirect tensor), one triple per entry of rowGroups. */
  readonly args: GpuTensor;
  readonly rowGroups: readonly number[];
}

/** Bytes of a PairGroups' indirect arguments. */
export const PAIR_GROUPS_ARGS_BYTES = GROUP_GRIDS * 12;

/** Workgroups along the rows of a grouped product of `rows` rows (a subgroup a row). */
export function groupedRowGroups(gpu: WebGpuKernels, rows: number): number {
  return Math.ceil(rows / (WG / gpu.gpu.subgroupMaxSize));
}

/** u32 words of a PairGroups' meta for `experts` experts. */
export function pairGroupsMetaWords(experts: number): number {
  return 2 * (experts + 1);
}

/** Whether the grouped product runs here: subgroups, and a four-weight decoder for the type. */
export function groupedProducts(gpu: WebGpuKernels, wtype: GgmlType): boolean {
  return gpu.gpu.subgroups && gpuWeightFormat(wtype)?.w4 !== undefined;
}

/**
 * Groups `pairs` pairs by their expert (ids: pairs u32 below `experts`) into `sorted` and `meta`, and
 * writes into `args` (an indirect tensor) the grids of the grouped products to follow: one for each
 * of `rows` (the row counts of their weights, at most GROUP_GRIDS different).
 */
export function moeGroup(gpu: WebGpuKernels, ids: GpuTensor, pairs: number, experts: number, sorted: GpuTensor, meta: GpuTensor, args: GpuTensor, rows: readonly number[]): PairGroups {
  count('pairs', pairs);
  if (!(Number.isInteger(experts) && experts >= 1 && experts <= 4096)) bad(`${experts} experts to group by`);
  need(ids, pairs * 4, 'ids');
  need(sorted, pairs * 4, 'sorted');
  need(meta, pairGroupsMetaWords(experts) * 4, 'meta');
  need(args, PAIR_GROUPS_ARGS_BYTES, 'args');
  const rowGroups = [...new Set(rows.map((r) => groupedRowGroups(gpu, r)))];
  if (rowGroups.length > GROUP_GRIDS || rowGroups.some((g) => !(g >= 1 && g <= MAX_GRID))) bad(`grouped products of ${rows.join(', ')} rows`);
  // Every expert's last tile may be partial: at most pairs / PAIR_TILE + experts tiles.
  if (Math.floor(pairs / PAIR_TILE) + experts > MAX_GRID) bad(`${pairs} pairs over ${experts} experts are more tiles than one product takes`);
  const grids = [0, 0, 0, 0].map((_, i) => rowGroups[i] ?? 0);
  gpu.run('moe-group', () => MOE_GROUP, [ids, sorted, meta, args, new Uint32Array([pairs, experts, rowGroups.length, 0, ...grids])], 1);
  return { experts, pairs, sorted, meta, args, rowGroups };
}

/**
 * The expert products over grouped pairs: as matmulId, each tile of up to PAIR_TILE pairs of one
 * expert reading that expert's rows once (needs groupedProducts()).
 */
export function matmulIdGrouped(
  gpu: WebGpuKernels,
  part: GpuBankPart,
  wtype: GgmlType,
  rows: number,
  cols: number,
  x: GpuTensor,
  groups: PairGroups,
  y: GpuTensor,
  at: MatmulIdLayout,
  bias?: GpuTensor,
): void {
  if (!gpu.gpu.subgroups || !gpuWeightFormat(wtype)?.w4) bad(`the grouped expert product of ${ggmlTypeName(wtype)} weights needs subgroups and a four-weight decoder`);
  const { pairs, experts } = groups;
  if (part.first + part.count > experts) bad(`experts ${part.first} to ${part.first + part.count} of ${experts}`);
  const c = checkIdProduct('matmulIdGrouped', part, wtype, rows, cols, x, pairs, y, at, bias);
  if (!c) return;
  const { f, rowBytes, expertBytes } = c;
  const { xDiv, xStride, xOffset, yStride, yOffset } = c.at;
  const grid = groups.rowGroups.indexOf(groupedRowGroups(gpu, rows));
  if (grid < 0) bad(`the pairs were grouped for products of other row counts than ${rows}`);
  const params = new Uint32Array([rows, cols, experts, rowBytes, expertBytes, part.first, part.count, xOffset, xDiv, xStride, yOffset, yStride, bias ? 1 : 0, 0, 0, 0]);
  gpu.runIndirect(`matmul-id-grouped-${wtype}`, () => matmulIdGroupedWgsl(WGSL_BYTES, f.w4!, f.blockElems, f.blockBytes), [part.t, x, y, groups.sorted, groups.meta, bias ?? gpu.empty, params], groups.args, grid * 12);
}

/** out[t] = Σ_j weights[t, j] x y[t x used + j] over n tokens of dim, slots in order (kernels' moeCombine). */
export function moeCombine(gpu: WebGpuKernels, y: GpuTensor, weights: GpuTensor, n: number, used: number, dim: number, out: GpuTensor): void {
  count('n', n);
  count('used', used);
  count('dim', dim);
  need(y, n * used * dim * 4, 'y');
  need(weights, n * used * 4, 'weights');
  need(out, n * dim * 4, 'out');
  if (out.buffer === y.buffer || out.buffer === weights.buffer) bad('moeCombine writes into a tensor of its own');
  if (n * dim === 0) return;
  gpu.run('moe-combine', () => MOE_COMBINE, [y, weights, out, new Uint32Array([n, used, dim, 0])], threads(n * dim));
}

/** out[t] += sh[t] x silu(g[t]) / g[t] for n rows of dim (Qwen2-MoE's gated shared experts). */
export function gatedAdd(gpu: WebGpuKernels, out: GpuTensor, sh: GpuTensor, g: GpuTensor, n: number, dim: number): void {
  count('n', n);
  count('dim', dim);
  need(out, n * dim * 4, 'out');
  need(sh, n * dim * 4, 'the shared output');
  need(g, n * 4, 'the gate');
  if (n * dim === 0) return;
  gpu.run('gated-add', () => GATED_ADD, [out, sh, g, new Uint32Array([n, dim, 0, 0])], threads(n * dim));
}

/** x[i] = silu(x[i]) for i < n. */
export function siluInPlace(gpu: WebGpuKernels, x: GpuTensor, n: number): void {
  count('n', n);
  need(x, n * 4, 'x');
  if (n === 0) return;
  gpu.run('silu-in-place', () => SILU_IN_PLACE, [x, new Uint32Array([n, 0, 0, 0])], threads(n));
}

/** gate[i] = swiglu_oai(gate[i], up[i]) for i < n (the CPU's swigluOai, in place). */
export function swigluOaiInPlace(gpu: WebGpuKernels, gate: GpuTensor, up: GpuTensor, n: number, alpha: number, limit: number): void {
  count('n', n);
  need(gate, n * 4, 'gate');
  need(up, n * 4, 'up');
  if (gate.buffer === up.buffer) bad('swigluOai: gate and up must be different tensors');
  if (n === 0) return;
  gpu.run('swiglu-oai', () => SWIGLU_OAI_IN_PLACE, [gate, up, new Uint32Array([n, f32Bits(alpha), f32Bits(limit), 0])], threads(n));
}

/** dst[dOffset + i x dStride + j] = src[sOffset + i x sStride + j] for i < rows, j < len (f32 elements). */
export function copyRows(gpu: WebGpuKernels, src: GpuTensor, sOffset: number, sStride: number, dst: GpuTensor, dOffset: number, dStride: number, rows: number, len: number): void {
  for (const [k, v] of [['sOffset', sOffset], ['sStride', sStride], ['dOffset', dOffset], ['dStride', dStride], ['rows', rows], ['len', len]] as const) count(k, v);
  if (rows * len === 0) return;
  if (src.buffer === dst.buffer) bad('copyRows copies between two tensors');
  need(src, (sOffset + (rows - 1) * sStride + len) * 4, 'src');
  need(dst, (dOffset + (rows - 1) * dStride + len) * 4, 'dst');
  gpu.run('copy-rows', () => COPY_ROWS, [src, dst, new Uint32Array([rows, len, sOffset, sStride, dOffset, dStride, 0, 0])], threads(rows * len));
}
