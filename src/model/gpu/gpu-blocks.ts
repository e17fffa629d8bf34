/**
 * The shared blocks of a dense decoder on the GPU: the same weights the CPU blocks declare
 * (GqaWeights, DenseFfnWeights, the norms, the head), uploaded once, and the same sequence of
 * kernels over device tensors, recorded into one command encoder: a step's layers run on the device
 * without a host round trip; only the logits come back.
 */
import { CairnError } from '../../util/errors.js';
import type { RopeParams } from '../../kernels/api.js';
import { GgmlType } from '../../gguf/ggml-types.js';
import { ropeTable, type GpuKvType, type GpuTensor, type WebGpuKernels } from '../../kernels/webgpu/gpu-kernels.js';
import { YarnRope } from '../blocks/yarn-rope.js';
import type { SeqSpan } from '../batch.js';
import type { GqaShape, GqaWeights } from '../blocks/gqa-attention.js';
import type { DenseActivation, DenseFfnWeights } from '../blocks/dense-ffn.js';
import { softcapLogits, type OutputHeadWeights } from '../blocks/output-head.js';
import type { SandwichNorms } from '../blocks/sandwich-norm-layer.js';
import { gpuMatmul, gpuPairedSwiglu, type GpuMatrix, type GpuScratch, type GpuWorkspace } from './gpu-workspace.js';
import { accumulateLinear, applyLinear, linear, type GpuLinear } from './gpu-linear.js';
import { GpuQkvProjection } from './gpu-qkv.js';

/** A GPU shard's KV cache: per layer and slot, keys and values of ctx positions in F16 or Q8_0. */
export interface GpuKv {
  readonly type: GpuKvType;
  keys(layer: number, slot: number): GpuTensor;
  values(layer: number, slot: number): GpuTensor;
}

/** What one step of one layer needs besides its weights. */
export interface GpuStep {
  readonly gpu: WebGpuKernels;
  readonly kv: GpuKv;
  n: number;
  spans: readonly SeqSpan[];
  positions: Int32Array;
  layer: number;
  /**
   * The step's rope angles on the device, made by `fill` once per step for each `key` (the layers
   * with the same rotation share them).
   */
  ropeTable(key: string, nRot: number, fill: (positions: Int32Array, n: number) => Float32Array): GpuTensor;
}

const factorIds = new WeakMap<Float32Array, number>();
let nextFactorId = 0;

/** A number naming a frequency-factor array (all layers share one: rope_freqs). */
function ropeFactorsId(f: Float32Array): number {
  let id = factorIds.get(f);
  if (id === undefined) factorIds.set(f, (id = ++nextFactorId));
  return id;
}

/** One layer on the GPU: updates the residual stream x (n x nEmbd) in place. */
export interface GpuDecoderLayer {
  forward(x: GpuTensor, step: GpuStep): void;
}

/** A block of a layer on the GPU (attention, or a feed-forward block): out (n x nEmbd) from the normed stream h. */
export interface GpuBlock {
  /**
   * True where forward takes `accumulate`: it then adds its result to out (the residual stream)
   * in its last product, which saves the layer an add kernel.
   */
  readonly accumulates?: boolean;
  forward(h: GpuTensor, out: GpuTensor, step: GpuStep, accumulate?: boolean): void;
}

/** Grouped-query attention over the layer's F16 cache, with a sliding window and sink logits where the layer has them. */
export class GpuGqaAttention implements GpuBlock {
  readonly accumulates = true;
  private readonly qkv: GpuQkvProjection;
  private readonly o: GpuLinear;
  private readonly qNorm?: GpuTensor;
  private readonly kNorm?: GpuTensor;
  private readonly sa: GpuScratch;
  /** The output projection's result before the residual add, where it has a bias. */
  private readonly so?: GpuScratch;
  private readonly rope: RopeParams;
  private readonly sinks?: GpuTensor;

  constructor(
    private readonly s: GqaShape,
    w: GqaWeights,
    ws: GpuWorkspace,
  ) {
    if (w.heads) throw new CairnError('MODEL_UNSUPPORTED', 'a tensor-parallel rank does not run on the GPU yet');
    this.sinks = w.sinks && ws.vector(w.sinks);

    this.qkv = new GpuQkvProjection(s, w, ws);
    this.o = linear(ws, w.o);
    this.qNorm = w.qNorm && ws.vector(w.qNorm);
    this.kNorm = w.kNorm && ws.vector(w.kNorm);
    this.sa = ws.buffer('attn.out', s.nHead * s.headDim);
    this.so = w.o.bias && ws.buffer('attn.o', w.o.bias.length);
    this.rope = { mode: s.rope.mode, nRot: s.rope.nRot, freqBase: s.rope.freqBase, freqScale: s.rope.freqScale, freqFactors: w.ropeFreqs };
    // The host computes the angles as the CPU's rope does (YaRN's ramp and magnitude included).
    const yarn = s.rope.yarn ? new YarnRope(s.rope, w.ropeFreqs) : undefined;
    const rope = this.rope;
    this.fillTable = yarn ? (positions, n) => yarn.table(positions, n) : (positions, n) => ropeTable(positions, n, rope);
    this.tableKey = `${JSON.stringify({ ...s.rope, freqFactors: undefined })}|${w.ropeFreqs ? ropeFactorsId(w.ropeFreqs) : 0}`;
  }

