/**
 * Choosing where a model's layers run (`--backend auto|cpu|gpu`) and loading it onto a GPU. `gpu`
 * insists (no adapter, or a model the GPU blocks cannot run, is an error naming why); `auto` takes a
 * hardware GPU that runs the model and otherwise stays on the CPU with a one-line note saying why
 * (a software adapter such as lavapipe is correct but slower than the CPU engine, so auto passes it
 * by); `cpu` never opens a GPU.
 */
import { readGguf, type GgufFile } from '../gguf/reader.js';
import { GgmlType } from '../gguf/ggml-types.js';
import { createKernels, openMapping, type Kernels } from '../kernels/index.js';
import { describeAdapter } from '../kernels/webgpu/device.js';
import { WebGpuKernels, type GpuKvType } from '../kernels/webgpu/gpu-kernels.js';
import { readModelConfig, type ModelConfig } from '../model/config.js';
import { checkKvType } from '../model/kv-cache.js';
import { loadGpuShard, type GpuDecoderShard } from '../model/gpu/gpu-shard.js';
import { CairnError, isCairnError } from '../util/errors.js';
import { GpuRunner } from './gpu-runner.js';
import { loadShards, type LoadedShards, type ModelParts } from './load.js';

/** Where the layers of a model run. */
export type ComputeBackend = 'auto' | 'cpu' | 'gpu';

/** Where a loaded model runs, for `generate --json`, `inspect` and the node's advertisement. */
export interface Placement {
  readonly backend: 'cpu' | 'gpu';
  /** The GPU adapter, in one line (gpu only). */
  readonly adapter?: string;
  /** Why `auto` stayed on the CPU. */
  readonly note?: string;
  /** Layers on the GPU (the last ones; the others on the CPU), gpu only. */
  readonly gpuLayers?: number;
}

/** What loading onto the GPU needs from LoadOptions. */
export interface GpuLoadOptions {
  readonly ctx?: number;
  readonly slots?: number;
  readonly maxBatch?: number;
  readonly kvType?: number;
  readonly threads?: number;
  /** Layers on the GPU, the last ones (default: all); the first ones then run on the CPU. */
  readonly gpuLayers?: number;
}

/** A model loaded onto a GPU: the parts modelFromParts builds an engine from, and its placement. */
export interface GpuModelParts extends ModelParts {
  readonly placement: Placement;
  readonly shard: GpuDecoderShard;
}

/** The GPU cache type of a --kv-type (default F16); F32 is refused by name. */
function gpuKvType(kvType: number | undefined): GpuKvType {
  if (kvType === undefined || kvType === GgmlType.F16 || kvType === GgmlType.Q8_0) return kvType ?? GgmlType.F16;
  throw new CairnError('MODEL_UNSUPPORTED', 'the GPU backend keeps its KV cache in F16 or Q8_0; use --kv-type f16 or q8_0, or --backend cpu');
}

/** The shard's pipelines compiled before its first step (GpuDecoderShard.precompile); a failure frees the shard. */
async function precompiled(shard: GpuDecoderShard): Promise<void> {
  try {
    await shard.precompile();
  } catch (e) {
    shard.release();
    throw e;
  }
}

