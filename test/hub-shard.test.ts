/**
 * Nodes that lack a model fetch only their shard from the hub: a coordinator serving a model it
 * pulled (from a local imitation of the Hugging Face hub) plans over two real `cairn node`
 * processes without the model. The node that can reach the hub reads its GGUF header and its own
 * layers' tensors there and nothing of other layers (the hub's log of served byte ranges shows
 * it); the node that cannot reach the hub is sent its shard by the coordinator instead; answers
 * equal one process's. A hub that serves other bytes than the coordinator's model (the same
 * header, other weights) is caught by the coordinator's hashes and the shard comes from the
 * coordinator.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { GgmlType } from '../src/gguf/ggml-types.js';
import { readGguf } from '../src/gguf/reader.js';
import { writeSyntheticModel } from '../src/model/synthetic.js';
import { complete, status } from './helpers/cluster-client.js';
import { quantizeWithKernels } from './helpers/oracle-greedy.js';
import { startMockHub, type MockHub } from './helpers/mock-hub.js';
import { startNode, type NodeProcess } from './helpers/node.js';
import { ROOT, scratchDir } from './helpers/paths.js';
import { startServer } from './helpers/server.js';

const run = promisify(execFile);
const dir = scratchDir('hub-shard');
const KEY = 'hub-shard-test-key-0123456789abcdef';
const REPO = 'tester/six-layers-GGUF';
const FILE = 'six-layers-Q8_0.gguf';
const model = join(dir, FILE);
const impostor = join(dir, 'impostor.gguf');
let hub: MockHub;
let expected = '';

before(async () => {
  mkdirSync(dir, { recursive: true });
  // 6 layers of about 1.6 MiB each (Q8_0), so memory limits of a few MiB shape the plan.
  const shape = { arch: 'llama', nEmbd: 512, nLayer: 6, nHead: 8, nKvHead: 4, nFf: 1024, nVocab: 1000, quant: GgmlType.Q8_0 } as const;
  writeSyntheticModel(model, { ...shape, seed: 41 }, quantizeWithKernels);
  writeSyntheticModel(impostor, { ...shape, seed: 42 }, quantizeWithKernels);
  hub = await startMockHub({
    [REPO]: { files: { [FILE]: new Uint8Array(readFileSync(model)) } },
    // Same name and header, other weights: what a hub serving something else would give.
    ['tester/impostor-GGUF']: { files: { [FILE]: new Uint8Array(readFileSync(impostor)) } },
  });
  const { stdout } = await run(process.execPath, [join(ROOT, 'bin/cairn.js'), 'generate', '-m', model, '-p', 'hello', '-n', '16', '--temperature', '0', '--ignore-eos', '--json', '--ctx', '256']);
  expected = (JSON.parse(stdout) as { text: string }).text;
});

after(async () => {
  await hub?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Tensor byte ranges of layers outside [start, end) in the model file. */
function otherLayers(start: number, end: number): { name: string; from: number; to: number }[] {
  return readGguf(model)
    .tensors.map((t) => ({ t, layer: /^blk\.(\d+)\./.exec(t.name) }))
    .filter(({ layer }) => layer !== null && (Number(layer[1]) < start || Number(layer[1]) >= end))
    .map(({ t }) => ({ name: t.name, from: t.offset, to: t.offset + t.byteLength }));
}

