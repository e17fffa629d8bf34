/**
 * The GPU kernels against their CPU twins, on whatever WebGPU adapter this machine has (in CI,
 * Mesa's lavapipe: Vulkan run on the CPU, correct rather than fast), at awkward sizes. The GPU keeps
 * activations in f32 and sums in f32 where the CPU quantizes activations for quantized weights and
 * sums some things in f64, so the tolerances are those of f32 arithmetic over the sizes used; an
 * error of indexing, unpacking or masking shows up orders of magnitude above them. Without the
 * optional `webgpu` package or an adapter, every test here is skipped and says why.
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { assertClose, randomF32, seededRandom } from '../../../test/helpers/kernel-inputs.js';
import { GgmlType, ggmlTypeName } from '../../gguf/ggml-types.js';
import { isCairnError } from '../../util/errors.js';
import { refDequantize, refQuantize } from '../reference/quant/codecs.js';
import { refAdd, refAttention, refGeglu, refRmsNorm, refRope, refStoreKv, refSwiglu } from '../reference/ops.js';
import type { AttentionParams, RopeParams } from '../api.js';
import { rearrangeKv } from '../kv-layout.js';
import { GPU_WEIGHT_TYPES, gpuWeightFormat } from './wgsl-weights.js';
import { testGpu } from '../../../test/helpers/test-gpu.js';
import { ropeTable, WebGpuKernels } from './gpu-kernels.js';
import { ITEM_DECODE_ITEMS, ITEM_DECODE_ROWS } from './wgsl-matmul-items.js';
import { gpuItemFormat } from './wgsl-items.js';

// The item products on (as on a hardware GPU), and a second device with them off (as models run on
// a software adapter): the weight products are checked on both.
const { gpu, skip } = await testGpu('GPU kernels', { itemProducts: true });
const { gpu: plain } = await testGpu(undefined, { itemProducts: false });
const both = () => [gpu!, plain!];

/** A CPU cache of exactly `ctx` positions (stored head by head) as the device keeps it: every head of a position side by side. */
function asRows(cache: Uint8Array, ctx: number, heads: number): Uint8Array {
  return rearrangeKv(cache, ctx, heads, cache.length / ctx / heads, 'heads', 'rows');
}

/** Runs f with one token's weight products in `rows` rows a subgroup and `items` items a lane, then puts the defaults back. */
async function withDecodeShape<T>(g: WebGpuKernels, rows: number, items: number, f: () => Promise<T>): Promise<T> {
  g.decodeRows = rows;
  g.decodeItems = items;
  try {
    return await f();
  } finally {
    g.decodeRows = ITEM_DECODE_ROWS;
    g.decodeItems = ITEM_DECODE_ITEMS;
  }
}

/** Runs f on a device of its own opened with timestamp queries, skipping where the adapter has none. */
async function onTimedGpu(t: TestContext, f: (g: WebGpuKernels) => Promise<void>): Promise<void> {
  const g = await WebGpuKernels.open({ timestamps: true });
  try {
    if (!g.gpu.timestamps) return t.skip('this adapter has no timestamp queries');
    await f(g);
  } finally {
    g.destroy();
  }
}

/** f64 dot products of dequantized weights with x: the exact value both engines approximate. */
function dequantizedMatmul(
  w: Uint8Array,
  type: GgmlType,
  rows: number,
  cols: number,
  x: Float32Array,
  n: number,
): { y: Float64Array; mag: Float64Array } {
  const wf = new Float32Array(rows * cols);
  refDequantize(type, w, wf, rows * cols);
  const y = new Float64Array(n * rows);
  const mag = new Float64Array(n * rows);
  for (let t = 0; t < n; t++) {
    for (let r = 0; r < rows; r++) {
      let s = 0;
      let m = 0;
      for (let c = 0; c < cols; c++) {
        const p = wf[r * cols + c] * x[t * cols + c];
        s += p;
        m += Math.abs(p);
      }
      y[t * rows + r] = s;
      mag[t * rows + r] = m;
    }
  }
  return { y, mag };
}

