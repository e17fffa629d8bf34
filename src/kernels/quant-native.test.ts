/**
 * The native quantization kernels against the TypeScript reference, on every instruction-set path
 * this machine can run (forced one after the other), with awkward shapes.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { GgmlType } from '../gguf/ggml-types.js';
import { isNativeAvailable, loadNative, type NativeAddon } from './native.js';
import {
  convertActivationRow,
  formatCodec,
  refDequantize,
  refGetRows,
  refMatmul,
  refQuantize,
  vecDotType,
} from './reference/quant/index.js';

const WEIGHT_TYPES = [
  GgmlType.F32,
  GgmlType.F16,
  GgmlType.BF16,
  GgmlType.Q4_0,
  GgmlType.Q4_1,
  GgmlType.Q5_0,
  GgmlType.Q5_1,
  GgmlType.Q8_0,
  GgmlType.Q2_K,
  GgmlType.Q3_K,
  GgmlType.Q4_K,
  GgmlType.Q5_K,
  GgmlType.Q6_K,
  GgmlType.MXFP4,
  GgmlType.IQ4_XS,
  GgmlType.IQ4_NL,
  GgmlType.IQ1_S,
  GgmlType.IQ1_M,
  GgmlType.IQ2_XXS,
  GgmlType.IQ2_XS,
  GgmlType.IQ2_S,
  GgmlType.IQ3_XXS,
  GgmlType.IQ3_S,
];
const CODEC_TYPES = [...WEIGHT_TYPES, GgmlType.Q8_1, GgmlType.Q8_K];

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

/** Activations with the shapes that stress quantizers: ordinary values, ties, zeros, outliers. */
function activations(n: number, seed: number): Float32Array {
  const r = rng(seed);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const block = Math.floor(i / 32) % 6;
    if (block === 0) x[i] = (r() - 0.5) * 4;
    else if (block === 1) x[i] = i % 32 === 3 ? -127 : Math.round((r() - 0.5) * 254) / 2; // exact ties after scaling
    else if (block === 2) x[i] = 0;
    else if (block === 3) x[i] = i % 32 === 7 ? 3 : 0;
    else if (block === 4) x[i] = (r() - 0.5) * (r() < 0.05 ? 1000 : 1);
    else x[i] = Math.fround(Math.sin(i) * 1e-3);
  }
  return x;
}

function weightFloats(n: number, seed: number): Float32Array {
  const r = rng(seed);
  return new Float32Array(n).map(() => (r() - 0.5) * (r() < 0.02 ? 20 : 2));
}

function quantized(type: GgmlType, rows: number, cols: number, seed: number): Uint8Array {
  const c = formatCodec(type);
  const w = new Uint8Array((rows * cols * c.blockBytes) / c.blockSize);
  refQuantize(type, weightFloats(rows * cols, seed), w, rows * cols);
  return w;
}

/** Σ|w·a| per output: the scale of the terms a dot product sums, for its rounding tolerance. */
function magnitudes(type: GgmlType, w: Uint8Array, rows: number, cols: number, x: Float32Array, n: number): Float64Array {
  const wf = new Float32Array(rows * cols);
  refDequantize(type, w, wf, rows * cols);
  const mag = new Float64Array(n * rows);
  const af = new Float32Array(cols);
  for (let t = 0; t < n; t++) {
    const act = convertActivationRow(type, x, t * cols, cols);
    if (act.kind === 'float') af.set(act.values);
    else refDequantize(vecDotType(type), act.bytes, af, cols);
    for (let r = 0; r < rows; r++) {
      let m = 0;
      for (let i = 0; i < cols; i++) m += Math.abs(wf[r * cols + i] * af[i]);
      mag[t * rows + r] = m;
    }
  }
  return mag;
}

function assertClose(type: GgmlType, label: string, got: Float32Array, want: Float32Array, mag: Float64Array): void {
  for (let i = 0; i < want.length; i++) {
    const tol = mag[i] * 2e-5 + 1e-30;
    if (!(Math.abs(got[i] - want[i]) <= tol)) {
      assert.fail(`${GgmlType[type]} ${label}: output ${i} is ${got[i]}, reference ${want[i]} (tolerance ${tol})`);
    }
  }
}

function assertSameFloats(got: Float32Array, want: Float32Array, label: string): void {
  for (let i = 0; i < want.length; i++) {
    if (!Object.is(got[i], want[i])) assert.fail(`${label}: element ${i} is ${got[i]}, reference ${want[i]}`);
  }
}