test('a node fetches only its own tensors from the hub; one that cannot reach it is sent them', { timeout: 180_000 }, async () => {
  const home = join(dir, 'coordinator-home');
  const coordEnv = { CAIRN_HOME: home, XDG_CACHE_HOME: join(dir, 'coordinator-cache'), HF_ENDPOINT: hub.url, CAIRN_CLUSTER_KEY: KEY };
  await run(process.execPath, [join(ROOT, 'bin/cairn.js'), 'pull', `hf:${REPO}:Q8_0`], { env: { ...process.env, ...coordEnv } });
  const pulled = hub.log.length;
  const nodes: NodeProcess[] = [];
  try {
    // Room for about 3 of the 6 layers each, and the coordinator holds none: both nodes hold layers.
    nodes.push(
      await startNode(['--host', '127.0.0.1', '--name', 'online', '--max-memory', String(84 << 20)], {
        env: { XDG_CACHE_HOME: join(dir, 'online-cache'), CAIRN_CLUSTER_KEY: KEY, HF_ENDPOINT: hub.url },
      }),
    );
    nodes.push(
      await startNode(['--host', '127.0.0.1', '--name', 'offline', '--max-memory', String(84 << 20)], {
        env: { XDG_CACHE_HOME: join(dir, 'offline-cache'), CAIRN_CLUSTER_KEY: KEY, HF_ENDPOINT: 'http://127.0.0.1:1' },
      }),
    );
    const s = await startServer(['-m', `hf:${REPO}:Q8_0`, '--cluster', '--peers', nodes.map((n) => n.peer).join(','), '--no-local-compute', '--ctx', '256'], coordEnv);
    try {
      await s.ready(120_000);
      const st = await status(s.url);
      const online = st.plan!.stages.find((x) => x.name === 'online');
      const offline = st.plan!.stages.find((x) => x.name === 'offline');
      assert.ok(online && offline, `both nodes hold layers: ${JSON.stringify(st.plan!.stages)}`);
      assert.equal((await complete(s.url, 'hello', 16)).text, expected);
      assert.match(s.stderr(), /online fetched layers \d+-\d+ from the hub/);
      assert.match(s.stderr(), /offline could not fetch layers \d+-\d+ from the hub/);
      assert.match(s.stderr(), /offline lacks the model; sending the tensors/);
      // What the node read: its header and its layers, never another layer's bytes.
      const reads = hub.log.slice(pulled).filter((r) => r.path === FILE);
      assert.ok(reads.length > 0, 'the node read from the hub');
      // At most its header and the tensors that are not another stage's layers, so less than the file.
      const file = readGguf(model);
      const others = otherLayers(online.layerStart, online.layerEnd);
      const own = file.tensors.filter((t) => !others.some((o) => o.name === t.name)).reduce((a, t) => a + t.byteLength, 0);
      const bytes = reads.reduce((a, r) => a + (r.end - r.start), 0);
      assert.ok(bytes <= file.dataOffset + own && bytes < file.fileSize, `read ${bytes} bytes; its header and tensors are ${file.dataOffset + own} of ${file.fileSize}`);
      for (const r of reads) {
        for (const t of otherLayers(online.layerStart, online.layerEnd)) {
          assert.ok(r.end <= t.from || r.start >= t.to, `read [${r.start}, ${r.end}) overlaps ${t.name} of another stage`);
        }
      }
    } finally {
      await s.stop();
    }
  } finally {
    for (const n of nodes) await n.stop();
  }
});

test('bytes from the hub that are not the coordinator\'s model are refused, and the coordinator sends the shard', { timeout: 180_000 }, async () => {
  // The coordinator's store says its model came from the impostor repository, whose file has the
  // same header but other weights: the node's fetch must fail on the first tensor's hash.
  const home = join(dir, 'impostor-home');
  const coordEnv = { CAIRN_HOME: home, XDG_CACHE_HOME: join(dir, 'impostor-cache'), HF_ENDPOINT: hub.url, CAIRN_CLUSTER_KEY: KEY };
  await run(process.execPath, [join(ROOT, 'bin/cairn.js'), 'pull', `hf:${REPO}:Q8_0`], { env: { ...process.env, ...coordEnv } });
  const record = join(home, 'models');
  const { readdirSync, writeFileSync } = await import('node:fs');
  for (const name of readdirSync(record)) {
    const path = join(record, name);
    const m = JSON.parse(readFileSync(path, 'utf8')) as { source: { repo: string; commit: string } };
    m.source.repo = 'tester/impostor-GGUF';
    m.source.commit = (await (await fetch(`${hub.url}/api/models/tester/impostor-GGUF/revision/main`)).json() as { sha: string }).sha;
    writeFileSync(path, JSON.stringify(m));
  }
  const node = await startNode(['--host', '127.0.0.1', '--name', 'fooled'], {
    env: { XDG_CACHE_HOME: join(dir, 'fooled-cache'), CAIRN_CLUSTER_KEY: KEY, HF_ENDPOINT: hub.url },
  });
  try {
    const s = await startServer(['-m', `hf:${REPO}:Q8_0`, '--cluster', '--peers', node.peer, '--no-local-compute', '--ctx', '256'], coordEnv);
    try {
      await s.ready(120_000);
      assert.equal((await complete(s.url, 'hello', 16)).text, expected);
      assert.match(s.stderr(), /fooled could not fetch layers 0-5 from the hub: .*(SHA-256|hash|differ)/i);
      assert.match(s.stderr(), /fooled lacks the model; sending the tensors/);
    } finally {
      await s.stop();
    }
  } finally {
    await node.stop();
  }
});
