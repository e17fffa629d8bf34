/**
 * A stage as the node that runs it holds it (the coordinator's side of a stage is a StageHandle,
 * pipeline.ts): the node's shard of the model with KV caches, the samplers of the sequences when
 * it is the last stage, and the step loop: take a step's input (token ids or hidden states), run
 * the layers (as one rank of a tensor-parallel group, adding up partial sums with the other ranks
 * after each product that needs it), and pass hidden states to the next stage or, at the end,
 * sample and send only token ids back to the coordinator.
 */
import type { Frame, PeerConnection } from '../cluster/index.js';
import { DType } from '../cluster/index.js';
import { restKernelThreads } from '../kernels/index.js';
import { sampleOutputs } from '../engine/runner.js';
import { HiddenCodec } from './codec.js';
import { CairnError } from '../util/errors.js';
import { applyKvOp } from './kv-ops.js';
import { MeshFrame, type ExchangeProbe, type ForwardHead, type KvOp, type ResultHead } from './protocol.js';
import { packMessage, unpackMessage } from '../util/message-framing.js';
import type { OutputRequest } from '../engine/runner.js';
import { SequenceSamplers } from '../engine/sequence-samplers.js';
import type { StageSizes } from './limits.js';
import { checkForwardHead, checkTokenIds, type StageBounds } from './validate.js';
import { runGroupStep, type GroupExchange } from './group-step.js';
import type { ShardBatch } from '../model/decoder.js';
import type { StageModel } from './stage-model.js';

/** Where a stage runner's output goes. */
export interface StageLinks {
  /** The next stage, or undefined when this is the last. */
  readonly next?: PeerConnection;
  /** The coordinator, which gets the results and step errors. */
  readonly coordinator: PeerConnection;
  /**
   * This node's tensor-parallel group, when the stage is one rank of it: every rank runs every
   * step (rank 0 passes each step's input on to the others) and adds up partial sums with them;
   * rank 0 alone sends the stage's output on. Or, as the home of an expert-parallel group, the
   * expert ranks it sends each MoE layer's routed tokens to (they run no steps of their own).
   */
  readonly group?: GroupExchange & { readonly followers: readonly PeerConnection[] };
}

/**
 * Steps a stage holds at once (waiting in a group rank's queue, or on a GPU). The coordinator keeps
 * one step in flight per pipeline stage, so a legitimate plan stays far below; each holds a whole
 * step's activations, which a peer sending steps faster than they run would otherwise pile up.
 */
export const MAX_QUEUED_STEPS = 64;
/** Sampled sequences a stage keeps per KV slot: every live sequence holds a slot, with room for one ending as the next starts. */
export const SEQUENCES_PER_SLOT = 2;
/** Saved KV prefixes a stage keeps (the coordinator's prompt cache decides which; its byte budget bounds them first). */
export const MAX_SAVED_PREFIXES = 65_536;

/** Bounds on what a stage keeps for its coordinator beyond the plan's own buffers. */
export interface StageLimits {
  /** Bytes of saved KV prefixes at most (a node: the memory it offers). Default: no bound beyond MAX_SAVED_PREFIXES. */
  readonly savedBytes?: number;
}

/** One node's loaded stage of a plan, executing the steps sent to it. */
export class StageRunner {
  private readonly codec: HiddenCodec;
  private readonly samplers = new SequenceSamplers();
  /** Bytes of each saved KV prefix, by key. */
  private readonly saved = new Map<number, number>();
  private savedBytes = 0;
  /** Steps taken and not yet finished. */
  private queued = 0;
  readonly isFirst: boolean;
  readonly isLast: boolean;
  /** Steps of a group rank run one after another, in the order they came (the same on every rank). */
  private queue: Promise<void> = Promise.resolve();

  constructor(
    readonly loaded: StageModel,
    readonly epoch: number,
    private readonly links: StageLinks,
    private readonly limits: StageLimits = {},
  ) {
    if (links.group && !loaded.shards) throw new CairnError('MODEL_UNSUPPORTED', 'a rank of a tensor- or expert-parallel group runs on the CPU only');
    this.codec = new HiddenCodec(loaded.kernels);
    this.isFirst = loaded.layerStart === 0;
    this.isLast = loaded.layerEnd === loaded.config.nLayer;
  }

  /** Runs one forward frame; errors (a malformed frame among them) go to the coordinator as a step error, never thrown. */
  onForward(frame: Frame): void {
    if (this.queued >= MAX_QUEUED_STEPS) {
      this.stepFailed(new CairnError('CLUSTER_PROTOCOL', `step refused: ${MAX_QUEUED_STEPS} steps are already waiting at this stage (more than a plan keeps in flight)`), -1);
      return;
    }
    this.queued++;
    const group = this.links.group;
    if (group) {
      // Rank 0 hands the step to the other ranks first, so all start it at once.
      for (const f of group.followers) if (f.isOpen) f.send(MeshFrame.forward, { dtype: DType.raw }, frame.payload);
      this.queue = this.queue.then(() => this.step(frame));
      return;
    }
    void this.step(frame);
  }

