/**
 * Counting the page faults a first touch of memory takes, on Linux: the calling thread's own
 * minor faults (/proc/thread-self/stat), since the process's count takes in whatever V8's
 * background threads fault in meanwhile.
 */
import { readFileSync } from 'node:fs';

/** Minor page faults of the calling thread so far. */
export function threadMinorFaults(): number {
  const stat = readFileSync('/proc/thread-self/stat', 'utf8');
  // Fields after the command (in parentheses, which may hold spaces): state is field 3, minflt 10.
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[7]);
}

/** Minor page faults this thread takes writing one byte in each 4 KiB of the regions (their values kept). */
export function faultsTouching(regions: Iterable<ArrayBufferView>): number {
  const before = threadMinorFaults();
  for (const r of regions) {
    const bytes = new Uint8Array(r.buffer, r.byteOffset, r.byteLength);
    for (let i = 0; i < bytes.length; i += 4096) bytes[i] |= 0;
  }
  return threadMinorFaults() - before;
}
