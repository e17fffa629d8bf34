/**
 * The Mixture-of-Experts feed-forward block (llama.cpp's build_moe_ffn plus the shared experts the
 * families add after it): a router picks `used` of the layer's experts per token and weighs them;
 * each chosen expert is a SwiGLU FFN whose matrices are one slice of the layer's 3-D expert
 * tensors (ExpertBank, used in place, addressable expert by expert); the weighted outputs are
 * summed in the router's order; shared experts (one dense SwiGLU of their total width, optionally
 * behind Qwen2-MoE's sigmoid gate) are added after the routed sum.
 *
 * The expert products go through the kernels' ExpertBatch API: a token's activation is converted
 * once for the expert weights and shared by the gate and up products; tokens are grouped by expert
 * so each expert's weights are read once per step. Batches are made on a shard's first step and
 * shared by all its MoE layers; a step allocates nothing.
 *
 * A tensor-parallel rank (tensor-split.ts) holds a contiguous range of the routed experts and the
 * shared experts' hidden columns in proportion to its share. Every rank routes every token over all
 * the experts (the router is replicated), then computes only the (token, slot) pairs routed to the
 * experts it holds, each pair a row of its own (so a decode step reads only the held experts some
 * token chose), and adds weight x output into its token's row: the rank's output is a partial sum,
 * its pairs' share of the routed sum plus its columns' share of the shared experts (the Qwen2-MoE
 * gate scales every rank's share alike), which the group adds up.
 *
 * In an expert-parallel group the home rank holds the block whole but for the other ranks' routed
 * experts: it routes, computes the pairs routed to its own experts and the shared experts, and hands
 * the rest to its group as an ExpertDispatch (forwardSteps: sent right after routing, so the other
 * ranks compute while the home does, and collected after); an expert rank holds only its range of
 * the routed experts (no router) and computes the pairs of the tokens sent to it (computeRouted).
 */
import { GgmlType } from '../../gguf/ggml-types.js';
import { CairnError } from '../../util/errors.js';
import type { ExpertBatch, Kernels } from '../../kernels/api.js';
import { vecDotType } from '../../kernels/reference/quant/activations.js';
import { expertBatchBytes, takesFloatActivations } from '../../kernels/expert-batch-bytes.js';
import type { ExpertBank, Matrix, TensorSource } from '../tensor-source.js';
import { columnRange, expertRange, type Range } from '../tensor-split.js';
import type { SyntheticTensors } from '../synthetic-tensors.js';
import { DenseFfn, type DenseFfnWeights } from './dense-ffn.js';
import {
  MoeRouter,
  declareMoeRouter,
  synthesizeMoeRouter,
  type MoeRouterTensors,
  type MoeRouterWeights,
  type MoeRouting,
} from './moe-router.js';
import type { ExpertDispatch, FfnBlock, StepContext } from './types.js';
import type { Scratch, Workspace } from './workspace.js';

/**
 * The gated unit of each expert: `silu` is SwiGLU, silu(gate) * up (every family but gpt-oss);
 * `swiglu-oai` is gpt-oss's clamped variant (alpha 1.702, limit 7).
 */
export type MoeActivation = 'silu' | 'swiglu-oai';

/** gpt-oss's swiglu_oai constants, hard-coded in llama.cpp. */
export const SWIGLU_OAI = { alpha: 1.702, limit: 7.0 } as const;

/** The sizes and rules of one MoE block. */
export interface MoeFfnShape {
  readonly nEmbd: number;
  /** Hidden width of one routed expert. */
  readonly width: number;
  readonly routing: MoeRouting;
  readonly activation: MoeActivation;
  /** Total hidden width of the shared experts (0: none). */
  readonly sharedWidth: number;
  /** The shared experts' output is scaled by sigmoid(ffn_gate_inp_shexp · x) (Qwen2-MoE). */
  readonly sharedGated: boolean;
}

/** Which optional MoE tensors a family's files have, as llama.cpp loads them. */
export interface MoeFfnTensors {
  readonly router: MoeRouterTensors;
  /** The experts' gate tensor: always, or (llama only) when present, the unit being silu(up) without it. */
  readonly gate: 'required' | 'optional';
  /** Per-expert biases of the gate, up and down products (gpt-oss). */
  readonly expertBiases: boolean;
}

