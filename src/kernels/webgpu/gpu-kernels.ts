/**
 * The GPU kernels over tensors that live on the device: weights uploaded once in their GGUF block
 * layout (never dequantized whole), activations and KV caches as device buffers. Every call records
 * its dispatch into one pending command encoder; nothing goes to the GPU until `flush` (or a `read`,
 * which flushes first), so the kernels of a layer, or of a whole step, run without a host round
 * trip between them. Each kernel has a CPU twin (src/kernels/reference) that tests compare it to.
 */
/// <reference types="@webgpu/types" />
import { CairnError } from '../../util/errors.js';
import { GgmlType, ggmlTypeName } from '../../gguf/ggml-types.js';
import { ropeAngles } from '../reference/ops.js';
import type { RopeParams } from '../api.js';
import { openGpu, type GpuContext, type OpenGpuOptions } from './device.js';
import { GpuProfiler } from './gpu-profile.js';
import { BindGroupCache, type BindingKey } from './bind-group-cache.js';
import { gpuWeightFormat, WGSL_BYTES, WGSL_WORDS } from './wgsl-weights.js';
import { gpuItemFormat, type GpuItemFormat } from './wgsl-items.js';
import { ITEM_DECODE_ITEMS, ITEM_DECODE_ROWS, ITEM_ROWS, ITEM_TOKENS, matmulItemsWgsl, stageShape, type ItemOutput, type ItemStage } from './wgsl-matmul-items.js';
import { ATTENTION_Q8_READERS, storeQ8Wgsl } from './wgsl-kv-q8.js';
import { type QkvBinding, ADD, ADD_BIAS, ADD_IN_PLACE, ATTENTION_F16, ATTENTION_MAX_KEY, attentionWgsl, ATTENTION_MAX_VALUE, matmulSubgroupWgsl, matmulTiledWgsl, matmulWgsl, NORM_WIDE_FROM, RMS_NORM, RMS_NORM_IN_PLACE, RMS_NORM_WIDE, RMS_NORM_WIDE_IN_PLACE, ROPE, ropeStoreKvWgsl, STORE_F16, STORE_KV_F16, SWIGLU, SWIGLU_IN_PLACE, GEGLU, GEGLU_IN_PLACE, WG } from './wgsl-ops.js';

/** Per token, the cosines then the sines of its nRot / 2 rotated pairs (the CPU's rope cache), for rope. */
export function ropeTable(positions: Int32Array, nTokens: number, p: RopeParams): Float32Array {
  const half = p.nRot / 2;
  const table = new Float32Array(nTokens * p.nRot);
  for (let t = 0; t < nTokens; t++) {
    const { cos, sin } = ropeAngles(positions[t], p);
    table.set(cos, t * p.nRot);
    table.set(sin, t * p.nRot + half);
  }
  return table;
}

/** A buffer on the device and the bytes of it that hold data. */
export interface GpuTensor {
  readonly buffer: GPUBuffer;
  readonly bytes: number;
}

/** Attention over an F16 cache on the device (the CPU kernel's AttentionParams, less the cache type). */
export interface GpuAttentionParams {
  readonly nTokens: number;
  readonly nHead: number;
  readonly nKvHead: number;
  readonly headDim: number;
  readonly pos0: number;
  readonly scale: number;
  /** Positions a token sees, itself included; 0: all. */
  readonly window?: number;
  /** Scores squashed to softcap * tanh(score / softcap) before the softmax; 0 or absent: none. */
  readonly softcap?: number;
  /** One sink logit per query head, on the device. */
  readonly sinks?: GpuTensor;
  /** Elements of a key cache row (default nKvHead x headDim). */
  readonly kRow?: number;
  /** Value elements per KV head, and so per output head (default headDim). */
  readonly vDim?: number;
  /** Elements of a value cache row (default nKvHead x vDim). */
  readonly vRow?: number;
  /** The caches' type: F16 (default) or Q8_0. */
  readonly kvType?: GpuKvType;
}

/** The KV cache types the GPU keeps. */
export type GpuKvType = GgmlType.F16 | GgmlType.Q8_0;

/** Bytes of `elems` cache elements of `type` (Q8_0: whole 34-byte blocks of 32). */
export function gpuKvBytes(type: GpuKvType, elems: number): number {
  return type === GgmlType.Q8_0 ? (elems / 32) * 34 : elems * 2;
}

/** The tokens ropeStoreKvF16 takes: a span of a batch and where its rows go in the cache. */
export interface RopeStoreShape {
  readonly nTokens: number;
  readonly nHead: number;
  readonly nKvHead: number;
  readonly headDim: number;
  /** Cache row of the span's first token. */
  readonly pos0: number;
  /** Batch row of the span's first token (in q, k, v and the rope table). */
  readonly t0: number;
  /** Elements of q's, k's and v's tensors before their first row (default 0): they may be one tensor. */
  readonly qOff?: number;
  readonly kOff?: number;
  readonly vOff?: number;
}

/** Where rope finds each head: head h of token t starts at t x tokenStride + h x headStride + offset. */
export interface RopeLayout {
  readonly tokenStride: number;
  readonly headStride: number;
  readonly offset: number;
}

/** Where a matmul's operands start, and the row stride of its output (f32 elements; w in bytes). */
export interface MatmulOffsets {
  readonly wOffset?: number;
  readonly xOffset?: number;
  readonly yOffset?: number;
  readonly yStride?: number;
  /** Add the product to y (y += W x) instead of writing it. */
  readonly accumulate?: boolean;
  /**
   * W's rows are (gate, up) pairs: y gets silu(gate) x up, one value per pair (rows / 2 of them;
   * yOffset and yStride count those). Only where pairedSwiglu says the product can.
   */
  readonly swiglu?: boolean;
}

/** The outputs of an item product, in the order itemKey numbers them. */
const ITEM_OUTPUTS: readonly ItemOutput[] = ['set', 'add', 'swiglu'];
/** Invocations of a staged item product's workgroup: 8 subgroups of 32 share each stage of activations. */
const STAGE_INVOCATIONS = 256;
/** Most workgroups along the first grid dimension; more go to the second. */
const GRID_X = 32768;
/** Dispatches per flush before the parameter buffer is full (then it flushes early), and the bytes each may use. */
const PARAM_SLOTS = 2048;
const PARAM_SLOT_BYTES = 256;
/** Bind groups kept for reuse before the cache starts again. */
const MAX_BIND_GROUPS = 8192;
/** A parameter range's key in the bind cache: slot x PARAM_SLOT_KEY + bytes (bytes <= PARAM_SLOT_BYTES). */
const PARAM_SLOT_KEY = 1024;
/** Read-back buffers kept per size, the largest size kept, and the most bytes kept in all. */
const READ_BUFFERS_PER_SIZE = 4;
const READ_BUFFER_MAX = 32 << 20;
const READ_BUFFERS_BYTES = 64 << 20;

/** A dispatch's parameters: a slot of the shared uniform buffer. */
interface ParamSlot {
  readonly slot: number;
  readonly bytes: number;
}

function bad(message: string): never {
  throw new CairnError('BAD_ARGUMENT', message);
}

