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
import { sseEvents } from './sse-events.js';
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
  for await (const c of sseEvents<{ choices: { text?: string }[] }>(r)) {
    if (c.choices[0]?.text === undefined) continue;
    if (count === 0) first = performance.now();
    count++;
  }
  // Decode speed: tokens after the first, over the time since the first.
  return { tokens: count - 1, seconds: (performance.now() - (first || t0)) / 1000 };
}

function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime + stime in clock ticks (100 Hz)
}

interface Deployment {
  readonly stages: number;
  readonly server: ServerProcess;
  readonly nodes: NodeProcess[];
}

async function deploy(stages: number): Promise<Deployment> {
  const nodes: NodeProcess[] = [];
  for (let i = 1; i < stages; i++) nodes.push(await startNode(['--threads', String(threads)]));
  const serveArgs = ['-m', model, '--threads', String(threads), '--parallel', '8', '--ctx', '512'];
  const server = await startServer(stages === 1 ? serveArgs : [...serveArgs, '--cluster', '--peers', nodes.map((n) => n.peer).join(',')]);
  await server.ready(600_000);
  await stream(server.url, 'warm up', 8);
  return { stages, server, nodes };
}

async function undeploy(d: Deployment): Promise<void> {
  await d.server.stop();
  await Promise.all(d.nodes.map((n) => n.stop()));
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1];

async function main(): Promise<void> {
  const results: Record<string, unknown> = { model, threads, tokens };
  // Per-hop latency: a round trip of a small frame to a node process, halved.
  const node = await startNode([]);
  const conn = await connectPeer('127.0.0.1', node.port, { nodeId: 'bench', compatibility: MESH_COMPATIBILITY });
  const lat = await measureLatency(conn, { samples: 200 });
  results.hopMicroseconds = (lat.medianMs * 1000) / 2;
  conn.close();
  await node.stop();

  // All three deployments run at once (idle ones sleep), and the single-stream runs alternate
  // between them: this machine's speed moves from minute to minute, and a ratio of runs taken
  // minutes apart would measure that instead of the pipeline.
  const deployments: Deployment[] = [];
  try {
    for (const stages of [1, 2, 3]) deployments.push(await deploy(stages));
    const runs: Record<number, number[]> = { 1: [], 2: [], 3: [] };
    for (let r = 0; r < 5; r++) {
      for (const d of deployments) {
        const x = await stream(d.server.url, 'Once upon a time', tokens);
        runs[d.stages].push(x.tokens / x.seconds);
      }
    }
    const single: Record<number, number> = {};
    for (const d of deployments) single[d.stages] = median(runs[d.stages]);
    const relative: Record<number, number> = {};
    // Ratio per round (runs side by side), then the median over rounds.
    for (const stages of [2, 3]) relative[stages] = median(runs[stages].map((v, i) => v / runs[1][i]));
    const aggregate: Record<string, number> = {};
    for (const d of deployments) {
      for (const n of [4, 8]) {
        const t0 = performance.now();
        const all = await Promise.all(Array.from({ length: n }, (_, i) => stream(d.server.url, `Story number ${i}:`, tokens)));
        aggregate[`${d.stages}x${n}`] = all.reduce((a, x) => a + x.tokens, 0) / ((performance.now() - t0) / 1000);
      }
    }
    const idleCpu: Record<number, number> = {};
    const waiting = deployments.filter((d) => d.nodes.length > 0);
    const before = waiting.map((d) => d.nodes.map((n) => cpuSeconds(n.proc.pid!)));
    await new Promise((r) => setTimeout(r, 2000));
    waiting.forEach((d, i) => {
      idleCpu[d.stages] = Math.max(...d.nodes.map((n, j) => cpuSeconds(n.proc.pid!) - before[i][j])) / 2;
    });
    results.singleStreamTokensPerSecond = single;
    results.singleStreamRuns = runs;
    results.relativeToOneStage = relative;
    results.aggregateTokensPerSecond = aggregate;
    results.idleNodeCpuFraction = idleCpu;
  } finally {
    for (const d of deployments) await undeploy(d);
  }
  process.stdout.write(JSON.stringify(results, null, 2) + '\n');
}

void main();
