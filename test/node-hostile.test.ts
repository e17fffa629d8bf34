/**
 * A live `cairn node` against a peer that holds the key but sends what it likes: every malformed
 * step, sequence, KV message and exchange probe fails only itself with a clear error, oversized frames close only
 * that connection, and a seeded stream of random frames never takes the node down. Afterwards the
 * node still loads and runs a correct step.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { connectPeer, DType, type Frame, frameJson, jsonPayload, type PeerConnection } from '../src/cluster/index.js';
import { GgmlType, ggmlRowBytes } from '../src/gguf/ggml-types.js';
import { createKernels } from '../src/kernels/index.js';
import { MAX_PENDING_LOADS, MESH_COMPATIBILITY } from '../src/mesh/node.js';
import { MeshFrame, type ForwardHead, type LoadRequest, type ResultHead } from '../src/mesh/protocol.js';
import { writeSyntheticModel } from '../src/model/synthetic.js';
import { fileSha256 } from '../src/util/file-hash.js';
import { packMessage, unpackMessage } from '../src/util/message-framing.js';
import { isCairnError } from '../src/util/errors.js';
import { Prng } from '../src/util/prng.js';
import { startNode, type NodeProcess } from './helpers/node.js';
import { scratchDir } from './helpers/paths.js';

const dir = scratchDir('node-hostile');
const models = join(dir, 'models');
const model = join(models, 'tiny.gguf');
const N_VOCAB = 300;
const SLOTS = 2;
const MAX_BATCH = 32;
let node: NodeProcess;
let sha = '';

before(async () => {
  mkdirSync(models, { recursive: true });
  const kernels = createKernels();
  writeSyntheticModel(model, { arch: 'llama', nEmbd: 64, nLayer: 2, nHead: 4, nKvHead: 2, nFf: 128, nVocab: N_VOCAB, quant: GgmlType.Q8_0, seed: 17 }, (type, src) => {
    const out = new Uint8Array(ggmlRowBytes(type, src.length));
    kernels.quantize(type, src, out, src.length);
    return out;
  });
  sha = await fileSha256(model);
  node = await startNode(['--models-dir', models, '--host', '127.0.0.1', '--threads', '1', '--max-memory', String(256 << 20)], { env: { XDG_CACHE_HOME: join(dir, 'cache') } });
});
after(async () => {
  await node?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function connect(): Promise<PeerConnection> {
  return connectPeer('127.0.0.1', node.port, { nodeId: 'hostile-coordinator', compatibility: MESH_COMPATIBILITY });
}

async function request(conn: PeerConnection, type: number, value: unknown): Promise<unknown> {
  const p = jsonPayload(value);
  return frameJson(await conn.request(type, p.meta, p.payload, { timeoutMs: 20_000 }));
}

async function load(conn: PeerConnection): Promise<void> {
  const req: LoadRequest = { modelSha256: sha, modelName: 'tiny.gguf', layerStart: 0, layerEnd: 2, ctx: 64, slots: SLOTS, kvType: GgmlType.F16, maxBatch: MAX_BATCH, epoch: 1 };
  assert.deepEqual(await request(conn, MeshFrame.load, req), { status: 'loaded', source: 'model' });
}

/** Sends a step and waits for its result or step error. */
async function step(conn: PeerConnection, head: Record<string, unknown>, body: ArrayBufferView): Promise<{ result?: ResultHead; error?: string }> {
  const answer = new Promise<{ result?: ResultHead; error?: string }>((resolve) => {
    const onFrame = (f: Frame) => {
      conn.off('frame', onFrame);
      if (f.type === MeshFrame.result) resolve({ result: unpackMessage<ResultHead>(f.payload).head });
      else resolve({ error: (frameJson(f) as { message: string }).message });
    };
    conn.on('frame', onFrame);
  });
  conn.send(MeshFrame.forward, { dtype: DType.raw }, packMessage(head, body));
  return answer;
}

