/**
 * A whole model on the GPU: the family's token embedding on the host (one row per token, uploaded
 * with the batch), its layers and head as GPU blocks (gpu-blocks.ts) over device weights, and an F16
 * KV cache per layer and slot on the device. A forward call records every layer's kernels into one
 * command encoder and reads back only the logits, so it is asynchronous where the CPU shard's is not.
 */
import { CairnError } from '../../util/errors.js';
import type { Kernels } from '../../kernels/api.js';
import type { GpuKvType, GpuTensor, WebGpuKernels } from '../../kernels/webgpu/gpu-kernels.js';
import type { GgufFile } from '../../gguf/reader.js';
import type { ShardBatch } from '../batch.js';
import type { ModelConfig } from '../config.js';
import { GgufTensorSource, type TensorBytes } from '../gguf-tensor-source.js';
import { kvRows } from '../kv-cache.js';
import { familyOf } from '../registry.js';
import type { ShardInput } from '../blocks/types.js';
import { Workspace } from '../blocks/workspace.js';
import { HiddenInput } from '../blocks/token-embedding.js';
import type { GpuDecoderLayer, GpuOutputHead, GpuStep } from './gpu-blocks.js';
import { GpuWorkspace, type GpuScratch } from './gpu-workspace.js';
import { GpuKvCache } from './gpu-kv-cache.js';

/** Dispatches recorded before the layers recorded so far are submitted (see WebGpuKernels.submitEarly). */
const SUBMIT_EVERY = 40;

/** Sizes of a GPU shard, and the layers it holds. */
export interface GpuShardOptions {
  readonly slots: number;
  readonly ctx: number;
  readonly maxBatch: number;
  /**
   * The first layer on the GPU (default 0): the layers before it run on the CPU, and this shard
   * takes their hidden states (as llama.cpp's --n-gpu-layers keeps the last layers on the GPU).
   */
  readonly layerStart?: number;
  /**
   * The layer after the last on the GPU (default: the model's last, with the head): a pipeline
   * stage that ends before it returns every row's hidden state instead of logits.
   */
  readonly layerEnd?: number;
  /** The KV cache's type (default F16). */
  readonly kvType?: GpuKvType;
  /**
   * Take fewer tokens a step than maxBatch where the activations of maxBatch would not fit one
   * binding (the shard's opts then say how many); without it (a pipeline stage, whose batches the
   * coordinator sizes) that is an error.
   */
  readonly fitBatch?: boolean;
}

/** A loaded model whose layers and head run on the GPU. */
export class GpuDecoderShard {
  private readonly host: Float32Array;
  private readonly positions: Int32Array;
  private readonly step: GpuStep;
  private readonly lastRow = [0];

  constructor(
    readonly cfg: ModelConfig,
    private readonly gpu: WebGpuKernels,
    private readonly kernels: Kernels,
    private readonly input: ShardInput,
    private readonly layers: readonly GpuDecoderLayer[],
    private readonly output: GpuOutputHead | undefined,
    private readonly stream: GpuScratch,
    private readonly ws: GpuWorkspace,
    readonly kv: GpuKvCache,
    readonly opts: GpuShardOptions,
  ) {
    this.host = new Float32Array(opts.maxBatch * cfg.nEmbd);
    this.positions = new Int32Array(opts.maxBatch);
    this.step = { gpu, kv, n: 0, spans: [], positions: this.positions, layer: 0, ropeTable: (key, nRot, fill) => this.ropeTable(key, nRot, fill) };
  }

  private stepNumber = 0;
  private readonly tables = new Map<string, { t: GpuTensor; step: number }>();

  /** The rope angles of this step's positions under `key`, written to the device once per step. */
  private ropeTable(key: string, nRot: number, fill: (positions: Int32Array, n: number) => Float32Array): GpuTensor {
    let e = this.tables.get(key);
    if (!e) this.tables.set(key, (e = { t: this.gpu.tensor(this.opts.maxBatch * nRot * 4), step: -1 }));
    if (e.step !== this.stepNumber) {
      this.gpu.write(e.t, fill(this.step.positions, this.step.n));
      e.step = this.stepNumber;
    }
    return e.t;
  }


  /**
   * Compiles the pipelines of a decode step and of a batch of tokens off the event loop
   * (WebGpuKernels.precompile), so that no step waits on a driver's compile; nothing is computed and
   * the cache is untouched. Returns how many pipelines were made.
   */
  async precompile(): Promise<number> {
    let made = 0;
    for (const n of new Set([1, Math.min(2, this.opts.maxBatch)])) {
      const batch: ShardBatch = { nTokens: n, tokens: new Int32Array(n), hidden: new Float32Array(n * this.cfg.nEmbd), spans: [{ slot: 0, pos0: 0, start: 0, n }] };
      made += await this.gpu.precompile(() => this.forward(batch));
    }
    return made;
  }

  /** Frees the shard's weights, activations and cache on the device (the device itself stays open). */
  release(): void {
    this.gpu.flush();
    this.ws.release();
    this.kv.release();
    for (const e of this.tables.values()) this.gpu.free(e.t);
    this.tables.clear();
  }

  /** Bytes of weights on the device. */
  get weightBytes(): number {
    return this.ws.weightBytes;
  }

  /** The first layer of the model this shard holds, and the one after its last. */
  get layerStart(): number {
    return this.opts.layerStart ?? 0;
  }

