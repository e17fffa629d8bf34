/**
 * The all-reduce of a tensor-parallel group, ranks wired together in one process: every rank ends
 * with the same sum (added in rank order), partials that come early wait, and a peer's bad partial
 * (wrong rank, wrong size, malformed, too far ahead, twice) breaks the group with a clear error
 * instead of a wrong sum or unbounded memory. Groups of 3 or more that know a link on which a ring
 * costs less sum large partials around a ring: every rank again ends with the same bits, in f32
 * and compressed, and a ring chunk from anyone but the previous rank, of the wrong size, out of the
 * ring's steps or twice breaks the group.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Frame, PeerConnection } from '../cluster/index.js';
import { isCairnError } from '../util/errors.js';
import { packMessage, packParts } from '../util/message-framing.js';
import { MeshFrame } from './protocol.js';
import { TensorGroup, ringChunks } from './tensor-group.js';
import { ExchangeCodec } from './exchange-codec.js';
import { createKernels } from '../kernels/index.js';

/** A connection that hands what it sends to a receiving function, on a later tick (as a socket would). */
function wire(deliver: (frame: Frame) => void): PeerConnection {
  return {
    isOpen: true,
    send(type: number, _meta: unknown, payload: Buffer) {
      const frame = { type, payload: Buffer.from(payload) } as unknown as Frame;
      setImmediate(() => deliver(frame));
    },
  } as unknown as PeerConnection;
}

/** `count` ranks, each connected to every other. */
function groupOf(count: number, epoch = 1, link?: { latencySeconds: number; bytesPerSecond: number }, codec?: ExchangeCodec, maxValues?: number): TensorGroup[] {
  const ids = Array.from({ length: count }, (_, r) => `node-${r}`);
  const groups: TensorGroup[] = [];
  for (let rank = 0; rank < count; rank++) {
    const peers = ids.map((_, to) => (to === rank ? undefined : wire((f) => groups[to].onPartial(ids[rank], f))));
    groups.push(new TensorGroup(rank, epoch, peers, ids, codec, link, 'auto', maxValues));
  }
  return groups;
}

/** A link on which a ring beats direct exchange for a few KiB: little latency, little bandwidth. */
const SLOW_WIDE = { latencySeconds: 1e-6, bytesPerSecond: 1e6 };

const partialFrame = (head: unknown, values: Float32Array) =>
  ({ type: MeshFrame.partial, payload: packMessage(head, values) }) as unknown as Frame;

test('every rank ends with the sum of all partials, the same bits everywhere', async () => {
  for (const count of [2, 3, 5]) {
    const groups = groupOf(count);
    const parts = groups.map((_, r) => Float32Array.from({ length: 7 }, (_, i) => Math.fround(0.1 * (r + 1) + i / 3)));
    const expected = Float32Array.from(parts[0]);
    for (let r = 1; r < count; r++) for (let i = 0; i < 7; i++) expected[i] += parts[r][i];
    await Promise.all(groups.map((g, r) => g.allReduce(4, 0, parts[r])));
    for (const p of parts) assert.deepEqual(p, expected);
  }
});

test('a rank ahead of the others: its partials wait for the slower rank, steps stay apart', async () => {
  const [a, b] = groupOf(2);
  const a0 = Float32Array.of(1, 2);
  const a1 = Float32Array.of(10, 20);
  const first = a.allReduce(1, 0, a0);
  // b has not started step 1 yet; a's partials of later indices are not mixed up with index 0.
  await new Promise((r) => setImmediate(r));
  const b0 = Float32Array.of(3, 4);
  const b1 = Float32Array.of(30, 40);
  await Promise.all([first, b.allReduce(1, 0, b0)]);
  await Promise.all([a.allReduce(1, 1, a1), b.allReduce(1, 1, b1)]);
  assert.deepEqual([...a0], [4, 6]);
  assert.deepEqual([...b1], [40, 60]);
});

