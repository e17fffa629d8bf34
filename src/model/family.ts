/**
 * A model family: everything cairn knows about one kind of architecture, in one file under
 * families/ (as mlx-lm's models/): the GGUF keys of its hyperparameters, what each layer is made of
 * (and so its KV cache row), the tensors of each part (through a TensorSource, which also makes the
 * byte accounting: held and read per token, per layer, embedding and head), its forward pass over
 * a layer range assembled from the shared blocks/, and how to write a random-weight model of it.
 * The registry maps GGUF architecture names to families; nothing outside model/ derives a shape.
 */
import type { GpuDecoderLayer, GpuOutputHead } from './gpu/gpu-blocks.js';
import type { GpuWorkspace } from './gpu/gpu-workspace.js';
import type { Metadata } from '../gguf/metadata.js';
import type { ModelConfig } from './config.js';
import type { DecoderLayer, ShardInput, ShardOutput } from './blocks/types.js';
import type { Workspace } from './blocks/workspace.js';
import type { MoeFfn } from './blocks/moe-ffn.js';
import type { TensorSource } from './tensor-source.js';
import type { SyntheticModelSpec, SyntheticShape, SyntheticTensors } from './synthetic-tensors.js';

/** Elements one position takes in a layer's KV cache. */
export interface KvRowShape {
  /** Key elements: KV heads x key head size for GQA; for latent attention, the latent plus its RoPE part. */
  readonly k: number;
  /** Value elements (0 where a layer caches one row serving both, as latent attention does). */
  readonly v: number;
  /**
   * Heads a row holds: the cache stores each head's rows in one stretch (Kernels.storeKv), so this
   * is the unit of its layout. A GQA layer's KV heads; 1 for latent attention's single row.
   */
  readonly heads: number;
}

/**
 * A layer's attention as planning and `inspect` see it. `gqa` covers multi-head, multi-query and
 * grouped-query attention; `mla` is DeepSeek's latent attention.
 */
export interface GqaAttentionPlan {
  readonly kind: 'gqa';
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  /** Positions a query sees on a sliding-window layer (itself included); absent: the whole context. */
  readonly window?: number;
}

/**
 * Multi-head latent attention (DeepSeek V2/V3, Kimi K2): every head's keys and values are
 * projections of one per-token latent, which (with the shared rotated key part) is all it caches.
 */
export interface MlaAttentionPlan {
  readonly kind: 'mla';
  readonly heads: number;
  /** Rank of the query bottleneck (0: queries projected directly). */
  readonly qLora: number;
  /** Rank of the cached key/value latent. */
  readonly kvLora: number;
  /** Per-head key dims without rotation, and rotated dims (shared by all heads in the cache). */
  readonly nope: number;
  readonly ropeDim: number;
  /** Per-head value size. */
  readonly vDim: number;
}

/** Every attention kind a layer may have. */
export type AttentionPlan = GqaAttentionPlan | MlaAttentionPlan;

/** A layer's dense feed-forward block. */
export interface DenseFfnPlan {
  readonly kind: 'dense';
  /** Hidden width. */
  readonly width: number;
}

/**
 * A Mixture-of-Experts layer's feed-forward block. Its expert tensors are declared through the
 * TensorSource's `experts()`, so each expert is addressable on its own (expert placement) and
 * used / experts of their bytes count as read per token.
 */
export interface MoeFfnPlan {
  readonly kind: 'moe';
  /** Routed experts. */
  readonly experts: number;
  /** Routed experts each token uses. */
  readonly used: number;
  /** Shared experts every token uses (0: none). */
  readonly shared: number;
  /** Hidden width of one routed expert. */
  readonly width: number;
  /** Total hidden width of the shared experts (0: none). */
  readonly sharedWidth: number;
}

/** Every FFN kind a layer may have. */
export type FfnPlan = DenseFfnPlan | MoeFfnPlan;

/** What one layer is made of, known from the config alone (before any tensor is read). */
export interface LayerPlan {
  readonly attention: AttentionPlan;
  readonly ffn: FfnPlan;
  readonly kv: KvRowShape;
}

/** How a family writes random-weight models of its architectures. */
export interface SyntheticFamily {
  /** Named shapes of real models of the family (random weights), for benchmarks. */
  readonly shapes: Readonly<Record<string, SyntheticShape>>;
  /** Declares the model's tensors (in file order) and its `<arch>.*` metadata. */
  write(spec: SyntheticModelSpec, out: SyntheticTensors): void;
}

/**
 * One architecture family. Methods taking a config are called only with a config this family's
 * readConfig made (the registry finds the family by `cfg.arch`).
 */
export interface ModelFamily<C extends ModelConfig = ModelConfig> {
  /** Human name, e.g. `Llama / Mistral`. */
  readonly name: string;
  /** The GGUF `general.architecture` names this family runs: its keys in the registry. */
  readonly architectures: readonly string[];
  /** Reads the `<arch>.*` hyperparameters; a variant or feature the family cannot run yet fails here, naming it. */
  readConfig(meta: Metadata, arch: string): C;
  /** What layer `layer` is made of. */
  layerPlan(cfg: C, layer: number): LayerPlan;
  /** One line describing the shape, for `cairn inspect`. */
  describe(cfg: C): string;
  /** The first shard's input: declares the token embedding and returns the block that embeds ids. */
  input(cfg: C, src: TensorSource, ws: Workspace): ShardInput;
  /** Declares layer `layer`'s tensors and builds its forward step. */
  layer(cfg: C, layer: number, src: TensorSource, ws: Workspace): DecoderLayer;
  /**
   * An expert rank's part of layer `layer` (`src.expertSplit`): its range of the routed experts,
   * or undefined for a layer without them. Absent for families without Mixture-of-Experts layers.
   */
  routedExperts?(cfg: C, layer: number, src: TensorSource, ws: Workspace): MoeFfn | undefined;
  /** The last shard's output: declares the final norm and head and returns the block that makes logits. */
  output(cfg: C, src: TensorSource, ws: Workspace): ShardOutput;
  /**
   * The family's layers and head on a GPU (gpu/), declared through the same TensorSource; absent
   * where the family runs on the CPU only. A layer it cannot run there throws MODEL_UNSUPPORTED.
   */
  readonly gpu?: {
    layer(cfg: C, layer: number, src: TensorSource, ws: GpuWorkspace): GpuDecoderLayer;
    output(cfg: C, src: TensorSource, ws: GpuWorkspace): GpuOutputHead;
  };
  /**
   * Why a tensor-parallel rank cannot hold part of this family's layers (loading one fails with it,
   * and the planner makes pipeline plans only); absent where it can.
   */
  readonly unsplittable?: string;
  readonly synthetic: SyntheticFamily;
}
