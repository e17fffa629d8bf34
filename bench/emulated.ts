/**
 * Emulated clusters: nodes in network namespaces of their own, joined through a bridge by veth
 * pairs, a coordinator in another namespace, every link slowed to a one-way latency and a rate
 * (e.g. 0.1 ms / 10 Gbit, 1 ms / 1 Gbit): by `tc netem` on each namespace's egress where the
 * kernel has it, else by bench/delay-relay.c in the bridge's namespace, which every connection to
 * a node then goes through (the coordinator is given the relay's addresses as the nodes', so the
 * nodes reach each other through it too; each host's egress is paced as netem's would be). For
 * each link setting and each parallelism (a pipeline and a tensor-parallel group over the same
 * nodes), the coordinator's predicted one-stream decode speed against the speed measured by
 * streaming a completion. The nodes share this machine's cores and memory (the planner is told so
 * by their machine id). Needs root (namespaces) and, without netem, a C compiler; everything it
 * creates it removes.
 *
 *   node dist/bench/emulated.js MODEL [--nodes 2] [--threads 1] [--tokens 48] [--links 0.1ms/10gbit,1ms/1gbit] [--plans pipeline,tensor]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startNode, type NodeProcess } from '../test/helpers/node.js';
import { buildDelayRelay, parseLinkShape, startDelayRelay, type DelayRelay } from './delay-relay.js';
import { startServer, type ServerProcess } from '../test/helpers/server.js';

const args = process.argv.slice(2);
const model = args[0];
const opt = (name: string, dflt: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const nodeCount = Number(opt('--nodes', '2'));
const threads = opt('--threads', '1');
const tokens = Number(opt('--tokens', '48'));
const links = opt('--links', '0.1ms/10gbit,1ms/1gbit').split(',');
const plans = opt('--plans', 'pipeline,tensor').split(',');
const modelName = model.replace(/^.*\//, '').replace(/\.gguf$/, '');
const tag = `e${process.pid % 100000}`;
const hub = `${tag}-hub`;
const nsOf = (i: number) => `${tag}-${i}`; // 0: the coordinator
const addrOf = (i: number) => `10.214.0.${i + 1}`;
/** Where the relay (in the hub) takes connections for node i, when links are emulated by it. */
const relayAddrOf = (i: number) => `10.214.0.${i + 101}`;
const dir = mkdtempSync(join(tmpdir(), 'cairn-emulated-'));

function ip(...a: string[]): void {
  execFileSync('ip', a, { stdio: 'pipe' });
}