function checkCount(name: string, v: number): void {
  if (!(Number.isInteger(v) && v >= 0 && v < 2 ** 31)) bad(`${name} must be a non-negative integer below 2^31 (got ${v})`);
}

/** The GPU kernels of one device. */
export class WebGpuKernels {
  readonly name = 'webgpu';
  /** Dispatches recorded since the device was opened (for benchmarks: a step's count is its host cost). */
  dispatchCount = 0;
  /** Dispatches recorded since the last submission. */
  private pendingDispatches = 0;
  /** Whether submitEarly submits (benchmarks turn it off to time the device's part of a step alone). */
  earlySubmits = true;
  /** Rows a subgroup takes in an item product of one token (a SwiGLU product rounds it up to whole pairs; benchmarks try others). */
  decodeRows = ITEM_DECODE_ROWS;
  /** Items a lane loads at once in an item product of one token (benchmarks try others). */
  decodeItems = ITEM_DECODE_ITEMS;
  /**
   * Item products stage their activations in workgroup memory (wgsl-matmul-items.ts): the same
   * bits either way. As the device was opened (GpuContext.stagedProducts); benchmarks try both
   * (bench/gpu-step.ts and gpu-matmul.ts --staged).
   */
  stagedProducts: boolean;
  /** Item products' pipeline keys by shape (see itemKey). */
  private readonly itemKeys = new Map<number, string>();
  /** Staged item products' stages by format and tile (see itemStage; null: none fits). */
  private readonly itemStages = new Map<string, { stage: ItemStage; tokens: number } | null>();
  private encoder: GPUCommandEncoder | undefined;
  /** The compute pass dispatches go into until a copy or a flush ends it. */
  private pass: GPUComputePassEncoder | undefined;
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  /** Buffers of recorded work made for one call, released once it is submitted. */
  private transient: GPUBuffer[] = [];
  private readonly transientSet = new WeakSet<GPUBuffer>();
  /** A small tensor bound where a kernel has nothing to read (an absent bias or sink). */
  readonly empty: GpuTensor;
  /**
   * Every dispatch's parameters, one slot each in one uniform buffer written once per flush: a
   * step's dispatches then bind the same (buffers, slot) as the step before, and their bind
   * groups come from a cache instead of being made again.
   */
  private readonly params: GPUBuffer;
  private readonly paramStaging = new Uint32Array((PARAM_SLOTS * PARAM_SLOT_BYTES) / 4);
  private paramSlots = 0;
  private readonly slotBytes: number;
  private readonly bindGroups = new BindGroupCache(MAX_BIND_GROUPS);
  /** The bind cache's keys of the dispatch being recorded (one array, refilled per dispatch). */
  private readonly bindingKeys: BindingKey[] = [];
  /**
   * Buffers the recorded, unsubmitted commands use: a write to any other buffer need not submit
   * them first (queue writes land before the next submission, and nothing recorded reads it).
   */
  private readonly pendingUse = new Set<GPUBuffer>();
  /** Buffers for reading back, by size, kept for the next read (making one costs ~0.5 ms on some drivers). */
  private readonly readBuffers = new Map<number, GPUBuffer[]>();
  private readBufferBytes = 0;
  /** Times each dispatch on the device while set (startProfile). */
  private profiler: GpuProfiler | undefined;
  /** While precompile runs its recording: the pipelines asked for, and nothing recorded. */
  private collecting: Map<string, () => string> | undefined;
  /** Why the device was lost, once it was (a driver reset, out of memory, or destroy). */
  private lostReason: string | undefined;
  /** The first error the device reported outside an error scope since the last read. */
  private refused: string | undefined;
  /** The device's maxComputeWorkgroupsPerDimension (read once: every dispatch checks it). */
  private readonly groupsPerDim: number;

