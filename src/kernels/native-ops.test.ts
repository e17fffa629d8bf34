/**
 * The native float kernels against their TypeScript twins, on every instruction-set path this CPU
 * can run (forceIsa), at awkward sizes. Tolerances are stated per kernel with the reason the two
 * sides may differ at all; anything wrong in indexing, masking or a formula shows up as errors
 * many orders of magnitude larger.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertClose, randomF32, seededRandom, type Tolerance } from '../../test/helpers/kernel-inputs.js';
import { ATTENTION_CHUNK, kvElementBytes, type AttentionParams, type KvType, type RopeParams } from './api.js';
import { cpuInfo, forceIsa, NativeKernels } from './native.js';
import { ReferenceKernels } from './reference.js';
import { isCairnError } from '../util/errors.js';
import { refAdd, refAttention, refGeglu, refRmsNorm, refRope, refSoftmax, refStoreKv, refSwiglu } from './reference/ops.js';

const native = new NativeKernels();

// The same rounding steps on both sides; only the association of the f64 sum of squares differs,
// which can move the f32 mean by one ulp and so each output by about two ulps.
const RMS_TOL: Tolerance = { rtol: 3e-7, atol: 1e-30 };
// Angles are computed identically in f32; libm's cosf/sinf and V8's Math.cos/sin (rounded to f32)
// can differ by one ulp, and inputs are in [-1, 1), so outputs differ by a few ulps of 1.
const ROPE_TOL: Tolerance = { rtol: 0, atol: 1e-6 };
// The vectorized exp is accurate to about 2 ulps (the reference rounds exp correctly); the sum and
// the scale add about one more. atol covers results in the subnormal range.
const SOFTMAX_TOL: Tolerance = { rtol: 1e-6, atol: 1e-38 };
const SWIGLU_TOL: Tolerance = { rtol: 1e-6, atol: 1e-30 };
// The gelu table is built with tanhf on one side and Math.tanh on the other; rounded to f16 they
// can land on neighbouring halves (one f16 ulp, 2^-10 relative; 2^-24 absolute near zero, times |up| <= 2).
const GEGLU_TOL: Tolerance = { rtol: 1e-3, atol: 2e-7 };
// Outputs are convex combinations of V rows in [-1, 1): the native f32 lane sums differ from the
// reference's f64 sums by a few ulps per accumulated term at most.
const ATTN_F32_TOL: Tolerance = { rtol: 0, atol: 1e-5 };
// With an F16 cache the softmax weights are rounded to f16: a weight a few f32 ulps away (the
// scores come from differently ordered sums) can round to the neighbouring half, which moves the
// output by 2^-11 * weight * |v| <= 2^-11 per such weight (weights sum to 1, |v| < 1).
const ATTN_F16_TOL: Tolerance = { rtol: 0, atol: 2 ** -11 };

const ROW_COUNTS = [1, 3, 31, 33, 4097];
const LENGTHS = [1, 3, 31, 33, 4097, 100003];

function expectBadArgument(fn: () => void, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => isCairnError(err, 'BAD_ARGUMENT') && pattern.test((err as Error).message));
}

for (const isa of cpuInfo().availableIsas) {
  describe(`native float kernels, ${isa} path`, () => {
    before(() => forceIsa(isa));
    after(() => forceIsa(null));

    it('runs on the forced path', () => {
      assert.equal(native.name, `native-${isa}`);
    });

    it('rmsNorm matches the reference for awkward row counts and dims, in place too', () => {
      const rand = seededRandom(11);
      for (const rows of ROW_COUNTS) {
        for (const dim of rows === 4097 ? [64] : [1, 31, 33, 4097]) {
          const x = randomF32(rows * dim, rand, 3);
          const w = randomF32(dim, rand);
          const want = new Float32Array(rows * dim);
          refRmsNorm(x, w, rows, dim, 1e-5, want);
          const got = new Float32Array(rows * dim);
          native.rmsNorm(x, w, rows, dim, 1e-5, got);
          assertClose(got, want, RMS_TOL, `rmsNorm ${rows}x${dim}`);
          native.rmsNorm(x, w, rows, dim, 1e-5, x);
          assertClose(x, want, RMS_TOL, `rmsNorm in place ${rows}x${dim}`);
        }
      }
    });

    it('rope matches the reference in both modes, partial rotation, freq factors and scaling', () => {
      const rand = seededRandom(12);
      for (const headDim of [64, 128, 80]) {
        for (const mode of ['normal', 'neox'] as const) {
          for (const nRot of [headDim, headDim / 2]) {
            for (const nTokens of [1, 7]) {
              for (const pos0 of [0, 1000, 30000]) {
                const factors = Float32Array.from({ length: nRot / 2 }, (_, i) => 1 + (i % 7) * 0.75);
                const p: RopeParams = {
                  nRot,
                  freqBase: pos0 === 1000 ? 500000 : 10000,
                  freqScale: pos0 === 30000 ? 0.25 : 1,
                  mode,
                  freqFactors: nRot === headDim ? undefined : factors,
                };
                const nHeads = 3;
                const positions = Int32Array.from({ length: nTokens }, (_, t) => pos0 + t * 5);
                const x = randomF32(nTokens * nHeads * headDim, rand);
                const want = x.slice();
                refRope(want, nTokens, nHeads, headDim, positions, p);
                native.rope(x, nTokens, nHeads, headDim, positions, p);
                assertClose(x, want, ROPE_TOL, `rope ${mode} d${headDim} r${nRot} t${nTokens} p${pos0}`);
              }
            }
          }
        }
      }
    });

    it('softmax matches the reference, including large ranges and -Infinity entries', () => {
      const rand = seededRandom(13);
      for (const rows of [1, 3, 31]) {
        for (const cols of [1, 3, 31, 33, 4097]) {
          const x = randomF32(rows * cols, rand, 40);
          if (cols > 3) x[cols - 2] = -Infinity; // a masked position
          const want = x.slice();
          refSoftmax(want, rows, cols);
          native.softmax(x, rows, cols);
          assertClose(x, want, SOFTMAX_TOL, `softmax ${rows}x${cols}`);
        }
      }
    });

    it('swiglu, geglu and add match the reference for awkward lengths, with out aliasing an input', () => {
      const rand = seededRandom(14);
      for (const n of LENGTHS) {
        // Gates cover geglu's cut-offs at +-10 and swiglu's saturation.
        const gate = randomF32(n, rand, 14);
        const up = randomF32(n, rand, 2);
        const cases = [
          ['swiglu', refSwiglu, SWIGLU_TOL],
          ['geglu', refGeglu, GEGLU_TOL],
          ['add', refAdd, { rtol: 0, atol: 0 }],
        ] as const;
        for (const [name, ref, tol] of cases) {
          const want = new Float32Array(n);
          ref(gate, up, n, want);
          const got = new Float32Array(n);
          native[name](gate, up, n, got);
          assertClose(got, want, tol, `${name} n=${n}`);
          const inPlace = up.slice();
          native[name](gate, inPlace, n, inPlace);
          assertClose(inPlace, want, tol, `${name} in place n=${n}`);
        }
      }
    });

    it('storeKv writes exactly the reference bytes and leaves other rows alone', () => {
      const rand = seededRandom(15);
      for (const kvType of [0, 1, 8] as KvType[]) {
        // [rowElems, pos0, nTokens, heads]: heads of odd sizes too; the caches hold two positions more
        // than are written, so each head's stretch starts past the last written row of the one before.
        for (const [rowElems, pos0, nTokens, heads] of [
          [1, 0, 1, 1],
          [33, 5, 7, 1],
          [33, 5, 7, 3],
          [4097, 2, 3, 1],
          [80, 0, 1, 5],
          [32, 3, 2, 1],
          [96, 4, 3, 3],
          [4096, 1, 3, 8],
        ]) {
          // Q8_0 heads are whole blocks of 32.
          if (kvType === 8 && (rowElems / heads) % 32 !== 0) continue;
          const size = kvElementBytes(kvType);
          const bytes = (pos0 + nTokens + 2) * rowElems * size;
          const k = randomF32(nTokens * rowElems, rand, 70000); // past f16's range too
          const v = randomF32(nTokens * rowElems, rand, 1e-6); // f16 subnormals
          const wantK = new Uint8Array(bytes).fill(0xa5);
          const wantV = new Uint8Array(bytes).fill(0x5a);
          const gotK = wantK.slice();
          const gotV = wantV.slice();
          refStoreKv(k, v, wantK, wantV, kvType, rowElems, pos0, nTokens, heads);
          native.storeKv(k, v, gotK, gotV, kvType, rowElems, pos0, nTokens, heads);
          assert.deepEqual(gotK, wantK, `k cache, type ${kvType}, ${rowElems}x${nTokens} at ${pos0}, ${heads} heads`);
          assert.deepEqual(gotV, wantV, `v cache, type ${kvType}, ${rowElems}x${nTokens} at ${pos0}, ${heads} heads`);
        }
      }
    });

    it('attention of a prompt read in tiles equals each token attended alone, bit for bit (windows and sinks too)', () => {
      const rand = seededRandom(17);
      for (const kvType of [0, 1, 8] as KvType[]) {
        // pos0 700: the context spans several chunks of the fused kernel, windows cross their edges.
        for (const [pos0, window, sinks] of [[150, 0, false], [150, 37, false], [150, 0, true], [150, 53, true], [700, 0, false], [700, 300, true], [700, 257, false]] as const) {
          const nKvHead = 2, ratio = 4, headDim = 64, nHead = nKvHead * ratio, nTokens = 45;
          const row = nKvHead * headDim, ctx = pos0 + nTokens, size = kvElementBytes(kvType);
          // Room for more positions than the context (a slot's cache), the keys' and values' different.
          const kCache = new Uint8Array((ctx + 5) * row * size);
          const vCache = new Uint8Array((ctx + 300) * row * size);
          refStoreKv(randomF32(ctx * row, rand), randomF32(ctx * row, rand), kCache, vCache, kvType, row, 0, ctx, nKvHead);
          const q = randomF32(nTokens * nHead * headDim, rand, 3);
          const p: AttentionParams = { nTokens, nHead, nKvHead, headDim, pos0, scale: 1 / Math.sqrt(headDim), kvType, window, sinks: sinks ? randomF32(nHead, rand, 2) : undefined };
          const all = new Float32Array(q.length);
          native.attention(q, kCache, vCache, p, all);
          const per = nHead * headDim;
          for (let t = 0; t < nTokens; t++) {
            const one = new Float32Array(per);
            native.attention(q.slice(t * per, (t + 1) * per), kCache, vCache, { ...p, nTokens: 1, pos0: pos0 + t }, one);
            assert.deepEqual(all.subarray(t * per, (t + 1) * per), one, `token ${t}, kv${kvType}, at ${pos0}, window ${window}, sinks ${sinks}`);
          }
        }
      }
    });

    it('attentionSpans equals storeKv and attention span by span, bit for bit, many sequences at once', () => {
      const rand = seededRandom(19);
      const reference = new ReferenceKernels();
      for (const kvType of [0, 1, 8] as KvType[]) {
        for (const [window, sinks] of [[0, false], [100, true]] as const) {
          const nKvHead = 2, nHead = 8, headDim = 64, qRow = nHead * headDim, row = nKvHead * headDim, size = kvElementBytes(kvType);
          // Decode tokens at many depths, a prompt, an empty span, and one deep enough to run alone on every thread; rows not in span order.
          const shapes = [[1, 0], [1, 5], [1, 255], [1, 256], [1, 700], [45, 0], [3, 300], [0, 12], [1, 9000], [2, 31], ...Array.from({ length: 12 }, (_, i) => [1, 17 * i + 1])];
          const order = shapes.map((_, i) => i).sort((a, b) => ((a * 7) % shapes.length) - ((b * 7) % shapes.length));
          let next = 0;
          const starts: number[] = [];
          for (const i of order) {
            starts[i] = next;
            next += shapes[i][0];
          }
          const rows = next;
          const k = randomF32(rows * row, rand), v = randomF32(rows * row, rand), q = randomF32(rows * qRow, rand, 3);
          const caches = shapes.map(([n, pos0]) => {
            const kc = new Uint8Array((pos0 + n + 3) * row * size), vc = new Uint8Array((pos0 + n + 9) * row * size);
            const old = pos0 * row;
            refStoreKv(randomF32(old, rand), randomF32(old, rand), kc, vc, kvType, row, 0, pos0, nKvHead);
            return { kc, vc };
          });
          const p: AttentionParams = { nTokens: 0, nHead, nKvHead, headDim, pos0: 0, scale: 1 / Math.sqrt(headDim), kvType, window, sinks: sinks ? randomF32(nHead, rand, 2) : undefined };
          // Span by span on copies of the caches: the result each span must get.
          const want = new Float32Array(rows * qRow);
          const wantCaches = caches.map(({ kc, vc }, i) => {
            const [n, pos0] = shapes[i], s = starts[i];
            const kc2 = kc.slice(), vc2 = vc.slice();
            native.storeKv(k.subarray(s * row, (s + n) * row), v.subarray(s * row, (s + n) * row), kc2, vc2, kvType, row, pos0, n, nKvHead);
            if (n > 0) native.attention(q.subarray(s * qRow, (s + n) * qRow), kc2, vc2, { ...p, nTokens: n, pos0 }, want.subarray(s * qRow, (s + n) * qRow));
            return { kc: kc2, vc: vc2 };
          });
          const spans = caches.map((c, i) => ({ start: starts[i], nTokens: shapes[i][0], pos0: shapes[i][1], kCache: c.kc.slice(), vCache: c.vc.slice() }));
          const got = new Float32Array(rows * qRow);
          native.attentionSpans(q, k, v, spans, p, got);
          const label = `kv${kvType} window ${window} sinks ${sinks}`;
          assert.deepEqual(got, want, label);
          spans.forEach((sp, i) => {
            assert.deepEqual(sp.kCache, wantCaches[i].kc, `${label}: span ${i}'s keys`);
            assert.deepEqual(sp.vCache, wantCaches[i].vc, `${label}: span ${i}'s values`);
          });
          // And the twin (span by span in TypeScript), within the attention tolerance.
          const twin = new Float32Array(rows * qRow);
          reference.attentionSpans(q, k, v, caches.map((c, i) => ({ ...spans[i], kCache: c.kc.slice(), vCache: c.vc.slice() })), p, twin);
          assertClose(got, twin, kvType === 0 ? ATTN_F32_TOL : ATTN_F16_TOL, `${label}: against the reference`);
        }
      }
    });

    it('attention over contexts of several chunks matches the reference: chunk edges, windows, sinks, softcapped scores', () => {
      const rand = seededRandom(18);
      const cases = [
        { pos0: ATTENTION_CHUNK - 3, nTokens: 9, window: 0, sinks: false, softcap: 0 },
        { pos0: 2 * ATTENTION_CHUNK, nTokens: 1, window: 0, sinks: true, softcap: 0 },
        { pos0: 3 * ATTENTION_CHUNK + 17, nTokens: 5, window: ATTENTION_CHUNK + 1, sinks: false, softcap: 0 },
        { pos0: 3 * ATTENTION_CHUNK + 17, nTokens: 1, window: 40, sinks: true, softcap: 0 },
        { pos0: 5 * ATTENTION_CHUNK - 1, nTokens: 2, window: 0, sinks: false, softcap: 0 },
        // Gemma 2's softcapping (scores of these queries reach well past 2): in one chunk, across chunks, in a window.
        { pos0: 20, nTokens: 6, window: 0, sinks: false, softcap: 2 },
        { pos0: 2 * ATTENTION_CHUNK + 5, nTokens: 3, window: 0, sinks: false, softcap: 2 },
        { pos0: 3 * ATTENTION_CHUNK + 17, nTokens: 4, window: ATTENTION_CHUNK + 1, sinks: false, softcap: 3 },
      ];
      for (const c of cases) {
        for (const kvType of [0, 1, 8] as KvType[]) {
          const nKvHead = 2, nHead = 6, headDim = 32;
          const row = nKvHead * headDim, ctx = c.pos0 + c.nTokens, size = kvElementBytes(kvType);
          const kCache = new Uint8Array((ctx + 7) * row * size);
          const vCache = new Uint8Array((ctx + 7) * row * size);
          refStoreKv(randomF32(ctx * row, rand), randomF32(ctx * row, rand), kCache, vCache, kvType, row, 0, ctx, nKvHead);
          // Larger queries make the scores peak, so merging chunks of very different maxima is tested.
          const q = randomF32(c.nTokens * nHead * headDim, rand, 6);
          const p: AttentionParams = { nTokens: c.nTokens, nHead, nKvHead, headDim, pos0: c.pos0, scale: 1 / Math.sqrt(headDim), kvType, window: c.window, sinks: c.sinks ? randomF32(nHead, rand, 4) : undefined, softcap: c.softcap };
          const want = new Float32Array(q.length);
          refAttention(q, kCache, vCache, p, want);
          const got = new Float32Array(q.length);
          native.attention(q, kCache, vCache, p, got);
          assertClose(got, want, kvType === 0 ? ATTN_F32_TOL : ATTN_F16_TOL, `attention kv${kvType} ${JSON.stringify(c)}`);
          if (c.softcap > 0) {
            const uncapped = new Float32Array(q.length);
            refAttention(q, kCache, vCache, { ...p, softcap: 0 }, uncapped);
            assert.ok(uncapped.some((x, i) => Math.abs(x - want[i]) > 0.05), 'the softcap changes the result');
          }
        }
      }
    });

    it('attention matches the reference: head dims, token counts, GQA ratios, positions, cache types', () => {
      const rand = seededRandom(16);
      // 36 is no multiple of the vector widths: the kernels' tails run. 96 and 32 are odd numbers of
      // Q8_0 blocks, which kernels taking blocks in pairs finish with a half pair. 192 and 256: Q8_0
      // tiles that transpose a block pair's dwords end with 3 and with no dwords left over.
      for (const headDim of [64, 128, 80, 36, 96, 32, 192, 256]) {
        // Ratios 3 and 5 leave groups of query heads that do not fill the kernels' blocks of four.
        for (const ratio of [1, 2, 3, 4, 5]) {
          for (const nTokens of [1, 7]) {
            for (const pos0 of [0, 45]) {
              for (const kvType of [0, 1, 8] as KvType[]) {
                if (kvType === 8 && headDim % 32 !== 0) continue;
                const nKvHead = 2;
                const nHead = nKvHead * ratio;
                const row = nKvHead * headDim;
                const ctx = pos0 + nTokens;
                const size = kvElementBytes(kvType);
                const kCache = new Uint8Array(ctx * row * size);
                const vCache = new Uint8Array(ctx * row * size);
                refStoreKv(randomF32(ctx * row, rand), randomF32(ctx * row, rand), kCache, vCache, kvType, row, 0, ctx, nKvHead);
                const q = randomF32(nTokens * nHead * headDim, rand, 3);
                const p: AttentionParams = { nTokens, nHead, nKvHead, headDim, pos0, scale: 1 / Math.sqrt(headDim), kvType };
                const want = new Float32Array(q.length);
                refAttention(q, kCache, vCache, p, want);
                const got = new Float32Array(q.length);
                native.attention(q, kCache, vCache, p, got);
                const label = `attention d${headDim} gqa${ratio} t${nTokens} p${pos0} kv${kvType}`;
                assertClose(got, want, kvType === 0 ? ATTN_F32_TOL : ATTN_F16_TOL, label);
              }
            }
          }
        }
      }
    });
  });
}

describe('native float kernels reject bad arguments', () => {
  const x = new Float32Array(8);
  it('names short arrays and bad shapes', () => {
    expectBadArgument(() => native.rmsNorm(x, x, 3, 4, 1e-5, new Float32Array(12)), /x is too short/);
    expectBadArgument(() => native.rmsNorm(x, x, 2, 4, Number.NaN, x), /eps must be a finite number/);
    expectBadArgument(() => native.softmax(x, 2, 0), /cols must be an integer/);
    expectBadArgument(() => native.add(x, x, 9, x), /a is too short/);
    expectBadArgument(() => native.swiglu(x, x, 1.5, x), /n must be an integer/);
    expectBadArgument(() => native.add(x, x, 4, new Float32Array(x.buffer, 4, 4)), /partly overlap/);
    expectBadArgument(() => native.add(new Uint8Array(8) as unknown as Float32Array, x, 4, x), /a must be a Float32Array/);
  });

  it('checks rope parameters', () => {
    const pos = new Int32Array(1);
    const p: RopeParams = { nRot: 8, freqBase: 10000, freqScale: 1, mode: 'normal' };
    expectBadArgument(() => native.rope(x, 1, 1, 8, pos, { ...p, nRot: 3 }), /nRot must be even/);
    expectBadArgument(() => native.rope(x, 1, 1, 8, pos, { ...p, nRot: 16 }), /nRot must be even and at most headDim/);
    expectBadArgument(() => native.rope(x, 1, 1, 8, pos, { ...p, mode: 'yarn' as never }), /mode must be 'normal' or 'neox'/);
    expectBadArgument(() => native.rope(x, 1, 1, 8, pos, { ...p, freqFactors: new Float32Array(2) }), /freqFactors is too short/);
    expectBadArgument(() => native.rope(x, 2, 1, 8, pos, p), /x is too short/);
  });

  it('checks attention and cache shapes', () => {
    const p: AttentionParams = { nTokens: 1, nHead: 3, nKvHead: 2, headDim: 4, pos0: 0, scale: 0.5, kvType: 0 };
    const cache = new Uint8Array(64);
    expectBadArgument(() => native.attention(new Float32Array(12), cache, cache, p, new Float32Array(12)), /multiple of params.nKvHead/);
    const ok: AttentionParams = { ...p, nHead: 2, pos0: 3 };
    expectBadArgument(() => native.attention(x, cache, cache, ok, new Float32Array(8)), /kCache is too short/);
    expectBadArgument(() => native.attention(x, cache, cache, { ...ok, pos0: 0 }, x), /out must not overlap q/);
    expectBadArgument(
      () => native.attention(x, cache.subarray(1), cache, { ...ok, pos0: 0, kvType: 1 }, new Float32Array(8)),
      /kCache must start at a multiple of 2 bytes/,
    );
    expectBadArgument(() => native.storeKv(x, x, cache, cache, 0, 4, 0, 2, 1), /different memory/);
    // attentionSpans: spans' rows and caches, each checked as attention and storeKv check theirs.
    const span = (start: number, nTokens: number, kCache = new Uint8Array(64), vCache = new Uint8Array(64)) => ({ start, nTokens, pos0: 0, kCache, vCache });
    const sp: AttentionParams = { ...ok, pos0: 0, nHead: 2, nKvHead: 1 };
    const q2 = new Float32Array(16), out2 = new Float32Array(16);
    native.attentionSpans(q2, q2.slice(0, 8), q2.slice(0, 8), [span(0, 1), span(1, 1)], sp, out2);
    expectBadArgument(() => native.attentionSpans(q2, q2, q2, [span(0, 2), span(1, 1)], sp, out2), /rows must not overlap/);
    expectBadArgument(() => native.attentionSpans(q2, q2, q2, [span(0, 1, cache), span(1, 1, new Uint8Array(64), cache)], sp, out2), /caches must be distinct/);
    expectBadArgument(() => native.attentionSpans(q2, q2, q2, [span(0, 1, cache.subarray(0, 32)), span(1, 1, cache.subarray(16))], sp, out2), /caches must be distinct/);
    expectBadArgument(() => native.attentionSpans(q2, q2, q2, [span(0, 1, cache, cache)], sp, out2), /caches must be distinct/);
    expectBadArgument(() => native.attentionSpans(q2, q2, q2, [span(0, 3)], sp, out2), /q is too short/);
    expectBadArgument(() => native.attentionSpans(q2, q2, q2, [{ ...span(0, 1), pos0: 20 }], sp, out2), /kCaches\[0\] is too short/);
    expectBadArgument(() => native.attentionSpans(q2, q2, q2, [span(0, 1)], sp, q2), /out must not overlap q/);
    expectBadArgument(() => native.attentionSpans(q2, q2, q2, [span(-1, 1)], sp, out2), /span 0: start must be an integer/);
    expectBadArgument(() => native.attentionSpans(q2, q2, q2, [span(0.5, 1)], sp, out2), /span 0: start must be an integer/);
    expectBadArgument(() => native.storeKv(x, x, cache, new Uint8Array(64), 2 as KvType, 4, 0, 2, 1), /kvType/);
    expectBadArgument(() => native.storeKv(x, x, cache, new Uint8Array(64), 0, 4, 0, 2, 3), /multiple of nKvHead/);
    expectBadArgument(() => native.storeKv(new Float32Array(64), new Float32Array(64), cache, new Uint8Array(256), 8, 64, 0, 1, 4), /heads of a multiple of 32/);
  });
});
