/**
 * The secure channel seen from the path between two peers (a relay that records and alters
 * traffic), and the limits that keep a peer from holding a node's resources.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect as netConnect } from 'node:net';
import { type CairnError, isCairnError } from '../util/errors.js';
import { deriveClusterSecretSync } from './cluster-key.js';
import { connectPeer } from './connect.js';
import type { CloseInfo, PeerConnection } from './connection.js';
import { ControlFrame } from './control-frames.js';
import { FrameDecoder } from './frame-decoder.js';
import { type Frame, DType, FrameFlags, frameJson } from './frame.js';
import { createHello, deriveSessionKeys, handshakeTranscript } from './handshake.js';
import { RECORD_HEADER_BYTES, RecordOpener } from './record-layer.js';
import { type ClusterServerOptions, ClusterServer } from './server.js';
import { RawPeer } from './testing/raw-peer.js';
import { startRelay, type Relay } from './testing/relay.js';

const KEY = 'a channel test passphrase';
const MARK = 'MARKED-PROMPT-7e3a91';
const servers: ClusterServer[] = [];
const relays: Relay[] = [];
after(async () => {
  for (const r of relays) await r.close();
  for (const s of servers) await s.close();
});

async function echoServer(options: Partial<ClusterServerOptions> = {}): Promise<{ server: ClusterServer; port: number }> {
  const server = new ClusterServer({ nodeId: 'node-id-4410', name: 'node-name-4410', clusterKey: KEY, compatibility: 'c', ...options });
  servers.push(server);
  server.on('connection', (conn) => conn.on('request', (f) => conn.reply(f, 0x201, { dtype: f.dtype }, f.payload)));
  const { port } = await server.listen();
  return { server, port };
}

async function viaRelay(port: number): Promise<{ relay: Relay; client: PeerConnection }> {
  const relay = await startRelay('127.0.0.1', port);
  relays.push(relay);
  const client = await connectPeer('127.0.0.1', relay.port, { nodeId: 'coord-id-9921', name: 'coord-name-9921', clusterKey: KEY, compatibility: 'c' });
  return { relay, client };
}

/** The cleartext frames in a captured direction: everything before the first record. */
function clearFrames(bytes: Buffer): Frame[] {
  const frames: Frame[] = [];
  const decoder = new FrameDecoder({ onFrame: (f) => frames.push(f) });
  decoder.push(bytes.subarray(0, bytes.indexOf(0xcb) < 0 ? bytes.length : bytes.indexOf(0xcb)));
  return frames;
}

test('a relay sees no prompt, no names and no ids: only the two hellos travel in the clear', async () => {
  const { port } = await echoServer();
  const { relay, client } = await viaRelay(port);
  const reply = await client.request(0x200, { dtype: DType.json }, Buffer.from(JSON.stringify({ prompt: `${MARK} once upon a time` })));
  assert.match(reply.payload.toString(), new RegExp(MARK));
  client.close();
  for (const direction of ['toServer', 'toClient'] as const) {
    const bytes = Buffer.concat(relay.seen[direction]);
    for (const secret of [MARK, KEY, 'node-id-4410', 'node-name-4410', 'coord-id-9921', 'coord-name-9921'])
      assert.ok(!bytes.includes(Buffer.from(secret)), `${secret} travelled ${direction}`);
    const clear = clearFrames(bytes);
    assert.deepEqual(
      clear.map((f) => f.type),
      [ControlFrame.hello],
    );
    assert.deepEqual(Object.keys(frameJson(clear[0]) as object).sort(), ['keyKind', 'nonce', 'protocol', 'publicKey', 'role']);
  }
});

test('one flipped byte, either way, ends that connection and never yields an altered answer', async () => {
  const { port } = await echoServer();
  for (const direction of ['toServer', 'toClient'] as const) {
    const { relay, client } = await viaRelay(port);
    const before = await client.request(0x200, undefined, Buffer.from('intact'));
    assert.equal(before.payload.toString(), 'intact');
    let flipped = false;
    relay.tamper = (dir, chunk) => {
      if (dir !== direction || flipped || chunk.length <= RECORD_HEADER_BYTES + 2) return chunk;
      flipped = true;
      const out = Buffer.from(chunk);
      out[RECORD_HEADER_BYTES + 1] ^= 0x01;
      return out;
    };
    const closed = once(client, 'close') as Promise<[CloseInfo]>;
    await assert.rejects(client.request(0x200, undefined, Buffer.from('this answer must not change'), { timeoutMs: 10_000 }), (e) =>
      isCairnError(e, 'CLUSTER_CLOSED'),
    );
    const [info] = await closed;
    assert.ok(flipped);
    if (direction === 'toClient') assert.match(info.reason, /did not authenticate/);
  }
});

