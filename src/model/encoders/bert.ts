/**
 * BERT (GGUF architecture `bert`: bge, MiniLM, e5, ...): learned absolute positions, separate Q/K/V
 * with biases, post-norm LayerNorms and a GELU FFN with biases, as llama.cpp's bert graph.
 */
import { describeEncoder, readEncoderConfig, type EncoderKind } from './config.js';
import type { EncoderFamily } from './family.js';
import { writeEncoderKeys } from './keys.js';
import { synthesizeEncoder } from './weights.js';

const KIND: EncoderKind = { positions: 'absolute', ffn: 'gelu' };

/** The BERT family. */
export const bertFamily: EncoderFamily = {
  name: 'BERT',
  architectures: ['bert'],
  readConfig: (meta, arch) => readEncoderConfig(meta, arch, KIND),
  describe: describeEncoder,
  synthetic: {
    shapes: {
      'bge-small': { arch: 'bert', nEmbd: 384, nLayer: 12, nHead: 12, nKvHead: 12, nFf: 1536, nVocab: 30522, ctx: 512 },
      'bge-base': { arch: 'bert', nEmbd: 768, nLayer: 12, nHead: 12, nKvHead: 12, nFf: 3072, nVocab: 30522, ctx: 512 },
    },
    write(spec, out) {
      synthesizeEncoder(spec, KIND, out);
      writeEncoderKeys(spec, out);
    },
  },
};
