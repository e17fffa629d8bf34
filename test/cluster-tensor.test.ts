/**
 * Tensor-parallel plans with real processes on loopback: `cairn node` children as the ranks of one
 * group (`cairn serve --cluster --parallelism tensor --no-local-compute`). Every layer is split
 * over 2 and 3 nodes; the greedy output equals single-node `cairn generate`; the ranks' shares
 * follow their measured speeds; a rank that dies fails or resumes the requests in flight cleanly
 * and the server keeps serving.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { GgmlType, ggmlRowBytes } from '../src/gguf/ggml-types.js';
import { createKernels } from '../src/kernels/index.js';
import { writeSyntheticModel } from '../src/model/synthetic.js';
import { ROOT, scratchDir } from './helpers/paths.js';
import { startNode, type NodeProcess } from './helpers/node.js';
import { startServer, type ServerProcess } from './helpers/server.js';
import { complete, status } from './helpers/cluster-client.js';

const dir = scratchDir('cluster-tensor');
const cache = join(dir, 'cache');
const env = { XDG_CACHE_HOME: cache };
const model = join(dir, 'synthetic.gguf');

before(() => {
  mkdirSync(cache, { recursive: true });
  const kernels = createKernels();
  // 8 heads of 64 in 4 KV groups, FFN 1024: splits over 2 and 3 ranks at block boundaries. F32
  // weights: a split changes only the order of float additions (~3e-7 of the logits), far below
  // the gap between a random model's top two tokens; with 8-bit activations a sum that rounds the
  // other way moves logits by up to ~1% (model/tensor-parallel.test.ts), enough to flip a near-tie.
  writeSyntheticModel(
    model,
    { arch: 'llama', nEmbd: 512, nLayer: 4, nHead: 8, nKvHead: 4, nFf: 1024, nVocab: 1000, quant: GgmlType.F32, seed: 31 },
    (type, src) => {
      const out = new Uint8Array(ggmlRowBytes(type, src.length));
      kernels.quantize(type, src, out, src.length);
      return out;
    },
  );
});
after(() => rmSync(dir, { recursive: true, force: true }));

function generate(prompt: string, n: number): string {
  return JSON.parse(
    execFileSync(
      process.execPath,
      [
        join(ROOT, 'bin/cairn.js'),
        'generate',
        '-m',
        model,
        '-p',
        prompt,
        '-n',
        String(n),
        '--temperature',
        '0',
        '--ignore-eos',
        '--json',
        '--ctx',
        '256',
      ],
      {
        encoding: 'utf8',
      },
    ),
  ).text as string;
}


async function withGroup<T>(
  nodeArgs: string[][],
  fn: (s: ServerProcess, nodes: NodeProcess[]) => Promise<T>,
  serveArgs: string[] = [],
): Promise<T> {
  const nodes: NodeProcess[] = [];
  let server: ServerProcess | undefined;
  try {
    for (const a of nodeArgs) nodes.push(await startNode(a, { env }));
    server = await startServer(
      [
        '-m',
        model,
        '--cluster',
        '--no-local-compute',
        '--parallelism',
        'tensor',
        '--peers',
        nodes.map((n) => n.peer).join(','),
        '--ctx',
        '256',
        ...serveArgs,
      ],
      env,
    );
    await server.ready();
    return await fn(server, nodes);
  } finally {
    await server?.stop();
    await Promise.all(nodes.map((n) => n.stop()));
  }
}

for (const ranks of [2, 3]) {
  test(`every layer split over ${ranks} nodes gives the single-node greedy tokens`, { timeout: 240_000 }, async () => {
    const expected = generate('hello', 40);
    await withGroup(
      Array.from({ length: ranks }, () => []),
      async (s) => {
        const st = await status(s.url);
        const plan = st.plan!;
        assert.equal(plan.stages.length, ranks);
        assert.deepEqual(
          plan.stages.map((x) => [x.layerStart, x.layerEnd, x.splitRank, x.splitCount]),
          Array.from({ length: ranks }, (_, r) => [0, 4, r, ranks]),
        );
        assert.ok(Math.abs(plan.stages.reduce((a, x) => a + x.splitShare, 0) - 1) < 1e-9);
        // The group's all-reduce was measured between its ranks before the first step, and the
        // prediction is made with it.
        assert.equal(plan.exchanges.length, 1);
        assert.equal(plan.exchanges[0].names.length, ranks);
        assert.ok(plan.exchanges[0].measuredMs > 0 && plan.exchanges[0].measuredMs < 1000, `${plan.exchanges[0].measuredMs} ms`);
        assert.ok(Number.isFinite(plan.predictedTokensPerSecond) && plan.predictedTokensPerSecond > 0);
        assert.match(s.stderr(), /group .+: one all-reduce of a token took [\d.]+ ms \(estimated [\d.]+ ms\)/);
        const r = await complete(s.url, 'hello', 40);
        assert.equal(r.status, 200, r.error);
        assert.equal(r.text, expected);
        // The status shows the ranks and the measured one-stream speed beside the prediction.
        const measured = (await status(s.url)).plan!.measuredTokensPerSecond;
        assert.ok(measured !== undefined && measured > 0, `measured ${measured}`);
        const shown = execFileSync(process.execPath, [join(ROOT, 'bin/cairn.js'), 'cluster', 'status', '--url', s.url], {
          encoding: 'utf8',
        });
        assert.match(shown, new RegExp(`rank ${ranks}/${ranks} \\(\\d+% of each layer\\)`));
        assert.match(shown, /one stream predicted [\d.]+ tok\/s, measured [\d.]+ tok\/s/);
        assert.match(shown, /group .+: one all-reduce of a token [\d.]+ ms measured \([\d.]+ ms estimated from the links\)/);
        // Two requests at once: steps of both sequences go through the group together.
        const both = await Promise.all([complete(s.url, 'hello', 20), complete(s.url, 'world', 20)]);
        assert.deepEqual(
          both.map((x) => x.text),
          [generate('hello', 20), generate('world', 20)],
        );
      },
    );
  });
}

test('shares follow each node\'s measured speed and its part of the machine: the faster node gets the larger share', { timeout: 180_000 }, async () => {
  // One node computes with 2 threads, the other with 1: the measured speeds differ, so do the shares.
  await withGroup(
    [
      ['--threads', '1'],
      ['--threads', '2'],
    ],
    async (s) => {
      const st = await status(s.url);
      // Both nodes run on this machine and report its speed on all its cores: the planner slows both
      // by the same factor where their speeds add up to more than the machine's (planner/rates.ts),
      // so the speeds that set the shares are the measured bytes/s.
      const speed = (id: string) => st.nodes.find((x) => x.id === id)!.bytesPerSecond;
      const [a, b] = st.plan!.stages;
      const ratio = speed(a.nodeId) / speed(b.nodeId);
      assert.ok(Math.abs(a.splitShare + b.splitShare - 1) < 1e-9, 'the shares cover every layer');
      // Memory is ample here, so nothing caps a share: the shares are in proportion to the speeds.
      assert.ok(
        Math.abs(a.splitShare / b.splitShare / ratio - 1) < 1e-6,
        `shares ${a.splitShare.toFixed(3)}:${b.splitShare.toFixed(3)} follow speeds ${ratio.toFixed(3)}:1`,
      );
      if (ratio !== 1) assert.equal(ratio > 1, a.splitShare > b.splitShare, 'the faster node holds more');
      const r = await complete(s.url, 'hello', 10);
      assert.equal(r.status, 200, r.error);
    },
  );
});

test(
  'a rank that dies mid-request: the request ends with a clear error or resumes, and the server keeps serving',
  { timeout: 180_000 },
  async () => {
    await withGroup([[], [], []], async (s, nodes) => {
      const pending = complete(s.url, 'hello', 200);
      await new Promise((r) => setTimeout(r, 300));
      await nodes[2].stop();
      const r = await pending;
      // Two ranks are left: the coordinator plans again over them, and the request resumes or fails.
      if (r.status !== 200) assert.match(r.error ?? '', /node|cluster|plan/i);
      const after = await complete(s.url, 'hello', 10);
      assert.equal(after.status, 200, after.error);
      assert.equal(after.text, generate('hello', 10));
      const st = await status(s.url);
      assert.equal(st.plan!.stages.length, 2);
    });
  },
);

test('the coordinator as rank 0 and one node split every layer and give the single-node greedy tokens; losing the node, the coordinator serves alone', { timeout: 240_000 }, async () => {
  const expected = generate('hello', 30);
  const node = await startNode([], { env });
  const s = await startServer(['-m', model, '--cluster', '--parallelism', 'tensor', '--peers', node.peer, '--ctx', '256'], env);
  try {
    await s.ready();
    const st = await status(s.url);
    assert.deepEqual(
      st.plan!.stages.map((x) => [x.name, x.splitRank, x.splitCount]),
      [
        ['coordinator', 0, 2],
        [st.nodes.find((n) => !n.local)!.name, 1, 2],
      ],
    );
    const r = await complete(s.url, 'hello', 30);
    assert.equal(r.status, 200, r.error);
    assert.equal(r.text, expected);
    const both = await Promise.all([complete(s.url, 'hello', 12), complete(s.url, 'world', 12)]);
    assert.deepEqual(
      both.map((x) => x.text),
      [generate('hello', 12), generate('world', 12)],
    );
    assert.match(node.stderr(), /as rank 2 of 2/);
    // A long prompt: each partial sum of its first step is larger than 64 KiB.
    const long = 'hello world, the cat sat on the mat. '.repeat(4);
    const longR = await complete(s.url, long, 8);
    assert.equal(longR.status, 200, longR.error);
    assert.equal(longR.text, generate(long, 8));
    // The node goes: a tensor plan needs two nodes, so the coordinator reports it cannot run the
    // plan asked for, and requests fail with that reason rather than hang.
    await node.stop();
    const after = await complete(s.url, 'hello', 5);
    assert.notEqual(after.status, 200);
    assert.match(after.error ?? '', /at least 2 nodes/);
  } finally {
    await s.stop();
    await node.stop();
  }
});

test('three ranks that add up their partial sums around a ring give the single-node greedy tokens', { timeout: 240_000 }, async () => {
  const expected = generate('hello', 30);
  await withGroup(
    [[], [], []],
    async (s, nodes) => {
      const r = await complete(s.url, 'hello', 30);
      assert.equal(r.status, 200, r.error);
      assert.equal(r.text, expected);
      for (const n of nodes) assert.match(n.stderr(), /as rank [123] of 3 \(partial sums in f32; ring all-reduce\)/);
    },
    ['--all-reduce', 'ring'],
  );
});

test(
  'ranks that exchange q8 partial sums serve completions (their exactness: src/mesh/exchange-codec.test.ts)',
  { timeout: 180_000 },
  async () => {
    await withGroup(
      [[], []],
      async (s, nodes) => {
        const r = await complete(s.url, 'hello', 20);
        assert.equal(r.status, 200, r.error);
        assert.ok(r.text.length > 0);
        for (const n of nodes) assert.match(n.stderr(), /as rank [12] of 2 \(partial sums in q8\)/);
      },
      ['--exchange', 'q8'],
    );
  },
);

test(
  'a hybrid plan (the coordinator holds the first layers, a group of 2 nodes the rest) gives the single-node greedy tokens',
  { timeout: 180_000 },
  async () => {
    const nodes: NodeProcess[] = [];
    let server: ServerProcess | undefined;
    try {
      for (let i = 0; i < 2; i++) nodes.push(await startNode([], { env }));
      server = await startServer(
        ['-m', model, '--cluster', '--parallelism', 'hybrid', '--peers', nodes.map((n) => n.peer).join(','), '--ctx', '256'],
        env,
      );
      await server.ready();
      const stages = (await status(server.url)).plan!.stages;
      assert.equal(stages.length, 3);
      assert.deepEqual(
        stages.map((x) => [x.splitRank, x.splitCount]),
        [
          [0, 1],
          [0, 2],
          [1, 2],
        ],
      );
      assert.ok(stages[0].layerStart === 0 && stages[0].layerEnd === stages[1].layerStart && stages[1].layerEnd === 4);
      const r = await complete(server.url, 'hello', 30);
      assert.equal(r.status, 200, r.error);
      assert.equal(r.text, generate('hello', 30));
    } finally {
      await server?.stop();
      await Promise.all(nodes.map((n) => n.stop()));
    }
  },
);