/** The weights of one MoE block. */
export interface MoeFfnWeights {
  /** Absent on an expert rank of an expert-parallel group: it computes pairs routed by its home. */
  readonly router?: MoeRouterWeights;
  readonly gate?: ExpertBank;
  readonly up: ExpertBank;
  readonly down: ExpertBank;
  /** experts x width (gate, up) and experts x nEmbd (down) biases. */
  readonly gateBias?: Float32Array;
  readonly upBias?: Float32Array;
  readonly downBias?: Float32Array;
  readonly shared?: DenseFfnWeights;
  /** The shared experts' gate vector (nEmbd). */
  readonly sharedGate?: Matrix;
  /**
   * The routed experts [start, end) a tensor-parallel rank holds: the banks and biases hold those
   * experts only (bank expert i is the layer's expert start + i), the shared experts a range of
   * their columns. Absent: all of them.
   */
  readonly experts?: Range;
  /** The other experts are held by the ranks of an expert-parallel group (this is its home). */
  readonly dispatch?: boolean;
}

/** llama.cpp's names of a layer's MoE tensors (under `blk.N.`). */
export const MOE_TENSORS = {
  gate: 'ffn_gate_exps',
  up: 'ffn_up_exps',
  down: 'ffn_down_exps',
  sharedGate: 'ffn_gate_inp_shexp.weight',
  shared: { gate: 'ffn_gate_shexp.weight', up: 'ffn_up_shexp.weight', down: 'ffn_down_shexp.weight' },
} as const;

/**
 * Declares an MoE block's tensors under `prefix` (llama.cpp's order: router, experts, shared
 * experts); a tensor-parallel rank's (`src.split`) range of the experts and of the shared columns.
 */
export function declareMoeFfn(src: TensorSource, prefix: string, s: MoeFfnShape, t: MoeFfnTensors): MoeFfnWeights {
  const E = s.routing.experts;
  const router = declareMoeRouter(src, prefix, s.nEmbd, E, t.router);
  const split = src.split ?? src.expertSplit;
  const routed = declareRoutedBanks(src, prefix, s, t, split ? expertRange(E, split) : undefined);
  let shared: DenseFfnWeights | undefined;
  let sharedGate: Matrix | undefined;
  if (s.sharedWidth > 0) {
    if (s.sharedGated) sharedGate = src.matrix(prefix + MOE_TENSORS.sharedGate, 1, s.nEmbd);
    const names = MOE_TENSORS.shared;
    if (src.split) {
      // As a dense FFN splits: rows of gate and up, columns of down.
      const cols = columnRange(s.sharedWidth, src.split);
      shared = {
        gate: src.matrixRows(prefix + names.gate, s.sharedWidth, s.nEmbd, cols),
        up: src.matrixRows(prefix + names.up, s.sharedWidth, s.nEmbd, cols),
        down: src.matrixColumns(prefix + names.down, s.nEmbd, s.sharedWidth, cols),
      };
    } else {
      shared = {
        gate: src.matrix(prefix + names.gate, s.sharedWidth, s.nEmbd),
        up: src.matrix(prefix + names.up, s.sharedWidth, s.nEmbd),
        down: src.matrix(prefix + names.down, s.nEmbd, s.sharedWidth),
      };
    }
  }
  return { router, ...routed, shared, sharedGate, ...(src.expertSplit ? { dispatch: true } : {}) };
}

/**
 * Declares what an expert rank of an expert-parallel group (`src.expertSplit`) holds of an MoE
 * block: its range of the routed experts and their biases, no router, no shared experts.
 */
export function declareRoutedExperts(src: TensorSource, prefix: string, s: MoeFfnShape, t: MoeFfnTensors): MoeFfnWeights {
  if (!src.expertSplit) throw new CairnError('BAD_ARGUMENT', 'routed experts alone are declared for an expert-parallel rank');
  return declareRoutedBanks(src, prefix, s, t, expertRange(s.routing.experts, src.expertSplit));
}

