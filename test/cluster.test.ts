/**
 * The cluster with real processes on loopback: `cairn node` children and a `cairn serve --cluster`
 * coordinator. Greedy output over 1, 2 and 3 stages equals single-node `cairn generate`; memory
 * limits shape the plan; weights reach nodes from their own copy, over the network, or from their
 * shard cache; a wrong key is refused. (Nodes lost at any moment: cluster-resume.test.ts.)
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { GgmlType, ggmlRowBytes } from '../src/gguf/ggml-types.js';
import { createKernels } from '../src/kernels/index.js';
import { writeSyntheticModel } from '../src/model/synthetic.js';
import { fixture, ROOT, scratchDir } from './helpers/paths.js';
import { startNode } from './helpers/node.js';
import { startServer } from './helpers/server.js';
import { clusterRunner, clusterStatus } from './helpers/cluster.js';

const dir = scratchDir('cluster');
const cache = join(dir, 'cache');
const env = { XDG_CACHE_HOME: cache };
const synthetic = join(dir, 'synthetic.gguf');
const stories = fixture('models/stories260K.gguf');

before(() => {
  mkdirSync(cache, { recursive: true });
  const kernels = createKernels();
  // 6 layers of about 1.6 MiB each (Q8_0), so memory limits of a few MiB shape the plan.
  writeSyntheticModel(synthetic, { arch: 'llama', nEmbd: 512, nLayer: 6, nHead: 8, nKvHead: 4, nFf: 1024, nVocab: 1000, quant: GgmlType.Q8_0, seed: 21 }, (type, src) => {
    const out = new Uint8Array(ggmlRowBytes(type, src.length));
    kernels.quantize(type, src, out, src.length);
    return out;
  });
});
after(() => rmSync(dir, { recursive: true, force: true }));

function generate(model: string, prompt: string, n: number): string {
  return JSON.parse(
    execFileSync(process.execPath, [join(ROOT, 'bin/cairn.js'), 'generate', '-m', model, '-p', prompt, '-n', String(n), '--temperature', '0', '--ignore-eos', '--json', '--ctx', '256'], { encoding: 'utf8' }),
  ).text as string;
}

async function complete(url: string, model: string, prompt: string, n: number): Promise<{ status: number; text: string }> {
  const r = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model, prompt, max_tokens: n, temperature: 0, ignore_eos: true }) });
  const j = (await r.json()) as { choices?: { text: string }[] };
  return { status: r.status, text: j.choices?.[0]?.text ?? '' };
}

const status = clusterStatus;
const withCluster = clusterRunner(env);

const models: [string, () => string | undefined, string][] = [
  ['stories260K', () => stories, 'Once upon a time'],
  ['synthetic', () => synthetic, 'hello'],
];

for (const [name, path, prompt] of models) {
  describe(`${name}: greedy tokens over 1, 2 and 3 stages equal single-node cairn generate`, { skip: name === 'stories260K' && !stories ? 'stories260K fixture absent' : false }, () => {
    let expected = '';
    before(() => {
      expected = generate(path()!, prompt, 40);
    });
    for (const [label, nodeCount, local] of [
      ['1 stage (a node; the coordinator only coordinates)', 1, false],
      ['2 stages (coordinator + 1 node)', 1, true],
      ['3 stages (coordinator + 2 nodes)', 2, true],
    ] as const) {
      test(label, { timeout: 240_000 }, async () => {
        // The plan follows measured speeds: on a busy machine a node may measure so slow that it
        // rightly gets no layers. Up to three clusters are started to see the wanted stage count.
        const wanted = nodeCount + (local ? 1 : 0);
        for (let attempt = 1; ; attempt++) {
          const done = await withCluster(
            Array.from({ length: nodeCount }, () => []),
            ['-m', path()!, ...(local ? [] : ['--no-local-compute'])],
            async (s) => {
              const st = await status(s.url);
              if (st.plan!.stages.length !== wanted && attempt < 3) return false;
              assert.equal(st.plan!.stages.length, wanted);
              const r = await complete(s.url, name, prompt, 40);
              assert.equal(r.status, 200);
              assert.equal(r.text, expected);
              return true;
            },
          );
          if (done) break;
        }
      });
    }
  });
}

test('uneven memory limits give uneven, correct splits', { timeout: 120_000 }, async () => {
  const expected = generate(synthetic, 'hello', 30);
  // Room for about 1 and 3 of the 6 layers; the coordinator takes the rest.
  await withCluster([['--max-memory', String(70 << 20)], ['--max-memory', String(74 << 20)]], ['-m', synthetic], async (s) => {
    const st = await status(s.url);
    const layers = st.plan!.stages.map((x) => x.layerEnd - x.layerStart);
    assert.equal(layers.reduce((a, b) => a + b, 0), 6);
    assert.ok(new Set(layers).size > 1, `split ${layers.join('/')} is uneven`);
    for (const stage of st.plan!.stages) {
      const node = st.nodes.find((n) => n.id === stage.nodeId)!;
      assert.ok(stage.memoryBytes <= node.memoryBytes, `${node.name} holds no more than it offers`);
    }
    assert.equal((await complete(s.url, 'synthetic', 'hello', 30)).text, expected);
  });
});

test('weights come from the node\'s own copy, else over the network, and then from its shard cache', { timeout: 120_000 }, async () => {
  const modelsDir = join(dir, 'models');
  mkdirSync(modelsDir, { recursive: true });
  copyFileSync(synthetic, join(modelsDir, 'copy.gguf'));
  await withCluster([['--models-dir', modelsDir]], ['-m', synthetic], async (_s, [n]) => {
    assert.match(n.stderr(), /loading layers \d+-\d+ of synthetic\.gguf from .*copy\.gguf/);
  });
  const shardHome = join(dir, 'shards-node');
  const args = ['--models-dir', shardHome];
  mkdirSync(shardHome, { recursive: true });
  // The node holds every layer, so both starts ask it for the same shard whatever speeds measure.
  await withCluster([args], ['-m', synthetic, '--no-local-compute'], async (_s, [n]) => {
    assert.match(n.stderr(), /receiving layers 0-5/);
    assert.match(n.stderr(), /from the shard cache/);
  });
  await withCluster([args], ['-m', synthetic, '--no-local-compute'], async (_s, [n]) => {
    assert.doesNotMatch(n.stderr(), /receiving layers/, 'the second start needs no transfer');
    assert.match(n.stderr(), /from the shard cache/);
  });
});

test('a node with another cluster key is refused, and the plan does without it', { timeout: 60_000 }, async () => {
  const node = await startNode(['--cluster-key', 'alpha cluster passphrase', '--host', '127.0.0.1'], { env });
  try {
    const s = await startServer(['-m', synthetic, '--cluster', '--peers', node.peer, '--cluster-key', 'beta cluster passphrase', '--ctx', '256'], env);
    try {
      await s.ready();
      assert.match(s.stderr(), /not used: .*(key|auth)/i);
      const st = await status(s.url);
      assert.deepEqual(
        st.plan!.stages.map((x) => x.name),
        ['coordinator'],
      );
    } finally {
      await s.stop();
    }
    // With no local compute and only that node, serving cannot start: it says why.
    const none = await startServer(['-m', synthetic, '--cluster', '--peers', node.peer, '--cluster-key', 'beta cluster passphrase', '--no-local-compute'], env);
    const code = await new Promise<number | null>((r) => none.proc.on('exit', (c) => r(c)));
    assert.equal(code, 1);
    assert.match(none.stderr(), /no nodes to run the model on/);
  } finally {
    await node.stop();
  }
});

test('with many sequences in flight the stages pipeline them, and every output equals its serial run', { timeout: 120_000 }, async () => {
  const prompts = ['hello', 'a', 'the cat', 'zz top', 'once', 'xyz', 'b c d', 'ok'];
  const serial = prompts.map((p) => generate(synthetic, p, 16));
  await withCluster([[], []], ['-m', synthetic, '--parallel', '8'], async (s) => {
    const together = await Promise.all(prompts.map((p) => complete(s.url, 'synthetic', p, 16)));
    assert.deepEqual(
      together.map((r) => r.text),
      serial,
    );
  });
});

test('activations as f16 between stages (for slow links): half the bytes, and stories260K still gives its greedy text', { timeout: 120_000, skip: stories ? false : 'stories260K fixture absent' }, async () => {
  const expected = generate(stories!, 'Once upon a time', 40);
  await withCluster([[]], ['-m', stories!, '--activations', 'f16'], async (s) => {
    assert.equal((await status(s.url)).plan!.activationDtype, 'f16');
    assert.equal((await complete(s.url, 'stories260K', 'Once upon a time', 40)).text, expected);
  });
});

test('a scored prompt (echo with logprobs) over a cluster gives the single machine its scores, and a request beside it goes on', { timeout: 240_000 }, async () => {
  // More rows of logits in one step than there are slots: the prompt's every row comes back.
  const body = { model: 'synthetic', prompt: 'hello world this is a prompt of some words to score', max_tokens: 0, echo: true, logprobs: 1 };
  const score = async (url: string) => {
    const r = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const j = (await r.json()) as { choices?: { logprobs: { token_logprobs: (number | null)[] } }[] };
    return { status: r.status, lps: j.choices?.[0]?.logprobs.token_logprobs ?? [] };
  };
  const single = await startServer(['-m', synthetic, '--ctx', '256', '--parallel', '2'], env);
  let want: (number | null)[];
  try {
    await single.ready();
    want = (await score(single.url)).lps;
  } finally {
    await single.stop();
  }
  assert.ok(want.length > 4, 'the prompt has more tokens than the cluster has slots');
  await withCluster([[]], ['-m', synthetic, '--parallel', '2', '--no-local-compute'], async (s) => {
    const beside = complete(s.url, 'synthetic', 'hello', 40);
    const got = await score(s.url);
    assert.equal(got.status, 200);
    assert.deepEqual(got.lps, want);
    assert.equal((await beside).status, 200);
    return true;
  });
});