test('a replayed or a dropped record ends the connection', async () => {
  const { port } = await echoServer();
  for (const mode of ['replay', 'drop'] as const) {
    const { relay, client } = await viaRelay(port);
    await client.request(0x200, undefined, Buffer.from('warm'));
    let previous: Buffer | undefined;
    let done = false;
    relay.tamper = (dir, chunk) => {
      if (dir !== 'toClient' || done) return chunk;
      if (previous === undefined) {
        previous = Buffer.from(chunk);
        return mode === 'drop' ? Buffer.alloc(0) : chunk;
      }
      done = true;
      return mode === 'replay' ? Buffer.concat([previous, chunk]) : chunk;
    };
    const closed = once(client, 'close') as Promise<[CloseInfo]>;
    // One request at a time, so each answer is its own chunk: the first is held (dropped, or kept
    // to replay), the second arrives behind it.
    const first = client.request(0x200, undefined, Buffer.from('m1'), { timeoutMs: 10_000 });
    const firstOutcome = first.then(
      (f) => f.payload.toString(),
      (e: unknown) => (isCairnError(e, 'CLUSTER_CLOSED') ? 'closed' : String(e)),
    );
    if (mode === 'replay') assert.equal(await firstOutcome, 'm1');
    else while (previous === undefined) await new Promise((r) => setTimeout(r, 10));
    await assert.rejects(client.request(0x200, undefined, Buffer.from('m2'), { timeoutMs: 10_000 }), (e) => isCairnError(e, 'CLUSTER_CLOSED'));
    const [info] = await closed;
    assert.match(info.reason, /did not authenticate/, mode);
    // A dropped answer is never delivered late or in another's place.
    if (mode === 'drop') assert.equal(await firstOutcome, 'closed');
  }
});

test('every connection has its own session keys: the same message never looks the same twice', async () => {
  const { port } = await echoServer();
  const captures: Buffer[] = [];
  for (let i = 0; i < 2; i++) {
    const { relay, client } = await viaRelay(port);
    await client.request(0x200, undefined, Buffer.alloc(256, 7));
    client.close();
    captures.push(Buffer.concat(relay.seen.toServer));
  }
  // Past the hello, the streams share no 32-byte run.
  const [a, b] = captures.map((c) => c.subarray(c.indexOf(0xcb)));
  for (let o = 0; o + 32 <= a.length; o += 16) assert.equal(b.indexOf(a.subarray(o, o + 32)), -1);
});

test('a peer that goes silent after the handshake is dropped at the idle timeout; keepalives hold a quiet one open', async () => {
  const { server, port } = await echoServer({ idleTimeoutMs: 400, keepAliveMs: 100 });
  const socket = netConnect({ host: '127.0.0.1', port });
  await once(socket, 'connect');
  const accepted = once(server, 'connection') as Promise<[PeerConnection]>;
  const raw = new RawPeer(socket, { role: 'client', secret: deriveClusterSecretSync(KEY), identity: { compatibility: 'c' } });
  const [serverSide] = await accepted;
  assert.ok(raw.open || raw.frames.some((f) => f.type === ControlFrame.ready));
  const [info] = (await once(serverSide, 'close')) as [CloseInfo];
  assert.ok(isCairnError(info.error, 'CLUSTER_TIMEOUT'), info.reason);
  assert.match(info.reason, /idle timeout/);

  // A real peer with the same settings stays up across several idle periods without any traffic of its own.
  const quiet = await connectPeer('127.0.0.1', port, { nodeId: 'q', clusterKey: KEY, compatibility: 'c', idleTimeoutMs: 400, keepAliveMs: 100 });
  await new Promise((r) => setTimeout(r, 1500));
  assert.ok(quiet.isOpen);
  assert.equal((await quiet.request(0x200, undefined, Buffer.from('still here'))).payload.toString(), 'still here');
  quiet.close();
});