  constructor(readonly gpu: GpuContext) {
    this.stagedProducts = gpu.stagedProducts;
    this.groupsPerDim = gpu.device.limits.maxComputeWorkgroupsPerDimension;
    // Without these, a command the device refuses is only logged and its results read back as
    // zeros, and a lost device fails reads with a bare AbortError: read() turns both into errors
    // that say so (the request fails; the next one sees the same device state).
    void gpu.device.lost.then((info) => {
      this.lostReason = `${info.reason}${info.message ? `: ${info.message}` : ''}`;
    });
    gpu.device.addEventListener('uncapturederror', (e) => {
      this.refused ??= (e as GPUUncapturedErrorEvent).error.message;
    });
    this.slotBytes = Math.max(PARAM_SLOT_BYTES, gpu.device.limits.minUniformBufferOffsetAlignment);
    this.params = gpu.device.createBuffer({ size: PARAM_SLOTS * this.slotBytes, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    this.empty = this.tensor(16);
  }

  /** Opens the GPU (openGpu) and makes its kernels; throws GPU_UNAVAILABLE saying why it cannot. */
  static async open(options?: OpenGpuOptions): Promise<WebGpuKernels> {
    return new WebGpuKernels(await openGpu(options));
  }

  private get device(): GPUDevice {
    return this.gpu.device;
  }

  /** A zeroed device tensor of `bytes` (rounded up to whole words, plus one word for unaligned reads). */
  tensor(bytes: number, opts: { indirect?: boolean } = {}): GpuTensor {
    checkCount('bytes', bytes);
    const size = Math.max(16, (bytes + 7) & ~3);
    if (size > this.gpu.maxBuffer) bad(`a tensor of ${bytes} bytes is larger than the GPU allows (${this.gpu.maxBuffer})`);
    // An indirect tensor also holds workgroup counts a kernel wrote for a later dispatch (runIndirect).
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST | (opts.indirect ? GPUBufferUsage.INDIRECT : 0);
    const buffer = this.device.createBuffer({ size, usage });
    return { buffer, bytes };
  }

  /** A device tensor holding a copy of `data` (weights in their file layout, or f32 activations). */
  upload(data: ArrayBufferView): GpuTensor {
    const t = this.tensor(data.byteLength);
    this.write(t, data);
    return t;
  }

  /** Copies `data` into `t` at byte `offset` (ordered before every dispatch recorded after it is flushed). */
  write(t: GpuTensor, data: ArrayBufferView, offset = 0): void {
    if (offset < 0 || offset + data.byteLength > t.bytes) bad(`writing ${data.byteLength} bytes at ${offset} into a tensor of ${t.bytes}`);
    if (this.collecting) return;
    // Commands recorded before this write must see the old contents: submit them first if they use t.
    if (this.pendingUse.has(t.buffer)) this.flush();
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    // writeBuffer takes whole words: the tail goes padded.
    const whole = data.byteLength & ~3;
    if (whole > 0) this.device.queue.writeBuffer(t.buffer, offset, bytes, 0, whole);
    if (whole < data.byteLength) {
      const tail = new Uint8Array(4);
      tail.set(bytes.subarray(whole));
      this.device.queue.writeBuffer(t.buffer, offset + whole, tail);
    }
  }

  /** Runs what was recorded, then copies `bytes` of `t` (from byte `offset`) back to the host. */
  async read(t: GpuTensor, bytes = t.bytes, offset = 0): Promise<ArrayBuffer> {
    if (offset < 0 || offset + bytes > t.bytes || offset % 4 !== 0) bad(`reading ${bytes} bytes at ${offset} of a tensor of ${t.bytes}`);
    if (this.collecting) return new ArrayBuffer(bytes);
    this.checkLost();
    const size = Math.max(4, (bytes + 3) & ~3);
    const staging = this.readBuffer(size);
    this.endPass();
    this.pending().copyBufferToBuffer(t.buffer, offset, staging, 0, size);
    this.flush();
    let ok = false;
    try {
      try {
        await staging.mapAsync(GPUMapMode.READ, 0, size);
      } catch (e) {
        // A lost device rejects the map with an AbortError that says nothing.
        this.checkLost(e);
        throw e;
      }
      const data = staging.getMappedRange(0, size).slice(0, bytes);
      staging.unmap();
      ok = true;
      this.checkRefused();
      return data;
    } finally {
      this.keepReadBuffer(staging, ok);
    }
  }

  /** Throws GPU_UNAVAILABLE saying so when the device is lost (or `cause`, a failed map, says it was). */
  private checkLost(cause?: unknown): void {
    const aborted = cause instanceof Error && cause.name === 'AbortError';
    if (this.lostReason === undefined && !aborted) return;
    throw new CairnError('GPU_UNAVAILABLE', `the GPU device was lost (${this.lostReason ?? 'a read was aborted'}); restart cairn to open it again, or run on the CPU with --backend cpu`, { cause });
  }

  /** Throws when the device refused a command since the last read: what was read may be missing its results. */
  private checkRefused(): void {
    const refused = this.refused;
    if (refused === undefined) return;
    this.refused = undefined;
    throw new Error(`the GPU refused a command, so this step's results were discarded: ${refused.split('\n')[0]}`);
  }

  /** A mappable buffer of at least `size` bytes for a read: a kept one, else a new one. */
  private readBuffer(size: number): GPUBuffer {
    const rounded = size <= 256 ? 256 : 2 ** Math.ceil(Math.log2(size));
    const kept = rounded <= READ_BUFFER_MAX ? this.readBuffers.get(rounded)?.pop() : undefined;
    if (kept) this.readBufferBytes -= kept.size;
    return kept ?? this.device.createBuffer({ size: rounded <= READ_BUFFER_MAX ? rounded : size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  }

  /** Keeps a read's buffer for the next read of its size (unless the read failed or enough are kept). */
  private keepReadBuffer(b: GPUBuffer, ok: boolean): void {
    const list = this.readBuffers.get(b.size) ?? [];
    if (!ok || b.size > READ_BUFFER_MAX || list.length >= READ_BUFFERS_PER_SIZE || this.readBufferBytes + b.size > READ_BUFFERS_BYTES) return b.destroy();
    list.push(b);
    this.readBuffers.set(b.size, list);
    this.readBufferBytes += b.size;
  }

  /** f32 values of `t`, read back. */
  async readF32(t: GpuTensor, count = t.bytes / 4): Promise<Float32Array> {
    return new Float32Array(await this.read(t, count * 4));
  }

  /** Submits the recorded dispatches. */
  flush(): void {
    if (!this.encoder) return;
    this.endPass();
    if (this.paramSlots > 0) {
      const staging = new Uint8Array(this.paramStaging.buffer, 0, this.paramSlots * this.slotBytes);
      this.device.queue.writeBuffer(this.params, 0, staging);
      this.paramSlots = 0;
    }
    const submitted = this.profiler?.resolve(this.encoder);
    this.device.queue.submit([this.encoder.finish()]);
    submitted?.();
    this.encoder = undefined;
    this.pendingDispatches = 0;
    this.pendingUse.clear();
    for (const b of this.transient) b.destroy();
    this.transient = [];
  }

  /**
   * Submits what was recorded once it holds at least `dispatches` dispatches: a caller recording a
   * long step calls this between its parts, so the device starts on the first layers while the
   * host records the rest (a step's recording costs the host about as long as the device takes).
   */
  submitEarly(dispatches: number): void {
    if (this.earlySubmits && this.pendingDispatches >= dispatches) this.flush();
  }

  /** Waits until the device has finished everything submitted. */
  async finish(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
  }

  /**
   * Runs `f` (allocations, uploads, dispatches) and waits for the device, turning what the device
   * reports asynchronously into errors: running out of its memory is GPU_UNAVAILABLE (saying so),
   * anything it found invalid an Error naming it. When the device reports a failure after `f`
   * returned, `release` gets what it returned: on a device that stays open (a node's), the part
   * that did fit would otherwise hold its memory for good.
   */
  async checked<T>(what: string, f: () => T, release?: (value: T) => void): Promise<T> {
    const device = this.device;
    device.pushErrorScope('validation');
    device.pushErrorScope('out-of-memory');
    let result: { ok: true; value: T } | { ok: false; error: unknown };
    try {
      result = { ok: true, value: f() };
    } catch (error) {
      result = { ok: false, error };
    }
    await this.finish();
    const oom = await device.popErrorScope();
    const invalid = await device.popErrorScope();
    if ((oom || invalid) && result.ok) release?.(result.value);
    if (oom) throw new CairnError('GPU_UNAVAILABLE', `${what} does not fit the GPU's memory (${oom.message}); use --backend cpu`);
    if (invalid) throw new Error(`${what}: the GPU refused a command: ${invalid.message}`);
    if (!result.ok) throw result.error;
    return result.value;
  }

  /**
   * Frees a tensor on the device, and the cached bind groups that name it: they would otherwise
   * hold the freed buffer (and the cache's room) until the cache next empties. The tensor must not
   * be used afterwards.
   */
  free(t: GpuTensor): void {
    this.bindGroups.forget(t.buffer);
    t.buffer.destroy();
  }

  /** The keys of the pipelines made so far (for tests of which kernels ran). */
  get pipelineKeys(): string[] {
    return [...this.pipelines.keys()];
  }

  /** Pipelines made so far (for tests of precompile). */
  get pipelineCount(): number {
    return this.pipelines.size;
  }

  /** Cached bind groups (for tests of free). */
  get cachedBindGroups(): number {
    return this.bindGroups.size;
  }

  /**
   * Compiles the pipelines that `record` (a step's kernel calls: a model's forward) asks for,
   * through Dawn's asynchronous pipeline creation, which leaves the event loop free (a driver's
   * compile can take seconds, and a cluster node that stops answering for that long is dropped).
   * `record` runs with nothing recorded, written or read: writes are skipped and reads give zeros.
   * Returns how many pipelines were made.
   */
  async precompile(record: () => unknown): Promise<number> {
    this.flush();
    const wanted = new Map<string, () => string>();
    this.collecting = wanted;
    try {
      await record();
    } finally {
      this.collecting = undefined;
      this.paramSlots = 0;
      this.flush();
    }
    const missing = [...wanted].filter(([key]) => !this.pipelines.has(key));
    await Promise.all(
      missing.map(async ([key, source]) => {
        const module = this.device.createShaderModule({ code: source() });
        const p = await this.device.createComputePipelineAsync({ layout: 'auto', compute: { module, entryPoint: 'main' } });
        this.pipelines.set(key, p);
      }),
    );
    return missing.length;
  }

  /**
   * From now on, times every dispatch on the device (a pass each): the profiler's take() sums them
   * by kernel. Needs a device opened with `timestamps` on an adapter that has them.
   */
  startProfile(): GpuProfiler {
    if (!this.gpu.timestamps) throw new CairnError('GPU_UNAVAILABLE', 'profiling needs timestamp queries: open the GPU with `timestamps` on an adapter that has them');
    this.flush();
    this.profiler ??= new GpuProfiler(this.device);
    return this.profiler;
  }

  /** Stops timing dispatches (what was timed stays in the profiler for take()). */
  stopProfile(): void {
    this.flush();
    this.profiler?.destroy();
    this.profiler = undefined;
  }

  /** Releases the device. The kernels must not be used afterwards. */
  destroy(): void {
    this.flush();
    this.profiler?.destroy();
    for (const list of this.readBuffers.values()) for (const b of list) b.destroy();
    this.readBuffers.clear();
    this.readBufferBytes = 0;
    this.device.destroy();
  }

  /**
   * y[yOffset + t * yStride + r] = dot(row r of W, x[xOffset + t * cols ..]) for t < n (yStride
   * defaults to rows): W is rows x cols of wtype in its GGUF layout, from byte wOffset of w; offsets
   * and strides count f32 elements. Activations stay f32 (no quantizing as the CPU does for
   * quantized weights), so results match the CPU's to rounding.
   */
  matmul(w: GpuTensor, wtype: GgmlType, rows: number, cols: number, x: GpuTensor, n: number, y: GpuTensor, at: MatmulOffsets = {}): void {
    const f = gpuWeightFormat(wtype);
    if (!f) bad(`the GPU kernels do not read ${ggmlTypeName(wtype)} weights yet`);
    const { wOffset = 0, xOffset = 0, accumulate = false, swiglu = false } = at;
    // With swiglu, y holds one value per pair of rows.
    const outRows = swiglu ? rows / 2 : rows;
    const { yOffset = 0, yStride = outRows } = at;
    const items = this.itemFormatFor(wtype, cols, xOffset);
    if (swiglu && (accumulate || rows % 2 !== 0 || !items)) bad('a swiglu product takes an even number of rows of a type and length the item product reads, nothing accumulated');
    for (const [k, v] of [['rows', rows], ['cols', cols], ['n', n], ['wOffset', wOffset], ['xOffset', xOffset], ['yOffset', yOffset], ['yStride', yStride]] as const) checkCount(k, v);
    if (cols % f.blockElems !== 0) bad(`cols ${cols} is not a multiple of ${f.blockElems} (a ${ggmlTypeName(wtype)} block)`);
    if (yStride < outRows) bad(`yStride ${yStride} is below rows ${outRows}`);
    const rowBytes = (cols / f.blockElems) * f.blockBytes;
    if (wOffset + rows * rowBytes > w.bytes) bad(`w holds ${w.bytes} bytes, less than ${rows} rows of ${rowBytes} from ${wOffset}`);
    if (x.bytes < (xOffset + n * cols) * 4) bad(`x holds ${x.bytes} bytes, less than ${n} x ${cols} f32 from ${xOffset}`);
    if (n > 0 && y.bytes < (yOffset + (n - 1) * yStride + outRows) * 4) bad(`y holds ${y.bytes} bytes, less than ${n} rows of ${yStride} f32 from ${yOffset}`);
    if (rows === 0 || n === 0) return;
    const params = this.uniform(new Uint32Array([rows, cols, n, rowBytes, wOffset, xOffset, yOffset, yStride]));
    const buffers = [w.buffer, x.buffer, y.buffer, params];
    const bySubgroup = Math.ceil(rows / (WG / this.gpu.subgroupMaxSize));
    if (items) {
      // Rows in pairs per subgroup, read in items of 32 weights, activations as vec4s.
      const output: ItemOutput = swiglu ? 'swiglu' : accumulate ? 'add' : 'set';
      // One token (decode) takes its own rows a subgroup and items a lane, no tile of tokens; each row's sum is the same expression either way.
      const decode = n === 1;
      const R = !decode ? ITEM_ROWS : swiglu ? 2 * Math.ceil(this.decodeRows / 2) : this.decodeRows;
      let T = decode ? 1 : ITEM_TOKENS;
      const U = decode ? this.decodeItems : 1;
      const staged = this.stagedProducts ? this.itemStage(T, items) : undefined;
      const stage = staged?.stage;
      if (staged) T = staged.tokens;
      const key = this.itemKey(wtype, output, decode, R, U, stage, T);
      // Workgroups were each subgroup to take one row, then R rows a subgroup.
      const groupsAtOneRow = stage ? Math.ceil(rows / (stage.invocations / this.gpu.subgroupMaxSize)) : bySubgroup;
      this.dispatch(key, this.pipeline(key, () => matmulItemsWgsl(WGSL_WORDS, items.wgsl, items.unitElems, items.unitBytes, items.items, output, R, T, U, stage)), buffers, Math.ceil(groupsAtOneRow / R), rows * rowBytes);
      return;
    }
    const acc = accumulate ? '-acc' : '';
    if (this.gpu.subgroups && f.w4) {
      // A row per subgroup (at least 64 / (largest subgroup) rows per workgroup), tiles of tokens.
      const key = `matmul-tiled-${ggmlTypeName(wtype)}${acc}`;
      this.dispatch(key, this.pipeline(key, () => matmulTiledWgsl(WGSL_BYTES, f.w4!, f.blockElems, f.blockBytes, accumulate)), buffers, bySubgroup, rows * rowBytes);
    } else if (this.gpu.subgroups) {
      const key = `matmul-sg-${ggmlTypeName(wtype)}${acc}`;
      this.dispatch(key, this.pipeline(key, () => matmulSubgroupWgsl(WGSL_BYTES, f.wgsl, f.blockElems, f.blockBytes, accumulate)), buffers, bySubgroup, rows * rowBytes);
    } else {
      const key = `matmul-${ggmlTypeName(wtype)}${acc}`;
      this.dispatch(key, this.pipeline(key, () => matmulWgsl(WGSL_BYTES, f.wgsl, f.blockElems, f.blockBytes, accumulate)), buffers, rows, rows * rowBytes);
    }
  }

  /**
   * The item decoder matmul uses for these weights and activations, or undefined where it takes the
   * per-block products: item products off, a type without items, rows that are not whole units, or
   * activations that do not start on a vec4 (the item product reads them as vec4s).
   */
  private itemFormatFor(wtype: GgmlType, cols: number, xOffset: number): GpuItemFormat | undefined {
    if (!this.gpu.itemProducts || xOffset % 4 !== 0) return undefined;
    const items = gpuItemFormat(wtype);
    return items && cols % items.unitElems === 0 ? items : undefined;
  }

  /** The pipeline key of an item product, made once per shape (matmul runs once per projection and token). */
  private itemKey(wtype: GgmlType, output: ItemOutput, decode: boolean, rows: number, items: number, stage: ItemStage | undefined, tokens: number): string {
    if (!(rows >= 1 && rows < 32 && items >= 1 && items < 32)) bad(`item products take 1 to 31 rows a subgroup and items a lane (got ${rows} and ${items})`);
    // A stage's shape follows from the device's limits, fixed while it is open: a bit says staged or not.
    const id = ((((wtype * 4 + ITEM_OUTPUTS.indexOf(output)) * 2 + (decode ? 1 : 0)) * 32 + rows) * 32 + items) * 2 + (stage ? 1 : 0);
    let key = this.itemKeys.get(id);
    if (key === undefined) {
      const shape = decode ? `-r${rows}u${items}` : '';
      const staged = stage ? `-s${stage.units}x${stage.invocations}t${tokens}` : '';
      this.itemKeys.set(id, (key = `matmul-items-${ggmlTypeName(wtype)}-${output}${shape}${staged}`));
    }
    return key;
  }

  /**
   * The stage of a staged item product of up to T tokens a tile (stageShape): workgroups of
   * STAGE_INVOCATIONS (or what the device allows), tiles and stages as its workgroup memory holds
   * them; none where a stage would not hold a subgroup's worth of items.
   */
  private itemStage(T: number, items: GpuItemFormat): { stage: ItemStage; tokens: number } | undefined {
    // Made once per format and tile: matmul runs once per projection and step.
    const id = `${items.unitElems}/${items.items}/${T}`;
    let staged = this.itemStages.get(id);
    if (staged === undefined) {
      const invocations = Math.min(STAGE_INVOCATIONS, this.gpu.maxInvocations);
      const lanes = this.gpu.subgroupMaxSize;
      const shape = stageShape(this.gpu.workgroupStorage, T, items.unitElems, items.items, lanes);
      staged = shape && invocations >= lanes ? { stage: { invocations, units: shape.units }, tokens: shape.tokens } : null;
      this.itemStages.set(id, staged);
    }
    return staged ?? undefined;
  }

  /** Whether matmul can take W's rows as (gate, up) pairs with `swiglu` for this weight type and row length (the item product's). */
  pairedSwiglu(wtype: GgmlType, cols: number): boolean {
    return this.itemFormatFor(wtype, cols, 0) !== undefined;
  }

  /** y[r * dim + i] += bias[i] for `rows` rows of dim. */
  addBias(y: GpuTensor, bias: GpuTensor, rows: number, dim: number): void {
    checkCount('rows', rows);
    checkCount('dim', dim);
    if (y.bytes < rows * dim * 4 || bias.bytes < dim * 4) bad('addBias: a tensor is too small');
    if (rows === 0 || dim === 0) return;
    const params = this.uniform(new Uint32Array([rows * dim, dim, 0, 0]));
    this.dispatchThreads('addbias', this.pipeline('addbias', () => ADD_BIAS), [y.buffer, bias.buffer, params], rows * dim);
  }

  /** Copies `bytes` from byte srcOffset of src to byte dstOffset of dst, in order with the dispatches. */
  copy(src: GpuTensor, srcOffset: number, dst: GpuTensor, dstOffset: number, bytes: number): void {
    if (srcOffset % 4 || dstOffset % 4 || bytes % 4 || srcOffset + bytes > src.bytes || dstOffset + bytes > dst.bytes) bad(`copying ${bytes} bytes from ${srcOffset} to ${dstOffset}`);
    if (bytes === 0 || this.collecting) return;
    this.endPass();
    this.pending().copyBufferToBuffer(src.buffer, srcOffset, dst.buffer, dstOffset, bytes);
    this.pendingUse.add(src.buffer).add(dst.buffer);
  }

  /** out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * weight, rows of dim `stride` apart (default dim) from element `offset`. out may be x. */
  rmsNorm(x: GpuTensor, weight: GpuTensor, rows: number, dim: number, eps: number, out: GpuTensor, stride = dim, offset = 0): void {
    checkCount('rows', rows);
    checkCount('dim', dim);
    checkCount('stride', stride);
    checkCount('offset', offset);
    if (stride < dim) bad(`rmsNorm: stride ${stride} is below dim ${dim}`);
    const end = rows > 0 ? (offset + (rows - 1) * stride + dim) * 4 : 0;
    if (x.bytes < end || out.bytes < end || weight.bytes < dim * 4) bad('rmsNorm: a tensor is too small');
    if (rows === 0) return;
    const params = this.uniform(new Uint32Array([rows, dim, new Uint32Array(new Float32Array([eps]).buffer)[0], stride, offset, 0, 0, 0]));
    const wide = dim >= NORM_WIDE_FROM;
    if (x.buffer === out.buffer) {
      const key = wide ? 'rmsnorm-wide-in-place' : 'rmsnorm-in-place';
      this.dispatch(key, this.pipeline(key, () => (wide ? RMS_NORM_WIDE_IN_PLACE : RMS_NORM_IN_PLACE)), [x.buffer, weight.buffer, params], rows);
    } else {
      const key = wide ? 'rmsnorm-wide' : 'rmsnorm';
      this.dispatch(key, this.pipeline(key, () => (wide ? RMS_NORM_WIDE : RMS_NORM)), [x.buffer, weight.buffer, params, out.buffer], rows);
    }
  }

  /**
   * Rotates x (nTokens x nHeads x headDim, or as `layout` says) in place, as the CPU's rope (normal
   * or neox): at `positions`, or by a table made once for the step with ropeTable and written to
   * the device (every layer of a step shares it).
   */
  rope(x: GpuTensor, nTokens: number, nHeads: number, headDim: number, positions: Int32Array | GpuTensor, p: RopeParams, layout?: RopeLayout): void {
    const { tokenStride = nHeads * headDim, headStride = headDim, offset = 0 } = layout ?? {};
    for (const [name, v] of [['nTokens', nTokens], ['nHeads', nHeads], ['tokenStride', tokenStride], ['headStride', headStride], ['offset', offset]] as const) checkCount(name, v);
    if (p.nRot % 2 !== 0 || p.nRot > headDim || p.nRot <= 0) bad(`nRot must be even and at most headDim (got ${p.nRot})`);
    if (nTokens === 0 || nHeads === 0) return;
    if (x.bytes < ((nTokens - 1) * tokenStride + (nHeads - 1) * headStride + offset + p.nRot) * 4) bad('rope: x is too small');
    let table: GPUBuffer;
    if (positions instanceof Int32Array) {
      if (positions.length < nTokens) bad('positions is too short');
      table = this.transientUpload(ropeTable(positions, nTokens, p));
    } else {
      if (positions.bytes < nTokens * p.nRot * 4) bad('rope: the table is too small');
      table = positions.buffer;
    }
    const params = this.uniform(new Uint32Array([nTokens, nHeads, tokenStride, p.nRot, p.mode === 'neox' ? 1 : 0, headStride, offset, 0]));
    this.dispatchThreads('rope', this.pipeline('rope', () => ROPE), [x.buffer, table, params], (nTokens * nHeads * p.nRot) / 2);
  }

  /**
   * The span of tokens [t0, t0 + nTokens) of a batch: its queries q (rows of nHead x headDim)
   * rotated in place, its keys k (rows of nKvHead x headDim) rotated and written with its values v
   * into rows [pos0, pos0 + nTokens) of F16 caches: rope of q, rope of k and storeKvF16 in one
   * dispatch, with the same results. `table` is the step's rope table (ropeTable, one row per token
   * of the batch). k is left as it was.
   */
  ropeStoreKvF16(q: GpuTensor, k: GpuTensor, v: GpuTensor, kCache: GpuTensor, vCache: GpuTensor, table: GpuTensor, s: RopeStoreShape, p: RopeParams): void {
    const { nTokens: n, nHead, nKvHead, headDim: d, pos0, t0, qOff = 0, kOff = 0, vOff = 0 } = s;
    for (const [name, x] of [['nTokens', n], ['nHead', nHead], ['nKvHead', nKvHead], ['headDim', d], ['pos0', pos0], ['t0', t0], ['qOff', qOff], ['kOff', kOff], ['vOff', vOff]] as const) checkCount(name, x);
    if (p.nRot % 2 !== 0 || p.nRot > d || p.nRot <= 0) bad(`nRot must be even and at most headDim (got ${p.nRot})`);
    const rowElems = nKvHead * d;
    if (rowElems % 2 !== 0) bad(`an F16 cache on the GPU needs rows of an even number of elements (got ${rowElems})`);
    if (n === 0) return;
    const end = t0 + n;
    if (q.bytes < (qOff + end * nHead * d) * 4 || k.bytes < (kOff + end * rowElems) * 4 || v.bytes < (vOff + end * rowElems) * 4) bad('ropeStoreKv: q, k or v is too small');
    if (table.bytes < end * p.nRot * 4) bad('ropeStoreKv: the table is too small');
    if (kCache.bytes < (pos0 + n) * rowElems * 2 || vCache.bytes < (pos0 + n) * rowElems * 2) bad('ropeStoreKv: a cache is too small');
    let binding: QkvBinding;
    let sources: GPUBuffer[];
    if (q.buffer === k.buffer && k.buffer === v.buffer) [binding, sources] = ['qkv', [q.buffer]];
    else if (q.buffer === k.buffer) [binding, sources] = ['qk', [q.buffer, v.buffer]];
    else if (q.buffer !== v.buffer) [binding, sources] = ['separate', [q.buffer, k.buffer, v.buffer]];
    else bad('ropeStoreKv: q and v in one tensor without k');
    const qPairs = (n * nHead * p.nRot) / 2;
    const kWords = (n * rowElems) / 2;
    const params = this.uniform(new Uint32Array([n, nHead, nKvHead, d, p.nRot, p.mode === 'neox' ? 1 : 0, pos0, t0, qPairs, kWords, qOff, kOff, vOff, 0, 0, 0]));
    const key = `rope-store-kv-${binding}`;
    this.dispatchThreads(key, this.pipeline(key, () => ropeStoreKvWgsl(binding)), [...sources, table.buffer, kCache.buffer, vCache.buffer, params], qPairs + 2 * kWords);
  }

  /** out[i] = silu(gate[i]) * up[i] for i < n. out may be gate or up. */
  swiglu(gate: GpuTensor, up: GpuTensor, n: number, out: GpuTensor): void {
    this.binary('swiglu', SWIGLU, SWIGLU_IN_PLACE, false, gate, up, n, out);
  }

  /** out[i] = gelu(gate[i]) * up[i] for i < n, gelu as llama.cpp's CPU takes it (Kernels.geglu). out may be gate or up. */
  geglu(gate: GpuTensor, up: GpuTensor, n: number, out: GpuTensor): void {
    this.binary('geglu', GEGLU, GEGLU_IN_PLACE, false, gate, up, n, out);
  }

  /** out[i] = a[i] + b[i] for i < n. out may be a or b. */
  add(a: GpuTensor, b: GpuTensor, n: number, out: GpuTensor): void {
    this.binary('add', ADD, ADD_IN_PLACE, true, a, b, n, out);
  }

  /**
   * Writes nTokens rows of rowElems f32 keys and values (from row srcRow of k and v) into rows
   * [pos0, pos0 + nTokens) of F16 caches.
   */
  storeKvF16(k: GpuTensor, v: GpuTensor, kCache: GpuTensor, vCache: GpuTensor, rowElems: number, pos0: number, nTokens: number, srcRow = 0): void {
    for (const [name, x] of [['rowElems', rowElems], ['pos0', pos0], ['nTokens', nTokens], ['srcRow', srcRow]] as const) checkCount(name, x);
    if (rowElems % 2 !== 0) bad(`an F16 cache on the GPU needs rows of an even number of elements (got ${rowElems})`);
    const n = nTokens * rowElems;
    if (k.bytes < (srcRow * rowElems + n) * 4 || v.bytes < (srcRow * rowElems + n) * 4) bad('storeKv: k or v is too small');
    if (kCache.bytes < (pos0 + nTokens) * rowElems * 2 || vCache.bytes < (pos0 + nTokens) * rowElems * 2) bad('storeKv: a cache is too small');
    if (n === 0) return;
    const params = this.uniform(new Uint32Array([n / 2, rowElems, pos0, srcRow * rowElems]));
    this.dispatchThreads('storekv', this.pipeline('storekv', () => STORE_KV_F16), [k.buffer, v.buffer, kCache.buffer, vCache.buffer, params], n / 2);
  }

  /**
   * Writes nTokens rows of rowElems f32 keys and values (from row srcRow of k and v) into rows
   * [pos0, pos0 + nTokens) of caches of `type`.
   */
  storeKv(type: GpuKvType, k: GpuTensor, v: GpuTensor, kCache: GpuTensor, vCache: GpuTensor, rowElems: number, pos0: number, nTokens: number, srcRow = 0): void {
    if (type === GgmlType.F16) return this.storeKvF16(k, v, kCache, vCache, rowElems, pos0, nTokens, srcRow);
    this.storeQ8(k, kCache, rowElems, pos0, nTokens, srcRow, [v, vCache]);
  }

  /** Writes nTokens rows of rowElems f32 (from row srcRow of x) into rows [pos0, pos0 + nTokens) of one cache of `type` (a key-only cache). */
  storeRows(type: GpuKvType, x: GpuTensor, cache: GpuTensor, rowElems: number, pos0: number, nTokens: number, srcRow = 0): void {
    if (type === GgmlType.F16) return this.storeF16(x, cache, rowElems, pos0, nTokens, srcRow);
    this.storeQ8(x, cache, rowElems, pos0, nTokens, srcRow);
  }

  /** Q8_0 rows (of an even number of blocks) from f32 rows, into one cache or (with `second`) two. */
  private storeQ8(x: GpuTensor, cache: GpuTensor, rowElems: number, pos0: number, nTokens: number, srcRow: number, second?: [GpuTensor, GpuTensor]): void {
    for (const [name, v] of [['rowElems', rowElems], ['pos0', pos0], ['nTokens', nTokens], ['srcRow', srcRow]] as const) checkCount(name, v);
    if (rowElems % 64 !== 0) bad(`a Q8_0 cache on the GPU needs rows of an even number of 32-element blocks (got ${rowElems} elements); use --kv-type f16`);
    const n = nTokens * rowElems;
    for (const [src, dst] of [[x, cache], ...(second ? [second] : [])]) {
      if (src.bytes < (srcRow * rowElems + n) * 4) bad('storeQ8: a source is too small');
      if (dst.bytes < gpuKvBytes(GgmlType.Q8_0, (pos0 + nTokens) * rowElems)) bad('storeQ8: a cache is too small');
    }
    if (n === 0) return;
    const params = this.uniform(new Uint32Array([n / 64, rowElems, pos0, srcRow * rowElems]));
    const key = second ? 'store-kv-q8' : 'store-q8';
    const buffers = second ? [x.buffer, cache.buffer, second[0].buffer, second[1].buffer, params] : [x.buffer, cache.buffer, params];
    this.dispatchThreads(key, this.pipeline(key, () => storeQ8Wgsl(second !== undefined)), buffers, n / 64);
  }

  /** Writes nTokens rows of rowElems f32 (from row srcRow of x) into rows [pos0, pos0 + nTokens) of one F16 cache. */
  storeF16(x: GpuTensor, cache: GpuTensor, rowElems: number, pos0: number, nTokens: number, srcRow = 0): void {
    for (const [name, v] of [['rowElems', rowElems], ['pos0', pos0], ['nTokens', nTokens], ['srcRow', srcRow]] as const) checkCount(name, v);
    if (rowElems % 2 !== 0) bad(`an F16 cache on the GPU needs rows of an even number of elements (got ${rowElems})`);
    const n = nTokens * rowElems;
    if (x.bytes < (srcRow * rowElems + n) * 4) bad('storeF16: x is too small');
    if (cache.bytes < (pos0 + nTokens) * rowElems * 2) bad('storeF16: the cache is too small');
    if (n === 0) return;
    const params = this.uniform(new Uint32Array([n / 2, rowElems, pos0, srcRow * rowElems]));
    this.dispatchThreads('store-f16', this.pipeline('store-f16', () => STORE_F16), [x.buffer, cache.buffer, params], n / 2);
  }

  /**
   * Causal GQA of p.nTokens query rows (from row `row` of q, written to the same rows of out) over
   * F16 caches holding positions [0, pos0 + nTokens). kCache and vCache may be one tensor (latent
   * attention's values are its keys' first elements).
   */
  attention(q: GpuTensor, kCache: GpuTensor, vCache: GpuTensor, p: GpuAttentionParams, out: GpuTensor, row = 0): void {
    const { nTokens, nHead, nKvHead, headDim: d, pos0 } = p;
    const { vDim = d, kRow = nKvHead * d } = p;
    const vRow = p.vRow ?? nKvHead * vDim;
    for (const [name, x] of [['nTokens', nTokens], ['nHead', nHead], ['nKvHead', nKvHead], ['pos0', pos0], ['row', row], ['kRow', kRow], ['vRow', vRow], ['vDim', vDim]] as const) checkCount(name, x);
    if (!(nKvHead > 0 && nHead % nKvHead === 0)) bad(`nHead ${nHead} must be a multiple of nKvHead ${nKvHead}`);
    if (!(d > 0 && d <= ATTENTION_MAX_KEY && d % 2 === 0)) bad(`the GPU attention takes even key head sizes up to ${ATTENTION_MAX_KEY} (got ${d})`);
    if (!(vDim > 0 && vDim <= ATTENTION_MAX_VALUE)) bad(`the GPU attention takes value head sizes up to ${ATTENTION_MAX_VALUE} (got ${vDim})`);
    if (kRow < nKvHead * d || kRow % 2 !== 0 || vRow < nKvHead * vDim) bad('attention: cache rows shorter than their heads (or odd)');
    if (q.bytes < (row + nTokens) * nHead * d * 4 || out.bytes < (row + nTokens) * nHead * vDim * 4) bad('attention: q or out is too small');
    const n = pos0 + nTokens;
    const type = p.kvType ?? GgmlType.F16;
    if (type === GgmlType.Q8_0 && [d, vDim, kRow, vRow].some((x) => x % 32 !== 0)) bad('attention over a Q8_0 cache takes heads and rows of whole 32-element blocks');
    if (kCache.bytes < gpuKvBytes(type, n * kRow) || vCache.bytes < gpuKvBytes(type, (n - 1) * vRow + nKvHead * vDim)) bad('attention: a cache is too small');
    if (p.sinks && p.sinks.bytes < nHead * 4) bad('attention: sinks is too small');
    if (nTokens === 0) return;
    const perDim = this.groupsPerDim;
    if (nHead > perDim) bad(`the GPU attention takes at most ${perDim} heads (got ${nHead})`);
    const key = type === GgmlType.Q8_0 ? 'attention-q8' : 'attention-f16';
    const pipeline = this.pipeline(key, () => (type === GgmlType.Q8_0 ? attentionWgsl(ATTENTION_Q8_READERS) : ATTENTION_F16));
    // A workgroup per head and token: a batch of more tokens than a grid dimension holds goes in
    // runs of rows (a run from row r sees the cache up to pos0 + r, as the whole batch's row r does).
    for (let r = 0; r < nTokens; r += perDim) {
      const m = Math.min(perDim, nTokens - r);
      const params = new Uint32Array([m, nHead, nKvHead, d, pos0 + r, p.window ?? 0, p.sinks ? 1 : 0, 0, (row + r) * nHead * d, kRow, vDim, vRow, (row + r) * nHead * vDim, 0, 0, 0]);
      new Float32Array(params.buffer).set([p.scale], 7);
      new Float32Array(params.buffer).set([p.softcap ?? 0], 13);
      const u = this.uniform(params);
      this.dispatchGrid(key, pipeline, [q.buffer, kCache.buffer, vCache.buffer, (p.sinks ?? this.empty).buffer, out.buffer, u], nHead, m);
    }
  }

  /**
   * Records a dispatch of a kernel defined outside this file (expert-kernels.ts): `bindings` in
   * binding order, a Uint32Array being the dispatch's parameters (a uniform); `workgroups` one per
   * item (spread over a second grid dimension past GRID_X), or an explicit [x, y] grid. The caller
   * checks sizes and offsets as this file's kernels do.
   */
  run(key: string, source: () => string, bindings: readonly (GpuTensor | Uint32Array)[], workgroups: number | readonly [number, number]): void {
    const buffers = bindings.map((b) => (b instanceof Uint32Array ? this.uniform(b) : b.buffer));
    const pipeline = this.pipeline(key, source);
    if (typeof workgroups === 'number') {
      if (workgroups > 0) this.dispatch(key, pipeline, buffers, workgroups);
    } else if (workgroups[0] > 0 && workgroups[1] > 0) this.dispatchGrid(key, pipeline, buffers, workgroups[0], workgroups[1]);
  }

  /**
   * As run, with the workgroup counts (x, y, z as three u32) read by the device from `args` at byte
   * `offset`, where an earlier kernel wrote them (a tensor made with `indirect`).
   */
  runIndirect(key: string, source: () => string, bindings: readonly (GpuTensor | Uint32Array)[], args: GpuTensor, offset: number): void {
    if (offset % 4 !== 0 || offset + 12 > args.bytes) bad(`indirect arguments at ${offset} of a tensor of ${args.bytes} bytes`);
    const buffers = bindings.map((b) => (b instanceof Uint32Array ? this.uniform(b) : b.buffer));
    const pipeline = this.pipeline(key, source);
    if (this.collecting) return;
    this.encode(key, pipeline, buffers, 0).dispatchWorkgroupsIndirect(args.buffer, offset);
    this.pendingUse.add(args.buffer);
  }

  private binary(name: string, wgsl: string, inPlace: string, commutes: boolean, a: GpuTensor, b: GpuTensor, n: number, out: GpuTensor): void {
    checkCount('n', n);
    if (a.bytes < n * 4 || b.bytes < n * 4 || out.bytes < n * 4) bad(`${name}: a tensor is shorter than ${n} f32`);
    if (n === 0) return;
    const params = this.uniform(new Uint32Array([n, 0, 0, 0]));
    if (out.buffer === a.buffer) {
      this.dispatchThreads(`${name}-in-place`, this.pipeline(`${name}-in-place`, () => inPlace), [a.buffer, b.buffer, params], n);
    } else if (out.buffer === b.buffer && commutes) {
      this.dispatchThreads(`${name}-in-place`, this.pipeline(`${name}-in-place`, () => inPlace), [b.buffer, a.buffer, params], n);
    } else if (out.buffer === b.buffer) {
      this.dispatchThreads(name, this.pipeline(name, () => wgsl), [a.buffer, this.copyOf(b, n * 4), params, out.buffer], n);
    } else {
      this.dispatchThreads(name, this.pipeline(name, () => wgsl), [a.buffer, b.buffer, params, out.buffer], n);
    }
  }

  private pending(): GPUCommandEncoder {
    this.encoder ??= this.device.createCommandEncoder();
    return this.encoder;
  }

  private endPass(): void {
    this.pass?.end();
    this.pass = undefined;
  }

  private pipeline(key: string, source: () => string): GPUComputePipeline {
    if (this.collecting) {
      this.collecting.set(key, source);
      // Never bound: nothing is recorded while collecting.
      return undefined as unknown as GPUComputePipeline;
    }
    let p = this.pipelines.get(key);
    if (!p) {
      const module = this.device.createShaderModule({ code: source() });
      p = this.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
      this.pipelines.set(key, p);
    }
    return p;
  }

  /** A slot of the parameter buffer holding `data` for the next dispatch (flushing first when full). */
  private uniform(data: Uint32Array): ParamSlot {
    if (data.byteLength > PARAM_SLOT_BYTES) throw new Error('dispatch parameters past their slot');
    if (this.collecting) return { slot: 0, bytes: 16 };
    if (this.paramSlots === PARAM_SLOTS) this.flush();
    const slot = this.paramSlots++;
    this.paramStaging.set(data, (slot * this.slotBytes) / 4);
    // Uniform structs are sized in whole 16-byte units.
    return { slot, bytes: Math.max(16, (data.byteLength + 15) & ~15) };
  }

  private transientUpload(data: Float32Array): GPUBuffer {
    if (this.collecting) return this.empty.buffer;
    const b = this.device.createBuffer({ size: Math.max(16, data.byteLength), usage: GPUBufferUsage.STORAGE, mappedAtCreation: true });
    new Float32Array(b.getMappedRange()).set(data);
    b.unmap();
    this.keepUntilFlush(b);
    return b;
  }

  /** A copy of t's first `bytes` (for kernels whose input and output may be the same tensor). */
  private copyOf(t: GpuTensor, bytes: number): GPUBuffer {
    if (this.collecting) return t.buffer;
    const size = (bytes + 3) & ~3;
    const b = this.device.createBuffer({ size: Math.max(16, size), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
    this.endPass();
    this.pending().copyBufferToBuffer(t.buffer, 0, b, 0, size);
    this.pendingUse.add(t.buffer);
    this.keepUntilFlush(b);
    return b;
  }

  private keepUntilFlush(b: GPUBuffer): void {
    this.transient.push(b);
    this.transientSet.add(b);
  }

  /** The bind group of these buffers and parameter slot, from the cache unless a buffer is made for this call only. */
  private bind(pipeline: GPUComputePipeline, buffers: (GPUBuffer | ParamSlot)[]): GPUBindGroup {
    const keys = this.bindingKeys;
    keys.length = buffers.length;
    let cacheable = true;
    for (let i = 0; i < buffers.length; i++) {
      const b = buffers[i];
      if (b instanceof GPUBuffer) {
        keys[i] = b;
        if (this.transientSet.has(b)) cacheable = false;
        this.pendingUse.add(b);
      } else keys[i] = b.slot * PARAM_SLOT_KEY + b.bytes;
    }
    // Made only when a group is made: most dispatches find theirs in the cache.
    const make = () =>
      this.device.createBindGroup({
        layout: pipeline.getBindGroupLayout(0),
        entries: buffers.map((b, binding) =>
          b instanceof GPUBuffer ? { binding, resource: { buffer: b } } : { binding, resource: { buffer: this.params, offset: b.slot * this.slotBytes, size: b.bytes } },
        ),
      });
    return cacheable ? this.bindGroups.get(pipeline, keys, make) : make();
  }

  /**
   * The pass of one dispatch with its pipeline and bind group set, counted: the open pass, or while
   * profiling a pass of its own that times it (bytes: weights it reads, for the profile).
   */
  private encode(key: string, pipeline: GPUComputePipeline, buffers: (GPUBuffer | ParamSlot)[], bytes: number): GPUComputePassEncoder {
    const group = this.bind(pipeline, buffers);
    if (this.profiler) {
      this.endPass();
      this.pass = this.pending().beginComputePass({ timestampWrites: this.profiler.next(key, bytes) });
    }
    const pass = (this.pass ??= this.pending().beginComputePass());
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group);
    this.dispatchCount++;
    this.pendingDispatches++;
    return pass;
  }

  private dispatchGrid(key: string, pipeline: GPUComputePipeline, buffers: (GPUBuffer | ParamSlot)[], x: number, y: number, bytes = 0): void {
    if (this.collecting) return;
    // Past the limit the device refuses the whole submission, and only says so asynchronously.
    const perDim = this.groupsPerDim;
    if (x > perDim || y > perDim) bad(`${key}: a grid of ${x} x ${y} workgroups is past the GPU's ${perDim} per dimension`);
    this.encode(key, pipeline, buffers, bytes).dispatchWorkgroups(x, y);
  }

  /** One workgroup per item (a row), items past GRID_X on the second grid dimension (bytes: weights read, for profiles). */
  private dispatch(key: string, pipeline: GPUComputePipeline, buffers: (GPUBuffer | ParamSlot)[], items: number, bytes = 0): void {
    this.dispatchGrid(key, pipeline, buffers, Math.min(items, GRID_X), Math.ceil(items / GRID_X), bytes);
  }

  /** One thread per item, WG to a workgroup. */
  private dispatchThreads(key: string, pipeline: GPUComputePipeline, buffers: (GPUBuffer | ParamSlot)[], items: number): void {
    this.dispatch(key, pipeline, buffers, Math.ceil(items / WG));
  }
}
