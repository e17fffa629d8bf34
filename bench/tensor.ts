/**
 * Tensor parallelism on this machine: the latency of one all-reduce of a token's hidden state
 * between two ranks (over loopback TCP with the cluster's encryption, both ranks in this process),
 * and single-stream decode of one node against a tensor-parallel group and a pipeline at the same
 * total threads (1 node x T threads; 2 ranks x T/2; 2 stages x T/2), and for a Mixture-of-Experts
 * model an expert-parallel group too (2 ranks x T/2), runs alternating between them.
 *
 *   node dist/bench/tensor.js MODEL [--threads T] [--tokens N] [--rounds R]
 */
import { ClusterServer, connectPeer, type PeerConnection } from '../src/cluster/index.js';
import { dirname } from 'node:path';
import { readGguf } from '../src/gguf/reader.js';
import { readModelConfig } from '../src/model/config.js';
import { familyOf } from '../src/model/registry.js';
import { MESH_COMPATIBILITY } from '../src/mesh/node.js';
import { MeshFrame } from '../src/mesh/protocol.js';
import { TensorGroup } from '../src/mesh/tensor-group.js';
import { startNode, type NodeProcess } from '../test/helpers/node.js';
import { startServer, type ServerProcess } from '../test/helpers/server.js';
import { sseEvents } from './sse-events.js';

const args = process.argv.slice(2);
const model = args[0];
const flag = (name: string, dflt: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const threads = flag('--threads', 2);
const tokens = flag('--tokens', 64);
const rounds = flag('--rounds', 5);
const name = model.replace(/^.*\//, '').replace(/\.gguf$/, '');
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1];

/** Median microseconds of one all-reduce of `floats` values between two ranks. */
async function allReduceMicroseconds(floats: number, samples: number): Promise<number> {
  const limit = () => 64 << 20;
  const servers = [0, 1].map((r) => new ClusterServer({ payloadLimit: limit, nodeId: `rank-${r}`, name: `rank-${r}`, compatibility: MESH_COMPATIBILITY, host: '127.0.0.1', port: 0 }));
  const addresses = await Promise.all(servers.map((s) => s.listen()));
  const groups: TensorGroup[] = [];
  servers.forEach((s) => s.on('connection', (c: PeerConnection) => c.on('frame', (f) => f.type === MeshFrame.partial && groups[c.peer.nodeId === 'rank-0' ? 1 : 0].onPartial(c.peer.nodeId, f))));
  const out = await Promise.all(
    [0, 1].map((r) => connectPeer('127.0.0.1', addresses[1 - r].port, { nodeId: `rank-${r}`, name: `rank-${r}`, compatibility: MESH_COMPATIBILITY, payloadLimit: limit })),
  );
  groups.push(new TensorGroup(0, 1, [undefined, out[0]], ['rank-0', 'rank-1']), new TensorGroup(1, 1, [out[1], undefined], ['rank-0', 'rank-1']));
  const a = new Float32Array(floats).fill(1);
  const b = new Float32Array(floats).fill(2);
  const times: number[] = [];
  for (let i = 0; i < samples; i++) {
    const t0 = performance.now();
    await Promise.all([groups[0].allReduce(i, 0, a), groups[1].allReduce(i, 0, b)]);
    times.push((performance.now() - t0) * 1000);
  }
  for (const c of out) c.close();
  await Promise.all(servers.map((s) => s.close()));
  return median(times.slice(samples / 10));
}

async function stream(url: string, prompt: string, n: number): Promise<number> {
  let first = 0;
  let count = 0;
  const r = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: name, prompt, max_tokens: n, temperature: 0, ignore_eos: true, stream: true }) });
  for await (const c of sseEvents<{ choices?: { text?: string }[]; error?: { message?: string } }>(r)) {
    if (c.error) throw new Error(`${url}: ${c.error.message ?? 'an error event'}`);
    if (c.choices?.[0]?.text === undefined) continue;
    if (count === 0) first = performance.now();
    count++;
  }
  // Decode speed: tokens after the first, over the time since the first.
  return (count - 1) / ((performance.now() - first) / 1000);
}

interface Deployment {
  readonly label: string;
  readonly server: ServerProcess;
  readonly nodes: NodeProcess[];
}

async function deploy(label: string, nodeCount: number, extra: string[]): Promise<Deployment> {
  const half = String(Math.max(1, threads / 2));
  const nodes: NodeProcess[] = [];
  // The nodes map the same file (one copy in the page cache for every deployment), not shards sent to them.
  for (let i = 0; i < nodeCount; i++) nodes.push(await startNode(['--threads', half, '--models-dir', dirname(model)]));
  const base = ['-m', model, '--ctx', '512'];
  const server = await startServer(nodeCount === 0 ? [...base, '--threads', String(threads)] : [...base, '--threads', half, '--cluster', '--peers', nodes.map((n) => n.peer).join(','), ...extra]);
  await server.ready(600_000);
  await stream(server.url, 'warm up', 8);
  return { label, server, nodes };
}

async function main(): Promise<void> {
  const cfg = readModelConfig(readGguf(model));
  const results: Record<string, unknown> = { model, threads, tokens, layers: cfg.nLayer, nEmbd: cfg.nEmbd };
  results.allReduceMicroseconds = await allReduceMicroseconds(cfg.nEmbd, 400);
  results.allReduce512TokensMicroseconds = await allReduceMicroseconds(cfg.nEmbd * 512, 20);
  const deployments: Deployment[] = [];
  try {
    deployments.push(await deploy(`1 node x ${threads} threads`, 0, []));
    deployments.push(await deploy(`tensor: 2 ranks x ${threads / 2}`, 2, ['--parallelism', 'tensor', '--no-local-compute']));
    deployments.push(await deploy(`pipeline: 2 stages x ${threads / 2}`, 1, ['--parallelism', 'pipeline']));
    const moe = Array.from({ length: cfg.nLayer }, (_, l) => familyOf(cfg).layerPlan(cfg, l).ffn.kind).includes('moe');
    if (moe) deployments.push(await deploy(`expert: 2 ranks x ${threads / 2}`, 2, ['--parallelism', 'expert', '--no-local-compute']));
    const runs: Record<string, number[]> = Object.fromEntries(deployments.map((d) => [d.label, []]));
    for (let r = 0; r < rounds; r++) for (const d of deployments) runs[d.label].push(await stream(d.server.url, 'Once upon a time', tokens));
    results.decodeTokensPerSecond = Object.fromEntries(deployments.map((d) => [d.label, median(runs[d.label])]));
    // Ratio per round (runs side by side), then the median over rounds.
    const one = runs[deployments[0].label];
    results.relativeToOneNode = Object.fromEntries(deployments.slice(1).map((d) => [d.label, median(runs[d.label].map((v, i) => v / one[i]))]));
    results.runs = runs;
  } finally {
    for (const d of deployments) {
      await d.server.stop();
      await Promise.all(d.nodes.map((n) => n.stop()));
    }
  }
  process.stdout.write(JSON.stringify(results, null, 2) + '\n');
}

void main();
