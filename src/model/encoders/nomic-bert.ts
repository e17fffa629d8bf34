/**
 * nomic-bert (GGUF architecture `nomic-bert`: nomic-embed-text v1/v1.5): rotary positions (neox
 * layout), one fused QKV projection without biases, post-norm LayerNorms and a SwiGLU FFN, as
 * llama.cpp's bert graph runs it. Its Mixture-of-Experts sibling (`nomic-bert-moe`) is another
 * architecture, not run here.
 */
import { describeEncoder, readEncoderConfig, type EncoderKind } from './config.js';
import type { EncoderFamily } from './family.js';
import { writeEncoderKeys } from './keys.js';
import { synthesizeEncoder } from './weights.js';

const KIND: EncoderKind = { positions: 'rope', ffn: 'swiglu' };

/** The nomic-bert family. */
export const nomicBertFamily: EncoderFamily = {
  name: 'Nomic BERT',
  architectures: ['nomic-bert'],
  readConfig: (meta, arch) => readEncoderConfig(meta, arch, KIND),
  describe: describeEncoder,
  synthetic: {
    shapes: {
      'nomic-embed-text': { arch: 'nomic-bert', nEmbd: 768, nLayer: 12, nHead: 12, nKvHead: 12, nFf: 3072, nVocab: 30522, ctx: 2048, ropeBase: 1000 },
    },
    write(spec, out) {
      synthesizeEncoder(spec, KIND, out);
      writeEncoderKeys(spec, out, { rope: true });
    },
  },
};
