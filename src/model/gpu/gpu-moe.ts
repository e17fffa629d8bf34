/**
 * The Mixture-of-Experts feed-forward block on the GPU, from the same declarations as the CPU's
 * MoeFfn (moe-ffn.ts): the router's logits and the choice of experts on the device (no host round
 * trip), the expert products of every (token, slot) pair reading its expert from the layer's banks
 * uploaded in their file layout, the gated unit (SwiGLU, silu of up alone, or gpt-oss's
 * swiglu_oai), the weighted sum in slot order, and the shared experts (behind Qwen2-MoE's sigmoid
 * gate where the file has it) added after it.
 *
 * A step's pairs are grouped by expert on the device, and each expert's rows are read once per tile
 * of up to eight of its pairs (as the CPU groups a batch's tokens by expert); an adapter without
 * subgroups computes pair by pair.
 */
import { CairnError } from '../../util/errors.js';
import type { GpuTensor } from '../../kernels/webgpu/gpu-kernels.js';
import {
  checkGpuRouting,
  gatedAdd,
  groupedProducts,
  matmulId,
  matmulIdGrouped,
  moeCombine,
  moeGroup,
  moeRoute,
  PAIR_GROUPS_ARGS_BYTES,
  pairGroupsMetaWords,
  siluInPlace,
  swigluOaiInPlace,
  type MatmulIdLayout,
  type PairGroups,
} from '../../kernels/webgpu/expert-kernels.js';
import { SWIGLU_OAI, type MoeFfnShape, type MoeFfnWeights } from '../blocks/moe-ffn.js';
import { GpuDenseFfn, type GpuBlock, type GpuStep } from './gpu-blocks.js';
import { gpuMatmul, type GpuBank, type GpuMatrix, type GpuScratch, type GpuWorkspace } from './gpu-workspace.js';

/** Scratch of a step's pairs grouped by expert (pair indices and offsets), for `experts` experts and `used` pairs per token. */
export class GpuPairGroups {
  private readonly sorted: GpuScratch;
  private readonly meta: GpuScratch;
  private readonly args: GpuScratch;

  constructor(
    private readonly experts: number,
    used: number,
    ws: GpuWorkspace,
  ) {
    this.sorted = ws.buffer('moe.sorted', used);
    this.meta = ws.fixed(`moe.groups.${experts}`, pairGroupsMetaWords(experts));
    this.args = ws.fixed('moe.groups.args', PAIR_GROUPS_ARGS_BYTES / 4, { indirect: true });
  }

  /** Groups the step's pairs (ids) by expert on the device for the products of `banks`, where the grouped products run; else undefined. */
  group(step: GpuStep, ids: GpuTensor, pairs: number, banks: readonly GpuBank[]): PairGroups | undefined {
    if (!banks.every((b) => groupedProducts(step.gpu, b.type))) return undefined;
    return moeGroup(step.gpu, ids, pairs, this.experts, this.sorted.t, this.meta.t, this.args.t, banks.map((b) => b.rows));
  }
}

/**
 * The expert products of `pairs` pairs through every part of a bank: tiles of pairs grouped by
 * expert where the adapter runs them (each expert's rows read once per tile), else pair by pair.
 */
export function gpuMatmulId(step: GpuStep, bank: GpuBank, x: GpuTensor, pairs: number, ids: GpuTensor, y: GpuTensor, at: MatmulIdLayout, bias?: GpuTensor, groups?: PairGroups): void {
  for (const part of bank.parts) {
    if (groups) matmulIdGrouped(step.gpu, part, bank.type, bank.rows, bank.cols, x, groups, y, at, bias);
    else matmulId(step.gpu, part, bank.type, bank.rows, bank.cols, x, pairs, ids, y, at, bias);
  }
}

/** The forward step of an MoE block on the GPU. */
export class GpuMoeFfn implements GpuBlock {
  private readonly router: GpuMatrix;
  private readonly logitBias?: GpuTensor;
  private readonly selectionBias?: GpuTensor;
  private readonly gate?: GpuBank;
  private readonly up: GpuBank;
  private readonly down: GpuBank;
  private readonly gateBias?: GpuTensor;
  private readonly upBias?: GpuTensor;
  private readonly downBias?: GpuTensor;
  private readonly shared?: GpuDenseFfn;
  private readonly sharedGate?: GpuMatrix;
  private readonly logits: GpuScratch;
  private readonly ids: GpuScratch;
  private readonly weights: GpuScratch;
  private readonly gateOut: GpuScratch;
  private readonly upOut: GpuScratch;
  private readonly downOut: GpuScratch;
  private readonly sharedOut?: GpuScratch;
  private readonly sharedGateOut?: GpuScratch;
  private readonly groups: GpuPairGroups;
  /** The banks a step's products read (the pairs are grouped for their row counts). */
  private readonly banks: readonly GpuBank[];

