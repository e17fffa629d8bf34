import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { connectPeer } from './connect.js';
import { type Member, Membership } from './membership.js';
import { ClusterServer } from './server.js';
import { type SpawnedPeer, spawnPeer } from './testing/spawn-peer.js';

const KEY = 'membership-test-key';
const children: SpawnedPeer[] = [];
after(() => {
  for (const c of children) c.child.kill('SIGKILL');
});

function coordinator(overrides: Partial<ConstructorParameters<typeof Membership>[0]> = {}): Membership {
  return new Membership({
    selfId: 'coordinator',
    connect: (a) => connectPeer(a.host, a.port, { nodeId: 'coordinator', clusterKey: KEY }),
    heartbeatIntervalMs: 100,
    downAfterMs: 600,
    reconnectIntervalMs: 300,
    ...overrides,
  });
}

async function startChild(nodeId: string): Promise<SpawnedPeer> {
  const peer = await spawnPeer({ nodeId, name: nodeId, clusterKey: KEY });
  children.push(peer);
  return peer;
}

/** Resolves with the first 'down' event and how long after `since` it came. */
function nextDown(membership: Membership, since: () => number): Promise<{ member: Member; reason: string; afterMs: number }> {
  return (once(membership, 'down') as Promise<[Member, string]>).then(([member, reason]) => ({
    member,
    reason,
    afterMs: performance.now() - since(),
  }));
}

test('a node in another process comes up, gets heartbeats, and is down at once when killed', async () => {
  const child = await startChild('worker-kill');
  const membership = coordinator();
  try {
    const up = once(membership, 'up') as Promise<[Member]>;
    membership.addPeer({ host: '127.0.0.1', port: child.port });
    const [member] = await up;
    assert.equal(member.id, 'worker-kill');
    assert.equal(member.key, 'id:worker-kill');
    // Heartbeats flow: an RTT gets measured.
    await new Promise((r) => setTimeout(r, 350));
    const live = membership.get('worker-kill')!;
    assert.equal(live.state, 'up');
    assert.ok(live.rttMs !== undefined && live.rttMs > 0, `rtt ${live.rttMs}`);
    assert.ok(Date.now() - live.lastHeartbeatAt! < 1000);

    let killedAt = 0;
    const down = nextDown(membership, () => killedAt);
    killedAt = performance.now();
    child.child.kill('SIGKILL');
    const event = await down;
    assert.equal(event.member.id, 'worker-kill');
    assert.ok(event.afterMs < 2000, `down after ${event.afterMs} ms`);
    assert.equal(membership.get('worker-kill')!.state, 'down');
  } finally {
    membership.stop();
  }
});

test('a hung node (process stopped, socket still open) is marked down by missed heartbeats within 2 s', async (t) => {
  if (process.platform === 'win32') {
    t.skip('SIGSTOP is not available on Windows');
    return;
  }
  const child = await startChild('worker-hang');
  // The default heartbeat settings, which promise the 2 s bound.
  const membership = coordinator({ heartbeatIntervalMs: undefined, downAfterMs: undefined });
  try {
    const up = once(membership, 'up');
    membership.addPeer({ host: '127.0.0.1', port: child.port });
    await up;
    let stoppedAt = 0;
    const down = nextDown(membership, () => stoppedAt);
    stoppedAt = performance.now();
    child.child.kill('SIGSTOP');
    const event = await down;
    assert.match(event.reason, /no heartbeat for \d+ ms/);
    assert.ok(event.afterMs < 2000, `down after ${event.afterMs} ms`);

    // Once it runs again it is redialed and comes back up.
    const back = once(membership, 'up') as Promise<[Member]>;
    child.child.kill('SIGCONT');
    const [again] = await back;
    assert.equal(again.id, 'worker-hang');
  } finally {
    membership.stop();
    child.child.kill('SIGKILL');
  }
});

test('a closed connection is down at once; the same node dialed twice is one member; self is ignored', async () => {
  const server = new ClusterServer({ nodeId: 'worker-local', clusterKey: KEY });
  const { port } = await server.listen();
  const membership = coordinator({ reconnectIntervalMs: 60_000 });
  try {
    const up = once(membership, 'up');
    membership.addPeer({ host: '127.0.0.1', port });
    membership.addPeer({ host: 'localhost', port });
    membership.addPeer({ host: '127.0.0.1', port: 1, id: 'coordinator' });
    await up;
    // Let the second dial finish and be recognized as the same node.
    await new Promise((r) => setTimeout(r, 300));
    const members = membership.members();
    assert.equal(members.length, 1, JSON.stringify(members.map((m) => m.key)));
    assert.equal(members[0].id, 'worker-local');

    let closedAt = 0;
    const down = nextDown(membership, () => closedAt);
    closedAt = performance.now();
    for (const c of server.connections) c.close('worker shutting down');
    const event = await down;
    assert.match(event.reason, /worker shutting down/);
    assert.ok(event.afterMs < 500, `down after ${event.afterMs} ms`);
  } finally {
    membership.stop();
    await server.close();
  }
});

test('connections a worker opens to the coordinator are adopted as members', async () => {
  const server = new ClusterServer({ nodeId: 'coordinator', clusterKey: KEY });
  const { port } = await server.listen();
  const membership = coordinator();
  server.on('connection', (c) => membership.adopt(c));
  try {
    const up = once(membership, 'up') as Promise<[Member]>;
    const worker = await connectPeer('127.0.0.1', port, { nodeId: 'worker-in', name: 'w', clusterKey: KEY, info: { port: 45678 } });
    const [member] = await up;
    assert.equal(member.id, 'worker-in');
    assert.equal(member.name, 'w');
    assert.equal(member.address?.port, 45678, 'the advertised listening port is kept for redials');
    const down = once(membership, 'down');
    worker.destroy();
    await down;
  } finally {
    membership.stop();
    await server.close();
  }
});