function setUp(): void {
  ip('netns', 'add', hub);
  ip('netns', 'exec', hub, 'ip', 'link', 'add', 'br0', 'type', 'bridge');
  ip('netns', 'exec', hub, 'ip', 'link', 'set', 'br0', 'up');
  ip('netns', 'exec', hub, 'ip', 'link', 'set', 'lo', 'up');
  for (let i = 1; i <= nodeCount; i++) ip('netns', 'exec', hub, 'ip', 'addr', 'add', `${relayAddrOf(i)}/24`, 'dev', 'br0');
  for (let i = 0; i <= nodeCount; i++) {
    const ns = nsOf(i);
    ip('netns', 'add', ns);
    ip('netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up');
    ip('netns', 'exec', ns, 'ip', 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', `h${i}`, 'netns', hub);
    ip('netns', 'exec', ns, 'ip', 'addr', 'add', `${addrOf(i)}/24`, 'dev', 'v0');
    ip('netns', 'exec', ns, 'ip', 'link', 'set', 'v0', 'up');
    ip('netns', 'exec', hub, 'ip', 'link', 'set', `h${i}`, 'master', 'br0');
    ip('netns', 'exec', hub, 'ip', 'link', 'set', `h${i}`, 'up');
  }
}

/**
 * Every namespace's egress gets `tc netem` delay and rate (one way between two nodes is one
 * delay); returns false, with every qdisc left as it was, where the kernel has no netem.
 */
function shapeWithNetem(link: string): boolean {
  const [delay, rate] = link.split('/');
  for (let i = 0; i <= nodeCount; i++) {
    const r = spawnSync('ip', ['netns', 'exec', nsOf(i), 'tc', 'qdisc', 'replace', 'dev', 'v0', 'root', 'netem', 'delay', delay, 'rate', rate]);
    if (r.status === 0) continue;
    for (let j = 0; j < i; j++) spawnSync('ip', ['netns', 'exec', nsOf(j), 'tc', 'qdisc', 'del', 'dev', 'v0', 'root']);
    return false;
  }
  return true;
}

function tearDown(): void {
  for (let i = 0; i <= nodeCount; i++) spawnSync('ip', ['netns', 'del', nsOf(i)]);
  spawnSync('ip', ['netns', 'del', hub]);
}

/** Runs a script inside the coordinator's namespace and returns its stdout as JSON. */
function inCoordinator(script: string, ...a: string[]): unknown {
  const path = join(dir, 'script.mjs');
  writeFileSync(path, script);
  return JSON.parse(execFileSync('ip', ['netns', 'exec', nsOf(0), process.execPath, path, ...a], { encoding: 'utf8' }));
}

const STREAM = `const [url, model, n] = process.argv.slice(2);
const r = await fetch(url + '/v1/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model, prompt: 'Once upon a time', max_tokens: Number(n), temperature: 0, ignore_eos: true, stream: true }) });
const dec = new TextDecoder(); let buf = ''; let count = 0; let first = 0;
for await (const chunk of r.body) { buf += dec.decode(chunk, { stream: true }); let i; while ((i = buf.indexOf('\\n\\n')) >= 0) { const ev = buf.slice(0, i); buf = buf.slice(i + 2); if (ev.startsWith('data: {') && ev.includes('"text"')) { if (count === 0) first = performance.now(); count++; } } }
process.stdout.write(JSON.stringify({ tokensPerSecond: (count - 1) / ((performance.now() - first) / 1000) }));`;

const GET = `const r = await fetch(process.argv[2]); process.stdout.write(await r.text());`;

async function ready(server: ServerProcess): Promise<void> {
  const end = Date.now() + 300_000;
  while (Date.now() < end) {
    try {
      if ((inCoordinator(GET, `${server.url}/health`) as { status: string }).status === 'ok') return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`not ready: ${server.stderr()}`);
}

async function main(): Promise<void> {
  const rows: Record<string, unknown>[] = [];
  execFileSync(process.execPath, [join(import.meta.dirname, '../../bin/cairn.js'), 'cluster', 'key', '--out', join(dir, 'cluster.key')], {
    stdio: 'pipe',
  });
  setUp();
  try {
    for (const link of links) {
      const shape = parseLinkShape(link);
      const netem = shapeWithNetem(link);
      if (!netem) process.stderr.write(`${link}: this kernel has no netem: links go through bench/delay-relay.c\n`);
      for (const parallelism of plans) {
        const env = { XDG_CACHE_HOME: join(dir, 'cache') };
        const nodes: NodeProcess[] = [];
        let server: ServerProcess | undefined;
        let relay: DelayRelay | undefined;
        try {
          // Across namespaces the nodes need a cluster key (without one they accept only this machine's loopback).
          const key = ['--cluster-key-file', join(dir, 'cluster.key')];
          for (let i = 1; i <= nodeCount; i++)
            nodes.push(
              await startNode(['--host', addrOf(i), '--threads', threads, '--name', `n${i}`, ...key], {
                prefix: ['ip', 'netns', 'exec', nsOf(i)],
                env,
              }),
            );
          if (!netem)
            relay = await startDelayRelay(
              buildDelayRelay(join(dir, 'relay')),
              shape,
              nodes.map((n, i) => ({ listen: `${relayAddrOf(i + 1)}:${n.port}`, target: `${addrOf(i + 1)}:${n.port}` })),
              ['ip', 'netns', 'exec', hub],
            );
          const peers = nodes.map((n, i) => `${netem ? addrOf(i + 1) : relayAddrOf(i + 1)}:${n.port}`).join(',');
          server = await startServer(
            [
              '-m',
              model,
              '--cluster',
              '--no-local-compute',
              '--parallelism',
              parallelism,
              '--peers',
              peers,
              '--ctx',
              '512',
              '--threads',
              threads,
              ...key,
            ],
            env,
            ['ip', 'netns', 'exec', nsOf(0)],
          );
          await ready(server);
          inCoordinator(STREAM, server.url, modelName, '8');
          const runs = [0, 1, 2].map(
            () => (inCoordinator(STREAM, server!.url, modelName, String(tokens)) as { tokensPerSecond: number }).tokensPerSecond,
          );
          const status = inCoordinator(GET, `${server.url}/v1/cluster`) as {
            plan: { predictedTokensPerSecond: number; measuredTokensPerSecond?: number; stages: { splitCount: number }[] };
          };
          const measured = [...runs].sort((a, b) => a - b)[1];
          const predicted = status.plan.predictedTokensPerSecond;
          // A tensor group's measured all-reduce, as the coordinator logs it (mesh/exchange-probe.ts).
          const probe = /one all-reduce of a token took ([\d.]+) ms \(estimated ([\d.]+) ms\)/.exec(server.stderr());
          rows.push({
            link,
            emulation: netem ? 'netem' : 'relay',
            parallelism,
            stages: status.plan.stages.length,
            predicted,
            measured,
            ratio: measured / predicted,
            runs,
            coordinatorMeasured: status.plan.measuredTokensPerSecond,
            ...(probe ? { allReduceMs: Number(probe[1]), estimatedAllReduceMs: Number(probe[2]) } : {}),
          });
          process.stderr.write(
            `${link} ${parallelism}: predicted ${predicted.toFixed(2)}, measured ${measured.toFixed(2)} tok/s${probe ? ` (one all-reduce ${probe[1]} ms, estimated before it ran ${probe[2]} ms)` : ''}\n`,
          );
        } finally {
          await server?.stop();
          await Promise.all(nodes.map((n) => n.stop()));
          await relay?.stop();
        }
      }
    }
  } finally {
    tearDown();
    rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(JSON.stringify({ model, nodes: nodeCount, threads, tokens, rows }, null, 2) + '\n');
}

void main();