  constructor(
    private readonly s: MoeFfnShape,
    w: MoeFfnWeights,
    ws: GpuWorkspace,
  ) {
    if (!w.router || w.experts || w.dispatch) throw new CairnError('MODEL_UNSUPPORTED', 'an expert-parallel or tensor-parallel rank does not run on the GPU yet');
    checkGpuRouting(s.routing);
    const { experts: E, used: k } = s.routing;
    this.router = ws.matrix(w.router.gate);
    this.logitBias = w.router.logitBias && ws.vector(w.router.logitBias);
    this.selectionBias = w.router.selectionBias && ws.vector(w.router.selectionBias);
    this.gate = w.gate && ws.bank(w.gate);
    this.up = ws.bank(w.up);
    this.down = ws.bank(w.down);
    this.gateBias = w.gateBias && ws.vector(w.gateBias);
    this.upBias = w.upBias && ws.vector(w.upBias);
    this.downBias = w.downBias && ws.vector(w.downBias);
    this.logits = ws.buffer('moe.logits', E);
    this.ids = ws.buffer('moe.ids', k);
    this.weights = ws.buffer('moe.weights', k);
    this.gateOut = ws.buffer('moe.gate', k * s.width);
    this.upOut = ws.buffer('moe.up', k * s.width);
    this.downOut = ws.buffer('moe.down', k * s.nEmbd);
    this.groups = new GpuPairGroups(E, k, ws);
    this.banks = [this.up, this.down, ...(this.gate ? [this.gate] : [])];
    if (w.shared) {
      this.shared = new GpuDenseFfn(w.shared, ws);
      this.sharedOut = ws.buffer('moe.shared', s.nEmbd);
      if (w.sharedGate) {
        this.sharedGate = ws.matrix(w.sharedGate);
        this.sharedGateOut = ws.buffer('moe.shared.gate', 1);
      }
    }
  }

  forward(h: GpuTensor, out: GpuTensor, step: GpuStep): void {
    const { gpu, n } = step;
    const { s } = this;
    const { experts: E, used: k } = s.routing;
    const D = s.nEmbd;
    const pairs = n * k;
    const logits = this.logits.t;
    const ids = this.ids.t;
    const weights = this.weights.t;
    gpuMatmul(gpu, this.router, h, n, logits);
    if (this.logitBias) gpu.addBias(logits, this.logitBias, n, E);
    moeRoute(gpu, logits, n, s.routing, this.selectionBias, ids, weights);
    const groups = this.groups.group(step, ids, pairs, this.banks);

    // A token's slots share its input row.
    const perToken = { xDiv: k, xStride: D };
    const u = this.upOut.t;
    gpuMatmulId(step, this.up, h, pairs, ids, u, perToken, this.upBias, groups);
    let act: GpuTensor;
    if (this.gate) {
      act = this.gateOut.t;
      gpuMatmulId(step, this.gate, h, pairs, ids, act, perToken, this.gateBias, groups);
      if (s.activation === 'silu') gpu.swiglu(act, u, pairs * s.width, act);
      else swigluOaiInPlace(gpu, act, u, pairs * s.width, SWIGLU_OAI.alpha, SWIGLU_OAI.limit);
    } else {
      // llama without a gate tensor: the unit is silu(up).
      act = u;
      siluInPlace(gpu, act, pairs * s.width);
    }
    const y = this.downOut.t;
    gpuMatmulId(step, this.down, act, pairs, ids, y, { xDiv: 1, xStride: s.width }, this.downBias, groups);
    moeCombine(gpu, y, weights, n, k, D, out);

    if (!this.shared) return;
    const sh = this.sharedOut!.t;
    this.shared.forward(h, sh, step);
    if (this.sharedGate) {
      const g = this.sharedGateOut!.t;
      gpuMatmul(gpu, this.sharedGate, h, n, g);
      gatedAdd(gpu, out, sh, g, n, D);
    } else gpu.add(out, sh, n * D, out);
  }
}
