import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { PeerConnection } from '../cluster/index.js';
import { jsonPayload } from '../cluster/index.js';
import { GgmlType, ggmlRowBytes } from '../gguf/ggml-types.js';
import { readGguf } from '../gguf/reader.js';
import { createKernels } from '../kernels/index.js';
import { readModelConfig } from '../model/config.js';
import { writeSyntheticModel } from '../model/synthetic.js';
import { isCairnError } from '../util/errors.js';
import { MeshFrame } from './protocol.js';
import { ShardCache } from './shard-cache.js';
import { prepareShard, sendShard, shardTensors, type PreparedShard } from './shard-files.js';
import { manifestDigest } from './shard-manifest.js';
import { ShardReceiver } from './shard-receiver.js';
import { scratchDir } from '../../test/helpers/paths.js';

const dir = scratchDir('shard-files');
mkdirSync(dir, { recursive: true });
process.env.XDG_CACHE_HOME = join(dir, 'xdg'); // the coordinator's tensor-hash store goes here
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const kernels = createKernels();
const quantize = (type: GgmlType, src: Float32Array) => {
  const out = new Uint8Array(ggmlRowBytes(type, src.length));
  kernels.quantize(type, src, out, src.length);
  return out;
};
const shape = { arch: 'qwen2', nEmbd: 64, nLayer: 4, nHead: 4, nKvHead: 2, nFf: 128, nVocab: 300, tied: true, quant: GgmlType.Q8_0 } as const;
const model = join(dir, 'm.gguf');
writeSyntheticModel(model, { ...shape, seed: 2 }, quantize);
const file = readGguf(model);
const bytes = readFileSync(model);
const sha = createHash('sha256').update(bytes).digest('hex');
const owner = {};
const noPins = new Set<string>();

/** Records what sendShard sends, in order (the frames a node would receive). */
async function recordTransfer(shard: PreparedShard, from = bytes): Promise<{ begin: unknown; chunks: Uint8Array[] }> {
  let begin: unknown;
  const chunks: Uint8Array[] = [];
  const conn = Object.assign(new EventEmitter(), {
    request: async (type: number, _meta: unknown, payload: Buffer) => {
      if (type === MeshFrame.shardBegin) begin = JSON.parse(payload.toString());
      return {};
    },
    write: async (_type: number, _meta: unknown, payload: Uint8Array) => {
      chunks.push(Uint8Array.prototype.slice.call(payload));
    },
  }) as unknown as PeerConnection;
  await sendShard(conn, shard, (t) => from.subarray(t.offset, t.offset + t.byteLength));
  return { begin, chunks };
}

function cacheAt(name: string, maxBytes?: number): ShardCache {
  return new ShardCache({ dir: join(dir, name), maxBytes });
}

function leftovers(cache: ShardCache): string[] {
  return readdirSync(cache.dir).filter((n) => n.endsWith('.part'));
}

test('a shard holds only its layers (plus the embedding and head at the ends) and loads as a model file', async () => {
  const names = (s: number, e: number) => shardTensors(file, 4, s, e).map((t) => t.name);
  assert.ok(names(1, 3).every((n) => /^blk\.[12]\./.test(n)));
  assert.ok(names(0, 2).includes('token_embd.weight'));
  // Tied head: the last stage needs the embedding matrix too.
  assert.ok(names(2, 4).includes('token_embd.weight') && names(2, 4).includes('output_norm.weight'));
  const shard = await prepareShard(model, file, sha, 4, { layerStart: 2, layerEnd: 4 });
  const { begin, chunks } = await recordTransfer(shard);
  assert.deepEqual(begin, shard.manifest, 'the transfer announces the manifest of the load request');
  const cache = cacheAt('cache');
  const rx = new ShardReceiver(cache);
  rx.start(owner, begin, noPins);
  chunks.forEach((c, i) => assert.ok(rx.chunk(owner, i, c)));
  const path = await rx.finish(owner);
  assert.equal(path, cache.shardPath(manifestDigest(shard.manifest)), 'named by the digest of its manifest');
  const loaded = readGguf(path);
  assert.equal(readModelConfig(loaded).nLayer, 4, 'metadata kept');
  assert.deepEqual(loaded.tensors.map((t) => t.name).sort(), names(2, 4).sort());
  for (const t of loaded.tensors) {
    const orig = file.tensors.find((x) => x.name === t.name)!;
    assert.ok(readFileSync(path).subarray(t.offset, t.offset + t.byteLength).equals(bytes.subarray(orig.offset, orig.offset + orig.byteLength)), t.name);
  }
  assert.deepEqual(leftovers(cache), []);
});

