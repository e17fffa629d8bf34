/**
 * Llama 1/2/3/3.1/3.2 and Mistral (GGUF architecture `llama`): grouped-query attention with
 * adjacent-pair rope, optional Q/K/V/output biases and Llama 3's rope frequency factors, and a dense
 * SwiGLU FFN. Mixtral files share the architecture name (with `llama.expert_count`); their
 * Mixture-of-Experts FFN is not run yet and is refused at load by name.
 */
import { CairnError } from '../../util/errors.js';
import type { GqaTensors } from '../blocks/gqa-attention.js';
import { checkGqaConfig } from '../blocks/gqa-attention.js';
import type { ModelFamily } from '../family.js';
import { readDecoderConfig, writeDecoderKeys } from './decoder-keys.js';
import {
  denseDecoderInput,
  denseDecoderLayer,
  denseDecoderLayerPlan,
  denseDecoderOutput,
  describeDenseDecoder,
  synthesizeDenseDecoder,
} from './dense-decoder.js';

/** llama.cpp's Llama loader: biases and rope factors only where the file has them. */
const TENSORS: GqaTensors = { qkvBias: 'optional', outputBias: true, qkNorm: false, ropeFreqs: true };

/** The Llama / Mistral family. */
export const llamaFamily: ModelFamily = {
  name: 'Llama / Mistral',
  architectures: ['llama'],
  readConfig(meta, arch) {
    const experts = meta.number(`${arch}.expert_count`) ?? 0;
    if (experts > 0) {
      throw new CairnError(
        'MODEL_UNSUPPORTED',
        `${meta.file.path}: Mixture-of-Experts Llama (Mixtral: ${arch}.expert_count = ${experts}) is not supported yet`,
      );
    }
    const cfg = readDecoderConfig(meta, arch, 'normal');
    checkGqaConfig(cfg, meta.file.path);
    return cfg;
  },
  layerPlan: (cfg) => denseDecoderLayerPlan(cfg),
  describe: describeDenseDecoder,
  input: (cfg, src) => denseDecoderInput(cfg, src),
  layer: (cfg, l, src, ws) => denseDecoderLayer(cfg, l, src, ws, TENSORS),
  output: (cfg, src) => denseDecoderOutput(cfg, src),
  synthetic: {
    shapes: {
      'llama-1b': { arch: 'llama', nEmbd: 2048, nLayer: 16, nHead: 32, nKvHead: 8, nFf: 8192, nVocab: 32000, ctx: 4096, ropeBase: 500000 },
      'llama-8b': { arch: 'llama', nEmbd: 4096, nLayer: 32, nHead: 32, nKvHead: 8, nFf: 14336, nVocab: 32000, ctx: 8192, ropeBase: 500000 },
    },
    write(spec, out) {
      synthesizeDenseDecoder(spec, out, TENSORS);
      writeDecoderKeys(spec, out);
    },
  },
};
