/**
 * One plan, running: the stages in order (the first may be in this process), and the step
 * protocol over them. A step goes down the pipeline as token ids then hidden states; the last
 * stage samples and only token ids come back. Several steps may be in flight at once (one per
 * micro-batch group), each stage working on a different one. If any remote stage goes away, every
 * step in flight fails at once with an error naming the node, and the pipeline reports itself
 * broken so the coordinator can plan again.
 */
import { DType, frameJson, jsonPayload, type Frame, type PeerConnection } from '../cluster/index.js';
import type { ForwardRequest, ForwardResult } from '../engine/runner.js';
import { LocalRunner, sampleOutputs } from '../engine/runner.js';
import type { LoadedShards } from '../engine/load.js';
import type { SequenceSpec } from '../engine/sequence-samplers.js';
import { SequenceSamplers } from '../engine/sequence-samplers.js';
import type { StepLogprobs } from '../sampling/index.js';
import { CairnError } from '../util/errors.js';
import { HiddenCodec } from './codec.js';
import { restKernelThreads } from '../kernels/index.js';
import { applyKvOp } from './kv-ops.js';
import { MeshFrame, packMessage, unpackMessage, type ForwardHead, type KvOp, type ResultHead } from './protocol.js';

/** A stage of the pipeline as the coordinator sees it. */
export type PipelineStage =
  | { readonly kind: 'local'; readonly loaded: LoadedShards; readonly nodeId: string; readonly name: string }
  | { readonly kind: 'remote'; readonly conn: PeerConnection; readonly nodeId: string; readonly name: string; readonly layerStart: number; readonly layerEnd: number };

interface Pending {
  resolve(r: ForwardResult): void;
  reject(e: Error): void;
}

/** Runs steps over the stages of one plan. */
export class Pipeline {
  private readonly pending = new Map<number, Pending>();
  private nextStep = 1;
  private readonly codec: HiddenCodec | undefined;
  private readonly local: LocalRunner | undefined;
  private readonly samplers = new SequenceSamplers();
  private brokenReason: string | undefined;
  private readonly detach: (() => void)[] = [];

