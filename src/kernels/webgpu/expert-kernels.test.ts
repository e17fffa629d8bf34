/**
 * The GPU's Mixture-of-Experts kernels against their CPU twins on whatever WebGPU adapter this
 * machine has (in CI, Mesa's lavapipe), at awkward sizes: expert products of (token, slot) pairs
 * for every weight type the GPU reads (a bank cut into parts, inputs shared by a token's slots or
 * one per pair, strided outputs, per-expert biases), the weighted sum, the gated units and the
 * shared experts' gate, and the strided row copy. The router is tested in model/gpu (it is the
 * CPU router's twin). Without the optional `webgpu` package or an adapter, these are skipped and
 * say why.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assertClose, randomF32, seededRandom } from '../../../test/helpers/kernel-inputs.js';
import { GgmlType, ggmlRowBytes, ggmlTypeName } from '../../gguf/ggml-types.js';
import { isCairnError } from '../../util/errors.js';
import { refDequantize, refQuantize } from '../reference/quant/codecs.js';
import { refMoeCombine } from '../reference/experts.js';
import { refSwigluOai } from '../reference/ops.js';
import { WebGpuKernels } from './gpu-kernels.js';
import { GPU_WEIGHT_TYPES, gpuWeightFormat } from './wgsl-weights.js';
import { copyRows, gatedAdd, groupedProducts, matmulId, matmulIdGrouped, moeCombine, moeGroup, PAIR_GROUPS_ARGS_BYTES, pairGroupsMetaWords, siluInPlace, swigluOaiInPlace } from './expert-kernels.js';
import { testGpu } from '../../../test/helpers/test-gpu.js';

const { gpu, skip } = await testGpu();
/** The same device without subgroups: the kernels an adapter without them runs (one row per workgroup, tree sums). */
const plain = gpu && new WebGpuKernels({ ...gpu.gpu, subgroups: false, subgroupMaxSize: 0 });

const f = Math.fround;

/** `rows` random rows of `cols` quantized to `type` (a bank of experts, row after row), and their values as decoded. */
function randomBank(type: GgmlType, rows: number, cols: number, rand: () => number): { bank: Uint8Array; wf: Float32Array } {
  const bank = new Uint8Array(rows * ggmlRowBytes(type, cols));
  refQuantize(type, randomF32(rows * cols, rand), bank, rows * cols);
  const wf = new Float32Array(rows * cols);
  refDequantize(type, bank, wf, rows * cols);
  return { bank, wf };
}

