/**
 * The all-reduce of a tensor-parallel group, on one node: after each attention-output and FFN-down
 * product every rank holds a partial sum of the same tokens x nEmbd values, and must continue with
 * the group's total. Direct exchange: each rank sends its partial to every other rank and adds the
 * k partials in rank order, so every rank computes the same sum bit for bit and the ranks'
 * residual streams stay equal without a second exchange. Where the group knows its link and a
 * ring costs less (3 ranks or more and a large partial: a prompt's many tokens), the ranks run a
 * ring instead: k-1 steps of reduce-scatter, each rank sending one k-th of the values to the next
 * and adding what the previous sends, then k-1 steps of all-gather, in which the rank that
 * finished a chunk's sum passes its bytes on unchanged, so every rank again ends with the same
 * bits. (The planner's cost model, planner/all-reduce.ts, makes the choice; a decode step's
 * partial is one token's hidden state, where one round of direct sends costs the least.)
 *
 * Partials of a peer may arrive before this rank reaches that point of the step (a faster peer);
 * they wait, bounded by what a well-behaved peer can have sent: a rank finishes an all-reduce only
 * once every rank has sent its partial to it, so a peer is at most one all-reduce ahead of this
 * rank (two of its direct partials wait here at most: the one this rank has not reached or not
 * finished, and the next), or in a ring at most k-1 steps ahead of what this rank sent. A peer
 * that holds more waiting than that (by count, or by bytes: two whole partials of the largest step
 * per peer), sends a partial of the wrong size, or names another rank, breaks the group, which
 * fails what waits on it.
 */
import { DType, type Frame, type PeerConnection } from '../cluster/index.js';
import { CairnError } from '../util/errors.js';
import type { ExchangeCodec } from './exchange-codec.js';
import { allReduce as allReduceCost } from '../planner/all-reduce.js';
import { packMessage, unpackMessage } from '../util/message-framing.js';
import { MeshFrame, type PartialHead } from './protocol.js';

/** Indices of a probe's all-reduces start here, far above any step's (two per layer). */
const PROBE_INDEX = 2 ** 40;
/** Most all-reduces one probe may make. */
export const MAX_PROBE_ROUNDS = 4000;

interface Slot {
  /** Wire bytes of each peer's partial (undefined at this rank's own index and until it comes). */
  readonly parts: (Uint8Array | undefined)[];
  got: number;
  waiter?: { resolve(): void; reject(err: Error): void };
}

/** A ring step's one message from the previous rank, or whoever waits for it. */
interface RingSlot {
  data?: Uint8Array;
  waiter?: { resolve(): void; reject(err: Error): void };
}

/** Chunks of a ring: k ranges of `n` values cut at multiples of 32 (whole Q8_0 blocks). */
export function ringChunks(n: number, k: number): [number, number][] {
  const cut = (c: number) => (c === k ? n : Math.min(n, Math.round((n * c) / k / 32) * 32));
  return Array.from({ length: k }, (_, c) => [cut(c), cut(c + 1)] as [number, number]);
}

/** One rank's side of its group's exchanges. */
export class TensorGroup {
  private readonly slots = new Map<string, Slot>();
  private readonly ring = new Map<string, RingSlot>();
  private failure: Error | undefined;
  private readonly failed: ((err: Error) => void)[] = [];
  /** Messages of each rank received and not yet added in (see the file's comment for the bound). */
  private readonly held: number[];
  /** Bytes of those messages, all ranks together. */
  private heldBytes = 0;

  /**
   * `peers[r]`: the connection this rank sends to rank r over (undefined at its own rank);
   * `nodeIds[r]`: the node that must be the sender of rank r's partials; `codec`: how partials
   * travel (exchange-codec.ts; default f32).
   */
  constructor(
    readonly rank: number,
    readonly epoch: number,
    private readonly peers: readonly (PeerConnection | undefined)[],
    private readonly nodeIds: readonly string[],
    private readonly codec?: ExchangeCodec,
    /** The slowest link between the ranks: with it, large all-reduces of 3 ranks or more take a ring. */
    private readonly link?: { readonly latencySeconds: number; readonly bytesPerSecond: number },
    /** `direct` or `ring`: always that one (a ring where it can cut the values k ways); default by the link. */
    private readonly choice: 'auto' | 'direct' | 'ring' = 'auto',
    /** Values of the largest all-reduce a step makes (maxBatch x nEmbd): bounds the bytes peers may have waiting. */
    private readonly maxValues?: number,
  ) {
    this.held = new Array<number>(peers.length).fill(0);
  }

