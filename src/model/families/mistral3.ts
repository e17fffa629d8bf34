/**
 * Mistral Small 3.1 / 3.2, Devstral, Magistral and Ministral 3 (GGUF architecture `mistral3`;
 * llama.cpp's models/mistral3.cpp): the Llama decoder (grouped-query attention with adjacent-pair
 * rope, optional biases and rope frequency factors, a dense SwiGLU FFN), plus what Ministral 3
 * adds: YaRN with its own ramp ends (`rope.scaling.yarn_beta_fast` / `_slow`) and magnitude
 * (`rope.scaling.yarn_log_multiplier`, mscale_all_dim as it is), and Llama 4's attention
 * temperature (`attention.temperature_scale`): each query multiplied by
 * log(floor(position / original context) + 1) x scale + 1 after rope. The Mixture-of-Experts
 * variant the architecture allows is not run (Mistral's MoE files are `deepseek2` or `mistral4`).
 */
import { CairnError } from '../../util/errors.js';
import type { Metadata } from '../../gguf/metadata.js';
import { gv } from '../../gguf/values.js';
import type { ModelConfig } from '../config.js';
import type { ModelFamily } from '../family.js';
import { DenseFfn, declareDenseFfn } from '../blocks/dense-ffn.js';
import { GqaAttention, checkGqaConfig, declareGqa, gqaShape, type GqaShape, type GqaTensors } from '../blocks/gqa-attention.js';
import { PreNormLayer, declarePreNorm } from '../blocks/pre-norm-layer.js';
import { GpuDenseFfn, GpuGqaAttention, GpuPreNormLayer } from '../gpu/gpu-blocks.js';
import type { TensorSource } from '../tensor-source.js';
import { readDecoderConfig, writeDecoderKeys } from './decoder-keys.js';
import {
  denseDecoderGpuOutput,
  denseDecoderInput,
  denseDecoderLayerPlan,
  denseDecoderOutput,
  describeDenseDecoder,
  synthesizeDenseDecoder,
} from './dense-decoder.js';

/** Mistral 3's hyperparameters beyond the shared decoder's. */
export interface Mistral3Config extends ModelConfig {
  /** Llama 4's attention temperature, where the file sets one. */
  readonly temperature?: { readonly scale: number; readonly floor: number };
}

/** llama.cpp's mistral3 loader: Q/K/V biases and rope factors where the file has them, an output bias where it has one. */
const TENSORS: GqaTensors = { qkvBias: 'optional', outputBias: true, qkNorm: false, ropeFreqs: true };

function readMistral3(m: Metadata, arch: string): Mistral3Config {
  const path = m.file.path;
  const k = (suffix: string) => `${arch}.${suffix}`;
  const logMul = m.number(k('rope.scaling.yarn_log_multiplier')) ?? 0;
  if (!Number.isFinite(logMul))
    throw new CairnError('GGUF_MALFORMED', `${path}: "${k('rope.scaling.yarn_log_multiplier')}" is ${logMul}, not a finite number`);
  const base = readDecoderConfig(m, arch, 'normal', { yarnLogMul: logMul, yarnBetas: true });
  checkGqaConfig(base, path);
  if ((m.number(k('expert_count')) ?? 0) > 0) {
    throw new CairnError(
      'MODEL_UNSUPPORTED',
      `${path}: mistral3 with experts is not supported (Mistral's Mixture-of-Experts files are deepseek2)`,
    );
  }
  const scale = m.number(k('attention.temperature_scale')) ?? 0;
  if (!Number.isFinite(scale))
    throw new CairnError('GGUF_MALFORMED', `${path}: "${k('attention.temperature_scale')}" is ${scale}, not a finite number`);
  if (scale === 0) return base;
  // llama.cpp floors positions by the original context of YaRN (its n_ctx_orig_yarn).
  const floor = m.number(k('rope.scaling.original_context_length')) ?? base.ctxTrain;
  if (!(Number.isSafeInteger(floor) && floor > 0))
    throw new CairnError('GGUF_MALFORMED', `${path}: the attention temperature needs an original context, got ${floor}`);
  return { ...base, temperature: { scale, floor } };
}

