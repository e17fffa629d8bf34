/**
 * The native Mixture-of-Experts kernels against the TypeScript reference, on every instruction-set
 * path this machine can run, with awkward shapes: expert products (token and slot inputs, biases,
 * experts used by several tokens, by one, by none), their agreement with the dense matmul of each
 * expert, the weighted combination, gpt-oss's gated unit, and the checks on hostile arguments.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { GgmlType } from '../gguf/ggml-types.js';
import { isCairnError } from '../util/errors.js';
import type { ExpertInput } from './api.js';
import { isNativeAvailable, loadNative, NativeKernels, type NativeExpertBatch } from './native.js';
import { ReferenceKernels } from './reference.js';
import { convertActivationRow, formatCodec, refDequantize, refQuantize, vecDotType } from './reference/quant/index.js';

/** Deterministic pseudo-random numbers (the tests must be reproducible). */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}

function floats(n: number, seed: number, scale = 2): Float32Array {
  const r = rng(seed);
  return new Float32Array(n).map(() => (r() - 0.5) * scale * (r() < 0.03 ? 10 : 1));
}

function quantized(type: GgmlType, elements: number, seed: number): Uint8Array {
  const c = formatCodec(type);
  const w = new Uint8Array((elements / c.blockSize) * c.blockBytes);
  refQuantize(type, floats(elements, seed), w, elements);
  return w;
}

/** Expert ids: random, with repeats inside a token, and experts no token uses. */
function routing(nTokens: number, nUsed: number, nExperts: number, seed: number): Int32Array {
  const r = rng(seed);
  // Only the first ~2/3 of the experts are ever chosen, so some stay unused.
  const reach = Math.max(1, Math.ceil((nExperts * 2) / 3));
  return new Int32Array(nTokens * nUsed).map(() => Math.floor(r() * reach));
}

/** Σ|w·a| of each output: the scale of the terms it sums, for its rounding tolerance. */
function magnitudes(
  type: GgmlType,
  w: Uint8Array,
  rows: number,
  cols: number,
  x: Float32Array,
  ids: Int32Array,
  nUsed: number,
  input: ExpertInput,
): Float64Array {
  const c = formatCodec(type);
  const rowBytes = (cols / c.blockSize) * c.blockBytes;
  const mag = new Float64Array(ids.length * rows);
  const wf = new Float32Array(cols);
  const af = new Float32Array(cols);
  for (let p = 0; p < ids.length; p++) {
    const row = input === 'token' ? Math.floor(p / nUsed) : p;
    const act = convertActivationRow(type, x, row * cols, cols);
    if (act.kind === 'float') af.set(act.values);
    else refDequantize(vecDotType(type), act.bytes, af, cols);
    for (let r = 0; r < rows; r++) {
      refDequantize(type, w.subarray((ids[p] * rows + r) * rowBytes), wf, cols);
      let m = 0;
      for (let i = 0; i < cols; i++) m += Math.abs(wf[i] * af[i]);
      mag[p * rows + r] = m;
    }
  }
  return mag;
}

function assertClose(label: string, got: Float32Array, want: Float32Array, mag: Float64Array, bias?: Float32Array): void {
  for (let i = 0; i < want.length; i++) {
    const tol = mag[i] * 2e-5 + (bias ? 1e-6 * Math.abs(want[i]) : 0) + 1e-30;
    if (!(Math.abs(got[i] - want[i]) <= tol)) assert.fail(`${label}: output ${i} is ${got[i]}, reference ${want[i]} (tolerance ${tol})`);
  }
}

function assertSameFloats(got: Float32Array, want: Float32Array, label: string): void {
  for (let i = 0; i < want.length; i++) {
    if (!Object.is(got[i], want[i])) assert.fail(`${label}: element ${i} is ${got[i]}, expected ${want[i]}`);
  }
}

const WEIGHT_TYPES = [
  GgmlType.F32,
  GgmlType.F16,
  GgmlType.BF16,
  GgmlType.Q4_0,
  GgmlType.Q4_1,
  GgmlType.Q5_0,
  GgmlType.Q8_0,
  GgmlType.MXFP4,
  GgmlType.Q4_K,
  GgmlType.Q5_K,
  GgmlType.Q6_K,
];

