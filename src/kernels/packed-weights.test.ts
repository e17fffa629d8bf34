/**
 * Weights packed at load (kernels' packWeights, engine/pack-weights.ts): matmul over a packed copy
 * gives the results of the file's layout bit for bit, for every token count (one-token decode, the
 * direct products, the panels) and row count (a last group of fewer than 16 rows, pieces of a
 * decode product that start off a group); a copy of the wrong size is refused; a CPU level that
 * does not read the copy (forced after packing) reads the weights themselves; a loaded model packs
 * its products' weights, releases the file's pages that only they read, and gives the tokens and
 * log-probabilities it gives unpacked.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { GgmlType, ggmlRowBytes } from '../gguf/ggml-types.js';
import { loadModel } from '../engine/load.js';
import { openMapping } from './mapping.js';
import { isNativeAvailable, loadNative, NativeExpertBatch, NativeKernels } from './native.js';
import { scratchDir } from '../../test/helpers/paths.js';
import { writeSyntheticFile } from '../../test/helpers/synthetic-file.js';
import { MOE_SHAPES } from '../../test/helpers/moe-shapes.js';
import type { SyntheticShape } from '../model/synthetic.js';

const available = isNativeAvailable();
const addon = available ? loadNative() : undefined;
const skip = available ? false : 'native library not built (npm run build:native)';
/** Levels that pack (on others packWeights gives nothing, which the tests check too). */
const packing = (isa: string) => isa === 'avx512';

/** Deterministic pseudo-random bytes of valid Q4_0 blocks (finite f16 scales). */
function q4_0(rows: number, cols: number, seed: number): Uint8Array {
  const out = new Uint8Array(rows * ggmlRowBytes(GgmlType.Q4_0, cols));
  let s = seed >>> 0;
  const next = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) >>> 24;
  for (let o = 0; o < out.length; o += 18) {
    // d: an f16 in [2^-10, 2^-6), either sign.
    out[o] = next();
    out[o + 1] = 0x14 + (next() & 0x0f) + (next() & 0x80);
    for (let i = 2; i < 18; i++) out[o + i] = next();
  }
  return out;
}

/** The native library's packed copy of w, or undefined where the active level packs none. */
function pack(w: Uint8Array, type: GgmlType, rows: number, cols: number): Uint8Array | undefined {
  const a = addon!;
  const bytes = a.packedBytes!(type, rows, cols);
  if (bytes === 0) return undefined;
  const dst = a.packArena!(bytes);
  a.packInto!(w, type, rows, cols, dst);
  return dst;
}

/** The types the AVX-512 level packs, with their block sizes and a maker of valid weights. */
const PACKED_TYPES = [GgmlType.Q4_0, GgmlType.IQ4_NL, GgmlType.MXFP4, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K];
const K_TYPES = [GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K];

function blockOf(type: GgmlType): number {
  return K_TYPES.includes(type) ? 256 : 32;
}

/**
 * Valid blocks of a packed format: Q4_0 and IQ4_NL (an f16 scale, any 4-bit codes) as q4_0 makes
 * them; MXFP4 with E8M0 scales of 2^-9 .. 2^3 and any codes; Q4_K and Q5_K with f16 d and dmin in
 * [2^-10, 2^-6) of either sign and any scale, mins, quant and fifth-bit bytes; Q6_K with such a d
 * (its last 2 bytes) and any quant and scale bytes.
 */