  private readonly fillTable: (positions: Int32Array, n: number) => Float32Array;
  private readonly tableKey: string;

  forward(h: GpuTensor, out: GpuTensor, step: GpuStep, accumulate = false): void {
    const { s } = this;
    const { gpu, n } = step;
    const hd = s.headDim;
    // An F16 cache takes each span's rotations and its store in one dispatch, which reads q, k and v
    // at offsets: a decode token may then take the three projections as one product.
    const fused = step.kv.type === GgmlType.F16;
    const { q, k, v, qOff, kOff, vOff } = this.qkv.forward(gpu, h, n, fused);
    if (this.qNorm) gpu.rmsNorm(q, this.qNorm, n * s.nHead, hd, s.rmsEps, q, hd, qOff);
    if (this.kNorm) gpu.rmsNorm(k, this.kNorm, n * s.nKvHead, hd, s.rmsEps, k, hd, kOff);
    const table = step.ropeTable(this.tableKey, this.rope.nRot, this.fillTable);
    if (!fused) {
      gpu.rope(q, n, s.nHead, hd, table, this.rope);
      gpu.rope(k, n, s.nKvHead, hd, table, this.rope);
    }
    const attn = this.sa.t;
    for (const sp of step.spans) {
      const kc = step.kv.keys(step.layer, sp.slot);
      const vc = step.kv.values(step.layer, sp.slot);
      if (fused) gpu.ropeStoreKvF16(q, k, v, kc, vc, table, { nTokens: sp.n, nHead: s.nHead, nKvHead: s.nKvHead, headDim: hd, pos0: sp.pos0, t0: sp.start, qOff, kOff, vOff }, this.rope);
      else gpu.storeKv(step.kv.type, k, v, kc, vc, s.nKvHead * hd, sp.pos0, sp.n, sp.start);
      const p = { nTokens: sp.n, nHead: s.nHead, nKvHead: s.nKvHead, headDim: hd, pos0: sp.pos0, scale: s.scale ?? 1 / Math.sqrt(hd), softcap: s.softcap, window: s.window, sinks: this.sinks, kvType: step.kv.type };
      gpu.attention(q, kc, vc, p, attn, sp.start);
    }
    if (accumulate) accumulateLinear(gpu, this.o, attn, n, out, this.so?.t);
    else applyLinear(gpu, this.o, attn, n, out);
  }
}

/** The dense gated FFN: SwiGLU, or GeGLU (Gemma) with `activation` gelu. */
export class GpuDenseFfn implements GpuBlock {
  readonly accumulates = true;
  /** Gate and up with their rows interleaved, where one dispatch can make silu(gate) x up. */
  private readonly pair?: GpuMatrix;
  private readonly gate?: GpuMatrix;
  private readonly up?: GpuMatrix;
  private readonly down: GpuMatrix;
  private readonly sg: GpuScratch;
  private readonly su?: GpuScratch;

  constructor(
    w: DenseFfnWeights,
    ws: GpuWorkspace,
    private readonly activation: DenseActivation = 'silu',
  ) {
    // The paired product folds in silu only.
    this.pair = activation === 'silu' ? ws.pairedMatrix(w.gate, w.up) : undefined;
    if (!this.pair) {
      this.gate = ws.matrix(w.gate);
      this.up = ws.matrix(w.up);
      this.su = ws.buffer('ffn.up', w.up.rows);
    }
    this.down = ws.matrix(w.down);
    this.sg = ws.buffer('ffn.gate', w.gate.rows);
  }

  forward(h: GpuTensor, out: GpuTensor, step: GpuStep, accumulate = false): void {
    const { gpu, n } = step;
    const g = this.sg.t;
    if (this.pair) {
      gpuPairedSwiglu(gpu, this.pair, h, n, g);
    } else {
      const u = this.su!.t;
      gpuMatmul(gpu, this.gate!, h, n, g);
      gpuMatmul(gpu, this.up!, h, n, u);
      if (this.activation === 'gelu') gpu.geglu(g, u, n * this.gate!.rows, g);
      else gpu.swiglu(g, u, n * this.gate!.rows, g);
    }
    gpuMatmul(gpu, this.down, g, n, out, accumulate);
  }
}

/** x += attention(norm(x)); x += ffn(norm(x)). */
export class GpuPreNormLayer implements GpuDecoderLayer {
  private readonly attnNorm: GpuTensor;
  private readonly ffnNorm: GpuTensor;
  private readonly h: GpuScratch;
  private readonly t: GpuScratch;

