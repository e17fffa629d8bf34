/**
 * The residual layer of Gemma 2 and 3: each branch is normalized on its way in and again on its
 * way out, x += postNorm(attention(norm(x))); x += postFfnNorm(ffn(ffnNorm(x))), all RMSNorm. On a
 * tensor-parallel rank a branch's output is a partial sum: it is yielded to be added up before
 * the norm after it, which needs the whole sum.
 */
import type { AttentionBlock, DecoderLayer, FfnBlock, LayerYield, StepContext } from './types.js';
import type { Scratch, Workspace } from './workspace.js';

/** A sandwich-norm layer's norm weights (declared with pre-norm-layer.ts's declarePreNorm, by PRE_NORMS' names). */
export interface SandwichNorms {
  readonly attention: Float32Array;
  readonly postAttention: Float32Array;
  readonly ffn: Float32Array;
  readonly postFfn: Float32Array;
}

/** One sandwich-norm decoder layer. */
export class SandwichNormLayer implements DecoderLayer {
  private readonly h: Scratch;
  private readonly t: Scratch;

  constructor(
    private readonly norms: SandwichNorms,
    private readonly attention: AttentionBlock,
    private readonly ffn: FfnBlock,
    private readonly eps: number,
    ws: Workspace,
  ) {
    this.h = ws.buffer('layer.normed', norms.attention.length);
    this.t = ws.buffer('layer.out', norms.attention.length);
  }

  *forward(x: Float32Array, step: StepContext): Generator<LayerYield, void, void> {
    const { kernels, n } = step;
    const { norms, eps } = this;
    const d = norms.attention.length;
    const h = this.h.rows(n);
    const t = this.t.rows(n);
    kernels.rmsNorm(x, norms.attention, n, d, eps, h);
    this.attention.forward(h, t, step);
    if (step.split) yield t;
    kernels.rmsNorm(t, norms.postAttention, n, d, eps, t);
    kernels.add(x, t, n * d, x);
    kernels.rmsNorm(x, norms.ffn, n, d, eps, h);
    if (this.ffn.dispatches) yield* this.ffn.forwardSteps!(h, t, step);
    else this.ffn.forward(h, t, step);
    if (step.split) yield t;
    kernels.rmsNorm(t, norms.postFfn, n, d, eps, t);
    kernels.add(x, t, n * d, x);
  }
}