describe('GPU expert products', { skip }, () => {
  for (const type of GPU_WEIGHT_TYPES) {
    for (const variant of ['subgroups', 'no subgroups'] as const) it(`matmulId of ${ggmlTypeName(type)} experts (${variant}): each pair its expert, in parts of the bank, inputs per token or per pair, biases`, async (t) => {
      const g = variant === 'subgroups' ? gpu! : plain!;
      if (variant === 'subgroups' && !g.gpu.subgroups) return t.skip('the adapter has no subgroups');
      const rand = seededRandom(70 + type);
      const E = 5;
      const rows = 37;
      const cols = type === GgmlType.F32 || type === GgmlType.F16 || type === GgmlType.BF16 ? 72 : gpuWeightFormat(type)!.blockElems === 32 ? 96 : 512;
      const n = 3;
      const used = 2;
      const pairs = n * used;
      const rowBytes = ggmlRowBytes(type, cols);
      const { bank, wf } = randomBank(type, E * rows, cols, rand);
      const ids = Uint32Array.from([4, 0, 2, 4, 1, 3]);
      const bias = randomF32(E * rows, rand);
      const x = randomF32(n * cols, rand);
      const yStride = rows + 3;
      const want = new Float64Array(pairs * rows);
      for (let p = 0; p < pairs; p++) {
        const e = ids[p];
        const t = Math.floor(p / used);
        for (let r = 0; r < rows; r++) {
          let s = 0;
          for (let c = 0; c < cols; c++) s += wf[(e * rows + r) * cols + c] * x[t * cols + c];
          want[p * rows + r] = s + bias[e * rows + r];
        }
      }
      const y = g.tensor(pairs * yStride * 4);
      const xt = g.upload(x);
      const idt = g.upload(ids);
      const bt = g.upload(bias);
      // Experts 0-2 in one part, 3-4 in another: each writes only its pairs.
      const split = 3;
      const parts = [
        { t: g.upload(bank.subarray(0, split * rows * rowBytes)), first: 0, count: split },
        { t: g.upload(bank.subarray(split * rows * rowBytes)), first: split, count: E - split },
      ];
      for (const part of parts) matmulId(g, part, type, rows, cols, xt, pairs, idt, y, { xDiv: used, xStride: cols, yStride }, bt);
      const got = await g.readF32(y);
      const tol = type === GgmlType.F32 ? 1e-4 : 2e-3;
      for (let p = 0; p < pairs; p++) {
        for (let r = 0; r < rows; r++) assert.ok(Math.abs(got[p * yStride + r] - want[p * rows + r]) < tol * Math.sqrt(cols), `pair ${p} row ${r}: ${got[p * yStride + r]} vs ${want[p * rows + r]}`);
      }
      // One input row per pair (the down product's layout), from an offset.
      const xp = randomF32(2 + pairs * cols, rand);
      const y2 = g.tensor(pairs * rows * 4);
      for (const part of parts) matmulId(g, part, type, rows, cols, g.upload(xp), pairs, idt, y2, { xDiv: 1, xStride: cols, xOffset: 2 });
      const got2 = await g.readF32(y2);
      for (const p of [0, 5]) {
        let s = 0;
        for (let c = 0; c < cols; c++) s += wf[ids[p] * rows * cols + c] * xp[2 + p * cols + c];
        assert.ok(Math.abs(got2[p * rows] - s) < tol * Math.sqrt(cols), `pair ${p} row 0 of its own input: ${got2[p * rows]} vs ${s}`);
      }
    });
  }

  // Float types have no four-weight decoder: their products stay pair by pair (tested above).
  for (const type of GPU_WEIGHT_TYPES.filter((t) => gpuWeightFormat(t)!.w4)) {
    it(`grouped products of ${ggmlTypeName(type)} experts: tiles of pairs by expert equal the dequantized product, and a pair gets exactly what it gets alone`, async (t) => {
      const g = gpu!;
      if (!groupedProducts(g, type)) return t.skip('the adapter has no subgroups, which the grouped product needs');
      const rand = seededRandom(90 + type);
      const E = 5;
      const rows = 19;
      const cols = gpuWeightFormat(type)!.blockElems === 32 ? 64 : 256;
      const n = 21;
      const used = 3;
      const pairs = n * used;
      const { bank, wf } = randomBank(type, E * rows, cols, rand);
      // Expert 1 gets most pairs (several tiles), expert 4 none.
      const ids = Uint32Array.from({ length: pairs }, (_, p) => (p % 3 === 0 ? 1 : [0, 2, 3, 1][p % 4]));
      const bias = randomF32(E * rows, rand);
      const x = randomF32(n * cols, rand);
      const part = { t: g.upload(bank), first: 0, count: E };
      const sorted = g.tensor(pairs * 4);
      const meta = g.tensor(pairGroupsMetaWords(E) * 4);
      const groups = moeGroup(g, g.upload(ids), pairs, E, sorted, meta, g.tensor(PAIR_GROUPS_ARGS_BYTES, { indirect: true }), [rows]);
      const y = g.tensor(pairs * rows * 4);
      matmulIdGrouped(g, part, type, rows, cols, g.upload(x), groups, y, { xDiv: used, xStride: cols }, g.upload(bias));
      const got = await g.readF32(y);
      for (let p = 0; p < pairs; p++) {
        const tok = Math.floor(p / used);
        for (let r = 0; r < rows; r++) {
          let s = bias[ids[p] * rows + r];
          for (let c = 0; c < cols; c++) s += wf[(ids[p] * rows + r) * cols + c] * x[tok * cols + c];
          assert.ok(Math.abs(got[p * rows + r] - s) < 2e-3 * Math.sqrt(cols), `pair ${p} row ${r}: ${got[p * rows + r]} vs ${s}`);
        }
      }
      // Token 7 alone: its pairs' rows bit for bit.
      const aloneIds = ids.slice(7 * used, 8 * used);
      const alone = moeGroup(g, g.upload(aloneIds), used, E, g.tensor(used * 4), g.tensor(pairGroupsMetaWords(E) * 4), g.tensor(PAIR_GROUPS_ARGS_BYTES, { indirect: true }), [rows]);
      const y1 = g.tensor(used * rows * 4);
      matmulIdGrouped(g, part, type, rows, cols, g.upload(x.slice(7 * cols, 8 * cols)), alone, y1, { xDiv: used, xStride: cols }, g.upload(bias));
      assert.deepEqual([...(await g.readF32(y1))], [...got.subarray(7 * used * rows, 8 * used * rows)]);
    });
  }

  it('checks its arguments before anything reaches the device', () => {
    const g = gpu!;
    const t = g.tensor(64);
    const part = { t, first: 0, count: 1 };
    const bad = (fn: () => void, pattern: RegExp) => assert.throws(fn, (e: unknown) => isCairnError(e, 'BAD_ARGUMENT') && pattern.test((e as Error).message), pattern.source);
    bad(() => matmulId(g, part, GgmlType.Q8_0, 1, 48, t, 1, t, t, { xDiv: 1, xStride: 48 }), /not a multiple of 32/);
    bad(() => matmulId(g, part, GgmlType.F32, 4, 8, t, 1, t, t, { xDiv: 1, xStride: 8 }), /expert bank holds 64 bytes/);
    bad(() => matmulId(g, { t: g.tensor(4096), first: 0, count: 1 }, GgmlType.F32, 4, 8, t, 9, t, t, { xDiv: 1, xStride: 8 }), /x holds/);
    bad(() => moeCombine(g, t, t, 2, 2, 8, t), /y holds/);
    bad(() => copyRows(g, t, 0, 4, t, 0, 4, 2, 4), /between two tensors/);
  });
});