  constructor(
    attnNorm: Float32Array,
    private readonly attention: GpuBlock,
    ffnNorm: Float32Array,
    private readonly ffn: GpuBlock,
    private readonly eps: number,
    ws: GpuWorkspace,
    private readonly dim = attnNorm.length,
  ) {
    this.attnNorm = ws.vector(attnNorm);
    this.ffnNorm = ws.vector(ffnNorm);
    this.h = ws.buffer('layer.normed', attnNorm.length);
    this.t = ws.buffer('layer.out', attnNorm.length);
  }

  forward(x: GpuTensor, step: GpuStep): void {
    const { gpu, n } = step;
    const h = this.h.t;
    const t = this.t.t;
    gpu.rmsNorm(x, this.attnNorm, n, this.dim, this.eps, h);
    this.residual(this.attention, h, x, t, step);
    gpu.rmsNorm(x, this.ffnNorm, n, this.dim, this.eps, h);
    this.residual(this.ffn, h, x, t, step);
  }

  /** x += block(h): in the block's last product where it can, else through t and an add. */
  private residual(block: GpuBlock, h: GpuTensor, x: GpuTensor, t: GpuTensor, step: GpuStep): void {
    if (block.accumulates) return block.forward(h, x, step, true);
    block.forward(h, t, step);
    step.gpu.add(x, t, step.n * this.dim, x);
  }
}

/** x += postNorm(attention(norm(x))); x += postFfnNorm(ffn(ffnNorm(x))) (Gemma; blocks/sandwich-norm-layer.ts). */
export class GpuSandwichNormLayer implements GpuDecoderLayer {
  private readonly norms: { readonly [K in keyof SandwichNorms]: GpuTensor };
  private readonly h: GpuScratch;
  private readonly t: GpuScratch;
  private readonly dim: number;

  constructor(
    norms: SandwichNorms,
    private readonly attention: GpuBlock,
    private readonly ffn: GpuBlock,
    private readonly eps: number,
    ws: GpuWorkspace,
  ) {
    this.dim = norms.attention.length;
    this.norms = {
      attention: ws.vector(norms.attention),
      postAttention: ws.vector(norms.postAttention),
      ffn: ws.vector(norms.ffn),
      postFfn: ws.vector(norms.postFfn),
    };
    this.h = ws.buffer('layer.normed', this.dim);
    this.t = ws.buffer('layer.out', this.dim);
  }

  forward(x: GpuTensor, step: GpuStep): void {
    const { gpu, n } = step;
    const { norms, dim, eps } = this;
    const h = this.h.t;
    const t = this.t.t;
    // Each block's output is normed before the residual add, so none adds into x itself.
    gpu.rmsNorm(x, norms.attention, n, dim, eps, h);
    this.attention.forward(h, t, step);
    gpu.rmsNorm(t, norms.postAttention, n, dim, eps, t);
    gpu.add(x, t, n * dim, x);
    gpu.rmsNorm(x, norms.ffn, n, dim, eps, h);
    this.ffn.forward(h, t, step);
    gpu.rmsNorm(t, norms.postFfn, n, dim, eps, t);
    gpu.add(x, t, n * dim, x);
  }
}

/** The final norm and head of the rows asked for; logits are read back (the step's one transfer out). */
export class GpuOutputHead {
  private readonly norm: GpuTensor;
  private readonly head: GpuMatrix;
  private readonly g: GpuScratch;
  private readonly logits: GpuScratch;

  constructor(
    w: OutputHeadWeights,
    private readonly eps: number,
    ws: GpuWorkspace,
    /** Final logit softcapping (0: none), applied to the logits read back. */
    private readonly softcap = 0,
  ) {
    this.norm = ws.vector(w.norm);
    this.head = ws.matrix(w.head);
    this.g = ws.buffer('head.rows', w.head.cols);
    this.logits = ws.buffer('head.logits', w.head.rows);
  }

  /** Logits (rows.length x nVocab) of the given batch rows of x. */
  async write(gpu: WebGpuKernels, x: GpuTensor, rows: ArrayLike<number>): Promise<Float32Array> {
    const D = this.head.cols;
    const V = this.head.rows;
    const m = rows.length;
    const g = this.g.t;
    // The first m rows (a decode step's one row) are normed straight out of x; others are gathered first.
    let leading = true;
    for (let j = 0; j < m; j++) if (rows[j] !== j) leading = false;
    if (leading) gpu.rmsNorm(x, this.norm, m, D, this.eps, g);
    else {
      for (let j = 0; j < m; j++) gpu.copy(x, rows[j] * D * 4, g, j * D * 4, D * 4);
      gpu.rmsNorm(g, this.norm, m, D, this.eps, g);
    }
    gpuMatmul(gpu, this.head, g, m, this.logits.t);
    const logits = new Float32Array(await gpu.read(this.logits.t, m * V * 4));
    if (this.softcap > 0) softcapLogits(logits, this.softcap);
    return logits;
  }
}
