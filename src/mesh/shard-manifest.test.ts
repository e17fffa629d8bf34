import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GgmlType } from '../gguf/ggml-types.js';
import { isCairnError } from '../util/errors.js';
import { validateLoadRequest } from './load-request.js';
import type { LoadRequest, ShardManifest } from './protocol.js';
import { manifestDigest, shardRegions, validateShardManifest } from './shard-manifest.js';

const h = (c: string) => c.repeat(64);
const manifest: ShardManifest = {
  modelSha256: h('a'),
  layerStart: 2,
  layerEnd: 4,
  fileSize: 1000,
  headerSha256: h('b'),
  tensors: [
    { name: 'blk.2.attn_q.weight', offset: 96, byteLength: 100, sha256: h('c') },
    { name: 'blk.3.attn_q.weight', offset: 224, byteLength: 700, sha256: h('d') },
  ],
};
const load: LoadRequest = {
  modelSha256: h('a'),
  modelName: 'm.gguf',
  layerStart: 2,
  layerEnd: 4,
  ctx: 256,
  slots: 4,
  kvType: GgmlType.F16,
  maxBatch: 64,
  epoch: 1,
  next: { host: '127.0.0.1', port: 7071, nodeId: 'n2' },
  shard: manifest,
};

type Patch = Record<string, unknown>;
const withTensor = (i: number, patch: Patch) => ({ tensors: manifest.tensors.map((t, j) => (j === i ? { ...t, ...patch } : t)) });

test('a manifest with any bad field is refused with a message naming it', () => {
  assert.deepEqual(validateShardManifest({ ...manifest, extra: 'dropped' }), manifest);
  const cases: [Patch | unknown, RegExp][] = [
    [null, /not an object/],
    [[manifest], /not an object/],
    [{ modelSha256: '../../../etc/x' }, /modelSha256/],
    [{ modelSha256: h('A') }, /modelSha256/],
    [{ headerSha256: 7 }, /headerSha256/],
    [{ layerStart: '/../../x' }, /layerStart/],
    [{ layerStart: -1 }, /layerStart/],
    [{ layerStart: 1.5 }, /layerStart/],
    [{ layerStart: 1e9 }, /layerStart/],
    [{ layerEnd: 2 }, /layerEnd/],
    [{ layerEnd: '4' }, /layerEnd/],
    [{ fileSize: 0 }, /fileSize/],
    [{ fileSize: 2 ** 60 }, /fileSize/],
    [{ fileSize: 'big' }, /fileSize/],
    [{ fileSize: 900 }, /byteLength|offset/],
    [{ tensors: {} }, /not an array/],
    [{ tensors: [] }, /0 tensors/],
    [{ tensors: Array.from({ length: 70_000 }, () => manifest.tensors[0]) }, /70000 tensors/],
    [withTensor(0, { name: '' }), /bad name/],
    [withTensor(0, { name: 'a b' }), /bad name/],
    [withTensor(0, { name: 'x\n' }), /bad name/],
    [withTensor(0, { name: 'x'.repeat(300) }), /bad name/],
    [withTensor(0, { name: '../../x' }), /bad name/],
    [withTensor(1, { name: 'blk.2.attn_q.weight' }), /listed twice/],
    [withTensor(0, { offset: 0 }), /offset/],
    [withTensor(0, { offset: -5 }), /offset/],
    [withTensor(1, { offset: 100 }), /offset.*no overlap/],
    [withTensor(1, { offset: 1000 }), /offset/],
    [withTensor(1, { byteLength: 0 }), /byteLength/],
    [withTensor(1, { byteLength: 777 }), /byteLength/],
    [withTensor(1, { sha256: 'x' }), /sha256/],
    [{ tensors: [null] }, /not an object/],
  ];
  for (const [patch, why] of cases) {
    const input = patch !== null && typeof patch === 'object' && !Array.isArray(patch) ? { ...manifest, ...patch } : patch;
    assert.throws(() => validateShardManifest(input), (e) => isCairnError(e, 'BAD_ARGUMENT') && why.test(e.message), `${JSON.stringify(patch)?.slice(0, 80)}`);
  }
});

