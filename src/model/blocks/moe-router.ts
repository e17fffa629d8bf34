/**
 * The router of a Mixture-of-Experts layer, as llama.cpp's build_moe_ffn does it: router logits
 * (`ffn_gate_inp`, plus a bias in gpt-oss), probabilities by softmax or sigmoid (or, for gpt-oss,
 * the raw logits, softmaxed over the chosen), selection scores with DeepSeek-V3's score-correction
 * bias (`exp_probs_b`: selection only, the weights stay unbiased), group-limited selection (groups
 * ranked by the sum of their two best scores, the rest masked), the top k in llama.cpp's order
 * (ties included: expert-sort.ts), and the weights: normalized by their f32 sum clamped at the
 * smallest normal f16, and scaled. All f32 arithmetic is rounded as ggml rounds it.
 */
import { CairnError } from '../../util/errors.js';
import type { Kernels } from '../../kernels/api.js';
import type { Matrix, TensorSource } from '../tensor-source.js';
import type { SyntheticTensors } from '../synthetic-tensors.js';
import { TopKScratch, topKDescending } from './expert-sort.js';
import { addRowBias } from './linear.js';
import type { Scratch, Workspace } from './workspace.js';

/**
 * How router logits become expert probabilities: `softmax` over all experts (Mixtral, Qwen,
 * DeepSeek V2), `sigmoid` of each (DeepSeek V3, GLM-4.5), or `softmax-selected`: the chosen
 * experts by raw logit, their weights a softmax over just those (gpt-oss).
 */
export type MoeGating = 'softmax' | 'sigmoid' | 'softmax-selected';

/** A layer's routing rule. */
export interface MoeRouting {
  /** Routed experts of the layer. */
  readonly experts: number;
  /** Experts each token uses (top k). */
  readonly used: number;
  readonly gating: MoeGating;
  /** Divide the chosen weights by their sum (llama.cpp's norm_w). */
  readonly normalize: boolean;
  /** Multiply the weights by this; 0 or 1 for none (llama.cpp's w_scale). */
  readonly scale: number;
  /** Expert groups (experts e / (experts / groups) form group g); 0 or 1 for none. */
  readonly groups: number;
  /** Groups a token may choose its experts from. */
  readonly groupsUsed: number;
}

/** llama.cpp's floor on the sum the weights are normalized by: the smallest normal f16. */
export const MOE_WEIGHT_SUM_MIN = 6.103515625e-5;

/** Throws GGUF_MALFORMED (naming `what`) unless the routing rule is one llama.cpp accepts. */
export function checkMoeRouting(r: MoeRouting, what: string): void {
  const bad = (msg: string) => new CairnError('GGUF_MALFORMED', `${what}: ${msg}`);
  if (!(Number.isInteger(r.experts) && r.experts >= 1 && r.experts <= 1024)) throw bad(`${r.experts} experts (1 to 1024 supported)`);
  if (!(Number.isInteger(r.used) && r.used >= 1 && r.used <= r.experts)) throw bad(`${r.used} experts used per token of ${r.experts}`);
  if (!Number.isFinite(r.scale)) throw bad(`expert weight scale ${r.scale}`);
  if (r.groups > 1) {
    const per = r.experts / r.groups;
    if (!(Number.isInteger(r.groups) && r.groups < r.experts && Number.isInteger(per) && per >= 2)) {
      throw bad(`${r.experts} experts do not form ${r.groups} groups of at least 2`);
    }
    if (!(Number.isInteger(r.groupsUsed) && r.groupsUsed >= 1 && r.groupsUsed < r.groups)) {
      throw bad(`${r.groupsUsed} expert groups used of ${r.groups}`);
    }
    if (r.groupsUsed * per < r.used) throw bad(`${r.groupsUsed} groups of ${per} experts cannot supply ${r.used} experts per token`);
  }
}

/** The router's tensors. */
export interface MoeRouterWeights {
  /** experts x nEmbd (`ffn_gate_inp.weight`). */
  readonly gate: Matrix;
  /** A bias on the logits (`ffn_gate_inp.bias`, gpt-oss). */
  readonly logitBias?: Float32Array;
  /** DeepSeek-V3's score-correction bias (`exp_probs_b.bias`): added to the scores that choose, not to the weights. */
  readonly selectionBias?: Float32Array;
}

/** Which optional router tensors a family's files have, as llama.cpp loads them. */
export interface MoeRouterTensors {
  readonly logitBias: boolean;
  readonly selectionBias: 'required' | 'optional' | 'none';
}

/** Declares a router's tensors under `prefix`. */
export function declareMoeRouter(src: TensorSource, prefix: string, nEmbd: number, experts: number, t: MoeRouterTensors): MoeRouterWeights {
  const gate = src.matrix(prefix + 'ffn_gate_inp.weight', experts, nEmbd);
  const logitBias = t.logitBias ? src.vector(prefix + 'ffn_gate_inp.bias', experts) : undefined;
  const selectionBias =
    t.selectionBias === 'required'
      ? src.vector(prefix + 'exp_probs_b.bias', experts)
      : t.selectionBias === 'optional'
        ? src.optionalVector(prefix + 'exp_probs_b.bias', experts)
        : undefined;
  return { gate, logitBias, selectionBias };
}

/**
 * Writes a router into a synthetic model: F32 (llama.cpp never quantizes it), logits of about unit
 * size so that no probability saturates into a tie; the biases when asked for.
 */
