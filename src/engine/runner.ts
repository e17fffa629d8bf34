/**
 * What the engine drives: something that runs a whole model's forward pass over a batch of
 * sequences and returns logits. Locally that is a chain of shards in this process; in a cluster
 * (mesh/) the same interface fronts shards on other machines. The engine knows nothing else.
 */
import type { SeqSpan } from '../model/decoder.js';
import type { DecoderShard } from '../model/decoder.js';
import type { KvSnapshot } from '../model/kv-cache.js';
import { arenaViews, SNAPSHOT_ALIGN } from '../model/kv-arenas.js';
import { isKvSnapshotLayout, type KvSnapshotLayout } from '../kernels/kv-layout.js';
import type { StepLogprobs } from '../sampling/index.js';
import { SequenceSamplers, type SequenceSpec } from './sequence-samplers.js';
import { CairnError } from '../util/errors.js';
import { packMessage, unpackMessage } from '../util/message-framing.js';

/** A batch row whose next token the step must produce. */
export interface OutputRequest {
  readonly row: number;
  /** The sequence the row belongs to. */
  readonly seq: number;
  /** `sample`: the runner samples with the sequence's sampler; `logits`: return the row's logits. */
  readonly mode: 'sample' | 'logits';
  /**
   * Speculative decoding: the draft token the batch reads at the sequence's next row. When the
   * token sampled here differs from it, the draft is wrong from there on: the sequence's later
   * outputs in this step are not sampled (token -1, no draw taken), so its sampler's history and
   * random stream stay exactly those of plain decoding.
   */
  readonly draft?: number;
}

/** One forward step's input: token ids, the sequence spans they belong to, rows to output. */
export interface ForwardRequest {
  readonly nTokens: number;
  readonly tokens: Int32Array;
  readonly spans: readonly SeqSpan[];
  readonly outputs: readonly OutputRequest[];
}

/** One forward step's output, in the order of the request's outputs. */
export interface ForwardResult {
  /** Sampled token per output (-1 for `logits` outputs). */
  readonly tokens: Int32Array;
  /** Logprobs per output, when the sequence asked for them. */
  readonly logprobs: readonly (StepLogprobs | undefined)[];
  /** nVocab logits per `logits` output, in order (valid until the next call). */
  readonly logits: Float32Array;
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
  /** Forward steps that can usefully be in flight at once (pipeline stages). */
  readonly pipelineDepth: number;
  /**
   * Changes when the runner's KV caches were rebuilt (a cluster re-planned): every cached prefix
   * and the KV of every sequence in progress is then gone (the engine resumes those sequences).
   */
  readonly epoch: number;
  /** Resolves when the runner can take new sequences (a cluster that is re-planning first finishes). */
  settle?(): Promise<void>;
  /** Why the runner cannot run steps now (a cluster that lost the nodes it needs), else undefined. */
  readonly unavailable?: string;
  /** Registers a sequence the runner will sample for. */
  startSequence(seq: number, spec: SequenceSpec): Promise<void>;
  /** Forgets a sequence. */
  endSequence(seq: number): Promise<void>;
  /** Runs one step; concurrent calls are allowed (they queue per stage). */
  forward(req: ForwardRequest): Promise<ForwardResult>;
  /** Copies the first n cached positions of one slot to another. */
  copySlotPrefix(from: number, to: number, n: number): Promise<void>;
  /** Copies the first n positions of a slot aside under `key` (prompt cache); returns the bytes held. */
  saveSlot(slot: number, n: number, key: number): Promise<number>;
  /**
   * The bytes saveSlot would hold for n positions, where the runner knows them without copying
   * (the prompt cache then never copies a prefix its budget cannot keep).
   */
  savedBytes?(n: number): number;
  /** Writes a saved prefix back into a slot. */
  loadSlot(key: number, slot: number): Promise<void>;
  /** Forgets a saved prefix. */
  dropSaved(key: number): Promise<void>;
  /** A saved prefix as bytes (for the on-disk cache). */
  exportSaved(key: number): Promise<Uint8Array>;
  /** Takes a saved prefix from bytes written by exportSaved; returns the bytes held. */
  importSaved(key: number, bytes: Uint8Array): Promise<number>;
}

