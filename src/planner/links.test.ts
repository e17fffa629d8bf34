import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_LINK, SAME_MACHINE_LINK, hopSeconds, linkBetween, peerLinks, worstLink } from './links.js';
import type { NodeInfo } from './types.js';

const node = (id: string, machine?: string): NodeInfo => ({ id, memoryBytes: 1e9, bytesPerSecond: 1e9, machine });

test('a measured link serves both directions; same machine is loopback; else the default', () => {
  const req = {
    nodes: [node('a', 'm'), node('b', 'm'), node('c')],
    links: [{ from: 'c', to: 'a', latencySeconds: 1e-3, bytesPerSecond: 1e7 }],
  };
  assert.equal(linkBetween(req, 'a', 'c').latencySeconds, 1e-3);
  assert.deepEqual(linkBetween(req, 'a', 'b'), SAME_MACHINE_LINK);
  assert.deepEqual(linkBetween(req, 'b', 'c'), DEFAULT_LINK);
  const given = { latencySeconds: 5e-6, bytesPerSecond: 1e10 };
  assert.deepEqual(linkBetween({ ...req, defaultLink: given }, 'b', 'c'), given);
});

test('a hop costs latency plus bytes over bandwidth; a group is as slow as its worst pair', () => {
  assert.equal(hopSeconds({ latencySeconds: 1e-4, bytesPerSecond: 1e6 }, 1000), 1e-4 + 1e-3);
  const req = {
    nodes: [node('a'), node('b'), node('c')],
    links: [
      { from: 'a', to: 'b', latencySeconds: 1e-5, bytesPerSecond: 1e10 },
      { from: 'a', to: 'c', latencySeconds: 2e-5, bytesPerSecond: 5e9 },
      { from: 'b', to: 'c', latencySeconds: 1e-5, bytesPerSecond: 2e10 },
    ],
  };
  assert.deepEqual(worstLink(req, ['a', 'b', 'c']), { latencySeconds: 2e-5, bytesPerSecond: 5e9 });
});

test('links between peers are estimated as the slower of their measured links to the coordinator', () => {
  const measured = [
    { from: 'co', to: 'a', latencySeconds: 1e-4, bytesPerSecond: 1e9 },
    { from: 'co', to: 'b', latencySeconds: 3e-4, bytesPerSecond: 5e9 },
    { from: 'co', to: 'c', latencySeconds: 2e-4, bytesPerSecond: 2e8 },
  ];
  assert.deepEqual(peerLinks(measured), [
    { from: 'a', to: 'b', latencySeconds: 3e-4, bytesPerSecond: 1e9 },
    { from: 'a', to: 'c', latencySeconds: 2e-4, bytesPerSecond: 2e8 },
    { from: 'b', to: 'c', latencySeconds: 3e-4, bytesPerSecond: 2e8 },
  ]);
  // Estimated links take precedence over the idealized same-machine link.
  const req = { nodes: [node('a', 'm'), node('b', 'm')], links: peerLinks(measured.slice(0, 2)) };
  assert.equal(linkBetween(req, 'a', 'b').latencySeconds, 3e-4);
});