export function synthesizeMoeRouter(out: SyntheticTensors, prefix: string, nEmbd: number, experts: number, t: MoeRouterTensors): void {
  out.f32(prefix + 'ffn_gate_inp.weight', [nEmbd, experts], 1 / Math.sqrt(nEmbd));
  if (t.logitBias) out.f32(prefix + 'ffn_gate_inp.bias', [experts], 0.5);
  if (t.selectionBias !== 'none') out.f32(prefix + 'exp_probs_b.bias', [experts], 0.3);
}

/** f32 sigmoid as ggml computes it: 1 / (1 + expf(-x)), each step rounded to f32. */
function sigmoid(x: number): number {
  return Math.fround(1 / Math.fround(1 + Math.fround(Math.exp(-x))));
}

/** The forward step of a router: for each token, its experts (in summation order) and their weights. */
export class MoeRouter {
  private readonly logits: Scratch;
  /** One token's selection scores. */
  private readonly scores: Float32Array;
  private readonly groupScores: Float32Array;
  private readonly keepGroup: Uint8Array;
  private readonly topK: TopKScratch;
  private readonly groupTopK: TopKScratch;
  private readonly chosenGroups: Int32Array;

  constructor(
    readonly routing: MoeRouting,
    private readonly w: MoeRouterWeights,
    ws: Workspace,
  ) {
    const { experts, groups } = routing;
    this.logits = ws.buffer('moe.logits', experts);
    this.scores = new Float32Array(experts);
    this.topK = new TopKScratch(experts, routing.used);
    const g = Math.max(1, groups);
    this.groupScores = new Float32Array(g);
    this.keepGroup = new Uint8Array(g);
    this.groupTopK = new TopKScratch(g, Math.max(1, routing.groupsUsed));
    this.chosenGroups = new Int32Array(Math.max(1, routing.groupsUsed));
  }

  /** Routes n tokens of h (n x nEmbd): ids and weights get n x used entries, token t's at t * used. */
  route(h: Float32Array, n: number, kernels: Kernels, ids: Int32Array, weights: Float32Array): void {
    const g = this.w.gate;
    const logits = this.logits.rows(n);
    kernels.matmul(g.data, g.type, g.rows, g.cols, h, n, logits);
    if (this.w.logitBias) addRowBias(logits, this.w.logitBias, n);
    this.routeLogits(logits, n, kernels, ids, weights);
  }

  /** Routes n tokens given their logits (n x experts, overwritten with the probabilities). */
  routeLogits(logits: Float32Array, n: number, kernels: Kernels, ids: Int32Array, weights: Float32Array): void {
    const { experts: E, used: k, gating, normalize, scale } = this.routing;
    if (gating === 'softmax') kernels.softmax(logits, n, E);
    else if (gating === 'sigmoid') for (let i = 0; i < n * E; i++) logits[i] = sigmoid(logits[i]);
    const bias = this.w.selectionBias;
    const s = this.scores;
    for (let t = 0; t < n; t++) {
      const row = t * E;
      for (let e = 0; e < E; e++) {
        const p = logits[row + e];
        const v = bias ? Math.fround(p + bias[e]) : p;
        // A NaN would break the sort's order; it sorts last instead (the output is garbage anyway).
        s[e] = v === v ? v : -Infinity;
      }
      if (this.routing.groups > 1) this.maskGroups(s);
      topKDescending(s, E, k, ids, t * k, this.topK);
      for (let j = 0; j < k; j++) weights[t * k + j] = logits[row + ids[t * k + j]];
    }
    if (gating === 'softmax-selected') kernels.softmax(weights, n, k);
    if (normalize) {
      for (let t = 0; t < n; t++) {
        let sum = 0;
        for (let j = 0; j < k; j++) sum += weights[t * k + j];
        // ggml's sum_rows adds in double and rounds once; then its clamp (MAX(MIN(x, inf), min),
        // which turns a NaN into inf) and an f32 divide.
        let d = Math.fround(sum);
        d = d < Infinity ? d : Infinity;
        d = d > MOE_WEIGHT_SUM_MIN ? d : MOE_WEIGHT_SUM_MIN;
        for (let j = 0; j < k; j++) weights[t * k + j] = Math.fround(weights[t * k + j] / d);
      }
    }
    if (scale !== 0 && scale !== 1) {
      const f = Math.fround(scale);
      for (let i = 0; i < n * k; i++) weights[i] = Math.fround(weights[i] * f);
    }
  }

  /** Keeps the scores of the best groups (by the sum of their two best scores) and sets the others' to -Infinity. */
  private maskGroups(s: Float32Array): void {
    const { experts, groups, groupsUsed } = this.routing;
    const per = experts / groups;
    const gs = this.groupScores;
    for (let g = 0; g < groups; g++) {
      let a = -Infinity;
      let b = -Infinity;
      for (let e = g * per; e < (g + 1) * per; e++) {
        const v = s[e];
        if (v > a) {
          b = a;
          a = v;
        } else if (v > b) b = v;
      }
      // The top two by any sort are these two values; llama.cpp sums them in double, rounded once.
      gs[g] = Math.fround(a + b);
    }
    const chosen = this.chosenGroups;
    topKDescending(gs, groups, groupsUsed, chosen, 0, this.groupTopK);
    const keep = this.keepGroup;
    keep.fill(0);
    for (let j = 0; j < groupsUsed; j++) keep[chosen[j]] = 1;
    for (let g = 0; g < groups; g++) {
      if (keep[g]) continue;
      for (let e = g * per; e < (g + 1) * per; e++) s[e] = -Infinity;
    }
  }
}
