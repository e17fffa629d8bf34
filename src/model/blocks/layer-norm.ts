/**
 * LayerNorm with a gain and a bias (BERT's norms), as ggml's norm followed by llama.cpp's mul and
 * add: each row minus its mean, scaled by 1/sqrt(variance + eps), then times the weight plus the
 * bias. A TypeScript loop: it touches each element a few times, against the matrix products'
 * hundreds of multiply-adds per element, so it is not where an encoder spends its time.
 */
import type { TensorSource } from '../tensor-source.js';
import type { SyntheticTensors } from '../synthetic-tensors.js';

/** A LayerNorm's gain and bias (nEmbd each). */
export interface LayerNormWeights {
  readonly weight: Float32Array;
  readonly bias: Float32Array;
}

/** Declares `<prefix>.weight` and `<prefix>.bias` of `dim` elements. */
export function declareLayerNorm(src: TensorSource, prefix: string, dim: number): LayerNormWeights {
  return { weight: src.vector(`${prefix}.weight`, dim), bias: src.vector(`${prefix}.bias`, dim) };
}

/** Writes a LayerNorm's gain (near 1) and bias (near 0) into a synthetic model. */
export function synthesizeLayerNorm(out: SyntheticTensors, prefix: string, dim: number): void {
  out.f32(`${prefix}.weight`, [dim], 0.1, 1);
  out.f32(`${prefix}.bias`, [dim], 0.05);
}

/**
 * out[r, :] = (x[r, :] - mean) / sqrt(var + eps) * weight + bias for `rows` rows of `dim`, with the
 * mean and variance summed in f64 and each element's steps rounded to f32 as ggml's are. out may alias x.
 */
export function layerNorm(x: Float32Array, w: LayerNormWeights, rows: number, dim: number, eps: number, out: Float32Array): void {
  if (x.length < rows * dim || out.length < rows * dim || w.weight.length !== dim || w.bias.length !== dim) {
    throw new RangeError(`layer norm of ${rows} rows of ${dim}: buffers too small`);
  }
  const { weight, bias } = w;
  for (let r = 0, o = 0; r < rows; r++, o += dim) {
    let sum = 0;
    for (let i = 0; i < dim; i++) sum += x[o + i];
    const mean = Math.fround(sum / dim);
    let sq = 0;
    for (let i = 0; i < dim; i++) {
      const d = Math.fround(x[o + i] - mean);
      out[o + i] = d;
      sq += d * d;
    }
    const scale = Math.fround(1 / Math.sqrt(Math.fround(Math.fround(sq / dim) + eps)));
    for (let i = 0; i < dim; i++) out[o + i] = Math.fround(Math.fround(out[o + i] * scale) * weight[i]) + bias[i];
  }
}
