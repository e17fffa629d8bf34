/**
 * The GPU's weight products alone: each weight type in the shapes of llama-8b's layers (4096 x
 * 4096, 14336 x 4096, 4096 x 14336), for one token (decode: GB/s of weights read) and for a batch
 * (prefill: GFLOP/s), timed over repeated calls on matrices that cycle through more memory than the
 * GPU's caches hold. Prints one line per case, and JSON with --json.
 *
 * `--staged on|off|both` runs the item products with their activations staged in workgroup memory,
 * without (the default), or both in turn for every case (the same bits; which is faster is what
 * the GPU at hand says).
 *
 *   node dist/bench/gpu-matmul.js [--types Q4_K,Q6_K,Q8_0,Q4_0,F16] [--tokens 1,512] [--reps 20] [--staged both] [--json]
 */
import { flag } from './args.js';
import { GgmlType, ggmlTypeName } from '../src/gguf/ggml-types.js';
import { refQuantize } from '../src/kernels/reference/quant/codecs.js';
import { WebGpuKernels } from '../src/kernels/webgpu/gpu-kernels.js';
import { gpuWeightFormat } from '../src/kernels/webgpu/wgsl-weights.js';
import { describeAdapter } from '../src/kernels/webgpu/device.js';

const args = process.argv.slice(2);
const typeNames = flag(args, '--types', 'Q4_K,Q6_K,Q8_0,Q4_0,F16').split(',');
const tokenCounts = flag(args, '--tokens', '1,512').split(',').map(Number);
const reps = Number(flag(args, '--reps', '20'));
const json = args.includes('--json');
const stagedFlag = flag(args, '--staged', 'off');
if (!['on', 'off', 'both'].includes(stagedFlag)) throw new Error('--staged takes on, off or both');
const shapes: [number, number][] = [
  [4096, 4096],
  [14336, 4096],
  [4096, 14336],
];
/** Bytes of weights the copies of a shape fill, so that repeated calls find them outside the caches. */
const CYCLE_BYTES = 1 << 30;

const gpu = await WebGpuKernels.open();
// Only the item products stage (a software adapter runs the per-block products: nothing to compare).
const stagings = !gpu.gpu.itemProducts ? [false] : stagedFlag === 'both' ? [false, true] : [stagedFlag === 'on'];
const results: Record<string, unknown>[] = [];
if (!json) console.log(`# ${describeAdapter(gpu.gpu.adapter)}, subgroups ${gpu.gpu.subgroups ? gpu.gpu.subgroupMaxSize : 'no'}, item products ${gpu.gpu.itemProducts ? 'on' : 'off'}`);
for (const name of typeNames) {
  const type = (GgmlType as unknown as Record<string, GgmlType>)[name];
  const f = type === undefined ? undefined : gpuWeightFormat(type);
  if (type === undefined || !f) throw new Error(`--types: ${name} is not a weight type the GPU reads`);
  // One quantized 256 x 4096 slab, repeated: quantizing whole matrices in TypeScript would take longer than the timing.
  const slabRows = 256;
  const slab = new Uint8Array((slabRows * 4096 * f.blockBytes) / f.blockElems);
  refQuantize(type, Float32Array.from({ length: slabRows * 4096 }, () => Math.random() - 0.5), slab, slabRows * 4096);
  for (const [rows, cols] of shapes) {
    const bytes = (rows * cols * f.blockBytes) / f.blockElems;
    const host = new Uint8Array(bytes);
    for (let at = 0; at < bytes; at += slab.length) host.set(slab.subarray(0, Math.min(slab.length, bytes - at)), at);
    const copies = Math.max(1, Math.min(8, Math.floor(CYCLE_BYTES / bytes)));
    const ws = Array.from({ length: copies }, () => gpu.upload(host));
    for (const n of tokenCounts) {
      const x = gpu.upload(Float32Array.from({ length: n * cols }, () => Math.random() - 0.5));
      const y = gpu.tensor(n * rows * 4);
      for (const staged of stagings) {
        gpu.stagedProducts = staged;
        for (let i = 0; i < copies; i++) gpu.matmul(ws[i], type, rows, cols, x, n, y);
        await gpu.finish();
        const calls = n === 1 ? reps * 10 : reps;
        const t0 = performance.now();
        for (let i = 0; i < calls; i++) {
          gpu.matmul(ws[i % copies], type, rows, cols, x, n, y);
          // A flush per cycle of copies: the next cycle's calls then find their bind groups cached (as a
          // model's steps do), so a call costs the host what it costs in a model.
          if ((i + 1) % copies === 0) gpu.flush();
        }
        await gpu.finish();
        const s = (performance.now() - t0) / 1000 / calls;
        const r = { type: ggmlTypeName(type), rows, cols, tokens: n, staged, us: s * 1e6, gbPerS: bytes / s / 1e9, gflopPerS: (2 * rows * cols * n) / s / 1e9 };
        results.push(r);
        if (!json) console.log(`${r.type.padEnd(5)} ${`${rows}x${cols}`.padEnd(11)} ${String(n).padStart(4)} tokens${staged ? ', staged' : ''}: ${r.us.toFixed(1).padStart(9)} us  ${r.gbPerS.toFixed(1).padStart(7)} GB/s  ${r.gflopPerS.toFixed(0).padStart(7)} GFLOP/s`);
      }
      gpu.free(x);
      gpu.free(y);
    }
    for (const w of ws) gpu.free(w);
  }
}
if (json) console.log(JSON.stringify({ adapter: describeAdapter(gpu.gpu.adapter), results }, null, 2));
gpu.destroy();