function weights(type: GgmlType, rows: number, cols: number, seed: number): Uint8Array {
  if (type === GgmlType.Q4_0 || type === GgmlType.IQ4_NL) return q4_0(rows, cols, seed);
  const out = new Uint8Array(rows * ggmlRowBytes(type, cols));
  let s = seed >>> 0;
  const next = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) >>> 24;
  if (K_TYPES.includes(type)) {
    const block = ggmlRowBytes(type, 256);
    const halves = type === GgmlType.Q6_K ? [block - 2] : [0, 2];
    for (let o = 0; o < out.length; o += block) {
      for (let i = 0; i < block; i++) out[o + i] = next();
      for (const at of halves.map((h) => o + h)) {
        out[at] = next();
        out[at + 1] = 0x14 + (next() & 0x0f) + (next() & 0x80);
      }
    }
    return out;
  }
  if (type !== GgmlType.MXFP4) throw new Error(`no test weights of ${GgmlType[type]}`);
  for (let o = 0; o < out.length; o += 17) {
    out[o] = 118 + (next() % 13);
    for (let i = 1; i < 17; i++) out[o + i] = next();
  }
  return out;
}

function activations(n: number, seed: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.731 + seed) * (1 + (i % 7)));
}

function assertSameFloats(got: Float32Array, want: Float32Array, label: string): void {
  for (let i = 0; i < want.length; i++)
    if (!Object.is(got[i], want[i])) assert.fail(`${label}: element ${i} is ${got[i]}, unpacked ${want[i]}`);
}