/** The routed experts' banks and biases: experts [start, end) of `range`, or all of them. */
function declareRoutedBanks(
  src: TensorSource,
  prefix: string,
  s: MoeFfnShape,
  t: MoeFfnTensors,
  range: Range | undefined,
): Pick<MoeFfnWeights, 'gate' | 'up' | 'down' | 'gateBias' | 'upBias' | 'downBias' | 'experts'> {
  const { experts: E, used: k } = s.routing;
  const bank = (name: string, rows: number, cols: number) =>
    range ? src.expertsRange(`${prefix}${name}.weight`, E, rows, cols, k, range) : src.experts(`${prefix}${name}.weight`, E, rows, cols, k);
  const gate =
    t.gate === 'required' || src.has(`${prefix}${MOE_TENSORS.gate}.weight`) ? bank(MOE_TENSORS.gate, s.width, s.nEmbd) : undefined;
  const down = bank(MOE_TENSORS.down, s.nEmbd, s.width);
  const up = bank(MOE_TENSORS.up, s.width, s.nEmbd);
  const bias = (name: string, rows: number) =>
    !t.expertBiases
      ? undefined
      : range
        ? src.vectorRange(`${prefix}${name}.bias`, E * rows, [range[0] * rows, range[1] * rows], true)
        : src.vector(`${prefix}${name}.bias`, E * rows);
  const gateBias = gate ? bias(MOE_TENSORS.gate, s.width) : undefined;
  const upBias = bias(MOE_TENSORS.up, s.width);
  const downBias = bias(MOE_TENSORS.down, s.nEmbd);
  return { gate, up, down, gateBias, upBias, downBias, experts: range };
}

/** Writes an MoE block's tensors into a synthetic model (every expert's gate; biases and shared experts as the shape says). */
export function synthesizeMoeFfn(out: SyntheticTensors, prefix: string, layer: number, s: MoeFfnShape, t: MoeFfnTensors): void {
  const { nEmbd: e, width: w } = s;
  const E = s.routing.experts;
  synthesizeMoeRouter(out, prefix, e, E, t.router);
  out.experts(`${prefix}${MOE_TENSORS.gate}.weight`, E, w, e, 1 / Math.sqrt(e), layer);
  out.experts(`${prefix}${MOE_TENSORS.down}.weight`, E, e, w, 1 / Math.sqrt(w), layer);
  out.experts(`${prefix}${MOE_TENSORS.up}.weight`, E, w, e, 1 / Math.sqrt(e), layer);
  if (t.expertBiases) {
    out.f32(`${prefix}${MOE_TENSORS.gate}.bias`, [w, E], 0.1);
    out.f32(`${prefix}${MOE_TENSORS.up}.bias`, [w, E], 0.1);
    out.f32(`${prefix}${MOE_TENSORS.down}.bias`, [e, E], 0.1);
  }
  if (s.sharedWidth > 0) {
    if (s.sharedGated) out.f32(prefix + MOE_TENSORS.sharedGate, [e], 1 / Math.sqrt(e));
    out.matrix(prefix + MOE_TENSORS.shared.gate, s.sharedWidth, e, 1 / Math.sqrt(e), layer);
    out.matrix(prefix + MOE_TENSORS.shared.up, s.sharedWidth, e, 1 / Math.sqrt(e), layer);
    out.matrix(prefix + MOE_TENSORS.shared.down, e, s.sharedWidth, 1 / Math.sqrt(s.sharedWidth), layer);
  }
}

/**
 * The expert batches of one shard, shared by its MoE layers (they run one after the other): one
 * per kernels object, activation class (float or quantized), experts, used, columns and rows (the
 * shard's batch tokens, or a tensor-parallel rank's pairs: `used` rows of one expert each per token).
 */
class ExpertBatches {
  private readonly batches = new Map<string, ExpertBatch>();

  get(kernels: Kernels, wtype: GgmlType, experts: number, used: number, cols: number, tokens: number): ExpertBatch {
    const float = takesFloatActivations(wtype);
    const key = batchKey(wtype, experts, used, cols, tokens);
    let b = this.batches.get(key);
    if (!b) this.batches.set(key, (b = kernels.createExpertBatch(float ? GgmlType.F32 : wtype, experts, used, cols, tokens)));
    return b;
  }
}

/** A batch's key among a shard's: its activation class (float or quantized), experts, used, columns and tokens. */
function batchKey(wtype: GgmlType, experts: number, used: number, cols: number, tokens: number): string {
  return `moe/${takesFloatActivations(wtype) ? 'f' : 'q'}/${experts}/${used}/${cols}/${tokens}`;
}

