/**
 * One plan, running, as the coordinator drives it: a handle on each stage in order (the first may
 * be in this process; a remote one is a connection to the node whose StageRunner runs it, or to
 * rank 0 of its tensor-parallel group), and the step protocol over them. A step goes down the pipeline as token ids then hidden states; the last
 * stage samples and only token ids come back. Several steps may be in flight at once (one per
 * micro-batch group), each stage working on a different one.
 *
 * If a remote stage goes away, every step in flight is interrupted at once (RunnerInterrupted:
 * the engine resumes those sequences on the next plan) and the pipeline reports itself broken so
 * the coordinator can plan again. A result is checked against its step before anything uses it;
 * a node that sends one that does not fit (a token outside the vocabulary, wrong counts, a step
 * not in flight) is misbehaving: the steps in flight fail with a clear error and the node is
 * dropped.
 */
import { performance } from 'node:perf_hooks';
import { DType, frameJson, jsonPayload, type Frame, type PeerConnection } from '../cluster/index.js';
import { checkForwardResult, type ExpectedOutput } from '../engine/result-check.js';
import type { ForwardRequest, ForwardResult } from '../engine/runner.js';
import { LocalRunner, RunnerInterrupted, sampleOutputs } from '../engine/runner.js';
import type { LoadedShards } from '../engine/load.js';
import type { SequenceSpec } from '../engine/sequence-samplers.js';
import { SequenceSamplers } from '../engine/sequence-samplers.js';
import type { StepLogprobs } from '../sampling/index.js';
import { CairnError } from '../util/errors.js';
import { HiddenCodec } from './codec.js';
import { restKernelThreads } from '../kernels/index.js';
import { applyKvOp } from './kv-ops.js';
import { MeshFrame, type ForwardHead, type KvOp } from './protocol.js';
import { packMessage, unpackMessage } from '../util/message-framing.js';
import { runGroupStep, type GroupExchange } from './group-step.js';

/**
 * The coordinator's handle on a stage of the pipeline: its shards in this process, or the connection
 * to the node that runs it. A local stage's `group`: the coordinator is rank 0 of a tensor-parallel
 * group (it hands each step to the other ranks and adds up partial sums over its connections to
 * them) or an expert-parallel group's home.
 */
export type StageHandle =
  | { readonly kind: 'local'; readonly loaded: LoadedShards; readonly nodeId: string; readonly name: string; readonly group?: GroupExchange }
  | { readonly kind: 'remote'; readonly conn: PeerConnection; readonly nodeId: string; readonly name: string; readonly layerStart: number; readonly layerEnd: number };

/** The handle on a stage another node runs. */
export type RemoteStageHandle = Extract<StageHandle, { kind: 'remote' }>;

/** What a pipeline tells the coordinator that runs it. */
export interface PipelineEvents {
  /** A stage went away or could not read a step: the plan must be made again. */
  broken(reason: string): void;
  /** A node sent something that does not answer its step; it is being dropped. */
  misbehaved(nodeId: string, detail: string): void;
}

interface Pending {
  resolve(r: ForwardResult): void;
  reject(e: Error): void;
  readonly outputs: readonly ExpectedOutput[];
}

/** Longest node-supplied message repeated in an error. */
const MAX_REMOTE_MESSAGE = 300;

/** Runs steps over the stages of one plan. */
export class Pipeline {
  private readonly pending = new Map<number, Pending>();
  /** The coordinator's group steps, one after another. */
  private groupQueue: Promise<void> = Promise.resolve();
  private nextStep = 1;
  private readonly codec: HiddenCodec | undefined;
  private readonly local: LocalRunner | undefined;
  private readonly samplers = new SequenceSamplers();
  /** Alternatives each registered sequence asked for, to check the logprobs that come back. */
  private readonly logprobsOf = new Map<number, number | undefined>();
  private brokenReason: string | undefined;
  private readonly detach: (() => void)[] = [];
  /** Recent one-sequence decode steps (one token in, one sampled out): seconds each, newest last. */
  private readonly decodeSeconds: number[] = [];