describe('GPU weight products', { skip }, () => {
  for (const type of GPU_WEIGHT_TYPES) {
    it(`matmul of ${ggmlTypeName(type)} weights in their file layout equals the dequantized product`, async () => {
      for (const g of both()) {
        const rand = seededRandom(40 + type);
        const block = gpuWeightFormat(type)!.blockElems;
        // Float rows of a length no vector width divides; quantized rows of one to three blocks.
        const shapes =
          block === 1
            ? [
                [37, 36, 1],
                [5, 100, 3],
              ]
            : [
                [37, block, 1],
                [9, 3 * block, 3],
              ];
        for (const [rows, cols, n] of shapes) {
          const wf = randomF32(rows * cols, rand);
          const bytes = (rows * cols * gpuWeightFormat(type)!.blockBytes) / block;
          const w = new Uint8Array(bytes);
          refQuantize(type, wf, w, rows * cols);
          const x = randomF32(n * cols, rand, 2);
          const { y: want, mag } = dequantizedMatmul(w, type, rows, cols, x, n);
          const wt = g.upload(w);
          const xt = g.upload(x);
          const yt = g.tensor(n * rows * 4);
          g.matmul(wt, type, rows, cols, xt, n, yt);
          const got = await g.readF32(yt, n * rows);
          for (let i = 0; i < got.length; i++) {
            const err = Math.abs(got[i] - want[i]);
            assert.ok(
              err <= 1e-5 * mag[i] + 1e-6,
              `${ggmlTypeName(type)} ${rows}x${cols} n${n} (item products ${g.gpu.itemProducts}): y[${i}] = ${got[i]}, want ${want[i]}`,
            );
          }
        }
      }
    });
  }

  it('gives each token of a batch exactly what it gets alone (tiles of tokens), every weight type', async () => {
    for (const g of both()) {
      const rand = seededRandom(12);
      for (const type of GPU_WEIGHT_TYPES) {
        const block = gpuWeightFormat(type)!.blockElems;
        const rows = 5;
        const cols = block === 1 ? 40 : 2 * block;
        const w = new Uint8Array((rows * cols * gpuWeightFormat(type)!.blockBytes) / block);
        refQuantize(type, randomF32(rows * cols, rand), w, rows * cols);
        const n = 11; // a full tile of tokens and part of another
        const x = randomF32(n * cols, rand);
        const wt = g.upload(w);
        const xt = g.upload(x);
        const all = g.tensor(n * rows * 4);
        g.matmul(wt, type, rows, cols, xt, n, all);
        const together = await g.readF32(all, n * rows);
        for (const [t, rowsPerSubgroup, itemsPerLane] of [
          [0, 2, 1],
          [7, 1, 2],
          [8, 4, 3],
          [10, 2, 1],
        ]) {
          // Alone, a token's product may take other shapes (rows a subgroup, items a lane): the same bits.
          const one = g.tensor(rows * 4);
          await withDecodeShape(g, rowsPerSubgroup, itemsPerLane, async () => g.matmul(wt, type, rows, cols, g.upload(x.subarray(t * cols, (t + 1) * cols)), 1, one));
          assert.deepEqual(
            await g.readF32(one, rows),
            together.subarray(t * rows, (t + 1) * rows),
            `${ggmlTypeName(type)} token ${t} (item products ${g.gpu.itemProducts}, ${rowsPerSubgroup} rows a subgroup, ${itemsPerLane} items a lane)`,
          );
        }
      }
    }
  });

  it('with the activations staged in workgroup memory gives the bits it gives without, every item type and output, over several stages', async () => {
    const g = gpu!;
    const rand = seededRandom(14);
    // 7168 bytes of workgroup memory cut rows into several stages and tiles into fewer tokens
    // (tiles of 6 tokens, stages of 8 blocks or 1 super-block); the device's own is checked too.
    // (Each staged pipeline costs lavapipe's compiler a second or two: the cases are few.)
    const small = Object.assign(new WebGpuKernels({ ...g.gpu, workgroupStorage: 7168 }), { stagedProducts: true });
    const own = Object.assign(new WebGpuKernels(g.gpu), { stagedProducts: true });
    type Case = readonly [tokens: number, rowsPerSubgroup: number, itemsPerLane: number, output: 'set' | 'add' | 'swiglu', kernels: WebGpuKernels];
    for (const type of GPU_WEIGHT_TYPES.filter((t) => gpuItemFormat(t) && t !== GgmlType.F32)) {
      const f = gpuWeightFormat(type)!;
      // Rows past one staged workgroup (up to 64 rows), rows of 9 super-blocks or 75 blocks.
      const rows = 70;
      const cols = f.blockElems === 256 ? 9 * 256 : 75 * 32;
      const w = new Uint8Array((rows * cols * f.blockBytes) / f.blockElems);
      refQuantize(type, randomF32(rows * cols, rand), w, rows * cols);
      const cases: Case[] = [
        [11, 2, 1, 'set', small],
        [1, 2, 1, 'set', small],
      ];
      if (type === GgmlType.Q4_K || type === GgmlType.Q8_0) cases.push([11, 2, 1, 'set', own], [1, 2, 1, 'set', own]);
      if (type === GgmlType.Q4_K) cases.push([1, 4, 3, 'set', small], [11, 2, 1, 'add', small], [1, 2, 1, 'add', small], [11, 2, 1, 'swiglu', small], [1, 2, 2, 'swiglu', small]);
      for (const [n, rowsPerSubgroup, itemsPerLane, output, k] of cases) {
        const x = randomF32(n * cols, rand);
        const y0 = randomF32(n * rows, rand);
        const outRows = output === 'swiglu' ? rows / 2 : rows;
        const run = async (on: WebGpuKernels) =>
          withDecodeShape(on, rowsPerSubgroup, itemsPerLane, async () => {
            const y = on.upload(y0);
            on.matmul(on.upload(w), type, rows, cols, on.upload(x), n, y, { accumulate: output === 'add', swiglu: output === 'swiglu' });
            return on.readF32(y, n * outRows);
          });
        const label = `${ggmlTypeName(type)} ${output}, ${n} tokens, ${rowsPerSubgroup} rows a subgroup, ${itemsPerLane} items a lane, ${k.gpu.workgroupStorage} bytes of workgroup memory`;
        assert.deepEqual(await run(k), await run(g), label);
      }
    }
    // The staged kernels did run, in the stages and tiles their budgets allow.
    for (const k of [small, own]) assert.ok(k.pipelineKeys.some((key) => /^matmul-items-Q4_K-set-r2u1-s\d+x\d+t1$/.test(key)), k.pipelineKeys.join(' '));
    if (g.gpu.subgroupMaxSize === 8) {
      for (const key of ['matmul-items-Q8_0-set-s8x256t6', 'matmul-items-Q4_K-set-s1x256t6', 'matmul-items-Q4_K-set-r2u1-s6x256t1', 'matmul-items-Q4_K-swiglu-s1x256t6'])
        assert.ok(small.pipelineKeys.includes(key), `${key} in ${small.pipelineKeys.join(' ')}`);
    }
    // Off by default; CAIRN_GPU_STAGED=1 turns it on for a device opened then.
    assert.equal(g.stagedProducts, false);
    process.env.CAIRN_GPU_STAGED = '1';
    try {
      const asked = await WebGpuKernels.open();
      assert.equal(asked.stagedProducts, true);
      asked.destroy();
    } finally {
      delete process.env.CAIRN_GPU_STAGED;
    }
  });

  it('reaches rows past the first grid dimension and a weight at an offset in its buffer', async () => {
    const g = gpu!;
    const rand = seededRandom(7);
    // Past 32768 workgroups of the item product (it takes up to 16 rows a workgroup, 2 a subgroup).
    const rows = 600_000;
    const cols = 32;
    const w = new Uint8Array(64 + (rows * cols * 34) / 32);
    const wf = randomF32(rows * cols, rand);
    refQuantize(GgmlType.Q8_0, wf, w.subarray(64), rows * cols);
    const x = randomF32(cols, rand);
    const { y: want, mag } = dequantizedMatmul(w.subarray(64), GgmlType.Q8_0, rows, cols, x, 1);
    const yt = g.tensor(rows * 4);
    g.matmul(g.upload(w), GgmlType.Q8_0, rows, cols, g.upload(x), 1, yt, { wOffset: 64 });
    const got = await g.readF32(yt, rows);
    for (const i of [0, 1, 32_767, 32_768, 524_287, 524_288, rows - 1])
      assert.ok(Math.abs(got[i] - want[i]) <= 1e-5 * mag[i] + 1e-6, `row ${i}: ${got[i]} vs ${want[i]}`);
  });

  it('refuses shapes that do not fit its tensors, and types it cannot read', () => {
    const g = gpu!;
    const t = g.tensor(64);
    const bad = (f: () => void, re: RegExp) =>
      assert.throws(f, (e: unknown) => isCairnError(e, 'BAD_ARGUMENT') && re.test((e as Error).message));
    bad(() => g.matmul(t, GgmlType.Q8_0, 2, 32, t, 1, t), /w holds 64 bytes/);
    bad(() => g.matmul(t, GgmlType.Q8_0, 1, 33, t, 1, t), /not a multiple of 32/);
    bad(() => g.matmul(t, GgmlType.F32, 4, 4, t, 2, g.tensor(16)), /y holds 16 bytes/);
    bad(() => g.matmul(t, GgmlType.F32, 4, 4, t, 1, t, { yStride: 3 }), /yStride 3 is below rows 4/);
    bad(() => g.matmul(t, GgmlType.IQ2_XXS, 1, 256, t, 1, t), /do not read IQ2_XXS/);
    bad(() => g.matmul(t, GgmlType.F32, -1, 4, t, 1, t), /rows must be a non-negative integer/);
    bad(() => g.tensor(Number.NaN), /bytes must be/);
  });
});

