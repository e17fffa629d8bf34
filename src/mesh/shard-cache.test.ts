import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { GgmlType, ggmlRowBytes } from '../gguf/ggml-types.js';
import { readGguf } from '../gguf/reader.js';
import { createKernels } from '../kernels/index.js';
import { writeSyntheticModel } from '../model/synthetic.js';
import { isCairnError } from '../util/errors.js';
import type { ShardManifest } from './protocol.js';
import { ShardCache } from './shard-cache.js';
import { prepareShard, type PreparedShard } from './shard-files.js';
import { manifestDigest } from './shard-manifest.js';
import { ShardReceiver } from './shard-receiver.js';
import { scratchDir } from '../../test/helpers/paths.js';

const dir = scratchDir('shard-cache');
mkdirSync(dir, { recursive: true });
process.env.XDG_CACHE_HOME = join(dir, 'xdg');
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const kernels = createKernels();
const quantize = (type: GgmlType, src: Float32Array) => {
  const out = new Uint8Array(ggmlRowBytes(type, src.length));
  kernels.quantize(type, src, out, src.length);
  return out;
};
const shape = { arch: 'llama', nEmbd: 64, nLayer: 4, nHead: 4, nKvHead: 2, nFf: 128, nVocab: 300, quant: GgmlType.Q8_0 } as const;
const model = join(dir, 'm.gguf');
writeSyntheticModel(model, { ...shape, seed: 5 }, quantize);
const file = readGguf(model);
const bytes = readFileSync(model);
const sha = createHash('sha256').update(bytes).digest('hex');
const noPins = new Set<string>();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const shard = (start: number, end: number): Promise<PreparedShard> => prepareShard(model, file, sha, 4, { layerStart: start, layerEnd: end });

/** Receives a shard into a cache as a node would; returns its path. */
function store(cache: ShardCache, s: PreparedShard, source = bytes): Promise<string> {
  const owner = {};
  const rx = new ShardReceiver(cache);
  rx.start(owner, s.manifest, noPins);
  rx.chunk(owner, 0, s.header);
  let at = s.header.length;
  let seq = 1;
  s.pieces.forEach((p, i) => {
    const want = s.manifest.tensors[i].offset;
    if (want > at) rx.chunk(owner, seq++, new Uint8Array(want - at));
    const t = p.source;
    rx.chunk(owner, seq++, p.extract(source.subarray(t.offset, t.offset + t.byteLength)));
    at = want + p.byteLength;
  });
  if (s.manifest.fileSize > at) rx.chunk(owner, seq++, new Uint8Array(s.manifest.fileSize - at));
  return rx.finish(owner);
}

/** Looks a manifest up, recording whether the file had to be hashed again. */
async function lookUp(cache: ShardCache, m: ShardManifest): Promise<{ path?: string; damaged?: string; rehashed: boolean; progress: number }> {
  let rehashed = false;
  let progress = 0;
  const r = await cache.find(m, { onCheck: () => (rehashed = true), onProgress: (d) => (progress = d) });
  return { ...r, rehashed, progress };
}

test('cache paths are built from digests only and stay inside the folder', () => {
  const cache = new ShardCache({ dir: join(dir, 'paths') });
  const digest = 'ab'.repeat(32);
  assert.equal(dirname(cache.shardPath(digest)), cache.dir);
  assert.equal(dirname(cache.tempPath(digest)), cache.dir);
  for (const bad of ['../' + 'a'.repeat(61), 'A'.repeat(64), 'a'.repeat(63), `${'a'.repeat(64)}/..`, '']) {
    assert.throws(() => cache.shardPath(bad), (e) => isCairnError(e, 'BAD_ARGUMENT'), bad);
    assert.throws(() => cache.tempPath(bad), (e) => isCairnError(e, 'BAD_ARGUMENT'), bad);
  }
  assert.ok((statSync(cache.dir).mode & 0o077) === 0, 'the folder is private to its user');
  assert.ok((statSync(join(cache.dir, 'index.key')).mode & 0o077) === 0, 'the index key is private to its user');
});

test('a cached shard is trusted through its signed index; a changed file is hashed again, deleted, and the tensor named', async () => {
  const cache = new ShardCache({ dir: join(dir, 'tamper') });
  const s = await shard(0, 4);
  const path = await store(cache, s);
  const hit = await lookUp(cache, s.manifest);
  assert.equal(hit.path, path);
  assert.equal(hit.rehashed, false, 'a verified, unchanged file is not read again');
  // Flip one byte of a tensor in place and put the modification time back, as a careful forger would.
  const victim = s.manifest.tensors.find((t) => t.name === 'blk.2.ffn_down.weight')!;
  const before = statSync(path);
  const fd = openSync(path, 'r+');
  const one = Buffer.alloc(1);
  one[0] = readFileSync(path)[victim.offset + 7] ^ 0x40;
  writeSync(fd, one, 0, 1, victim.offset + 7);
  closeSync(fd);
  utimesSync(path, before.atime, before.mtime);
  const miss = await lookUp(cache, s.manifest);
  assert.equal(miss.rehashed, true);
  assert.equal(miss.path, undefined);
  assert.match(miss.damaged ?? '', /tensor "blk\.2\.ffn_down\.weight" does not match its SHA-256/);
  assert.ok(!existsSync(path) && !existsSync(path.replace(/\.gguf$/, '.verified')), 'the damaged shard and its index entry are deleted');
});