function goodHead(stepId: number, overrides: Partial<Record<keyof ForwardHead, unknown>> = {}): Record<string, unknown> {
  return { epoch: 1, step: stepId, nTokens: 3, spans: [[0, 0, 0, 3]], outputs: [[2, 1, 0]], kind: 'tokens', wire: 'f32', ...overrides };
}

const TOKENS = new Int32Array([1, 5, 9]);

test('malformed steps, sequences and KV operations each fail alone with a clear error; the node keeps serving', { timeout: 60_000 }, async () => {
  const conn = await connect();
  await load(conn);
  await request(conn, MeshFrame.seqStart, { seq: 1, spec: { sampler: { temperature: 0 }, history: [1, 5, 9] } });
  const good = await step(conn, goodHead(1), TOKENS);
  assert.ok(good.result, good.error);
  const token = good.result.tokens[0];
  assert.ok(Number.isInteger(token) && token >= 0 && token < N_VOCAB);

  const bad: [string, Record<string, unknown>, ArrayBufferView, RegExp][] = [
    ['50k logits rows', goodHead(2, { outputs: Array.from({ length: 50_000 }, () => [0, 1, 1]) }), TOKENS, /outputs has 50000 entries, at most 3/],
    ['a row asked for twice', goodHead(4, { outputs: [[2, 1, 0], [2, 1, 0]] }), TOKENS, /row 2 is asked for twice/],
    ['slot out of range', goodHead(5, { spans: [[99, 0, 0, 3]] }), TOKENS, /slot must be an integer in \[0, 1\]/],
    ['fractional slot', goodHead(6, { spans: [[0.5, 0, 0, 3]] }), TOKENS, /slot must be an integer/],
    ['negative position', goodHead(7, { spans: [[0, -1, 0, 3]] }), TOKENS, /pos0 must be an integer/],
    ['past the context', goodHead(8, { spans: [[0, 62, 0, 3]] }), TOKENS, /pos0 must be an integer in \[0, 61\]/],
    ['too many tokens', goodHead(9, { nTokens: 1000 }), new Int32Array(1000), /nTokens must be an integer in \[1, 32\]/],
    ['spans that do not cover the batch', goodHead(10, { spans: [[0, 0, 0, 2]] }), TOKENS, /spans cover 2 of 3 tokens/],
    ['token id -1', goodHead(11), new Int32Array([1, -1, 9]), /token id -1 is outside the vocabulary/],
    ['token id past the vocabulary', goodHead(12), new Int32Array([1, N_VOCAB, 9]), /token id 300 is outside the vocabulary/],
    ['hidden states into the first stage', goodHead(13, { kind: 'hidden32' }), new Float32Array(3 * 64), /the first stage takes token ids/],
    ['a number as a string', goodHead(14, { nTokens: '3' }), TOKENS, /nTokens must be an integer/],
    ['an unknown kind', goodHead(15, { kind: 'weights' }), TOKENS, /unknown step kind/],
    ['a body of the wrong size', goodHead(16), new Int32Array(2), /bytes of token ids for 3 tokens/],
    ['a draft on a logits row', goodHead(17, { outputs: [[2, 1, 1, 5]] }), TOKENS, /output 0 mode must be an integer in \[0, 0\]/],
    ['a draft token that is no integer', goodHead(18, { outputs: [[1, 1, 0, 2.5]] }), TOKENS, /output 0 draft must be an integer/],
    ['an output of five fields', goodHead(19, { outputs: [[1, 1, 0, 5, 6]] }), TOKENS, /output 0 has 5 entries|must be \[row, seq, mode\] or \[row, seq, 0, draft\]/],
  ];
  for (const [name, head, body, pattern] of bad) {
    const r = await step(conn, head, body);
    assert.equal(r.result, undefined, name);
    assert.match(r.error ?? '', pattern, name);
  }

  const rejects = async (type: number, value: unknown, pattern: RegExp) =>
    assert.rejects(request(conn, type, value), (e) => isCairnError(e, 'CLUSTER_REMOTE') && pattern.test(e.message), String(pattern));
  await rejects(MeshFrame.seqStart, { seq: 2, spec: { sampler: {}, history: [-1] } }, /history token 0 must be an integer in \[0, 299\]/);
  await rejects(MeshFrame.seqStart, { seq: 2, spec: { sampler: { logitBias: { '4294967609': 5 } }, history: [] } }, /logitBias key 4294967609 is not a token id/);
  await rejects(MeshFrame.seqStart, { seq: -3, spec: { sampler: {}, history: [] } }, /seq must be an integer/);
  const kv = async (op: unknown, pattern: RegExp) =>
    assert.rejects(conn.request(MeshFrame.kv, { dtype: DType.raw }, packMessage(op), { timeoutMs: 20_000 }), (e) => isCairnError(e, 'CLUSTER_REMOTE') && pattern.test(e.message));
  await kv({ op: 'save', slot: 1e9, n: 1, key: 1 }, /slot must be an integer in \[0, 1\]/);
  await kv({ op: 'copy', from: 0, to: 1, n: 1e6 }, /n must be an integer in \[0, 64\]/);
  await kv({ op: 'rm -rf' }, /unknown KV operation/);
  // Exchange probes: only for a rank of a tensor-parallel group, of this plan, of bounded size.
  await rejects(MeshFrame.exchangeProbe, { epoch: 1, rounds: 10, values: 64 }, /not a rank of a tensor-parallel group/);
  await rejects(MeshFrame.exchangeProbe, { epoch: 7, rounds: 10, values: 64 }, /exchange probe of plan 7; this node runs plan 1/);
  await rejects(MeshFrame.exchangeProbe, { epoch: 1, rounds: 1e12, values: 64 }, /rounds must be an integer in \[2, 4000\]/);
  await rejects(MeshFrame.exchangeProbe, { epoch: 1, rounds: 10, values: 1e9 }, /values must be an integer in \[1, 64\]/);
  await rejects(MeshFrame.exchangeProbe, 'probe', /exchange probe is not an object/);
  const stranger = await connect();
  await assert.rejects(request(stranger, MeshFrame.exchangeProbe, { epoch: 1, rounds: 10, values: 64 }), (e) => isCairnError(e, 'CLUSTER_REMOTE') && /only the coordinator that loaded the stage/.test(e.message));
  stranger.close();
  conn.send(MeshFrame.seqEnd, jsonPayload({ seq: 'all' }).meta, jsonPayload({ seq: 'all' }).payload);

  // After all of it, the same step gives the same token.
  await request(conn, MeshFrame.seqStart, { seq: 3, spec: { sampler: { temperature: 0 }, history: [1, 5, 9] } });
  const again = await step(conn, goodHead(20, { outputs: [[2, 3, 0]] }), TOKENS);
  assert.deepEqual(again.result?.tokens, [token]);
  // A draft checked at the last stage: a wrong draft token at row 1 leaves row 2 unsampled (-1);
  // any draft value, even one past the vocabulary, is only compared.
  await request(conn, MeshFrame.seqStart, { seq: 4, spec: { sampler: { temperature: 0 }, history: [1, 5] } });
  const drafted = await step(conn, goodHead(21, { outputs: [[1, 4, 0, 1e9], [2, 4, 0]] }), TOKENS);
  assert.ok(drafted.result, drafted.error);
  assert.equal(drafted.result.tokens[1], -1);
  conn.close();
});

