/**
 * The cluster across hosts: a coordinator and two nodes in network namespaces of their own, joined
 * by veth pairs on a bridge (in a fourth namespace), every link delayed: by `tc netem` where the
 * kernel has netem, else by bench/delay-relay.c in the bridge's namespace, which the coordinator
 * is given as the nodes' addresses (so the nodes reach each other through it too). Traffic stays
 * inside these namespaces, which the test creates and removes. Skipped, with the reason, where the
 * kernel (or the user) may not create namespaces.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GgmlType, ggmlRowBytes } from '../src/gguf/ggml-types.js';
import { createKernels } from '../src/kernels/index.js';
import { writeSyntheticModel } from '../src/model/synthetic.js';
import { ROOT, scratchDir } from './helpers/paths.js';
import { startNode, type NodeProcess } from './helpers/node.js';
import { startServer, type ServerProcess } from './helpers/server.js';
import { buildDelayRelay, startDelayRelay, type DelayRelay } from '../bench/delay-relay.js';

const tag = `c${process.pid % 100000}`;
const NS = { hub: `${tag}-hub`, coord: `${tag}-co`, n1: `${tag}-n1`, n2: `${tag}-n2` };
const ADDR = { coord: '10.213.0.1', n1: '10.213.0.2', n2: '10.213.0.3' };
/** Where the relay takes connections for each node, when the kernel has no netem. */
const RELAY_ADDR = { n1: '10.213.0.102', n2: '10.213.0.103' };
const DELAY_MS = 2;
const dir = scratchDir('netns');

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: 'pipe' });
}

function inNs(ns: string, ...cmd: string[]): void {
  ip('netns', 'exec', ns, ...cmd);
}

