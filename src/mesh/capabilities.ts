/**
 * What a node can do, measured at start: memory it offers, and the speed at which its kernels
 * stream quantized weights through a matrix-vector product (the work of a decode step), on a
 * matrix larger than any CPU cache so the figure is memory bandwidth, not cache bandwidth.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { freemem, hostname } from 'node:os';
import { GgmlType, ggmlRowBytes } from '../gguf/ggml-types.js';
import { cpuInfo, type Kernels } from '../kernels/index.js';

/** Bytes per second of a Q8_0 matrix-vector product over `bytes` of weights (median of runs). */
function measureMatvecSpeed(kernels: Kernels, bytes = 96 << 20, runs = 9): number {
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

/**
 * A node's speeds: the product above on its own kernel threads, and on the whole machine (as many
 * threads as it has physical cores; the same figure where the node already uses them all). The
 * planner slows nodes that share a machine only as far as their speeds add up to more than the
 * machine's. The kernels' thread count is put back.
 */
export function measureSpeeds(kernels: Kernels): { bytesPerSecond: number; machineBytesPerSecond: number } {
  const bytesPerSecond = measureMatvecSpeed(kernels);
  const { threads, physicalCores } = cpuInfo();
  if (physicalCores <= threads) return { bytesPerSecond, machineBytesPerSecond: bytesPerSecond };
  kernels.setThreads(physicalCores);
  try {
    return { bytesPerSecond, machineBytesPerSecond: Math.max(bytesPerSecond, measureMatvecSpeed(kernels)) };
  } finally {
    kernels.setThreads(threads);
  }
}

/** Memory a node offers: the --max-memory limit as given, or 90% of what is free now. */
export function offeredMemory(maxMemory?: number): number {
  return maxMemory ?? Math.floor(freemem() * 0.9);
}

/**
 * An id of the machine this process runs on, the same for every process on it (network namespaces
 * included) and different between machines: a hash of the OS's machine id and boot id, or of the
 * host name where those are missing. Nodes with one machine id share its cores and memory
 * bandwidth, which the planner must know.
 */
export function machineId(): string {
  const read = (path: string) => {
    try {
      return readFileSync(path, 'utf8').trim();
    } catch {
      return '';
    }
  };
  const source = [read('/etc/machine-id') || read('/var/lib/dbus/machine-id'), read('/proc/sys/kernel/random/boot_id'), hostname()].join(
    '/',
  );
  return createHash('sha256').update(source).digest('hex').slice(0, 16);
}