  private async step(frame: Frame): Promise<void> {
    let step = -1;
    try {
      const msg = unpackMessage(frame.payload, { bodies: 1, what: 'forward message' });
      const raw = msg.head as { epoch?: unknown; step?: unknown } | null;
      if (typeof raw?.epoch === 'number' && raw.epoch !== this.epoch) return; // a step of an older plan
      if (typeof raw?.step === 'number' && Number.isSafeInteger(raw.step) && raw.step >= 0) step = raw.step;
      const head = checkForwardHead(msg.head, this.bounds);
      if (this.links.group) await this.runGroupStep(head, msg.bodies[0]);
      else await this.run(head, msg.bodies[0]);
    } catch (err) {
      this.stepFailed(err as Error, step);
    } finally {
      this.queued--;
    }
  }

  private stepFailed(err: Error, step: number): void {
    // A rank that fails a step its group has begun leaves the others waiting on its partial sums:
    // the group is broken, and the step error says so (step -1: the plan must be made again).
    // So does a home whose expert rank failed it.
    const group = this.links.group?.exchange;
    if (group && !group.broken) group.break(err);
    const message = err.message.slice(0, 2000);
    // A coordinator already gone (this node was stopped past its liveness deadline) hears nothing:
    // its connection's close drops this stage.
    if (!this.links.coordinator.isOpen) return;
    this.links.coordinator.send(MeshFrame.stepError, { dtype: DType.json }, Buffer.from(JSON.stringify({ epoch: this.epoch, step: this.links.group ? -1 : step, message })));
  }

  /** A partial sum from another rank of this stage's group. */
  onPartial(fromNodeId: string, frame: Frame): void {
    this.links.group?.exchange?.onPartial(fromNodeId, frame);
  }

  /** Runs an exchange probe with the other ranks of this stage's tensor-parallel group (TensorGroup.probe). */
  probeExchange(probe: ExchangeProbe): Promise<number> {
    const exchange = this.links.group?.exchange;
    if (!exchange) throw new CairnError('BAD_ARGUMENT', 'this stage is not a rank of a tensor-parallel group');
    return exchange.probe(probe.rounds, probe.values);
  }

  /** Sizes that bound the messages this stage receives (limits.ts). */
  get sizes(): StageSizes {
    const b = this.bounds;
    return { maxBatch: b.maxBatch, nEmbd: this.loaded.config.nEmbd, nVocab: b.nVocab, slots: b.slots, kvBytesPerSlot: Math.ceil(this.loaded.kvBytes / b.slots) };
  }

  /** What a step may ask of this stage. */
  get bounds(): StageBounds {
    const m = this.loaded;
    return {
      maxBatch: m.maxBatch,
      slots: m.slots,
      ctxPerSlot: m.ctxPerSlot,
      nVocab: this.loaded.config.nVocab,
      isFirst: this.isFirst,
    };
  }

  /** The batch a forward frame carries (token ids or hidden states). */
  private batchOf(head: ForwardHead, body: Buffer): ShardBatch {
    const D = this.loaded.config.nEmbd;
    const n = head.nTokens;
    const spans = head.spans.map(([slot, pos0, start, len]) => ({ slot, pos0, start, n: len }));
    let tokens: Int32Array | undefined;
    let hidden: Float32Array | undefined;
    if (head.kind === 'tokens') {
      if (body.length !== 4 * n) throw new Error(`step ${head.step}: ${body.length} bytes of token ids for ${n} tokens`);
      tokens = body.byteOffset % 4 === 0 ? new Int32Array(body.buffer, body.byteOffset, n) : new Int32Array(Uint8Array.prototype.slice.call(body).buffer);
      checkTokenIds(tokens, this.loaded.config.nVocab);
    } else {
      const width = head.kind === 'hidden16' ? 2 : 4;
      if (body.length !== width * n * D) throw new Error(`step ${head.step}: ${body.length} bytes of hidden states for ${n} x ${D}`);
      hidden = this.codec.decode(body, n * D, head.kind);
    }
    return { nTokens: n, tokens, hidden, spans, outputRows: this.isLast ? head.outputs.map(([row]) => row) : undefined };
  }