  /**
   * `stages`: the chain a step goes down (for a tensor-parallel group, its rank 0, which hands each
   * step to the group's other ranks); `followers`: those other ranks, which take part in KV
   * operations and whose failures and departures break the pipeline like a stage's;
   * `expertRanks`: the expert ranks of expert-parallel groups, which hold no KV cache but whose
   * departure breaks the pipeline too.
   */
  constructor(
    readonly stages: readonly StageHandle[],
    readonly epoch: number,
    private readonly nVocab: number,
    private readonly nEmbd: number,
    private readonly events: PipelineEvents,
    private readonly wire: 'f16' | 'f32' = 'f32',
    readonly followers: readonly RemoteStageHandle[] = [],
    readonly expertRanks: readonly RemoteStageHandle[] = [],
  ) {
    const first = stages[0];
    if (first.kind === 'local') {
      this.codec = new HiddenCodec(first.loaded.kernels);
      this.local = new LocalRunner(first.loaded.shards);
    }
    const last = stages[stages.length - 1];
    for (const s of this.nodes) {
      if (s.kind !== 'remote') continue;
      const onFrame = (f: Frame) => this.onFrame(s, f, s === last);
      const onClose = () => this.breakWith(`node ${s.name} (layers ${s.layerStart}-${s.layerEnd - 1}) disconnected`);
      s.conn.on('frame', onFrame);
      s.conn.on('close', onClose);
      this.detach.push(() => {
        s.conn.off('frame', onFrame);
        s.conn.off('close', onClose);
      });
    }
    // A connection that closed before the listener was attached never says so again.
    const gone = this.nodes.find((s): s is RemoteStageHandle => s.kind === 'remote' && !s.conn.isOpen);
    if (gone) this.brokenReason = `node ${gone.name} (layers ${gone.layerStart}-${gone.layerEnd - 1}) disconnected`;
  }

  /** The nodes with KV caches: the stages, then the tensor groups' other ranks (KV operations go to all). */
  get members(): readonly StageHandle[] {
    return [...this.stages, ...this.followers];
  }

  /** Every node of the plan: the members, then the expert ranks. */
  get nodes(): readonly StageHandle[] {
    return [...this.members, ...this.expertRanks];
  }

  /** Why the pipeline broke, or undefined while it works. */
  get broken(): string | undefined {
    return this.brokenReason;
  }

  private get last(): StageHandle {
    return this.stages[this.stages.length - 1];
  }

  /** Interrupts everything in flight and marks the pipeline broken (once); `notify` asks for a new plan. */
  breakWith(reason: string, notify = true): void {
    if (this.brokenReason) return;
    this.brokenReason = reason;
    // A local rank waiting on its group's partial sums stops waiting.
    const first = this.stages[0];
    if (first.kind === 'local') first.group?.exchange?.break(new RunnerInterrupted(`the cluster lost a node (${reason})`));
    this.failPending(new RunnerInterrupted(`the cluster lost a node (${reason}); the coordinator is planning again`));
    if (notify) this.events.broken(reason);
  }

