/**
 * What a node can do, measured at start: memory it offers, and the speed at which its kernels
 * stream quantized weights through a matrix-vector product (the work of a decode step), on a
 * matrix larger than any CPU cache so the figure is memory bandwidth, not cache bandwidth.
 */
import { freemem } from 'node:os';
import { GgmlType, ggmlRowBytes } from '../gguf/ggml-types.js';
import type { Kernels } from '../kernels/index.js';

/** Bytes per second of a Q8_0 matrix-vector product over `bytes` of weights (median of runs). */
export function measureMatvecSpeed(kernels: Kernels, bytes = 96 << 20, runs = 9): number {
  const cols = 4096;
  const rowBytes = ggmlRowBytes(GgmlType.Q8_0, cols);
  const rows = Math.max(1, Math.floor(bytes / rowBytes));
  const w = new Uint8Array(rows * rowBytes);
  // Valid blocks: scale 1/64 (f16 0x2400) and small quants.
  for (let o = 0; o < w.length; o += 34) {
    w[o] = 0x00;
    w[o + 1] = 0x24;
    for (let j = 2; j < 34; j++) w[o + j] = (o + j) & 0x0f;
  }
  const x = new Float32Array(cols).fill(0.5);
  const y = new Float32Array(rows);
  kernels.matmul(w, GgmlType.Q8_0, rows, cols, x, 1, y); // warm-up: pages and threads
  const times: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t = performance.now();
    kernels.matmul(w, GgmlType.Q8_0, rows, cols, x, 1, y);
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return w.length / (times[runs >> 1] / 1000);
}

/** Memory a node offers: the --max-memory limit as given, or 90% of what is free now. */
export function offeredMemory(maxMemory?: number): number {
  return maxMemory ?? Math.floor(freemem() * 0.9);
}
