/**
 * Assembling a shard from its model's family: the input, one layer per layer of the range, the
 * output, each declared through a TensorSource into its own model part. Loading maps the data;
 * a dry build (no data, no allocation) gives the byte accounting and the activation memory.
 */
import { CairnError, isCairnError } from '../util/errors.js';
import type { GgufFile } from '../gguf/reader.js';
import type { Kernels, KvType } from '../kernels/api.js';
import type { ModelConfig } from './config.js';
import { DecoderShard, type ShardParts } from './decoder.js';
import { GgufTensorSource, type TensorBytes } from './gguf-tensor-source.js';
import { checkKvType, KvCache, kvRows } from './kv-cache.js';
import { familyOf } from './registry.js';
import { expertSplitOf, isFirstShard, isLastShard, tensorSplitOf, type ShardSpec } from './shard.js';
import { ExpertShard } from './expert-shard.js';
import type { MoeFfn } from './blocks/moe-ffn.js';
import { HIDDEN_OUTPUT } from './blocks/output-head.js';
import { HiddenInput } from './blocks/token-embedding.js';
import type { DecoderLayer } from './blocks/types.js';
import { Workspace } from './blocks/workspace.js';
import { columnRange, expertRange, headRange, latentHeadRange } from './tensor-split.js';

/** The runtime sizes of a loaded shard. */
export interface ShardOptions {
  /** Sequences that can be in flight at once. */
  readonly slots: number;
  /** Positions per sequence slot. */
  readonly ctx: number;
  readonly kvType: KvType;
  /** Most tokens per forward call. */
  readonly maxBatch: number;
}

/** Declares a shard's parts through `src` (the embedding, each layer and the head into their own part) and builds them. */
export function declareShard(cfg: ModelConfig, spec: ShardSpec, src: GgufTensorSource, ws: Workspace): ShardParts {
  const family = familyOf(cfg);
  const stream = ws.buffer('stream', cfg.nEmbd);
  src.enter('embed');
  const input = isFirstShard(spec) ? family.input(cfg, src, ws) : new HiddenInput(cfg.nEmbd);
  const layers: DecoderLayer[] = [];
  for (let l = spec.layerStart; l < spec.layerEnd; l++) {
    src.enter(l);
    layers.push(family.layer(cfg, l, src, ws));
  }
  src.enter('head');
  // In a tensor-parallel group, rank 0 alone makes the logits (every rank ends with the whole stream).
  const output = isLastShard(spec, cfg) && spec.splitRank === 0 ? family.output(cfg, src, ws) : HIDDEN_OUTPUT;
  return { input, layers, output, stream };
}

/**
 * Throws MODEL_UNSUPPORTED, naming the layer and its part, for a tensor-parallel rank of layers
 * that cannot be cut that many ways in those proportions: grouped-query and latent attention split
 * by heads, dense FFNs and shared experts by hidden columns, routed experts by expert (at least one
 * per rank). Whether a weight type's blocks allow the column cuts is checked as the tensors load.
 */
export function checkSplittable(cfg: ModelConfig, spec: ShardSpec): void {
  const experts = expertSplitOf(spec);
  if (experts) return checkExpertSplittable(cfg, spec);
  const split = tensorSplitOf(spec);
  if (!split) return;
  const family = familyOf(cfg);
  if (family.unsplittable) throw new CairnError('MODEL_UNSUPPORTED', `${family.name} models cannot run tensor-parallel: ${family.unsplittable}`);
  for (let l = spec.layerStart; l < spec.layerEnd; l++) {
    const { attention: a, ffn } = family.layerPlan(cfg, l);
    const parts: [string, () => unknown][] = [
      a.kind === 'gqa'
        ? ['attention', () => headRange(a.heads, a.kvHeads, a.headDim, split)]
        : ['latent attention (MLA)', () => latentHeadRange(a.heads, a.vDim, split)],
    ];
    if (ffn.kind === 'dense') parts.push(['FFN', () => columnRange(ffn.width, split)]);
    else {
      parts.push(['Mixture-of-Experts FFN', () => expertRange(ffn.experts, split)]);
      if (ffn.sharedWidth > 0) parts.push(['shared experts', () => columnRange(ffn.sharedWidth, split)]);
    }
    for (const [what, cut] of parts) {
      try {
        cut();
      } catch (e) {
        if (!isCairnError(e, 'MODEL_UNSUPPORTED')) throw e;
        throw new CairnError(
          'MODEL_UNSUPPORTED',
          `layer ${l} of this ${family.name} model: its ${what} cannot be split this way (${e.message}); use fewer ranks or a pipeline plan`,
        );
      }
    }
  }
}