describe('GPU kernels at offsets, in place and with biases', { skip }, () => {
  it('matmul with accumulate adds the product to y: the same floats as the product then the add kernel, every weight type', async () => {
    for (const g of both()) {
      const rand = seededRandom(31);
      for (const type of GPU_WEIGHT_TYPES) {
        const block = gpuWeightFormat(type)!.blockElems;
        const rows = 6;
        // Float rows of 40 take the subgroup product (no whole items), quantized ones the item product.
        const cols = block === 1 ? 40 : Math.max(2 * block, 64);
        const n = 3;
        const w = new Uint8Array((rows * cols * gpuWeightFormat(type)!.blockBytes) / block);
        refQuantize(type, randomF32(rows * cols, rand), w, rows * cols);
        const wt = g.upload(w);
        const xt = g.upload(randomF32(n * cols, rand));
        const y0 = randomF32(n * rows, rand);
        const product = g.tensor(n * rows * 4);
        g.matmul(wt, type, rows, cols, xt, n, product);
        const separate = g.upload(y0);
        g.add(separate, product, n * rows, separate);
        const fused = g.upload(y0);
        g.matmul(wt, type, rows, cols, xt, n, fused, { accumulate: true });
        assert.deepEqual(await g.readF32(fused), await g.readF32(separate), `${ggmlTypeName(type)} (item products ${g.gpu.itemProducts})`);
      }
    }
  });

  it('matmul of (gate, up) row pairs with swiglu gives silu(gate) x up: the two products and the swiglu kernel, bit for bit', async () => {
    const g = gpu!;
    const rand = seededRandom(33);
    for (const type of [GgmlType.Q4_K, GgmlType.Q6_K, GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.F16]) {
      const f = gpuWeightFormat(type)!;
      const hidden = 7;
      const cols = Math.max(256, f.blockElems);
      const n = 10; // a full tile of tokens and part of another
      const rowBytes = (cols * f.blockBytes) / f.blockElems;
      const gate = new Uint8Array(hidden * rowBytes);
      const up = new Uint8Array(hidden * rowBytes);
      refQuantize(type, randomF32(hidden * cols, rand), gate, hidden * cols);
      refQuantize(type, randomF32(hidden * cols, rand), up, hidden * cols);
      const pairs = new Uint8Array(2 * hidden * rowBytes);
      for (let r = 0; r < hidden; r++) {
        pairs.set(gate.subarray(r * rowBytes, (r + 1) * rowBytes), 2 * r * rowBytes);
        pairs.set(up.subarray(r * rowBytes, (r + 1) * rowBytes), (2 * r + 1) * rowBytes);
      }
      assert.ok(g.pairedSwiglu(type, cols), ggmlTypeName(type));
      // A tile and a part of tokens, and one token (decode) at every number of rows a subgroup may take.
      for (const [tokens, rowsPerSubgroup, itemsPerLane] of [
        [n, 2, 1],
        [1, 2, 1],
        [1, 1, 2],
        [1, 4, 3],
        [1, 8, 1],
      ]) {
        await withDecodeShape(g, rowsPerSubgroup, itemsPerLane, async () => {
          const x = g.upload(randomF32(tokens * cols, rand));
          const gt = g.tensor(tokens * hidden * 4);
          const ut = g.tensor(tokens * hidden * 4);
          g.matmul(g.upload(gate), type, hidden, cols, x, tokens, gt);
          g.matmul(g.upload(up), type, hidden, cols, x, tokens, ut);
          g.swiglu(gt, ut, tokens * hidden, gt);
          const fused = g.tensor(tokens * hidden * 4);
          g.matmul(g.upload(pairs), type, 2 * hidden, cols, x, tokens, fused, { swiglu: true });
          assert.deepEqual(await g.readF32(fused), await g.readF32(gt), `${ggmlTypeName(type)}, ${tokens} tokens, ${rowsPerSubgroup} rows a subgroup, ${itemsPerLane} items a lane`);
        });
      }
    }
    const t = g.tensor(1 << 16);
    assert.throws(() => g.matmul(t, GgmlType.Q8_0, 3, 32, t, 1, t, { swiglu: true }), /even number of rows/);
  });

  it('matmul reads x from a row and writes y at an offset with a stride; addBias adds per row', async () => {
    const g = gpu!;
    const rand = seededRandom(8);
    const rows = 7;
    const cols = 64;
    const w = new Uint8Array((rows * cols * 34) / 32);
    refQuantize(GgmlType.Q8_0, randomF32(rows * cols, rand), w, rows * cols);
    const x = randomF32(3 * cols, rand);
    const { y: want } = dequantizedMatmul(w, GgmlType.Q8_0, rows, cols, x.subarray(cols), 2);
    const stride = 10;
    const yt = g.upload(new Float32Array(2 + 2 * stride).fill(-1));
    g.matmul(g.upload(w), GgmlType.Q8_0, rows, cols, g.upload(x), 2, yt, { xOffset: cols, yOffset: 2, yStride: stride });
    const bias = randomF32(stride, rand);
    const got = await g.readF32(yt);
    for (let t = 0; t < 2; t++) {
      for (let r = 0; r < rows; r++) assert.ok(Math.abs(got[2 + t * stride + r] - want[t * rows + r]) < 1e-4, `y[${t}, ${r}]`);
      for (let r = rows; r < stride && 2 + t * stride + r < got.length; r++)
        assert.equal(got[2 + t * stride + r], -1, 'outside the rows: untouched');
    }
    assert.equal(got[0], -1);
    const bt = g.tensor(2 * stride * 4);
    g.write(bt, got.subarray(2, 2 + 2 * stride));
    g.addBias(bt, g.upload(bias), 2, stride);
    const biased = await g.readF32(bt);
    for (let i = 0; i < 2 * stride; i++) assert.equal(biased[i], Math.fround(got[2 + i] + bias[i % stride]));
  });

  it('add and swiglu write into either input; storeKv and attention start at a row', async () => {
    const g = gpu!;
    const rand = seededRandom(9);
    const n = 1000;
    const a = randomF32(n, rand, 4);
    const b = randomF32(n, rand);
    const sw = new Float32Array(n);
    refSwiglu(a, b, n, sw);
    for (const into of ['a', 'b'] as const) {
      const at = g.upload(a);
      const bt = g.upload(b);
      g.swiglu(at, bt, n, into === 'a' ? at : bt);
      assertClose(await g.readF32(into === 'a' ? at : bt, n), sw, { rtol: 1e-6, atol: 1e-7 }, `swiglu into ${into}`);
      const at2 = g.upload(a);
      const bt2 = g.upload(b);
      g.add(at2, bt2, n, into === 'a' ? at2 : bt2);
      const sum = await g.readF32(into === 'a' ? at2 : bt2, n);
      for (let i = 0; i < n; i++) assert.equal(sum[i], Math.fround(a[i] + b[i]));
    }
    // Two sequences' rows in one batch: the second's keys start at row 3 of k, its queries at row 3 of q.
    const nHead = 4;
    const nKvHead = 2;
    const headDim = 32;
    const row = nKvHead * headDim;
    const k = randomF32(5 * row, rand);
    const v = randomF32(5 * row, rand);
    const kc = g.tensor(2 * row * 2);
    const vc = g.tensor(2 * row * 2);
    g.storeKvF16(g.upload(k), g.upload(v), kc, vc, row, 0, 2, 3);
    const wantK = new Uint8Array(2 * row * 2);
    const wantV = new Uint8Array(2 * row * 2);
    refStoreKv(k.subarray(3 * row), v.subarray(3 * row), wantK, wantV, 1, row, 0, 2, nKvHead);
    const q = randomF32(5 * nHead * headDim, rand);
    const p: AttentionParams = { nTokens: 2, nHead, nKvHead, headDim, pos0: 0, scale: 0.2, kvType: 1 };
    const want = new Float32Array(2 * nHead * headDim);
    refAttention(q.subarray(3 * nHead * headDim), wantK, wantV, p, want);
    const out = g.tensor(q.length * 4);
    g.attention(g.upload(q), kc, vc, { ...p, sinks: undefined, kvType: GgmlType.F16 }, out, 3);
    const got = await g.readF32(out);
    assertClose(got.subarray(3 * nHead * headDim), want, { rtol: 0, atol: 2 ** -10 }, 'attention from row 3');
    assert.deepEqual(got.subarray(0, 3 * nHead * headDim), new Float32Array(3 * nHead * headDim), 'rows before it untouched');
  });
});

