/**
 * Shard files for the ranks of a group hold only what each rank reads: row and expert ranges as
 * stored, input columns gathered, vectors' ranges; a rank loaded from its shard file computes
 * exactly what it computes from the whole model; a shard made for another split is refused when it
 * loads; and a shard file's slice list is checked like any other bytes of a file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadExpertRank, loadShards } from '../engine/load.js';
import { GgmlType } from '../gguf/ggml-types.js';
import { readGguf } from '../gguf/reader.js';
import { GgufValueType } from '../gguf/values.js';
import { ggufLayout } from '../gguf/writer.js';
import { runExpertGroup } from '../model/expert-group.js';
import type { ShardSpec } from '../model/shard.js';
import { writeSyntheticModel, type SyntheticShape } from '../model/synthetic.js';
import { runGroup } from '../model/tensor-group.js';
import { SHARD_SLICES_KEY, readSlices } from '../model/tensor-slices.js';
import { isCairnError } from '../util/errors.js';
import { fileSha256 } from '../util/file-hash.js';
import { prepareShard, type PreparedShard } from './shard-files.js';
import { scratchDir } from '../../test/helpers/paths.js';
import { quantizeWithKernels } from '../../test/helpers/oracle-greedy.js';
import { greedyTwo } from '../../test/helpers/greedy-two.js';

const dir = scratchDir('shard-slices');
mkdirSync(dir, { recursive: true });
process.env.XDG_CACHE_HOME = join(dir, 'cache');
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

/** Writes a prepared shard as a node would receive it: header, then each piece at its place. */
function writeShard(path: string, model: string, s: PreparedShard): void {
  const source = readFileSync(model);
  const out = new Uint8Array(s.manifest.fileSize);
  out.set(s.header, 0);
  s.pieces.forEach((p, i) => out.set(p.extract(source.subarray(p.source.offset, p.source.offset + p.source.byteLength)), s.manifest.tensors[i].offset));
  writeFileSync(path, out);
}

function model(name: string, shape: SyntheticShape, quant: GgmlType): string {
  const path = join(dir, `${name}.gguf`);
  writeSyntheticModel(path, { ...shape, quant, seed: 9 }, quantizeWithKernels);
  return path;
}

const opts = { ctx: 32, slots: 2, kvType: GgmlType.F32, maxBatch: 8, prefetch: false } as const;

test('tensor-parallel ranks loaded from their shard files compute what they compute from the model, holding about their share', async () => {
  const path = model('dense', { arch: 'qwen2', nEmbd: 256, nLayer: 2, nHead: 8, nKvHead: 4, nFf: 512, nVocab: 300, attnExtras: { qkvBias: true } }, GgmlType.Q8_0);
  const file = readGguf(path);
  const sha = await fileSha256(path);
  const shares = [1, 3];
  const spec = (rank: number): ShardSpec => ({ layerStart: 0, layerEnd: 2, splitRank: rank, splitCount: 2, splitShares: shares });
  const whole = await prepareShard(path, file, sha, 2, { layerStart: 0, layerEnd: 2 });
  const fromModel = await Promise.all([0, 1].map((r) => loadShards(path, { ...opts, shards: [spec(r)] })));
  const fromShards = await Promise.all(
    [0, 1].map(async (r) => {
      const s = await prepareShard(path, file, sha, 2, spec(r));
      assert.ok(s.manifest.fileSize < 0.8 * whole.manifest.fileSize, `rank ${r}: ${s.manifest.fileSize} of ${whole.manifest.fileSize} bytes`);
      const kinds = new Set(s.pieces.map((p) => p.slice?.kind ?? 'whole'));
      assert.deepEqual([...kinds].sort(), ['columns', 'outer', 'whole'], 'rows, gathered columns, and whole tensors (norms, embedding)');
      const shardPath = join(dir, `dense-rank${r}.gguf`);
      writeShard(shardPath, path, s);
      return loadShards(shardPath, { ...opts, shards: [spec(r)] });
    }),
  );
  try {
    const cfg = fromModel[0].config;
    const a = greedyTwo((b) => runGroup(fromModel.map((l) => l.shards[0]), b), cfg.nVocab);
    const b = greedyTwo((b) => runGroup(fromShards.map((l) => l.shards[0]), b), cfg.nVocab);
    assert.deepEqual(b.logits, a.logits);
    // Rank 1 holds three quarters of the split tensors: its shard file is the larger.
    assert.ok(fromShards[1].mappedBytes > fromShards[0].mappedBytes);
    // A shard made for rank 0 does not serve rank 1.
    await assert.rejects(
      loadShards(join(dir, 'dense-rank0.gguf'), { ...opts, shards: [spec(1)] }),
      (e) => isCairnError(e, 'MODEL_UNSUPPORTED') && /made for another plan/.test((e as Error).message),
    );
  } finally {
    for (const l of [...fromModel, ...fromShards]) l.close();
  }
});

