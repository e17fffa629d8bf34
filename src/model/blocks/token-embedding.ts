/**
 * A shard's input: the token embedding table on the first shard (one dequantized row per token),
 * the previous shard's hidden states on the others.
 */
import { CairnError } from '../../util/errors.js';
import type { Kernels } from '../../kernels/api.js';
import type { ShardBatch } from '../batch.js';
import type { Matrix, TensorSource } from '../tensor-source.js';
import type { SyntheticTensors } from '../synthetic-tensors.js';
import type { ShardInput } from './types.js';

/** llama.cpp's name of the token embedding table. */
export const TOKEN_EMBEDDING = 'token_embd.weight';

/** Declares the token embedding table (nVocab x nEmbd). */
export function declareTokenEmbedding(src: TensorSource, nVocab: number, nEmbd: number): Matrix {
  return src.embedding(TOKEN_EMBEDDING, nVocab, nEmbd);
}

/**
 * Writes the table into a synthetic model. A tied head reads logits off the embeddings: small
 * unit-length embeddings keep a token's own embedding (still in the residual stream) from
 * dominating its logit, which would make the model repeat its input.
 */
export function synthesizeTokenEmbedding(out: SyntheticTensors, nVocab: number, nEmbd: number, tied: boolean): void {
  out.matrix(TOKEN_EMBEDDING, nVocab, nEmbd, tied ? 1 / Math.sqrt(nEmbd) : 1);
}

/**
 * The first shard's input: token ids looked up in the embedding table, times `scale` where the
 * family scales its embeddings (Gemma: sqrt(nEmbd), an f32 multiply as llama.cpp's ggml_scale).
 */
export class TokenEmbedding implements ShardInput {
  private readonly scale: number;

  constructor(
    private readonly table: Matrix,
    scale = 1,
  ) {
    this.scale = Math.fround(scale);
  }

  check(batch: ShardBatch): void {
    const n = batch.nTokens;
    const t = batch.tokens;
    if (!t || t.length < n) throw new CairnError('BAD_ARGUMENT', 'the first shard needs token ids');
    const nVocab = this.table.rows;
    for (let i = 0; i < n; i++) {
      if (!(t[i] >= 0 && t[i] < nVocab))
        throw new CairnError('BAD_ARGUMENT', `token id ${t[i]} is outside the vocabulary (0 to ${nVocab - 1})`);
    }
  }

  read(batch: ShardBatch, x: Float32Array, kernels: Kernels): void {
    const e = this.table;
    kernels.getRows(e.data, e.type, e.cols, batch.tokens!, x);
    const s = this.scale;
    if (s !== 1) {
      const len = batch.nTokens * e.cols;
      for (let i = 0; i < len; i++) x[i] *= s;
    }
  }
}

/** A later shard's input: the previous shard's hidden states (n x nEmbd). */
export class HiddenInput implements ShardInput {
  constructor(private readonly nEmbd: number) {}

  check(batch: ShardBatch): void {
    if (!batch.hidden || batch.hidden.length < batch.nTokens * this.nEmbd) {
      throw new CairnError('BAD_ARGUMENT', 'a later shard needs hidden states of nTokens x nEmbd');
    }
  }

  read(batch: ShardBatch, x: Float32Array): void {
    const hidden = batch.hidden!;
    x.set(hidden.length === x.length ? hidden : hidden.subarray(0, x.length));
  }
}