  /** Messages one rank may have waiting: two direct partials, or a ring's k steps and the next all-reduce's partial. */
  private get maxHeldPerRank(): number {
    return this.count >= 3 ? 2 * this.count : 2;
  }

  /** Bytes all ranks together may have waiting: two whole partials of the largest step per peer; no bound without maxValues. */
  private get maxHeldBytes(): number {
    if (this.maxValues === undefined) return Infinity;
    const partial = this.codec ? this.codec.bytesFor(this.maxValues) : 4 * this.maxValues;
    return 2 * (this.count - 1) * partial;
  }

  /** Counts a peer's message as waiting; false (and the group broken) when it holds more than a well-behaved peer can. */
  private hold(fromNodeId: string, rank: number, bytes: number): boolean {
    if (this.held[rank] + 1 > this.maxHeldPerRank) {
      this.fail(`node ${fromNodeId} sent partial sums too far ahead (more than ${this.maxHeldPerRank} waiting)`);
      return false;
    }
    if (this.heldBytes + bytes > this.maxHeldBytes) {
      this.fail(`node ${fromNodeId} sent partial sums too far ahead (${this.heldBytes + bytes} bytes waiting; a step's exchanges need at most ${this.maxHeldBytes})`);
      return false;
    }
    this.held[rank]++;
    this.heldBytes += bytes;
    return true;
  }

  private release(rank: number, bytes: number): void {
    this.held[rank]--;
    this.heldBytes -= bytes;
  }

  /** How the all-reduce of `n` values goes: the same answer on every rank (same inputs). */
  algorithmFor(n: number): 'direct' | 'ring' {
    if (this.choice === 'direct' || this.count < 3 || n < 32 * this.count) return 'direct';
    if (this.choice === 'ring') return 'ring';
    if (!this.link) return 'direct';
    const bytes = this.codec ? this.codec.bytesFor(n) : 4 * n;
    return allReduceCost(this.count, bytes, this.link).algorithm === 'ring' ? 'ring' : 'direct';
  }

  get count(): number {
    return this.peers.length;
  }

  /** Why the group broke, or undefined while it works. */
  get broken(): Error | undefined {
    return this.failure;
  }

  /** Calls `listener` once if the group breaks. */
  onBreak(listener: (err: Error) => void): void {
    if (this.failure) listener(this.failure);
    else this.failed.push(listener);
  }