test("an expert rank's shard file holds its experts and nothing else, and computes as the model does", async () => {
  const path = model('moe', { arch: 'qwen3moe', nEmbd: 128, nLayer: 2, nHead: 8, nKvHead: 4, headDim: 16, nFf: 128, nVocab: 300, moe: { experts: 8, used: 2, width: 64 } }, GgmlType.Q8_0);
  const file = readGguf(path);
  const sha = await fileSha256(path);
  const spec = (rank: number): ShardSpec => ({ layerStart: 0, layerEnd: 2, splitRank: rank, splitCount: 3, splitShares: [2, 1, 1], splitMode: 'expert' });
  const s = await prepareShard(path, file, sha, 2, spec(2));
  assert.ok(s.pieces.length > 0 && s.pieces.every((p) => /_exps\.weight$/.test(p.source.name) && p.slice?.kind === 'outer'));
  assert.ok(s.pieces.every((p) => p.slice!.end - p.slice!.start === 2), 'rank 2 of shares 2:1:1 holds 2 of 8 experts');
  const shardPath = join(dir, 'moe-rank2.gguf');
  writeShard(shardPath, path, s);
  const home = await loadShards(path, { ...opts, shards: [spec(0)] });
  const ranks = [await loadExpertRank(path, spec(1), opts), await loadExpertRank(shardPath, spec(2), opts)];
  const direct = await loadExpertRank(path, spec(2), opts);
  try {
    const cfg = home.config;
    const a = greedyTwo((b) => runExpertGroup(home.shards[0], [ranks[0].expert, direct.expert], b), cfg.nVocab);
    const b = greedyTwo((b) => runExpertGroup(home.shards[0], ranks.map((r) => r.expert), b), cfg.nVocab);
    assert.deepEqual(b.logits, a.logits);
    assert.equal(ranks[1].mappedBytes, direct.mappedBytes);
  } finally {
    for (const l of [home, ...ranks, direct]) l.close();
  }
});

test('a shard file whose slice list is wrong is refused as malformed', () => {
  const base = readGguf(join(dir, 'moe-rank2.gguf'));
  const t = base.tensors[0];
  const cases: [unknown, RegExp][] = [
    ['not json', /not JSON/],
    [{ name: t.name }, /not a list/],
    [[{ name: 'nope', kind: 'outer', start: 0, end: 2, full: 8 }], /not a tensor/],
    [[{ name: t.name, kind: 'rows', start: 0, end: 2, full: 8 }], /kind/],
    [[{ name: t.name, kind: 'outer', start: 2, end: 2, full: 8 }], /not a slice/],
    [[{ name: t.name, kind: 'outer', start: 0, end: 9, full: 8 }], /not a slice/],
    [[{ name: t.name, kind: 'outer', start: 0, end: 3, full: 8 }], /holds 2, not 3/],
    [
      [
        { name: t.name, kind: 'outer', start: 0, end: 2, full: 8 },
        { name: t.name, kind: 'outer', start: 0, end: 2, full: 8 },
      ],
      /named twice/,
    ],
  ];
  for (const [value, why] of cases) {
    const metadata = new Map(base.metadata);
    metadata.set(SHARD_SLICES_KEY, { type: GgufValueType.STRING, value: typeof value === 'string' ? value : JSON.stringify(value) });
    const layout = ggufLayout({ version: 3, alignment: base.alignment, metadata, tensors: base.tensors.map((x) => ({ name: x.name, type: x.type, dims: x.dims })) });
    const path = join(dir, 'bad-slices.gguf');
    const out = new Uint8Array(layout.fileSize);
    out.set(layout.header);
    writeFileSync(path, out);
    assert.throws(
      () => readSlices(readGguf(path)),
      (e) => isCairnError(e, 'GGUF_MALFORMED') && why.test((e as Error).message),
      JSON.stringify(value),
    );
  }
});
