/**
 * The parts a shard's forward pass is assembled from. A family builds, for its layer range, one
 * `DecoderLayer` per layer out of an `AttentionBlock` and an `FfnBlock` (so neighbouring layers may
 * use different kinds: dense and Mixture-of-Experts FFNs, GQA and latent attention), plus the
 * shard's input (token embedding or incoming hidden states) and output (head or hidden states).
 * Blocks own their weights and take their scratch from the shard's Workspace at construction; the
 * kernels and the batch come with each step, so building a block computes nothing.
 */
import type { Kernels } from '../../kernels/api.js';
import type { ShardBatch, SeqSpan } from '../batch.js';
import type { KvCache } from '../kv-cache.js';

/** What one step of one layer needs besides its weights; one object per shard, updated in place. */
export interface StepContext {
  readonly kernels: Kernels;
  readonly kv: KvCache;
  /** Tokens in the batch. */
  n: number;
  spans: readonly SeqSpan[];
  /** Position of each batch row (n entries). */
  positions: Int32Array;
  /** Index of the running layer within the shard: its layer in the shard's KV cache. */
  layer: number;
  /** True on a tensor-parallel rank: blocks' outputs are partial sums the group adds up. */
  readonly split?: boolean;
}

/**
 * The routed experts of one MoE layer that other ranks hold (expert parallelism): the FFN's input
 * rows, each token's chosen experts and weights, and where their weighted outputs go. It is yielded
 * twice: at `send`, right after routing, the caller sends each rank the tokens routed to its
 * experts (without waiting: the home computes its own experts meanwhile); at `collect`, the caller
 * adds what came back into `result` before resuming.
 */
export interface ExpertDispatch {
  readonly kind: 'experts';
  phase: 'send' | 'collect';
  /** Index of the layer within the shard. */
  readonly layer: number;
  /** Tokens. */
  readonly n: number;
  /** n x nEmbd: the FFN's (normalized) input. */
  readonly input: Float32Array;
  /** n x used: each token's chosen experts (the layer's ids) in the router's order. */
  readonly ids: Int32Array;
  /** n x used: their weights. */
  readonly weights: Float32Array;
  /** n x nEmbd, zero: the sum of the other ranks' weighted expert outputs goes here. */
  readonly result: Float32Array;
}

/** What a layer yields to its group: a partial sum to add up (tensor parallelism) or experts held elsewhere. */
export type LayerYield = Float32Array | ExpertDispatch;

/**
 * One transformer layer: updates the residual stream x (n x nEmbd) in place. On a tensor-parallel
 * rank (`step.split`) it yields each partial sum (n x nEmbd) that must hold the group's total, added
 * up in place, before it is resumed; on the home rank of an expert-parallel group it yields an
 * ExpertDispatch per MoE layer; otherwise it yields nothing.
 */
export interface DecoderLayer {
  forward(x: Float32Array, step: StepContext): Generator<LayerYield, void, void>;
}

/** Token mixing: reads the normalized stream h (n x nEmbd), writes its output (n x nEmbd) to out. */
export interface AttentionBlock {
  forward(h: Float32Array, out: Float32Array, step: StepContext): void;
}

/** Per-token transformation: reads h (n x nEmbd), writes out (n x nEmbd). */
export interface FfnBlock {
  forward(h: Float32Array, out: Float32Array, step: StepContext): void;
  /** True for a block whose work other ranks share: it runs with forwardSteps(). */
  readonly dispatches?: boolean;
  /**
   * forward() one exchange at a time, for a block that dispatches (an expert-parallel home's MoE
   * block yields its ExpertDispatch at `send` and at `collect`).
   */
  forwardSteps?(h: Float32Array, out: Float32Array, step: StepContext): Generator<ExpertDispatch, void, void>;
}

/** Where a shard's residual stream comes from: token ids (first shard) or the previous shard's hidden states. */
export interface ShardInput {
  /** Throws BAD_ARGUMENT when the batch lacks what this input reads, or holds ids outside the vocabulary. */
  check(batch: ShardBatch): void;
  /** Writes the batch's first residual stream into x (n x nEmbd). */
  read(batch: ShardBatch, x: Float32Array, kernels: Kernels): void;
}

/** What a shard returns: hidden states for the next shard, or (last shard) logits. */
export interface ShardOutput {
  /** Returns a view of internal memory, valid until the next call. */
  write(batch: ShardBatch, x: Float32Array, kernels: Kernels): Float32Array;
}