test('a load whose activations (maxBatch tokens a step) exceed what the node offers is refused before anything is allocated', { timeout: 60_000 }, async () => {
  const conn = await connect();
  // 64 MiB of KV cache fits the 256 MiB offered; 2^18 tokens a step of activations do not.
  const req: LoadRequest = { modelSha256: sha, modelName: 'tiny.gguf', layerStart: 0, layerEnd: 2, ctx: 1 << 18, slots: 1, kvType: GgmlType.F16, maxBatch: 1 << 18, epoch: 1 };
  await assert.rejects(request(conn, MeshFrame.load, req), (e) => isCairnError(e, 'CLUSTER_REMOTE') && /MiB of activations \(262144 tokens a step\); this node offers 256.0 MiB/.test(e.message));
  await load(conn);
  conn.close();
});

test('a peer cannot pile up load requests or samplers: each beyond its cap is refused alone, and the node keeps serving', { timeout: 60_000 }, async () => {
  const conn = await connect();
  // A burst of loads: a coordinator waits for each answer, so a few wait at most; the rest are refused at once.
  const req: LoadRequest = { modelSha256: sha, modelName: 'tiny.gguf', layerStart: 0, layerEnd: 2, ctx: 64, slots: SLOTS, kvType: GgmlType.F16, maxBatch: MAX_BATCH, epoch: 1 };
  const answers = await Promise.allSettled(Array.from({ length: 40 }, () => request(conn, MeshFrame.load, req)));
  const refused = answers.filter((a) => a.status === 'rejected');
  // (Loads of the tiny model are quick: some may finish while the burst still arrives.)
  assert.ok(refused.length >= 1 && refused.length <= 40 - MAX_PENDING_LOADS, `${refused.length} of 40 loads refused`);
  for (const r of refused) assert.match(String((r as PromiseRejectedResult).reason), /load refused: 4 load requests are already waiting at this node/);
  for (const a of answers) if (a.status === 'fulfilled') assert.deepEqual(a.value, { status: 'loaded', source: 'model' });

  // Samplers: two per KV slot; a sequence started again keeps its place, an ended one frees it.
  const spec = { sampler: { temperature: 0 }, history: [1, 5, 9] };
  for (let seq = 1; seq <= 2 * SLOTS; seq++) await request(conn, MeshFrame.seqStart, { seq, spec });
  await assert.rejects(request(conn, MeshFrame.seqStart, { seq: 100, spec }), (e) => isCairnError(e, 'CLUSTER_REMOTE') && /already samples 4 sequences \(2 per KV slot\)/.test(e.message));
  await request(conn, MeshFrame.seqStart, { seq: 1, spec });
  conn.send(MeshFrame.seqEnd, jsonPayload({ seq: 2 }).meta, jsonPayload({ seq: 2 }).payload);
  await request(conn, MeshFrame.seqStart, { seq: 100, spec });
  const r = await step(conn, goodHead(1, { outputs: [[2, 100, 0]] }), TOKENS);
  assert.ok(r.result, r.error);
  conn.close();
});

