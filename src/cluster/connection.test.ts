import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { type Socket, connect as netConnect, createServer } from 'node:net';
import { networkInterfaces } from 'node:os';
import { type CairnError, isCairnError } from '../util/errors.js';
import { Prng } from '../util/prng.js';
import { addressGroup, isLoopbackAddress } from './address.js';
import { connectPeer } from './connect.js';
import type { CloseInfo, PeerConnection } from './connection.js';
import { ControlFrame } from './control-frames.js';
import { deriveClusterSecretSync } from './cluster-key.js';
import { FrameDecoder } from './frame-decoder.js';
import { type Frame, DType, encodeFrame, frameJson, jsonPayload } from './frame.js';
import { createHello } from './handshake.js';
import { localClusterSecret } from './local-key.js';
import { type ClusterServerOptions, ClusterServer } from './server.js';
import { RawPeer } from './testing/raw-peer.js';

const servers: ClusterServer[] = [];
after(async () => {
  for (const s of servers) await s.close();
});

async function startServer(options: Partial<ClusterServerOptions> = {}): Promise<{ server: ClusterServer; port: number }> {
  const server = new ClusterServer({ nodeId: 'server-id', name: 'server', ...options });
  servers.push(server);
  const { port } = await server.listen();
  return { server, port };
}

/** Connects and also returns the server's side of the connection. */
async function connectPair(server: ClusterServer, port: number, options: Record<string, unknown> = {}) {
  const accepted = once(server, 'connection') as Promise<[PeerConnection]>;
  const client = await connectPeer('127.0.0.1', port, { nodeId: 'client-id', name: 'client', ...options });
  const [serverSide] = await accepted;
  return { client, serverSide };
}

function echoRequests(connection: PeerConnection): void {
  connection.on('request', (frame) => connection.reply(frame, 0x200, { dtype: frame.dtype }, frame.payload));
}

async function expectRejection(promise: Promise<unknown>, code: CairnError['code'], pattern: RegExp): Promise<CairnError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(isCairnError(err, code), `expected ${code}, got ${String(err)}`);
    assert.match((err as Error).message, pattern);
    return err as CairnError;
  }
  assert.fail(`expected a ${code} rejection`);
}

/** A raw TCP client speaking frames by hand, for peers that misbehave on purpose. */
async function rawClient(port: number): Promise<{ socket: Socket; frames: Frame[]; closed: Promise<unknown> }> {
  const socket = netConnect({ host: '127.0.0.1', port });
  await once(socket, 'connect');
  const frames: Frame[] = [];
  const decoder = new FrameDecoder({ onFrame: (f) => frames.push(f) });
  socket.on('data', (chunk: Buffer) => decoder.push(chunk));
  socket.on('error', () => {});
  return { socket, frames, closed: once(socket, 'close') };
}