/** Counts a batch the block will ask its shard for in the shard's memory (a dry build allocates nothing). */
function reserveBatch(ws: Workspace, wtype: GgmlType, experts: number, used: number, cols: number, tokens: number): void {
  ws.reserveAside(batchKey(wtype, experts, used, cols, tokens), expertBatchBytes(wtype, experts, used, cols, tokens));
}

const SHARD_BATCHES = new WeakMap<Workspace, WeakMap<Kernels, ExpertBatches>>();

function shardBatches(ws: Workspace, kernels: Kernels): ExpertBatches {
  let byKernels = SHARD_BATCHES.get(ws);
  if (!byKernels) SHARD_BATCHES.set(ws, (byKernels = new WeakMap()));
  let b = byKernels.get(kernels);
  if (!b) byKernels.set(kernels, (b = new ExpertBatches()));
  return b;
}

/** The batches one MoE block uses, resolved on its first step with a given kernels object. */
interface ResolvedBatches {
  readonly kernels: Kernels;
  readonly gateUp: ExpertBatch;
  /**
   * The gate's batch: the up product's (prepared again, after the up product, when the gate's
   * weights take another activation form), or one of the other class (float or quantized).
   */
  readonly gate: ExpertBatch;
  readonly down: ExpertBatch;
}

/** f32 silu as ggml's scalar path computes it: x / (1 + expf(-x)). */
function silu(x: number): number {
  return Math.fround(x / Math.fround(1 + Math.fround(Math.exp(-x))));
}

/**
 * A tensor-parallel rank's experts and the scratch of the (token, slot) pairs routed to them: each
 * pair's expert within the rank's bank, its token, its weight and (a row per pair) its token's input.
 */
interface LocalExperts {
  /** The layer's id of the rank's first expert, and how many it holds. */
  readonly first: number;
  readonly held: number;
  readonly ids: Scratch;
  readonly tokens: Scratch;
  readonly weights: Scratch;
  readonly input: Scratch;
}

/** The shape of a block's expert batches: the whole layer's per token, or a rank's per pair. */
interface BatchShape {
  readonly experts: number;
  readonly used: number;
  /** Most rows one preparation holds. */
  readonly tokens: number;
}

/** The forward step of an MoE block. */
export class MoeFfn implements FfnBlock {
  /** Absent on an expert rank (computeRouted only). */
  readonly router?: MoeRouter;
  private readonly ids: Scratch;
  private readonly weights: Scratch;
  private readonly gateOut: Scratch;
  private readonly upOut: Scratch;
  private readonly downOut: Scratch;
  private readonly sharedOut?: Scratch;
  private readonly sharedGateOut?: Scratch;
  private readonly sharedFfn?: DenseFfn;
  private readonly local?: LocalExperts;
  private readonly batchShape: BatchShape;
  private batches?: ResolvedBatches;
  /** The gate and up products take the same activation form: one preparation serves both. */
  private readonly gateSharesUp: boolean;
  /** An expert-parallel home: the other ranks' outputs. */
  private readonly remote?: Scratch;

  constructor(
    private readonly s: MoeFfnShape,
    private readonly w: MoeFfnWeights,
    private readonly ws: Workspace,
  ) {
    const { used: k } = s.routing;
    if (w.router) this.router = new MoeRouter(s.routing, w.router, ws);
    if (w.dispatch) this.remote = ws.buffer('moe.remote', s.nEmbd);
    this.ids = ws.buffer('moe.ids', k);
    this.weights = ws.buffer('moe.weights', k);
    // A rank's pairs are at most the tokens' k slots: these hold them as well.
    this.gateOut = ws.buffer('moe.gate', k * s.width);
    this.upOut = ws.buffer('moe.up', k * s.width);
    this.downOut = ws.buffer('moe.down', k * s.nEmbd);
    this.gateSharesUp = !w.gate || vecDotType(w.gate.type) === vecDotType(w.up.type);
    if (w.experts) {
      const [first, end] = w.experts;
      this.local = {
        first,
        held: end - first,
        ids: ws.buffer('moe.pair.ids', k),
        tokens: ws.buffer('moe.pair.tokens', k),
        weights: ws.buffer('moe.pair.weights', k),
        input: ws.buffer('moe.pair.in', k * s.nEmbd),
      };
      // Each pair is a row of its own, routed to one of the rank's experts.
      this.batchShape = { experts: end - first, used: 1, tokens: ws.maxBatch * k };
    } else {
      this.batchShape = { experts: s.routing.experts, used: k, tokens: ws.maxBatch };
    }
    const { experts, used, tokens } = this.batchShape;
    reserveBatch(ws, w.up.type, experts, used, s.nEmbd, tokens);
    if (w.gate) reserveBatch(ws, w.gate.type, experts, used, s.nEmbd, tokens);
    reserveBatch(ws, w.down.type, experts, used, s.width, tokens);
    if (w.shared) {
      this.sharedFfn = new DenseFfn(w.shared, ws);
      this.sharedOut = ws.buffer('moe.shared', s.nEmbd);
      if (w.sharedGate) this.sharedGateOut = ws.buffer('moe.shared.gate', 1);
    }
  }