test('a node serves one coordinator at a time: another may not load over it, run sequences on it or unload it; once the first leaves it may', { timeout: 60_000 }, async () => {
  const first = await connect();
  await load(first);
  const other = await connectPeer('127.0.0.1', node.port, { nodeId: 'second-coordinator', compatibility: MESH_COMPATIBILITY });
  const req: LoadRequest = { modelSha256: sha, modelName: 'tiny.gguf', layerStart: 0, layerEnd: 2, ctx: 64, slots: SLOTS, kvType: GgmlType.F16, maxBatch: MAX_BATCH, epoch: 1 };
  const inUse = (e: unknown) => isCairnError(e, 'CLUSTER_REMOTE') && /in use by another coordinator \(hostile-coordinator at 127\.0\.0\.1\); a node serves one coordinator at a time/.test((e as Error).message);
  await assert.rejects(request(other, MeshFrame.load, req), inUse);
  await assert.rejects(request(other, MeshFrame.seqStart, { seq: 7, spec: { sampler: { temperature: 0 }, history: [1] } }), inUse);
  await request(other, MeshFrame.unload, {});
  // The first coordinator's shard is still there and answers its steps.
  await request(first, MeshFrame.seqStart, { seq: 1, spec: { sampler: { temperature: 0 }, history: [1, 5, 9] } });
  const r = await step(first, goodHead(1, { outputs: [[2, 1, 0]] }), TOKENS);
  assert.ok(r.result, r.error);
  first.close();
  await once(first, 'close');
  // Gone: the node is free for the other.
  for (let i = 0; ; i++) {
    try {
      assert.deepEqual(await request(other, MeshFrame.load, req), { status: 'loaded', source: 'model' });
      break;
    } catch (err) {
      if (i > 50 || !inUse(err)) throw err;
      await new Promise((res) => setTimeout(res, 50));
    }
  }
  other.close();
});

