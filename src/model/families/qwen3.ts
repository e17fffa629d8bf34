/**
 * Qwen3 dense models (GGUF architecture `qwen3`): grouped-query attention with per-head RMSNorm of
 * queries and keys, a head size set on its own (`qwen3.attention.key_length`), neox rope, no biases,
 * and a dense SwiGLU FFN. (Qwen3 MoE files are architecture `qwen3moe`, a family of their own.)
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

/** llama.cpp's Qwen3 loader: Q/K norms required, no biases. */
const TENSORS: GqaTensors = { qkvBias: 'none', outputBias: false, qkNorm: true, ropeFreqs: false };

/** The Qwen3 family. */
export const qwen3Family: ModelFamily = {
  name: 'Qwen3',
  architectures: ['qwen3'],
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
    shapes: {
      'qwen3-0.6b': {
        arch: 'qwen3',
        nEmbd: 1024,
        nLayer: 28,
        nHead: 16,
        nKvHead: 8,
        headDim: 128,
        nFf: 3072,
        nVocab: 32000,
        ctx: 4096,
        ropeBase: 1000000,
        tied: true,
      },
    },
    write(spec, out) {
      synthesizeDenseDecoder(spec, out, TENSORS);
      writeDecoderKeys(spec, out);
    },
  },
};
