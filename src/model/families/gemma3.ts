/**
 * Gemma 3 text models (GGUF architecture `gemma3`; llama.cpp's models/gemma3.cpp), on the shared
 * Gemma decoder (gemma-decoder.ts) with per-head Q/K RMSNorm; sliding windows on five layers of
 * every six (`attention.sliding_window_pattern`, default 6) where the file sets a window, which
 * rotate with their own base (`rope.freq_base_swa`, default 10000) and no position scaling, while
 * the global layers take the file's base and linear scaling (x8 in the 4B to 27B models); the head
 * tied to the embeddings unless the file has its own; no score softcapping, and the final logit
 * softcapping only where the file sets one. The 27B model has 62 layers.
 */
import { CairnError } from '../../util/errors.js';
import type { Metadata } from '../../gguf/metadata.js';
import type { GqaTensors } from '../blocks/gqa-attention.js';
import { checkGqaConfig } from '../blocks/gqa-attention.js';
import { readSlidingWindow } from '../blocks/sliding-window.js';
import type { ModelFamily } from '../family.js';
import { readDecoderConfig } from './decoder-keys.js';
import { gemmaAttnScale, gemmaForward, gemmaNumber, synthesizeGemma, type GemmaConfig, type GemmaParts } from './gemma-decoder.js';

/** llama.cpp's Gemma 3 loader: Q/K norms, no biases. */
const TENSORS: GqaTensors = { qkvBias: 'none', outputBias: false, qkNorm: true, ropeFreqs: false };
const PARTS: GemmaParts = { tensors: TENSORS, ownHead: true };

/** llama.cpp's default sliding-window pattern for Gemma 3: five windowed layers, then a global one. */
const DEFAULT_PATTERN = 6;

/** llama.cpp's default rope base of windowed layers (llama_hparams::rope_freq_base_train_swa). */
const DEFAULT_FREQ_BASE_SWA = 10000;

function readGemma3Config(m: Metadata, arch: string): GemmaConfig {
  const path = m.file.path;
  const k = (suffix: string) => `${arch}.${suffix}`;
  const base = readDecoderConfig(m, arch, 'neox');
  checkGqaConfig(base, path);
  if (base.rope.yarn) {
    throw new CairnError(
      'MODEL_UNSUPPORTED',
      `${path}: Gemma 3 with YaRN rope scaling is not supported (released Gemma 3 models scale linearly)`,
    );
  }
  const window = readSlidingWindow(m, arch, { size: 'optional', period: DEFAULT_PATTERN });
  return {
    ...base,
    ...(window ? { window } : {}),
    freqBaseSwa: gemmaNumber(m, k('rope.freq_base_swa'), DEFAULT_FREQ_BASE_SWA, true),
    freqScaleSwa: 1,
    attnScale: gemmaAttnScale(base, 62),
    attnSoftcap: 0,
    finalSoftcap: gemmaNumber(m, k('final_logit_softcapping'), 0),
  };
}

/** The Gemma 3 family. */
export const gemma3Family: ModelFamily<GemmaConfig> = {
  name: 'Gemma 3',
  architectures: ['gemma3'],
  readConfig: readGemma3Config,
  ...gemmaForward<GemmaConfig>(PARTS),
  synthetic: {
    shapes: {
      'gemma3-1b': {
        arch: 'gemma3',
        nEmbd: 1152,
        nLayer: 26,
        nHead: 4,
        nKvHead: 1,
        headDim: 256,
        nFf: 6912,
        nVocab: 262144,
        ctx: 32768,
        ropeBase: 1000000,
        tied: true,
        slidingWindow: 512,
      },
      'gemma3-4b': {
        arch: 'gemma3',
        nEmbd: 2560,
        nLayer: 34,
        nHead: 8,
        nKvHead: 4,
        headDim: 256,
        nFf: 10240,
        nVocab: 262208,
        ctx: 131072,
        ropeBase: 1000000,
        linearRopeFactor: 8,
        tied: true,
        slidingWindow: 1024,
      },
    },
    write: (spec, out) => synthesizeGemma(spec, out, PARTS),
  },
};