describe('GPU float kernels', { skip }, () => {
  it('rmsNorm, swiglu and add equal their CPU twins', async () => {
    const g = gpu!;
    const rand = seededRandom(3);
    const rows = 5;
    const dim = 300;
    const x = randomF32(rows * dim, rand, 3);
    const w = randomF32(dim, rand);
    const want = new Float32Array(rows * dim);
    refRmsNorm(x, w, rows, dim, 1e-5, want);
    const xt = g.upload(x);
    g.rmsNorm(xt, g.upload(w), rows, dim, 1e-5, xt); // in place, as the CPU kernel allows
    assertClose(await g.readF32(xt, rows * dim), want, { rtol: 2e-6, atol: 1e-7 }, 'rmsNorm');

    const n = 70_001; // more workgroups than one grid row of threads covers in one go
    const a = randomF32(n, rand, 8);
    const b = randomF32(n, rand);
    const at = g.upload(a);
    const bt = g.upload(b);
    const out = g.tensor(n * 4);
    const wantS = new Float32Array(n);
    refSwiglu(a, b, n, wantS);
    g.swiglu(at, bt, n, out);
    assertClose(await g.readF32(out, n), wantS, { rtol: 1e-6, atol: 1e-7 }, 'swiglu');
    const wantA = new Float32Array(n);
    refAdd(a, b, n, wantA);
    g.add(at, bt, n, out);
    assertClose(await g.readF32(out, n), wantA, { rtol: 0, atol: 0 }, 'add');
  });

  it('geglu equals its CPU twin (gelu through f16, its cut-offs at -10 and 10), into either input', async () => {
    const g = gpu!;
    const rand = seededRandom(5);
    const n = 4099;
    const a = randomF32(n, rand, 12); // past both cut-offs
    const b = randomF32(n, rand);
    const want = new Float32Array(n);
    refGeglu(a, b, n, want);
    for (const into of ['a', 'b', 'out'] as const) {
      const at = g.upload(a);
      const bt = g.upload(b);
      const out = into === 'a' ? at : into === 'b' ? bt : g.tensor(n * 4);
      g.geglu(at, bt, n, out);
      const got = await g.readF32(out, n);
      // WGSL leaves the rounding of its f16 conversion to the device: the gate may land on the
      // neighbouring f16 (gelu of it allowed), the result one f16 step away; and the GPU's tanh is
      // good to about 1e-7, which 1 + tanh(x) near -1 (gates below -4) keeps absolute.
      const one = new Float32Array(1);
      const gelu = (x: number): number => (refGeglu(new Float32Array([x]), new Float32Array([1]), 1, one), one[0]);
      for (let i = 0; i < n; i++) {
        const x = a[i];
        const neighbour = Math.max(Math.abs(gelu(x * (1 + 2 ** -10)) - gelu(x)), Math.abs(gelu(x * (1 - 2 ** -10)) - gelu(x)));
        const tol = (neighbour + Math.abs(gelu(x)) * 2 ** -10 + 2 ** -20) * Math.abs(b[i]);
        assert.ok(Math.abs(got[i] - want[i]) <= tol, `geglu into ${into} at ${i}: ${got[i]} against ${want[i]} (gate ${x})`);
      }
    }
  });

  it('rope rotates as the CPU does: normal and neox, partial rotation, frequency factors', async () => {
    const g = gpu!;
    const rand = seededRandom(4);
    const nTokens = 3;
    const nHeads = 5;
    const headDim = 48;
    const positions = Int32Array.from([0, 17, 4099]);
    const cases: RopeParams[] = [
      { nRot: 48, freqBase: 10000, freqScale: 1, mode: 'normal' },
      { nRot: 32, freqBase: 500000, freqScale: 0.25, mode: 'neox' },
      { nRot: 48, freqBase: 10000, freqScale: 1, mode: 'normal', freqFactors: Float32Array.from({ length: 24 }, (_, i) => 1 + i / 8) },
    ];
    for (const p of cases) {
      const x = randomF32(nTokens * nHeads * headDim, rand);
      const want = x.slice();
      refRope(want, nTokens, nHeads, headDim, positions, p);
      const xt = g.upload(x);
      g.rope(xt, nTokens, nHeads, headDim, positions, p);
      assertClose(await g.readF32(xt, x.length), want, { rtol: 1e-6, atol: 1e-6 }, `rope ${p.mode} nRot ${p.nRot}`);
    }
  });

  it('stores keys and values into an F16 cache as the CPU does', async () => {
    const g = gpu!;
    const rand = seededRandom(5);
    const row = 24;
    const pos0 = 3;
    const n = 4;
    const k = randomF32(n * row, rand, 5);
    const v = randomF32(n * row, rand, 5);
    const wantK = new Uint8Array((pos0 + n) * row * 2);
    const wantV = new Uint8Array((pos0 + n) * row * 2);
    // One head: the rows side by side, as the device keeps them.
    refStoreKv(k, v, wantK, wantV, 1, row, pos0, n, 1);
    const kc = g.tensor(wantK.length);
    const vc = g.tensor(wantV.length);
    g.storeKvF16(g.upload(k), g.upload(v), kc, vc, row, pos0, n);
    const gotK = new Uint16Array(await g.read(kc));
    const gotV = new Uint16Array(await g.read(vc));
    const wk = new Uint16Array(wantK.buffer);
    const wv = new Uint16Array(wantV.buffer);
    // Round to nearest on both sides; a half-way case may go either way on a GPU: one unit at most.
    for (let i = 0; i < wk.length; i++) {
      assert.ok(
        Math.abs(gotK[i] - wk[i]) <= 1 && Math.abs(gotV[i] - wv[i]) <= 1,
        `element ${i}: ${gotK[i]}/${gotV[i]} vs ${wk[i]}/${wv[i]}`,
      );
    }
    assert.equal(gotK[0], 0, 'rows before pos0 untouched');
  });

  it('ropeStoreKvF16 gives the rope of q and k and the F16 store, bit for bit: normal and neox, partial rotation, a span after the first row', async () => {
    const g = gpu!;
    const rand = seededRandom(41);
    const [batch, t0, n] = [5, 2, 3];
    const [nHead, nKvHead, headDim, pos0] = [6, 2, 40, 9];
    const rowElems = nKvHead * headDim;
    const positions = Int32Array.from([3, 4, 9, 10, 11]);
    const cases: RopeParams[] = [
      { nRot: 40, freqBase: 10000, freqScale: 1, mode: 'normal' },
      { nRot: 24, freqBase: 1000000, freqScale: 0.5, mode: 'neox' },
      { nRot: 16, freqBase: 10000, freqScale: 1, mode: 'normal' },
    ];
    for (const p of cases) {
      const q = randomF32(batch * nHead * headDim, rand);
      const k = randomF32(batch * rowElems, rand, 4);
      const v = randomF32(batch * rowElems, rand, 4);
      const table = g.upload(ropeTable(positions, batch, p));
      const cacheBytes = (pos0 + n + 2) * rowElems * 2;
      // The separate kernels: rope of q and k over the span's rows, then the store.
      const q1 = g.upload(q);
      const k1 = g.upload(k);
      const [kc1, vc1] = [g.tensor(cacheBytes), g.tensor(cacheBytes)];
      // rope reads the table from its first row: the span's rows of it.
      const spanTable = g.upload(ropeTable(positions.subarray(t0), n, p));
      g.rope(q1, n, nHead, headDim, spanTable, p, { tokenStride: nHead * headDim, headStride: headDim, offset: t0 * nHead * headDim });
      g.rope(k1, n, nKvHead, headDim, spanTable, p, { tokenStride: rowElems, headStride: headDim, offset: t0 * rowElems });
      g.storeKvF16(k1, g.upload(v), kc1, vc1, rowElems, pos0, n, t0);
      // One dispatch.
      const q2 = g.upload(q);
      const k2 = g.upload(k);
      const [kc2, vc2] = [g.tensor(cacheBytes), g.tensor(cacheBytes)];
      g.ropeStoreKvF16(q2, k2, g.upload(v), kc2, vc2, table, { nTokens: n, nHead, nKvHead, headDim, pos0, t0 }, p);
      const what = `${p.mode} nRot ${p.nRot}`;
      assert.deepEqual(new Uint16Array(await g.read(kc2)), new Uint16Array(await g.read(kc1)), `keys, ${what}`);
      assert.deepEqual(new Uint16Array(await g.read(vc2)), new Uint16Array(await g.read(vc1)), `values, ${what}`);
      assert.deepEqual(await g.readF32(q2), await g.readF32(q1), `queries, ${what}`);
      assert.deepEqual(await g.readF32(k2), Float32Array.from(k), `k left as it was, ${what}`);
      // q, k and v in one tensor (a stacked Q/K/V product's), and q with k in one and v apart.
      const wantQ = await g.readF32(q1);
      for (const stacked of ['qkv', 'qk'] as const) {
        const parts = stacked === 'qkv' ? [q, k, v] : [q, k];
        const one = new Float32Array(7 + parts.reduce((a, x) => a + x.length, 0));
        one.set(q, 7);
        one.set(k, 7 + q.length);
        if (stacked === 'qkv') one.set(v, 7 + q.length + k.length);
        const t = g.upload(one);
        const vt = stacked === 'qkv' ? t : g.upload(v);
        const [kc3, vc3] = [g.tensor(cacheBytes), g.tensor(cacheBytes)];
        const offsets = { qOff: 7, kOff: 7 + q.length, vOff: stacked === 'qkv' ? 7 + q.length + k.length : 0 };
        g.ropeStoreKvF16(t, t, vt, kc3, vc3, table, { nTokens: n, nHead, nKvHead, headDim, pos0, t0, ...offsets }, p);
        assert.deepEqual(new Uint16Array(await g.read(kc3)), new Uint16Array(await g.read(kc1)), `keys, ${what}, ${stacked} in one tensor`);
        assert.deepEqual(new Uint16Array(await g.read(vc3)), new Uint16Array(await g.read(vc1)), `values, ${what}, ${stacked} in one tensor`);
        assert.deepEqual((await g.readF32(t)).subarray(7, 7 + q.length), wantQ, `queries, ${what}, ${stacked} in one tensor`);
      }
    }
  });

  it('attention over an F16 cache equals the CPU twin: GQA ratios, head sizes, depth, windows, sinks', async () => {
    const g = gpu!;
    const rand = seededRandom(6);
    const cases = [
      { nHead: 4, nKvHead: 4, headDim: 64, pos0: 0, nTokens: 9, window: 0, sinks: false },
      { nHead: 6, nKvHead: 2, headDim: 36, pos0: 70, nTokens: 5, window: 0, sinks: false },
      { nHead: 8, nKvHead: 2, headDim: 128, pos0: 300, nTokens: 3, window: 0, sinks: true },
      { nHead: 4, nKvHead: 1, headDim: 256, pos0: 130, nTokens: 2, window: 67, sinks: false },
      { nHead: 6, nKvHead: 3, headDim: 64, pos0: 520, nTokens: 4, window: 129, sinks: true },
    ];
    for (const c of cases) {
      const row = c.nKvHead * c.headDim;
      const ctx = c.pos0 + c.nTokens;
      const kCache = new Uint8Array(ctx * row * 2);
      const vCache = new Uint8Array(ctx * row * 2);
      refStoreKv(randomF32(ctx * row, rand), randomF32(ctx * row, rand), kCache, vCache, 1, row, 0, ctx, c.nKvHead);
      const q = randomF32(c.nTokens * c.nHead * c.headDim, rand, 4);
      const sinks = c.sinks ? randomF32(c.nHead, rand, 3) : undefined;
      const p: AttentionParams = {
        nTokens: c.nTokens,
        nHead: c.nHead,
        nKvHead: c.nKvHead,
        headDim: c.headDim,
        pos0: c.pos0,
        scale: 1 / Math.sqrt(c.headDim),
        kvType: 1,
        window: c.window,
        sinks,
      };
      const want = new Float32Array(q.length);
      refAttention(q, kCache, vCache, p, want);
      const out = g.tensor(q.length * 4);
      g.attention(g.upload(q), g.upload(asRows(kCache, ctx, c.nKvHead)), g.upload(asRows(vCache, ctx, c.nKvHead)), { ...p, sinks: sinks && g.upload(sinks), kvType: GgmlType.F16 }, out);
      // The CPU rounds the weights to f16 for contexts within one chunk; the GPU keeps them f32.
      assertClose(await g.readF32(out, q.length), want, { rtol: 0, atol: 2 ** -10 }, `attention ${JSON.stringify(c)}`);
    }
  });

  it('latent attention (MLA): one KV head whose values are the first elements of its keys, keys past 256, output rows of the value size', async () => {
    const g = gpu!;
    const rand = seededRandom(7);
    for (const c of [
      { nHead: 4, kvLora: 96, rope: 32, pos0: 40, nTokens: 3 },
      { nHead: 2, kvLora: 512, rope: 64, pos0: 70, nTokens: 2 },
    ]) {
      const row = c.kvLora + c.rope;
      const ctx = c.pos0 + c.nTokens;
      const cache = new Uint8Array(ctx * row * 2);
      refStoreKv(randomF32(ctx * row, rand), randomF32(ctx * row, rand), cache, new Uint8Array(ctx * row * 2), 1, row, 0, ctx, 1);
      const q = randomF32(c.nTokens * c.nHead * row, rand, 2);
      const p: AttentionParams = { nTokens: c.nTokens, nHead: c.nHead, nKvHead: 1, headDim: row, pos0: c.pos0, scale: 0.07, kvType: 1 };
      // The CPU block reads the cache as values too and uses the first kvLora of each output head.
      const whole = new Float32Array(c.nTokens * c.nHead * row);
      refAttention(q, cache, cache, p, whole);
      const want = new Float32Array(c.nTokens * c.nHead * c.kvLora);
      for (let i = 0; i < c.nTokens * c.nHead; i++) want.set(whole.subarray(i * row, i * row + c.kvLora), i * c.kvLora);
      const ct = g.upload(cache);
      const out = g.tensor(want.length * 4);
      g.attention(g.upload(q), ct, ct, { ...p, sinks: undefined, vDim: c.kvLora, vRow: row, kvType: GgmlType.F16 }, out);
      assertClose(await g.readF32(out, want.length), want, { rtol: 0, atol: 2 ** -10 }, `latent attention ${JSON.stringify(c)}`);
    }
  });

  it('rmsNorm of long rows (the wide kernel: four loads a thread, then the tail) equals its CPU twin, in place, out of place and at a stride', async () => {
    const g = gpu!;
    const rand = seededRandom(13);
    for (const [rows, dim, stride] of [
      [1, 2048, 2048],
      [3, 1100, 1100],
      [2, 1027, 1500],
      [1, 512, 512],
    ]) {
      const x = randomF32(rows * stride, rand, 3);
      const w = randomF32(dim, rand);
      const want = new Float32Array(rows * stride);
      for (let r = 0; r < rows; r++) refRmsNorm(x.subarray(r * stride, r * stride + dim), w, 1, dim, 1e-5, want.subarray(r * stride, r * stride + dim));
      const xt = g.upload(x);
      const wt = g.upload(w);
      const out = g.tensor(x.byteLength);
      g.rmsNorm(xt, wt, rows, dim, 1e-5, out, stride);
      g.rmsNorm(xt, wt, rows, dim, 1e-5, xt, stride);
      for (const [t, how] of [
        [out, 'out of place'],
        [xt, 'in place'],
      ] as const) {
        const got = await g.readF32(t, rows * stride);
        for (let r = 0; r < rows; r++) {
          assertClose(got.subarray(r * stride, r * stride + dim), want.subarray(r * stride, r * stride + dim), { rtol: 2e-6, atol: 1e-7 }, `rmsNorm ${rows}x${dim} stride ${stride} ${how}`);
        }
      }
      for (const t of [xt, wt, out]) g.free(t);
    }
  });

  it('rmsNorm from an element offset (the keys after the queries of a stacked product) leaves what is before and after it alone', async () => {
    const g = gpu!;
    const rand = seededRandom(17);
    for (const [rows, dim, offset] of [
      [3, 64, 200],
      [1, 1024, 13],
    ]) {
      const total = offset + rows * dim + 9;
      const x = randomF32(total, rand, 2);
      const w = randomF32(dim, rand);
      const want = x.slice();
      refRmsNorm(x.subarray(offset, offset + rows * dim), w, rows, dim, 1e-6, want.subarray(offset, offset + rows * dim));
      const xt = g.upload(x);
      g.rmsNorm(xt, g.upload(w), rows, dim, 1e-6, xt, dim, offset);
      const got = await g.readF32(xt, total);
      assertClose(got.subarray(offset, offset + rows * dim), want.subarray(offset, offset + rows * dim), { rtol: 2e-6, atol: 1e-7 }, `rmsNorm ${rows}x${dim} from ${offset}`);
      assert.deepEqual(got.subarray(0, offset), x.subarray(0, offset), 'before it');
      assert.deepEqual(got.subarray(offset + rows * dim), x.subarray(offset + rows * dim), 'after it');
    }
  });

  it('rope and rmsNorm at strides: a part of each head (the rotated dims of MLA), the latent part of each row', async () => {
    const g = gpu!;
    const rand = seededRandom(8);
    const nTokens = 3;
    const nHeads = 4;
    const nope = 24;
    const nRot = 16;
    const qk = nope + nRot;
    const positions = Int32Array.from([5, 6, 300]);
    const p: RopeParams = { nRot, freqBase: 10000, freqScale: 1, mode: 'normal' };
    const x = randomF32(nTokens * nHeads * qk, rand);
    // The CPU twin over the rotated parts gathered, scattered back.
    const parts = new Float32Array(nTokens * nHeads * nRot);
    for (let i = 0; i < nTokens * nHeads; i++) parts.set(x.subarray(i * qk + nope, (i + 1) * qk), i * nRot);
    refRope(parts, nTokens, nHeads, nRot, positions, p);
    const want = x.slice();
    for (let i = 0; i < nTokens * nHeads; i++) want.set(parts.subarray(i * nRot, (i + 1) * nRot), i * qk + nope);
    const xt = g.upload(x);
    g.rope(xt, nTokens, nHeads, qk, positions, p, { tokenStride: nHeads * qk, headStride: qk, offset: nope });
    assertClose(await g.readF32(xt, x.length), want, { rtol: 1e-6, atol: 1e-6 }, "rope of each head's last dims");

    const dim = 100;
    const stride = 130;
    const y = randomF32(nTokens * stride, rand, 3);
    const w = randomF32(dim, rand);
    const wantN = y.slice();
    for (let t = 0; t < nTokens; t++)
      refRmsNorm(y.subarray(t * stride, t * stride + dim), w, 1, dim, 1e-6, wantN.subarray(t * stride, t * stride + dim));
    const yt = g.upload(y);
    g.rmsNorm(yt, g.upload(w), nTokens, dim, 1e-6, yt, stride);
    assertClose(await g.readF32(yt, y.length), wantN, { rtol: 2e-6, atol: 1e-7 }, 'rmsNorm of the first dim of rows of stride');
  });

  it('a Q8_0 cache: rows stored as ggml quantizes them, attention over it (GQA with windows and sinks, latent) as the CPU twin', async () => {
    const g = gpu!;
    const rand = seededRandom(11);
    // Storing: each block's bytes as the CPU's; a rounding tie may land one quant apart on a GPU.
    const row = 128;
    const n = 3;
    const k = randomF32(n * row, rand, 3);
    const v = randomF32(n * row, rand, 3);
    const pos0 = 2;
    const wantK = new Uint8Array(((pos0 + n) * row * 34) / 32);
    const wantV = new Uint8Array(wantK.length);
    refStoreKv(k, v, wantK, wantV, GgmlType.Q8_0, row, pos0, n, 1);
    const kc = g.tensor(wantK.length);
    const vc = g.tensor(wantV.length);
    g.storeKv(GgmlType.Q8_0, g.upload(k), g.upload(v), kc, vc, row, pos0, n);
    for (const [got, want] of [
      [new Uint8Array(await g.read(kc)), wantK],
      [new Uint8Array(await g.read(vc)), wantV],
    ] as const) {
      for (let b = 0; b < want.length / 34; b++) {
        const at = b * 34;
        assert.ok(
          Math.abs(new DataView(got.buffer).getUint16(at, true) - new DataView(want.buffer).getUint16(at, true)) <= 1,
          `block ${b} scale`,
        );
        for (let j = 2; j < 34; j++)
          assert.ok(Math.abs(((got[at + j] << 24) >> 24) - ((want[at + j] << 24) >> 24)) <= 1, `block ${b} quant ${j - 2}`);
      }
    }
    for (const c of [
      { nHead: 8, nKvHead: 2, headDim: 64, pos0: 90, nTokens: 3, window: 0, sinks: true, latent: 0 },
      { nHead: 4, nKvHead: 4, headDim: 128, pos0: 200, nTokens: 2, window: 70, sinks: false, latent: 0 },
      { nHead: 4, nKvHead: 1, headDim: 96, pos0: 40, nTokens: 2, window: 0, sinks: false, latent: 64 },
    ]) {
      const kvRow = c.nKvHead * c.headDim;
      const ctx = c.pos0 + c.nTokens;
      const kCache = new Uint8Array((ctx * kvRow * 34) / 32);
      const vCache = new Uint8Array(kCache.length);
      refStoreKv(randomF32(ctx * kvRow, rand), randomF32(ctx * kvRow, rand), kCache, vCache, GgmlType.Q8_0, kvRow, 0, ctx, c.nKvHead);
      const q = randomF32(c.nTokens * c.nHead * c.headDim, rand, 2);
      const sinks = c.sinks ? randomF32(c.nHead, rand, 3) : undefined;
      const p: AttentionParams = {
        nTokens: c.nTokens,
        nHead: c.nHead,
        nKvHead: c.nKvHead,
        headDim: c.headDim,
        pos0: c.pos0,
        scale: 1 / Math.sqrt(c.headDim),
        kvType: GgmlType.Q8_0,
        window: c.window,
        sinks,
      };
      const whole = new Float32Array(q.length);
      const vd = c.latent || c.headDim;
      // Latent attention: the values are the first `latent` elements of the key rows.
      refAttention(q, kCache, c.latent ? kCache : vCache, p, whole);
      const want = new Float32Array(c.nTokens * c.nHead * vd);
      for (let i = 0; i < c.nTokens * c.nHead; i++) want.set(whole.subarray(i * c.headDim, i * c.headDim + vd), i * vd);
      const out = g.tensor(want.length * 4);
      const kt = g.upload(asRows(kCache, ctx, c.nKvHead));
      g.attention(
        g.upload(q),
        kt,
        c.latent ? kt : g.upload(asRows(vCache, ctx, c.nKvHead)),
        { ...p, sinks: sinks && g.upload(sinks), kvType: GgmlType.Q8_0, ...(c.latent ? { vDim: c.latent, vRow: kvRow } : {}) },
        out,
      );
      assertClose(await g.readF32(out, want.length), want, { rtol: 0, atol: 2e-3 }, `Q8_0 attention ${JSON.stringify(c)}`);
    }
  });
});