function shapeOf(cfg: Mistral3Config): GqaShape {
  return { ...gqaShape(cfg), ...(cfg.temperature ? { temperature: cfg.temperature } : {}) };
}

/** Where the file has FFN biases (llama.cpp loads them if present), which the dense FFN here has not. */
function checkNoFfnBias(src: TensorSource, p: string): void {
  for (const part of ['gate', 'up', 'down']) {
    const name = `${p}ffn_${part}.bias`;
    if (src.has(name)) throw new CairnError('MODEL_UNSUPPORTED', `${src.path}: "${name}": FFN biases are not supported`);
  }
}

/** Layer l's weights in llama.cpp's order: attention norm, attention, FFN norm, FFN. */
function declareLayer(cfg: Mistral3Config, l: number, src: TensorSource) {
  const p = `blk.${l}.`;
  checkNoFfnBias(src, p);
  const shape = shapeOf(cfg);
  const attnNorm = declarePreNorm(src, p, 'attention', cfg.nEmbd);
  const attention = declareGqa(src, p, shape, TENSORS);
  const ffnNorm = declarePreNorm(src, p, 'ffn', cfg.nEmbd);
  return { shape, attnNorm, attention, ffnNorm, ffn: declareDenseFfn(src, p, cfg.nEmbd, cfg.nFf) };
}

/** The Mistral 3 family. */
export const mistral3Family: ModelFamily<Mistral3Config> = {
  name: 'Mistral 3',
  architectures: ['mistral3'],
  readConfig: readMistral3,
  layerPlan: (cfg) => denseDecoderLayerPlan(cfg),
  describe: (cfg) => `${describeDenseDecoder(cfg)}${cfg.temperature ? `, attention temperature ${cfg.temperature.scale}` : ''}`,
  input: (cfg, src) => denseDecoderInput(cfg, src),
  layer(cfg, l, src, ws) {
    const d = declareLayer(cfg, l, src);
    return new PreNormLayer(d.attnNorm, new GqaAttention(d.shape, d.attention, ws), d.ffnNorm, new DenseFfn(d.ffn, ws), cfg.rmsEps, ws);
  },
  output: (cfg, src) => denseDecoderOutput(cfg, src),
  gpu: {
    layer(cfg, l, src, ws) {
      if (cfg.temperature)
        throw new CairnError(
          'MODEL_UNSUPPORTED',
          `${src.path}: the attention temperature (Ministral 3) does not run on the GPU yet; use --backend cpu`,
        );
      const d = declareLayer(cfg, l, src);
      return new GpuPreNormLayer(
        d.attnNorm,
        new GpuGqaAttention(d.shape, d.attention, ws),
        d.ffnNorm,
        new GpuDenseFfn(d.ffn, ws),
        cfg.rmsEps,
        ws,
      );
    },
    output: (cfg, src, ws) => denseDecoderGpuOutput(cfg, src, ws),
  },
  synthetic: {
    shapes: {
      'ministral3-3b': {
        arch: 'mistral3',
        nEmbd: 3072,
        nLayer: 26,
        nHead: 32,
        nKvHead: 8,
        headDim: 128,
        nFf: 9216,
        nVocab: 131072,
        ctx: 262144,
        ropeBase: 1000000,
        tied: true,
        yarn: { factor: 16, origCtx: 16384 },
        yarnLogMul: 1,
        attnTemperature: 0.1,
      },
    },
    write(spec, out) {
      synthesizeDenseDecoder(spec, out, TENSORS);
      writeDecoderKeys(spec, out);
      const a = spec.arch;
      if (spec.yarnLogMul !== undefined) out.meta(`${a}.rope.scaling.yarn_log_multiplier`, gv.f32(spec.yarnLogMul));
      if (spec.attnTemperature !== undefined) out.meta(`${a}.attention.temperature_scale`, gv.f32(spec.attnTemperature));
    },
  },
};
