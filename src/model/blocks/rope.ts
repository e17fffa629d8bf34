/**
 * Rotary position embeddings, in the variants the families use: adjacent pairs (`normal`, Llama) or
 * halves (`neox`, Qwen), partial rotation (nRot < head size), linear position scaling, and Llama 3's
 * per-frequency factors (`rope_freqs`). YaRN (a frequency ramp and an attention factor, beyond the
 * kernel's parameters) rotates through its own block, yarn-rope.ts, chosen here from the config.
 */
import type { Kernels, RopeParams } from '../../kernels/api.js';
import type { RopeConfig } from '../config.js';
import type { SyntheticTensors } from '../synthetic-tensors.js';
import { YarnRope } from './yarn-rope.js';

/** The rotation one attention block applies to its queries and keys. */
export class Rope {
  private readonly params: RopeParams;
  private readonly yarn?: YarnRope;

  constructor(cfg: RopeConfig, freqFactors?: Float32Array) {
    this.params = { mode: cfg.mode, nRot: cfg.nRot, freqBase: cfg.freqBase, freqScale: cfg.freqScale, freqFactors };
    if (cfg.yarn) this.yarn = new YarnRope(cfg, freqFactors);
  }

  /** Rotates x (n x heads x headDim) in place at the given positions. */
  apply(kernels: Kernels, x: Float32Array, n: number, heads: number, headDim: number, positions: Int32Array): void {
    if (this.yarn) this.yarn.apply(x, n, heads, headDim, positions);
    else kernels.rope(x, n, heads, headDim, positions, this.params);
  }
}

/** llama.cpp's name of Llama 3's rope frequency factors (one tensor for all layers). */
export const ROPE_FREQS = 'rope_freqs.weight';

/** Writes Llama 3.1 style frequency factors into a synthetic model: low frequencies stretched by up to 8x. */
export function synthesizeRopeFreqs(out: SyntheticTensors, nRot: number): void {
  const half = nRot / 2;
  out.constant(
    ROPE_FREQS,
    new Float32Array(half).map((_, i) => 1 + (7 * i) / Math.max(1, half - 1)),
  );
}
