/**
 * The engine's runner over a model whose layers run on the GPU (model/gpu/), the first ones
 * optionally on the CPU (`--gpu-layers`): the same sampling, prompt-cache snapshots (in the CPU
 * cache's layout, one per part) and slot copies as LocalRunner, with the GPU's KV cache on the
 * device. Steps queue one after another: the device runs one at a time anyway.
 */
import type { KvSnapshot } from '../model/kv-cache.js';
import type { DecoderShard, ShardBatch } from '../model/decoder.js';
import type { GpuDecoderShard } from '../model/gpu/gpu-shard.js';
import { CairnError } from '../util/errors.js';
import { decodeSnapshots, encodeSnapshots, sampleOutputs, snapshotBytes, type ForwardRequest, type ForwardResult, type ForwardRunner } from './runner.js';
import { SequenceSamplers, type SequenceSpec } from './sequence-samplers.js';

/** Runs steps on one GPU shard holding the whole model. */
export class GpuRunner implements ForwardRunner {
  readonly nVocab: number;
  readonly maxBatch: number;
  readonly slots: number;
  readonly ctxPerSlot: number;
  readonly pipelineDepth = 1;
  readonly epoch = 0;
  private readonly samplers = new SequenceSamplers();
  private readonly saved = new Map<number, KvSnapshot[]>();
  private tail: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly shard: GpuDecoderShard,
    /** The first layers, on the CPU (they hand their hidden states to the GPU shard). */
    private readonly front?: DecoderShard,
  ) {
    this.nVocab = shard.cfg.nVocab;
    this.maxBatch = shard.opts.maxBatch;
    this.slots = shard.opts.slots;
    this.ctxPerSlot = shard.opts.ctx;
  }

  async startSequence(seq: number, spec: SequenceSpec): Promise<void> {
    this.samplers.start(seq, spec);
  }

  async endSequence(seq: number): Promise<void> {
    this.samplers.end(seq);
  }

  forward(req: ForwardRequest): Promise<ForwardResult> {
    return this.serial(async () => {
      const logits = await this.step({ nTokens: req.nTokens, tokens: req.tokens, spans: req.spans, outputRows: req.outputs.map((o) => o.row) });
      return sampleOutputs(this.samplers, req.outputs, logits, this.nVocab);
    });
  }

  /**
   * A pipeline stage's step (a node's layers on the GPU): the batch's output as the shard makes it
   * (hidden states of every row, or logits of batch.outputRows for the last stage), in turn with
   * every other call.
   */
  forwardBatch(batch: ShardBatch): Promise<Float32Array> {
    return this.serial(() => this.step(batch));
  }

  /** The CPU's layers, if any (every row's hidden state: a shard that is not the last has no head), then the GPU's. */
  private step(batch: ShardBatch): Promise<Float32Array> {
    const hidden = this.front?.forward(batch);
    return this.shard.forward(hidden ? { ...batch, tokens: undefined, hidden } : batch);
  }

  copySlotPrefix(from: number, to: number, n: number): Promise<void> {
    return this.serial(async () => {
      this.front?.kv.copyPrefix(from, to, n);
      this.shard.kv.copyPrefix(from, to, n);
    });
  }

  saveSlot(slot: number, n: number, key: number): Promise<number> {
    return this.serial(async () => {
      const snaps = [...(this.front ? [this.front.kv.snapshot(slot, n)] : []), await this.shard.kv.snapshot(slot, n)];
      this.saved.set(key, snaps);
      return snapshotBytes(snaps);
    });
  }

  loadSlot(key: number, slot: number): Promise<void> {
    return this.serial(async () => {
      const snaps = this.savedOf(key);
      if (this.front) this.front.kv.restore(snaps[0], slot);
      this.shard.kv.restore(snaps[snaps.length - 1], slot);
    });
  }

  async dropSaved(key: number): Promise<void> {
    this.saved.delete(key);
  }

  async exportSaved(key: number): Promise<Uint8Array> {
    return encodeSnapshots(this.savedOf(key));
  }

  async importSaved(key: number, bytes: Uint8Array): Promise<number> {
    const snaps = decodeSnapshots(bytes);
    if (snaps.length !== (this.front ? 2 : 1)) throw new CairnError('BAD_ARGUMENT', 'saved prefix was made for another layout');
    this.saved.set(key, snaps);
    return snapshotBytes(snaps);
  }

  private savedOf(key: number): KvSnapshot[] {
    const s = this.saved.get(key);
    if (!s) throw new CairnError('BAD_ARGUMENT', `no saved prefix ${key}`);
    return s;
  }

  /** Runs `f` after every call before it has settled, so device work and reads never interleave. */
  private serial<T>(f: () => Promise<T>): Promise<T> {
    const run = this.tail.then(f, f);
    this.tail = run.catch(() => undefined);
    return run;
  }
}