test("a peer's bad partial breaks the group with a clear error", async () => {
  const cases: [string, (g: TensorGroup) => void][] = [
    ['as rank', (g) => g.onPartial('node-1', partialFrame({ epoch: 1, step: 1, index: 0, rank: 0 }, Float32Array.of(1, 2)))],
    ['as rank', (g) => g.onPartial('intruder', partialFrame({ epoch: 1, step: 1, index: 0, rank: 1 }, Float32Array.of(1, 2)))],
    ['valid step', (g) => g.onPartial('node-1', partialFrame({ epoch: 1, step: -1, index: 0, rank: 1 }, Float32Array.of(1, 2)))],
    [
      'not JSON',
      (g) =>
        g.onPartial('node-1', { type: MeshFrame.partial, payload: packParts([Buffer.from('{{'), Buffer.alloc(8)]) } as unknown as Frame),
    ],
    [
      '3 bytes where this rank has 8',
      (g) =>
        g.onPartial('node-1', {
          type: MeshFrame.partial,
          payload: packMessage({ epoch: 1, step: 1, index: 0, rank: 1 }, Buffer.from([1, 2, 3])),
        } as unknown as Frame),
    ],
    [
      '12 bytes where this rank has 8',
      (g) => g.onPartial('node-1', partialFrame({ epoch: 1, step: 1, index: 0, rank: 1 }, Float32Array.of(1, 2, 3))),
    ],
    [
      'twice',
      (g) => {
        g.onPartial('node-1', partialFrame({ epoch: 1, step: 1, index: 0, rank: 1 }, Float32Array.of(1, 2)));
        g.onPartial('node-1', partialFrame({ epoch: 1, step: 1, index: 0, rank: 1 }, Float32Array.of(1, 2)));
      },
    ],
    [
      'too far ahead',
      (g) => {
        for (let step = 2; step < 2 + 5000 && !g.broken; step++)
          g.onPartial('node-1', partialFrame({ epoch: 1, step, index: 0, rank: 1 }, Float32Array.of(1, 2)));
      },
    ],
  ];
  for (const [why, send] of cases) {
    const g = new TensorGroup(0, 1, [undefined, wire(() => {})], ['node-0', 'node-1']);
    const waiting = g.allReduce(1, 0, Float32Array.of(5, 6));
    send(g);
    await assert.rejects(waiting, (e) => isCairnError(e, 'CLUSTER_PROTOCOL') && e.message.includes(why), why);
    await assert.rejects(
      g.allReduce(2, 0, Float32Array.of(1, 1)),
      (e) => isCairnError(e, 'CLUSTER_PROTOCOL'),
      `${why}: later exchanges fail too`,
    );
  }
});