const available = isNativeAvailable();
const addon = available ? loadNative() : undefined;
const isas = addon ? addon.cpuInfo().availableIsas : [];
const skip = available ? false : 'native library not built (npm run build:native)';

describe('native expert products', { skip }, () => {
  const native = new NativeKernels();
  const ref = new ReferenceKernels();
  after(() => {
    addon?.forceIsa(null);
    addon?.setThreads(addon.cpuInfo().physicalCores);
  });

  for (const isa of isas) {
    test(`on ${isa}: every weight type, token and slot inputs, with and without bias, match the reference`, () => {
      addon!.forceIsa(isa);
      for (const type of WEIGHT_TYPES) {
        const bs = formatCodec(type).blockSize;
        const unit = bs === 1 ? 32 : bs;
        // nExperts, nUsed, rows, cols, nTokens
        const shapes: Array<[number, number, number, number, number]> = [
          [7, 3, 37, unit * 3, 1],
          [7, 3, 37, bs === 1 ? 40 : unit, 5],
          [5, 2, 19, unit * 2, 26],
          [3, 1, 16, unit, 9],
        ];
        for (const [nExperts, nUsed, rows, cols, nTokens] of shapes) {
          const seed = type * 1000 + rows + cols + nTokens;
          const w = quantized(type, nExperts * rows * cols, seed);
          const ids = routing(nTokens, nUsed, nExperts, seed + 1);
          const bias = floats(nExperts * rows, seed + 2);
          for (const input of ['token', 'slot'] as const) {
            const x = floats((input === 'token' ? nTokens : nTokens * nUsed) * cols, seed + 3, 6);
            const nb = native.createExpertBatch(type, nExperts, nUsed, cols, 32);
            const rb = ref.createExpertBatch(type, nExperts, nUsed, cols, 32);
            native.prepareExperts(nb, type, x, nTokens, ids, input);
            ref.prepareExperts(rb, type, x, nTokens, ids, input);
            assert.equal(nb.nTokens, nTokens);
            const mag = magnitudes(type, w, rows, cols, x, ids, nUsed, input);
            for (const b of [undefined, bias]) {
              const want = new Float32Array(ids.length * rows);
              ref.expertMatmul(rb, w, type, rows, want, b);
              const got = new Float32Array(ids.length * rows).fill(NaN);
              native.expertMatmul(nb, w, type, rows, got, b);
              const label = `${GgmlType[type]} on ${isa}, ${nExperts}x${rows}x${cols}, ${nTokens} tokens x ${nUsed}, ${input}${b ? ', bias' : ''}`;
              assertClose(label, got, want, mag, b);
            }
          }
        }
      }
    });

    test(`on ${isa}: each expert's outputs are its dense product with its tokens, bit for bit, whatever the threads`, () => {
      addon!.forceIsa(isa);
      for (const type of [GgmlType.Q4_0, GgmlType.Q8_0, GgmlType.MXFP4, GgmlType.Q4_K, GgmlType.Q6_K, GgmlType.F16, GgmlType.F32]) {
        const bs = formatCodec(type).blockSize;
        // Decode-like (1 token, many rows: split into chunks over the threads) and batch-like (64
        // tokens; F32 rows of 4096 make token blocks of 16, so an expert's tokens span several).
        const cases: Array<[number, number, number, number, number]> = [
          [16, 4, 600, bs === 256 ? 512 : 256, 1],
          [6, 2, 24, bs === 256 ? 256 : type === GgmlType.F32 ? 4096 : 128, 64],
        ];
        for (const [nExperts, nUsed, rows, cols, nTokens] of cases) {
          const seed = type * 77 + rows;
          const rowBytes = (cols / bs) * formatCodec(type).blockBytes;
          // Quantized natively: the same bytes as the reference's (quant-native.test.ts), much sooner.
          const w = new Uint8Array(nExperts * rows * rowBytes);
          native.quantize(type, floats(nExperts * rows * cols, seed), w, nExperts * rows * cols);
          const ids = routing(nTokens, nUsed, nExperts, seed + 1);
          // Expert 0 takes exactly 17 pairs: with token blocks of 16 its last block is one token.
          if (nTokens > 1) ids.forEach((e, p) => (ids[p] = p < 17 ? 0 : 1 + (e % (nExperts - 2))));
          const x = floats(nTokens * cols, seed + 2, 4);
          const batch = native.createExpertBatch(type, nExperts, nUsed, cols, nTokens);
          native.prepareExperts(batch, type, x, nTokens, ids, 'token');
          const results: Float32Array[] = [];
          for (const threads of [1, 2]) {
            addon!.setThreads(threads);
            const y = new Float32Array(ids.length * rows).fill(NaN);
            native.expertMatmul(batch, w, type, rows, y);
            results.push(y);
          }
          const label = `${GgmlType[type]} on ${isa}, ${nTokens} tokens`;
          assertSameFloats(results[1], results[0], `${label}: 2 threads vs 1`);
          // Each expert alone, with the rows of all its tokens, as a dense matmul would see them
          // (batches of 4 and more take the panel kernels where the ISA has them, in both).
          for (let e = 0; e < nExperts; e++) {
            const pairsOfE = [...ids.keys()].filter((p) => ids[p] === e);
            if (pairsOfE.length === 0) continue;
            const xe = new Float32Array(pairsOfE.length * cols);
            pairsOfE.forEach((p, i) => xe.set(x.subarray(Math.floor(p / nUsed) * cols, (Math.floor(p / nUsed) + 1) * cols), i * cols));
            const dense = new Float32Array(pairsOfE.length * rows);
            native.matmul(w.subarray(e * rows * rowBytes, (e + 1) * rows * rowBytes), type, rows, cols, xe, pairsOfE.length, dense);
            pairsOfE.forEach((p, i) =>
              assertSameFloats(
                results[0].subarray(p * rows, (p + 1) * rows),
                dense.subarray(i * rows, (i + 1) * rows),
                `${label}, pair ${p} (expert ${e})`,
              ),
            );
          }
        }
      }
    });
  }

  test('one preparation serves the gate and up products; a new one replaces it', () => {
    const type = GgmlType.Q4_K;
    const [nExperts, nUsed, rows, cols, nTokens] = [8, 2, 40, 512, 3];
    const gate = quantized(type, nExperts * rows * cols, 1);
    const up = quantized(type, nExperts * rows * cols, 2);
    const nb = native.createExpertBatch(type, nExperts, nUsed, cols, 8);
    const rb = ref.createExpertBatch(type, nExperts, nUsed, cols, 8);
    for (const step of [0, 1]) {
      const ids = routing(nTokens, nUsed, nExperts, 10 + step);
      const x = floats(nTokens * cols, 20 + step);
      native.prepareExperts(nb, type, x, nTokens, ids, 'token');
      ref.prepareExperts(rb, type, x, nTokens, ids, 'token');
      for (const w of [gate, up]) {
        const want = new Float32Array(nTokens * nUsed * rows);
        const got = new Float32Array(want.length);
        ref.expertMatmul(rb, w, type, rows, want);
        native.expertMatmul(nb, w, type, rows, got);
        assertClose(`step ${step}`, got, want, magnitudes(type, w, rows, cols, x, ids, nUsed, 'token'));
      }
    }
    // The down product's input is one row per pair, in a batch of its own width (Q6_K, also Q8_K).
    const down = quantized(GgmlType.Q6_K, nExperts * rows * 256, 3);
    const h = floats(nTokens * nUsed * 256, 30);
    const ids = routing(nTokens, nUsed, nExperts, 31);
    const nd = native.createExpertBatch(GgmlType.Q6_K, nExperts, nUsed, 256, 8);
    const rd = ref.createExpertBatch(GgmlType.Q6_K, nExperts, nUsed, 256, 8);
    native.prepareExperts(nd, GgmlType.Q6_K, h, nTokens, ids, 'slot');
    ref.prepareExperts(rd, GgmlType.Q6_K, h, nTokens, ids, 'slot');
    const want = new Float32Array(nTokens * nUsed * rows);
    const got = new Float32Array(want.length);
    ref.expertMatmul(rd, down, GgmlType.Q6_K, rows, want);
    native.expertMatmul(nd, down, GgmlType.Q6_K, rows, got);
    assertClose('down', got, want, magnitudes(GgmlType.Q6_K, down, rows, 256, h, ids, nUsed, 'slot'));
  });

  test('empty batches and zero rows write nothing', () => {
    const b = native.createExpertBatch(GgmlType.Q8_0, 4, 2, 64, 4);
    const w = quantized(GgmlType.Q8_0, 4 * 3 * 64, 1);
    const y = new Float32Array(8).fill(7);
    native.prepareExperts(b, GgmlType.Q8_0, new Float32Array(0), 0, new Int32Array(0), 'token');
    native.expertMatmul(b, w, GgmlType.Q8_0, 3, y);
    native.prepareExperts(b, GgmlType.Q8_0, floats(64, 1), 1, Int32Array.from([1, 2]), 'token');
    native.expertMatmul(b, w, GgmlType.Q8_0, 0, y);
    assert.deepEqual([...y], new Array(8).fill(7));
  });

  test('hostile shapes, ids and buffers are refused before any work, naming the problem', () => {
    const type = GgmlType.Q8_0;
    const [nExperts, nUsed, rows, cols] = [4, 2, 3, 64];
    const w = quantized(type, nExperts * rows * cols, 1);
    const x = floats(2 * cols, 2);
    const bad = (fn: () => void, pattern: RegExp): void => {
      assert.throws(fn, (e: unknown) => isCairnError(e, 'BAD_ARGUMENT') && pattern.test((e as Error).message), pattern.source);
    };
    bad(() => native.createExpertBatch(GgmlType.Q8_K, 4, 2, 256, 4), /do not support weights of type Q8_K/);
    bad(() => native.createExpertBatch(type, 0, 2, 64, 4), /nExperts must be an integer in \[1, 65536\]/);
    bad(() => native.createExpertBatch(type, 4, 300, 64, 4), /nUsed must be an integer in \[1, 256\]/);
    bad(() => native.createExpertBatch(type, 4, 2, 48, 4), /multiple of 32 columns/);
    bad(() => native.createExpertBatch(type, 4, 256, 64, 2 ** 30), /too large/);

    const batch = native.createExpertBatch(type, nExperts, nUsed, cols, 2) as NativeExpertBatch;
    const y = new Float32Array(2 * nUsed * rows);
    bad(() => native.expertMatmul(batch, w, type, rows, y), /has not been prepared/);
    for (const [ids, index, value] of [
      [Int32Array.from([0, 1, 4, 2]), 2, 4],
      [Int32Array.from([0, -1, 1, 2]), 1, -1],
      [Int32Array.from([0, 1, 2, 2 ** 31 - 1]), 3, 2 ** 31 - 1],
    ] as const) {
      bad(
        () => native.prepareExperts(batch, type, x, 2, ids, 'token'),
        new RegExp(`expert id ${value} at index ${index} is outside the 4 experts`),
      );
    }
    const ids = Int32Array.from([0, 1, 3, 3]);
    bad(
      () => native.prepareExperts(batch, type, x, 3, Int32Array.from([0, 1, 2, 3, 0, 1]), 'token'),
      /nTokens must be an integer in \[0, 2\]/,
    );
    bad(() => native.prepareExperts(batch, type, x.subarray(0, cols), 2, ids, 'token'), /x is too short/);
    bad(() => native.prepareExperts(batch, type, x, 2, ids, 'slot'), /x is too short/);
    bad(() => native.prepareExperts(batch, type, x, 2, ids.subarray(0, 3), 'token'), /ids is too short/);
    bad(() => native.prepareExperts(batch, type, x, 2, ids, 'sideways' as never), /input must be 'token' or 'slot'/);
    bad(() => native.prepareExperts(batch, GgmlType.F16, x, 2, ids, 'token'), /made for quantized weights/);
    bad(() => native.prepareExperts(ref.createExpertBatch(type, 4, 2, 64, 2), type, x, 2, ids, 'token'), /made by other kernels/);

    native.prepareExperts(batch, type, x, 2, ids, 'token');
    bad(() => native.expertMatmul(batch, w, GgmlType.Q4_K, rows, y), /prepared for Q8_0 activations, Q4_K weights need Q8_K/);
    bad(() => native.expertMatmul(batch, w.subarray(1), type, rows, y), /w holds 815 bytes, 4 experts of 3 rows of 64 Q8_0 need 816/);
    bad(() => native.expertMatmul(batch, w, type, rows, y.subarray(1)), /y is too short/);
    bad(() => native.expertMatmul(batch, w, type, rows, y, new Float32Array(nExperts * rows - 1)), /bias is too short/);
    bad(() => native.expertMatmul(batch, w, type, rows, new Float32Array(w.buffer, 0, y.length)), /y and w share memory/);
    bad(() => native.expertMatmul(batch, w, type, -1, y), /rows must be an integer/);

    // A buffer changed behind the library's back: refused, never followed.
    const saved = batch.buffer.slice();
    batch.buffer.fill(0xff, 128);
    bad(() => native.expertMatmul(batch, w, type, rows, y), /inconsistent/);
    batch.buffer.fill(0);
    bad(() => native.expertMatmul(batch, w, type, rows, y), /not an expert batch/);
    batch.buffer.set(saved);
    assert.ok(
      y.every((v) => v === 0),
      'nothing was written by the refused calls',
    );
    native.expertMatmul(batch, w, type, rows, y);
    assert.ok(y.some((v) => v !== 0));
  });
});

