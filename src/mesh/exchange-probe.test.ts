/**
 * A group's measured exchange as links between its ranks: the latency that, with the bytes over
 * the bandwidth the request knew, makes one direct all-reduce cost what the probe measured; and
 * the slowest rank's probe is the group's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allReduceSeconds, exchangeBytes } from '../planner/all-reduce.js';
import type { PlanRequest } from '../planner/types.js';
import { measuredGroupLinks, probeGroup, probeRounds, PROBE_ROUNDS } from './exchange-probe.js';
import type { TensorGroup } from './tensor-group.js';
import { DType } from '../cluster/index.js';

const req = (links: PlanRequest['links']): PlanRequest =>
  ({ model: {} as PlanRequest['model'], nodes: ['a', 'b', 'c'].map((id) => ({ id, memoryBytes: 1e9, bytesPerSecond: 1e9 })), links, kvTokens: 1 }) as PlanRequest;

test('measured links make a direct all-reduce cost the measured time, each pair keeping its bandwidth', () => {
  const r = req([
    { from: 'x', to: 'a', latencySeconds: 1e-3, bytesPerSecond: 1e8 },
    { from: 'a', to: 'b', latencySeconds: 2e-3, bytesPerSecond: 5e8 },
  ]);
  const seconds = 0.4e-3;
  const links = measuredGroupLinks(r, ['a', 'b', 'c'], seconds, 2048, 'f32');
  assert.deepEqual(
    links.map((l) => [l.from, l.to]),
    [['a', 'b'], ['a', 'c'], ['b', 'c']],
  );
  const ab = links[0];
  assert.equal(ab.bytesPerSecond, 5e8);
  assert.ok(Math.abs(allReduceSeconds('direct', 3, exchangeBytes(2048, 'f32'), ab) - seconds) < 1e-12);
  // A measured time below the bytes' own share of it: no negative latency.
  assert.equal(measuredGroupLinks(r, ['a', 'b'], 1e-9, 2048, 'f32')[0].latencySeconds, 0);
  // q8 exchanges carry 34/128 of the bytes.
  const q8 = measuredGroupLinks(r, ['a', 'b'], seconds, 2048, 'q8')[0];
  assert.ok(q8.latencySeconds > measuredGroupLinks(r, ['a', 'b'], seconds, 2048, 'f32')[0].latencySeconds);
});

test("a group's probe is its slowest rank's, and a rank's nonsense answer is refused", async () => {
  const local = (s: number) => ({ probe: async () => s }) as unknown as TensorGroup;
  assert.equal(await probeGroup([{ nodeId: 'a', local: local(1e-4) }, { nodeId: 'b', local: local(3e-4) }], { epoch: 1, rounds: 4, values: 8 }), 3e-4);
  const liar = {
    request: async () => ({ dtype: DType.json, payload: Buffer.from(JSON.stringify({ seconds: -1 })) }),
  };
  await assert.rejects(
    probeGroup([{ nodeId: 'a', local: local(1e-4) }, { nodeId: 'b', conn: liar as never }], { epoch: 1, rounds: 4, values: 8 }),
    /answered an exchange probe/,
  );
});

test('a probe takes its full rounds on fast links and fewer on slow ones, never fewer than 20', () => {
  assert.equal(probeRounds(100e-6), PROBE_ROUNDS);
  assert.equal(probeRounds(10e-3), 200);
  assert.equal(probeRounds(1), 20);
  assert.equal(probeRounds(0), PROBE_ROUNDS);
});
