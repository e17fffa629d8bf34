/**
 * YaRN rotary embeddings exactly as ggml's CPU rope_ext computes them (ggml-cpu/ops.cpp rope_yarn,
 * ggml.c ggml_rope_yarn_corr_dims) and as llama.cpp sets their per-context constants
 * (llama-context.cpp): frequencies below the "slow" correction dimension are interpolated
 * (position x freqScale), those above the "fast" one extrapolated (unscaled), with a linear ramp
 * between; cos and sin are scaled by the attention factor times YaRN's magnitude correction
 * 1 + 0.1 ln(1 / freqScale). Every step is rounded to f32 where ggml rounds it.
 *
 * The kernel API's rope has no ramp or magnitude, so this block rotates in TypeScript: per token it
 * computes nRot/2 angles (two libm calls each) and then rotates every head, a few flops per element
 * next to the projections' hundreds. It takes any layout: heads at a stride, the rotated dims at an
 * offset (MLA ropes the tail of each query head and of the shared key row).
 */
import type { RopeMode } from '../../kernels/api.js';
import type { RopeConfig, YarnConfig } from '../config.js';

const f = Math.fround;
const F32_0_1 = f(0.1);
const F32_0_001 = f(0.001);

/** ggml's beta_fast and beta_slow defaults; the families here never read the file's own (llama.cpp does not). */
export const YARN_BETA_FAST = 32;
export const YARN_BETA_SLOW = 1;

/** `logf` of an f32: the double logarithm rounded to f32. */
const logf = (x: number): number => f(Math.log(f(x)));

/** YaRN's magnitude scale for a context scaled by `scale` (llama-context.cpp get_mscale). */
function getMscale(scale: number, mscale: number): number {
  return scale <= 1 ? 1 : f(f(f(F32_0_1 * f(mscale)) * logf(scale)) + 1);
}

/** What llama.cpp's context takes from the file to set the rope ops' attention factor. */
export interface YarnAttnFactorInputs {
  /** 1 / rope.scaling.factor. */
  readonly freqScale: number;
  /** 1 for YaRN, 0 otherwise. */
  readonly extFactor: number;
  /** deepseek2's `rope.scaling.yarn_log_multiplier` / 0.1 (mscale_all_dim); 0 where the family does not read it. */
  readonly logMul?: number;
  /** llama.cpp special-cases DeepSeek V2's mscale == mscale_all_dim for architecture `deepseek2`. */
  readonly deepseek2?: boolean;
  /** `rope.scaling.attn_factor` (default 1). */
  readonly ropeAttnFactor?: number;
}

/**
 * The attention factor llama.cpp passes to every rope op (cparams.yarn_attn_factor): YaRN's
 * get_mscale of the scaling factor (or DeepSeek's ratio of two), divided by the magnitude the rope
 * op multiplies back in, times the file's rope.scaling.attn_factor.
 */
export function yarnAttnFactor(p: YarnAttnFactorInputs): number {
  let attn = 1;
  if (p.extFactor !== 0) {
    const factor = f(1 / f(p.freqScale));
    const logMul = f(p.logMul ?? 0);
    if (logMul !== 0) {
      const mscale = p.deepseek2 && logMul !== 1 ? logMul : 1;
      attn = f(getMscale(factor, mscale) / getMscale(factor, logMul));
    } else {
      attn = getMscale(factor, 1);
    }
    attn = f(attn * f(1 / f(1 + f(F32_0_1 * logf(factor)))));
  }
  return f(attn * f(p.ropeAttnFactor ?? 1));
}

/** One correction dimension: where `nDims` dims make `beta` rotations over the original context. */
function corrDim(nDims: number, origCtx: number, beta: number, base: number): number {
  const rotations = f(f(f(beta * 2) * f(Math.PI)));
  return f(f(nDims * logf(f(origCtx / rotations))) / f(2 * logf(base)));
}

/** The pair indices where YaRN's ramp starts and ends (ggml_rope_yarn_corr_dims). */
export function yarnCorrDims(nDims: number, origCtx: number, base: number, betaFast: number, betaSlow: number): [number, number] {
  const start = Math.floor(corrDim(nDims, origCtx, betaFast, base));
  const end = Math.ceil(corrDim(nDims, origCtx, betaSlow, base));
  return [Math.max(0, start), Math.min(nDims - 1, end)];
}

/** Where the rotated dims of each head sit in the array a YarnRope rotates. */
export interface RopeLayout {
  /** Elements from one token's first head to the next token's. */
  readonly tokenStride: number;
  /** Elements from one head to the next within a token. */
  readonly headStride: number;
  /** Offset of the first rotated element within a head. */
  readonly offset: number;
}

/** One rope_ext configuration: angles per position, applied to any head layout. */
export class YarnRope {
  private readonly mode: RopeMode;
  private readonly nRot: number;
  private readonly freqScale: number;
  private readonly thetaScale: number;
  private readonly extFactor: number;
  private readonly mscale: number;
  private readonly low: number;
  private readonly rampWidth: number;
  private readonly cos: Float64Array;
  private readonly sin: Float64Array;
  private cachedPos = Number.NaN;

