/**
 * An expert-parallel group run in one process: the home steps through the batch and, at each MoE
 * layer, every expert rank (in rank order) computes the tokens routed to its experts, which the home
 * adds to its own. It is what a group computes across machines, with messages in place of the calls
 * here: the reference the tests hold groups to, and the rule for which tokens go where.
 */
import { CairnError } from '../util/errors.js';
import type { ExpertDispatch } from './blocks/types.js';
import type { DecoderShard, ShardBatch } from './decoder.js';
import type { ExpertShard } from './expert-shard.js';
import type { Range } from './tensor-split.js';

/** The tokens of a dispatch routed to experts [first, end): their rows in the dispatch, in order. */
export function routedRows(d: ExpertDispatch, held: Range): number[] {
  const k = d.ids.length / d.n;
  const rows: number[] = [];
  for (let t = 0; t < d.n; t++) {
    for (let j = t * k; j < (t + 1) * k; j++) {
      if (d.ids[j] >= held[0] && d.ids[j] < held[1]) {
        rows.push(t);
        break;
      }
    }
  }
  return rows;
}

/** The rows `rows` of a dispatch, packed: their inputs (rows x nEmbd), expert ids and weights (rows x used). */
export function gatherRows(d: ExpertDispatch, rows: readonly number[], nEmbd: number): { input: Float32Array; ids: Int32Array; weights: Float32Array } {
  const k = d.ids.length / d.n;
  const input = new Float32Array(rows.length * nEmbd);
  const ids = new Int32Array(rows.length * k);
  const weights = new Float32Array(rows.length * k);
  rows.forEach((t, i) => {
    input.set(d.input.subarray(t * nEmbd, (t + 1) * nEmbd), i * nEmbd);
    ids.set(d.ids.subarray(t * k, (t + 1) * k), i * k);
    weights.set(d.weights.subarray(t * k, (t + 1) * k), i * k);
  });
  return { input, ids, weights };
}

/** Adds a rank's outputs for `rows` (rows x nEmbd, in order) into the dispatch's result. */
export function addRows(d: ExpertDispatch, rows: readonly number[], out: Float32Array, nEmbd: number): void {
  rows.forEach((t, i) => {
    for (let j = 0, r = t * nEmbd, o = i * nEmbd; j < nEmbd; j++) d.result[r + j] = Math.fround(d.result[r + j] + out[o + j]);
  });
}

/**
 * Runs a batch through an expert-parallel group: `home` (rank 0) and its expert ranks (rank
 * order). Returns what the home returns. `sent`: called with each rank's rows per dispatch (what
 * would travel to it).
 */
export function runExpertGroup(
  home: DecoderShard,
  ranks: readonly ExpertShard[],
  batch: ShardBatch,
  sent?: (rank: number, layer: number, rows: readonly number[], n: number) => void,
): Float32Array {
  const d = home.cfg.nEmbd;
  const steps = home.forwardSteps(batch);
  for (let r = steps.next(); ; r = steps.next()) {
    if (r.done) return r.value;
    const y = r.value;
    if (y instanceof Float32Array) throw new CairnError('BAD_ARGUMENT', 'a tensor-parallel rank runs with runGroup, not in an expert group');
    // In one process the ranks answer at once; at `collect` everything is in.
    if (y.phase === 'collect') continue;
    ranks.forEach((rank, i) => {
      const held = rank.held(y.layer);
      if (!held) throw new CairnError('BAD_ARGUMENT', `expert rank ${i + 1} holds no experts of layer ${y.layer}`);
      const rows = routedRows(y, held);
      sent?.(i + 1, y.layer, rows, y.n);
      if (rows.length === 0) return;
      const g = gatherRows(y, rows, d);
      addRows(y, rows, rank.compute(y.layer, rows.length, g.input, g.ids, g.weights), d);
    });
  }
}
