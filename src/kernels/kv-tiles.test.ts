/**
 * The tiled Q8_0 KV cache (kv-layout.ts, native/src/ops.h CAIRN_KV_Q8_0_TILES): storeKv writes the
 * twin's bytes and the rows' quantization; attention over tiles is the attention of the same rows
 * (bit for bit on the level whose kernels read tiles, within the attention tolerance elsewhere),
 * for every head size, GQA ratio, window start inside a tile, chunk edge and batch; and snapshots
 * move between tiled and row caches.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertClose, randomF32, seededRandom, type Tolerance } from '../../test/helpers/kernel-inputs.js';
import { GgmlType } from '../gguf/ggml-types.js';
import { KvCache } from '../model/kv-cache.js';
import { isCairnError } from '../util/errors.js';
import { ATTENTION_CHUNK, KV_TILE_ROWS, type AttentionParams } from './api.js';
import { clearTileLanes, rearrangeKvLayer, rowsFromTiles, tiledPositions, tilesFromRows } from './kv-layout.js';
import { cpuInfo, forceIsa, NativeKernels } from './native.js';
import { ReferenceKernels } from './reference.js';
import { refAttention, refStoreKv } from './reference/ops.js';

const native = new NativeKernels();
const reference = new ReferenceKernels();
// As native-ops.test.ts's Q8_0 attention: the levels' sums differ from the twin's in their order.
const ATTN_TOL: Tolerance = { rtol: 0, atol: 2 ** -11 };
const Q8 = GgmlType.Q8_0;

/** Bytes of `positions` rows of `rowElems` Q8_0 elements. */
const q8Bytes = (positions: number, rowElems: number) => (positions * rowElems * 34) / 32;

/** Each head's rows of a tiled cache, as a row cache of the same capacity holds them. */
function untile(cache: Uint8Array, heads: number, headDim: number, part: 'k' | 'v'): Uint8Array {
  const hb = (headDim / 32) * 34;
  const cap = cache.length / heads / hb;
  const out = new Uint8Array(cache.length);
  for (let h = 0; h < heads; h++) out.set(rowsFromTiles(cache.subarray(h * cap * hb, (h + 1) * cap * hb), cap, hb, part), h * cap * hb);
  return out;
}

function expectBadArgument(fn: () => void, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => isCairnError(err, 'BAD_ARGUMENT') && pattern.test((err as Error).message));
}

describe('tiled Q8_0 KV layout', () => {
  it('tiles hold the rows they were made from, and a snapshot moves between the orders and back', () => {
    const rand = seededRandom(41);
    for (const [n, headDim, heads] of [
      [1, 32, 1],
      [16, 64, 2],
      [17, 96, 3],
      [45, 128, 2],
      [100, 256, 1],
    ]) {
      const hb = (headDim / 32) * 34;
      const rows = Uint8Array.from({ length: n * hb }, () => Math.floor(rand() * 256));
      for (const part of ['k', 'v'] as const) {
        const tiles = tilesFromRows(rows, n, hb, part);
        assert.equal(tiles.length, tiledPositions(n) * hb);
        assert.deepEqual(rowsFromTiles(tiles, n, hb, part), rows, `${part} d${headDim} n${n}`);
      }
      // A layer: each head's keys then each head's values, in `heads` order.
      const layer = Uint8Array.from({ length: n * heads * 2 * hb }, () => Math.floor(rand() * 256));
      const tiled = rearrangeKvLayer(layer, n, heads, hb, hb, 'heads', 'tiles');
      assert.equal(tiled.length, tiledPositions(n) * heads * 2 * hb);
      assert.deepEqual(rearrangeKvLayer(tiled, n, heads, hb, hb, 'tiles', 'heads'), layer);
      const rowOrder = rearrangeKvLayer(layer, n, heads, hb, hb, 'heads', 'rows');
      assert.deepEqual(
        rearrangeKvLayer(rearrangeKvLayer(rowOrder, n, heads, hb, hb, 'rows', 'tiles'), n, heads, hb, hb, 'tiles', 'rows'),
        rowOrder,
      );
      assert.throws(() => rearrangeKvLayer(tiled.subarray(1), n, heads, hb, hb, 'tiles', 'heads'), RangeError);
    }
  });

  it('clearing lanes zeroes those positions only', () => {
    const hb = 2 * 34;
    const rows = Uint8Array.from({ length: 16 * hb }, (_, i) => (i * 7 + 3) & 0xff);
    for (const part of ['k', 'v'] as const) {
      const tiles = tilesFromRows(rows, 16, hb, part);
      clearTileLanes(tiles, 5, 2, part);
      const back = rowsFromTiles(tiles, 16, hb, part);
      assert.deepEqual(back.subarray(0, 5 * hb), rows.subarray(0, 5 * hb), `${part}: lanes before 5 kept`);
      // The stored tile itself: zeros where the tile of the first 5 positions alone has them.
      const fresh = tilesFromRows(rows.subarray(0, 5 * hb), 5, hb, part);
      assert.deepEqual(tiles, fresh, `${part}: the tile of the first 5 positions alone`);
    }
  });
});

