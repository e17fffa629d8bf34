/**
 * The shard: a layer range [layerStart, layerEnd) of a model and a split (rank r of n).
 * A whole model on one machine is the one-shard plan; pipeline stages are shards with consecutive
 * ranges; tensor-parallel ranks share a range with different splits. An expert-parallel group
 * shares a range too: its home (rank 0) holds the layers whole but for the routed experts of the
 * other ranks, which hold only those (expert-shard.ts).
 */
import { CairnError } from '../util/errors.js';
import type { ModelConfig } from './config.js';
import { checkSplit, type TensorSplit } from './tensor-split.js';

/** Which part of a model a shard holds. */
export interface ShardSpec {
  readonly layerStart: number;
  readonly layerEnd: number;
  readonly splitRank: number;
  readonly splitCount: number;
  /** Relative share of each rank of the split (splitCount entries); absent: equal shares. */
  readonly splitShares?: readonly number[];
  /** How the split divides the layers: every block (`tensor`, the default) or the routed experts only. */
  readonly splitMode?: SplitMode;
}

/** How a group of ranks divides its layers. */
export type SplitMode = 'tensor' | 'expert';

/** The tensor split of a shard, or undefined when it holds its layers whole (or splits only experts). */
export function tensorSplitOf(s: ShardSpec): TensorSplit | undefined {
  return s.splitCount > 1 && s.splitMode !== 'expert' ? { rank: s.splitRank, count: s.splitCount, shares: s.splitShares } : undefined;
}

/** The expert split of a shard of an expert-parallel group, or undefined. */
export function expertSplitOf(s: ShardSpec): TensorSplit | undefined {
  return s.splitCount > 1 && s.splitMode === 'expert' ? { rank: s.splitRank, count: s.splitCount, shares: s.splitShares } : undefined;
}

/** The shard that holds the whole model. */
export function wholeModel(cfg: ModelConfig): ShardSpec {
  return { layerStart: 0, layerEnd: cfg.nLayer, splitRank: 0, splitCount: 1 };
}

/** True when the shard embeds token ids (it holds the first layer). */
export function isFirstShard(s: ShardSpec): boolean {
  return s.layerStart === 0;
}

/** True when the shard ends with the output norm and head (it holds the last layer). */
export function isLastShard(s: ShardSpec, cfg: ModelConfig): boolean {
  return s.layerEnd === cfg.nLayer;
}

/** Throws BAD_ARGUMENT unless [layerStart, layerEnd) is a non-empty range of the model's layers. */
export function checkLayerRange(s: Pick<ShardSpec, 'layerStart' | 'layerEnd'>, cfg: ModelConfig): void {
  const ok =
    Number.isInteger(s.layerStart) &&
    Number.isInteger(s.layerEnd) &&
    s.layerStart >= 0 &&
    s.layerEnd <= cfg.nLayer &&
    s.layerStart < s.layerEnd;
  if (!ok) throw new CairnError('BAD_ARGUMENT', `shard layers [${s.layerStart}, ${s.layerEnd}) are not a range within the model's ${cfg.nLayer} layers`);
}

/** Checks a shard against a model; throws BAD_ARGUMENT naming the problem. */
export function validateShard(s: ShardSpec, cfg: ModelConfig): void {
  checkLayerRange(s, cfg);
  checkSplit({ rank: s.splitRank, count: s.splitCount, shares: s.splitShares });
  if (s.splitMode !== undefined && s.splitMode !== 'tensor' && s.splitMode !== 'expert') {
    throw new CairnError('BAD_ARGUMENT', `split mode ${JSON.stringify(s.splitMode)} is neither tensor nor expert`);
  }
}