/**
 * Throws MODEL_UNSUPPORTED for an expert-parallel group over layers without routed experts, or
 * with fewer experts in a layer than ranks.
 */
function checkExpertSplittable(cfg: ModelConfig, spec: ShardSpec): void {
  const family = familyOf(cfg);
  const split = expertSplitOf(spec)!;
  let moe = 0;
  for (let l = spec.layerStart; l < spec.layerEnd; l++) {
    const { ffn } = family.layerPlan(cfg, l);
    if (ffn.kind !== 'moe') continue;
    moe++;
    try {
      expertRange(ffn.experts, split);
    } catch (e) {
      if (!isCairnError(e, 'MODEL_UNSUPPORTED')) throw e;
      throw new CairnError('MODEL_UNSUPPORTED', `layer ${l} of this ${family.name} model: ${e.message}; use fewer ranks`);
    }
  }
  if (moe === 0 || !family.routedExperts) {
    throw new CairnError(
      'MODEL_UNSUPPORTED',
      `layers ${spec.layerStart}-${spec.layerEnd - 1} of this ${family.name} model have no routed experts to spread; use a tensor or pipeline plan`,
    );
  }
}

/** Builds a shard over the mapped file (`bytesOf` gives a tensor's data), checking every tensor against the config. */
export function loadShard(
  file: GgufFile,
  cfg: ModelConfig,
  spec: ShardSpec,
  bytesOf: TensorBytes,
  kernels: Kernels,
  opts: ShardOptions,
): DecoderShard {
  const experts = expertSplitOf(spec);
  if (experts && experts.rank > 0) {
    throw new CairnError('BAD_ARGUMENT', `rank ${experts.rank} of an expert-parallel group holds routed experts only (loadExpertShard)`);
  }
  checkKvType(cfg, opts.kvType);
  const src = new GgufTensorSource(file, { bytesOf, kernels }, tensorSplitOf(spec), experts);
  const ws = new Workspace(opts.maxBatch, opts.ctx);
  checkSplittable(cfg, spec);
  const parts = declareShard(cfg, spec, src, ws);
  // A Q8_0 cache in tiles where these kernels read tiles faster (KvCache keeps rows where it must).
  const kv = new KvCache(kvRows(cfg, spec), opts.slots, opts.ctx, opts.kvType, {
    tiles: kernels.kvTilesPreferred?.() ?? false,
    allocate: kernels.allocateZeroed?.bind(kernels),
    populate: kernels.populateWrite?.bind(kernels),
  });
  return new DecoderShard(cfg, spec, parts, { bytes: src.totalBytes, views: src.views(), products: src.products() }, kv, kernels, ws);
}

/**
 * Builds an expert rank (rank > 0 of an expert-parallel group) over the mapped file: its range of
 * the routed experts of each MoE layer of the range, and activations for `maxBatch` tokens.
 */
export function loadExpertShard(
  file: GgufFile,
  cfg: ModelConfig,
  spec: ShardSpec,
  bytesOf: TensorBytes,
  kernels: Kernels,
  maxBatch: number,
): ExpertShard {
  const split = expertSplitOf(spec);
  if (!split || split.rank === 0) throw new CairnError('BAD_ARGUMENT', 'an expert rank is a rank after the first of an expert-parallel group');
  const src = new GgufTensorSource(file, { bytesOf, kernels }, undefined, split);
  const ws = new Workspace(maxBatch);
  const { layers, used } = declareExpertShard(cfg, spec, src, ws);
  return new ExpertShard(cfg, spec, layers, used, { bytes: src.totalBytes, views: src.views(), products: src.products() }, kernels, ws);
}

/** Declares an expert rank's tensors through `src` (made with the rank's expert split) and builds its experts by layer. */
export function declareExpertShard(
  cfg: ModelConfig,
  spec: ShardSpec,
  src: GgufTensorSource,
  ws: Workspace,
): { layers: (MoeFfn | undefined)[]; used: number[] } {
  checkExpertSplittable(cfg, spec);
  const family = familyOf(cfg);
  const layers: (MoeFfn | undefined)[] = [];
  const used: number[] = [];
  for (let l = spec.layerStart; l < spec.layerEnd; l++) {
    src.enter(l);
    const plan = family.layerPlan(cfg, l).ffn;
    layers.push(plan.kind === 'moe' ? family.routedExperts!(cfg, l, src, ws) : undefined);
    used.push(plan.kind === 'moe' ? plan.used : 0);
  }
  return { layers, used };
}
