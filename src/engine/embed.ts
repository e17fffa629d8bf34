/**
 * Embeddings: one vector per input (token ids), pooled from the model's final hidden states as
 * its file says (`<arch>.pooling_type`: mean, CLS or last token; without one, the last token's, as
 * llama.cpp's embedding contexts give it) and, by default, scaled to unit length.
 *
 * A decoder model's hidden state is the one after the final norm (what the head would read). Its
 * inputs run through the model's own layers in this process, over a KV cache of their own made
 * for the request (DecoderShard.twin), never through the engine's slots: generations in progress
 * keep their slots and prompt cache. An encoder model (BERT-style) reads each input whole.
 *
 * Both work a piece at a time (a prompt chunk of the decoder, a layer of the encoder) and let the
 * event loop run between pieces, as the generation loop does between steps, so chats and other
 * requests interleave with a long embedding request. One embedding request runs at a time; others
 * wait their turn (the buffers are shared).
 */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { DecoderShard } from '../model/decoder.js';
import type { Encoder, EncoderSpan } from '../model/encoders/encoder.js';
import { l2Normalize, poolRows, sequencePooling, type Pooling, type SequencePooling } from '../model/pooling.js';
import { CairnError } from '../util/errors.js';

/** How to embed. */
export interface EmbedOptions {
  /** Scale each vector to unit euclidean length (default true). */
  readonly normalize?: boolean;
  /** Stops the work between pieces; the call then rejects with ABORTED. */
  readonly signal?: AbortSignal;
}

/** Makes embeddings of a loaded model. */
export interface Embedder {
  /** Elements of each vector (the model's embedding width). */
  readonly dim: number;
  /** How hidden states are pooled into one vector per input. */
  readonly pooling: SequencePooling;
  /** Most tokens one input may have. */
  readonly maxTokens: number;
  /** Why this model cannot make embeddings here, or undefined when it can. */
  readonly unavailable?: string;
  /** One vector per input, in order. Throws BAD_ARGUMENT for an empty input or ids outside the vocabulary, CONTEXT_FULL for one too long. */
  embed(inputs: readonly (readonly number[])[], opts?: EmbedOptions): Promise<Float32Array[]>;
}

/** Runs one job at a time, in the order they came. */
class Turns {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(job: () => Promise<T>): Promise<T> {
    const next = this.tail.then(job, job);
    this.tail = next.catch(() => {});
    return next;
  }
}

/** Checks inputs against the model: not empty, at most `maxTokens`, ids in the vocabulary. */
function checkInputs(inputs: readonly (readonly number[])[], maxTokens: number, nVocab: number): void {
  inputs.forEach((ids, i) => {
    if (ids.length === 0) throw new CairnError('BAD_ARGUMENT', `input ${i} is empty: give at least one token`);
    if (ids.length > maxTokens) {
      throw new CairnError('CONTEXT_FULL', `input ${i} has ${ids.length} tokens, more than the ${maxTokens} this model's context holds; shorten it or raise --ctx`);
    }
    for (const id of ids) {
      if (!(Number.isInteger(id) && id >= 0 && id < nVocab)) throw new CairnError('BAD_ARGUMENT', `input ${i} has token ${id}, outside the vocabulary (0 to ${nVocab - 1})`);
    }
  });
}

function checkSignal(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new CairnError('ABORTED', 'the request was cancelled');
}

/** Rows of packed encoder inputs per forward call (more only for one input that is longer alone). */
const ENCODER_PACK = 512;

/** Embeddings of an encoder model. */
export class EncoderEmbedder implements Embedder {
  readonly dim: number;
  readonly maxTokens: number;
  private readonly turns = new Turns();

  constructor(
    private readonly encoder: Encoder,
    readonly pooling: SequencePooling,
  ) {
    this.dim = encoder.cfg.nEmbd;
    this.maxTokens = encoder.maxTokens;
  }

  embed(inputs: readonly (readonly number[])[], opts: EmbedOptions = {}): Promise<Float32Array[]> {
    checkInputs(inputs, this.maxTokens, this.encoder.cfg.nVocab);
    return this.turns.run(async () => {
      const out: Float32Array[] = [];
      for (let i = 0; i < inputs.length; ) {
        // Inputs in order, packed while they fit ENCODER_PACK rows and the encoder (a longer one runs alone).
        const pack = Math.min(ENCODER_PACK, this.maxTokens);
        let rows = inputs[i].length;
        let j = i + 1;
        while (j < inputs.length && rows + inputs[j].length <= pack) rows += inputs[j++].length;
        const tokens = new Int32Array(rows);
        const spans: EncoderSpan[] = [];
        for (let k = i, at = 0; k < j; k++) {
          tokens.set(inputs[k], at);
          spans.push({ start: at, n: inputs[k].length });
          at += inputs[k].length;
        }
        let hidden: Float32Array | undefined;
        const steps = this.encoder.forwardSteps(tokens, spans);
        for (let r = steps.next(); ; r = steps.next()) {
          if (r.done) {
            hidden = r.value;
            break;
          }
          await yieldToEventLoop();
          checkSignal(opts.signal);
        }
        for (const s of spans) out.push(this.pool(hidden, s.start, s.n, opts));
        i = j;
      }
      return out;
    });
  }

