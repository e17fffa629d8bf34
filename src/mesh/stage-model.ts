/**
 * What a node's stage computes with: its layers on the CPU (loaded shards, which a tensor- or
 * expert-parallel group steps through layer by layer) or on a GPU (one shard on the device, its
 * steps and KV operations taken in turn by a GpuRunner). The StageRunner sees one shape.
 */
import type { LoadedShards } from '../engine/load.js';
import type { GpuStageParts } from '../engine/load-gpu.js';
import { LocalRunner, type ForwardRunner } from '../engine/runner.js';
import type { Kernels } from '../kernels/index.js';
import type { ModelConfig } from '../model/config.js';
import type { DecoderShard, ShardBatch } from '../model/decoder.js';

/** The KV operations of the mesh (copy, save, load, drop, export, import) over a stage's caches. */
export type KvOps = Pick<ForwardRunner, 'copySlotPrefix' | 'saveSlot' | 'loadSlot' | 'dropSaved' | 'exportSaved' | 'importSaved'>;

/** A node's stage of a plan, on whatever computes it. */
export interface StageModel {
  readonly config: ModelConfig;
  readonly kernels: Kernels;
  readonly kvBytes: number;
  readonly layerStart: number;
  readonly layerEnd: number;
  readonly maxBatch: number;
  readonly slots: number;
  readonly ctxPerSlot: number;
  readonly kvOps: KvOps;
  /** The CPU shards, which a tensor- or expert-parallel group steps through; absent on a GPU. */
  readonly shards?: readonly DecoderShard[];
  /**
   * A step: hidden states of every row, or (the last stage) logits of batch.outputRows. The CPU
   * answers at once, a GPU when the device has run it.
   */
  forward(batch: ShardBatch): Float32Array | Promise<Float32Array>;
  close(): void;
}

/** A stage of CPU shards. */
export function cpuStageModel(loaded: LoadedShards): StageModel {
  const shards = loaded.shards;
  return {
    config: loaded.config,
    kernels: loaded.kernels,
    kvBytes: loaded.kvBytes,
    layerStart: shards[0].shard.layerStart,
    layerEnd: shards[shards.length - 1].shard.layerEnd,
    maxBatch: Math.min(...shards.map((s) => s.maxBatch)),
    slots: Math.min(...shards.map((s) => s.kv.slots)),
    ctxPerSlot: Math.min(...shards.map((s) => s.kv.ctxPerSlot)),
    kvOps: new LocalRunner(shards),
    shards,
    forward(batch) {
      let b = batch;
      let out: Float32Array | undefined;
      for (const shard of shards) {
        out = shard.forward(b);
        b = { ...b, tokens: undefined, hidden: out };
      }
      return out!;
    },
    close: () => loaded.close(),
  };
}

/** A stage on a GPU. */
export function gpuStageModel(parts: GpuStageParts): StageModel {
  const { shard, runner } = parts;
  return {
    config: parts.config,
    kernels: parts.kernels,
    kvBytes: parts.kvBytes,
    layerStart: shard.layerStart,
    layerEnd: shard.layerEnd,
    maxBatch: shard.opts.maxBatch,
    slots: shard.opts.slots,
    ctxPerSlot: shard.opts.ctx,
    kvOps: runner,
    forward: (batch) => runner.forwardBatch(batch),
    close: () => parts.close(),
  };
}
