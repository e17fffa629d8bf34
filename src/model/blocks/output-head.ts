/**
 * A shard's output: on the last shard the final RMSNorm and the output head (its own matrix, or the
 * token embedding table when the model ties them) over the rows asked for; on the others, the
 * residual stream itself, for the next shard.
 */
import { CairnError } from '../../util/errors.js';
import type { Kernels } from '../../kernels/api.js';
import type { ShardBatch } from '../batch.js';
import type { Matrix, TensorSource } from '../tensor-source.js';
import type { SyntheticTensors } from '../synthetic-tensors.js';
import { TOKEN_EMBEDDING } from './token-embedding.js';
import type { ShardOutput } from './types.js';

/** llama.cpp's names of the final norm and the output head. */
export const OUTPUT_TENSORS = { norm: 'output_norm.weight', head: 'output.weight' } as const;

/** The weights of the output: final norm and head matrix (nVocab x nEmbd). */
export interface OutputHeadWeights {
  readonly norm: Float32Array;
  readonly head: Matrix;
}

/**
 * Declares the final norm and the head, which is the embedding table when the file has no
 * `output.weight` (unless the family's files always have one: `tiedAllowed` false).
 */
export function declareOutputHead(src: TensorSource, nVocab: number, nEmbd: number, tiedAllowed = true): OutputHeadWeights {
  const head = tiedAllowed
    ? (src.optionalMatrix(OUTPUT_TENSORS.head, nVocab, nEmbd) ?? src.matrix(TOKEN_EMBEDDING, nVocab, nEmbd))
    : src.matrix(OUTPUT_TENSORS.head, nVocab, nEmbd);
  return { norm: src.vector(OUTPUT_TENSORS.norm, nEmbd), head };
}

/** Writes the final norm and (unless tied) the head into a synthetic model; the output norm's gain restores a tied head's logit scale. */
export function synthesizeOutputHead(out: SyntheticTensors, nVocab: number, nEmbd: number, tied: boolean): void {
  out.f32(OUTPUT_TENSORS.norm, [nEmbd], 0.1, tied ? 4 : 1);
  if (!tied) out.matrix(OUTPUT_TENSORS.head, nVocab, nEmbd, 3 / Math.sqrt(nEmbd));
}

/**
 * Squashes logits into (-cap, cap) as cap * tanh(logit / cap) (Gemma 2's final logit softcapping),
 * in llama.cpp's f32 steps: scale by 1/cap, tanh, scale by cap.
 */
export function softcapLogits(logits: Float32Array, cap: number): void {
  const inv = Math.fround(1 / cap);
  const c = Math.fround(cap);
  for (let i = 0; i < logits.length; i++) logits[i] = c * Math.fround(Math.tanh(Math.fround(logits[i] * inv)));
}

/** The last shard's output: logits of the rows asked for (default: the batch's last row). */
export class OutputHead implements ShardOutput {
  private gathered = new Float32Array(0);
  private logits = new Float32Array(0);
  private readonly lastRow = [0];
  private gatheredView = new Float32Array(0);
  private logitsView = new Float32Array(0);

  constructor(
    private readonly w: OutputHeadWeights,
    private readonly eps: number,
    /** Final logit softcapping (0: none). */
    private readonly softcap = 0,
  ) {}

  write(batch: ShardBatch, x: Float32Array, kernels: Kernels): Float32Array {
    const { norm, head } = this.w;
    const D = head.cols;
    const V = head.rows;
    const n = batch.nTokens;
    let rows: ArrayLike<number> | undefined = batch.outputRows;
    if (!rows) {
      this.lastRow[0] = n - 1;
      rows = this.lastRow;
    }
    const m = rows.length;
    let prefix = true;
    for (let j = 0; j < m; j++) {
      const r = rows[j];
      if (!(r >= 0 && r < n)) throw new CairnError('BAD_ARGUMENT', `output row ${r} is outside the batch`);
      if (r !== j) prefix = false;
    }
    const g = this.gatheredRows(m * D);
    // Rows 0..m-1 in order are a prefix of x: the norm reads them in place (decode's single row).
    let input = g;
    if (prefix) input = m === n ? x : x.subarray(0, m * D);
    else for (let j = 0; j < m; j++) g.set(x.subarray(rows[j] * D, (rows[j] + 1) * D), j * D);
    kernels.rmsNorm(input, norm, m, D, this.eps, g);
    if (batch.hiddenStates) return g.slice();
    const out = this.logitRows(m * V);
    kernels.matmul(head.data, head.type, head.rows, head.cols, g, m, out);
    if (this.softcap > 0) softcapLogits(out, this.softcap);
    return out;
  }

  private gatheredRows(len: number): Float32Array {
    if (this.gathered.length < len) this.gathered = new Float32Array(len);
    if (this.gatheredView.length !== len || this.gatheredView.buffer !== this.gathered.buffer)
      this.gatheredView = this.gathered.subarray(0, len);
    return this.gatheredView;
  }

  private logitRows(len: number): Float32Array {
    if (this.logits.length < len) this.logits = new Float32Array(len);
    if (this.logitsView.length !== len || this.logitsView.buffer !== this.logits.buffer) this.logitsView = this.logits.subarray(0, len);
    return this.logitsView;
  }
}

/** An earlier shard's output: the residual stream, for the next shard. */
export const HIDDEN_OUTPUT: ShardOutput = { write: (_batch, x) => x };
