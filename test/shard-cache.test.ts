/**
 * The shard cache of a real `cairn node` against a hostile peer that holds the cluster key (a
 * hand-written coordinator speaking the mesh protocol): it cannot write or read outside the cache,
 * it cannot plant a shard that a legitimate coordinator later serves, bad fields fail only their
 * request, a transfer that stops leaves no partial file, a cached shard changed on disk is found
 * out and named, and the cache's size limit refuses what cannot fit.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join, relative } from 'node:path';
import { connectPeer, frameJson, jsonPayload, type PeerConnection } from '../src/cluster/index.js';
import { GgmlType, ggmlRowBytes } from '../src/gguf/ggml-types.js';
import { readGguf } from '../src/gguf/reader.js';
import { ggufLayout } from '../src/gguf/writer.js';
import { createKernels } from '../src/kernels/index.js';
import { MESH_COMPATIBILITY } from '../src/mesh/node.js';
import { MeshFrame } from '../src/mesh/protocol.js';
import { shardTensors } from '../src/mesh/shard-files.js';
import { writeSyntheticModel } from '../src/model/synthetic.js';
import { ROOT, scratchDir } from './helpers/paths.js';
import { startNode, type NodeProcess } from './helpers/node.js';
import { startServer } from './helpers/server.js';

const dir = scratchDir('shard-cache');
const KEY = 'shard-cache-test-key-0123456789abcdef';
const synthetic = join(dir, 'synthetic.gguf');
const impostor = join(dir, 'impostor.gguf');
const N_LAYER = 6;
let modelSha = '';
let expected = '';

before(() => {
  mkdirSync(dir, { recursive: true });
  const kernels = createKernels();
  const quantize = (type: GgmlType, src: Float32Array) => {
    const out = new Uint8Array(ggmlRowBytes(type, src.length));
    kernels.quantize(type, src, out, src.length);
    return out;
  };
  const shape = { arch: 'llama', nEmbd: 256, nLayer: N_LAYER, nHead: 4, nKvHead: 2, nFf: 512, nVocab: 500, quant: GgmlType.Q8_0 } as const;
  writeSyntheticModel(synthetic, { ...shape, seed: 31 }, quantize);
  // Same shapes, other weights: what a hostile peer would pass off as the real model.
  writeSyntheticModel(impostor, { ...shape, seed: 32 }, quantize);
  modelSha = createHash('sha256').update(readFileSync(synthetic)).digest('hex');
  expected = JSON.parse(
    execFileSync(process.execPath, [join(ROOT, 'bin/cairn.js'), 'generate', '-m', synthetic, '-p', 'hello', '-n', '16', '--temperature', '0', '--ignore-eos', '--json', '--ctx', '256'], {
      encoding: 'utf8',
    }),
  ).text as string;
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** A node with its own cache folder (XDG_CACHE_HOME under `name`), reachable with KEY on loopback. */
async function nodeIn(name: string, args: string[] = []): Promise<{ node: NodeProcess; env: NodeJS.ProcessEnv; shards: string }> {
  const env = { XDG_CACHE_HOME: join(dir, name), CAIRN_CLUSTER_KEY: KEY };
  const shards = join(env.XDG_CACHE_HOME, 'cairn', 'shards');
  mkdirSync(shards, { recursive: true });
  return { node: await startNode(['--host', '127.0.0.1', ...args], { env }), env, shards };
}

function hostile(node: NodeProcess): Promise<PeerConnection> {
  return connectPeer('127.0.0.1', node.port, { nodeId: 'hostile', name: 'hostile', clusterKey: KEY, compatibility: MESH_COMPATIBILITY });
}

async function ask(conn: PeerConnection, type: number, value: unknown): Promise<unknown> {
  const p = jsonPayload(value);
  return frameJson(await conn.request(type, p.meta, p.payload, { timeoutMs: 30_000 }));
}

/** A whole shard file of `path` in memory, with the transfer announcement a coordinator would send. */
function shardOf(path: string, claimedSha: string, start: number, end: number): { begin: Record<string, unknown>; bytes: Buffer } {
  const file = readGguf(path);
  const data = readFileSync(path);
  const tensors = shardTensors(file, N_LAYER, start, end);
  const layout = ggufLayout({ version: 3, alignment: file.alignment, metadata: file.metadata, tensors: tensors.map((t) => ({ name: t.name, type: t.type, dims: t.dims })) });
  const bytes = Buffer.alloc(layout.fileSize);
  bytes.set(layout.header, 0);
  tensors.forEach((t, i) => bytes.set(data.subarray(t.offset, t.offset + t.byteLength), layout.tensors[i].offset));
  const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
  const begin = {
    modelSha256: claimedSha,
    layerStart: start,
    layerEnd: end,
    fileSize: layout.fileSize,
    headerSha256: sha(layout.header),
    tensors: tensors.map((t, i) => ({ name: t.name, offset: layout.tensors[i].offset, byteLength: t.byteLength, sha256: sha(data.subarray(t.offset, t.offset + t.byteLength)) })),
  };
  return { begin, bytes };
}