for (const isa of cpuInfo().availableIsas) {
  describe(`tiled Q8_0 KV cache, ${isa} path`, () => {
    before(() => forceIsa(isa));
    after(() => forceIsa(null));
    // Where the level's kernels read tiles (its preferred layout), the same arithmetic as its row kernels.
    const exact = () => native.kvTilesPreferred();

    it('storeKv writes the twin bytes, the quantization of the rows', () => {
      const rand = seededRandom(42);
      for (const [headDim, heads, pos0, nTokens] of [
        [32, 1, 0, 1],
        [64, 2, 5, 7],
        [96, 3, 15, 18],
        [128, 2, 31, 33],
        [256, 1, 16, 16],
      ]) {
        const row = heads * headDim;
        const cap = tiledPositions(pos0 + nTokens + 5);
        const k = randomF32(nTokens * row, rand, 3);
        const v = randomF32(nTokens * row, rand, 3);
        const fill = (b: number) => new Uint8Array(q8Bytes(cap, row)).fill(b);
        const [twinK, twinV, gotK, gotV, rowsK, rowsV] = [fill(0xa5), fill(0x5a), fill(0xa5), fill(0x5a), fill(0), fill(0)];
        refStoreKv(k, v, twinK, twinV, Q8, row, pos0, nTokens, heads, true);
        native.storeKv(k, v, gotK, gotV, Q8, row, pos0, nTokens, heads, true);
        const label = `d${headDim} x${heads} at ${pos0} + ${nTokens}`;
        assert.deepEqual(gotK, twinK, `${label}: keys`);
        assert.deepEqual(gotV, twinV, `${label}: values`);
        native.storeKv(k, v, rowsK, rowsV, Q8, row, pos0, nTokens, heads);
        const hb = (headDim / 32) * 34;
        for (const [tiled, rows, part] of [
          [gotK, rowsK, 'k'],
          [gotV, rowsV, 'v'],
        ] as const) {
          const back = untile(tiled, heads, headDim, part);
          for (let h = 0; h < heads; h++) {
            const at = (h * cap + pos0) * hb;
            assert.deepEqual(back.subarray(at, at + nTokens * hb), rows.subarray(at, at + nTokens * hb), `${label}: ${part} head ${h}`);
          }
        }
      }
    });

    it('attention over tiles is the attention of the same rows: head sizes, GQA ratios, windows, sinks, chunk edges', () => {
      const rand = seededRandom(43);
      const cases = [
        { pos0: 0, nTokens: 1, window: 0, sinks: false },
        { pos0: 45, nTokens: 7, window: 0, sinks: false },
        { pos0: ATTENTION_CHUNK - 3, nTokens: 9, window: 0, sinks: true },
        { pos0: 2 * ATTENTION_CHUNK + 5, nTokens: 1, window: 0, sinks: false },
        // Windows that start inside a tile, inside a chunk, on a chunk's edge.
        { pos0: 3 * ATTENTION_CHUNK + 17, nTokens: 5, window: ATTENTION_CHUNK + 1, sinks: false },
        { pos0: 3 * ATTENTION_CHUNK + 17, nTokens: 1, window: 40, sinks: true },
        { pos0: 700, nTokens: 17, window: 300, sinks: false },
      ];
      for (const headDim of [32, 64, 96, 128, 256]) {
        for (const ratio of [1, 3, 4]) {
          for (const c of cases) {
            if (headDim >= 128 && c.pos0 > ATTENTION_CHUNK && ratio !== 4) continue; // the deep cases once per large head
            const nKvHead = 2,
              nHead = nKvHead * ratio,
              row = nKvHead * headDim,
              ctx = c.pos0 + c.nTokens;
            const cap = tiledPositions(ctx + 3);
            const k = randomF32(ctx * row, rand),
              v = randomF32(ctx * row, rand);
            const [rk, rv, tk, tv] = [0, 0, 0, 0].map(() => new Uint8Array(q8Bytes(cap, row)));
            native.storeKv(k, v, rk, rv, Q8, row, 0, ctx, nKvHead);
            // The tiled cache written as a prompt then its decode tokens would write it.
            const split = Math.max(0, c.pos0 - 1);
            native.storeKv(k.subarray(0, split * row), v.subarray(0, split * row), tk, tv, Q8, row, 0, split, nKvHead, true);
            native.storeKv(k.subarray(split * row), v.subarray(split * row), tk, tv, Q8, row, split, ctx - split, nKvHead, true);
            const q = randomF32(c.nTokens * nHead * headDim, rand, 6);
            const p: AttentionParams = {
              nTokens: c.nTokens,
              nHead,
              nKvHead,
              headDim,
              pos0: c.pos0,
              scale: 1 / Math.sqrt(headDim),
              kvType: Q8,
              window: c.window,
              sinks: c.sinks ? randomF32(nHead, rand, 4) : undefined,
            };
            const fromRows = new Float32Array(q.length),
              fromTiles = new Float32Array(q.length),
              twin = new Float32Array(q.length);
            native.attention(q, rk, rv, p, fromRows);
            native.attention(q, tk, tv, { ...p, kvTiles: true }, fromTiles);
            const label = `d${headDim} gqa${ratio} ${JSON.stringify(c)}`;
            if (exact()) assert.deepEqual(fromTiles, fromRows, label);
            else assertClose(fromTiles, fromRows, ATTN_TOL, label);
            refAttention(q, tk, tv, { ...p, kvTiles: true }, twin);
            assertClose(fromTiles, twin, ATTN_TOL, `${label}: against the twin`);
          }
        }
      }
    });

    it('a prompt attended in one call equals its tokens one by one; attentionSpans equals span by span', () => {
      const rand = seededRandom(44);
      const nKvHead = 2,
        nHead = 8,
        headDim = 64,
        row = nKvHead * headDim,
        qRow = nHead * headDim;
      for (const [pos0, window] of [
        [150, 0],
        [700, 257],
      ]) {
        const nTokens = 45,
          ctx = pos0 + nTokens,
          cap = tiledPositions(ctx);
        const kc = new Uint8Array(q8Bytes(cap, row)),
          vc = new Uint8Array(q8Bytes(cap, row));
        native.storeKv(randomF32(ctx * row, rand), randomF32(ctx * row, rand), kc, vc, Q8, row, 0, ctx, nKvHead, true);
        const q = randomF32(nTokens * qRow, rand, 3);
        const p: AttentionParams = { nTokens, nHead, nKvHead, headDim, pos0, scale: 0.125, kvType: Q8, kvTiles: true, window };
        const all = new Float32Array(q.length);
        native.attention(q, kc, vc, p, all);
        for (let t = 0; t < nTokens; t++) {
          const one = new Float32Array(qRow);
          native.attention(q.slice(t * qRow, (t + 1) * qRow), kc, vc, { ...p, nTokens: 1, pos0: pos0 + t }, one);
          assert.deepEqual(all.subarray(t * qRow, (t + 1) * qRow), one, `token ${t} at ${pos0}, window ${window}`);
        }
      }
      // Several sequences at once: decode tokens at several depths and a prompt.
      const shapes = [
        [1, 0],
        [1, 17],
        [1, 300],
        [7, 31],
        [1, 1000],
      ];
      const starts = shapes.map((_, i) => shapes.slice(0, i).reduce((a, s) => a + s[0], 0));
      const rows = shapes.reduce((a, s) => a + s[0], 0);
      const k = randomF32(rows * row, rand),
        v = randomF32(rows * row, rand),
        q = randomF32(rows * qRow, rand, 3);
      const caches = shapes.map(([n, pos0]) => {
        const cap = tiledPositions(pos0 + n + 1);
        const kc = new Uint8Array(q8Bytes(cap, row)),
          vc = new Uint8Array(q8Bytes(cap, row));
        native.storeKv(randomF32(pos0 * row, rand), randomF32(pos0 * row, rand), kc, vc, Q8, row, 0, pos0, nKvHead, true);
        return { kc, vc };
      });
      const p: AttentionParams = { nTokens: 0, nHead, nKvHead, headDim, pos0: 0, scale: 0.125, kvType: Q8, kvTiles: true };
      const want = new Float32Array(rows * qRow);
      caches.forEach(({ kc, vc }, i) => {
        const [n, pos0] = shapes[i],
          s = starts[i];
        const kc2 = kc.slice(),
          vc2 = vc.slice();
        native.storeKv(k.subarray(s * row, (s + n) * row), v.subarray(s * row, (s + n) * row), kc2, vc2, Q8, row, pos0, n, nKvHead, true);
        native.attention(
          q.subarray(s * qRow, (s + n) * qRow),
          kc2,
          vc2,
          { ...p, nTokens: n, pos0 },
          want.subarray(s * qRow, (s + n) * qRow),
        );
      });
      const spans = caches.map((c, i) => ({
        start: starts[i],
        nTokens: shapes[i][0],
        pos0: shapes[i][1],
        kCache: c.kc.slice(),
        vCache: c.vc.slice(),
      }));
      const got = new Float32Array(rows * qRow);
      native.attentionSpans(q, k, v, spans, p, got);
      assert.deepEqual(got, want);
      const twin = new Float32Array(rows * qRow);
      reference.attentionSpans(
        q,
        k,
        v,
        caches.map((c, i) => ({ start: starts[i], nTokens: shapes[i][0], pos0: shapes[i][1], kCache: c.kc.slice(), vCache: c.vc.slice() })),
        p,
        twin,
      );
      assertClose(got, twin, ATTN_TOL, 'against the twin');
    });
  });
}

