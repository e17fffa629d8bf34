/**
 * Loopback cost of the cluster transport: round trip of a small frame (request, echoed reply)
 * within one process and to a second process, next to a bare TCP ping-pong with the same sockets
 * options so the framing's own overhead is visible; plus one-way throughput of large payloads.
 *
 * Run after building: node dist/bench/cluster-roundtrip.js [iterations]
 */

import { once } from 'node:events';
import { type Socket, connect as netConnect, createServer } from 'node:net';
import { performance } from 'node:perf_hooks';
import { connectPeer } from '../src/cluster/connect.js';
import type { PeerConnection } from '../src/cluster/connection.js';
import { type DTypeCode, DType } from '../src/cluster/frame.js';
import { measureBandwidth } from '../src/cluster/links.js';
import { ClusterServer } from '../src/cluster/server.js';
import { spawnPeer } from '../src/cluster/testing/spawn-peer.js';

const iterations = Number(process.argv[2] ?? 20000);

function summarize(label: string, samplesUs: number[]): void {
  samplesUs.sort((a, b) => a - b);
  const at = (q: number): number => samplesUs[Math.min(samplesUs.length - 1, Math.floor(q * samplesUs.length))];
  console.log(
    `${label.padEnd(44)} median ${at(0.5).toFixed(1).padStart(6)} us   p90 ${at(0.9).toFixed(1).padStart(6)} us   p99 ${at(0.99).toFixed(1).padStart(6)} us`,
  );
}

async function roundTrips(connection: PeerConnection, payload: Uint8Array, dtype: DTypeCode): Promise<number[]> {
  const warmup = Math.min(2000, iterations);
  const times: number[] = [];
  for (let i = 0; i < warmup + iterations; i++) {
    const start = performance.now();
    await connection.request(0x300, { dtype, sequence: i }, payload);
    if (i >= warmup) times.push((performance.now() - start) * 1000);
  }
  return times;
}

/** The same ping-pong over a plain socket: 64 bytes out, 64 back, no framing. */
async function bareTcp(): Promise<number[]> {
  const server = createServer({ noDelay: true }, (s) => s.on('data', (d) => s.write(d)));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const socket: Socket = netConnect({ host: '127.0.0.1', port, noDelay: true });
  await once(socket, 'connect');
  const message = Buffer.alloc(64);
  const times: number[] = [];
  let pending = 0;
  let resolveOne: (() => void) | undefined;
  socket.on('data', (d) => {
    pending -= d.length;
    if (pending <= 0) resolveOne?.();
  });
  for (let i = 0; i < iterations + 2000; i++) {
    const start = performance.now();
    pending = message.length;
    await new Promise<void>((r) => {
      resolveOne = r;
      socket.write(message);
    });
    if (i >= 2000) times.push((performance.now() - start) * 1000);
  }
  socket.destroy();
  server.close();
  return times;
}

async function main(): Promise<void> {
  console.log(`cluster transport, loopback, ${iterations} round trips per line`);
  summarize('bare TCP ping-pong, 64 B (one process)', await bareTcp());

  const server = new ClusterServer({ nodeId: 'bench-server' });
  server.on('connection', (c) => c.on('request', (f) => c.reply(f, 0x301, { dtype: f.dtype }, f.payload)));
  const { port } = await server.listen();
  const local = await connectPeer('127.0.0.1', port, { nodeId: 'bench-client' });
  summarize('frame request/reply, 64 B raw (one process)', await roundTrips(local, new Uint8Array(64), DType.raw));
  summarize('frame request/reply, 8 KiB raw (one process)', await roundTrips(local, new Uint8Array(8192), DType.raw));
  const localBandwidth = await measureBandwidth(local, { bytes: 16 * 1024 * 1024, rounds: 5 });
  console.log(
    `16 MiB one-way within one process              median ${(localBandwidth.bytesPerSecond / 1e9).toFixed(2)} GB/s   best ${(localBandwidth.bestBytesPerSecond / 1e9).toFixed(2)} GB/s`,
  );

  const peer = await spawnPeer({ nodeId: 'bench-peer' });
  try {
    const remote = await connectPeer('127.0.0.1', peer.port, { nodeId: 'bench-client' });
    summarize('frame request/reply, 64 B raw (two processes)', await roundTrips(remote, new Uint8Array(64), DType.raw));
    summarize('frame request/reply, 8 KiB raw (two processes)', await roundTrips(remote, new Uint8Array(8192), DType.raw));
    const bandwidth = await measureBandwidth(remote, { bytes: 16 * 1024 * 1024, rounds: 5 });
    console.log(
      `16 MiB one-way to a second process             median ${(bandwidth.bytesPerSecond / 1e9).toFixed(2)} GB/s   best ${(bandwidth.bestBytesPerSecond / 1e9).toFixed(2)} GB/s`,
    );
    remote.close();
  } finally {
    peer.child.kill('SIGKILL');
  }
  local.close();
  await server.close();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
