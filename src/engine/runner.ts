/**
 * What the engine drives: something that runs a whole model's forward pass over a batch of
 * sequences and returns logits. Locally that is a chain of shards in this process; in a cluster
 * (mesh/) the same interface fronts shards on other machines. The engine knows nothing else.
 */
import type { SeqSpan } from '../model/decoder.js';
import type { DecoderShard } from '../model/decoder.js';

/** One forward step's input: token ids, the sequence spans they belong to, rows needing logits. */
export interface ForwardRequest {
  readonly nTokens: number;
  readonly tokens: Int32Array;
  readonly spans: readonly SeqSpan[];
  readonly outputRows: readonly number[];
}

/** Runs a whole model's forward pass. */
export interface ForwardRunner {
  readonly nVocab: number;
  /** Most tokens one forward call takes. */
  readonly maxBatch: number;
  /** KV-cache slots (sequences that can be in flight at once). */
  readonly slots: number;
  /** Positions each slot holds. */
  readonly ctxPerSlot: number;
  /** Returns outputRows.length x nVocab logits (valid until the next call). */
  forward(req: ForwardRequest): Promise<Float32Array>;
  /** Copies the first n cached positions of one slot to another. */
  copySlotPrefix(from: number, to: number, n: number): Promise<void>;
}

/** Runs a model whose shards all live in this process, one after the other. */
export class LocalRunner implements ForwardRunner {
  readonly nVocab: number;
  readonly maxBatch: number;
  readonly slots: number;
  readonly ctxPerSlot: number;

  constructor(private readonly shards: readonly DecoderShard[]) {
    const first = shards[0];
    this.nVocab = first.cfg.nVocab;
    this.maxBatch = Math.min(...shards.map((s) => s.maxBatch));
    this.slots = Math.min(...shards.map((s) => s.kv.slots));
    this.ctxPerSlot = Math.min(...shards.map((s) => s.kv.ctxPerSlot));
  }

  async forward(req: ForwardRequest): Promise<Float32Array> {
    let hidden: Float32Array | undefined;
    for (const shard of this.shards) {
      hidden = shard.forward({ nTokens: req.nTokens, tokens: req.tokens, hidden, spans: req.spans, outputRows: req.outputRows });
    }
    return hidden!;
  }

  async copySlotPrefix(from: number, to: number, n: number): Promise<void> {
    for (const shard of this.shards) shard.kv.copyPrefix(from, to, n);
  }
}