test('the manifest states the hashes of the model\'s own bytes, so another model\'s bytes are refused naming the tensor', async () => {
  const shard = await prepareShard(model, file, sha, 4, { layerStart: 0, layerEnd: 2 });
  for (const [i, { source: t }] of shard.pieces.entries()) {
    assert.equal(shard.manifest.tensors[i].sha256, createHash('sha256').update(bytes.subarray(t.offset, t.offset + t.byteLength)).digest('hex'), t.name);
  }
  // Same shapes, other weights: a sender holding another file cannot pass it off as this model.
  const other = join(dir, 'other.gguf');
  writeSyntheticModel(other, { ...shape, seed: 3 }, quantize);
  const otherBytes = readFileSync(other);
  const { begin, chunks } = await recordTransfer(shard, otherBytes);
  const cache = cacheAt('other');
  const rx = new ShardReceiver(cache);
  rx.start(owner, begin, noPins);
  let failure: unknown;
  for (const [i, c] of chunks.entries()) {
    try {
      rx.chunk(owner, i, c);
    } catch (err) {
      failure = err;
      break;
    }
  }
  assert.ok(isCairnError(failure, 'BAD_ARGUMENT') && /tensor "[^"]+" does not match its SHA-256/.test(failure.message), String(failure));
  assert.deepEqual(readdirSync(cache.dir).filter((n) => n.endsWith('.gguf') || n.endsWith('.part')), [], 'nothing kept');
  await assert.rejects(rx.finish(owner), /the shard transfer failed: tensor ".*" does not match/);
});

test('a corrupted, reordered, overlong or short transfer is refused and leaves no file behind', async () => {
  const shard = await prepareShard(model, file, sha, 4, { layerStart: 0, layerEnd: 2 });
  const { begin, chunks } = await recordTransfer(shard);
  const cache = cacheAt('bad');
  const rx = new ShardReceiver(cache);
  const all = Buffer.concat(chunks);
  const last = shard.manifest.tensors[shard.manifest.tensors.length - 1];
  const flip = (at: number) => Uint8Array.from(all, (b, j) => (j === at ? b ^ 1 : b));
  // One flipped byte in the last tensor: its hash no longer matches.
  rx.start(owner, begin, noPins);
  assert.throws(() => rx.chunk(owner, 0, flip(last.offset + 5)), new RegExp(`tensor "${last.name.replace(/\./g, '\\.')}" does not match`));
  // One flipped byte in the header.
  rx.start(owner, begin, noPins);
  assert.throws(() => rx.chunk(owner, 0, flip(10)), /header of the shard does not match/);
  // Padding that is not zero (the bytes between the header's end and the first tensor, or after the last).
  const padAt = last.offset + last.byteLength;
  if (padAt < shard.manifest.fileSize) {
    rx.start(owner, begin, noPins);
    assert.throws(() => rx.chunk(owner, 0, flip(padAt)), /padding .* is not zero/);
  }
  rx.start(owner, begin, noPins);
  assert.throws(() => rx.chunk(owner, 1, chunks[0]), /chunk 1 arrived where 0 was due/);
  rx.start(owner, begin, noPins);
  assert.throws(() => rx.chunk(owner, 0, Buffer.concat([all, Buffer.alloc(1)])), /runs past its size/);
  rx.start(owner, begin, noPins);
  rx.chunk(owner, 0, all.subarray(0, 100));
  await assert.rejects(rx.finish(owner), /ended at 100 of/);
  assert.deepEqual(readdirSync(cache.dir).filter((n) => n.endsWith('.gguf') || n.endsWith('.part')), []);
  assert.equal((await cache.find(shard.manifest)).path, undefined);
});