describe('tiled Q8_0 caches refuse what they cannot be', () => {
  const row = 64;
  const k = new Float32Array(row);
  const cache = () => new Uint8Array(q8Bytes(16, row));
  for (const kernels of [native, reference]) {
    it(`${kernels.name}: tiles only for Q8_0, whole tiles only, a boolean flag`, () => {
      expectBadArgument(
        () => kernels.storeKv(k, k, new Uint8Array(16 * row * 2), new Uint8Array(16 * row * 2), GgmlType.F16, row, 0, 1, 1, true),
        /only a Q8_0 cache/,
      );
      expectBadArgument(() => kernels.storeKv(k, k, new Uint8Array(q8Bytes(17, row)), cache(), Q8, row, 0, 1, 1, true), /multiple of 16/);
      expectBadArgument(() => kernels.storeKv(k, k, cache(), cache(), Q8, row, 0, 1, 1, 'yes' as unknown as boolean), /must be a boolean/);
      const p: AttentionParams = { nTokens: 1, nHead: 2, nKvHead: 1, headDim: 64, pos0: 0, scale: 0.125, kvType: Q8, kvTiles: true };
      const out = new Float32Array(128);
      expectBadArgument(
        () => kernels.attention(new Float32Array(128), new Uint8Array(q8Bytes(33, row)), cache(), p, out),
        /multiple of 16/,
      );
      expectBadArgument(
        () => kernels.attention(new Float32Array(128), cache(), cache(), { ...p, kvType: GgmlType.F32 }, out),
        /only a Q8_0 cache/,
      );
    });
  }
});

