/**
 * Cluster benchmark on loopback: per-hop latency, single-stream decode speed of 2 and 3 stages
 * relative to 1, aggregate decode throughput of 4 and 8 concurrent streams on 1, 2 and 3 stages,
 * and the CPU time idle stages burn while waiting. Every process gets the same --threads.
 *
 *   node dist/bench/cluster.js MODEL [--threads N] [--tokens N]
 */
import { connectPeer, measureLatency } from '../src/cluster/index.js';
import { MESH_COMPATIBILITY } from '../src/mesh/node.js';
import { startNode, type NodeProcess } from '../test/helpers/node.js';
import { startServer, type ServerProcess } from '../test/helpers/server.js';
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const model = args[0];
const flag = (name: string, dflt: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const threads = flag('--threads', 2);
const tokens = flag('--tokens', 64);
const name = model.replace(/^.*\//, '').replace(/\.gguf$/, '');

async function stream(url: string, prompt: string, n: number): Promise<{ tokens: number; seconds: number }> {
  const t0 = performance.now();
  let first = 0;
  let count = 0;
  const r = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: name, prompt, max_tokens: n, temperature: 0, ignore_eos: true, stream: true }) });
  const reader = r.body!.getReader();
  const dec = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value);
    let i: number;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (line.startsWith('data: {') && line.includes('"text"')) {
        if (count === 0) first = performance.now();
        count++;
      }
    }
  }
  // Decode speed: tokens after the first, over the time since the first.
  return { tokens: count - 1, seconds: (performance.now() - (first || t0)) / 1000 };
}

function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime + stime in clock ticks (100 Hz)
}

async function withStages(stages: number, fn: (s: ServerProcess, nodes: NodeProcess[]) => Promise<void>): Promise<void> {
  const nodes: NodeProcess[] = [];
  for (let i = 1; i < stages; i++) nodes.push(await startNode(['--threads', String(threads)]));
  const serveArgs = ['-m', model, '--threads', String(threads), '--parallel', '8', '--ctx', '512'];
  const s = await startServer(stages === 1 ? serveArgs : [...serveArgs, '--cluster', '--peers', nodes.map((n) => n.peer).join(',')]);
  try {
    await s.ready(600_000);
    await stream(s.url, 'warm up', 8);
    await fn(s, nodes);
  } finally {
    await s.stop();
    await Promise.all(nodes.map((n) => n.stop()));
  }
}

async function main(): Promise<void> {
  const results: Record<string, unknown> = { model, threads, tokens };
  // Per-hop latency: a round trip of a small frame to a node process, halved.
  const node = await startNode([]);
  const conn = await connectPeer('127.0.0.1', node.port, { nodeId: 'bench', compatibility: MESH_COMPATIBILITY });
  const lat = await measureLatency(conn, { samples: 200 });
  results.hopMicroseconds = (lat.medianMs * 1000) / 2;
  conn.close();
  await node.stop();

  const single: Record<number, number> = {};
  const aggregate: Record<string, number> = {};
  const idleCpu: Record<number, number> = {};
  for (const stages of [1, 2, 3]) {
    await withStages(stages, async (s, nodes) => {
      const runs: number[] = [];
      for (let r = 0; r < 3; r++) {
        const x = await stream(s.url, 'Once upon a time', tokens);
        runs.push(x.tokens / x.seconds);
      }
      runs.sort((a, b) => a - b);
      single[stages] = runs[1];
      for (const n of [4, 8]) {
        const t0 = performance.now();
        const all = await Promise.all(Array.from({ length: n }, (_, i) => stream(s.url, `Story number ${i}:`, tokens)));
        aggregate[`${stages}x${n}`] = all.reduce((a, x) => a + x.tokens, 0) / ((performance.now() - t0) / 1000);
      }
      if (nodes.length) {
        const before = nodes.map((n) => cpuSeconds(n.proc.pid!));
        await new Promise((r) => setTimeout(r, 2000));
        const after = nodes.map((n) => cpuSeconds(n.proc.pid!));
        idleCpu[stages] = Math.max(...after.map((a, i) => a - before[i])) / 2;
      }
    });
    process.stderr.write(`stages ${stages}: ${single[stages].toFixed(1)} tok/s\n`);
  }
  results.singleStreamTokensPerSecond = single;
  results.relativeToOneStage = { 2: single[2] / single[1], 3: single[3] / single[1] };
  results.aggregateTokensPerSecond = aggregate;
  results.idleNodeCpuFraction = idleCpu;
  process.stdout.write(JSON.stringify(results, null, 2) + '\n');
}

void main();
