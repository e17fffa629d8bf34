import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { PeerConnection } from '../cluster/index.js';
import { GgmlType, ggmlRowBytes } from '../gguf/ggml-types.js';
import { readGguf } from '../gguf/reader.js';
import { createKernels } from '../kernels/index.js';
import { readModelConfig } from '../model/config.js';
import { writeSyntheticModel } from '../model/synthetic.js';
import { isCairnError } from '../util/errors.js';
import { MeshFrame, type ShardTransferBegin } from './protocol.js';
import { sendShard, shardTensors, ShardReceiver } from './shard-files.js';
import { scratchDir } from '../../test/helpers/paths.js';

const dir = scratchDir('shard-files');
mkdirSync(dir, { recursive: true });
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const kernels = createKernels();
const model = join(dir, 'm.gguf');
writeSyntheticModel(model, { arch: 'qwen2', nEmbd: 64, nLayer: 4, nHead: 4, nKvHead: 2, nFf: 128, nVocab: 300, tied: true, quant: GgmlType.Q8_0, seed: 2 }, (type, src) => {
  const out = new Uint8Array(ggmlRowBytes(type, src.length));
  kernels.quantize(type, src, out, src.length);
  return out;
});
const file = readGguf(model);
const bytes = readFileSync(model);
const sha = 'a'.repeat(64);

/** Records what sendShard sends, in order (the frames a node would receive). */
async function recordTransfer(start: number, end: number): Promise<{ begin: ShardTransferBegin; chunks: Uint8Array[] }> {
  let begin: ShardTransferBegin | undefined;
  const chunks: Uint8Array[] = [];
  const conn = {
    request: async (type: number, _meta: unknown, payload: Buffer) => {
      if (type === MeshFrame.shardBegin) begin = JSON.parse(payload.toString()) as ShardTransferBegin;
      return {};
    },
    write: async (_type: number, _meta: unknown, payload: Uint8Array) => {
      chunks.push(Uint8Array.prototype.slice.call(payload));
    },
  } as unknown as PeerConnection;
  await sendShard(conn, file, sha, 4, start, end, (t) => bytes.subarray(t.offset, t.offset + t.byteLength));
  return { begin: begin!, chunks };
}

test('a shard holds only its layers (plus the embedding and head at the ends) and loads as a model file', async () => {
  const names = (s: number, e: number) => shardTensors(file, 4, s, e).map((t) => t.name);
  assert.ok(names(1, 3).every((n) => /^blk\.[12]\./.test(n)));
  assert.ok(names(0, 2).includes('token_embd.weight'));
  // Tied head: the last stage needs the embedding matrix too.
  assert.ok(names(2, 4).includes('token_embd.weight') && names(2, 4).includes('output_norm.weight'));
  const { begin, chunks } = await recordTransfer(2, 4);
  const rx = new ShardReceiver(join(dir, 'cache'));
  rx.start(begin);
  chunks.forEach((c, i) => rx.chunk(i, c));
  const path = rx.finish();
  const shard = readGguf(path);
  assert.equal(readModelConfig(shard).nLayer, 4, 'metadata kept');
  assert.deepEqual(shard.tensors.map((t) => t.name).sort(), names(2, 4).sort());
  for (const t of shard.tensors) {
    const orig = file.tensors.find((x) => x.name === t.name)!;
    assert.ok(readFileSync(path).subarray(t.offset, t.offset + t.byteLength).equals(bytes.subarray(orig.offset, orig.offset + orig.byteLength)), t.name);
  }
});

test('a corrupted, reordered or short transfer is refused and leaves no shard behind', async () => {
  const { begin, chunks } = await recordTransfer(0, 2);
  const cacheDir = join(dir, 'bad');
  const rx = new ShardReceiver(cacheDir);
  // One flipped byte in the last tensor: its hash no longer matches.
  rx.start(begin);
  chunks.forEach((c, i) => rx.chunk(i, i === chunks.length - 1 ? c.map((b, j) => (j === c.length - 40 ? b ^ 1 : b)) : c));
  assert.throws(() => rx.finish(), (e) => isCairnError(e) && /does not match its hash/.test(e.message));
  rx.abort();
  rx.start(begin);
  assert.throws(() => rx.chunk(1, chunks[0]), /out of order/);
  rx.abort();
  rx.start(begin);
  rx.chunk(0, chunks[0].subarray(0, 100));
  assert.throws(() => rx.finish(), /ended at 100/);
  rx.abort();
  assert.throws(() => readGguf(rx.pathFor(sha, 0, 2)), (e) => isCairnError(e, 'FILE_NOT_FOUND'));
});