  private pool(hidden: Float32Array, start: number, n: number, opts: EmbedOptions): Float32Array {
    const v = new Float32Array(this.dim);
    poolRows(hidden, start, n, this.dim, this.pooling, v);
    if (opts.normalize ?? true) l2Normalize(v);
    return v;
  }
}

/** Embeddings of a decoder model whose layers all run in this process. */
export class DecoderEmbedder implements Embedder {
  readonly dim: number;
  readonly pooling: SequencePooling;
  readonly unavailable: string | undefined;
  private readonly turns = new Turns();

  /**
   * `pooling`: the file's (pooling.ts), or the error reading it gave; that error, or a reranker's
   * pooling (`rank`), makes the embedder unavailable (the model still generates).
   */
  constructor(
    private readonly shards: readonly DecoderShard[],
    pooling: Pooling | undefined | Error,
    /** Most tokens of one input (the context). */
    readonly maxTokens: number,
    private readonly nVocab: number,
    nEmbd: number,
  ) {
    this.dim = nEmbd;
    let why: string | undefined;
    try {
      if (pooling instanceof Error) throw pooling;
      this.pooling = sequencePooling(pooling);
    } catch (err) {
      this.pooling = 'last';
      why = (err as Error).message;
    }
    this.unavailable = why ?? wholeLocally(shards);
  }

  embed(inputs: readonly (readonly number[])[], opts: EmbedOptions = {}): Promise<Float32Array[]> {
    if (this.unavailable) return Promise.reject(new CairnError('BAD_ARGUMENT', this.unavailable));
    checkInputs(inputs, this.maxTokens, this.nVocab);
    return this.turns.run(async () => {
      const longest = inputs.reduce((a, ids) => Math.max(a, ids.length), 0);
      // One KV cache per shard for the request, as long as its longest input; dropped after.
      const twins = this.shards.map((s) => s.twin(longest));
      const out: Float32Array[] = [];
      for (const ids of inputs) out.push(await this.one(twins, ids, opts));
      return out;
    });
  }

  /** Reads one input in chunks, gathering what its pooling needs from each chunk's final-norm states. */
  private async one(twins: readonly DecoderShard[], ids: readonly number[], opts: EmbedOptions): Promise<Float32Array> {
    const D = this.dim;
    const chunk = Math.min(...twins.map((t) => t.maxBatch));
    const v = new Float32Array(D);
    const sum = this.pooling === 'mean' ? new Float64Array(D) : undefined;
    for (let pos0 = 0; pos0 < ids.length; pos0 += chunk) {
      checkSignal(opts.signal);
      const n = Math.min(chunk, ids.length - pos0);
      const rows = this.rowsOf(pos0, n, ids.length);
      let hidden: Float32Array | undefined;
      const tokens = Int32Array.from(ids.slice(pos0, pos0 + n));
      for (const twin of twins) {
        hidden = twin.forward({ nTokens: n, tokens, hidden, spans: [{ slot: 0, pos0, start: 0, n }], outputRows: rows, hiddenStates: true });
      }
      if (sum) {
        for (let r = 0; r < n; r++) for (let i = 0; i < D; i++) sum[i] += hidden![r * D + i];
      } else if (rows.length > 0) {
        v.set(hidden!.subarray(0, D));
      }
      await yieldToEventLoop();
    }
    if (sum) for (let i = 0; i < D; i++) v[i] = sum[i] / ids.length;
    if (opts.normalize ?? true) l2Normalize(v);
    return v;
  }

  /** The chunk's rows whose states the pooling reads: all (mean), the input's first (CLS) or its last. */
  private rowsOf(pos0: number, n: number, total: number): number[] {
    if (this.pooling === 'mean') return Array.from({ length: n }, (_, i) => i);
    const want = this.pooling === 'cls' ? 0 : total - 1;
    return want >= pos0 && want < pos0 + n ? [want - pos0] : [];
  }
}

/** Why shards cannot make embeddings here (not the whole model, in order, unsplit), or undefined. */
function wholeLocally(shards: readonly DecoderShard[]): string | undefined {
  let next = 0;
  for (const s of shards) {
    if (s.isSplit || s.shard.layerStart !== next) break;
    next = s.shard.layerEnd;
  }
  const nLayer = shards[0]?.cfg.nLayer;
  if (nLayer !== undefined && next === nLayer) return undefined;
  return 'embeddings need every layer of the model in this process, unsplit; this model runs on a cluster';
}
