/**
 * Memory this process could still take: what the OS reports free, and no more than its cgroup's
 * limit leaves (a container's limit, which os.freemem does not see).
 */
import { freemem } from 'node:os';

/** Bytes of memory free for this process now. */
export function freeMemoryBytes(): number {
  const free = freemem();
  // Node reports no limit as 2^64 (or 0 where it cannot tell).
  const limit = process.constrainedMemory?.() ?? 0;
  if (!(limit > 0 && limit < 2 ** 60)) return free;
  return Math.max(0, Math.min(free, limit - process.memoryUsage.rss()));
}