/**
 * A step or sequence call that failed because the runner is being rebuilt (a cluster lost a node
 * and is re-planning). Nothing about the sequences is wrong: the engine waits for settle() and
 * resumes them on the rebuilt runner by reading their tokens again.
 */
export class RunnerInterrupted extends CairnError {
  constructor(message: string) {
    super('CLUSTER_CLOSED', message);
    this.name = 'RunnerInterrupted';
  }
}

/** Runs a model whose shards all live in this process, one after the other. */
export class LocalRunner implements ForwardRunner {
  readonly nVocab: number;
  readonly maxBatch: number;
  readonly slots: number;
  readonly ctxPerSlot: number;
  readonly pipelineDepth = 1;
  readonly epoch = 0;
  private readonly samplers = new SequenceSamplers();

  constructor(private readonly shards: readonly DecoderShard[]) {
    const first = shards[0];
    this.nVocab = first.cfg.nVocab;
    this.maxBatch = Math.min(...shards.map((s) => s.maxBatch));
    this.slots = Math.min(...shards.map((s) => s.kv.slots));
    this.ctxPerSlot = Math.min(...shards.map((s) => s.kv.ctxPerSlot));
  }

  async startSequence(seq: number, spec: SequenceSpec): Promise<void> {
    this.samplers.start(seq, spec);
  }

  async endSequence(seq: number): Promise<void> {
    this.samplers.end(seq);
  }

  async forward(req: ForwardRequest): Promise<ForwardResult> {
    let hidden: Float32Array | undefined;
    for (const shard of this.shards) {
      hidden = shard.forward({ nTokens: req.nTokens, tokens: req.tokens, hidden, spans: req.spans, outputRows: req.outputs.map((o) => o.row) });
    }
    return sampleOutputs(this.samplers, req.outputs, hidden!, this.nVocab);
  }

  private readonly saved = new Map<number, KvSnapshot[]>();

  async copySlotPrefix(from: number, to: number, n: number): Promise<void> {
    for (const shard of this.shards) shard.kv.copyPrefix(from, to, n);
  }

  savedBytes(n: number): number {
    return this.shards.reduce((a, s) => a + s.kv.snapshotBytes(n), 0);
  }

  async saveSlot(slot: number, n: number, key: number): Promise<number> {
    const snaps = this.shards.map((s) => s.kv.snapshot(slot, n));
    this.saved.set(key, snaps);
    return snapshotBytes(snaps);
  }

  async loadSlot(key: number, slot: number): Promise<void> {
    const snaps = this.saved.get(key);
    if (!snaps) throw new CairnError('BAD_ARGUMENT', `no saved prefix ${key}`);
    this.shards.forEach((s, i) => s.kv.restore(snaps[i], slot));
  }

  async dropSaved(key: number): Promise<void> {
    this.saved.delete(key);
  }

  async exportSaved(key: number): Promise<Uint8Array> {
    const snaps = this.saved.get(key);
    if (!snaps) throw new CairnError('BAD_ARGUMENT', `no saved prefix ${key}`);
    return encodeSnapshots(snaps);
  }

  async importSaved(key: number, bytes: Uint8Array): Promise<number> {
    const kv = this.shards[0]?.kv;
    const snaps = decodeSnapshots(bytes, kv && ((n) => kv.copyArena(n)));
    if (snaps.length !== this.shards.length) throw new CairnError('BAD_ARGUMENT', 'saved prefix was made for another layout');
    this.saved.set(key, snaps);
    return snapshotBytes(snaps);
  }
}

