/**
 * An encoder family: a BERT-style embedding model llama.cpp runs (its architecture names, config
 * keys, shape and how to write a random-weight one). The decoder families' interface (KV rows,
 * layer ranges, heads) does not apply; an encoder is built whole by build.ts.
 */
import type { Metadata } from '../../gguf/metadata.js';
import type { SyntheticFamily } from '../family.js';
import type { EncoderConfig } from './config.js';

/** One encoder architecture family. */
export interface EncoderFamily {
  /** Human name, e.g. `BERT`. */
  readonly name: string;
  /** The GGUF `general.architecture` names it runs. */
  readonly architectures: readonly string[];
  /** Reads the hyperparameters; a variant it cannot run fails here, naming it. */
  readConfig(meta: Metadata, arch: string): EncoderConfig;
  /** One line describing the shape, for `cairn inspect`. */
  describe(cfg: EncoderConfig): string;
  readonly synthetic: SyntheticFamily;
}
