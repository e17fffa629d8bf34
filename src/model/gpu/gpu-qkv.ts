/**
 * A GQA layer's Q, K and V projections on the GPU. Where their weights stack (one type and row
 * length: Q and K in most files, V too where it shares their type), they are uploaded as one
 * matrix: a decode token then takes one product for all three, and one bias add where they have
 * biases (a decode step records one to four dispatches less per layer, and each dispatch costs the
 * host and the device some microseconds whatever its size), and a batch of tokens takes one
 * product per projection over the matrix's rows. Weights are uploaded once either way.
 */
import { CairnError } from '../../util/errors.js';
import type { GpuTensor, WebGpuKernels } from '../../kernels/webgpu/gpu-kernels.js';
import type { GqaShape, GqaWeights } from '../blocks/gqa-attention.js';
import { applyLinear, linear, type GpuLinear } from './gpu-linear.js';
import { gpuMatmul, gpuMatmulRows, type GpuMatrix, type GpuScratch, type GpuWorkspace } from './gpu-workspace.js';

/** Where the projections of a step's tokens are: q, k and v may be one tensor (then their offsets tell them apart). */
export interface GpuQkv {
  readonly q: GpuTensor;
  readonly k: GpuTensor;
  readonly v: GpuTensor;
  /** Elements before the first row of each. */
  readonly qOff: number;
  readonly kOff: number;
  readonly vOff: number;
}

/** The Q, K and V projections of one layer. */
export class GpuQkvProjection {
  /** Q's and K's rows, and V's where `vStacked`. */
  private readonly stacked?: GpuMatrix;
  /** The stacked projections' biases end to end (zeros for one without), where any has one. */
  private readonly stackedBias?: GpuTensor;
  private readonly vStacked: boolean;
  /** The projections not stacked. */
  private readonly q?: GpuLinear;
  private readonly k?: GpuLinear;
  private readonly v?: GpuLinear;
  /** The stacked projections' own biases, for a batch's products over the rows. */
  private readonly biases: (GpuTensor | undefined)[] = [];
  private readonly sq: GpuScratch;
  private readonly sk: GpuScratch;
  private readonly sv: GpuScratch;
  /** One token's q, k and v (or q and k) side by side, from the stacked product. */
  private readonly sqkv?: GpuScratch;
  private readonly dq: number;
  private readonly dk: number;

  constructor(s: GqaShape, w: GqaWeights, ws: GpuWorkspace) {
    this.dq = s.nHead * s.headDim;
    this.dk = s.nKvHead * s.headDim;
    // A family with a fused matrix hands it over as its three row ranges (phi3.ts), which stack again here.
    if (w.qkv) throw new CairnError('MODEL_UNSUPPORTED', 'the GPU blocks take Q, K and V as three projections, not one fused matrix');
    const all = ws.stackedMatrix([w.q.w, w.k.w, w.v.w]);
    this.stacked = all ?? ws.stackedMatrix([w.q.w, w.k.w]);
    this.vStacked = all !== undefined;
    if (this.stacked) {
      const lins = this.vStacked ? [w.q, w.k, w.v] : [w.q, w.k];
      if (lins.some((l) => l.bias)) {
        const joined = new Float32Array(this.stacked.rows);
        let at = 0;
        for (const l of lins) {
          if (l.bias) joined.set(l.bias, at);
          at += l.w.rows;
        }
        this.stackedBias = ws.vector(joined);
        for (const l of lins) this.biases.push(l.bias && ws.vector(l.bias));
      }
    } else {
      this.q = linear(ws, w.q);
      this.k = linear(ws, w.k);
    }
    if (!this.vStacked) this.v = linear(ws, w.v);
    this.sq = ws.buffer('attn.q', this.dq);
    this.sk = ws.buffer('attn.k', this.dk);
    this.sv = ws.buffer('attn.v', this.dk);
    if (this.stacked) this.sqkv = ws.buffer('attn.qkv', this.stacked.rows);
  }

  /**
   * The projections of h's n tokens. `oneProduct`: a single token may get them from one product,
   * side by side in one tensor (its consumers must take offsets: the caller says whether they do).
   */
  forward(gpu: WebGpuKernels, h: GpuTensor, n: number, oneProduct: boolean): GpuQkv {
    const [q, k, v] = [this.sq.t, this.sk.t, this.sv.t];
    const w = this.stacked;
    if (w && n === 1 && oneProduct) {
      const qkv = this.sqkv!.t;
      gpuMatmul(gpu, w, h, 1, qkv);
      if (this.stackedBias) gpu.addBias(qkv, this.stackedBias, 1, w.rows);
      if (this.vStacked) return { q: qkv, k: qkv, v: qkv, qOff: 0, kOff: this.dq, vOff: this.dq + this.dk };
      applyLinear(gpu, this.v!, h, 1, v);
      return { q: qkv, k: qkv, v, qOff: 0, kOff: this.dq, vOff: 0 };
    }
    if (w) {
      const ranges: [number, number, GpuTensor][] = [
        [0, this.dq, q],
        [this.dq, this.dk, k],
      ];
      if (this.vStacked) ranges.push([this.dq + this.dk, this.dk, v]);
      ranges.forEach(([start, rows, y], i) => {
        gpuMatmulRows(gpu, w, start, rows, h, n, y);
        const bias = this.biases[i];
        if (bias) gpu.addBias(y, bias, n, rows);
      });
    } else {
      applyLinear(gpu, this.q!, h, n, q);
      applyLinear(gpu, this.k!, h, n, k);
    }
    if (!this.vStacked) applyLinear(gpu, this.v!, h, n, v);
    return { q, k, v, qOff: 0, kOff: 0, vOff: 0 };
  }
}