describe('GPU work that the device refuses after it returned', { skip }, () => {
  it('is released and reported, and the device keeps working', async () => {
    const g = gpu!;
    const device = g.gpu.device;
    let released = 0;
    await assert.rejects(
      g.checked(
        'a part too large',
        () => {
          const kept = g.tensor(64);
          // Past the device's largest buffer: the device reports it only when asked, after f returned.
          device.createBuffer({ size: device.limits.maxBufferSize + 256, usage: GPUBufferUsage.STORAGE });
          return kept;
        },
        (kept) => {
          released++;
          kept.buffer.destroy();
        },
      ),
      (e: unknown) => e instanceof Error && /a part too large/.test(e.message),
    );
    assert.equal(released, 1);
    // Work that fits still runs on the same device.
    const value = await g.checked(
      'a small part',
      () => g.upload(new Float32Array([1, 2, 3])),
      () => assert.fail('nothing to release'),
    );
    assert.deepEqual([...(await g.readF32(value, 3))], [1, 2, 3]);
  });
});

describe('GPU limits and failures outside a checked load', { skip }, () => {
  it('attention of more tokens than a grid dimension holds runs in runs of rows, with the results of one run', async () => {
    const g = gpu!;
    // Window 1: each token sees only its own position, so out row t is value row t (small integers, exact in F16).
    const n = g.gpu.device.limits.maxComputeWorkgroupsPerDimension + 100;
    const q = g.upload(new Float32Array(n * 2).fill(1));
    const vals = Float32Array.from({ length: n * 2 }, (_, i) => i % 7);
    const v = g.upload(vals);
    const kc = g.tensor(n * 4);
    const vc = g.tensor(n * 4);
    g.storeKvF16(q, v, kc, vc, 2, 0, n);
    const out = g.tensor(n * 8);
    g.attention(q, kc, vc, { nTokens: n, nHead: 1, nKvHead: 1, headDim: 2, pos0: 0, scale: 1, window: 1 }, out);
    assert.deepEqual(await g.readF32(out, n * 2), vals);
    for (const t of [q, v, kc, vc, out]) g.free(t);
  });

  it('a grid past the device\'s limit is refused when recorded', () => {
    const g = gpu!;
    const perDim = g.gpu.device.limits.maxComputeWorkgroupsPerDimension;
    const t = g.tensor(16);
    const source = () => '@group(0) @binding(0) var<storage, read_write> a: array<f32>;\n@compute @workgroup_size(1) fn main() { a[0] = 1.0; }';
    assert.throws(() => g.run('limit-probe', source, [t], [perDim + 1, 1]), (e: unknown) => isCairnError(e, 'BAD_ARGUMENT') && /per dimension/.test((e as Error).message));
    g.free(t);
  });

  it('a command the device refused outside a checked call fails the next read, and the device keeps working', async () => {
    const g = gpu!;
    const t = g.upload(new Float32Array([1, 2, 3, 4]));
    // Past the device's largest buffer, outside any error scope: reported only as an uncaptured error.
    g.gpu.device.createBuffer({ size: g.gpu.device.limits.maxBufferSize + 256, usage: GPUBufferUsage.STORAGE });
    await assert.rejects(g.readF32(t, 4), (e: unknown) => e instanceof Error && /the GPU refused a command/.test(e.message));
    assert.deepEqual([...(await g.readF32(t, 4))], [1, 2, 3, 4]);
    g.free(t);
  });

  it('a lost device fails reads by name, every time, without hanging', async () => {
    const g = await WebGpuKernels.open();
    const t = g.upload(new Float32Array([1, 2, 3, 4]));
    await g.readF32(t, 4);
    g.gpu.device.destroy();
    for (let i = 0; i < 2; i++) {
      g.add(t, t, 4, t);
      await assert.rejects(g.readF32(t, 4), (e: unknown) => isCairnError(e, 'GPU_UNAVAILABLE') && /the GPU device was lost/.test((e as Error).message));
    }
  });
});

