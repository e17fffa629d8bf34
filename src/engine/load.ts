/**
 * Loading a model for local use: read the GGUF header, map the file, build the tokenizer, the
 * shard(s) of the plan, their KV caches and the engine. A single machine runs the one-shard plan;
 * nothing here is specific to "local mode" beyond the runner that chains the shards in-process.
 */
import { basename } from 'node:path';
import { GgmlType } from '../gguf/ggml-types.js';
import { readGguf, type GgufFile } from '../gguf/reader.js';
import type { Kernels, KvType } from '../kernels/api.js';
import { adviseWillNeed, createKernels, isNativeAvailable, openMapping, populateWrite, residentBytes, type FileMapping } from '../kernels/index.js';
import { readModelConfig, type ModelConfig } from '../model/config.js';
import type { DecoderShard } from '../model/decoder.js';
import { loadExpertShard, loadShard } from '../model/build-shard.js';
import type { ExpertShard } from '../model/expert-shard.js';
import { validateShard, wholeModel, type ShardSpec } from '../model/shard.js';
import { summarizeModel, type ModelSummary } from '../model/summary.js';
import { tokenizerFromGguf, type Tokenizer } from '../tokenizer/index.js';
import { CairnError } from '../util/errors.js';
import { Engine } from './engine.js';
import { preferLargePages, type ProbeRange } from './large-pages.js';
import { packProductWeights } from './pack-weights.js';
import { LocalRunner, type ForwardRunner } from './runner.js';
import { ProgressReporter } from '../util/progress.js';
import { freeMemoryBytes } from '../util/free-memory.js';
import { Metadata } from '../gguf/metadata.js';
import { readPooling, type Pooling } from '../model/pooling.js';
import { isEncoderArchitecture } from '../model/encoders/registry.js';
import { DecoderEmbedder, type Embedder } from './embed.js';
import { loadEncoderModel } from './load-encoder.js';
import { loadGpuParts, tryGpuParts, type ComputeBackend, type Placement } from './load-gpu.js';
import { buildSpeculation, type DraftLoader, type SpeculationOptions } from './speculation.js';

/** How to load a model. */
export interface LoadOptions {
  /** Kernel threads (default: physical cores). */
  readonly threads?: number;
  /** Positions per sequence slot (default: trained context, at most 4096). */
  readonly ctx?: number;
  /** Sequences that can be in flight at once (default 1). */
  readonly slots?: number;
  readonly kvType?: KvType;
  /** Most tokens per forward call (default 512). */
  readonly maxBatch?: number;
  /** Layer ranges to load (default: the whole model as one shard). */
  readonly shards?: readonly ShardSpec[];
  /** 'reference' runs the TypeScript kernels (slow; for tests). */
  readonly backend?: 'native' | 'reference';
  /** Show a progress bar on stderr while pages are read in (default: when stderr is a TTY). */
  readonly progress?: boolean;
  /** Fault every weight page in before returning, so the first token is not slowed (default true). */
  readonly prefetch?: boolean;
  readonly maxQueue?: number;
  /** Prompt cache beyond the KV slots: memory budget in bytes and optional directory. */
  readonly promptCache?: { readonly budgetBytes: number; readonly dir?: string };
  /** Speculative decoding (default: prompt lookup, up to 8 draft tokens a step). */
  readonly speculation?: SpeculationOptions;
  /**
   * Where the layers run (load-gpu.ts): `cpu` (the default), `gpu` (an error when no GPU runs this
   * model), or `auto` (a hardware GPU that runs it, else the CPU, saying why in `placement.note`).
   */
  readonly compute?: ComputeBackend;
  /** With a GPU: how many of the last layers run there (default all; the first ones then on the CPU). */
  readonly gpuLayers?: number;
}

/** A loaded model, ready to generate. */
export interface LoadedModel {
  readonly file: GgufFile;
  readonly config: ModelConfig;
  readonly tokenizer: Tokenizer;
  readonly kernels: Kernels;
  readonly shards: readonly DecoderShard[];
  readonly engine: Engine;
  /** Makes embeddings (every model: a decoder's from its final norm, an encoder's as it was trained). */
  readonly embedder: Embedder;
  /** True for a model that makes embeddings only (an encoder): its engine refuses to generate. */
  readonly embeddingOnly?: boolean;
  /** Bytes of the file the shards reference (mapped, not copied). */
  readonly mappedBytes: number;
  /** Bytes of KV cache allocated. */
  readonly kvBytes: number;
  /** Bytes of weights the kernels hold in packed copies (pack-weights.ts; the file's pages of those released). */
  readonly packedBytes: number;
  /** Current resident memory of the process. */
  residentBytes(): number;
  /** What the model is (architecture, parameters, quantization mix), for APIs that describe it. */
  summary(): ModelSummary;
  /** Where the layers run: the CPU, or a GPU and its adapter. */
  readonly placement: Placement;
  /** Releases the mapping (the views become unreachable once the model is dropped). */
  close(): void;
}