  /** A step: delivered at once on the CPU, or (a GPU stage, whose steps the device takes in turn) when the device has run it. */
  private run(head: ForwardHead, body: Buffer): void | Promise<void> {
    const out = this.loaded.forward(this.batchOf(head, body));
    if (out instanceof Float32Array) return this.deliver(head, out);
    return out.then((o) => this.deliver(head, o));
  }

  /** One step of a group rank: the forward pass, adding up each partial sum with the other ranks. */
  private async runGroupStep(head: ForwardHead, body: Buffer): Promise<void> {
    const group = this.links.group!;
    const out = await runGroupStep(this.loaded.shards!, this.batchOf(head, body), head.step, group);
    if (!group.exchange || group.exchange.rank === 0) this.deliver(head, out);
  }

  /** Sends a step's output on: hidden states to the next stage, or (last) sampled tokens to the coordinator. */
  private deliver(head: ForwardHead, out: Float32Array): void {
    const D = this.loaded.config.nEmbd;
    const n = head.nTokens;
    const outputs: OutputRequest[] = head.outputs.map(([row, seq, mode, draft]) => ({ row, seq, mode: mode === 1 ? 'logits' : 'sample', draft }));
    if (!this.isLast) {
      const next = this.links.next!;
      const kind = head.wire === 'f16' ? 'hidden16' : 'hidden32';
      // Workers to sleep before anything else: spinning now would take a core from the next
      // stage (on a shared machine) while this thread is still sending.
      restKernelThreads();
      next.send(MeshFrame.forward, { dtype: DType.raw }, packMessage({ ...head, kind } satisfies ForwardHead, this.codec.encode(out, n * D, kind)));
      return;
    }
    restKernelThreads();
    const result = sampleOutputs(this.samplers, outputs, out, this.loaded.config.nVocab);
    const resultHead: ResultHead = { epoch: this.epoch, step: head.step, tokens: Array.from(result.tokens), logprobs: result.logprobs.map((l) => l ?? null) };
    this.links.coordinator.send(MeshFrame.result, { dtype: DType.raw }, packMessage(resultHead, result.logits));
  }

  /** Registers a sequence's sampler (last stage); refuses more sequences than the slots can run. */
  startSequence(seq: number, spec: Parameters<SequenceSamplers['start']>[1]): void {
    const most = SEQUENCES_PER_SLOT * this.loaded.slots;
    if (!this.samplers.has(seq) && this.samplers.size >= most) {
      throw new CairnError('BAD_ARGUMENT', `sequence ${seq} refused: this stage already samples ${most} sequences (${SEQUENCES_PER_SLOT} per KV slot); end one first`);
    }
    this.samplers.start(seq, spec);
  }

  /** Drops a sequence's sampler. */
  endSequence(seq: number): void {
    this.samplers.end(seq);
  }

  /** Applies a KV operation to this stage's caches; `import` takes `body` (copied), `export` returns the bytes. */
  async kv(op: KvOp, body?: Buffer): Promise<{ bytes: number; data?: Uint8Array }> {
    if (op.op === 'save' || op.op === 'import') {
      // A new prefix's bytes: a save holds n positions of one slot's cache, an import what it was sent.
      const m = this.loaded;
      const adding = op.op === 'save' ? Math.ceil((m.kvBytes / m.slots) * (op.n / m.ctxPerSlot)) : (body?.length ?? 0);
      const replacing = this.saved.get(op.key);
      const most = this.limits.savedBytes ?? Infinity;
      if (replacing === undefined && this.saved.size >= MAX_SAVED_PREFIXES) {
        throw new CairnError('BAD_ARGUMENT', `KV prefix ${op.key} refused: this stage already keeps ${MAX_SAVED_PREFIXES} saved prefixes; drop some first`);
      }
      if (this.savedBytes - (replacing ?? 0) + adding > most) {
        throw new CairnError('BAD_ARGUMENT', `KV prefix ${op.key} refused: saved prefixes would take ${this.savedBytes - (replacing ?? 0) + adding} bytes, more than the ${most} this node offers; drop some first`);
      }
    }
    const result = await applyKvOp(this.loaded.kvOps, op, body);
    if (op.op === 'save' || op.op === 'import') this.recordSaved(op.key, result.bytes);
    else if (op.op === 'drop') this.recordSaved(op.key, undefined);
    return result;
  }

  private recordSaved(key: number, bytes: number | undefined): void {
    this.savedBytes -= this.saved.get(key) ?? 0;
    if (bytes === undefined) this.saved.delete(key);
    else {
      this.saved.set(key, bytes);
      this.savedBytes += bytes;
    }
  }

  /** Releases the shard's file mapping (and fails what waits on the group). */
  close(): void {
    this.links.group?.exchange?.break(new CairnError('CLUSTER_CLOSED', 'the stage was unloaded'));
    this.loaded.close();
  }
}
