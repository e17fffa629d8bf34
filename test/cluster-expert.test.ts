/**
 * Expert-parallel plans with real processes on loopback: `cairn node` children as one group
 * (`cairn serve --cluster --parallelism expert --no-local-compute`) running a Mixture-of-Experts
 * model: the first node (the home) holds attention, the router, the shared expert and its share of
 * the routed experts; the others hold only theirs and are sent the tokens routed to them. The
 * greedy output equals single-node `cairn generate` over 2 and 3 nodes; the nodes, which lack the
 * model, are sent only what they hold (an expert rank its experts); the status names the home;
 * an expert rank that dies costs the requests in flight nothing worse than a clear error and the
 * server keeps serving; a dense model refuses the plan with the reason.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { GgmlType } from '../src/gguf/ggml-types.js';
import { writeSyntheticModel } from '../src/model/synthetic.js';
import { ROOT, scratchDir } from './helpers/paths.js';
import { startNode, type NodeProcess } from './helpers/node.js';
import { startServer, type ServerProcess } from './helpers/server.js';
import { complete, status } from './helpers/cluster-client.js';
import { quantizeWithKernels } from './helpers/oracle-greedy.js';

const dir = scratchDir('cluster-expert');
const cache = join(dir, 'cache');
const env = { XDG_CACHE_HOME: cache };
const model = join(dir, 'moe.gguf');
const dense = join(dir, 'dense.gguf');

before(() => {
  mkdirSync(cache, { recursive: true });
  // Qwen2-MoE: 8 experts, 2 per token, and a shared expert behind its gate, in F32 (an expert
  // split changes only the order of float additions, far below a random model's top-two gap).
  writeSyntheticModel(
    model,
    {
      arch: 'qwen2moe',
      nEmbd: 256,
      nLayer: 3,
      nHead: 8,
      nKvHead: 4,
      nFf: 256,
      nVocab: 1000,
      moe: { experts: 8, used: 2, width: 128, sharedWidth: 256 },
      quant: GgmlType.F32,
      seed: 41,
    },
    quantizeWithKernels,
  );
  writeSyntheticModel(dense, { arch: 'llama', nEmbd: 256, nLayer: 2, nHead: 8, nKvHead: 4, nFf: 512, nVocab: 1000, quant: GgmlType.F32, seed: 41 }, quantizeWithKernels);
});
after(() => rmSync(dir, { recursive: true, force: true }));

function generate(prompt: string, n: number): string {
  const argv = [join(ROOT, 'bin/cairn.js'), 'generate', '-m', model, '-p', prompt, '-n', String(n), '--temperature', '0', '--ignore-eos', '--json', '--ctx', '256'];
  return JSON.parse(execFileSync(process.execPath, argv, { encoding: 'utf8' })).text as string;
}


/**
 * A prompt of ~125 tokens: one step carries more than 64 KiB of hidden states to and from each
 * rank; its continuation equals one process's.
 */
async function longPromptMatches(url: string): Promise<void> {
  const long = 'hello world, the cat sat on the mat. '.repeat(4);
  const r = await complete(url, long, 8);
  assert.equal(r.status, 200, r.error);
  assert.equal(r.text, generate(long, 8));
}

let groups = 0;

async function withGroup<T>(count: number, fn: (s: ServerProcess, nodes: NodeProcess[]) => Promise<T>, file = model): Promise<T> {
  const nodes: NodeProcess[] = [];
  let server: ServerProcess | undefined;
  // A shard cache of its own: an expert rank's shard depends only on its experts, so one cached by
  // an earlier group could serve a rank of this one (as it should), and nothing would be sent.
  const fresh = { XDG_CACHE_HOME: join(cache, `group-${++groups}`) };
  mkdirSync(fresh.XDG_CACHE_HOME, { recursive: true });
  try {
    for (let i = 0; i < count; i++) nodes.push(await startNode([], { env: fresh }));
    const args = ['-m', file, '--cluster', '--no-local-compute', '--parallelism', 'expert', '--peers', nodes.map((n) => n.peer).join(','), '--ctx', '256'];
    server = await startServer(args, fresh);
    await server.ready();
    return await fn(server, nodes);
  } finally {
    await server?.stop();
    await Promise.all(nodes.map((n) => n.stop()));
  }
}