/** Samples the `sample` outputs and packs the `logits` ones (shared by every runner's last stage). */
export function sampleOutputs(samplers: SequenceSamplers, outputs: readonly OutputRequest[], logits: Float32Array, nVocab: number): ForwardResult {
  const tokens = new Int32Array(outputs.length).fill(-1);
  const logprobs: (StepLogprobs | undefined)[] = new Array(outputs.length);
  const wanted = outputs.filter((o) => o.mode === 'logits').length;
  const packed = wanted === outputs.length ? logits : new Float32Array(wanted * nVocab);
  // Sequences whose draft was wrong at an earlier output of this step.
  let missed: Set<number> | undefined;
  let k = 0;
  outputs.forEach((o, j) => {
    const row = logits.subarray(j * nVocab, (j + 1) * nVocab);
    if (o.mode === 'sample') {
      if (missed?.has(o.seq)) return;
      const r = samplers.sample(o.seq, row);
      tokens[j] = r.token;
      logprobs[j] = r.logprobs;
      if (o.draft !== undefined && r.token !== o.draft) (missed ??= new Set()).add(o.seq);
    } else {
      if (packed !== logits) packed.set(row, k * nVocab);
      k++;
    }
  });
  return { tokens, logprobs, logits: packed.subarray(0, wanted * nVocab) };
}

/** Bytes the snapshots hold. */
export function snapshotBytes(snaps: readonly KvSnapshot[]): number {
  return snaps.reduce((a, s) => a + s.layers.reduce((b, l) => b + l.length, 0), 0);
}

/**
 * The layout of a saved prefix's bytes: per shard, its KV type, positions, number of layers and
 * the order of their rows (absent in files of versions that knew only `rows`).
 */
interface SnapshotsHead {
  readonly shards: readonly { readonly type: number; readonly tokens: number; readonly layers: number; readonly layout?: KvSnapshotLayout }[];
}

/** A saved prefix as bytes: one message (util/message-framing.ts) of a SnapshotsHead and every shard's layers in order. */
export function encodeSnapshots(snaps: readonly KvSnapshot[]): Uint8Array {
  const head: SnapshotsHead = { shards: snaps.map((s) => ({ type: s.type, tokens: s.tokens, layers: s.layers.length, layout: s.layout })) };
  return packMessage(head, ...snaps.flatMap((s) => s.layers));
}

/**
 * The snapshots in bytes written by encodeSnapshots (layers copied out, into arenas from `allocate`
 * where it gives them: a KV cache's, on huge pages, fault in far faster than a copy's worth of fresh
 * small pages); BAD_ARGUMENT when they do not hold them.
 */
export function decodeSnapshots(bytes: Uint8Array, allocate?: (bytes: number) => ArrayBuffer | undefined): KvSnapshot[] {
  const { head, bodies } = unpackMessage<Partial<SnapshotsHead> | null>(bytes, { what: 'saved prefix', code: 'BAD_ARGUMENT' });
  const shards = head?.shards;
  const count = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 0;
  const layoutOk = (x: unknown) => x === undefined || isKvSnapshotLayout(x);
  if (!Array.isArray(shards) || !shards.every((s: SnapshotsHead['shards'][number] | null) => count(s?.type) && count(s?.tokens) && count(s?.layers) && layoutOk(s?.layout))) {
    throw new CairnError('BAD_ARGUMENT', 'malformed saved prefix: its head does not describe the shards');
  }
  const layers = shards.reduce((a, s) => a + s.layers, 0);
  if (layers !== bodies.length) throw new CairnError('BAD_ARGUMENT', `malformed saved prefix: ${bodies.length} layers where its head names ${layers}`);
  const copies = arenaViews(bodies.map((b) => b.length), allocate, SNAPSHOT_ALIGN);
  copies.forEach((copy, i) => copy.set(bodies[i]));
  let next = 0;
  return shards.map((s) => ({
    type: s.type as KvSnapshot['type'],
    tokens: s.tokens,
    layers: copies.slice(next, (next += s.layers)),
    layout: s.layout ?? 'rows',
  }));
}
