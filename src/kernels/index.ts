/**
 * Entry point of the kernels module: pick an implementation of the Kernels interface, map weight
 * files, read process memory.
 */
import { CairnError } from '../util/errors.js';
import type { Kernels } from './api.js';
import { isNativeAvailable, loadNative, NativeKernels } from './native.js';
import { ReferenceKernels } from './reference.js';

export type { AttentionParams, ExpertBatch, ExpertInput, Kernels, KvType, RopeMode, RopeParams } from './api.js';
export { openMapping, type FileMapping } from './mapping.js';
export { NativeKernels, cpuInfo, forceIsa, adviseWillNeed, populateWrite, mapFile, isNativeAvailable, readBandwidth, evictFile, restKernelThreads, type CpuInfo } from './native.js';
export { ReferenceKernels } from './reference.js';

/** Which implementation to use and how many threads it may run. */
export interface KernelOptions {
  /** `native` (default): the C library; `reference`: the TypeScript twins (slow; tests). */
  readonly backend?: 'native' | 'reference';
  /** Kernel threads (native only); default: the physical cores. */
  readonly threads?: number;
}

/** Returns the kernels to run a model with. Throws NATIVE_UNAVAILABLE when native is asked for but not built. */
export function createKernels(opts: KernelOptions = {}): Kernels {
  const backend = opts.backend ?? 'native';
  let kernels: Kernels;
  if (backend === 'native') kernels = new NativeKernels(loadNative());
  else if (backend === 'reference') kernels = new ReferenceKernels();
  else throw new CairnError('BAD_ARGUMENT', `unknown kernel backend '${String(backend)}' (expected 'native' or 'reference')`);
  if (opts.threads !== undefined) kernels.setThreads(opts.threads);
  return kernels;
}

/** Resident memory of the process in bytes. */
export function residentBytes(): number {
  return isNativeAvailable() ? loadNative().residentBytes() : process.memoryUsage.rss();
}