for (const ranks of [2, 3]) {
  test(`the routed experts spread over ${ranks} nodes give the single-node greedy tokens`, { timeout: 240_000 }, async () => {
    const expected = generate('hello', 30);
    await withGroup(ranks, async (s, nodes) => {
      const st = await status(s.url);
      const plan = st.plan!;
      // The nodes lack the model: each was sent a shard file, an expert rank only its experts.
      const received = plan.stages.map((x) => {
        const port = st.nodes.find((n) => n.id === x.nodeId)!.address.split(':').pop();
        const m = /receiving layers \S+ \(([\d.]+) MiB\)/.exec(nodes.find((n) => String(n.port) === port)!.stderr());
        assert.ok(m, `rank ${x.splitRank} was sent its shard`);
        return Number(m[1]);
      });
      for (let r = 1; r < ranks; r++) assert.ok(received[r] < received[0] / 2, `expert rank ${r} received ${received[r]} MiB, the home ${received[0]} MiB`);
      assert.deepEqual(
        plan.stages.map((x) => [x.layerStart, x.layerEnd, x.splitRank, x.splitCount, x.splitMode]),
        Array.from({ length: ranks }, (_, r) => [0, 3, r, ranks, 'expert']),
      );
      const r = await complete(s.url, 'hello', 30);
      assert.equal(r.status, 200, r.error);
      assert.equal(r.text, expected);
      await longPromptMatches(s.url);
      // Two requests at once: their tokens go to the expert ranks together.
      const both = await Promise.all([complete(s.url, 'hello', 12), complete(s.url, 'world', 12)]);
      assert.deepEqual(
        both.map((x) => x.text),
        [generate('hello', 12), generate('world', 12)],
      );
      const logs = nodes.map((n) => n.stderr()).join('\n');
      assert.match(logs, new RegExp(`as the home of an expert-parallel group of ${ranks}`));
      for (let rank = 1; rank < ranks; rank++) assert.match(logs, new RegExp(`as expert rank ${rank} of ${ranks}`));
      const shown = execFileSync(process.execPath, [join(ROOT, 'bin/cairn.js'), 'cluster', 'status', '--url', s.url], { encoding: 'utf8' });
      assert.match(shown, /rank 1\/\d \(home: attention, shared parts and \d+% of the routed experts\)/);
      assert.match(shown, new RegExp(`rank ${ranks}/${ranks} \\(\\d+% of the routed experts\\)`));
    });
  });
}

test('the coordinator as the home and one node holding experts give the single-node greedy tokens', { timeout: 240_000 }, async () => {
  const expected = generate('hello', 30);
  const node = await startNode([], { env });
  const s = await startServer(['-m', model, '--cluster', '--parallelism', 'expert', '--peers', node.peer, '--ctx', '256'], env);
  try {
    await s.ready();
    const plan = (await status(s.url)).plan!;
    assert.deepEqual(
      plan.stages.map((x) => [x.name, x.splitRank, x.splitMode]),
      [
        ['coordinator', 0, 'expert'],
        [plan.stages[1].name, 1, 'expert'],
      ],
    );
    const r = await complete(s.url, 'hello', 30);
    assert.equal(r.status, 200, r.error);
    assert.equal(r.text, expected);
    await longPromptMatches(s.url);
    assert.match(node.stderr(), /as expert rank 1 of 2/);
  } finally {
    await s.stop();
    await node.stop();
  }
});

test('an expert rank that dies mid-request: the request ends cleanly or resumes, and the server keeps serving', { timeout: 240_000 }, async () => {
  await withGroup(3, async (s, nodes) => {
    const plan = (await status(s.url)).plan!;
    const pending = complete(s.url, 'hello', 200);
    await new Promise((r) => setTimeout(r, 300));
    // The last rank holds experts only.
    assert.equal(plan.stages[2].splitRank, 2);
    await nodes[2].stop();
    const r = await pending;
    if (r.status !== 200) assert.match(r.error ?? '', /node|cluster|plan|expert/i);
    const after = await complete(s.url, 'hello', 10);
    assert.equal(after.status, 200, after.error);
    assert.equal(after.text, generate('hello', 10));
    assert.equal((await status(s.url)).plan!.stages.length, 2);
  });
});

test('an expert-parallel plan of a dense model is refused with the reason', { timeout: 120_000 }, async () => {
  const nodes = [await startNode([], { env }), await startNode([], { env })];
  try {
    const argv = [join(ROOT, 'bin/cairn.js'), 'serve', '-m', dense, '--port', '0', '--cluster', '--no-local-compute', '--parallelism', 'expert', '--peers', nodes.map((n) => n.peer).join(',')];
    const r = spawnSync(process.execPath, argv, { encoding: 'utf8', timeout: 90_000, env: { ...process.env, ...env } });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /an expert-parallel plan needs a Mixture-of-Experts model/);
  } finally {
    await Promise.all(nodes.map((n) => n.stop()));
  }
});
