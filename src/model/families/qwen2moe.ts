/**
 * Qwen1.5-MoE and Qwen2-MoE (GGUF architecture `qwen2moe`): Qwen2's attention (Q/K/V biases where
 * the file has them, neox rope) and in every layer an MoE FFN: softmax over all experts, the top k
 * weighted by their probabilities as they are (never renormalized in llama.cpp), plus one shared
 * expert of its own width whose output is scaled per token by sigmoid(ffn_gate_inp_shexp · x).
 * The head is never tied to the embedding.
 */
import type { Metadata } from '../../gguf/metadata.js';
import { checkGqaConfig, type GqaTensors } from '../blocks/gqa-attention.js';
import type { ModelFamily } from '../family.js';
import { readDecoderConfig, writeDecoderKeys } from './decoder-keys.js';
import { readMoeConfig, writeMoeKeys, type MoeKeyRules, type MoeModelConfig } from './moe-keys.js';
import { moeDecoderMethods, synthesizeMoeDecoder, syntheticMoeConfig, type MoeDecoderParts } from './moe-decoder.js';

/** llama.cpp's Qwen2-MoE loader: Q/K/V biases optional, no output bias, `output.weight` required. */
const ATTENTION: GqaTensors = { qkvBias: 'optional', outputBias: false, qkNorm: false, ropeFreqs: false };
const PARTS: MoeDecoderParts = {
  attention: ATTENTION,
  ffnNorm: 'ffn',
  moe: { router: { logitBias: false, selectionBias: 'none' }, gate: 'required', expertBiases: false },
  tiedAllowed: false,
};
const KEYS: MoeKeyRules = {
  width: { key: 'optional', fallback: 'nFf/used' },
  gating: { fixed: 'softmax' },
  normalize: false,
  readScale: false,
  shared: 'gated',
  readLeadingDense: false,
};

function readQwen2Moe(meta: Metadata, arch: string): MoeModelConfig {
  const cfg = readDecoderConfig(meta, arch, 'neox', { ffnRequired: false });
  checkGqaConfig(cfg, meta.file.path);
  return { ...cfg, moe: readMoeConfig(meta, arch, cfg.nLayer, cfg.nFf, KEYS) };
}

/** The Qwen2-MoE family. */
export const qwen2MoeFamily: ModelFamily<MoeModelConfig> = {
  name: 'Qwen2-MoE',
  architectures: ['qwen2moe'],
  readConfig: readQwen2Moe,
  ...moeDecoderMethods(PARTS),
  synthetic: {
    shapes: {},
    write(spec, out) {
      synthesizeMoeDecoder(spec, out, PARTS, syntheticMoeConfig(spec, true));
      writeDecoderKeys(spec, out);
      writeMoeKeys(spec, out, { width: true, shared: 'gated' });
    },
  },
};