describe('packed weights', { skip }, () => {
  after(() => addon?.forceIsa(null));
  const isas = addon ? addon.cpuInfo().availableIsas : [];

  for (const isa of isas) {
    test(`on ${isa}: matmul over packed weights equals the file's layout bit for bit`, () => {
      const a = addon!;
      a.forceIsa(isa);
      for (const type of PACKED_TYPES) {
        const k = blockOf(type) === 256;
        for (const [rows, cols] of [
          [16, k ? 256 : 32],
          [37, k ? 512 : 96],
          [300, 1024],
          [4099, k ? 256 : 64],
          [64, k ? 8192 + 256 : 8192 + 64],
        ]) {
          const w = weights(type, rows, cols, rows * 31 + cols);
          const packed = pack(w, type, rows, cols);
          if (!packing(isa)) {
            assert.equal(packed, undefined, `${isa} keeps no packed copy`);
            continue;
          }
          assert.ok(packed, `${GgmlType[type]} ${rows} x ${cols} packed`);
          assert.equal(packed.byteLength, Math.ceil(rows / 16) * 16 * ggmlRowBytes(type, cols));
          for (const n of [1, 2, 3, 4, 5, 6, 7, 9, 16, 31, 48, 49, 70]) {
            if (rows * n > 4099 * 9) continue;
            const x = activations(n * cols, n);
            const want = new Float32Array(n * rows);
            const got = new Float32Array(n * rows);
            a.matmul!(w, type, rows, cols, x, n, want);
            a.matmul!(w, type, rows, cols, x, n, got, packed);
            assertSameFloats(got, want, `${GgmlType[type]} ${rows} x ${cols}, ${n} tokens on ${isa}`);
          }
        }
      }
    });
  }

  test('row lookups (an embedding table tied to its head) read a packed copy as the file', () => {
    const a = addon!;
    a.forceIsa(null);
    for (const type of PACKED_TYPES)
      for (const [rows, cols] of [
        [37, blockOf(type) * 3],
        [300, 1024],
      ]) {
        const w = weights(type, rows, cols, rows + cols);
        const packed = pack(w, type, rows, cols);
        if (!packing(addon!.cpuInfo().isa)) return assert.equal(packed, undefined);
        const ids = Int32Array.from([0, rows - 1, 15, 16, 17, Math.floor(rows / 2), rows - 1, 3]);
        const want = new Float32Array(ids.length * cols);
        const got = new Float32Array(ids.length * cols);
        a.getRows!(w, type, cols, ids, want);
        a.getRows!(w, type, cols, ids, got, packed);
        assertSameFloats(got, want, `${GgmlType[type]} rows of ${rows} x ${cols}`);
        assert.throws(() => a.getRows!(w, type, cols, ids, got, packed!.subarray(1)), /packed has/);
      }
  });

  test('expert products read a bank packed as one matrix, for any token count', () => {
    const [experts, used, rows, cols] = [4, 2, 48, 256];
    for (const type of [GgmlType.Q4_K, GgmlType.Q6_K, GgmlType.Q4_0]) {
      const bank = weights(type, experts * rows, cols, 11);
      const plain = new NativeKernels(addon);
      const packedKernels = new NativeKernels(addon);
      const bytes = packedKernels.packWeights([{ data: bank, type, rows: experts * rows, cols }]);
      if (!packing(addon!.cpuInfo().isa)) return assert.deepEqual(bytes, [0]);
      for (const n of [1, 3, 5, 40, 120]) {
        const x = activations(n * cols, n + 1);
        const ids = Int32Array.from({ length: n * used }, (_, i) => (i * 3 + Math.floor(i / used)) % experts);
        const run = (k: NativeKernels) => {
          const batch = k.createExpertBatch(type, experts, used, cols, n);
          k.prepareExperts(batch, type, x, n, ids, 'token');
          const y = new Float32Array(n * used * rows);
          k.expertMatmul(batch, bank, type, rows, y);
          return y;
        };
        assertSameFloats(run(packedKernels), run(plain), `${GgmlType[type]}, ${n} tokens`);
      }
    }
    const bank = q4_0(experts * rows, cols, 11);
    const plain = new NativeKernels(addon);
    // A packed copy that is not the bank's is refused.
    const batch = plain.createExpertBatch(GgmlType.Q4_0, experts, used, cols, 1);
    plain.prepareExperts(batch, GgmlType.Q4_0, activations(cols, 1), 1, Int32Array.of(0, 1), 'token');
    assert.throws(
      () =>
        addon!.expertMatmul(
          (batch as NativeExpertBatch).buffer,
          bank,
          GgmlType.Q4_0,
          rows,
          new Float32Array(used * rows),
          undefined,
          new Uint8Array(18),
        ),
      /packed holds 18 bytes/,
    );
  });

  test('fewer rows than a group, and types without a packed layout, are not packed', () => {
    const a = addon!;
    a.forceIsa(null);
    assert.equal(a.packedBytes!(GgmlType.Q4_0, 15, 64), 0);
    assert.equal(a.packedBytes!(GgmlType.F32, 64, 64), 0);
    assert.throws(() => a.packInto!(new Uint8Array(64 * 64 * 4), GgmlType.F32, 64, 64, new Uint8Array(64 * 64 * 4)), /not packed/);
  });

  test('a packed copy of the wrong size is refused, and weights too short for their shape', () => {
    const a = addon!;
    a.forceIsa(null);
    const [rows, cols] = [64, 256];
    const w = q4_0(rows, cols, 3);
    const x = activations(cols, 1);
    const y = new Float32Array(rows);
    const packed = pack(w, GgmlType.Q4_0, rows, cols);
    if (packed) {
      assert.throws(
        () => a.matmul!(w, GgmlType.Q4_0, rows, cols, x, 1, y, packed.subarray(0, packed.length - 18)),
        (e: Error & { code?: string }) => e.code === 'BAD_ARGUMENT' && /packed has/.test(e.message),
      );
      assert.throws(() => a.matmul!(w, GgmlType.Q4_0, rows, cols, x, 1, y, new Float32Array(4) as unknown as Uint8Array), /packed/);
    }
    const bytes = a.packedBytes!(GgmlType.Q4_0, rows, cols);
    if (bytes > 0) {
      const dst = a.packArena!(bytes);
      assert.throws(
        () => a.packInto!(w.subarray(0, w.length - 1), GgmlType.Q4_0, rows, cols, dst),
        (e: Error & { code?: string }) => e.code === 'BAD_ARGUMENT',
      );
      assert.throws(() => a.packInto!(w, GgmlType.Q4_0, rows, cols, dst.subarray(1)), /dst has/);
      assert.throws(() => a.packInto!(w, GgmlType.Q4_0, rows, cols, w), /dst/);
    }
    assert.throws(
      () => a.packArena!(0),
      (e: Error & { code?: string }) => e.code === 'BAD_ARGUMENT',
    );
  });

  test('a level forced after packing reads the weights themselves', () => {
    const a = addon!;
    if (!isas.includes('avx512') || !isas.includes('avx2')) return;
    const [rows, cols] = [96, 512];
    const w = q4_0(rows, cols, 8);
    a.forceIsa('avx512');
    const packed = pack(w, GgmlType.Q4_0, rows, cols)!;
    a.forceIsa('avx2');
    assert.equal(a.packedBytes!(GgmlType.Q4_0, rows, cols), 0, 'AVX2 packs nothing');
    const x = activations(3 * cols, 2);
    const want = new Float32Array(3 * rows);
    const got = new Float32Array(3 * rows);
    a.matmul!(w, GgmlType.Q4_0, rows, cols, x, 3, want);
    a.matmul!(w, GgmlType.Q4_0, rows, cols, x, 3, got, packed);
    assertSameFloats(got, want, 'AVX2 with an AVX-512 copy');
    a.forceIsa(null);
  });

  test('NativeKernels reads the copies it packed for views (once per view)', () => {
    const k = new NativeKernels(addon);
    const [rows, cols] = [64, 128];
    const ws = [q4_0(rows, cols, 5), q4_0(rows + 16, cols, 6)];
    const x = activations(cols, 3);
    const before = ws.map((w, i) => {
      const y = new Float32Array(rows + 16 * i);
      k.matmul(w, GgmlType.Q4_0, rows + 16 * i, cols, x, 1, y);
      return y;
    });
    const small = q4_0(8, cols, 7);
    const bytes = k.packWeights([
      ...ws.map((w, i) => ({ data: w, type: GgmlType.Q4_0, rows: rows + 16 * i, cols })),
      { data: small, type: GgmlType.Q4_0, rows: 8, cols },
    ]);
    if (!packing(addon!.cpuInfo().isa)) return assert.deepEqual(bytes, [0, 0, 0]);
    assert.deepEqual(
      bytes,
      [rows, rows + 16, 0].map((r) => r * ggmlRowBytes(GgmlType.Q4_0, cols)),
    );
    assert.deepEqual(k.packWeights([{ data: ws[0], type: GgmlType.Q4_0, rows, cols }]), [0], 'already packed');
    // Weights are not to change once packed; when they do, the products show they read the copies.
    ws.forEach((w, i) => {
      w.fill(0);
      const y = new Float32Array(rows + 16 * i);
      k.matmul(w, GgmlType.Q4_0, rows + 16 * i, cols, x, 1, y);
      assertSameFloats(y, before[i], `products of packed copy ${i}`);
    });
  });
});

