/**
 * Whether this OS puts anonymous memory on transparent huge pages for the asking, as Linux's sysfs
 * says at each call. Weights (engine/large-pages.ts) and KV cache arenas (Kernels.allocateZeroed)
 * both depend on it.
 */
import { readFileSync } from 'node:fs';

/** The kernel's transparent huge page mode ('always', 'madvise' or 'never'); undefined off Linux. */
export function transparentHugePages(): string | undefined {
  try {
    return /\[(\w+)\]/.exec(readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8'))?.[1];
  } catch {
    return undefined;
  }
}

/** True where memory advised huge gets huge pages (the mode is 'always' or 'madvise'). */
export function hugePagesForTheAsking(): boolean {
  const mode = transparentHugePages();
  return mode === 'always' || mode === 'madvise';
}
