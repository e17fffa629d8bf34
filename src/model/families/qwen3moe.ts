/**
 * Qwen3 Mixture-of-Experts models (GGUF architecture `qwen3moe`: Qwen3-30B-A3B, Qwen3-235B-A22B):
 * Qwen3's attention (per-head Q/K RMSNorm, head size set on its own, neox rope) and in every layer
 * an MoE FFN: softmax over all experts, the top k renormalized (hard-coded in llama.cpp), no
 * shared experts.
 */
import type { Metadata } from '../../gguf/metadata.js';
import { checkGqaConfig, type GqaTensors } from '../blocks/gqa-attention.js';
import type { ModelFamily } from '../family.js';
import { readDecoderConfig, writeDecoderKeys } from './decoder-keys.js';
import { readMoeConfig, writeMoeKeys, type MoeKeyRules, type MoeModelConfig } from './moe-keys.js';
import { moeDecoderMethods, synthesizeMoeDecoder, syntheticMoeConfig, type MoeDecoderParts } from './moe-decoder.js';

/** llama.cpp's Qwen3-MoE loader: Q/K norms required, Q/K/V biases where the file has them. */
const ATTENTION: GqaTensors = { qkvBias: 'optional', outputBias: false, qkNorm: true, ropeFreqs: false };
const PARTS: MoeDecoderParts = {
  attention: ATTENTION,
  ffnNorm: 'ffn',
  moe: { router: { logitBias: false, selectionBias: 'none' }, gate: 'required', expertBiases: false },
  tiedAllowed: true,
};
const KEYS: MoeKeyRules = {
  width: { key: 'optional', fallback: 'nFf/used' },
  gating: { fixed: 'softmax' },
  normalize: true,
  readScale: false,
  shared: 'none',
  readLeadingDense: false,
};

function readQwen3Moe(meta: Metadata, arch: string): MoeModelConfig {
  const cfg = readDecoderConfig(meta, arch, 'neox', { ffnRequired: false });
  checkGqaConfig(cfg, meta.file.path);
  return { ...cfg, moe: readMoeConfig(meta, arch, cfg.nLayer, cfg.nFf, KEYS) };
}

/** The Qwen3-MoE family. */
export const qwen3MoeFamily: ModelFamily<MoeModelConfig> = {
  name: 'Qwen3-MoE',
  architectures: ['qwen3moe'],
  readConfig: readQwen3Moe,
  ...moeDecoderMethods(PARTS),
  synthetic: {
    shapes: {
      // Qwen3-30B-A3B with 24 of its 48 layers (half its weights, the same active width per layer).
      'qwen3-moe-15b-a2b': {
        arch: 'qwen3moe',
        nEmbd: 2048,
        nLayer: 24,
        nHead: 32,
        nKvHead: 4,
        headDim: 128,
        nFf: 6144,
        nVocab: 151936,
        ctx: 4096,
        ropeBase: 1000000,
        moe: { experts: 128, used: 8, width: 768 },
      },
    },
    write(spec, out) {
      synthesizeMoeDecoder(spec, out, PARTS, syntheticMoeConfig(spec));
      writeDecoderKeys(spec, out);
      writeMoeKeys(spec, out, { width: true });
    },
  },
};