describe('GPU tensors freed', { skip }, () => {
  it('take the cached bind groups that name them along', async () => {
    const g = gpu!;
    const before = g.cachedBindGroups;
    const a = g.upload(new Float32Array([1, 2, 3, 4]));
    const b = g.upload(new Float32Array([10, 20, 30, 40]));
    const out = g.tensor(16);
    g.add(a, b, 4, out);
    g.add(out, b, 4, out); // a second group naming out and b
    assert.deepEqual([...(await g.readF32(out, 4))], [21, 42, 63, 84]);
    assert.equal(g.cachedBindGroups, before + 2);
    g.free(a);
    assert.equal(g.cachedBindGroups, before + 1, 'the group that bound a is gone');
    g.free(b);
    assert.equal(g.cachedBindGroups, before, 'and the one that bound b');
    // What is left still computes, with fresh groups.
    const c = g.upload(new Float32Array([1, 1, 1, 1]));
    g.add(out, c, 4, out);
    assert.deepEqual([...(await g.readF32(out, 4))], [22, 43, 64, 85]);
    g.free(c);
    g.free(out);
    assert.equal(g.cachedBindGroups, before);
  });
});

describe('GPU writes and reads between recorded commands', { skip }, () => {
  it('a write lands after the recorded commands that use its tensor, and before the later ones', async () => {
    const g = gpu!;
    const a = g.upload(new Float32Array([1, 2, 3, 4]));
    const b = g.upload(new Float32Array([10, 20, 30, 40]));
    const out = g.tensor(16);
    const other = g.tensor(16);
    g.add(a, b, 4, out); // recorded, not yet submitted: must see the old a
    g.write(a, new Float32Array([100, 100, 100, 100]));
    g.write(other, new Float32Array([5, 5, 5, 5])); // nothing recorded uses it: no submission needed, same result
    g.add(out, other, 4, out);
    g.add(out, a, 4, out); // recorded after the write: sees the new a
    assert.deepEqual([...(await g.readF32(out, 4))], [116, 127, 138, 149]);
    for (const t of [a, b, out, other]) g.free(t);
  });

  it('reads of one size in turn and at once each get their own tensor back', async () => {
    const g = gpu!;
    const ts = [1, 2, 3].map((k) => g.upload(new Float32Array(10).fill(k)));
    for (let round = 0; round < 3; round++) {
      const values = await Promise.all(ts.map((t) => g.readF32(t, 10)));
      values.forEach((v, k) => assert.deepEqual([...v], new Array(10).fill(k + 1)));
    }
    for (const t of ts) g.free(t);
  });
});

