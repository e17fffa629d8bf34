/**
 * Qwen2 and Qwen2.5 (GGUF architecture `qwen2`): grouped-query attention with Q/K/V biases and
 * neox (half-split) rope, a dense SwiGLU FFN, often a head tied to the embedding.
 */
import type { GqaTensors } from '../blocks/gqa-attention.js';
import { checkGqaConfig } from '../blocks/gqa-attention.js';
import type { ModelFamily } from '../family.js';
import { readDecoderConfig, writeDecoderKeys } from './decoder-keys.js';
import {
  denseDecoderInput,
  denseDecoderLayer,
  denseDecoderLayerPlan,
  denseDecoderGpu,
  denseDecoderOutput,
  describeDenseDecoder,
  synthesizeDenseDecoder,
} from './dense-decoder.js';

/** llama.cpp's Qwen2 loader: the Q/K/V biases are required, nothing else optional. */
const TENSORS: GqaTensors = { qkvBias: 'required', outputBias: false, qkNorm: false, ropeFreqs: false };

/** The Qwen2 family. */
export const qwen2Family: ModelFamily = {
  name: 'Qwen2',
  architectures: ['qwen2'],
  readConfig(meta, arch) {
    const cfg = readDecoderConfig(meta, arch, 'neox');
    checkGqaConfig(cfg, meta.file.path);
    return cfg;
  },
  layerPlan: (cfg) => denseDecoderLayerPlan(cfg),
  describe: describeDenseDecoder,
  input: (cfg, src) => denseDecoderInput(cfg, src),
  layer: (cfg, l, src, ws) => denseDecoderLayer(cfg, l, src, ws, TENSORS),
  output: (cfg, src) => denseDecoderOutput(cfg, src),
  gpu: denseDecoderGpu(TENSORS),
  synthetic: {
    shapes: {},
    write(spec, out) {
      synthesizeDenseDecoder(spec, out, TENSORS);
      writeDecoderKeys(spec, out);
    },
  },
};
