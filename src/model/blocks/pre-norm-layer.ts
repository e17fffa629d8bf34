/**
 * The pre-norm residual layer of Llama-style decoders: x += attention(norm(x)); x += ffn(norm(x)),
 * with RMSNorm. Any AttentionBlock and FfnBlock fit, so one layer may be dense and the next MoE.
 */
import type { TensorSource } from '../tensor-source.js';
import type { SyntheticTensors } from '../synthetic-tensors.js';
import type { AttentionBlock, DecoderLayer, FfnBlock, LayerYield, StepContext } from './types.js';
import type { Scratch, Workspace } from './workspace.js';

/**
 * Norm weights of a layer, by llama.cpp's names: before attention and before the FFN (`ffn_norm`;
 * GLM-4.5 and gpt-oss call theirs `post_attention_norm`, after HF's name, though it is the same
 * pre-FFN norm); Gemma's sandwich-norm layers (sandwich-norm-layer.ts) also norm each branch's
 * output, with `post_attention_norm` and `post_ffw_norm`.
 */
export const PRE_NORMS = {
  attention: 'attn_norm.weight',
  ffn: 'ffn_norm.weight',
  postAttention: 'post_attention_norm.weight',
  postFfn: 'post_ffw_norm.weight',
} as const;

/** Declares one of a pre-norm layer's norm weights under `prefix`. */
export function declarePreNorm(src: TensorSource, prefix: string, which: keyof typeof PRE_NORMS, nEmbd: number): Float32Array {
  return src.vector(prefix + PRE_NORMS[which], nEmbd);
}

/** Writes one of a pre-norm layer's norm weights into a synthetic model (near 1). */
export function synthesizePreNorm(out: SyntheticTensors, prefix: string, which: keyof typeof PRE_NORMS, nEmbd: number): void {
  out.f32(prefix + PRE_NORMS[which], [nEmbd], 0.1, 1);
}

/** One pre-norm decoder layer. */
export class PreNormLayer implements DecoderLayer {
  private readonly h: Scratch;
  private readonly t: Scratch;

  constructor(
    private readonly attnNorm: Float32Array,
    private readonly attention: AttentionBlock,
    private readonly ffnNorm: Float32Array,
    private readonly ffn: FfnBlock,
    private readonly eps: number,
    ws: Workspace,
  ) {
    this.h = ws.buffer('layer.normed', attnNorm.length);
    this.t = ws.buffer('layer.out', attnNorm.length);
  }

  *forward(x: Float32Array, step: StepContext): Generator<LayerYield, void, void> {
    const { kernels, n } = step;
    const d = this.attnNorm.length;
    const h = this.h.rows(n);
    const t = this.t.rows(n);
    kernels.rmsNorm(x, this.attnNorm, n, d, this.eps, h);
    this.attention.forward(h, t, step);
    if (step.split) yield t;
    kernels.add(x, t, n * d, x);
    kernels.rmsNorm(x, this.ffnNorm, n, d, this.eps, h);
    // Only an expert-parallel home's block runs as a generator: an unsplit step makes none.
    if (this.ffn.dispatches) yield* this.ffn.forwardSteps!(h, t, step);
    else this.ffn.forward(h, t, step);
    if (step.split) yield t;
    kernels.add(x, t, n * d, x);
  }
}