  /** Replaces `values` with the sum over the group's ranks of their partial `index` of `step`. */
  async allReduce(step: number, index: number, values: Float32Array): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.algorithmFor(values.length) === 'ring') return this.ringAllReduce(step, index, values);
    // Encoding rounds `values` to what the peers will decode, so every rank adds the same numbers.
    const wire = this.codec ? this.codec.encode(values) : new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    const payload = packMessage({ epoch: this.epoch, step, index, rank: this.rank } satisfies PartialHead, wire);
    for (const conn of this.peers) {
      if (!conn) continue;
      if (!conn.isOpen) this.break(new CairnError('CLUSTER_CLOSED', `a rank of the tensor-parallel group disconnected`));
      else conn.send(MeshFrame.partial, { dtype: DType.raw }, payload);
    }
    const key = `${step}/${index}`;
    const slot = this.slotOf(key);
    slot.got++;
    if (slot.got < this.count) {
      await new Promise<void>((resolve, reject) => (slot.waiter = { resolve, reject }));
    }
    if (this.failure) throw this.failure;
    this.slots.delete(key);
    slot.parts.forEach((p, r) => p && this.release(r, p.length));
    const n = values.length;
    const bytes = this.codec ? this.codec.bytesFor(n) : 4 * n;
    const parts = slot.parts.map((p, r) => {
      if (r === this.rank) return values;
      if (!p || p.length !== bytes) throw this.fail(`a partial sum of ${p?.length ?? 0} bytes where this rank has ${bytes}`);
      return this.codec ? this.codec.decode(p, n) : new Float32Array(p.buffer, p.byteOffset, n);
    });
    // Rank order on every rank: the same float additions everywhere, so the same sums. The sum
    // starts from rank 0's partial: this rank's own values, or the copy it received (its to change).
    const sum = parts[0];
    for (let r = 1; r < this.count; r++) {
      const p = parts[r];
      for (let i = 0; i < n; i++) sum[i] += p[i];
    }
    if (sum !== values) values.set(sum);
  }

  /**
   * Times `rounds` all-reduces of `n` values, one after another as a decode step makes them, and
   * returns the median seconds of the later half (the earlier ones warm the path: the JIT, the
   * connections' buffers). Every rank of the group must run the same probe at the same time, and
   * before the group's first step: this is the measured cost of an exchange between the ranks
   * themselves (framing, encryption, both sides' event loops, the link), which the planner
   * otherwise estimates from the links to the coordinator.
   */
  async probe(rounds: number, n: number): Promise<number> {
    if (!Number.isInteger(rounds) || rounds < 2 || rounds > MAX_PROBE_ROUNDS) throw new CairnError('BAD_ARGUMENT', `a probe of ${rounds} all-reduces`);
    if (!Number.isInteger(n) || n < 1) throw new CairnError('BAD_ARGUMENT', `a probe of ${n} values`);
    const values = new Float32Array(n);
    const times: number[] = [];
    for (let i = 0; i < rounds; i++) {
      values.fill(0);
      const start = performance.now();
      await this.allReduce(0, PROBE_INDEX + i, values);
      if (i >= rounds >> 1) times.push((performance.now() - start) / 1000);
    }
    times.sort((a, b) => a - b);
    return times[times.length >> 1];
  }

  /** The ring all-reduce (see the file's comment). */
  private async ringAllReduce(step: number, index: number, values: Float32Array): Promise<void> {
    const k = this.count;
    const r = this.rank;
    const chunks = ringChunks(values.length, k);
    const next = this.peers[(r + 1) % k];
    const send = (phase: number, wire: Uint8Array) => {
      if (!next?.isOpen) throw this.fail('the next rank of the ring disconnected');
      next.send(MeshFrame.partial, { dtype: DType.raw }, packMessage({ epoch: this.epoch, step, index, rank: r, phase } satisfies PartialHead, wire));
    };
    const bytesOf = (c: number) => (this.codec ? this.codec.bytesFor(chunks[c][1] - chunks[c][0]) : 4 * (chunks[c][1] - chunks[c][0]));
    const view = (c: number) => values.subarray(chunks[c][0], chunks[c][1]);
    const encode = (v: Float32Array) => (this.codec ? this.codec.encode(v) : new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
    const decode = (b: Uint8Array, n: number) => (this.codec ? this.codec.decode(b, n) : new Float32Array(b.buffer, b.byteOffset, n));
    // Reduce-scatter: after k-1 steps this rank holds the whole sum of chunk r + 1.
    for (let s = 0; s < k - 1; s++) {
      send(s, encode(view((r - s + k) % k)));
      const c = (r - s - 1 + k) % k;
      const got = await this.ringTake(step, index, s, bytesOf(c));
      const mine = view(c);
      const theirs = decode(got, mine.length);
      for (let i = 0; i < mine.length; i++) mine[i] += theirs[i];
    }
    // All-gather: the finished chunk's bytes go round unchanged (its owner keeps what it sends).
    let wire = encode(view((r + 1) % k));
    for (let s = 0; s < k - 1; s++) {
      send(k - 1 + s, wire);
      const c = (r - s + k) % k;
      wire = await this.ringTake(step, index, k - 1 + s, bytesOf(c));
      view(c).set(decode(wire, chunks[c][1] - chunks[c][0]));
    }
  }

  /** Waits for the previous rank's message of a ring step; checks its size. */
  private async ringTake(step: number, index: number, phase: number, bytes: number): Promise<Uint8Array> {
    const key = `${step}/${index}/${phase}`;
    let slot = this.ring.get(key);
    if (!slot) this.ring.set(key, (slot = {}));
    if (!slot.data) await new Promise<void>((resolve, reject) => (slot!.waiter = { resolve, reject }));
    if (this.failure) throw this.failure;
    this.ring.delete(key);
    const data = slot.data!;
    this.release((this.rank - 1 + this.count) % this.count, data.length);
    if (data.length !== bytes) throw this.fail(`a ring chunk of ${data.length} bytes where this rank has ${bytes}`);
    return data;
  }

  /** A partial-sum frame from `fromNodeId`. */
  onPartial(fromNodeId: string, frame: Frame): void {
    if (this.failure) return;
    let head: PartialHead;
    let body: Buffer;
    try {
      const message = unpackMessage<PartialHead>(frame.payload, { bodies: 1, what: 'partial sum' });
      head = message.head;
      body = message.bodies[0];
    } catch (err) {
      return void this.fail((err as Error).message);
    }
    if (typeof head !== 'object' || head === null || head.epoch !== this.epoch) return; // another plan's
    const { step, index, rank, phase } = head;
    if (!Number.isSafeInteger(step) || !Number.isSafeInteger(index) || step < 0 || index < 0)
      return void this.fail('a partial sum without a valid step');
    if (!Number.isSafeInteger(rank) || rank < 0 || rank >= this.count || rank === this.rank || this.nodeIds[rank] !== fromNodeId) {
      return void this.fail(`node ${fromNodeId} sent a partial sum as rank ${String(rank)}`);
    }
    if (phase !== undefined) return this.onRingChunk(fromNodeId, step, index, rank, phase, body);
    const key = `${step}/${index}`;
    if (this.slots.get(key)?.parts[rank]) return void this.fail(`node ${fromNodeId} sent partial ${index} of step ${step} twice`);
    if (!this.hold(fromNodeId, rank, body.length)) return;
    const slot = this.slotOf(key);
    // A copy, 4-byte aligned for the f32 view: the frame's buffer is not this rank's to keep.
    slot.parts[rank] = new Uint8Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.length));
    slot.got++;
    if (slot.got === this.count) slot.waiter?.resolve();
  }

  /** A ring step's chunk: only from the previous rank, once, within the ring's steps. */
  private onRingChunk(fromNodeId: string, step: number, index: number, rank: number, phase: unknown, body: Buffer): void {
    const k = this.count;
    if (!Number.isSafeInteger(phase) || (phase as number) < 0 || (phase as number) >= 2 * (k - 1)) return void this.fail(`node ${fromNodeId} sent ring step ${String(phase)}`);
    if (rank !== (this.rank - 1 + k) % k) return void this.fail(`node ${fromNodeId} (rank ${rank}) is not the previous rank of the ring`);
    const key = `${step}/${index}/${String(phase)}`;
    if (this.ring.get(key)?.data) return void this.fail(`node ${fromNodeId} sent ring step ${String(phase)} of step ${step} twice`);
    if (!this.hold(fromNodeId, rank, body.length)) return;
    let slot = this.ring.get(key);
    if (!slot) this.ring.set(key, (slot = {}));
    slot.data = new Uint8Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.length));
    slot.waiter?.resolve();
  }

  /** Breaks the group: whatever waits fails with `err`, and so does every later exchange. */
  break(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    for (const slot of this.slots.values()) slot.waiter?.reject(err);
    this.slots.clear();
    for (const slot of this.ring.values()) slot.waiter?.reject(err);
    this.ring.clear();
    for (const f of this.failed.splice(0)) f(err);
  }

  /** Breaks the group over a peer's bad message; returns the error. */
  private fail(why: string): Error {
    this.break(new CairnError('CLUSTER_PROTOCOL', `tensor-parallel group: ${why}`));
    return this.failure!;
  }

  private slotOf(key: string): Slot {
    let slot = this.slots.get(key);
    if (!slot) this.slots.set(key, (slot = { parts: new Array<Uint8Array | undefined>(this.count).fill(undefined), got: 0 }));
    return slot;
  }
}
