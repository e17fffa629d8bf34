/**
 * The all-reduce of a tensor-parallel group, ranks wired together in one process: every rank ends
 * with the same sum (added in rank order), partials that come early wait, and a peer's bad partial
 * (wrong rank, wrong size, malformed, too far ahead, twice) breaks the group with a clear error
 * instead of a wrong sum or unbounded memory.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Frame, PeerConnection } from '../cluster/index.js';
import { isCairnError } from '../util/errors.js';
import { packMessage, packParts } from '../util/message-framing.js';
import { MeshFrame } from './protocol.js';
import { TensorGroup } from './tensor-group.js';

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
function groupOf(count: number, epoch = 1): TensorGroup[] {
  const ids = Array.from({ length: count }, (_, r) => `node-${r}`);
  const groups: TensorGroup[] = [];
  for (let rank = 0; rank < count; rank++) {
    const peers = ids.map((_, to) => (to === rank ? undefined : wire((f) => groups[to].onPartial(ids[rank], f))));
    groups.push(new TensorGroup(rank, epoch, peers, ids));
  }
  return groups;
}

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