/** Loads the whole model onto `gpu` (opening one when not given); throws GPU_UNAVAILABLE or MODEL_UNSUPPORTED saying why it cannot. */
export async function loadGpuParts(path: string, opts: GpuLoadOptions, gpu?: WebGpuKernels): Promise<GpuModelParts> {
  const file: GgufFile = readGguf(path);
  const config: ModelConfig = readModelConfig(file);
  const kvType = gpuKvType(opts.kvType);
  checkKvType(config, kvType);
  const ctx = opts.ctx ?? Math.min(config.ctxTrain, 4096);
  if (!(Number.isInteger(ctx) && ctx >= 2)) throw new CairnError('BAD_ARGUMENT', `context size ${ctx} must be a whole number >= 2`);
  const slots = opts.slots ?? 1;
  const maxBatch = Math.min(opts.maxBatch ?? 512, ctx);
  const gpuLayers = Math.min(opts.gpuLayers ?? config.nLayer, config.nLayer);
  if (!(Number.isInteger(gpuLayers) && gpuLayers >= 1)) throw new CairnError('BAD_ARGUMENT', `--gpu-layers ${opts.gpuLayers}: give a whole number of layers from 1 (or run on the CPU with --backend cpu)`);
  const layerStart = config.nLayer - gpuLayers;
  const device = gpu ?? (await WebGpuKernels.open());
  const kernels = createKernels({ threads: opts.threads });
  const mapping = openMapping(path);
  let front: LoadedShards | undefined;
  try {
    // Weights are copied to the device as they are declared; the mapping is only read once.
    const shard = await device.checked(`the model ${path}`, () =>
      loadGpuShard(file, config, (t) => mapping.view(t.offset, t.byteLength), kernels, device, { slots, ctx, maxBatch, layerStart, kvType, fitBatch: true }),
      (s) => s.release(),
    );
    mapping.close();
    await precompiled(shard);
    if (layerStart > 0) {
      front = await loadShards(path, { threads: opts.threads, ctx, slots, maxBatch, kvType, progress: false, shards: [{ layerStart: 0, layerEnd: layerStart, splitRank: 0, splitCount: 1 }] });
    }
    const cpu = front;
    return {
      path,
      file,
      config,
      kernels,
      shards: cpu?.shards ?? [],
      runner: new GpuRunner(shard, cpu?.shards[0]),
      ctx,
      kvType,
      mappedBytes: shard.weightBytes + (cpu?.mappedBytes ?? 0),
      kvBytes: shard.kv.bytes + (cpu?.kvBytes ?? 0),
      packedBytes: cpu?.packedBytes ?? 0,
      placement: { backend: 'gpu', adapter: describeAdapter(device.gpu.adapter), gpuLayers },
      shard,
      close: () => {
        cpu?.close();
        if (!gpu) device.destroy();
      },
    };
  } catch (e) {
    mapping.close();
    front?.close();
    if (!gpu) device.destroy();
    throw e;
  }
}

/** What a node asks of a pipeline stage on its GPU. */
export interface GpuStageOptions {
  readonly ctx: number;
  readonly slots: number;
  readonly maxBatch: number;
  readonly kvType: number;
  readonly layerStart: number;
  readonly layerEnd: number;
}

/** A node's pipeline stage on its GPU: the shard of its layers and the runner whose KV operations and steps it uses. */
export interface GpuStageParts {
  readonly config: ModelConfig;
  readonly kernels: Kernels;
  readonly shard: GpuDecoderShard;
  readonly runner: GpuRunner;
  readonly kvBytes: number;
  readonly weightBytes: number;
  close(): void;
}

/**
 * Loads layers [layerStart, layerEnd) of a model onto `gpu` (a node's stage; the head too when
 * layerEnd is the last); throws MODEL_UNSUPPORTED or GPU_UNAVAILABLE saying why it cannot.
 */
export async function loadGpuStage(path: string, opts: GpuStageOptions, gpu: WebGpuKernels): Promise<GpuStageParts> {
  const kvType = gpuKvType(opts.kvType);
  const file = readGguf(path);
  const config = readModelConfig(file);
  checkKvType(config, kvType);
  const kernels = createKernels();
  const mapping = openMapping(path);
  try {
    const { ctx, slots, maxBatch, layerStart, layerEnd } = opts;
    const shard = await gpu.checked(`layers ${layerStart}-${layerEnd - 1} of ${path}`, () =>
      loadGpuShard(file, config, (t) => mapping.view(t.offset, t.byteLength), kernels, gpu, { slots, ctx, maxBatch, layerStart, layerEnd, kvType }),
      (s) => s.release(),
    );
    await precompiled(shard);
    return { config, kernels, shard, runner: new GpuRunner(shard), kvBytes: shard.kv.bytes, weightBytes: shard.weightBytes, close: () => shard.release() };
  } finally {
    mapping.close();
  }
}

/**
 * For `auto`: the GPU parts when a hardware adapter runs this model, else undefined and the reason
 * (one line) the CPU was chosen.
 */
export async function tryGpuParts(path: string, opts: GpuLoadOptions): Promise<GpuModelParts | { note: string }> {
  let gpu: WebGpuKernels;
  try {
    gpu = await WebGpuKernels.open();
  } catch (e) {
    if (!isCairnError(e, 'GPU_UNAVAILABLE')) throw e;
    return { note: `computing on the CPU: ${e.message}` };
  }
  if (gpu.gpu.adapter.software) {
    gpu.destroy();
    return { note: `computing on the CPU: the only GPU adapter is ${describeAdapter(gpu.gpu.adapter)} (ask for it with --backend gpu)` };
  }
  try {
    const parts = await loadGpuParts(path, opts, gpu);
    return {
      ...parts,
      close: () => {
        parts.close();
        gpu.destroy();
      },
    };
  } catch (e) {
    gpu.destroy();
    if (!isCairnError(e, 'MODEL_UNSUPPORTED') && !isCairnError(e, 'GPU_UNAVAILABLE')) throw e;
    return { note: `computing on the CPU: ${e.message}` };
  }
}