/** Shards of one model file loaded in this process, without an engine. */
export interface LoadedShards {
  readonly path: string;
  readonly file: GgufFile;
  readonly config: ModelConfig;
  readonly kernels: Kernels;
  readonly shards: readonly DecoderShard[];
  readonly ctx: number;
  readonly kvType: KvType;
  readonly mappedBytes: number;
  readonly kvBytes: number;
  /** Bytes of weights packed at load (pack-weights.ts). */
  readonly packedBytes: number;
  close(): void;
}

/** Maps a GGUF file and builds the given shards (default: the whole model) with their KV caches. */
export async function loadShards(path: string, opts: LoadOptions = {}): Promise<LoadedShards> {
  const file = readGguf(path);
  const config = readModelConfig(file);
  const kernels = createKernels({ backend: opts.backend, threads: opts.threads });
  const ctx = opts.ctx ?? Math.min(config.ctxTrain, 4096);
  if (!(Number.isInteger(ctx) && ctx >= 2)) throw new CairnError('BAD_ARGUMENT', `context size ${ctx} must be a whole number >= 2`);
  const slots = opts.slots ?? 1;
  const maxBatch = Math.min(opts.maxBatch ?? 512, ctx);
  const kvType = opts.kvType ?? GgmlType.F16;
  const specs = opts.shards ?? [wholeModel(config)];
  specs.forEach((s) => validateShard(s, config));
  const { built: shards, mapping, mappedBytes, packedBytes } = await mapAndBuild(
    path,
    opts,
    `loading ${path}`,
    (view) => specs.map((spec) => loadShard(file, config, spec, view, kernels, { slots, ctx, kvType, maxBatch })),
    kernels,
  );
  if (opts.prefetch ?? true) {
    try {
      await faultInFirstTouch(shards, opts.progress ?? process.stderr.isTTY === true, `reserving the KV cache and activations of ${path}`);
    } catch (err) {
      mapping.close();
      throw err;
    }
  }
  return {
    path,
    file,
    config,
    kernels,
    shards,
    ctx,
    kvType,
    mappedBytes,
    kvBytes: shards.reduce((a, s) => a + s.kv.bytes, 0),
    packedBytes,
    close: () => mapping.close(),
  };
}

/**
 * Maps `path`, builds parts over it (`build` gets the view of each tensor), and reads their weights
 * in (huge pages where the kernel gives them) unless `opts.prefetch` is false; then, given the
 * kernels the parts run on, packs their products' weights (pack-weights.ts). The mapping closes if
 * anything fails.
 */
export async function mapAndBuild<T extends Pick<DecoderShard, 'weights'>>(
  path: string,
  opts: Pick<LoadOptions, 'prefetch' | 'progress'>,
  label: string,
  build: (view: (t: { offset: number; byteLength: number }) => Uint8Array) => T[],
  kernels?: Kernels,
): Promise<{ built: T[]; mapping: FileMapping; mappedBytes: number; packedBytes: number }> {
  const mapping: FileMapping = openMapping(path);
  try {
    // The largest tensor the parts use: where preferLargePages probes.
    let largest: ProbeRange | undefined;
    const built = build((t) => {
      if (!largest || t.byteLength > largest.length) largest = { offset: t.offset, length: t.byteLength };
      return mapping.view(t.offset, t.byteLength);
    });
    const mappedBytes = built.reduce((a, s) => a + s.weights.bytes, 0);
    const show = opts.progress ?? process.stderr.isTTY === true;
    if (opts.prefetch ?? true) {
      await prefetch(built, mappedBytes, show, label);
      await preferLargePages(mapping, mappedBytes, largest, () => prefetch(built, mappedBytes, show, `reading ${path} again into huge pages (once)`));
    }
    const products = built.flatMap((s) => s.weights.products ?? []);
    const packed = kernels ? await packProductWeights(products, kernels, mapping, show, `packing the weights of ${path}`) : undefined;
    return { built, mapping, mappedBytes, packedBytes: packed?.packedBytes ?? 0 };
  } catch (err) {
    mapping.close();
    throw err;
  }
}

