/**
 * Where a GPU decode step's time goes: the host's recording of its dispatches (the synchronous part
 * of the shard's forward), the whole step to its logits on the host, and the floor of any step (a
 * submit and a 16-byte read back with nothing to run). What is left of a step is the GPU's own work.
 *
 * `--staged`: the weight products with their activations staged in workgroup memory (as
 * CAIRN_GPU_STAGED=1 does for every command).
 *
 *   node dist/bench/gpu-step.js MODEL.gguf [--steps 32] [--ctx 512] [--staged] [--profile]
 */
import { flag } from './args.js';
import { loadGpuParts } from '../src/engine/load-gpu.js';
import { WebGpuKernels } from '../src/kernels/webgpu/gpu-kernels.js';
import { describeAdapter } from '../src/kernels/webgpu/device.js';
import type { GpuProfile } from '../src/kernels/webgpu/gpu-profile.js';

const args = process.argv.slice(2);
const model = args.find((a) => !a.startsWith('--') && !/^\d+$/.test(a));
if (!model) throw new Error('usage: node dist/bench/gpu-step.js MODEL.gguf [--steps 32] [--ctx 512]');
const steps = Number(flag(args, '--steps', '32'));
const ctx = Number(flag(args, '--ctx', '512'));
const profiling = args.includes('--profile');
const prompt = Number(flag(args, '--prompt', '512'));
const gpu = await WebGpuKernels.open({ timestamps: profiling });
gpu.decodeRows = Number(flag(args, '--decode-rows', String(gpu.decodeRows)));
gpu.decodeItems = Number(flag(args, '--decode-items', String(gpu.decodeItems)));
if (args.includes('--staged')) gpu.stagedProducts = true;
const parts = await loadGpuParts(model, { ctx }, gpu);
const shard = parts.shard;
const batch = (pos: number) => ({ nTokens: 1, tokens: Int32Array.from([1 + (pos % 100)]), spans: [{ slot: 0, pos0: pos, start: 0, n: 1 }] });
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

for (let pos = 0; pos < 3; pos++) await shard.forward(batch(pos));
let pos = 3;
/** Medians of the recording (the synchronous part of forward) and of the whole step. */
async function timeSteps(): Promise<{ record: number; total: number; dispatches: number }> {
  const record: number[] = [];
  const total: number[] = [];
  const d0 = gpu.dispatchCount;
  for (let i = 0; i < steps; i++) {
    const t = performance.now();
    const logits = shard.forward(batch(pos++));
    record.push(performance.now() - t);
    await logits;
    total.push(performance.now() - t);
  }
  return { record: median(record), total: median(total), dispatches: (gpu.dispatchCount - d0) / steps };
}
const early = await timeSteps();
// Everything submitted at the end of the recording: what follows it is the device's whole step.
gpu.earlySubmits = false;
const late = await timeSteps();
gpu.earlySubmits = true;
const dispatches = early.dispatches;
const probe = gpu.tensor(16);
const floor: number[] = [];
for (let i = 0; i < 50; i++) {
  const t = performance.now();
  await gpu.read(probe, 16);
  floor.push(performance.now() - t);
}
const f = median(floor);
console.log(`${describeAdapter(gpu.gpu.adapter)}: ${model}`);
console.log(
  `dispatches per step ${dispatches.toFixed(0)}, ${gpu.decodeRows} rows a subgroup and ${gpu.decodeItems} items a lane in one token's products${gpu.stagedProducts && gpu.gpu.itemProducts ? ', activations staged' : ''}; medians over ${steps} steps:`,
);
console.log(`  whole step ${early.total.toFixed(3)} ms (${(1000 / early.total).toFixed(1)} tok/s), its recording ${early.record.toFixed(3)} ms (${((early.record / dispatches) * 1000).toFixed(1)} us a dispatch)`);
console.log(`  floor (submit + 16-byte read of nothing) ${f.toFixed(3)} ms`);
console.log(`  submitted only once recorded: whole step ${late.total.toFixed(3)} ms, recording ${late.record.toFixed(3)} ms,`);
console.log(`    so the device's work and the logits' copy ${(late.total - late.record - f).toFixed(3)} ms`);

/** The profile as a table: a kernel's dispatches and device time per step, its share, and the read rate of weight products. */
function show(title: string, p: GpuProfile, per: number): void {
  const us = (ns: number) => (ns / per / 1000).toFixed(1);
  console.log(`\n${title}: device busy ${us(p.busyNs)} us a step, first dispatch to last ${us(p.spanNs)} us (${p.submissions / per} submissions a step)`);
  console.log('  kernel                          dispatches      us   share   GB/s');
  for (const k of p.kernels) {
    const rate = k.bytes > 0 ? (k.bytes / k.ns).toFixed(0) : '';
    console.log(`  ${k.key.padEnd(32)}${(k.dispatches / per).toFixed(0).padStart(10)}${us(k.ns).padStart(8)}${((100 * k.ns) / p.busyNs).toFixed(1).padStart(7)}%${rate.padStart(7)}`);
  }
}

if (profiling) {
  const profiler = gpu.startProfile();
  for (let i = 0; i < steps; i++) await shard.forward(batch(pos++));
  show('decode, per step', await profiler.take(), steps);
  if (prompt > 0 && prompt < ctx) {
    const tokens = Int32Array.from({ length: prompt }, (_, i) => 1 + (i % 100));
    await shard.forward({ nTokens: prompt, tokens, spans: [{ slot: 0, pos0: 0, start: 0, n: prompt }] });
    show(`a prompt of ${prompt} tokens`, await profiler.take(), 1);
  }
  gpu.stopProfile();
}
parts.close();
gpu.destroy();