test('early partials are capped at what a well-behaved peer can send: two waiting per peer, two whole partials of bytes', async () => {
  // Count: a peer is at most one all-reduce ahead, so two of its partials wait here at most.
  const g = new TensorGroup(0, 1, [undefined, wire(() => {})], ['node-0', 'node-1']);
  const waiting = g.allReduce(1, 0, Float32Array.of(5, 6));
  g.onPartial('node-1', partialFrame({ epoch: 1, step: 1, index: 0, rank: 1 }, Float32Array.of(1, 2)));
  g.onPartial('node-1', partialFrame({ epoch: 1, step: 1, index: 1, rank: 1 }, Float32Array.of(1, 2)));
  assert.equal(g.broken, undefined, 'one all-reduce ahead is legitimate');
  await waiting;
  g.onPartial('node-1', partialFrame({ epoch: 1, step: 1, index: 2, rank: 1 }, Float32Array.of(1, 2)));
  assert.equal(g.broken, undefined, 'the finished all-reduce no longer counts');
  g.onPartial('node-1', partialFrame({ epoch: 1, step: 1, index: 3, rank: 1 }, Float32Array.of(1, 2)));
  // (Read through a function: the asserts above narrowed g.broken to undefined.)
  const why = ((x: TensorGroup) => x.broken)(g);
  assert.match(why?.message ?? '', /node node-1 sent partial sums too far ahead \(more than 2 waiting\)/);
  assert.ok(isCairnError(why, 'CLUSTER_PROTOCOL'));

  // Bytes: steps of at most 4 values (16 bytes f32) leave 2 x 16 bytes waiting from one peer at most.
  const small = new TensorGroup(0, 1, [undefined, wire(() => {})], ['node-0', 'node-1'], undefined, undefined, 'auto', 4);
  const step = small.allReduce(1, 0, Float32Array.of(1, 2, 3, 4));
  small.onPartial('node-1', partialFrame({ epoch: 1, step: 1, index: 0, rank: 1 }, new Float32Array(9)));
  await assert.rejects(step, (e) => isCairnError(e, 'CLUSTER_PROTOCOL') && /too far ahead \(36 bytes waiting; a step's exchanges need at most 32\)/.test(e.message));

  // Well-behaved ranks within those caps: direct and ring, steps back to back, one rank late.
  for (const link of [undefined, SLOW_WIDE]) {
    const n = 4096;
    const groups = groupOf(4, 1, link, undefined, n);
    await Promise.all(
      groups.map(async (rank, r) => {
        if (r === 3) await new Promise((res) => setTimeout(res, 20));
        for (let s = 0; s < 3; s++) for (let i = 0; i < 4; i++) await rank.allReduce(s, i, new Float32Array(n).fill(r + 1));
      }),
    );
    for (const rank of groups) assert.equal(rank.broken, undefined);
  }
});

test('partials of another plan are ignored; breaking the group fails what waits', async () => {
  const g = new TensorGroup(0, 2, [undefined, wire(() => {})], ['node-0', 'node-1']);
  const waiting = g.allReduce(1, 0, Float32Array.of(1));
  g.onPartial('node-1', partialFrame({ epoch: 1, step: 1, index: 0, rank: 1 }, Float32Array.of(9)));
  assert.equal(g.broken, undefined);
  let told: Error | undefined;
  g.onBreak((e) => (told = e));
  g.break(new Error('rank 1 disconnected'));
  await assert.rejects(waiting, /rank 1 disconnected/);
  assert.match(told!.message, /rank 1 disconnected/);
});

test('ring chunks cover the values in order, cut on whole 32-value blocks', () => {
  assert.deepEqual(ringChunks(4096, 3), [
    [0, 1376],
    [1376, 2720],
    [2720, 4096],
  ]);
  for (const [n, k] of [
    [96, 3],
    [1000, 4],
    [2048 * 7, 5],
  ]) {
    const c = ringChunks(n, k);
    assert.equal(c[0][0], 0);
    assert.equal(c[k - 1][1], n);
    for (let i = 1; i < k; i++) assert.equal(c[i][0], c[i - 1][1]);
    for (let i = 0; i < k - 1; i++) assert.equal(c[i][1] % 32, 0);
  }
});

test('a ring all-reduce: every rank ends with the same bits, the sum of the partials (f32, f16 and q8)', async () => {
  const kernels = createKernels();
  for (const dtype of [undefined, 'f16', 'q8'] as const) {
    for (const count of [3, 4, 5]) {
      const codec = dtype ? new ExchangeCodec(kernels, dtype) : undefined;
      const groups = groupOf(count, 1, SLOW_WIDE, codec);
      const n = 4096;
      assert.equal(groups[0].algorithmFor(n), 'ring');
      assert.equal(groups[0].algorithmFor(32), 'direct', 'a partial too small to cut k ways goes direct');
      const parts = groups.map((_, r) => Float32Array.from({ length: n }, (_, i) => Math.fround(Math.sin(r * 7 + i) * (1 + (i % 5)))));
      const exact = new Float64Array(n);
      for (const p of parts) for (let i = 0; i < n; i++) exact[i] += p[i];
      await Promise.all(groups.map((g, r) => g.allReduce(3, 1, parts[r])));
      for (let r = 1; r < count; r++) assert.deepEqual(parts[r], parts[0], `${dtype ?? 'f32'}, ${count} ranks: rank ${r} has rank 0's bits`);
      // f32: only the order of additions differs; compressed: each hop rounds.
      const tolerance = dtype === undefined ? 1e-5 : dtype === 'f16' ? 2e-2 : 2e-1;
      for (let i = 0; i < n; i++) assert.ok(Math.abs(parts[0][i] - exact[i]) <= tolerance, `${dtype ?? 'f32'}: value ${i}: ${parts[0][i]} vs ${exact[i]}`);
    }
  }
});

test('without a link, or with two ranks, the group exchanges directly', () => {
  assert.equal(groupOf(4)[0].algorithmFor(1 << 20), 'direct');
  assert.equal(groupOf(2, 1, SLOW_WIDE)[0].algorithmFor(1 << 20), 'direct');
  // On a fast link with real latency, a decode step's partial (one token) goes direct.
  assert.equal(groupOf(4, 1, { latencySeconds: 50e-6, bytesPerSecond: 1.25e9 })[0].algorithmFor(4096), 'direct');
});

test("a ring chunk from anyone but the previous rank, of the wrong size, out of the ring's steps or twice breaks the group", async () => {
  const n = 4096;
  const chunk0 = Float32Array.from({ length: 1376 }, () => 1);
  const cases: [string, (g: TensorGroup) => void][] = [
    ['not the previous rank', (g) => g.onPartial('node-1', partialFrame({ epoch: 1, step: 1, index: 0, rank: 1, phase: 0 }, chunk0))],
    ['ring step 4', (g) => g.onPartial('node-2', partialFrame({ epoch: 1, step: 1, index: 0, rank: 2, phase: 4 }, chunk0))],
    ['ring step -1', (g) => g.onPartial('node-2', partialFrame({ epoch: 1, step: 1, index: 0, rank: 2, phase: -1 }, chunk0))],
    ['sent ring step 0', (g) => g.onPartial('node-2', partialFrame({ epoch: 1, step: 1, index: 0, rank: 2, phase: '0' }, chunk0))],
    ['a ring chunk of 8 bytes', (g) => g.onPartial('node-2', partialFrame({ epoch: 1, step: 1, index: 0, rank: 2, phase: 0 }, Float32Array.of(1, 2)))],
    [
      'twice',
      (g) => {
        g.onPartial('node-2', partialFrame({ epoch: 1, step: 1, index: 0, rank: 2, phase: 1 }, chunk0));
        g.onPartial('node-2', partialFrame({ epoch: 1, step: 1, index: 0, rank: 2, phase: 1 }, chunk0));
      },
    ],
  ];
  for (const [why, send] of cases) {
    const g = new TensorGroup(0, 1, [undefined, wire(() => {}), wire(() => {})], ['node-0', 'node-1', 'node-2'], undefined, SLOW_WIDE);
    const waiting = g.allReduce(1, 0, new Float32Array(n));
    send(g);
    await assert.rejects(waiting, (e) => isCairnError(e, 'CLUSTER_PROTOCOL') && e.message.includes(why), why);
  }
});

test('a probe times all-reduces on every rank at once, then the group sums steps as before', async () => {
  const groups = groupOf(3);
  const seconds = await Promise.all(groups.map((g) => g.probe(20, 64)));
  for (const s of seconds) assert.ok(Number.isFinite(s) && s >= 0 && s < 5, `probe median ${s} s`);
  // Nothing of the probe is left waiting: a step after it sums as usual.
  const parts = groups.map((_, r) => Float32Array.of(r + 1, 2 * (r + 1)));
  await Promise.all(groups.map((g, r) => g.allReduce(0, 0, parts[r])));
  for (const p of parts) assert.deepEqual([...p], [6, 12]);
  // Out-of-range probes are refused before anything is sent.
  for (const [rounds, n] of [[1, 8], [1e9, 8], [10, 0], [10, 1.5]] as const) {
    await assert.rejects(groups[0].probe(rounds, n), (e: unknown) => isCairnError(e, 'BAD_ARGUMENT'));
  }
});