describe('native MoE elementwise kernels', { skip }, () => {
  const native = new NativeKernels();
  const ref = new ReferenceKernels();

  test('moeCombine equals the reference bit for bit (products rounded, summed in slot order)', () => {
    for (const [nTokens, nUsed, dim] of [
      [1, 8, 2048],
      [3, 1, 33],
      [7, 4, 2880],
      [64, 2, 100],
    ]) {
      const y = floats(nTokens * nUsed * dim, dim + nUsed, 8);
      const weights = floats(nTokens * nUsed, nTokens, 1);
      const want = new Float32Array(nTokens * dim);
      const got = new Float32Array(nTokens * dim).fill(NaN);
      ref.moeCombine(y, weights, nTokens, nUsed, dim, want);
      native.moeCombine(y, weights, nTokens, nUsed, dim, got);
      assertSameFloats(got, want, `moeCombine ${nTokens}x${nUsed}x${dim}`);
    }
    const y = new Float32Array(8);
    assert.throws(() => native.moeCombine(y, new Float32Array(2), 1, 2, 4, y.subarray(4)), /out and y share memory/);
    assert.throws(() => native.moeCombine(y, new Float32Array(1), 1, 2, 4, new Float32Array(4)), /weights is too short/);
  });

  test('swigluOai matches the reference, clamps included', () => {
    const n = 70001;
    const gate = floats(n, 1, 30);
    const up = floats(n, 2, 30);
    gate[0] = NaN;
    up[1] = NaN;
    const want = new Float32Array(n);
    const got = new Float32Array(n);
    ref.swigluOai(gate, up, n, 1.702, 7, want);
    native.swigluOai(gate, up, n, 1.702, 7, got);
    assert.ok(Number.isNaN(got[0]) && Number.isNaN(got[1]));
    for (let i = 2; i < n; i++) {
      if (!(Math.abs(got[i] - want[i]) <= Math.abs(want[i]) * 1e-6 + 1e-30)) assert.fail(`element ${i}: ${got[i]} vs ${want[i]}`);
    }
    // Past the limit the gate saturates and up is clipped: g = 7, u = -7.
    const sat = new Float32Array(1);
    native.swigluOai(Float32Array.from([100]), Float32Array.from([-100]), 1, 1.702, 7, sat);
    assert.ok(Math.abs(sat[0] - (7 / (1 + Math.exp(-1.702 * 7))) * -6) < 1e-5);
    // In place.
    const g2 = gate.slice();
    native.swigluOai(g2, up, n, 1.702, 7, g2);
    assertSameFloats(g2, got, 'swigluOai in place');
  });
});
