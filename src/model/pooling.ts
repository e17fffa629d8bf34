/**
 * How a sequence's hidden states become one embedding, as llama.cpp pools them (its
 * `<arch>.pooling_type`): the mean of every token's state, the first token's (CLS), or the last
 * token's. A file may also say `none` (one vector per token) or `rank` (a reranker's score head);
 * neither makes one embedding per input, so the embedding APIs refuse them.
 */
import { CairnError } from '../util/errors.js';
import type { Metadata } from '../gguf/metadata.js';

/** llama.cpp's pooling types, by their GGUF numbers (0 to 4). */
export type Pooling = 'none' | 'mean' | 'cls' | 'last' | 'rank';

const BY_NUMBER: readonly Pooling[] = ['none', 'mean', 'cls', 'last', 'rank'];

/** The pooling types that give one vector per sequence. */
export type SequencePooling = 'mean' | 'cls' | 'last';

/**
 * `<arch>.pooling_type` of a file, or undefined where it has none. llama.cpp treats a missing key
 * as `none`; callers pick what one vector per input means then.
 */
export function readPooling(meta: Metadata, arch: string): Pooling | undefined {
  const key = `${arch}.pooling_type`;
  const v = meta.number(key);
  if (v === undefined) return undefined;
  const p = Number.isInteger(v) ? BY_NUMBER[v] : undefined;
  // -1 is llama.cpp's "unspecified": the same as no key.
  if (v === -1) return undefined;
  if (!p) throw new CairnError('GGUF_MALFORMED', `${meta.file.path}: "${key}" is ${v}, not a pooling type llama.cpp knows (0 to 4)`);
  return p;
}

/**
 * The pooling one embedding per input gets: the file's where it gives one per sequence, else the
 * last token's state (what llama.cpp's embedding contexts return for a file without pooling, as
 * node-llama-cpp reads them: the state that has seen the whole input in a causal model).
 * `rank` (a reranker's classification head) cannot make embeddings: BAD_ARGUMENT says so.
 */
export function sequencePooling(p: Pooling | undefined): SequencePooling {
  if (p === 'rank') throw new CairnError('BAD_ARGUMENT', 'this model is a reranker (pooling "rank"): it scores pairs of texts and makes no embeddings');
  return p === undefined || p === 'none' ? 'last' : p;
}

/**
 * Pools rows [start, start + n) of `hidden` (rows of `dim`) into `out` (dim). Mean: each element's
 * sum over the rows (in f64), divided by n.
 */
export function poolRows(hidden: Float32Array, start: number, n: number, dim: number, pooling: SequencePooling, out: Float32Array): void {
  if (!(Number.isInteger(n) && n >= 1 && start >= 0 && (start + n) * dim <= hidden.length && out.length === dim)) {
    throw new RangeError(`pooling rows [${start}, ${start + n}) of ${hidden.length / dim} rows of ${dim} into ${out.length}`);
  }
  if (pooling !== 'mean') {
    const row = pooling === 'cls' ? start : start + n - 1;
    out.set(hidden.subarray(row * dim, (row + 1) * dim));
    return;
  }
  for (let i = 0; i < dim; i++) {
    let s = 0;
    for (let r = start; r < start + n; r++) s += hidden[r * dim + i];
    out[i] = s / n;
  }
}

/** Scales `v` in place to unit euclidean length (a zero vector stays zero), as llama.cpp's servers normalize. */
export function l2Normalize(v: Float32Array): void {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * v[i];
  const k = s > 0 ? 1 / Math.sqrt(s) : 0;
  for (let i = 0; i < v.length; i++) v[i] *= k;
}
