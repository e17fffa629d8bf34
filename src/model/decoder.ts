/**
 * The forward pass of a shard: its input (token embedding on the first shard, hidden states on the
 * others), the layers its family built for its range, and its output (final norm and head on the
 * last shard, hidden states on the others), over the shard's KV cache. A forward call takes a batch
 * of tokens from one or more sequences (each with its own KV-cache slot and start position) and
 * returns hidden states or, on the last shard, logits for the rows asked for. Activations live in
 * the shard's Workspace, allocated once for `maxBatch` tokens.
 */
import { CairnError } from '../util/errors.js';
import type { Kernels } from '../kernels/api.js';
import type { ShardBatch } from './batch.js';
import type { ModelConfig } from './config.js';
import { KvCache } from './kv-cache.js';
import type { ShardSpec } from './shard.js';
import type { ProductMatrix } from './tensor-source.js';
import type { DecoderLayer, LayerYield, ShardInput, ShardOutput, StepContext } from './blocks/types.js';
import type { Scratch, Workspace } from './blocks/workspace.js';

export type { SeqSpan, ShardBatch } from './batch.js';

/** What a family built for a shard. */
export interface ShardParts {
  readonly input: ShardInput;
  readonly layers: readonly DecoderLayer[];
  readonly output: ShardOutput;
  /** The residual stream (nEmbd per token). */
  readonly stream: Scratch;
}

/** The weights a loaded shard maps: their bytes and views (for reading pages in ahead). */
export interface ShardWeights {
  /** Bytes of file data the shard references. */
  readonly bytes: number;
  /** Views of the data, in file order. */
  readonly views: readonly Uint8Array[];
  /** The matrices its products read (views of the file), for packing at load (engine/pack-weights.ts). */
  readonly products?: readonly ProductMatrix[];
}

/** A loaded shard: its parts, KV cache and preallocated activations. */
export class DecoderShard {
  readonly maxBatch: number;
  /** Bytes of the shard's activation buffers (its Workspace). */
  readonly activationBytes: number;
  private readonly positions: Int32Array;
  private positionsView: Int32Array;
  private readonly step: StepContext;

  constructor(
    readonly cfg: ModelConfig,
    readonly shard: ShardSpec,
    private readonly parts: ShardParts,
    readonly weights: ShardWeights,
    readonly kv: KvCache,
    kernels: Kernels,
    private readonly ws: Workspace,
  ) {
    this.maxBatch = ws.maxBatch;
    ws.allocate();
    this.activationBytes = ws.bytes;
    this.positions = new Int32Array(ws.maxBatch);
    this.positionsView = this.positions.subarray(0, 0);
    this.step = { kernels, kv, n: 0, spans: [], positions: this.positionsView, layer: 0, split: shard.splitCount > 1 && shard.splitMode !== 'expert' };
  }

  /**
   * The same layers, weights and activation buffers over a new one-slot KV cache of `ctx`
   * positions: a pass of its own beside the engine's slots (embeddings). Its forward calls and
   * this shard's share the activations, which is safe because each call runs to its end
   * synchronously; what a call returns must be read (or copied) before the next.
   */
  twin(ctx: number): DecoderShard {
    const kv = new KvCache(this.kv.rows, 1, ctx, this.kv.type, { tiles: this.kv.tiles, allocate: (bytes) => this.kv.arena(bytes) });
    return new DecoderShard(this.cfg, this.shard, this.parts, this.weights, kv, this.step.kernels, this.ws);
  }

  /**
   * The memory a first step would fault in (to do so at load instead): the activation buffers, and
   * the KV cache's storage on huge pages (KvCache.allocatedStorage).
   */
  *firstTouchMemory(): IterableIterator<ArrayBufferView> {
    yield* this.kv.allocatedStorage();
    yield* this.ws.buffers();
  }

  /** True for a rank of a group (tensor-parallel, or an expert-parallel home): run it with forwardSteps(). */
  get isSplit(): boolean {
    return this.shard.splitCount > 1;
  }

  /**
   * Runs the shard on a batch. Returns a view of internal memory, valid until the next call:
   * nTokens x nEmbd hidden states, or (last shard) outputRows.length x nVocab logits.
   */
  forward(batch: ShardBatch): Float32Array {
    if (this.isSplit) throw new CairnError('BAD_ARGUMENT', 'a rank of a tensor- or expert-parallel group runs with its group (forwardSteps)');
    const steps = this.forwardSteps(batch);
    for (let r = steps.next(); ; r = steps.next()) if (r.done) return r.value;
  }

  /**
   * The forward pass of a group's rank, one exchange at a time. A tensor-parallel rank yields each
   * partial sum (nTokens x nEmbd, a view of internal memory) that the caller must replace, in place,
   * with the sum over the group's ranks before resuming; every rank of the group runs the same
   * batch. An expert-parallel home yields an ExpertDispatch per MoE layer, whose `result` the caller
   * fills with the other ranks' expert outputs. Returns what forward() returns: the rank that holds
   * the head (rank 0 of the last shard) logits, the others the final hidden states.
   */
  *forwardSteps(batch: ShardBatch): Generator<LayerYield, Float32Array, void> {
    const n = batch.nTokens;
    this.checkBatch(batch);
    const { parts, step } = this;
    const x = parts.stream.rows(n);
    parts.input.read(batch, x, step.kernels);
    if (this.positionsView.length !== n) this.positionsView = this.positions.subarray(0, n);
    for (const s of batch.spans) {
      for (let i = 0; i < s.n; i++) this.positions[s.start + i] = s.pos0 + i;
    }
    step.n = n;
    step.spans = batch.spans;
    step.positions = this.positionsView;
    const layers = parts.layers;
    for (let i = 0; i < layers.length; i++) {
      step.layer = i;
      yield* layers[i].forward(x, step);
    }
    return parts.output.write(batch, x, step.kernels);
  }

  private checkBatch(batch: ShardBatch): void {
    const n = batch.nTokens;
    if (!(n >= 1 && n <= this.maxBatch)) throw new CairnError('BAD_ARGUMENT', `batch of ${n} tokens (1 to ${this.maxBatch} allowed)`);
    this.parts.input.check(batch);
    let covered = 0;
    for (const s of batch.spans) {
      if (s.slot < 0 || s.slot >= this.kv.slots) throw new CairnError('BAD_ARGUMENT', `KV slot ${s.slot} does not exist`);
      if (s.start !== covered || s.n < 1) throw new CairnError('BAD_ARGUMENT', 'sequence spans must cover the batch in order');
      if (s.pos0 < 0 || s.pos0 + s.n > this.kv.ctxPerSlot) {
        throw new CairnError(
          'CONTEXT_FULL',
          `context full: positions up to ${s.pos0 + s.n} do not fit the ${this.kv.ctxPerSlot}-token context`,
        );
      }
      covered += s.n;
    }
    if (covered !== n) throw new CairnError('BAD_ARGUMENT', 'sequence spans must cover the batch');
  }
}
