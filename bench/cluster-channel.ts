/**
 * What the encrypted channel costs on loopback: the sealing and opening of one 16 KB activation
 * (a 4096-wide f32 hidden state) and of large records in one process, then between two processes
 * the round trip of a 16 KB activation and one-way throughput, each next to a bare TCP socket
 * doing the same without framing or encryption, so the channel's own share is visible.
 *
 * Run after building: node dist/bench/cluster-channel.js [round trips]
 */

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect as netConnect } from 'node:net';
import { performance } from 'node:perf_hooks';
import { connectPeer } from '../src/cluster/connect.js';
import { FRAME_HEADER_BYTES } from '../src/cluster/frame.js';
import { measureBandwidth } from '../src/cluster/links.js';
import { MAX_RECORD_PLAINTEXT, RecordOpener, RecordSealer } from '../src/cluster/record-layer.js';
import { spawnPeer } from '../src/cluster/testing/spawn-peer.js';

const iterations = Number(process.argv[2] ?? 5000);
const ACTIVATION = 16 * 1024;
// Bulk frames of 8 MiB, the size of a shard chunk: far larger frames land in freshly mapped memory,
// whose page faults (very slow on some virtual machines) would be measured instead of the channel.
const BULK = 8 * 1024 * 1024;
const BULK_ROUNDS = 16;

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[s.length >> 1];
}

/** Seal + open of one buffer of `bytes` in this process, microseconds (median). */
function cryptoOnly(bytes: number, rounds: number): number {
  const key = randomBytes(32);
  const sealer = new RecordSealer(key);
  const opener = new RecordOpener(key, () => {});
  const frame = randomBytes(bytes);
  const times: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const t = performance.now();
    for (const r of sealer.sealAll([frame])) opener.push(r);
    times.push((performance.now() - t) * 1000);
  }
  return median(times.slice(rounds >> 3));
}

/** A child process with two bare TCP servers: one echoes, one acknowledges every BULK bytes with one byte. */
async function bareChild(): Promise<{ echo: number; sink: number; kill: () => void }> {
  const program = `
    const net = require('node:net');
    const echo = net.createServer({ noDelay: true }, (s) => s.on('data', (d) => s.write(d)));
    const sink = net.createServer({ noDelay: true }, (s) => { let n = 0; s.on('data', (d) => { n += d.length; while (n >= ${BULK}) { n -= ${BULK}; s.write('k'); } }); });
    echo.listen(0, '127.0.0.1', () => sink.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ echo: echo.address().port, sink: sink.address().port }))));
    process.stdin.resume(); process.stdin.on('end', () => process.exit(0));`;
  const child = spawn(process.execPath, ['-e', program], { stdio: ['pipe', 'pipe', 'inherit'] });
  const [line] = (await once(child.stdout!, 'data')) as [Buffer];
  const ports = JSON.parse(line.toString()) as { echo: number; sink: number };
  return { ...ports, kill: () => child.kill('SIGKILL') };
}

async function bareRoundTrips(port: number): Promise<number> {
  const socket = netConnect({ host: '127.0.0.1', port, noDelay: true });
  await once(socket, 'connect');
  const message = randomBytes(ACTIVATION);
  let pending = 0;
  let wake: (() => void) | undefined;
  socket.on('data', (d: Buffer) => {
    pending -= d.length;
    if (pending <= 0) wake?.();
  });
  const times: number[] = [];
  for (let i = 0; i < iterations + 500; i++) {
    const t = performance.now();
    pending = message.length;
    await new Promise<void>((r) => {
      wake = r;
      socket.write(message);
    });
    if (i >= 500) times.push((performance.now() - t) * 1000);
  }
  socket.destroy();
  return median(times);
}

async function bareThroughput(port: number): Promise<number> {
  const socket = netConnect({ host: '127.0.0.1', port, noDelay: true });
  await once(socket, 'connect');
  const chunk = Buffer.alloc(1 << 20);
  const rates: number[] = [];
  for (let round = 0; round < BULK_ROUNDS; round++) {
    const acked = once(socket, 'data');
    const t = performance.now();
    for (let sent = 0; sent < BULK; sent += chunk.length) if (!socket.write(chunk)) await once(socket, 'drain');
    await acked;
    rates.push(BULK / ((performance.now() - t) / 1000));
  }
  socket.destroy();
  return median(rates);
}

async function main(): Promise<void> {
  console.log(`encrypted cluster channel, loopback (AES-256-GCM records of up to ${MAX_RECORD_PLAINTEXT / 1024} KiB)`);
  const seal16 = cryptoOnly(ACTIVATION + FRAME_HEADER_BYTES, 20_000);
  const sealBig = cryptoOnly(MAX_RECORD_PLAINTEXT, 2000);
  console.log(`seal + open, one 16 KB activation frame (one process)   ${seal16.toFixed(1)} us`);
  console.log(`seal + open, ${MAX_RECORD_PLAINTEXT / 1024} KiB record (one process)            ${((MAX_RECORD_PLAINTEXT / sealBig) * 1e6 / 1e9).toFixed(2)} GB/s`);

  const bare = await bareChild();
  const peer = await spawnPeer({ nodeId: 'bench-peer' });
  try {
    const conn = await connectPeer('127.0.0.1', peer.port, { nodeId: 'bench-client' });
    const activation = new Float32Array(ACTIVATION / 4).map((_, i) => Math.sin(i));
    for (let i = 0; i < 500; i++) await conn.request(0x300, undefined, activation);
    const times: number[] = [];
    for (let i = 0; i < iterations; i++) {
      const t = performance.now();
      await conn.request(0x300, undefined, activation);
      times.push((performance.now() - t) * 1000);
    }
    const secureRtt = median(times);
    const bareRtt = await bareRoundTrips(bare.echo);
    console.log(`round trip, 16 KB each way (two processes)   bare TCP ${bareRtt.toFixed(1)} us   channel ${secureRtt.toFixed(1)} us   added per hop ${((secureRtt - bareRtt) / 2).toFixed(1)} us`);
    const secure = await measureBandwidth(conn, { bytes: BULK, rounds: BULK_ROUNDS });
    const bareRate = await bareThroughput(bare.sink);
    console.log(
      `one-way, 8 MiB frames (two processes)           bare TCP ${(bareRate / 1e9).toFixed(2)} GB/s   channel ${(secure.bytesPerSecond / 1e9).toFixed(2)} GB/s (best ${(secure.bestBytesPerSecond / 1e9).toFixed(2)})`,
    );
    conn.close();
  } finally {
    peer.child.kill('SIGKILL');
    bare.kill();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