  /** True on an expert-parallel home: run it with forwardSteps(). */
  get dispatches(): boolean {
    return this.remote !== undefined;
  }

  forward(h: Float32Array, out: Float32Array, step: StepContext): void {
    if (this.remote) throw new CairnError('BAD_ARGUMENT', 'an expert-parallel home runs with its group (forwardSteps)');
    const { ids, weights } = this.route(h, step);
    this.computeHeld(h, ids, weights, out, step);
  }

  /**
   * An expert-parallel home's step: route, yield the dispatch (`send`) before computing this rank's
   * experts and the shared ones, yield it again (`collect`) and add the other ranks' outputs
   * (out = own pairs + shared + theirs).
   */
  *forwardSteps(h: Float32Array, out: Float32Array, step: StepContext): Generator<ExpertDispatch, void, void> {
    if (!this.remote) return this.forward(h, out, step);
    const { n } = step;
    const { ids, weights } = this.route(h, step);
    const result = this.remote.rows(n);
    result.fill(0);
    const d: ExpertDispatch = { kind: 'experts', phase: 'send', layer: step.layer, n, input: h, ids, weights, result };
    yield d;
    this.computeHeld(h, ids, weights, out, step);
    d.phase = 'collect';
    yield d;
    step.kernels.add(out, d.result, n * this.s.nEmbd, out);
  }

  /** Each token's chosen experts and weights (n x used, in scratch). */
  private route(h: Float32Array, step: StepContext): { ids: Int32Array; weights: Float32Array } {
    if (!this.router) throw new CairnError('BAD_ARGUMENT', 'an expert rank computes only the tokens routed to it (computeRouted)');
    const { kernels, n } = step;
    const ids = this.ids.ints(n);
    const weights = this.weights.rows(n);
    this.router.route(h, n, kernels, ids, weights);
    return { ids, weights };
  }

  /** out = the routed experts this block holds (all, or a rank's pairs) for the routing given, plus the shared experts. */
  private computeHeld(h: Float32Array, ids: Int32Array, weights: Float32Array, out: Float32Array, step: StepContext): void {
    const { kernels, n } = step;
    const { s } = this;
    const k = s.routing.used;
    if (this.local) this.localExperts(h, ids, weights, out, kernels, n);
    else {
      const y = this.runExperts(kernels, h, n, ids, n * k, n);
      kernels.moeCombine(y, weights, n, k, s.nEmbd, out);
    }
    if (this.sharedFfn) this.addShared(h, out, step);
  }

  /** The experts this block holds: [first, end) of the layer's. */
  get heldExperts(): Range {
    return this.w.experts ?? [0, this.s.routing.experts];
  }

  /**
   * An expert rank's work: out (n x nEmbd) = for each of the n tokens of h, Σ weight x output over
   * its chosen experts (ids, weights: n x used) that this block holds; zero rows where it holds none.
   * Ids of experts held elsewhere (or of none) are passed over.
   */
  computeRouted(h: Float32Array, n: number, ids: Int32Array, weights: Float32Array, out: Float32Array, kernels: Kernels): void {
    if (!this.local) throw new CairnError('BAD_ARGUMENT', 'computeRouted runs on a rank that holds a range of the experts');
    this.localExperts(h, ids, weights, out, kernels, n);
  }

