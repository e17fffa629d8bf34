/**
 * A tensor-parallel group run in one process: every rank steps through the same batch in lockstep
 * and each partial sum the ranks yield is replaced by the sum over the ranks, added in rank order.
 * It is what a group computes across machines with an all-reduce in place of the sum here: the
 * reference the tests hold groups to, and a way to check a split on one machine.
 */
import { CairnError } from '../util/errors.js';
import type { DecoderShard, ShardBatch } from './decoder.js';

/**
 * Runs a group's ranks (rank order) on one batch; returns what rank 0 returns (logits where it
 * holds the head, else the final hidden states). `round`: applied to each partial sum before it is
 * added (what a lossy exchange does to it). Throws BAD_ARGUMENT when the ranks do not yield the
 * same number of partial sums of the same size.
 */
export function runGroup(ranks: readonly DecoderShard[], batch: ShardBatch, round?: (partial: Float32Array) => void): Float32Array {
  if (ranks.length === 0) throw new CairnError('BAD_ARGUMENT', 'a tensor-parallel group needs at least one rank');
  const steps = ranks.map((r) => r.forwardSteps(batch));
  let results = steps.map((s) => s.next());
  while (!results[0].done) {
    const parts: Float32Array[] = [];
    const size = results[0].value instanceof Float32Array ? results[0].value.length : -1;
    for (const r of results) {
      if (r.done || !(r.value instanceof Float32Array) || r.value.length !== size) {
        throw new CairnError('BAD_ARGUMENT', 'the ranks of a tensor-parallel group must yield the same partial sums');
      }
      parts.push(r.value);
      round?.(r.value);
    }
    const sum = new Float32Array(parts[0].length);
    for (const p of parts) for (let i = 0; i < sum.length; i++) sum[i] += p[i];
    for (const p of parts) p.set(sum);
    results = steps.map((s) => s.next());
  }
  if (!results.every((r) => r.done))
    throw new CairnError('BAD_ARGUMENT', 'the ranks of a tensor-parallel group must yield the same partial sums');
  return results[0].value;
}