  private failPending(err: Error): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) p.reject(err);
  }

  /** The error for a call made on a pipeline that is going away. */
  private interrupted(): RunnerInterrupted {
    return new RunnerInterrupted(`the cluster is re-planning after: ${this.brokenReason ?? 'a node left'}`);
  }

  /** A node sent something that does not answer its step: what is in flight fails, and the node goes. */
  private misbehaved(stage: RemoteStageHandle, detail: string): void {
    const reason = `node ${stage.name} sent a bad result (${detail})`;
    this.failPending(new CairnError('CLUSTER_PROTOCOL', `${reason}; the request failed and the node was dropped`));
    this.breakWith(reason);
    this.events.misbehaved(stage.nodeId, detail);
    stage.conn.destroy(reason);
  }

  private onFrame(stage: RemoteStageHandle, frame: Frame, isLast: boolean): void {
    if (this.brokenReason) return;
    const first = this.stages[0];
    if (frame.type === MeshFrame.partial && first.kind === 'local' && first.group?.exchange) {
      first.group.exchange.onPartial(stage.nodeId, frame);
      return;
    }
    if (frame.type === MeshFrame.result && isLast) {
      let why: string | undefined;
      try {
        why = this.onResult(frame);
      } catch (err) {
        why = (err as Error).message;
      }
      if (why) this.misbehaved(stage, why);
    } else if (frame.type === MeshFrame.stepError) {
      let e: { epoch: unknown; step: unknown; message: unknown };
      try {
        e = frameJson(frame) as typeof e;
      } catch {
        return this.misbehaved(stage, 'a step error that is not JSON');
      }
      if (!isRecord(e) || !Number.isSafeInteger(e.epoch) || !Number.isSafeInteger(e.step) || typeof e.message !== 'string') return this.misbehaved(stage, 'a malformed step error');
      if (e.epoch !== this.epoch) return;
      const message = e.message.slice(0, MAX_REMOTE_MESSAGE);
      const p = this.pending.get(e.step as number);
      if (p) {
        this.pending.delete(e.step as number);
        p.reject(new CairnError('CLUSTER_REMOTE', `node ${stage.name} failed a step: ${message}`));
      } else if (e.step === -1) {
        this.breakWith(`node ${stage.name} could not read a step: ${message}`);
      }
    }
  }

  /** Resolves a step from a result frame; returns what is wrong with the frame, if anything. */
  private onResult(frame: Frame): string | undefined {
    const { head, bodies } = unpackMessage(frame.payload, { bodies: 1, what: 'result message' });
    const body = bodies[0];
    if (!isRecord(head) || !Number.isSafeInteger(head.epoch) || !Number.isSafeInteger(head.step)) return 'a result without a valid epoch and step';
    if (head.epoch !== this.epoch) return undefined; // a step of an older plan
    const p = this.pending.get(head.step as number);
    if (!p) return `a result for step ${String(head.step)}, which is not in flight`;
    const n = p.outputs.length;
    const { tokens, logprobs } = head;
    if (!Array.isArray(tokens) || tokens.length !== n) return `${Array.isArray(tokens) ? tokens.length : 'no'} token ids for ${n} outputs`;
    if (!tokens.every((t) => Number.isSafeInteger(t) && (t as number) >= -1 && (t as number) < this.nVocab)) return `token ids outside the vocabulary of ${this.nVocab} (${tokens.find((t) => !(Number.isSafeInteger(t) && (t as number) >= -1 && (t as number) < this.nVocab))})`;
    if (!Array.isArray(logprobs) || logprobs.length !== n) return `${Array.isArray(logprobs) ? logprobs.length : 'no'} logprobs entries for ${n} outputs`;
    if (body.length % 4 !== 0) return `${body.length} bytes of logits`;
    const result: ForwardResult = {
      tokens: Int32Array.from(tokens as number[]),
      logprobs: logprobs.map(fromWireLogprobs),
      logits: body.length ? new Float32Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.length)) : new Float32Array(0),
    };
    const why = checkForwardResult(result, p.outputs, this.nVocab);
    if (why) return why;
    this.pending.delete(head.step as number);
    p.resolve(result);
    return undefined;
  }

  /**
   * Tokens per second of one sequence decoding alone, as measured over the last steps that were
   * exactly that (one token in, one sampled out); undefined before there are any.
   */
  get measuredTokensPerSecond(): number | undefined {
    const s = this.decodeSeconds;
    if (s.length === 0) return undefined;
    const sorted = [...s].sort((a, b) => a - b);
    return 1 / sorted[sorted.length >> 1];
  }

  /** Runs one step through every stage. */
  forward(req: ForwardRequest): Promise<ForwardResult> {
    // A lone decode step (nothing else in flight): its round trip is the plan's one-stream speed. The
    // clock starts before the step does: the coordinator's own layers run inside forwardStep.
    const lone = req.nTokens === 1 && req.outputs.length === 1 && this.pending.size === 0;
    const t0 = performance.now();
    const result = this.forwardStep(req);
    if (!lone) return result;
    return result.then((r) => {
      if (this.pending.size === 0) {
        this.decodeSeconds.push((performance.now() - t0) / 1000);
        if (this.decodeSeconds.length > 64) this.decodeSeconds.shift();
      }
      return r;
    });
  }

  private forwardStep(req: ForwardRequest): Promise<ForwardResult> {
    if (this.brokenReason) return Promise.reject(this.interrupted());
    const step = this.nextStep++;
    const outputs: ExpectedOutput[] = req.outputs.map((o) => ({ mode: o.mode, logprobs: o.mode === 'sample' ? this.logprobsOf.get(o.seq) : undefined, seq: o.seq, draft: o.draft }));
    const head: ForwardHead = {
      epoch: this.epoch,
      step,
      nTokens: req.nTokens,
      spans: req.spans.map((s) => [s.slot, s.pos0, s.start, s.n] as const),
      outputs: req.outputs.map((o) => (o.draft === undefined ? [o.row, o.seq, o.mode === 'logits' ? 1 : 0] : [o.row, o.seq, 0, o.draft])),
      kind: 'tokens',
      wire: this.wire,
    };
    try {
      const first = this.stages[0];
      if (first.kind === 'local' && first.group) {
        // Steps of a group run one after another, in the same order on every rank.
        const run = this.groupQueue.then(() => this.runLocalGroup(first, first.group!, req, step, head, outputs));
        this.groupQueue = run.then(
          () => undefined,
          () => undefined,
        );
        return run;
      }
      if (first.kind === 'local') {
        let hidden: Float32Array | undefined;
        const isLast = this.stages.length === 1;
        for (const shard of first.loaded.shards) {
          hidden = shard.forward({ nTokens: req.nTokens, tokens: req.tokens, hidden, spans: req.spans, outputRows: isLast ? req.outputs.map((o) => o.row) : undefined });
        }
        if (isLast) return Promise.resolve(sampleOutputs(this.samplers, req.outputs, hidden!, this.nVocab));
        const next = this.stages[1] as RemoteStageHandle;
        const kind = this.wire === 'f16' ? 'hidden16' : 'hidden32';
        restKernelThreads(); // before the send: see StageRunner.deliver
        return this.send(step, outputs, next, packMessage({ ...head, kind } satisfies ForwardHead, this.codec!.encode(hidden!, req.nTokens * this.nEmbd, kind)));
      }
      return this.send(step, outputs, first, packMessage(head, req.tokens));
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  /**
   * One step of the coordinator's group: the other ranks of a tensor group are handed the step
   * first; this rank runs its shards, adding up partial sums with them (or sending expert ranks
   * their tokens), then samples (last stage) or passes the hidden states on.
   */
  private async runLocalGroup(
    first: Extract<StageHandle, { kind: 'local' }>,
    group: GroupExchange,
    req: ForwardRequest,
    step: number,
    head: ForwardHead,
    outputs: readonly ExpectedOutput[],
  ): Promise<ForwardResult> {
    if (this.brokenReason) throw this.interrupted();
    if (group.exchange) {
      const message = packMessage(head, req.tokens);
      for (const f of this.followers) {
        if (!f.conn.isOpen) throw this.interrupted();
        f.conn.send(MeshFrame.forward, { dtype: DType.raw }, message);
      }
    }
    const isLast = this.stages.length === 1;
    let hidden: Float32Array;
    try {
      const batch = { nTokens: req.nTokens, tokens: req.tokens, spans: req.spans, outputRows: isLast ? req.outputs.map((o) => o.row) : undefined };
      hidden = await runGroupStep(first.loaded.shards, batch, step, group);
    } catch (err) {
      if (this.brokenReason) throw this.interrupted();
      // A group that cannot finish a step is broken: the plan is made again.
      this.breakWith(`the coordinator's group failed a step: ${(err as Error).message}`);
      throw this.interrupted();
    }
    if (isLast) return sampleOutputs(this.samplers, req.outputs, hidden, this.nVocab);
    const next = this.stages[1] as RemoteStageHandle;
    const kind = this.wire === 'f16' ? 'hidden16' : 'hidden32';
    restKernelThreads();
    return this.send(step, outputs, next, packMessage({ ...head, kind } satisfies ForwardHead, this.codec!.encode(hidden, req.nTokens * this.nEmbd, kind)));
  }

  /** Sends a step's input to a stage and waits for its result from the last one. */
  private send(step: number, outputs: readonly ExpectedOutput[], to: RemoteStageHandle, payload: Buffer): Promise<ForwardResult> {
    if (!to.conn.isOpen) {
      this.breakWith(`node ${to.name} (layers ${to.layerStart}-${to.layerEnd - 1}) disconnected`);
      return Promise.reject(this.interrupted());
    }
    const promise = new Promise<ForwardResult>((resolve, reject) => this.pending.set(step, { resolve, reject, outputs }));
    to.conn.send(MeshFrame.forward, { dtype: DType.raw }, payload);
    return promise;
  }

  /** Registers a sequence with the stage that samples (the last). */
  async startSequence(seq: number, spec: SequenceSpec): Promise<void> {
    if (this.brokenReason) throw this.interrupted();
    this.logprobsOf.set(seq, spec.logprobs);
    const last = this.last;
    if (last.kind === 'local') return this.samplers.start(seq, spec);
    const p = jsonPayload({ seq, spec });
    await this.remote(last, () => last.conn.request(MeshFrame.seqStart, p.meta, p.payload));
  }

  /** Forgets a sequence's sampler. */
  async endSequence(seq: number): Promise<void> {
    this.logprobsOf.delete(seq);
    const last = this.last;
    if (last.kind === 'local') return this.samplers.end(seq);
    if (!last.conn.isOpen) return;
    const p = jsonPayload({ seq });
    last.conn.send(MeshFrame.seqEnd, p.meta, p.payload);
  }

  /** Applies a KV operation on every stage; returns each stage's reply. */
  async kv(op: KvOp, parts?: readonly Uint8Array[]): Promise<{ bytes: number; data?: Uint8Array }[]> {
    if (this.brokenReason) throw this.interrupted();
    return Promise.all(
      this.members.map(async (s, i) => {
        if (s.kind === 'local') return applyKvOp(this.local!, op, parts?.[i]);
        const reply = await this.remote(s, () => s.conn.request(MeshFrame.kv, { dtype: DType.raw }, op.op === 'import' ? packMessage(op, parts![i]) : packMessage(op), { timeoutMs: 120_000 }));
        if (op.op === 'export') return { bytes: 0, data: new Uint8Array(reply.payload) };
        const bytes = (frameJson(reply) as { bytes?: unknown }).bytes;
        if (!(Number.isSafeInteger(bytes) && (bytes as number) >= 0)) throw new CairnError('CLUSTER_PROTOCOL', `node ${s.name} answered a KV operation with ${String(bytes)} bytes`);
        return { bytes: bytes as number };
      }),
    );
  }

  /** A request to a stage; one that fails because the stage went away interrupts rather than fails. */
  private async remote<T>(stage: RemoteStageHandle, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      if (this.brokenReason || !stage.conn.isOpen) throw this.interrupted();
      throw err;
    }
  }

  /** Tells remote stages to drop their shards and releases the local one. */
  async close(reason: string): Promise<void> {
    this.breakWith(reason, false);
    for (const d of this.detach) d();
    const unload = jsonPayload({});
    await Promise.all(
      this.nodes.map(async (s) => {
        if (s.kind === 'local') s.loaded.close();
        else if (s.conn.isOpen) await s.conn.request(MeshFrame.unload, unload.meta, unload.payload, { timeoutMs: 5000 }).catch(() => {});
      }),
    );
  }
}

/** A logprobs entry as JSON carries it: null for none, and null for a logprob of -Infinity. */
function fromWireLogprobs(lp: unknown): StepLogprobs | undefined {
  if (lp === null) return undefined;
  if (!isRecord(lp)) return lp as StepLogprobs;
  const top = Array.isArray(lp.top) ? lp.top.map((t: unknown) => (isRecord(t) ? { id: t.id, logprob: t.logprob ?? -Infinity } : t)) : lp.top;
  return { id: lp.id, logprob: lp.logprob ?? -Infinity, top } as StepLogprobs;
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}