describe('GPU expert sums and gated units', { skip }, () => {
  it('moeCombine sums weighted slots as the CPU twin; gatedAdd, silu and swiglu_oai as theirs', async () => {
    const g = gpu!;
    const rand = seededRandom(77);
    const n = 3;
    const used = 4;
    const dim = 150;
    const y = randomF32(n * used * dim, rand, 2);
    const w = randomF32(n * used, rand);
    const want = new Float32Array(n * dim);
    refMoeCombine(y, w, n, used, dim, want);
    const out = g.tensor(n * dim * 4);
    moeCombine(g, g.upload(y), g.upload(w), n, used, dim, out);
    assertClose(await g.readF32(out), want, { rtol: 1e-6, atol: 1e-6 }, 'moeCombine');

    const sh = randomF32(n * dim, rand);
    const gate = randomF32(n, rand, 3);
    const wantG = want.slice();
    for (let t = 0; t < n; t++) {
      const s = f(f(gate[t] / f(1 + f(Math.exp(-gate[t])))) / gate[t]);
      for (let i = t * dim; i < (t + 1) * dim; i++) wantG[i] = f(wantG[i] + f(sh[i] * s));
    }
    gatedAdd(g, out, g.upload(sh), g.upload(gate), n, dim);
    assertClose(await g.readF32(out), wantG, { rtol: 1e-6, atol: 1e-6 }, 'gatedAdd');

    const m = 1000;
    const a = randomF32(m, rand, 12);
    const b = randomF32(m, rand, 12);
    const at = g.upload(a);
    siluInPlace(g, at, m);
    assertClose(await g.readF32(at), a.map((v) => f(v / f(1 + f(Math.exp(-v))))), { rtol: 1e-6, atol: 1e-7 }, 'silu');
    const wantO = new Float32Array(m);
    refSwigluOai(a, b, m, 1.702, 7, wantO);
    const gt = g.upload(a);
    swigluOaiInPlace(g, gt, g.upload(b), m, 1.702, 7);
    assertClose(await g.readF32(gt), wantO, { rtol: 1e-5, atol: 1e-6 }, 'swiglu_oai, clamps included');
  });

  it('copyRows copies strided rows between offsets and leaves the rest alone', async () => {
    const g = gpu!;
    const src = Float32Array.from({ length: 40 }, (_, i) => i + 1);
    const dst = g.tensor(30 * 4);
    copyRows(g, g.upload(src), 3, 10, dst, 2, 9, 3, 4);
    const got = await g.readF32(dst);
    const want = new Float32Array(30);
    for (let i = 0; i < 3; i++) for (let j = 0; j < 4; j++) want[2 + i * 9 + j] = src[3 + i * 10 + j];
    assert.deepEqual([...got], [...want]);
  });
});