test('a frame larger than its type allows closes that connection only', { timeout: 60_000 }, async () => {
  const conn = await connect();
  await load(conn);
  const closed = once(conn, 'close');
  conn.send(MeshFrame.forward, { dtype: DType.raw }, Buffer.alloc(3 << 20));
  const [info] = (await closed) as [{ reason: string }];
  assert.match(info.reason, /exceeds the limit of \d+ for frame type 261/);
  assert.equal(node.proc.exitCode, null);
  const fresh = await connect();
  assert.ok(fresh.isOpen);
  fresh.close();
});

test('a seeded stream of random frames never takes the node down', { timeout: 120_000 }, async () => {
  const prng = new Prng(20261202);
  const value = (depth: number): unknown => {
    switch (prng.int(depth > 2 ? 6 : 8)) {
      case 0: return prng.int(2) ? prng.int(100) : [-1, 1e9, 0.5, -0.0, Number.MAX_SAFE_INTEGER, 4294967609][prng.int(6)];
      case 1: return ['', 'x', '../../etc/passwd', 'tokens', 'hidden32', 'copy', '__proto__', 'f16'][prng.int(8)];
      case 2: return prng.int(2) === 1;
      case 3: return null;
      case 4: return undefined;
      case 5: return prng.next();
      case 6: return Array.from({ length: prng.int(5) }, () => value(depth + 1));
      default: {
        const keys = ['epoch', 'step', 'nTokens', 'spans', 'outputs', 'kind', 'wire', 'seq', 'spec', 'op', 'slot', 'key', 'n', 'history', 'sampler', 'modelSha256', 'layerStart', 'layerEnd'];
        return Object.fromEntries(Array.from({ length: prng.int(6) }, () => [keys[prng.int(keys.length)], value(depth + 1)]));
      }
    }
  };
  let conn = await connect();
  await load(conn);
  let closes = 0;
  for (let i = 0; i < 400; i++) {
    if (!conn.isOpen) {
      closes++;
      conn = await connect();
    }
    const type = MeshFrame.info + prng.int(14);
    const shape = prng.int(4);
    let payload: Buffer;
    if (shape === 0) payload = Buffer.from(Array.from({ length: prng.int(256) }, () => prng.int(256)));
    else if (shape === 1) payload = Buffer.from(JSON.stringify(value(0)) ?? 'null');
    else payload = packMessage(value(0) ?? null, Buffer.from(Array.from({ length: prng.int(64) * 4 }, () => prng.int(256))));
    const asRequest = type !== MeshFrame.forward && type !== MeshFrame.shardChunk && prng.int(3) > 0;
    try {
      if (asRequest) await conn.request(type, { dtype: shape === 1 ? DType.json : DType.raw }, payload, { timeoutMs: 20_000 }).catch((e: unknown) => {
        if (!isCairnError(e, 'CLUSTER_REMOTE') && !isCairnError(e, 'CLUSTER_CLOSED')) throw e;
      });
      else conn.send(type, { dtype: DType.raw }, payload);
    } catch (err) {
      if (!isCairnError(err, 'CLUSTER_CLOSED')) throw err;
    }
    assert.equal(node.proc.exitCode, null, `the node died at frame ${i}`);
  }
  conn.close();
  // The node answers, loads and computes as before.
  const fresh = await connect();
  await load(fresh);
  await request(fresh, MeshFrame.seqStart, { seq: 1, spec: { sampler: { temperature: 0 }, history: [1, 5, 9] } });
  const r = await step(fresh, goodHead(1), TOKENS);
  assert.ok(r.result, r.error);
  assert.ok(closes < 400);
  fresh.close();
  assert.equal(node.proc.exitCode, null);
});
