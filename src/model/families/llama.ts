/**
 * Llama 1/2/3/3.1/3.2 and Mistral (GGUF architecture `llama`): grouped-query attention with
 * adjacent-pair rope, optional Q/K/V/output biases and Llama 3's rope frequency factors, and a dense
 * SwiGLU FFN. Mixtral files share the architecture name: with `llama.expert_count` every layer's FFN
 * is a Mixture of Experts of `feed_forward_length` each (softmax over all experts, the top k
 * renormalized, no shared experts), the experts' gate tensor optional as llama.cpp loads it.
 */
import type { GqaTensors } from '../blocks/gqa-attention.js';
import { checkGqaConfig } from '../blocks/gqa-attention.js';
import { CairnError } from '../../util/errors.js';
import type { Metadata } from '../../gguf/metadata.js';
import type { ModelConfig } from '../config.js';
import type { ModelFamily } from '../family.js';
import { readDecoderConfig, writeDecoderKeys } from './decoder-keys.js';
import { COPY_PERIOD_KEY, COPY_ROPE_BASE, synthesizeCopyDecoder } from './copy-decoder.js';
import { gv } from '../../gguf/values.js';
import { isMoeConfig, readMoeConfig, writeMoeKeys, type MoeKeyRules, type MoeModelConfig } from './moe-keys.js';
import {
  describeMoeDecoder,
  moeDecoderGpuLayer,
  moeDecoderGpuOutput,
  moeDecoderLayer,
  moeDecoderLayerPlan,
  moeDecoderOutput,
  moeDecoderRoutedExperts,
  synthesizeMoeDecoder,
  syntheticMoeConfig,
  type MoeDecoderParts,
} from './moe-decoder.js';
import {
  denseDecoderInput,
  denseDecoderLayer,
  denseDecoderLayerPlan,
  denseDecoderGpuLayer,
  denseDecoderGpuOutput,
  denseDecoderOutput,
  describeDenseDecoder,
  synthesizeDenseDecoder,
} from './dense-decoder.js';

/** llama.cpp's Llama loader: biases and rope factors only where the file has them. */
const TENSORS: GqaTensors = { qkvBias: 'optional', outputBias: true, qkNorm: false, ropeFreqs: true };

/** Mixtral as llama.cpp's llama loader and graph run it. */
const MOE_PARTS: MoeDecoderParts = {
  attention: TENSORS,
  ffnNorm: 'ffn',
  moe: { router: { logitBias: false, selectionBias: 'none' }, gate: 'optional', expertBiases: false },
  tiedAllowed: true,
};
const MOE_KEYS: MoeKeyRules = {
  width: { key: 'none', fallback: 'nFf' },
  gating: { fixed: 'softmax' },
  normalize: true,
  readScale: false,
  shared: 'none',
  readLeadingDense: false,
};

/** Mixtral files converted before April 2024: each expert's matrices as tensors of their own. */
const LEGACY_EXPERT = /^blk\.\d+\.ffn_(gate|up|down)\.\d+\.weight$/;

/** Mixtral's config when the file has experts. */
function readLlama(meta: Metadata, arch: string): ModelConfig | MoeModelConfig {
  const cfg = readDecoderConfig(meta, arch, 'normal');
  checkGqaConfig(cfg, meta.file.path);
  if ((meta.number(`${arch}.expert_count`) ?? 0) === 0) return cfg;
  const split = meta.file.tensors.find((t) => LEGACY_EXPERT.test(t.name));
  if (split) {
    throw new CairnError(
      'MODEL_UNSUPPORTED',
      `${meta.file.path}: Mixtral with one tensor per expert ("${split.name}", written by converters before April 2024) is not supported; llama.cpp no longer loads it either: convert the model again`,
    );
  }
  return { ...cfg, moe: readMoeConfig(meta, arch, cfg.nLayer, cfg.nFf, MOE_KEYS) };
}

/** The Llama / Mistral family. */
export const llamaFamily: ModelFamily = {
  name: 'Llama / Mistral',
  architectures: ['llama'],
  readConfig: readLlama,
  layerPlan: (cfg, l) => (isMoeConfig(cfg) ? moeDecoderLayerPlan(cfg, l) : denseDecoderLayerPlan(cfg)),
  describe: (cfg) => (isMoeConfig(cfg) ? describeMoeDecoder(cfg) : describeDenseDecoder(cfg)),
  input: (cfg, src) => denseDecoderInput(cfg, src),
  layer: (cfg, l, src, ws) =>
    isMoeConfig(cfg) ? moeDecoderLayer(cfg, l, src, ws, MOE_PARTS) : denseDecoderLayer(cfg, l, src, ws, TENSORS),
  routedExperts: (cfg, l, src, ws) => (isMoeConfig(cfg) ? moeDecoderRoutedExperts(cfg, l, src, ws, MOE_PARTS) : undefined),
  output: (cfg, src) => (isMoeConfig(cfg) ? moeDecoderOutput(cfg, src, MOE_PARTS) : denseDecoderOutput(cfg, src)),
  gpu: {
    layer: (cfg, l, src, ws) => (isMoeConfig(cfg) ? moeDecoderGpuLayer(cfg, l, src, ws, MOE_PARTS) : denseDecoderGpuLayer(cfg, l, src, ws, TENSORS)),
    output: (cfg, src, ws) => (isMoeConfig(cfg) ? moeDecoderGpuOutput(cfg, src, ws, MOE_PARTS) : denseDecoderGpuOutput(cfg, src, ws)),
  },
  synthetic: {
    shapes: {
      'llama-1b': { arch: 'llama', nEmbd: 2048, nLayer: 16, nHead: 32, nKvHead: 8, nFf: 8192, nVocab: 32000, ctx: 4096, ropeBase: 500000 },
      'llama-8b': { arch: 'llama', nEmbd: 4096, nLayer: 32, nHead: 32, nKvHead: 8, nFf: 14336, nVocab: 32000, ctx: 8192, ropeBase: 500000 },
    },
    write(spec, out) {
      if (spec.moe) {
        // The experts are feed_forward_length wide.
        synthesizeMoeDecoder(spec, out, MOE_PARTS, { ...syntheticMoeConfig(spec), width: spec.nFf });
        writeDecoderKeys(spec, out);
        writeMoeKeys(spec, out, { width: false });
      } else if (spec.copyPeriod !== undefined) {
        synthesizeCopyDecoder(spec, out, spec.copyPeriod);
        writeDecoderKeys({ ...spec, ropeBase: COPY_ROPE_BASE }, out);
        out.meta(COPY_PERIOD_KEY, gv.u32(spec.copyPeriod));
      } else {
        synthesizeDenseDecoder(spec, out, TENSORS);
        writeDecoderKeys(spec, out);
      }
    },
  },
};