const available = isNativeAvailable();
const addon: NativeAddon | undefined = available ? loadNative() : undefined;
const isas = addon ? addon.cpuInfo().availableIsas : [];
const skip = available ? false : 'native library not built (npm run build:native)';

describe('native quantization kernels', { skip }, () => {
  after(() => addon?.forceIsa(null));

  test('dequantize equals the reference bit for bit, valid and arbitrary blocks', () => {
    const a = addon!;
    for (const type of CODEC_TYPES) {
      const c = formatCodec(type);
      const n = c.blockSize === 256 ? 256 * 5 : 32 * 9;
      const bytes = (n / c.blockSize) * c.blockBytes;
      const valid = quantized(type, 1, n, type + 1);
      const r = rng(type * 7 + 3);
      const arbitrary = new Uint8Array(bytes).map(() => Math.floor(r() * 256));
      for (const [label, src] of [['valid', valid], ['arbitrary', arbitrary]] as const) {
        const want = new Float32Array(n);
        refDequantize(type, src, want, n);
        const got = new Float32Array(n);
        a.dequantize!(type, src, got, n);
        assertSameFloats(got, want, `${GgmlType[type]} ${label}`);
      }
    }
  });

  test('quantize writes the reference bytes for every format', () => {
    const a = addon!;
    for (const type of CODEC_TYPES) {
      const c = formatCodec(type);
      const n = c.blockSize === 256 ? 256 * 6 : 32 * 24;
      for (const [label, x] of [['activations', activations(n, 5)], ['weights', weightFloats(n, 9)]] as const) {
        const want = new Uint8Array((n / c.blockSize) * c.blockBytes);
        refQuantize(type, x, want, n);
        const got = new Uint8Array(want.length);
        a.quantize!(type, x, got, n);
        const diff = got.findIndex((v, i) => v !== want[i]);
        assert.equal(diff, -1, `${GgmlType[type]} ${label}: first differing byte ${diff} (block ${Math.floor(diff / c.blockBytes)})`);
      }
    }
  });

  for (const isa of isas) {
    test(`matmul on ${isa} matches the reference for every weight type and awkward shapes`, () => {
      const a = addon!;
      a.forceIsa(isa);
      for (const type of WEIGHT_TYPES) {
        const bs = formatCodec(type).blockSize;
        const unit = bs === 1 ? 32 : bs;
        const shapes: Array<[number, number, number]> = [
          // rows, cols, n
          [1, unit, 1],
          [31, unit, 17],
          [33, unit * 3, 2],
          [5, unit * 2, 5],
          [67, bs === 256 ? 1024 : 4096, 1],
          [40, unit * 4, 9],
          // batches of the direct products and of the panel path (16 rows per panel, partial last panel; panels from 49 tokens)
          [16, unit, 16],
          [37, unit * 6, 26],
          [20, unit * 2, 52],
          // Float rows of any length: columns past a vector's or a tile step's end (AMX F16: 16 a step).
          ...(bs === 1 ? ([[19, 17, 3], [21, 50, 30], [3, 7, 1]] as Array<[number, number, number]>) : []),
          // AMX F16 batches: chunks of 256 rows whose units take several column blocks.
          ...(bs === 1 ? ([[1040, 2048, 26]] as Array<[number, number, number]>) : []),
        ];
        for (const [rows, cols, n] of shapes) {
          const w = quantized(type, rows, cols, rows * 31 + cols + type);
          const x = activations(n * cols, rows + n + type);
          const want = new Float32Array(n * rows);
          refMatmul(w, type, rows, cols, x, n, want);
          const got = new Float32Array(n * rows).fill(NaN);
          a.matmul!(w, type, rows, cols, x, n, got);
          assertClose(type, `${isa} rows=${rows} cols=${cols} n=${n}`, got, want, magnitudes(type, w, rows, cols, x, n));
        }
      }
    });

    test(`matmul on ${isa} matches the reference on arbitrary quant bytes`, () => {
      const a = addon!;
      a.forceIsa(isa);
      // Every quant bit pattern a file may hold (-128 in Q8_0, any scale code), with finite f16 scales.
      const halfFields: Array<[GgmlType, number[]]> = [
        [GgmlType.Q4_0, [0]],
        [GgmlType.Q4_1, [0, 2]],
        [GgmlType.Q5_0, [0]],
        [GgmlType.Q5_1, [0, 2]],
        [GgmlType.Q8_0, [0]],
        [GgmlType.Q2_K, [80, 82]],
        [GgmlType.Q3_K, [108]],
        [GgmlType.Q4_K, [0, 2]],
        [GgmlType.Q5_K, [0, 2]],
        [GgmlType.Q6_K, [208]],
        [GgmlType.IQ4_XS, [0]],
        [GgmlType.IQ4_NL, [0]],
        [GgmlType.IQ1_S, [0]],
        [GgmlType.IQ2_XXS, [0]],
        [GgmlType.IQ2_XS, [0]],
        [GgmlType.IQ2_S, [0]],
        [GgmlType.IQ3_XXS, [0]],
        [GgmlType.IQ3_S, [0]],
        [GgmlType.IQ1_M, []], // its f16 scale in the top nibbles of the scale words, below
        [GgmlType.MXFP4, []], // E8M0 scale bytes below
      ];
      for (const [type, fields] of halfFields) {
        const c = formatCodec(type);
        const rows = 19;
        const cols = c.blockSize * 3;
        const r = rng(type * 101);
        const w = new Uint8Array((rows * cols * c.blockBytes) / c.blockSize).map(() => Math.floor(r() * 256));
        for (let off = 0; off < w.length; off += c.blockBytes) {
          for (const f of fields) {
            const h = Math.floor(r() * 0x3c00) | (r() < 0.5 ? 0x8000 : 0); // |value| < 1
            w[off + f] = h & 0xff;
            w[off + f + 1] = h >> 8;
          }
          // E8M0: scales 2^-28 .. 2^1 (sums stay finite), and the subnormal bytes 0 and 1.
          if (type === GgmlType.MXFP4) w[off] = r() < 0.1 ? Math.floor(r() * 2) : 100 + Math.floor(r() * 30);
          if (type === GgmlType.IQ1_M) {
            const h = Math.floor(r() * 0x3c00) | (r() < 0.5 ? 0x8000 : 0);
            for (let k = 0; k < 4; k++) w[off + 49 + 2 * k] = (w[off + 49 + 2 * k] & 0x0f) | (((h >> (4 * k)) & 0xf) << 4);
          }
        }
        for (const n of [1, 6, 26, 52]) {
          const x = activations(n * cols, type + n);
          const want = new Float32Array(n * rows);
          refMatmul(w, type, rows, cols, x, n, want);
          const got = new Float32Array(n * rows).fill(NaN);
          a.matmul!(w, type, rows, cols, x, n, got);
          assertClose(type, `${isa} arbitrary bytes n=${n}`, got, want, magnitudes(type, w, rows, cols, x, n));
        }
      }
    });

    test(`matmul on ${isa}: a token's products are the same alone as in any batch`, () => {
      // Decode (one token), small batches (row tiles) and large ones (panels, where the ISA has
      // them) take different code paths; a token's numbers must not change with its batch, or
      // speculative decoding, continuous batching and resumed sequences would change its tokens.
      const a = addon!;
      a.forceIsa(isa);
      for (const type of [GgmlType.Q4_0, GgmlType.Q5_0, GgmlType.Q8_0, GgmlType.MXFP4, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K, GgmlType.IQ4_NL, GgmlType.IQ4_XS, GgmlType.F16]) {
        const bs = formatCodec(type).blockSize;
        for (const [cols, rows, n] of [
          ...(bs === 256 ? [512, 1280, 2816, 256 * 65] : [96, 4128, 8192 + 64]).map((c) => [c, 37, 3]),
          // Rows enough for the threads' row ranges; batches below and above the panels' thresholds.
          ...[2, 4, 5, 9, 24, 31, 48, 70].map((m) => [bs === 256 ? 2048 : 1024, 300, m]),
          // K formats: one token takes a row's super-blocks four at a time, batches take panels: rows of 5 and 11.
          ...(bs === 256 ? [[1280, 300, 9], [2816, 300, 70]] : []),
          // Float rows of any length: the row path (up to 24 tokens) and the batch path of AMX F16.
          ...(bs === 1 ? [[50, 40, 30], [17, 300, 26], [2050, 70, 24]] : []),
          // AMX F16 batches in several column blocks, and in several token blocks (past 512).
          ...(bs === 1 ? [[2048, 1040, 40], [2048, 1040, 520]] : []),
        ]) {
          const w = quantized(type, rows, cols, 5 + type);
          const x = activations(n * cols, 6 + cols);
          const batch = new Float32Array(n * rows);
          a.matmul!(w, type, rows, cols, x, n, batch);
          for (let t = 0; t < n; t++) {
            const alone = new Float32Array(rows);
            a.matmul!(w, type, rows, cols, x.subarray(t * cols, (t + 1) * cols), 1, alone);
            assertSameFloats(alone, batch.subarray(t * rows, (t + 1) * rows), `${GgmlType[type]} on ${isa}, ${cols} columns, token ${t}`);
          }
        }
      }
    });

    test(`matmul on ${isa} handles many rows split across threads`, () => {
      const a = addon!;
      a.forceIsa(isa);
      for (const type of [GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q5_0, GgmlType.MXFP4, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K, GgmlType.IQ4_NL, GgmlType.IQ4_XS, GgmlType.F16]) {
        const bs = formatCodec(type).blockSize;
        const rows = 4099;
        const cols = bs === 256 ? 256 : 64;
        const w = quantized(type, rows, cols, 77 + type);
        for (const n of [1, 3, 26]) {
          const x = activations(n * cols, 78);
          const want = new Float32Array(n * rows);
          refMatmul(w, type, rows, cols, x, n, want);
          const results: Float32Array[] = [];
          for (const threads of [1, 2]) {
            a.setThreads(threads);
            const got = new Float32Array(n * rows).fill(NaN);
            a.matmul!(w, type, rows, cols, x, n, got);
            assertClose(type, `${isa} rows=${rows} n=${n} threads=${threads}`, got, want, magnitudes(type, w, rows, cols, x, n));
            results.push(got);
          }
          a.setThreads(a.cpuInfo().physicalCores);
          assertSameFloats(results[1], results[0], `${GgmlType[type]} on ${isa} n=${n}: 1 thread vs 2`);
        }
      }
    });
  }

  /** Asserts that two ISA levels give a weight type's products bit for bit, for each shape (rows, cols) and token count. */
  function assertIsasAgree(type: GgmlType, base: string, other: string, shapes: number[][], counts: number[]): void {
    const a = addon!;
    for (const [rows, cols] of shapes) {
      const w = quantized(type, rows, cols, 11 + type + rows);
      for (const n of counts) {
        const x = activations(n * cols, 13 + n + cols);
        const out: Float32Array[] = [];
        for (const isa of [base, other]) {
          a.forceIsa(isa);
          const y = new Float32Array(n * rows).fill(NaN);
          a.matmul!(w, type, rows, cols, x, n, y);
          out.push(y);
        }
        a.forceIsa(null);
        assertSameFloats(out[1], out[0], `${GgmlType[type]} ${rows} x ${cols}, ${n} tokens: ${other} vs ${base}`);
      }
    }
  }

  test('matmul on AMX tiles gives the AVX-512 results bit for bit', { skip: isas.includes('amx') ? false : 'this CPU (or OS) has no AMX tiles' }, () => {
    // The tile products replace the VNNI steps of the panel and direct kernels for batches; a
    // machine with AMX must give the tokens a machine without it gives.
    for (const type of [GgmlType.Q4_0, GgmlType.Q5_0, GgmlType.Q8_0, GgmlType.MXFP4, GgmlType.IQ4_NL, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K, GgmlType.IQ4_XS]) {
      const bs = formatCodec(type).blockSize;
      assertIsasAgree(type, 'avx512', 'amx', [[37, bs === 256 ? 768 : 224], [300, bs === 256 ? 2048 : 1024]], [2, 7, 8, 15, 16, 17, 33, 48, 49, 64, 100]);
    }
  });

  test('Q4_0 and MXFP4 products on AVX2 give the AVX-512 results bit for bit', { skip: isas.includes('avx512') ? false : 'this CPU has no AVX-512' }, () => {
    // Both levels take each block's exact integer dot and add fma(dot, dw x da) in block order
    // (AVX2 with the rows in its vector lanes): a cluster of mixed machines gives the same tokens.
    for (const type of [GgmlType.Q4_0, GgmlType.MXFP4]) {
      assertIsasAgree(type, 'avx2', 'avx512', [[37, 224], [300, 2048]], [1, 2, 3, 4, 7, 49, 100]);
    }
  });

  test('getRows gathers dequantized rows like the reference', () => {
    const a = addon!;
    for (const type of CODEC_TYPES) {
      const c = formatCodec(type);
      const cols = c.blockSize === 256 ? 512 : 64;
      const w = quantized(type, 7, cols, 3 + type);
      const ids = Int32Array.from([6, 0, 3, 3, 1]);
      const want = new Float32Array(ids.length * cols);
      refGetRows(w, type, cols, ids, want);
      const got = new Float32Array(ids.length * cols);
      a.getRows!(w, type, cols, ids, got);
      assertSameFloats(got, want, `getRows ${GgmlType[type]}`);
    }
  });

  test('bad arguments throw TypeError or RangeError and touch nothing', () => {
    const a = addon!;
    const w = quantized(GgmlType.Q8_0, 2, 64, 1);
    const x = new Float32Array(128);
    const y = new Float32Array(4);
    const isError = (kind: typeof TypeError | typeof RangeError, pattern: RegExp) => (e: unknown) =>
      e instanceof kind && pattern.test((e as Error).message) && (e as { code?: string }).code === 'BAD_ARGUMENT';
    assert.throws(() => a.matmul!(x as unknown as Uint8Array, GgmlType.Q8_0, 2, 64, x, 1, y), isError(TypeError, /w must be a Uint8Array/));
    assert.throws(() => a.matmul!(w, GgmlType.Q8_0, 3, 64, x, 1, y), isError(RangeError, /w holds 136 bytes/));
    assert.throws(() => a.matmul!(w, GgmlType.Q8_0, 2, 48, x, 1, y), isError(RangeError, /multiple of 32/));
    assert.throws(() => a.matmul!(w, GgmlType.Q8_0, 2, 64, x, 3, y), isError(RangeError, /x holds 128 floats/));
    assert.throws(() => a.matmul!(w, GgmlType.Q8_0, 2, 64, x, 2, new Float32Array(3)), isError(RangeError, /y holds 3 floats/));
    assert.throws(() => a.matmul!(w, GgmlType.Q8_K, 1, 256, x, 1, y), isError(RangeError, /does not support weights of type Q8_K/));
    assert.throws(() => a.matmul!(w, GgmlType.TQ1_0, 1, 256, x, 1, y), isError(RangeError, /not a type/));
    assert.throws(() => a.matmul!(w, GgmlType.Q8_0, -1, 64, x, 1, y), isError(RangeError, /rows must be an integer/));
    assert.throws(() => a.matmul!(w, GgmlType.Q8_0, 1.5, 64, x, 1, y), isError(RangeError, /rows must be an integer/));
    assert.throws(() => a.matmul!(w, GgmlType.Q8_0, 2, 64, x, 1, x.subarray(0, 4)), isError(RangeError, /share memory/));
    const loose = a.matmul as unknown as (...args: unknown[]) => void;
    assert.throws(() => loose(w, GgmlType.Q8_0, 2, 64, x), isError(TypeError, /expects 7 arguments/));
    const out = new Float32Array(64);
    assert.throws(() => a.getRows!(w, GgmlType.Q8_0, 64, Int32Array.from([2]), out), isError(RangeError, /row id 2 at index 0/));
    assert.throws(() => a.getRows!(w, GgmlType.Q8_0, 64, Int32Array.from([-1]), out), isError(RangeError, /row id -1/));
    assert.throws(() => a.getRows!(w, GgmlType.Q8_0, 64, Int32Array.from([0, 1]), out), isError(RangeError, /out holds 64 floats/));
    assert.throws(() => a.dequantize!(GgmlType.Q4_K, w, out, 256), isError(RangeError, /src holds 136 bytes/));
    assert.throws(() => a.dequantize!(GgmlType.Q8_0, w, out, 33), isError(RangeError, /multiple of 32/));
    assert.throws(() => a.quantize!(GgmlType.Q8_0, out, new Uint8Array(10), 64), isError(RangeError, /dst holds 10 bytes/));
    assert.throws(() => a.quantize!(GgmlType.Q8_0, w as unknown as Float32Array, new Uint8Array(68), 64), isError(TypeError, /src must be a Float32Array/));
    // Nothing was written by the failed calls.
    assert.ok(y.every((v) => v === 0) && out.every((v) => v === 0));
  });

  test('empty products and conversions are no-ops', () => {
    const a = addon!;
    const w = quantized(GgmlType.Q4_K, 2, 256, 1);
    const y = new Float32Array(4).fill(7);
    a.matmul!(w, GgmlType.Q4_K, 0, 256, new Float32Array(256), 1, y);
    a.matmul!(w, GgmlType.Q4_K, 2, 256, new Float32Array(0), 0, y);
    a.getRows!(w, GgmlType.Q4_K, 256, new Int32Array(0), new Float32Array(0));
    a.dequantize!(GgmlType.Q4_K, new Uint8Array(0), new Float32Array(0), 0);
    a.quantize!(GgmlType.Q4_K, new Float32Array(0), new Uint8Array(0), 0);
    assert.deepEqual([...y], [7, 7, 7, 7]);
  });
});