  /**
   * The expert products of `rows` prepared rows of x (`pairs` (row, slot) pairs routed by `ids`):
   * up, gate, the gated unit, down. Returns the pairs' outputs (pairs x nEmbd, in pair order) in
   * scratch sized for n tokens.
   */
  private runExperts(kernels: Kernels, x: Float32Array, rows: number, ids: Int32Array, pairs: number, n: number): Float32Array {
    const { s, w } = this;
    const b = this.resolve(kernels);
    const u = this.upOut.rows(n);
    kernels.prepareExperts(b.gateUp, w.up.type, x, rows, ids, 'token');
    kernels.expertMatmul(b.gateUp, w.up.data, w.up.type, s.width, u, w.upBias);
    const act = this.gateOut.rows(n);
    const len = pairs * s.width;
    if (w.gate) {
      if (!this.gateSharesUp) kernels.prepareExperts(b.gate, w.gate.type, x, rows, ids, 'token');
      kernels.expertMatmul(b.gate, w.gate.data, w.gate.type, s.width, act, w.gateBias);
      if (s.activation === 'silu') kernels.swiglu(act, u, len, act);
      else kernels.swigluOai(act, u, len, SWIGLU_OAI.alpha, SWIGLU_OAI.limit, act);
    } else {
      // llama without a gate tensor: the unit is silu(up).
      for (let i = 0; i < len; i++) act[i] = silu(u[i]);
    }
    const y = this.downOut.rows(n);
    kernels.prepareExperts(b.down, w.down.type, act, rows, ids, 'slot');
    kernels.expertMatmul(b.down, w.down.data, w.down.type, s.nEmbd, y, w.downBias);
    return y;
  }

  /**
   * A tensor-parallel rank's share of the routed sum: the (token, slot) pairs routed to its experts,
   * in token then slot order, each its own row; out[t] = Σ weight x output over token t's pairs
   * (each product rounded, then added, as moeCombine does), zero for a token with none.
   */
  private localExperts(h: Float32Array, ids: Int32Array, weights: Float32Array, out: Float32Array, kernels: Kernels, n: number): void {
    const d = this.s.nEmbd;
    const k = this.s.routing.used;
    const L = this.local!;
    const pairIds = L.ids.ints(n);
    const tokens = L.tokens.ints(n);
    const pairWeights = L.weights.rows(n);
    const x = L.input.rows(n);
    let m = 0;
    for (let i = 0; i < n * k; i++) {
      const e = ids[i] - L.first;
      if (e < 0 || e >= L.held) continue;
      const t = (i / k) | 0;
      pairIds[m] = e;
      tokens[m] = t;
      pairWeights[m] = weights[i];
      for (let j = 0, from = t * d, to = m * d; j < d; j++) x[to + j] = h[from + j];
      m++;
    }
    out.fill(0, 0, n * d);
    if (m === 0) return;
    const y = this.runExperts(kernels, x, m, pairIds, m, n);
    for (let p = 0; p < m; p++) {
      const wt = pairWeights[p];
      for (let j = 0, o = tokens[p] * d, r = p * d; j < d; j++) out[o + j] += Math.fround(wt * y[r + j]);
    }
  }

  /** out += shared(h), or out += shared(h) * sigmoid(gate · h) per token (llama.cpp: silu(g) / g). */
  private addShared(h: Float32Array, out: Float32Array, step: StepContext): void {
    const { kernels, n } = step;
    const d = this.s.nEmbd;
    const sh = this.sharedOut!.rows(n);
    this.sharedFfn!.forward(h, sh, step);
    const gw = this.w.sharedGate;
    if (!gw) {
      kernels.add(out, sh, n * d, out);
      return;
    }
    const g = this.sharedGateOut!.rows(n);
    kernels.matmul(gw.data, gw.type, 1, d, h, n, g);
    for (let t = 0; t < n; t++) {
      const gate = Math.fround(silu(g[t]) / g[t]);
      for (let i = t * d; i < (t + 1) * d; i++) out[i] = Math.fround(out[i] + Math.fround(sh[i] * gate));
    }
  }

  private resolve(kernels: Kernels): ResolvedBatches {
    const b = this.batches;
    if (b && b.kernels === kernels) return b;
    const { s, w } = this;
    const { experts, used, tokens } = this.batchShape;
    const shard = shardBatches(this.ws, kernels);
    const gateUp = shard.get(kernels, w.up.type, experts, used, s.nEmbd, tokens);
    const gate = w.gate ? shard.get(kernels, w.gate.type, experts, used, s.nEmbd, tokens) : gateUp;
    const down = shard.get(kernels, w.down.type, experts, used, s.width, tokens);
    return (this.batches = { kernels, gateUp, gate, down });
  }
}
