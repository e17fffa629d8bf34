/**
 * One forward step of a group's rank over its shards, wherever the rank runs (a node's
 * StageRunner, or the coordinator's own stage in its Pipeline): each partial sum the layers yield is
 * added up with the other ranks (tensor parallelism), each expert dispatch is sent at `send`
 * without waiting (the rank computes its own experts meanwhile) and awaited at `collect`.
 */
import { restKernelThreads } from '../kernels/index.js';
import type { DecoderShard, ShardBatch } from '../model/decoder.js';
import { CairnError } from '../util/errors.js';
import type { ExpertDispatcher } from './expert-dispatch.js';
import type { TensorGroup } from './tensor-group.js';

/** How a rank exchanges with its group: a tensor group's all-reduce, or an expert group home's dispatcher. */
export type GroupExchange = { readonly exchange: TensorGroup; readonly experts?: undefined } | { readonly exchange?: undefined; readonly experts: ExpertDispatcher };

/** Runs `batch` through `shards` (in order) as a rank of `group` for step `step`; returns what the last shard returns. */
export async function runGroupStep(shards: readonly DecoderShard[], batch: ShardBatch, step: number, group: GroupExchange): Promise<Float32Array> {
  let out: Float32Array | undefined;
  let index = 0;
  // An expert dispatch in flight: sent at `send`, awaited at `collect`.
  let inFlight: Promise<void> | undefined;
  for (const shard of shards) {
    const steps = shard.forwardSteps(batch);
    for (let r = steps.next(); ; r = steps.next()) {
      if (r.done) {
        out = r.value;
        break;
      }
      const y = r.value;
      // The kernel threads rest while this thread waits on the network (a shared machine's other
      // ranks need the cores); not when it sends experts their tokens and computes on.
      if (y instanceof Float32Array || y.phase === 'collect') restKernelThreads();
      if (y instanceof Float32Array) {
        if (!group.exchange) throw new CairnError('BAD_ARGUMENT', 'a tensor-parallel rank runs with its group');
        await group.exchange.allReduce(step, index++, y);
      } else if (!group.experts) {
        throw new CairnError('BAD_ARGUMENT', 'an expert-parallel home runs with its expert ranks');
      } else if (y.phase === 'send') {
        inFlight = group.experts.dispatch(step, y);
        inFlight.catch(() => {}); // awaited at collect
      } else {
        await inFlight;
        inFlight = undefined;
      }
    }
    batch = { ...batch, tokens: undefined, hidden: out };
  }
  return out!;
}
