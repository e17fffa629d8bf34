/**
 * Gemma 2 (GGUF architecture `gemma2`; llama.cpp's models/gemma2.cpp), on the shared Gemma decoder
 * (gemma-decoder.ts) without Q/K norms: sliding windows (`attention.sliding_window`, default 4096)
 * on every other layer (`attention.sliding_window_pattern`, default 2), which rotate as the others
 * unless the file sets `rope.freq_base_swa`; the attention scores softcapped at
 * `attn_logit_softcapping` (default 50) and the final logits at `final_logit_softcapping` (default
 * 30), as llama.cpp's defaults where a file lacks the keys; the head always the embeddings (llama.cpp
 * reads no `output.weight` for Gemma 2). The 27B model has 46 layers.
 */
import type { Metadata } from '../../gguf/metadata.js';
import type { GqaTensors } from '../blocks/gqa-attention.js';
import { checkGqaConfig } from '../blocks/gqa-attention.js';
import { readSlidingWindow } from '../blocks/sliding-window.js';
import type { ModelFamily } from '../family.js';
import { readDecoderConfig } from './decoder-keys.js';
import { gemmaAttnScale, gemmaForward, gemmaNumber, synthesizeGemma, type GemmaConfig, type GemmaParts } from './gemma-decoder.js';

/** llama.cpp's Gemma 2 loader: no biases, no Q/K norms, the embeddings as the head. */
const TENSORS: GqaTensors = { qkvBias: 'none', outputBias: false, qkNorm: false, ropeFreqs: false };
const PARTS: GemmaParts = { tensors: TENSORS, ownHead: false };

/** llama.cpp's Gemma 2 defaults (models/gemma2.cpp, llama_hparams). */
const DEFAULTS = { window: 4096, pattern: 2, attnSoftcap: 50, finalSoftcap: 30 } as const;

function readGemma2Config(m: Metadata, arch: string): GemmaConfig {
  const path = m.file.path;
  const k = (suffix: string) => `${arch}.${suffix}`;
  const base = readDecoderConfig(m, arch, 'neox');
  checkGqaConfig(base, path);
  return {
    ...base,
    window: readSlidingWindow(m, arch, { size: DEFAULTS.window, period: DEFAULTS.pattern }),
    freqBaseSwa: gemmaNumber(m, k('rope.freq_base_swa'), base.rope.freqBase, true),
    freqScaleSwa: base.rope.freqScale,
    attnScale: gemmaAttnScale(base, 46),
    attnSoftcap: gemmaNumber(m, k('attn_logit_softcapping'), DEFAULTS.attnSoftcap),
    finalSoftcap: gemmaNumber(m, k('final_logit_softcapping'), DEFAULTS.finalSoftcap),
  };
}

/** The Gemma 2 family. */
export const gemma2Family: ModelFamily<GemmaConfig> = {
  name: 'Gemma 2',
  architectures: ['gemma2'],
  readConfig: readGemma2Config,
  ...gemmaForward<GemmaConfig>(PARTS),
  synthetic: {
    shapes: {
      'gemma2-2b': {
        arch: 'gemma2',
        nEmbd: 2304,
        nLayer: 26,
        nHead: 8,
        nKvHead: 4,
        headDim: 256,
        nFf: 9216,
        nVocab: 256000,
        ctx: 8192,
        ropeBase: 10000,
        slidingWindow: 4096,
        attnLogitSoftcap: 50,
        finalLogitSoftcap: 30,
      },
    },
    write: (spec, out) => synthesizeGemma(spec, out, PARTS),
  },
};