  constructor(
    cfg: RopeConfig,
    private readonly freqFactors?: Float32Array,
  ) {
    const y: YarnConfig = cfg.yarn ?? { extFactor: 0, attnFactor: 1, betaFast: YARN_BETA_FAST, betaSlow: YARN_BETA_SLOW, origCtx: 0 };
    if (!(cfg.nRot > 0 && cfg.nRot % 2 === 0)) throw new RangeError(`rope dims ${cfg.nRot} must be even and positive`);
    if (freqFactors && freqFactors.length < cfg.nRot / 2) throw new RangeError('rope frequency factors are too short');
    this.mode = cfg.mode;
    this.nRot = cfg.nRot;
    this.freqScale = f(cfg.freqScale);
    this.thetaScale = f(Math.pow(f(cfg.freqBase), f(-2 / cfg.nRot)));
    this.extFactor = f(y.extFactor);
    // rope_yarn: the magnitude grows by 1 + 0.1 ln(1/freqScale) only where the ramp is on.
    const attn = f(y.attnFactor);
    this.mscale = this.extFactor !== 0 ? f(attn * f(1 + f(F32_0_1 * logf(f(1 / this.freqScale))))) : attn;
    const [low, high] = this.extFactor !== 0 ? yarnCorrDims(cfg.nRot, y.origCtx, cfg.freqBase, y.betaFast, y.betaSlow) : [0, 0];
    this.low = low;
    this.rampWidth = Math.max(F32_0_001, f(high - low));
    this.cos = new Float64Array(cfg.nRot / 2);
    this.sin = new Float64Array(cfg.nRot / 2);
  }

  /** The magnitude cos and sin are scaled by (attention factor x YaRN's correction). */
  get magnitude(): number {
    return this.mscale;
  }

  /** ggml's rope cache for one position: theta advances by repeated f32 products, one angle per pair. */
  private angles(pos: number): void {
    if (pos === this.cachedPos) return;
    const { freqScale, extFactor, mscale, freqFactors } = this;
    let theta = f(pos);
    for (let i = 0; i < this.cos.length; i++) {
      const ext = freqFactors ? f(theta / freqFactors[i]) : theta;
      const interp = f(freqScale * ext);
      let t = interp;
      if (extFactor !== 0) {
        const y = f(f(i - this.low) / this.rampWidth);
        const mix = f(f(1 - Math.min(1, Math.max(0, y))) * extFactor);
        t = f(f(interp * f(1 - mix)) + f(ext * mix));
      }
      this.cos[i] = f(f(Math.cos(t)) * mscale);
      this.sin[i] = f(f(Math.sin(t)) * mscale);
      theta = f(theta * this.thetaScale);
    }
    this.cachedPos = pos;
  }

  /**
   * The cos and sin of every pair at each of n positions, per token the nRot / 2 cosines then the
   * sines (the layout the GPU's rope reads), magnitude included.
   */
  table(positions: Int32Array, n: number): Float32Array {
    const half = this.nRot / 2;
    const out = new Float32Array(n * this.nRot);
    for (let t = 0; t < n; t++) {
      this.angles(positions[t]);
      out.set(this.cos, t * this.nRot);
      out.set(this.sin, t * this.nRot + half);
    }
    return out;
  }

  /** Rotates x (n tokens x heads x headDim, contiguous) in place; dims past nRot pass through. */
  apply(x: Float32Array, n: number, heads: number, headDim: number, positions: Int32Array): void {
    this.applyAt(x, n, heads, positions, { tokenStride: heads * headDim, headStride: headDim, offset: 0 });
  }

  /** Rotates dims [offset, offset + nRot) of each of `heads` heads of n tokens laid out as `layout` says. */
  applyAt(x: Float32Array, n: number, heads: number, positions: Int32Array, layout: RopeLayout): void {
    const { tokenStride, headStride, offset } = layout;
    const last = (n - 1) * tokenStride + (heads - 1) * headStride + offset + this.nRot;
    if (n > 0 && (last > x.length || positions.length < n)) throw new RangeError('rope: x or positions is too short for the layout');
    const half = this.nRot / 2;
    const neox = this.mode === 'neox';
    const { cos, sin } = this;
    for (let t = 0; t < n; t++) {
      this.angles(positions[t]);
      for (let h = 0; h < heads; h++) {
        const base = t * tokenStride + h * headStride + offset;
        for (let i = 0; i < half; i++) {
          // normal: pair (2i, 2i+1); neox: pair (i, i + nRot/2). Both use frequency i.
          const a = neox ? base + i : base + 2 * i;
          const b = neox ? a + half : a + 1;
          const x0 = x[a];
          const x1 = x[b];
          x[a] = f(x0 * cos[i]) - f(x1 * sin[i]);
          x[b] = f(x0 * sin[i]) + f(x1 * cos[i]);
        }
      }
    }
  }
}