  constructor(
    readonly stages: readonly PipelineStage[],
    readonly epoch: number,
    private readonly nVocab: number,
    private readonly nEmbd: number,
    private readonly onBroken: (reason: string) => void,
    private readonly wire: 'f16' | 'f32' = 'f32',
  ) {
    const first = stages[0];
    if (first.kind === 'local') {
      this.codec = new HiddenCodec(first.loaded.kernels);
      this.local = new LocalRunner(first.loaded.shards);
    }
    const last = stages[stages.length - 1];
    for (const s of stages) {
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
  }

  /** Why the pipeline broke, or undefined while it works. */
  get broken(): string | undefined {
    return this.brokenReason;
  }

  private get last(): PipelineStage {
    return this.stages[this.stages.length - 1];
  }

  /** Fails everything in flight and marks the pipeline broken (once); `notify` asks for a new plan. */
  breakWith(reason: string, notify = true): void {
    if (this.brokenReason) return;
    this.brokenReason = reason;
    const err = new CairnError('CLUSTER_CLOSED', `the cluster lost a node: ${reason}; the request failed and the coordinator is planning again`);
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    if (notify) this.onBroken(reason);
  }

  private onFrame(stage: PipelineStage, frame: Frame, isLast: boolean): void {
    try {
      if (frame.type === MeshFrame.result && isLast) {
        const { head, body } = unpackMessage<ResultHead>(frame.payload);
        if (head.epoch !== this.epoch) return;
        const p = this.pending.get(head.step);
        if (!p) return;
        this.pending.delete(head.step);
        const logits = body.length ? new Float32Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.length)) : new Float32Array(0);
        p.resolve({ tokens: Int32Array.from(head.tokens), logprobs: head.logprobs.map((l) => (l ?? undefined) as StepLogprobs | undefined), logits });
      } else if (frame.type === MeshFrame.stepError) {
        const e = frameJson(frame) as { epoch: number; step: number; message: string };
        if (e.epoch !== this.epoch) return;
        const p = this.pending.get(e.step);
        if (p) {
          this.pending.delete(e.step);
          p.reject(new CairnError('CLUSTER_REMOTE', `node ${stage.name} failed a step: ${e.message}`));
        } else if (e.step === -1) {
          this.breakWith(`node ${stage.name} could not read a step: ${e.message}`);
        }
      }
    } catch (err) {
      this.breakWith(`node ${stage.name} sent a malformed result: ${(err as Error).message}`);
    }
  }

  /** Runs one step through every stage. */
  forward(req: ForwardRequest): Promise<ForwardResult> {
    if (this.brokenReason) return Promise.reject(new CairnError('CLUSTER_CLOSED', `the cluster is re-planning after: ${this.brokenReason}`));
    const step = this.nextStep++;
    const head: ForwardHead = {
      epoch: this.epoch,
      step,
      nTokens: req.nTokens,
      spans: req.spans.map((s) => [s.slot, s.pos0, s.start, s.n] as const),
      outputs: req.outputs.map((o) => [o.row, o.seq, o.mode === 'logits' ? 1 : 0] as const),
      kind: 'tokens',
      wire: this.wire,
    };
    const first = this.stages[0];
    if (first.kind === 'local') {
      let hidden: Float32Array | undefined;
      const isLast = this.stages.length === 1;
      for (const shard of first.loaded.shards) {
        hidden = shard.forward({ nTokens: req.nTokens, tokens: req.tokens, hidden, spans: req.spans, outputRows: isLast ? req.outputs.map((o) => o.row) : undefined });
      }
      if (isLast) return Promise.resolve(sampleOutputs(this.samplers, req.outputs, hidden!, this.nVocab));
      const promise = this.await(step);
      const next = this.stages[1] as Extract<PipelineStage, { kind: 'remote' }>;
      const kind = this.wire === 'f16' ? 'hidden16' : 'hidden32';
      restKernelThreads(); // before the send: see Stage.run
      next.conn.send(MeshFrame.forward, { dtype: DType.raw }, packMessage({ ...head, kind } satisfies ForwardHead, this.codec!.encode(hidden!, req.nTokens * this.nEmbd, kind)));
      return promise;
    }
    const promise = this.await(step);
    first.conn.send(MeshFrame.forward, { dtype: DType.raw }, packMessage(head, req.tokens));
    return promise;
  }

  private await(step: number): Promise<ForwardResult> {
    return new Promise((resolve, reject) => this.pending.set(step, { resolve, reject }));
  }

  /** Registers a sequence with the stage that samples (the last). */
  async startSequence(seq: number, spec: SequenceSpec): Promise<void> {
    const last = this.last;
    if (last.kind === 'local') return this.samplers.start(seq, spec);
    const p = jsonPayload({ seq, spec });
    await last.conn.request(MeshFrame.seqStart, p.meta, p.payload);
  }

  /** Forgets a sequence's sampler. */
  async endSequence(seq: number): Promise<void> {
    const last = this.last;
    if (last.kind === 'local') return this.samplers.end(seq);
    if (!last.conn.isOpen) return;
    const p = jsonPayload({ seq });
    last.conn.send(MeshFrame.seqEnd, p.meta, p.payload);
  }

  /** Applies a KV operation on every stage; returns each stage's reply. */
  async kv(op: KvOp, parts?: readonly Uint8Array[]): Promise<{ bytes: number; data?: Uint8Array }[]> {
    return Promise.all(
      this.stages.map(async (s, i) => {
        if (s.kind === 'local') return applyKvOp(this.local!, op, parts?.[i]);
        const reply = await s.conn.request(MeshFrame.kv, { dtype: DType.raw }, packMessage(op, op.op === 'import' ? parts![i] : undefined), { timeoutMs: 120_000 });
        if (op.op === 'export') return { bytes: 0, data: new Uint8Array(reply.payload) };
        return { bytes: (frameJson(reply) as { bytes: number }).bytes };
      }),
    );
  }

  /** Tells remote stages to drop their shards and releases the local one. */
  async close(reason: string): Promise<void> {
    this.breakWith(reason, false);
    for (const d of this.detach) d();
    for (const s of this.stages) {
      if (s.kind === 'local') s.loaded.close();
      else if (s.conn.isOpen) await s.conn.request(MeshFrame.unload, jsonPayload({}).meta, jsonPayload({}).payload, { timeoutMs: 5000 }).catch(() => {});
    }
  }
}