describe('a loaded model packs its weights', { skip }, () => {
  const dir = scratchDir('packed-weights');
  mkdirSync(dir, { recursive: true });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('a mapping releases the pages of its own views only', () => {
    const path = join(dir, 'bytes.bin');
    writeSyntheticFile(path, {
      arch: 'llama',
      nEmbd: 64,
      nLayer: 1,
      nHead: 2,
      nKvHead: 2,
      headDim: 32,
      nFf: 128,
      nVocab: 64,
      quant: GgmlType.Q4_0,
      seed: 1,
    });
    const m = openMapping(path);
    try {
      const view = m.view(0, Math.min(m.size, 3 * 4096));
      const copy = view.slice();
      assert.equal(m.releasePages(view), true);
      assert.deepEqual(m.view(0, view.length), copy, 'released pages read back from the file');
      assert.equal(m.releasePages(new Uint8Array(8192)), false, 'not a view of the mapping');
    } finally {
      m.close();
    }
  });

  test('same tokens and log-probabilities packed or not, on every family shape here', async () => {
    const cases: [SyntheticShape, GgmlType][] = [
      [{ arch: 'llama', nEmbd: 128, nLayer: 2, nHead: 4, nKvHead: 2, headDim: 32, nFf: 256, nVocab: 300 }, GgmlType.Q4_0],
      // The head tied to the embedding table: its lookups read the packed copy too.
      [{ arch: 'llama', nEmbd: 128, nLayer: 2, nHead: 4, nKvHead: 2, headDim: 32, nFf: 256, nVocab: 301, tied: true }, GgmlType.Q4_0],
      [{ arch: 'qwen3', nEmbd: 128, nLayer: 2, nHead: 4, nKvHead: 2, headDim: 32, nFf: 352, nVocab: 333 }, GgmlType.Q4_0],
      // Expert banks packed as matrices of their experts' rows.
      [MOE_SHAPES.qwen3moe, GgmlType.Q4_0],
      [{ arch: 'llama', nEmbd: 128, nLayer: 2, nHead: 4, nKvHead: 2, headDim: 32, nFf: 256, nVocab: 302 }, GgmlType.IQ4_NL],
      // K formats (their rows 256 wide): one token straight from the packed vectors, more through panels.
      [{ arch: 'llama', nEmbd: 256, nLayer: 2, nHead: 4, nKvHead: 2, headDim: 64, nFf: 512, nVocab: 303 }, GgmlType.Q4_K],
      [{ arch: 'qwen3', nEmbd: 256, nLayer: 2, nHead: 4, nKvHead: 2, headDim: 64, nFf: 768, nVocab: 304 }, GgmlType.Q5_K],
      [{ arch: 'llama', nEmbd: 256, nLayer: 2, nHead: 4, nKvHead: 2, headDim: 64, nFf: 512, nVocab: 305 }, GgmlType.Q6_K],
      // MXFP4 experts (as gpt-oss files have them), the rest Q8_0.
      [MOE_SHAPES['gpt-oss'], GgmlType.Q8_0],
    ];
    for (const [shape, quant] of cases) {
      const path = join(dir, `${shape.arch}-${shape.nVocab}-${GgmlType[quant]}.gguf`);
      writeSyntheticFile(path, { ...shape, quant, seed: 9 });
      const prompt = Array.from({ length: 70 }, (_, i) => (i * 37 + 11) % shape.nVocab);
      const run = async (pack: boolean) => {
        const saved = process.env.CAIRN_PACK_WEIGHTS;
        process.env.CAIRN_PACK_WEIGHTS = pack ? '1' : '0';
        const m = await loadModel(path, { ctx: 128, prefetch: false, progress: false, speculation: { maxDraft: 0 } });
        if (saved === undefined) delete process.env.CAIRN_PACK_WEIGHTS;
        else process.env.CAIRN_PACK_WEIGHTS = saved;
        try {
          assert.equal(m.packedBytes > 0, pack && packing(addon!.cpuInfo().isa), `${shape.arch}: packed ${m.packedBytes} bytes`);
          const out: { tokens: number[]; logprobs: number[] } = { tokens: [], logprobs: [] };
          for await (const ev of m.engine.generate({
            prompt,
            maxTokens: 12,
            promptLogprobs: 0,
            logprobs: 0,
            sampler: { temperature: 0 },
            ignoreEos: true,
          })) {
            if (ev.type === 'prompt') out.logprobs.push(...ev.logprobs.map((l) => l.logprob));
            if (ev.type === 'token') {
              out.tokens.push(ev.id);
              out.logprobs.push(ev.logprobs!.logprob);
            }
          }
          return out;
        } finally {
          m.close();
        }
      };
      const [plain, packed] = [await run(false), await run(true)];
      assert.equal(packed.tokens.length, 12);
      assert.deepEqual(packed.tokens, plain.tokens, `${shape.arch}: tokens`);
      assert.deepEqual(packed.logprobs, plain.logprobs, `${shape.arch}: log-probabilities of the prompt and the tokens`);
    }
  });
});
