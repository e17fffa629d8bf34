/**
 * What a node computing on a GPU offers the planner: the speed at which the GPU streams quantized
 * weights through a matrix-vector product (the work of a decode step, as capabilities.ts measures
 * the CPU's), over a matrix larger than any GPU cache, and the id of the GPU it shares with other
 * nodes on its machine.
 */
import { createHash } from 'node:crypto';
import { GgmlType, ggmlRowBytes } from '../gguf/ggml-types.js';
import type { WebGpuKernels } from '../kernels/webgpu/gpu-kernels.js';
import { describeAdapter } from '../kernels/webgpu/device.js';
import { machineId } from './capabilities.js';

/** Bytes per second of a Q8_0 matrix-vector product over `bytes` of weights on the GPU (median of runs, each waited for). */
export async function measureGpuSpeed(gpu: WebGpuKernels, bytes = 64 << 20, runs = 5): Promise<number> {
  const cols = 4096;
  const rowBytes = ggmlRowBytes(GgmlType.Q8_0, cols);
  const rows = Math.max(1, Math.floor(Math.min(bytes, gpu.gpu.maxBinding - 8) / rowBytes));
  const host = new Uint8Array(rows * rowBytes);
  // Valid blocks: scale 1/64 (f16 0x2400) and small quants.
  for (let o = 0; o < host.length; o += 34) {
    host[o + 1] = 0x24;
    for (let j = 2; j < 34; j++) host[o + j] = (o + j) & 0x0f;
  }
  const w = gpu.upload(host);
  const x = gpu.upload(new Float32Array(cols).fill(0.5));
  const y = gpu.tensor(rows * 4);
  const run = async () => {
    gpu.matmul(w, GgmlType.Q8_0, rows, cols, x, 1, y);
    await gpu.finish();
  };
  try {
    await run(); // warm-up: the pipeline is compiled
    const times: number[] = [];
    for (let r = 0; r < runs; r++) {
      const t = performance.now();
      await run();
      times.push(performance.now() - t);
    }
    times.sort((a, b) => a - b);
    return host.length / (times[runs >> 1] / 1000);
  } finally {
    for (const t of [w, x, y]) t.buffer.destroy();
  }
}

/**
 * The id nodes computing on one GPU share (so the planner knows they split its bandwidth), distinct
 * from the machine's own (its CPU nodes do not compete with them for a discrete GPU's memory).
 */
export function gpuMachineId(gpu: WebGpuKernels): string {
  return createHash('sha256').update(`${machineId()}/gpu/${describeAdapter(gpu.gpu.adapter)}`).digest('hex').slice(0, 16);
}