/** An expert rank of an expert-parallel group loaded in this process (model/expert-shard.ts). */
export interface LoadedExpertRank {
  readonly path: string;
  readonly file: GgufFile;
  readonly config: ModelConfig;
  readonly kernels: Kernels;
  readonly expert: ExpertShard;
  readonly mappedBytes: number;
  close(): void;
}

/** Maps a GGUF file and builds an expert rank (`spec`: rank > 0 of an expert-parallel group) for up to `maxBatch` tokens a step. */
export async function loadExpertRank(
  path: string,
  spec: ShardSpec,
  opts: Pick<LoadOptions, 'threads' | 'backend' | 'maxBatch' | 'prefetch' | 'progress'> = {},
): Promise<LoadedExpertRank> {
  const file = readGguf(path);
  const config = readModelConfig(file);
  validateShard(spec, config);
  const kernels = createKernels({ backend: opts.backend, threads: opts.threads });
  const { built, mapping, mappedBytes } = await mapAndBuild(
    path,
    opts,
    `loading experts of ${path}`,
    (view) => [loadExpertShard(file, config, spec, view, kernels, opts.maxBatch ?? 512)],
    kernels,
  );
  return { path, file, config, kernels, expert: built[0], mappedBytes, close: () => mapping.close() };
}

/** What a loaded model is made of when its runner is not (only) in this process. */
export interface ModelParts {
  readonly path: string;
  readonly file: GgufFile;
  readonly config: ModelConfig;
  readonly kernels: Kernels;
  /** Shards in this process (may be empty for a coordinator that computes nothing). */
  readonly shards: readonly DecoderShard[];
  readonly runner: ForwardRunner;
  readonly ctx: number;
  readonly kvType: KvType;
  readonly mappedBytes: number;
  readonly kvBytes: number;
  /** Bytes of weights packed at load (default 0). */
  readonly packedBytes?: number;
  /** Where the layers run (default: the CPU). */
  readonly placement?: Placement;
  close(): void;
}

/**
 * Builds the engine and the model handle over any runner, with its speculation (a draft model loads
 * here, in this process, for as many slots as the runner has).
 */
export async function modelFromParts(
  parts: ModelParts,
  opts: Pick<LoadOptions, 'maxQueue' | 'promptCache' | 'speculation' | 'threads' | 'backend' | 'progress'> = {},
): Promise<LoadedModel> {
  const { file, path } = parts;
  const tokenizer = tokenizerFromGguf(file);
  const fingerprint = `${basename(path)}:${file.fileSize}:${file.dataOffset}:${file.tensors.length}:kv${parts.kvType}:${parts.config.nLayer}`;
  const closers = [() => parts.close()];
  const speculation = await buildSpeculation(
    opts.speculation,
    { file, nVocab: parts.config.nVocab, slots: parts.runner.slots, ctx: parts.runner.ctxPerSlot, threads: opts.threads, backend: opts.backend, progress: opts.progress },
    loadDraft,
    (close) => closers.push(close),
  );
  const engine = new Engine(parts.runner, tokenizer, {
    maxQueue: opts.maxQueue,
    promptCache: opts.promptCache ? { ...opts.promptCache, fingerprint } : undefined,
    speculation,
  });
  let summary: ModelSummary | undefined;
  return {
    file,
    config: parts.config,
    tokenizer,
    kernels: parts.kernels,
    shards: parts.shards,
    engine,
    // A model on the GPU has no CPU shards of its head: its embedder says so rather than pooling a part.
    embedder: new DecoderEmbedder(
      parts.placement?.backend === 'gpu' ? [] : parts.shards,
      parts.placement?.backend === 'gpu' ? new Error('embeddings are made on the CPU: load the model with --backend cpu') : poolingOf(file, parts.config.arch),
      parts.ctx,
      parts.config.nVocab,
      parts.config.nEmbd,
    ),
    mappedBytes: parts.mappedBytes,
    kvBytes: parts.kvBytes,
    packedBytes: parts.packedBytes ?? 0,
    residentBytes,
    summary: () => (summary ??= summarizeModel(file, { ctx: parts.ctx })),
    placement: parts.placement ?? { backend: 'cpu' },
    close: () => closers.forEach((c) => c()),
  };
}

/** Loads a draft model whole, in this process, without a prompt cache or engine of its own. */
const loadDraft: DraftLoader = async (path, opts) => {
  const loaded = await loadShards(path, opts);
  return { file: loaded.file, runner: new LocalRunner(loaded.shards), close: () => loaded.close() };
};

