import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { isCairnError } from '../util/errors.js';
import { connectPeer } from './connect.js';
import type { PeerConnection } from './connection.js';
import { measureBandwidth, measureLatency, measureLink } from './links.js';
import { ClusterServer } from './server.js';

const server = new ClusterServer({ nodeId: 'links-server' });
after(() => server.close());

async function connect(): Promise<{ client: PeerConnection; serverSide: PeerConnection }> {
  const { port } = server.listening ? server.address : await server.listen();
  const accepted = once(server, 'connection') as Promise<[PeerConnection]>;
  const client = await connectPeer('127.0.0.1', port, { nodeId: 'links-client' });
  return { client, serverSide: (await accepted)[0] };
}

// Speed itself is measured by bench/cluster-channel.ts, not asserted here: a busy machine is slow.
test('link figures are consistent: positive latency and bandwidth, median within min..max, best at least the median', async () => {
  const { client } = await connect();
  const link = await measureLink(client, { bandwidth: { bytes: 4 * 1024 * 1024, rounds: 3 } });
  assert.ok(link.latencyMs > 0, `latency ${link.latencyMs} ms`);
  assert.ok(link.latency.minMs <= link.latencyMs && link.latencyMs <= link.latency.maxMs);
  assert.equal(link.latency.samples, 21);
  assert.ok(link.bandwidthBytesPerSecond > 0, `bandwidth ${link.bandwidthBytesPerSecond / 1e6} MB/s`);
  assert.equal(link.bandwidth.rounds, 3);
  assert.ok(link.bandwidth.bestBytesPerSecond >= link.bandwidthBytesPerSecond);
  client.close();
});

test('pings carry their payload; measurement options are checked', async () => {
  const { client } = await connect();
  const latency = await measureLatency(client, { samples: 5, warmup: 0, payloadBytes: 8192 });
  assert.equal(latency.samples, 5);
  assert.ok(latency.medianMs > 0);
  await assert.rejects(measureLatency(client, { samples: 0 }), (e) => isCairnError(e, 'BAD_ARGUMENT'));
  await assert.rejects(measureBandwidth(client, { bytes: -1 }), (e) => isCairnError(e, 'BAD_ARGUMENT'));
  client.close();
});

test('measuring over a closed connection fails with CLUSTER_CLOSED', async () => {
  const { client, serverSide } = await connect();
  const closed = once(client, 'close');
  serverSide.close('bye');
  await closed;
  await assert.rejects(measureLatency(client), (e) => isCairnError(e, 'CLUSTER_CLOSED'));
});