async function sendChunks(conn: PeerConnection, bytes: Uint8Array, upTo = bytes.length): Promise<void> {
  let seq = 0;
  for (let o = 0; o < upTo; o += 1 << 20) await conn.write(MeshFrame.shardChunk, { sequence: seq++ }, bytes.subarray(o, Math.min(upTo, o + (1 << 20))));
}

function filesUnder(d: string): string[] {
  return existsSync(d) ? readdirSync(d, { recursive: true }).map(String) : [];
}

async function waitFor(what: string, ok: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) assert.fail(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function complete(env: NodeJS.ProcessEnv, peers: string): Promise<{ text: string; stderr: string }> {
  const s = await startServer(['-m', synthetic, '--cluster', '--peers', peers, '--no-local-compute', '--ctx', '256'], env);
  try {
    await s.ready();
    const r = await fetch(`${s.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'synthetic', prompt: 'hello', max_tokens: 16, temperature: 0, ignore_eos: true }),
    });
    assert.equal(r.status, 200);
    return { text: ((await r.json()) as { choices: { text: string }[] }).choices[0].text, stderr: s.stderr() };
  } finally {
    await s.stop();
  }
}

test('a peer cannot write or read outside the shard cache, and bad fields fail only their request', { timeout: 60_000 }, async () => {
  const { node, shards } = await nodeIn('outside');
  const escape = join(dir, 'escape');
  mkdirSync(escape, { recursive: true });
  const conn = await hostile(node);
  try {
    const { begin } = shardOf(synthetic, modelSha, 0, N_LAYER);
    // The layer numbers went into the partial file's name: "/../<path>" put it wherever the peer liked.
    await assert.rejects(ask(conn, MeshFrame.shardBegin, { ...begin, layerStart: `/../${relative(shards, escape)}/pwn` }), /layerStart/);
    assert.deepEqual(filesUnder(escape), [], 'nothing was written outside the cache');
    await assert.rejects(ask(conn, MeshFrame.shardBegin, { ...begin, layerEnd: `1/../${relative(shards, escape)}/pwn` }), /layerEnd/);
    assert.deepEqual(filesUnder(escape), [], 'nothing was written outside the cache');
    // The model hash went into the path of a cached shard: a GGUF file anywhere loaded as one.
    copyFileSync(synthetic, join(escape, `m-0-${N_LAYER}.gguf`));
    const load = { modelSha256: relative(shards, join(escape, 'm')), modelName: 'x', layerStart: 0, layerEnd: N_LAYER, ctx: 64, slots: 1, kvType: 1, maxBatch: 16, epoch: 1 };
    await assert.rejects(ask(conn, MeshFrame.load, load), /modelSha256/);
    // Every other field is checked too; each bad one fails its own request and nothing else.
    const badBegins: Record<string, unknown>[] = [
      { ...begin, fileSize: -1 },
      { ...begin, fileSize: 2 ** 62 },
      { ...begin, tensors: 'all' },
      { ...begin, tensors: [{ ...(begin.tensors as object[])[0], name: '../../x' }] },
      { ...begin, tensors: [{ ...(begin.tensors as object[])[0], offset: -100 }] },
      { ...begin, tensors: [...(begin.tensors as object[]), ...(begin.tensors as object[])] },
      { ...begin, headerSha256: 'nope' },
    ];
    for (const b of badBegins) await assert.rejects(ask(conn, MeshFrame.shardBegin, b), /shard transfer: /, JSON.stringify(b).slice(0, 120));
    const goodLoad = { ...load, modelSha256: modelSha };
    for (const patch of [{ ctx: -5 }, { slots: 1e9 }, { kvType: 77 }, { maxBatch: 'lots' }, { layerStart: '0' }, { next: { host: 'x', port: -1, nodeId: 'n' } }, { epoch: null }]) {
      await assert.rejects(ask(conn, MeshFrame.load, { ...goodLoad, ...patch }), /load request: /, JSON.stringify(patch));
    }
    await assert.rejects(ask(conn, MeshFrame.load, goodLoad), /no shard manifest/);
    await assert.rejects(ask(conn, MeshFrame.shardEnd, {}), /without a transfer/);
    const info = (await ask(conn, MeshFrame.info, {})) as { port: number };
    assert.equal(info.port, node.port, 'the node still answers');
    assert.deepEqual(filesUnder(escape), [`m-0-${N_LAYER}.gguf`]);
    assert.equal(node.proc.exitCode, null);
  } finally {
    conn.close();
    await node.stop();
  }
});

test('a transfer that stops leaves no partial file: its connection closing, the node stopping, or a crash before', { timeout: 60_000 }, async () => {
  const env = { XDG_CACHE_HOME: join(dir, 'stops'), CAIRN_CLUSTER_KEY: KEY };
  const shards = join(env.XDG_CACHE_HOME, 'cairn', 'shards');
  mkdirSync(shards, { recursive: true });
  const gone = spawnSync(process.execPath, ['-e', '']).pid!;
  writeFileSync(join(shards, `.${'e'.repeat(64)}.${gone}.1.part`), 'left by a crash');
  writeFileSync(join(shards, `.${'e'.repeat(64)}-0-6.gguf.${gone}.part`), 'left by a crash');
  const parts = () => filesUnder(shards).filter((n) => n.endsWith('.part'));
  const { begin, bytes } = shardOf(synthetic, modelSha, 0, N_LAYER);
  const node = await startNode(['--host', '127.0.0.1'], { env });
  try {
    assert.deepEqual(parts(), [], 'partial files of a crashed run are removed at start');
    let conn = await hostile(node);
    await ask(conn, MeshFrame.shardBegin, begin);
    await sendChunks(conn, bytes, 3 << 20);
    await waitFor('the partial file appears', () => parts().length === 1);
    conn.destroy('gone mid-transfer');
    await waitFor('the partial file of a dropped connection is removed', () => parts().length === 0);
    conn = await hostile(node);
    await ask(conn, MeshFrame.shardBegin, begin);
    await sendChunks(conn, bytes, 2 << 20);
    await waitFor('the partial file appears', () => parts().length === 1);
    const exited = new Promise((r) => node.proc.once('exit', r));
    node.proc.kill('SIGTERM');
    await exited;
    assert.deepEqual(parts(), [], 'a node stopping removes its partial file');
  } finally {
    await node.stop();
  }
});

test('a shard planted by a hostile peer under the model\'s hash is never served', { timeout: 120_000 }, async () => {
  const { node, env } = await nodeIn('poison');
  try {
    const conn = await hostile(node);
    // The impostor's bytes, with hashes that match them, announced as layers 0-5 of the real model.
    const { begin, bytes } = shardOf(impostor, modelSha, 0, N_LAYER);
    await ask(conn, MeshFrame.shardBegin, begin);
    await sendChunks(conn, bytes);
    await ask(conn, MeshFrame.shardEnd, {});
    conn.close();
    const { text } = await complete(env, node.peer);
    assert.equal(text, expected, 'the legitimate coordinator gets the real model\'s text');
  } finally {
    await node.stop();
  }
});

test('a cached shard changed on disk is found out, the tensor named, and the shard sent again', { timeout: 120_000 }, async () => {
  const { node, env, shards } = await nodeIn('tamper');
  try {
    assert.equal((await complete(env, node.peer)).text, expected);
    const cached = filesUnder(shards).filter((n) => n.endsWith('.gguf'));
    assert.equal(cached.length, 1);
    const path = join(shards, cached[0]);
    const victim = readGguf(path).tensors.find((t) => t.name === 'blk.3.ffn_down.weight')!;
    const one = Buffer.from([readFileSync(path)[victim.offset + 11] ^ 0x20]);
    const fd = openSync(path, 'r+');
    writeSync(fd, one, 0, 1, victim.offset + 11);
    closeSync(fd);
    const again = await complete(env, node.peer);
    assert.equal(again.text, expected);
    assert.match(node.stderr(), /tensor "blk\.3\.ffn_down\.weight" does not match/);
    assert.match(again.stderr, /tensor "blk\.3\.ffn_down\.weight" does not match/, 'the coordinator is told too');
    assert.equal(node.stderr().match(/receiving layers 0-5/g)?.length, 2, 'sent again');
  } finally {
    await node.stop();
  }
});

test('--cache-max-bytes: a shard larger than the cache may hold is refused with a clear error', { timeout: 60_000 }, async () => {
  const { node, env } = await nodeIn('small', ['--cache-max-bytes', String(1 << 20)]);
  try {
    const s = await startServer(['-m', synthetic, '--cluster', '--peers', node.peer, '--no-local-compute', '--ctx', '256'], env);
    const code = await new Promise<number | null>((r) => s.proc.on('exit', (c) => r(c)));
    assert.equal(code, 1);
    assert.match(s.stderr(), /cannot fit in this node's shard cache of 1\.0 MiB \(--cache-max-bytes\)/);
    assert.equal(node.proc.exitCode, null);
  } finally {
    await node.stop();
  }
});