/** The file's pooling for embeddings, or the error reading it gave (embeddings then fail, generation does not). */
function poolingOf(file: GgufFile, arch: string): Pooling | undefined | Error {
  try {
    return readPooling(new Metadata(file), arch);
  } catch (err) {
    return err as Error;
  }
}

/** Loads a GGUF model. Throws CairnError with a message naming the file and the problem. */
export async function loadModel(path: string, opts: LoadOptions = {}): Promise<LoadedModel> {
  const arch = new Metadata(readGguf(path)).string('general.architecture');
  if (arch !== undefined && isEncoderArchitecture(arch)) {
    if (opts.compute === 'gpu') throw new CairnError('MODEL_UNSUPPORTED', `${path}: encoder models (${arch}) do not run on the GPU yet; use --backend cpu`);
    return loadEncoderModel(path, opts);
  }
  let placement: Placement = { backend: 'cpu' };
  if (opts.compute === 'gpu' || opts.compute === 'auto') {
    const gpu = opts.compute === 'gpu' ? await loadGpuParts(path, opts) : await tryGpuParts(path, opts);
    if ('runner' in gpu) {
      try {
        return await modelFromParts(gpu, opts);
      } catch (err) {
        gpu.close();
        throw err;
      }
    }
    placement = { backend: 'cpu', note: gpu.note };
  } else if (opts.compute !== undefined && opts.compute !== 'cpu') {
    throw new CairnError('BAD_ARGUMENT', `compute backend must be auto, cpu or gpu (got "${String(opts.compute)}")`);
  }
  const loaded = await loadShards(path, opts);
  try {
    return await modelFromParts({ ...loaded, runner: new LocalRunner(loaded.shards), placement }, opts);
  } catch (err) {
    loaded.close();
    throw err;
  }
}

const YIELD_EVERY = 32 * 1024 * 1024;

/**
 * Faults in the memory a first step would (DecoderShard.firstTouchMemory: the activation buffers
 * and a KV cache on huge pages), with a progress bar, so that the first request does not wait on
 * it: fresh memory faults in at ~1 GB/s on a virtual machine, and a slot's first use faulted its
 * whole cache in (huge pages; each head's positions one stretch), 0.1-0.3 s for llama-1b's 4096
 * positions and, copying a prefix into a fresh slot, a stall of seconds with many slots. llama.cpp
 * commits its cache at load the same way. A cache on small pages is left to fault in as it fills.
 * Skipped without the native library (the reference kernels are slow enough that it never matters).
 */
async function faultInFirstTouch(shards: readonly DecoderShard[], show: boolean, label: string): Promise<void> {
  if (!isNativeAvailable()) return;
  const regions = shards.flatMap((s) => [...s.firstTouchMemory()]);
  const total = regions.reduce((a, r) => a + r.byteLength, 0);
  // A cache (with the activations) that would take more than half the memory free now is left to
  // fault in as it fills (a long context, or many slots, that may never be used whole): committing
  // it at load could push the machine, and whatever else runs on it, into swap.
  if (total > freeMemoryBytes() / 2) return;
  await walkWithProgress(regions, total, show, label, populateWrite);
}

/**
 * Calls `visit` on each region in turn (until it returns false) under a progress bar of `total`
 * bytes, yielding to the event loop now and then so a server stays responsive (503 on /health)
 * during a long load.
 */
async function walkWithProgress<T extends ArrayBufferView>(regions: Iterable<T>, total: number, show: boolean, label: string, visit: (region: T) => boolean): Promise<void> {
  const progress = new ProgressReporter(show ? label : undefined, total);
  let done = 0;
  for (const r of regions) {
    if (!visit(r)) break;
    const before = done;
    done += r.byteLength;
    progress.update(done);
    if (show || Math.floor(done / YIELD_EVERY) !== Math.floor(before / YIELD_EVERY)) await new Promise((resolve) => setImmediate(resolve));
  }
  progress.stop();
}

/** Reads every weight page once (sequentially, so the kernel reads ahead) with a progress bar. */
async function prefetch(shards: readonly Pick<DecoderShard, 'weights'>[], total: number, show: boolean, label: string): Promise<void> {
  const native = isNativeAvailable();
  let sink = 0;
  await walkWithProgress(shards.flatMap((shard) => shard.weights.views), total, show, label, (m) => {
    if (native) adviseWillNeed(m, true);
    else for (let i = 0; i < m.length; i += 4096) sink ^= m[i];
    return true;
  });
  if (sink === 256) throw new Error('unreachable'); // keeps the reads from being optimized away
}