describe('GPU profile', { skip }, () => {
  it('times each dispatch on the device and sums them by kernel', (t) =>
    onTimedGpu(t, async (g) => {
      const a = g.upload(new Float32Array(256).fill(1));
      const out = g.tensor(1024);
      const profiler = g.startProfile();
      for (let i = 0; i < 3; i++) g.add(a, a, 256, out);
      g.rmsNorm(out, a, 4, 64, 1e-5, out);
      await g.readF32(out, 4);
      const p = await profiler.take();
      g.stopProfile();
      const byKey = new Map(p.kernels.map((k) => [k.key, k]));
      assert.equal(byKey.get('add')?.dispatches, 3);
      assert.equal(byKey.get('rmsnorm-in-place')?.dispatches, 1);
      assert.ok(p.busyNs > 0 && p.spanNs >= p.busyNs * 0.5, `busy ${p.busyNs} ns, span ${p.spanNs} ns`);
      assert.equal((await profiler.take()).kernels.length, 0, 'take starts again from zero');
      // Off again: dispatches share a pass and nothing is timed.
      g.add(a, a, 256, out);
      await g.readF32(out, 4);
    }));

  it('submitEarly submits what was recorded once it holds that many dispatches, and not while turned off', (t) =>
    onTimedGpu(t, async (g) => {
      const a = g.upload(new Float32Array(64).fill(1));
      const out = g.tensor(256);
      const profiler = g.startProfile();
      for (const early of [true, false]) {
        g.earlySubmits = early;
        for (let i = 0; i < 3; i++) g.add(a, a, 64, out);
        g.submitEarly(4); // fewer recorded: nothing submitted
        g.submitEarly(3);
        g.add(out, a, 64, out);
        assert.deepEqual([...(await g.readF32(out, 2))], [3, 3]);
        assert.equal((await profiler.take()).submissions, early ? 2 : 1, `early submissions ${early}`);
      }
      g.earlySubmits = true;
      g.stopProfile();
    }));

  it('is refused on a device opened without timestamps', () => {
    assert.throws(() => plain!.startProfile(), (e) => isCairnError(e) && e.code === 'GPU_UNAVAILABLE');
  });
});
