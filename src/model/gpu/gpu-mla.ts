/**
 * Multi-head latent attention on the GPU, the CPU block's absorbed form (mla-attention.ts) over the
 * same declarations: queries (directly, or through their low-rank bottleneck and its norm); the
 * cached row of the latent (RMS-normed) and its roped key part, stored in F16 (or Q8_0) as the only thing the
 * cache holds; each head's non-rotated query absorbed into latent space by its `attn_k_b` slice and
 * its roped part copied beside it; multi-query attention over the latent cache whose values are
 * each row's latent; each head's output decompressed by its `attn_v_b` slice; the output
 * projection. The per-head products run as expert products where every token uses every head.
 */
import { CairnError } from '../../util/errors.js';
import type { RopeParams } from '../../kernels/api.js';
import type { GpuTensor } from '../../kernels/webgpu/gpu-kernels.js';
import { copyRows } from '../../kernels/webgpu/expert-kernels.js';
import { mlaSplitKvB, type MlaShape, type MlaWeights } from '../blocks/mla-attention.js';
import { YarnRope } from '../blocks/yarn-rope.js';
import type { GpuBlock, GpuStep } from './gpu-blocks.js';
import { GpuPairGroups, gpuMatmulId } from './gpu-moe.js';
import { gpuMatmul, type GpuBank, type GpuMatrix, type GpuScratch, type GpuWorkspace } from './gpu-workspace.js';

/** The forward step of an MLA block on the GPU. */
export class GpuMlaAttention implements GpuBlock {
  private readonly q?: GpuMatrix;
  private readonly qA?: GpuMatrix;
  private readonly qANorm?: GpuTensor;
  private readonly qB?: GpuMatrix;
  private readonly kvA: GpuMatrix;
  private readonly kvANorm: GpuTensor;
  private readonly kB: GpuBank;
  private readonly vB: GpuBank;
  private readonly o: GpuMatrix;
  /** Expert ids of the per-head products: pair t x nHead + h is head h. */
  private readonly headIds: GpuTensor;
  /** The pairs grouped by head, so each head's matrices are read once per tile of tokens. */
  private readonly groups: GpuPairGroups;
  private readonly banks: readonly GpuBank[];
  private readonly sqa?: GpuScratch;
  private readonly sq: GpuScratch;
  private readonly skv: GpuScratch;
  private readonly sqAbs: GpuScratch;
  private readonly slat: GpuScratch;
  private readonly sheads: GpuScratch;
  private readonly rope: RopeParams;
  private readonly fillTable: (positions: Int32Array, n: number) => Float32Array;
  private readonly tableKey: string;

  constructor(
    private readonly s: MlaShape,
    w: MlaWeights,
    ws: GpuWorkspace,
  ) {
    if (w.heads) throw new CairnError('MODEL_UNSUPPORTED', 'a tensor-parallel rank does not run on the GPU yet');
    const qk = s.nope + s.ropeDim;
    const row = s.kvLora + s.ropeDim;
    if (w.q) this.q = ws.matrix(w.q);
    else {
      this.qA = ws.matrix(w.qA!);
      this.qANorm = ws.vector(w.qANorm!);
      this.qB = ws.matrix(w.qB!);
      this.sqa = ws.buffer('mla.qa', s.qLora);
    }
    this.kvA = ws.matrix(w.kvA);
    this.kvANorm = ws.vector(w.kvANorm);
    const split = w.kvB ? mlaSplitKvB(w.kvB, s) : undefined;
    this.kB = ws.bank(split?.kB ?? w.kB!);
    this.vB = ws.bank(split?.vB ?? w.vB!);
    this.o = ws.matrix(w.o);
    this.banks = [this.kB, this.vB];
    this.headIds = ws.upload(Uint32Array.from({ length: ws.maxBatch * s.nHead }, (_, i) => i % s.nHead));
    this.groups = new GpuPairGroups(s.nHead, s.nHead, ws);
    this.sq = ws.buffer('attn.q', s.nHead * qk);
    this.skv = ws.buffer('attn.k', row);
    this.sqAbs = ws.buffer('mla.qabs', s.nHead * row);
    this.slat = ws.buffer('attn.out', s.nHead * s.kvLora);
    this.sheads = ws.buffer('mla.heads', s.nHead * s.vDim);
    this.rope = { mode: s.rope.mode, nRot: s.rope.nRot, freqBase: s.rope.freqBase, freqScale: s.rope.freqScale };
    const yarn = new YarnRope(s.rope);
    this.fillTable = (positions, n) => yarn.table(positions, n);
    this.tableKey = `mla|${JSON.stringify(s.rope)}`;
  }

  forward(h: GpuTensor, out: GpuTensor, step: GpuStep): void {
    const { s } = this;
    const { gpu, n } = step;
    const qk = s.nope + s.ropeDim;
    const row = s.kvLora + s.ropeDim;
    const pairs = n * s.nHead;

    // Queries: n x nHead x [nope | rope].
    const q = this.sq.t;
    if (this.q) gpuMatmul(gpu, this.q, h, n, q);
    else {
      const qa = this.sqa!.t;
      gpuMatmul(gpu, this.qA!, h, n, qa);
      gpu.rmsNorm(qa, this.qANorm!, n, s.qLora, s.rmsEps, qa);
      gpuMatmul(gpu, this.qB!, qa, n, q);
    }
    // The cached row: n x [latent | k_pe], the latent normed, k_pe roped.
    const kv = this.skv.t;
    gpuMatmul(gpu, this.kvA, h, n, kv);
    gpu.rmsNorm(kv, this.kvANorm, n, s.kvLora, s.rmsEps, kv, row);
    const table = step.ropeTable(this.tableKey, s.rope.nRot, this.fillTable);
    gpu.rope(kv, n, 1, row, table, this.rope, { tokenStride: row, headStride: row, offset: s.kvLora });
    gpu.rope(q, n, s.nHead, qk, table, this.rope, { tokenStride: s.nHead * qk, headStride: qk, offset: s.nope });

    // Absorbed queries: n x nHead x [W_UK^T q_nope | q_pe].
    const qAbs = this.sqAbs.t;
    const groups = this.groups.group(step, this.headIds, pairs, this.banks);
    gpuMatmulId(step, this.kB, q, pairs, this.headIds, qAbs, { xDiv: 1, xStride: qk, yStride: row }, undefined, groups);
    copyRows(gpu, q, s.nope, qk, qAbs, s.kvLora, row, pairs, s.ropeDim);

    // Multi-query attention over the latent cache, its values each row's latent.
    const lat = this.slat.t;
    for (const sp of step.spans) {
      const kc = step.kv.keys(step.layer, sp.slot);
      gpu.storeRows(step.kv.type, kv, kc, row, sp.pos0, sp.n, sp.start);
      gpu.attention(qAbs, kc, kc, { nTokens: sp.n, nHead: s.nHead, nKvHead: 1, headDim: row, pos0: sp.pos0, scale: s.kqScale, vDim: s.kvLora, vRow: row, kvType: step.kv.type }, lat, sp.start);
    }

    // Each head's latent output decompressed by W_UV, then the output projection.
    const heads = this.sheads.t;
    gpuMatmulId(step, this.vB, lat, pairs, this.headIds, heads, { xDiv: 1, xStride: s.kvLora }, undefined, groups);
    gpuMatmul(gpu, this.o, heads, n, out);
  }
}