test('a transfer that stops removes its partial file: a newer transfer, its connection closing, the node stopping', async () => {
  const shard = await prepareShard(model, file, sha, 4, { layerStart: 0, layerEnd: 4 });
  const { begin, chunks } = await recordTransfer(shard);
  const cache = cacheAt('stops');
  const rx = new ShardReceiver(cache);
  rx.start(owner, begin, noPins);
  rx.chunk(owner, 0, chunks[0].subarray(0, 1000));
  assert.equal(leftovers(cache).length, 1);
  const other = {};
  // Another connection's chunks and end do not touch this transfer.
  assert.equal(rx.chunk(other, 1, chunks[0].subarray(1000)), false);
  await assert.rejects(rx.finish(other), /without a transfer/);
  assert.equal(rx.abortFrom(other), false);
  assert.equal(leftovers(cache).length, 1);
  rx.start(other, begin, noPins); // a newer transfer replaces it
  assert.equal(leftovers(cache).length, 1);
  assert.equal(rx.abortFrom(other), true); // its connection closed
  assert.deepEqual(leftovers(cache), []);
  rx.start(owner, begin, noPins);
  rx.abort(); // the node stopping
  assert.deepEqual(leftovers(cache), []);
  // Stopped while the complete file is being flushed to disk: nothing is moved into place.
  rx.start(owner, begin, noPins);
  chunks.forEach((c, i) => rx.chunk(owner, i, c));
  const saving = rx.finish(owner);
  rx.abort();
  await assert.rejects(saving);
  assert.deepEqual(readdirSync(cache.dir).filter((n) => n.endsWith('.gguf') || n.endsWith('.part')), []);
});

test('sendShard stops as soon as the node gives the transfer up, with the node\'s reason', async () => {
  const shard = await prepareShard(model, file, sha, 4, { layerStart: 0, layerEnd: 4 });
  let writes = 0;
  const conn: PeerConnection = Object.assign(new EventEmitter(), {
    request: async () => ({}),
    write: async () => {
      if (++writes === 1) {
        const p = jsonPayload({ reason: 'this node\'s disk is full (ENOSPC)' });
        conn.emit('frame', { type: MeshFrame.shardAbort, flags: 0, requestId: 0, sequence: 0, dtype: p.meta.dtype!, payloadLength: p.payload.length, payload: p.payload });
      }
    },
  }) as unknown as PeerConnection;
  // A tiny chunk size is not configurable; the header alone is one chunk, so the abort lands before the tensors.
  await assert.rejects(
    sendShard(conn, shard, (t) => bytes.subarray(t.offset, t.offset + t.byteLength)),
    (e) => isCairnError(e, 'CLUSTER_REMOTE') && /gave up the shard transfer: this node's disk is full/.test(e.message),
  );
  assert.equal(writes, 1);
  assert.equal((conn as unknown as EventEmitter).listenerCount('frame'), 0, 'its listener is removed');
});

test('the tensor hashes of a model are kept by the model\'s SHA-256 and not recomputed', async () => {
  const first = await prepareShard(model, file, sha, 4, { layerStart: 1, layerEnd: 3 });
  let hashed = 0;
  const again = await prepareShard(model, file, sha, 4, { layerStart: 1, layerEnd: 3 }, (done) => (hashed = done));
  assert.equal(hashed, 0);
  assert.deepEqual(again.manifest, first.manifest);
  assert.ok(existsSync(join(dir, 'xdg', 'cairn', 'tensor-hashes', `${sha}.json`)));
});