test('a file put under a shard\'s name by anyone else, or with an index entry this cache did not sign, is checked first', async () => {
  const s = await shard(0, 2);
  const digest = manifestDigest(s.manifest);
  // Another model's bytes in the right layout, under the right name, without an index entry.
  const otherPath = join(dir, 'other.gguf');
  writeSyntheticModel(otherPath, { ...shape, seed: 6 }, quantize);
  const elsewhere = new ShardCache({ dir: join(dir, 'elsewhere') });
  const wrong = await prepareShard(otherPath, readGguf(otherPath), 'c'.repeat(64), 4, { layerStart: 0, layerEnd: 2 });
  const wrongFile = await store(elsewhere, wrong, readFileSync(otherPath));
  const cache = new ShardCache({ dir: join(dir, 'planted') });
  copyFileSync(wrongFile, cache.shardPath(digest));
  const planted = await lookUp(cache, s.manifest);
  assert.equal(planted.rehashed, true);
  assert.equal(planted.path, undefined);
  assert.match(planted.damaged ?? '', /does not match its SHA-256/);
  // The right file with an index entry signed by another cache's key: hashed once, then trusted.
  const good = await store(elsewhere, s);
  copyFileSync(good, cache.shardPath(digest));
  copyFileSync(good.replace(/\.gguf$/, '.verified'), cache.shardPath(digest).replace(/\.gguf$/, '.verified'));
  const first = await lookUp(cache, s.manifest);
  assert.equal(first.rehashed, true);
  assert.equal(first.progress, s.manifest.fileSize, 'progress is reported up to the whole file');
  assert.equal(first.path, cache.shardPath(digest));
  const second = await lookUp(cache, s.manifest);
  assert.equal(second.rehashed, false);
  assert.equal(second.path, cache.shardPath(digest));
  // The same file and entry, unchanged, under another key: the entry's MAC no longer holds.
  writeFileSync(join(cache.dir, 'index.key'), Buffer.alloc(32, 7));
  const rekeyed = await lookUp(new ShardCache({ dir: cache.dir }), s.manifest);
  assert.equal(rekeyed.rehashed, true);
  assert.equal(rekeyed.path, cache.shardPath(digest));
});

test('the size limit evicts the least recently used shards, never a pinned one, and refuses a shard that cannot fit', async () => {
  const [a, b, c] = await Promise.all([shard(0, 2), shard(2, 4), shard(1, 3)]);
  const size = (x: PreparedShard) => x.manifest.fileSize;
  const limit = Math.max(size(a) + size(b), size(a) + size(c), size(b) + size(c)) + 8192; // room for two, not three
  assert.ok(limit < size(a) + size(b) + size(c));
  const cache = new ShardCache({ dir: join(dir, 'lru'), maxBytes: limit });
  await store(cache, a);
  await sleep(20);
  await store(cache, b);
  await sleep(20);
  assert.ok((await lookUp(cache, a.manifest)).path, 'a used again: b is now the least recently used');
  await sleep(20);
  await store(cache, c);
  assert.ok((await lookUp(cache, a.manifest)).path);
  assert.equal((await lookUp(cache, b.manifest)).path, undefined, 'b was evicted');
  assert.ok((await lookUp(cache, c.manifest)).path);
  const held = cache.usage().used;
  assert.ok(held <= limit);
  // Pinned shards stay, even when that means refusing the new one.
  const pins = new Set([manifestDigest(a.manifest), manifestDigest(c.manifest)]);
  assert.throws(
    () => cache.makeRoom(size(b), pins),
    (e) => isCairnError(e, 'BAD_ARGUMENT') && /does not fit in this node's shard cache of .*--cache-max-bytes.*held by the shard in use/.test(e.message),
  );
  assert.ok((await lookUp(cache, a.manifest)).path && (await lookUp(cache, c.manifest)).path);
  assert.throws(() => cache.makeRoom(limit + 1, noPins), /cannot fit in this node's shard cache of .*--cache-max-bytes/);
  // Without a limit, the disk's free space (less 10%) bounds the cache.
  const unlimited = new ShardCache({ dir: join(dir, 'lru') });
  assert.throws(() => unlimited.makeRoom(2 ** 47, noPins), /cannot fit in this node's shard cache of .*free space less 10%/);
});

test('a cache opening removes partial files of processes that are gone, and unchecked shards of the older format', () => {
  const d = join(dir, 'leftovers');
  mkdirSync(d, { recursive: true });
  const gone = spawnSync(process.execPath, ['-e', '']).pid!;
  const hex = 'd'.repeat(64);
  const names = {
    deadPart: `.${hex}.${gone}.1.part`,
    livePart: `.${hex}.${process.pid}.7.part`,
    oldPart: `.${hex}-0-4.gguf.${gone}.part`,
    oldShard: `${hex}-0-4.gguf`,
    orphanIndex: `${hex}.verified`,
    unrelated: 'notes.txt',
  };
  for (const n of Object.values(names)) writeFileSync(join(d, n), 'x');
  new ShardCache({ dir: d });
  const left = readdirSync(d);
  assert.ok(!left.includes(names.deadPart) && !left.includes(names.oldPart), 'partial files of dead processes removed');
  assert.ok(left.includes(names.livePart), 'a running transfer keeps its file');
  assert.ok(!left.includes(names.oldShard), 'old-format shards (trusted by name) removed');
  assert.ok(!left.includes(names.orphanIndex));
  assert.ok(left.includes(names.unrelated));
});