test('loopback addresses are recognized in every spelling a socket reports', () => {
  for (const a of ['127.0.0.1', '127.255.0.9', '::1', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1', '::FFFF:127.3.2.1'])
    assert.ok(isLoopbackAddress(a), a);
  for (const a of ['10.0.0.1', '128.0.0.1', '::ffff:10.0.0.1', '::2', 'fe80::1%eth0', 'localhost', '', undefined])
    assert.ok(!isLoopbackAddress(a), String(a));
});

test('the same cluster key connects both ways and frames flow in both directions', async () => {
  const { server, port } = await startServer({ clusterKey: 'sesame', compatibility: 'model-a', info: { cores: 4 } });
  const { client, serverSide } = await connectPair(server, port, { clusterKey: 'sesame', compatibility: 'model-a' });
  assert.equal(client.peer.nodeId, 'server-id');
  assert.equal(client.peer.name, 'server');
  assert.deepEqual(client.peer.info, { cores: 4 });
  assert.equal(serverSide.peer.nodeId, 'client-id');
  assert.ok(isLoopbackAddress(serverSide.peer.address));

  const toServer = once(serverSide, 'frame') as Promise<[Frame]>;
  client.send(0x300, { sequence: 9 }, new Int32Array([1, -2, 3, -4]));
  const [f1] = await toServer;
  assert.deepEqual([...new Int32Array(Uint8Array.prototype.slice.call(f1.payload).buffer)], [1, -2, 3, -4]);
  assert.equal(f1.dtype, DType.raw);
  assert.equal(f1.sequence, 9);

  const toClient = once(client, 'frame') as Promise<[Frame]>;
  serverSide.send(0x301, jsonPayload({ hi: 'there' }).meta, jsonPayload({ hi: 'there' }).payload);
  const [f2] = await toClient;
  assert.deepEqual(frameJson(f2), { hi: 'there' });
  client.close();
});

test('a wrong cluster key is refused on both sides with CLUSTER_AUTH, and neither key nor identity travels in the clear', async () => {
  const { server, port } = await startServer({ clusterKey: 'right-key', name: 'secret-server-name' });
  const refused = once(server, 'refused') as Promise<[CairnError, string]>;
  await expectRejection(connectPeer('127.0.0.1', port, { nodeId: 'c', clusterKey: 'wrong-key' }), 'CLUSTER_AUTH', /cluster keys differ/);
  const [serverError] = await refused;
  assert.ok(isCairnError(serverError, 'CLUSTER_AUTH'), String(serverError));
  assert.equal(server.connections.size, 0);

  // Capture everything the server sends to a peer with the wrong key: no key, no name, no id.
  const socket = netConnect({ host: '127.0.0.1', port });
  await once(socket, 'connect');
  const raw = new RawPeer(socket, { role: 'client', secret: deriveClusterSecretSync('wrong-key') });
  await once(socket, 'close');
  const seen = Buffer.concat(raw.received);
  for (const text of ['right-key', 'secret-server-name', 'server-id']) assert.ok(!seen.includes(Buffer.from(text)), text);
  assert.ok(raw.frames.some((f) => f.type === ControlFrame.hello));
  assert.ok(!raw.open);
});

test('a key on one side only is refused with a message that says so', async () => {
  const keyed = await startServer({ clusterKey: 'k' });
  await expectRejection(
    connectPeer('127.0.0.1', keyed.port, { nodeId: 'c' }),
    'CLUSTER_AUTH',
    /the server requires a cluster key and the client has none/,
  );
  const keyless = await startServer();
  await expectRejection(
    connectPeer('127.0.0.1', keyless.port, { nodeId: 'c', clusterKey: 'k' }),
    'CLUSTER_AUTH',
    /the client requires a cluster key and the server has none/,
  );
});

test('a compatibility mismatch is refused with both values in the reason', async () => {
  const { server, port } = await startServer({ compatibility: 'llama-7b@abc' });
  const refused = once(server, 'refused') as Promise<[CairnError, string]>;
  await expectRejection(
    connectPeer('127.0.0.1', port, { nodeId: 'c', compatibility: 'llama-7b@def' }),
    'CLUSTER_REFUSED',
    /incompatible nodes: the client runs "llama-7b@def", the server "llama-7b@abc"/,
  );
  const [serverError] = await refused;
  assert.ok(isCairnError(serverError, 'CLUSTER_REFUSED'));
});

test('a peer speaking another protocol or frame version is told why and dropped', async () => {
  const { server, port } = await startServer();
  // Protocol version inside the hello.
  const raw = await rawClient(port);
  const hello = { ...createHello('client', 'local').hello, protocol: 99 };
  const body = jsonPayload(hello);
  for (const part of encodeFrame(ControlFrame.hello, body.meta, body.payload)) raw.socket.write(part);
  await raw.closed;
  const refusal = raw.frames.find((f) => f.type === ControlFrame.refuse);
  assert.ok(refusal, 'a refuse frame arrives before the close');
  assert.match(JSON.stringify(frameJson(refusal)), /protocol version mismatch: the client speaks 99, the server 2/);

  // Frame format version in the header.
  const raw2 = await rawClient(port);
  const refused = once(server, 'refused') as Promise<[CairnError, string]>;
  const frame = Buffer.concat(encodeFrame(ControlFrame.hello, body.meta, body.payload));
  frame[1] = 7;
  raw2.socket.write(frame);
  await raw2.closed;
  assert.match(JSON.stringify(frameJson(raw2.frames.find((f) => f.type === ControlFrame.refuse)!)), /unsupported frame version 7/);
  const [err] = await refused;
  assert.ok(isCairnError(err, 'CLUSTER_REFUSED'));
});

test('without a cluster key, a non-loopback peer is refused and told why', async (t) => {
  const external = Object.values(networkInterfaces())
    .flat()
    .find((a) => a && !a.internal && a.family === 'IPv4');
  if (!external) {
    t.skip('this machine has no non-loopback IPv4 address to connect from');
    return;
  }
  const { server, port } = await startServer({ host: '0.0.0.0' });
  assert.equal(server.address.loopbackOnly, true);
  const refused = once(server, 'refused') as Promise<[CairnError, string]>;
  await expectRejection(
    connectPeer(external.address, port, { nodeId: 'c' }),
    'CLUSTER_REFUSED',
    /no cluster key and accepts only connections from this machine/,
  );
  const [err, remote] = await refused;
  assert.ok(isCairnError(err, 'CLUSTER_REFUSED'));
  assert.ok(!isLoopbackAddress(remote));
  // The same server still takes loopback peers.
  const ok = await connectPeer('127.0.0.1', port, { nodeId: 'c' });
  ok.close();
  // With a key, the same address is accepted.
  const keyed = await startServer({ host: '0.0.0.0', clusterKey: 'k' });
  assert.equal(keyed.server.address.loopbackOnly, false);
  const remoteOk = await connectPeer(external.address, keyed.port, { nodeId: 'c', clusterKey: 'k' });
  assert.equal(remoteOk.peer.address, external.address);
  remoteOk.close();
});

test('one address cannot hold every handshake place: it gets 4 at most, and other peers still connect', async () => {
  const { server, port } = await startServer({ handshakeTimeoutMs: 10_000 });
  const refusals: string[] = [];
  server.on('refused', (e, from) => refusals.push(`${from}: ${e.message}`));
  // All of 127/8 is loopback on Linux: a distinct source address stands for another machine.
  const dial = async (localAddress: string) => {
    const socket = netConnect({ host: '127.0.0.1', port, localAddress });
    socket.on('error', () => {});
    await once(socket, 'connect');
    return socket;
  };
  // One address opens more silent sockets than the global cap of 16.
  const flood: Socket[] = [];
  for (let i = 0; i < 20; i++) flood.push(await dial('127.0.0.2'));
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(refusals.length, 16, refusals.join('\n'));
  assert.ok(refusals.every((r) => /^127\.0\.0\.2: refused 127\.0\.0\.2: 4 handshakes from 127\.0\.0\.2 already in progress$/.test(r)), refusals[0]);
  // Legitimate peers, from this address and another, still connect meanwhile.
  const ok = await connectPeer('127.0.0.1', port, { nodeId: 'c' });
  ok.close();
  const other = await dial('127.0.0.3');
  const accepted = once(server, 'connection') as Promise<[PeerConnection]>;
  new RawPeer(other, { role: 'client', secret: localClusterSecret() });
  const [fromOther] = await accepted;
  assert.equal(fromOther.peer.address, '127.0.0.3');
  // Once the flooding sockets go, their address may handshake again.
  for (const s of flood) s.destroy();
  await new Promise((r) => setTimeout(r, 200));
  const again = await dial('127.0.0.2');
  const acceptedAgain = once(server, 'connection') as Promise<[PeerConnection]>;
  new RawPeer(again, { role: 'client', secret: localClusterSecret() });
  const [fromAgain] = await acceptedAgain;
  assert.equal(fromAgain.peer.address, '127.0.0.2');
  fromOther.close();
  fromAgain.close();
});

test('per-address handshake limits count mapped IPv4 as IPv4, a global IPv6 /64 as one address and LAN IPv6 addresses one by one', () => {
  assert.equal(addressGroup('127.0.0.2'), '127.0.0.2');
  assert.equal(addressGroup('::ffff:127.0.0.2'), '127.0.0.2');
  assert.equal(addressGroup('2001:db8:1:2:aaaa::1'), addressGroup('2001:0db8:0001:0002:bbbb:cccc:dddd:eeee'));
  assert.notEqual(addressGroup('2001:db8:1:2::1'), addressGroup('2001:db8:1:3::1'));
  // A LAN's own addresses are its machines', one by one.
  assert.notEqual(addressGroup('fe80::1%eth0'), addressGroup('fe80::2'));
  assert.equal(addressGroup('fe80::1%eth0'), addressGroup('fe80:0::1'));
  assert.notEqual(addressGroup('fd12:3456:789a:1::1'), addressGroup('fd12:3456:789a:1::2'));
  assert.equal(addressGroup(undefined), 'unknown');
});

test('a silent peer is dropped when the handshake times out', async () => {
  const { server, port } = await startServer({ handshakeTimeoutMs: 150 });
  const refused = once(server, 'refused') as Promise<[CairnError, string]>;
  const raw = await rawClient(port);
  const [err] = await refused;
  assert.ok(isCairnError(err, 'CLUSTER_TIMEOUT'));
  await raw.closed;
});

test('connecting to a closed port is CLUSTER_UNREACHABLE', async () => {
  const { server, port } = await startServer();
  await server.close();
  await expectRejection(connectPeer('127.0.0.1', port, { nodeId: 'c' }), 'CLUSTER_UNREACHABLE', new RegExp(`127.0.0.1:${port}`));
});

test('many concurrent requests answered out of order each get their own response', async () => {
  const { server, port } = await startServer();
  const { client, serverSide } = await connectPair(server, port);
  const prng = new Prng(11);
  serverSide.on('request', (frame) => {
    // Answer after a random delay with a value derived from the request, so order is shuffled.
    const value = frame.payload.readUInt32LE(0);
    const answer = Buffer.alloc(8);
    answer.writeUInt32LE(value, 0);
    answer.writeUInt32LE(value * 3 + 1, 4);
    setTimeout(() => serverSide.reply(frame, 0x201, { dtype: DType.raw, sequence: frame.sequence }, answer), prng.int(20));
  });
  const n = 2000;
  const results = await Promise.all(
    Array.from({ length: n }, (_, i) => {
      const body = Buffer.alloc(4 + (i % 50));
      body.writeUInt32LE(i, 0);
      return client.request(0x200, { sequence: i }, body);
    }),
  );
  results.forEach((frame, i) => {
    assert.equal(frame.type, 0x201);
    assert.equal(frame.sequence, i);
    assert.equal(frame.payload.readUInt32LE(0), i);
    assert.equal(frame.payload.readUInt32LE(4), i * 3 + 1);
  });
  assert.equal(client.pendingRequests, 0);
  client.close();
});

test('64 MB payloads arrive intact in both directions', async () => {
  const { server, port } = await startServer();
  const { client, serverSide } = await connectPair(server, port);
  const big = Buffer.allocUnsafe(64 * 1024 * 1024);
  const prng = new Prng(3);
  for (let i = 0; i < big.length; i += 4) big.writeUInt32LE(prng.nextU32(), i);
  const digest = createHash('sha256').update(big).digest();
  serverSide.on('request', (frame) => {
    const got = createHash('sha256').update(frame.payload).digest();
    serverSide.reply(frame, 0x201, { dtype: DType.raw }, got);
  });
  const answer = await client.request(0x200, { dtype: DType.raw }, big);
  assert.ok(answer.payload.equals(digest));

  const arrived = once(client, 'frame') as Promise<[Frame]>;
  await serverSide.write(0x202, { dtype: DType.raw }, big);
  const [frame] = await arrived;
  assert.equal(frame.payload.length, big.length);
  assert.ok(createHash('sha256').update(frame.payload).digest().equals(digest));
  client.close();
});

test('streaming many large frames with write() respects backpressure and loses nothing', async () => {
  const { server, port } = await startServer();
  const { client, serverSide } = await connectPair(server, port);
  const chunk = Buffer.alloc(4 * 1024 * 1024);
  let received = 0;
  let sequenceOk = true;
  const done = new Promise<void>((resolve) => {
    serverSide.on('frame', (f) => {
      if (f.sequence !== received) sequenceOk = false;
      received++;
      if (received === 24) resolve();
    });
  });
  for (let i = 0; i < 24; i++) {
    chunk[0] = i;
    await client.write(0x300, { sequence: i }, Buffer.from(chunk));
  }
  await done;
  assert.ok(sequenceOk);
  client.close();
});

test('requests fail clearly: timeout, remote error, no handler, abort, and closing', async () => {
  const { server, port } = await startServer();
  const { client, serverSide } = await connectPair(server, port, { requestTimeoutMs: 10_000 });
  await expectRejection(client.request(0x200), 'CLUSTER_REMOTE', /no handler for requests of frame type 512/);
  serverSide.on('request', (frame) => {
    if (frame.type === 0x201) serverSide.replyError(frame, 'shard not loaded');
    if (frame.type === 0x202) throw new Error('handler exploded');
    // 0x200: never answered.
  });
  await expectRejection(client.request(0x200, undefined, undefined, { timeoutMs: 100 }), 'CLUSTER_TIMEOUT', /within 100 ms/);
  await expectRejection(client.request(0x201), 'CLUSTER_REMOTE', /shard not loaded/);
  await expectRejection(client.request(0x202), 'CLUSTER_REMOTE', /handler exploded/);
  const controller = new AbortController();
  const aborted = client.request(0x200, undefined, undefined, { signal: controller.signal });
  controller.abort();
  await expectRejection(aborted, 'ABORTED', /aborted/);
  assert.throws(
    () => client.send(5),
    (e) => isCairnError(e, 'BAD_ARGUMENT'),
  );

  const pending = client.request(0x200);
  const serverClosed = once(serverSide, 'close') as Promise<[CloseInfo]>;
  const clientClosed = once(client, 'close') as Promise<[CloseInfo]>;
  serverSide.close('maintenance window');
  await expectRejection(pending, 'CLUSTER_CLOSED', /maintenance window/);
  const [clientInfo] = await clientClosed;
  assert.equal(clientInfo.byPeer, true);
  assert.match(clientInfo.reason, /maintenance window/);
  const [serverInfo] = await serverClosed;
  assert.equal(serverInfo.byPeer, false);
  await expectRejection(client.request(0x200), 'CLUSTER_CLOSED', /closed/);
});

test('frames sent the instant a connection opens reach listeners attached after connectPeer resolves', async () => {
  const { server, port } = await startServer();
  server.once('connection', (conn) => {
    conn.send(0x310, undefined, Buffer.from('early'));
    echoRequests(conn);
  });
  const client = await connectPeer('127.0.0.1', port, { nodeId: 'c' });
  const [frame] = (await once(client, 'frame')) as [Frame];
  assert.equal(frame.payload.toString(), 'early');
  // And a request sent immediately is answered, not lost before the server's listener exists.
  const reply = await client.request(0x200, undefined, Buffer.from('ping'));
  assert.equal(reply.payload.toString(), 'ping');
  client.close();
});

test('a frame in the same TCP segment as the handshake READY is delivered, not dropped', async () => {
  // A hand-written server that completes the handshake and sends its first application frame in
  // the same write as READY, so both reach the client in one chunk.
  const raw = createServer((socket) => {
    new RawPeer(socket, {
      role: 'server',
      secret: localClusterSecret(),
      behindReady: (peer) => peer.sealFrame(0x310, undefined, Buffer.from('right behind')),
    });
  });
  raw.listen(0, '127.0.0.1');
  await once(raw, 'listening');
  const { port } = raw.address() as { port: number };
  const client = await connectPeer('127.0.0.1', port, { nodeId: 'c' });
  const frame = await Promise.race([
    once(client, 'frame').then(([f]) => f as Frame),
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the frame behind READY was lost')), 2000)),
  ]);
  assert.equal(frame.payload.toString(), 'right behind');
  client.destroy();
  raw.close();
});

test('an identity whose name or id holds control characters is refused (they would forge log lines)', async () => {
  const { port } = await startServer();
  await expectRejection(connectPeer('127.0.0.1', port, { nodeId: 'c', name: 'ok\ncairn node: forged line' }), 'CLUSTER_REFUSED', /identity name must not hold control characters/);
  await expectRejection(connectPeer('127.0.0.1', port, { nodeId: 'c\u001b[2J' }), 'CLUSTER_REFUSED', /identity nodeId must not hold control characters/);
  const fresh = await connectPeer('127.0.0.1', port, { nodeId: 'c', name: 'plain name: ünïcode' });
  fresh.close();
});

test('garbage after the handshake closes only that connection, with the reason sent to it', async () => {
  const { server, port } = await startServer();
  const good = await connectPair(server, port);
  echoRequests(good.serverSide);
  const bad = await connectPair(server, port);
  const badClosed = once(bad.client, 'close') as Promise<[CloseInfo]>;
  const serverSideClosed = once(bad.serverSide, 'close') as Promise<[CloseInfo]>;
  // Reach under the API to write bytes that are not a frame.
  const socket = Reflect.get(bad.client, 'socket') as Socket;
  socket.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n' + 'z'.repeat(40)));
  const [info] = await badClosed;
  assert.equal(info.byPeer, true);
  assert.match(info.reason, /bad record magic/);
  const [serverInfo] = await serverSideClosed;
  assert.ok(isCairnError(serverInfo.error, 'CLUSTER_PROTOCOL'));

  const reply = await good.client.request(0x200, undefined, Buffer.from('still here'));
  assert.equal(reply.payload.toString(), 'still here');
  const fresh = await connectPeer('127.0.0.1', port, { nodeId: 'c3' });
  fresh.close();
  good.client.close();
});

test('a frame announcing more than the connection limit closes it without allocating', async () => {
  const { server, port } = await startServer({ maxPayloadBytes: 1024 });
  const { client, serverSide } = await connectPair(server, port);
  const closed = once(client, 'close') as Promise<[CloseInfo]>;
  client.send(0x300, undefined, Buffer.alloc(2048));
  const [info] = await closed;
  assert.match(info.reason, /exceeds the limit of 1024 for frame type 768/);
  assert.ok(!serverSide.isOpen);
});