test('the digest changes with every field, and the regions cover the file once', () => {
  const digests = new Set([
    manifestDigest(manifest),
    manifestDigest({ ...manifest, modelSha256: h('e') }),
    manifestDigest({ ...manifest, layerEnd: 5 }),
    manifestDigest({ ...manifest, fileSize: 1001 }),
    manifestDigest({ ...manifest, headerSha256: h('f') }),
    manifestDigest({ ...manifest, ...withTensor(1, { sha256: h('0') }) }),
    manifestDigest({ ...manifest, ...withTensor(1, { name: 'other' }) }),
  ]);
  assert.equal(digests.size, 7);
  const regions = shardRegions(manifest);
  assert.deepEqual(
    regions.map((r) => [r.kind, r.offset, r.length]),
    [
      ['header', 0, 96],
      ['tensor', 96, 100],
      ['padding', 196, 28],
      ['tensor', 224, 700],
      ['padding', 924, 76],
    ],
  );
});

test('a load request with any bad field is refused; a good one comes back clean', () => {
  assert.deepEqual(validateLoadRequest({ ...load, junk: 1 }), load);
  const peer = (nodeId: string) => ({ host: '127.0.0.1', port: 7000, nodeId });
  const group = { rank: 1, shares: [2, 1], peers: [peer('a'), peer('b')] };
  assert.deepEqual(validateLoadRequest({ ...load, group: { ...group, extra: true } }), { ...load, group });
  const { next: _n, shard: _s, ...bare } = load;
  assert.deepEqual(validateLoadRequest(bare), bare);
  const cases: [Patch, RegExp][] = [
    [{ modelSha256: '../../outside/m' }, /modelSha256/],
    [{ modelName: 'a\nfake log line' }, /modelName/],
    [{ modelName: 5 }, /modelName/],
    [{ layerStart: -2 }, /layerStart/],
    [{ layerEnd: 1 }, /layerEnd/],
    [{ ctx: 2 ** 40 }, /ctx/],
    [{ ctx: 1 }, /ctx/],
    [{ slots: 0 }, /slots/],
    [{ slots: 1e6 }, /slots/],
    [{ kvType: 9 }, /kvType/],
    [{ maxBatch: 1024 }, /maxBatch/],
    [{ epoch: -1 }, /epoch/],
    [{ next: 'host:1' }, /next/],
    [{ next: { host: 'a b', port: 1, nodeId: 'x' } }, /next\.host/],
    [{ next: { host: 'h', port: 70000, nodeId: 'x' } }, /next\.port/],
    [{ next: { host: 'h', port: 1, nodeId: '' } }, /next\.nodeId/],
    [{ shard: { ...manifest, layerStart: 'x' } }, /shard: layerStart/],
    [{ shard: { ...manifest, modelSha256: h('9') } }, /another model or layer range/],
    [{ shard: { ...manifest, layerStart: 0, layerEnd: 4 } }, /another model or layer range/],
    [{ group: [] }, /group is not an object/],
    [{ group: { rank: 0, shares: [1], peers: [peer('a')] } }, /group\.peers must list 2/],
    [{ group: { rank: 2, shares: [1, 1], peers: [peer('a'), peer('b')] } }, /group\.rank/],
    [{ group: { rank: 0, shares: [1, 1], peers: [peer('a'), peer('a')] } }, /names a node twice/],
    [{ group: { rank: 0, shares: [1, -1], peers: [peer('a'), peer('b')] } }, /group\.shares/],
    [{ group: { rank: 0, shares: [1], peers: [peer('a'), peer('b')] } }, /group\.shares/],
    [{ group: { rank: 0, shares: [1, 1], peers: [peer('a'), { ...peer('b'), host: 'x\ny' }] } }, /group\.peers\[1\]\.host/],
    [{ group: { rank: 0, shares: [1, 1], peers: [peer('a'), peer('b')], exchange: 'bf16' } }, /group\.exchange/],
    [{ group: { rank: 0, shares: [1, 1], peers: Array.from({ length: 65 }, (_, i) => peer(`n${i}`)) } }, /group\.peers must list 2 to 64/],
  ];
  for (const [patch, why] of cases) {
    assert.throws(() => validateLoadRequest({ ...load, ...patch }), (e) => isCairnError(e, 'BAD_ARGUMENT') && why.test(e.message), JSON.stringify(patch));
  }
});