  get layerEnd(): number {
    return this.opts.layerEnd ?? this.cfg.nLayer;
  }

  /**
   * Runs the shard's layers on a batch of token ids (or, after layers held elsewhere, their hidden
   * states); returns logits for batch.outputRows (default: the last row), outputRows.length x
   * nVocab, or, for a shard without the head, every row's hidden state (nTokens x nEmbd), in an
   * array of their own.
   */
  async forward(batch: ShardBatch): Promise<Float32Array> {
    const n = batch.nTokens;
    this.check(batch);
    this.input.check(batch);
    const x = this.host.subarray(0, n * this.cfg.nEmbd);
    this.input.read(batch, x, this.kernels);
    this.gpu.write(this.stream.t, x);
    for (const s of batch.spans) for (let i = 0; i < s.n; i++) this.positions[s.start + i] = s.pos0 + i;
    const step = this.step;
    this.stepNumber++;
    step.n = n;
    step.spans = batch.spans;
    step.positions = this.positions.subarray(0, n);
    for (let l = 0; l < this.layers.length; l++) {
      step.layer = l;
      this.layers[l].forward(this.stream.t, step);
      this.gpu.submitEarly(SUBMIT_EVERY);
    }
    if (!this.output) return new Float32Array(await this.gpu.read(this.stream.t, n * this.cfg.nEmbd * 4));
    let rows: ArrayLike<number> | undefined = batch.outputRows;
    if (!rows) {
      this.lastRow[0] = n - 1;
      rows = this.lastRow;
    }
    for (let j = 0; j < rows.length; j++) if (!(rows[j] >= 0 && rows[j] < n)) throw new CairnError('BAD_ARGUMENT', `output row ${rows[j]} is outside the batch`);
    return this.output.write(this.gpu, this.stream.t, rows);
  }

  private check(batch: ShardBatch): void {
    const n = batch.nTokens;
    if (!(Number.isInteger(n) && n >= 1 && n <= this.opts.maxBatch)) throw new CairnError('BAD_ARGUMENT', `batch of ${n} tokens (1 to ${this.opts.maxBatch} allowed)`);
    let covered = 0;
    for (const s of batch.spans) {
      if (!(s.slot >= 0 && s.slot < this.opts.slots)) throw new CairnError('BAD_ARGUMENT', `KV slot ${s.slot} does not exist`);
      if (s.start !== covered || !(s.n >= 1)) throw new CairnError('BAD_ARGUMENT', 'sequence spans must cover the batch in order');
      if (!(s.pos0 >= 0 && s.pos0 + s.n <= this.opts.ctx)) {
        throw new CairnError('CONTEXT_FULL', `context full: positions up to ${s.pos0 + s.n} do not fit the ${this.opts.ctx}-token context`);
      }
      covered += s.n;
    }
    if (covered !== n) throw new CairnError('BAD_ARGUMENT', 'sequence spans must cover the batch');
  }
}

/**
 * Builds a whole model on the GPU over the mapped file, or throws MODEL_UNSUPPORTED naming what the
 * GPU backend cannot run yet (a family without GPU blocks, a weight type, a feature).
 */
export function loadGpuShard(file: GgufFile, cfg: ModelConfig, bytesOf: TensorBytes, kernels: Kernels, gpu: WebGpuKernels, opts: GpuShardOptions): GpuDecoderShard {
  const family = familyOf(cfg);
  if (!family.gpu) throw new CairnError('MODEL_UNSUPPORTED', `${family.name} models do not run on the GPU yet; use --backend cpu`);
  const layerStart = opts.layerStart ?? 0;
  const layerEnd = opts.layerEnd ?? cfg.nLayer;
  if (!(Number.isInteger(layerStart) && Number.isInteger(layerEnd) && layerStart >= 0 && layerStart < layerEnd && layerEnd <= cfg.nLayer)) {
    throw new CairnError('BAD_ARGUMENT', `layers ${layerStart} to ${layerEnd} on the GPU are not a range of the model's ${cfg.nLayer} layers`);
  }
  const src = new GgufTensorSource(file, { bytesOf, kernels });
  const ws = new GpuWorkspace(gpu, opts.maxBatch, opts.ctx);
  // A load that fails part way frees what it uploaded (a node's device outlives its stages).
  try {
    const stream = ws.buffer('stream', cfg.nEmbd);
    src.enter('embed');
    const input = layerStart === 0 ? family.input(cfg, src, new Workspace(opts.maxBatch)) : new HiddenInput(cfg.nEmbd);
    const layers: GpuDecoderLayer[] = [];
    for (let l = layerStart; l < layerEnd; l++) {
      src.enter(l);
      layers.push(family.gpu.layer(cfg, l, src, ws));
    }
    let output: GpuOutputHead | undefined;
    if (layerEnd === cfg.nLayer) {
      src.enter('head');
      output = family.gpu.output(cfg, src, ws);
    }
    const batch = opts.fitBatch ? ws.fitBatch() : opts.maxBatch;
    ws.allocate();
    const kv = new GpuKvCache(gpu, kvRows(cfg, { layerStart, layerEnd }), opts.slots, opts.ctx, opts.kvType);
    return new GpuDecoderShard(cfg, gpu, kernels, input, layers, output, stream, ws, kv, { ...opts, maxBatch: batch });
  } catch (e) {
    ws.release();
    throw e;
  }
}