describe('a tiled KvCache', () => {
  it('is tiled only for Q8_0 with keys and values apart, its positions rounded up to whole tiles', () => {
    const rows = [{ k: 128, v: 128, heads: 2 }];
    assert.equal(new KvCache(rows, 1, 40, Q8, { tiles: true }).tiles, true);
    assert.equal(new KvCache(rows, 1, 40, Q8, { tiles: true }).bytes, q8Bytes(48, 256));
    assert.equal(new KvCache(rows, 1, 40, GgmlType.F16, { tiles: true }).tiles, false);
    assert.equal(new KvCache([{ k: 576, v: 0, heads: 1 }], 1, 40, Q8, { tiles: true }).tiles, false, 'latent attention keeps rows');
  });

  it('snapshots, restores and prefix copies hold the same rows as a row cache, in either direction', () => {
    const rand = seededRandom(45);
    const shape = [
      { k: 128, v: 128, heads: 2 },
      { k: 64, v: 96, heads: 1 },
    ];
    const tiled = new KvCache(shape, 3, 40, Q8, { tiles: true });
    const plain = new KvCache(shape, 3, 40, Q8);
    const n = 21;
    // The same positions stored in both; the tiled slot first held 32 positions of an earlier
    // sequence, whose lanes past n a snapshot must not carry.
    shape.forEach((r, i) => {
      const k = randomF32(n * r.k, rand),
        v = randomF32(n * r.v, rand);
      // Keys and values of different head sizes: each part stored on its own (the other into scratch).
      const kv = (cache: KvCache, tiles: boolean, kx: Float32Array, vx: Float32Array, m: number) => {
        native.storeKv(kx, kx, cache.keys(i, 0), new Uint8Array(cache.keys(i, 0).length), Q8, r.k, 0, m, r.heads, tiles);
        native.storeKv(vx, vx, new Uint8Array(cache.values(i, 0).length), cache.values(i, 0), Q8, r.v, 0, m, r.heads, tiles);
      };
      kv(tiled, true, randomF32(32 * r.k, rand, 5), randomF32(32 * r.v, rand, 5), 32);
      kv(tiled, true, k, v, n);
      kv(plain, false, k, v, n);
    });
    const snapT = tiled.snapshot(0, n);
    const snapP = plain.snapshot(0, n);
    assert.equal(snapT.layout, 'tiles');
    const heads = (cache: KvCache, slot: number) =>
      cache.rows.map((r, i) =>
        rearrangeKvLayer(
          cache.snapshot(slot, n).layers[i],
          n,
          r.heads,
          (r.k / r.heads) * (34 / 32),
          (r.v / r.heads) * (34 / 32),
          cache.tiles ? 'tiles' : 'heads',
          'heads',
        ),
      );
    assert.deepEqual(heads(tiled, 0), heads(plain, 0), 'the same rows');
    // Every way across: tiled -> plain, plain -> tiled, tiled -> tiled, and prefix copies in each.
    plain.restore(snapT, 1);
    tiled.restore(snapP, 1);
    tiled.restore(snapT, 2);
    plain.copyPrefix(1, 2, n);
    assert.deepEqual(heads(plain, 1), heads(plain, 0));
    assert.deepEqual(heads(plain, 2), heads(plain, 0));
    assert.deepEqual(heads(tiled, 1), heads(plain, 0));
    assert.deepEqual(heads(tiled, 2), heads(plain, 0));
    tiled.copyPrefix(1, 0, n);
    assert.deepEqual(heads(tiled, 0), heads(plain, 0));
    // The snapshot's last tile holds positions 16..20 and zeros: the tile of those rows alone.
    const r0 = tiled.rows[0],
      hb = (r0.k / r0.heads) * (34 / 32);
    const lastTile = snapT.layers[0].subarray(KV_TILE_ROWS * hb, 2 * KV_TILE_ROWS * hb);
    assert.deepEqual(
      lastTile,
      tilesFromRows(snapP.layers[0].subarray(KV_TILE_ROWS * hb, n * hb), n - KV_TILE_ROWS, hb, 'k'),
      'no stale lanes in the snapshot',
    );
  });
});
