import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { isCairnError } from '../util/errors.js';
import { connectPeer } from './connect.js';
import type { CloseInfo } from './connection.js';
import { DType } from './frame.js';
import { measureLink } from './links.js';
import { ECHO_FRAME_TYPE } from './testing/peer-process.js';
import { type SpawnedPeer, spawnPeer } from './testing/spawn-peer.js';

const KEY = 'two-process-key';
let peer: SpawnedPeer | undefined;
after(() => peer?.child.kill('SIGKILL'));

test('two processes: handshake, raw frames, many requests, a large payload, link figures, then death', async () => {
  peer = await spawnPeer({ nodeId: 'child-node', name: 'child', clusterKey: KEY, compatibility: 'm1' });
  assert.notEqual(peer.pid, process.pid);

  await assert.rejects(connectPeer('127.0.0.1', peer.port, { nodeId: 'parent', clusterKey: 'other', compatibility: 'm1' }), (e) =>
    isCairnError(e, 'CLUSTER_AUTH'),
  );
  await assert.rejects(connectPeer('127.0.0.1', peer.port, { nodeId: 'parent', clusterKey: KEY, compatibility: 'm2' }), (e) =>
    isCairnError(e, 'CLUSTER_REFUSED'),
  );

  const conn = await connectPeer('127.0.0.1', peer.port, { nodeId: 'parent', clusterKey: KEY, compatibility: 'm1' });
  assert.equal(conn.peer.nodeId, 'child-node');

  const activations = Float32Array.from({ length: 2 * 4096 }, (_, i) => Math.sin(i));
  const echoed = await conn.request(0x300, { sequence: 17 }, activations);
  assert.equal(echoed.type, ECHO_FRAME_TYPE);
  assert.equal(echoed.dtype, DType.raw);
  assert.equal(echoed.sequence, 17);
  assert.deepEqual(new Float32Array(Uint8Array.prototype.slice.call(echoed.payload).buffer), activations);

  const replies = await Promise.all(Array.from({ length: 500 }, (_, i) => conn.request(0x300, { sequence: i }, Buffer.from(`n${i}`))));
  replies.forEach((r, i) => assert.equal(r.payload.toString(), `n${i}`));

  const big = Buffer.alloc(16 * 1024 * 1024);
  for (let i = 0; i < big.length; i += 997) big[i] = i & 0xff;
  const bigEcho = await conn.request(0x301, { dtype: DType.raw }, big);
  assert.ok(createHash('sha256').update(bigEcho.payload).digest().equals(createHash('sha256').update(big).digest()));

  const link = await measureLink(conn, { bandwidth: { bytes: 4 * 1024 * 1024 } });
  // Figures only, no speed: timing is for bench/, not for tests on a busy machine.
  assert.ok(link.latencyMs > 0, `latency ${link.latencyMs} ms`);
  assert.ok(link.bandwidthBytesPerSecond > 0 && link.bandwidth.bestBytesPerSecond >= link.bandwidthBytesPerSecond);

  const pending = conn.request(0x300, undefined, Buffer.alloc(0), { timeoutMs: 10_000 });
  const closed = once(conn, 'close') as Promise<[CloseInfo]>;
  // The request may or may not be answered before the kill lands; either way nothing hangs.
  const outcome = pending.then(
    () => 'answered',
    (e: unknown) => (isCairnError(e, 'CLUSTER_CLOSED') ? 'closed' : String(e)),
  );
  peer.child.kill('SIGKILL');
  const [info] = await closed;
  assert.equal(info.byPeer, true);
  assert.ok(['answered', 'closed'].includes(await outcome));
});