test('handshakes in progress and open connections are capped; beyond the caps peers are told the node is busy', async () => {
  const { server, port } = await echoServer({ maxHandshakes: 2, maxConnections: 3, handshakeTimeoutMs: 3000 });
  const refusals: CairnError[] = [];
  server.on('refused', (e) => refusals.push(e));
  // Two sockets that never speak hold both handshake places.
  const idle = [netConnect({ host: '127.0.0.1', port }), netConnect({ host: '127.0.0.1', port })];
  await Promise.all(idle.map((s) => once(s, 'connect')));
  await new Promise((r) => setTimeout(r, 100));
  await assert.rejects(connectPeer('127.0.0.1', port, { nodeId: 'x', clusterKey: KEY, compatibility: 'c' }), (e) => isCairnError(e, 'CLUSTER_REFUSED') && /busy/.test(e.message));
  for (const s of idle) s.destroy();
  await new Promise((r) => setTimeout(r, 100));
  const open = [];
  for (let i = 0; i < 3; i++) open.push(await connectPeer('127.0.0.1', port, { nodeId: `n${i}`, clusterKey: KEY, compatibility: 'c' }));
  await assert.rejects(connectPeer('127.0.0.1', port, { nodeId: 'n4', clusterKey: KEY, compatibility: 'c' }), (e) => /3 connections already open/.test((e as Error).message));
  assert.ok(refusals.length >= 2);
  for (const c of open) c.close();
});

test('transport frames have fixed limits and application frames wait for the handshake', async () => {
  const { server, port } = await echoServer();
  // An oversized ping from an authenticated peer.
  const socket = netConnect({ host: '127.0.0.1', port });
  await once(socket, 'connect');
  const accepted = once(server, 'connection') as Promise<[PeerConnection]>;
  const raw = new RawPeer(socket, { role: 'client', secret: deriveClusterSecretSync(KEY), identity: { compatibility: 'c' } });
  const [serverSide] = await accepted;
  const closed = once(serverSide, 'close') as Promise<[CloseInfo]>;
  raw.sendFrame(ControlFrame.ping, undefined, Buffer.alloc(2 << 20), FrameFlags.request, 1);
  const [info] = await closed;
  assert.match(info.reason, /exceeds the limit of 1048576 for frame type 6/);

  // An application frame in place of the identity.
  const socket2 = netConnect({ host: '127.0.0.1', port });
  await once(socket2, 'connect');
  const refused = once(server, 'refused') as Promise<[CairnError]>;
  const raw2 = new RawPeer(socket2, { role: 'client', secret: deriveClusterSecretSync(KEY), stopAfterKeys: true });
  await new Promise((r) => setTimeout(r, 100));
  raw2.sendFrame(0x200, undefined, Buffer.alloc(16));
  const [err] = await refused;
  assert.match(err.message, /exceeds the limit of 0 for frame type 512|expected an identity/);
  await once(socket2, 'close');
});

test('a recorded handshake gives no way to test key guesses: not even the right key opens the recording', async () => {
  const { port } = await echoServer();
  const { relay, client } = await viaRelay(port);
  await client.request(0x200, undefined, Buffer.from('recorded'));
  client.close();
  const toServer = Buffer.concat(relay.seen.toServer);
  const toClient = Buffer.concat(relay.seen.toClient);
  const [clientHello] = clearFrames(toServer);
  const [serverHello] = clearFrames(toClient);
  const transcript = handshakeTranscript(clientHello.payload, serverHello.payload);
  const serverKey = (JSON.parse(serverHello.payload.toString()) as { publicKey: string }).publicKey;
  const firstRecord = toServer.subarray(toServer.indexOf(0xcb));
  // The attacker knows both hellos and tries guesses, the right one among them; lacking an
  // ephemeral private key of either side, no guess derives the keys of the recording.
  for (const guess of ['wrong guess', KEY]) {
    const attacker = createHello('client', 'cluster');
    const keys = deriveSessionKeys(deriveClusterSecretSync(guess).psk, 'client', attacker.privateKey, serverKey, transcript);
    const opener = new RecordOpener(keys.send, () => assert.fail('a guess opened the recording'));
    assert.equal(opener.push(firstRecord).kind, 'error', guess);
  }
});