/** Creates the namespaces, or returns why it cannot. */
function setUp(): { netem: boolean } | string {
  const probe = spawnSync('ip', ['netns', 'add', NS.hub], { encoding: 'utf8' });
  if (probe.error) return `iproute2 is not installed (${probe.error.message})`;
  if (probe.status !== 0) return `cannot create network namespaces here: ${probe.stderr.trim()}`;
  inNs(NS.hub, 'ip', 'link', 'add', 'br0', 'type', 'bridge');
  inNs(NS.hub, 'ip', 'link', 'set', 'br0', 'up');
  inNs(NS.hub, 'ip', 'link', 'set', 'lo', 'up');
  for (const a of Object.values(RELAY_ADDR)) inNs(NS.hub, 'ip', 'addr', 'add', `${a}/24`, 'dev', 'br0');
  let netem = true;
  for (const [key, ns] of [['coord', NS.coord], ['n1', NS.n1], ['n2', NS.n2]] as const) {
    ip('netns', 'add', ns);
    inNs(ns, 'ip', 'link', 'set', 'lo', 'up');
    // The pair is made inside the namespace with its peer placed straight into the hub.
    inNs(ns, 'ip', 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', `h-${key}`, 'netns', NS.hub);
    inNs(ns, 'ip', 'addr', 'add', `${ADDR[key]}/24`, 'dev', 'v0');
    inNs(ns, 'ip', 'link', 'set', 'v0', 'up');
    inNs(NS.hub, 'ip', 'link', 'set', `h-${key}`, 'master', 'br0');
    inNs(NS.hub, 'ip', 'link', 'set', `h-${key}`, 'up');
    if (spawnSync('ip', ['netns', 'exec', ns, 'tc', 'qdisc', 'add', 'dev', 'v0', 'root', 'netem', 'delay', `${DELAY_MS}ms`]).status !== 0) netem = false;
  }
  return { netem };
}

function tearDown(): void {
  for (const ns of Object.values(NS)) spawnSync('ip', ['netns', 'del', ns]);
}

let setup: { netem: boolean } | string = 'not set up';
const model = join(dir, 'model.gguf');
const f32Model = join(dir, 'model-f32.gguf');

before(() => {
  mkdirSync(dir, { recursive: true });
  const kernels = createKernels();
  writeSyntheticModel(model, { arch: 'qwen2', nEmbd: 256, nLayer: 6, nHead: 4, nKvHead: 2, nFf: 512, nVocab: 800, tied: true, quant: GgmlType.Q8_0, seed: 8 }, (type, src) => {
    const out = new Uint8Array(ggmlRowBytes(type, src.length));
    kernels.quantize(type, src, out, src.length);
    return out;
  });
  // F32 for the tensor-parallel run: a split changes only the order of float additions, far below
  // a random model's gap between its top two tokens (8-bit activations could flip a near-tie).
  writeSyntheticModel(f32Model, { arch: 'llama', nEmbd: 256, nLayer: 4, nHead: 8, nKvHead: 4, nFf: 512, nVocab: 800, quant: GgmlType.F32, seed: 9 }, (type, src) => {
    const out = new Uint8Array(ggmlRowBytes(type, src.length));
    kernels.quantize(type, src, out, src.length);
    return out;
  });
  setup = setUp();
});
after(() => {
  tearDown();
  rmSync(dir, { recursive: true, force: true });
});

/**
 * The --peers for two nodes: their own addresses over netem, else the relay's (started here, with
 * the same one-way delay; the caller stops it).
 */
async function peersOf(nodes: NodeProcess[]): Promise<{ peers: string; relay?: DelayRelay }> {
  const keys = ['n1', 'n2'] as const;
  if (typeof setup !== 'string' && setup.netem) return { peers: nodes.map((n, i) => `${ADDR[keys[i]]}:${n.port}`).join(',') };
  const relay = await startDelayRelay(
    buildDelayRelay(join(dir, 'relay')),
    { delayMs: DELAY_MS, rateBitsPerSecond: 0 },
    nodes.map((n, i) => ({ listen: `${RELAY_ADDR[keys[i]]}:${n.port}`, target: `${ADDR[keys[i]]}:${n.port}` })),
    ['ip', 'netns', 'exec', NS.hub],
  );
  return { peers: nodes.map((n, i) => `${RELAY_ADDR[keys[i]]}:${n.port}`).join(','), relay };
}

/** Runs fetch inside the coordinator's namespace (its server is only reachable there). */
function fetchInCoordinator(url: string, body?: unknown): unknown {
  const script = join(dir, 'fetch.mjs');
  writeFileSync(
    script,
    `const [url, body] = process.argv.slice(2);
     const r = await fetch(url, body ? { method: 'POST', headers: { 'content-type': 'application/json' }, body } : undefined);
     process.stdout.write(await r.text());`,
  );
  const out = execFileSync('ip', ['netns', 'exec', NS.coord, process.execPath, script, url, ...(body ? [JSON.stringify(body)] : [])], { encoding: 'utf8' });
  return JSON.parse(out);
}

/** Waits until the server inside the coordinator namespace answers /health with ok (60 s at most). */
async function coordinatorReady(server: ServerProcess): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const h = fetchInCoordinator(`${server.url}/health`) as { status: string };
    if (h.status === 'ok') return;
    if (Date.now() > deadline) throw new Error(`not ready: ${server.stderr()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

test('nodes in separate network namespaces, over delayed links, give the single-node tokens', { timeout: 180_000 }, async (t) => {
  if (typeof setup === 'string') return t.skip(setup);
  if (!setup.netem) t.diagnostic('this kernel has no netem qdisc: the links go through bench/delay-relay.c');
  const expected = JSON.parse(
    execFileSync(process.execPath, [join(ROOT, 'bin/cairn.js'), 'generate', '-m', model, '-p', 'hi', '-n', '24', '--temperature', '0', '--ignore-eos', '--json', '--ctx', '256'], { encoding: 'utf8' }),
  ).text as string;
  const env = { XDG_CACHE_HOME: join(dir, 'cache') };
  const nodes: NodeProcess[] = [];
  let server: ServerProcess | undefined;
  let relay: DelayRelay | undefined;
  try {
    for (const k of ['n1', 'n2'] as const) nodes.push(await startNode(['--host', ADDR[k], '--cluster-key', 'netns cluster passphrase', '--name', k], { prefix: ['ip', 'netns', 'exec', NS[k]], env }));
    const links = await peersOf(nodes);
    relay = links.relay;
    server = await startServer(['-m', model, '--cluster', '--peers', links.peers, '--cluster-key', 'netns cluster passphrase', '--ctx', '256'], env, ['ip', 'netns', 'exec', NS.coord]);
    await coordinatorReady(server);
    const status = fetchInCoordinator(`${server.url}/v1/cluster`) as { plan: { stages: unknown[] }; links: { latencyMs: number }[] };
    assert.equal(status.plan.stages.length, 3);
    assert.ok(status.links.length >= 2);
    for (const l of status.links) assert.ok(l.latencyMs >= 2 * DELAY_MS * 0.9, `link round trip ${l.latencyMs} ms includes the delay`);
    const r = fetchInCoordinator(`${server.url}/v1/completions`, { model: 'model', prompt: 'hi', max_tokens: 24, temperature: 0, ignore_eos: true }) as { choices: { text: string }[] };
    assert.equal(r.choices[0].text, expected);
  } finally {
    await server?.stop();
    await Promise.all(nodes.map((n) => n.stop()));
    await relay?.stop();
  }
});

test('nodes announced over mDNS inside the namespaces are found without --peers', { timeout: 180_000 }, async (t) => {
  if (typeof setup === 'string') return t.skip(setup);
  const env = { XDG_CACHE_HOME: join(dir, 'cache-mdns') };
  const nodes: NodeProcess[] = [];
  let server: ServerProcess | undefined;
  try {
    for (const k of ['n1', 'n2'] as const) {
      nodes.push(await startNode(['--host', ADDR[k], '--cluster-key', 'netns cluster passphrase', '--name', `m${k}`, '--mdns', '--mdns-interface', ADDR[k]], { prefix: ['ip', 'netns', 'exec', NS[k]], env }));
    }
    server = await startServer(['-m', model, '--cluster', '--mdns', '--mdns-interface', ADDR.coord, '--cluster-key', 'netns cluster passphrase', '--ctx', '256'], env, ['ip', 'netns', 'exec', NS.coord]);
    await coordinatorReady(server);
    const status = fetchInCoordinator(`${server.url}/v1/cluster`) as { nodes: { name: string }[]; plan: { stages: unknown[] } };
    if (status.nodes.length === 1) return t.skip(`no multicast between these namespaces: ${server.stderr().split('\n').filter((l) => /mDNS/.test(l)).join('; ') || 'no announcements seen'}`);
    assert.deepEqual(status.nodes.map((n) => n.name).sort(), ['coordinator', 'mn1', 'mn2']);
    assert.equal(status.plan.stages.length, 3);
  } finally {
    await server?.stop();
    await Promise.all(nodes.map((n) => n.stop()));
  }
});

test('a tensor-parallel group across namespaces, over delayed links, gives the single-node tokens', { timeout: 180_000 }, async (t) => {
  if (typeof setup === 'string') return t.skip(setup);
  const expected = JSON.parse(
    execFileSync(process.execPath, [join(ROOT, 'bin/cairn.js'), 'generate', '-m', f32Model, '-p', 'hi', '-n', '16', '--temperature', '0', '--ignore-eos', '--json', '--ctx', '256'], { encoding: 'utf8' }),
  ).text as string;
  const env = { XDG_CACHE_HOME: join(dir, 'cache-tensor') };
  const nodes: NodeProcess[] = [];
  let server: ServerProcess | undefined;
  let relay: DelayRelay | undefined;
  try {
    for (const k of ['n1', 'n2'] as const) nodes.push(await startNode(['--host', ADDR[k], '--cluster-key', 'netns cluster passphrase', '--name', `t${k}`], { prefix: ['ip', 'netns', 'exec', NS[k]], env }));
    const links = await peersOf(nodes);
    relay = links.relay;
    server = await startServer(
      ['-m', f32Model, '--cluster', '--no-local-compute', '--parallelism', 'tensor', '--peers', links.peers, '--cluster-key', 'netns cluster passphrase', '--ctx', '256'],
      env,
      ['ip', 'netns', 'exec', NS.coord],
    );
    await coordinatorReady(server);
    const status = fetchInCoordinator(`${server.url}/v1/cluster`) as { plan: { stages: { splitCount: number }[] } };
    assert.deepEqual(status.plan.stages.map((s) => s.splitCount), [2, 2]);
    const r = fetchInCoordinator(`${server.url}/v1/completions`, { model: 'model-f32', prompt: 'hi', max_tokens: 16, temperature: 0, ignore_eos: true }) as { choices?: { text: string }[] };
    assert.ok(r.choices, `${JSON.stringify(r)}\n${server.stderr()}\n${nodes.map((n) => n.stderr()).join('\n')}`);
    assert.equal(r.choices[0].text, expected);
  } finally {
    await server?.stop();
    await Promise.all(nodes.map((n) => n.stop()));
    await relay?.stop();
  }
});
