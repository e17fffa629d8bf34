/**
 * The binding to cairn's native kernel library (build/Release/cairn_native.node): its raw typing,
 * the loader, and `NativeKernels`, the default `Kernels` implementation.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { GgmlType } from '../gguf/ggml-types.js';
import { CairnError, type CairnErrorCode } from '../util/errors.js';
import type { AttentionParams, AttentionSpan, ExpertBatch, ExpertInput, Kernels, KvType, RopeParams, WeightMatrix } from './api.js';
import { hugePagesForTheAsking } from './huge-pages.js';

/** What the library reports about the CPU and itself. */
export interface CpuInfo {
  /** Instruction-set level the kernels use now (`scalar`, `avx2`, `avx512`, `amx`: AVX-512 with AMX tiles for batches, or `neon`). */
  readonly isa: string;
  /** Best level this CPU supports. */
  readonly detectedIsa: string;
  /** Kernel threads, the calling thread included. */
  readonly threads: number;
  readonly physicalCores: number;
  /** Usable CPU features (present and enabled by the OS), e.g. `avx2`, `avx512vnni`. */
  readonly features: readonly string[];
  /** Levels that can run here, lowest first; `forceIsa` accepts any of them. */
  readonly availableIsas: readonly string[];
}

/** An open file mapping inside the native library; views of it are made with `mapRange`. */
export interface NativeMapHandle {
  readonly size: number;
}

/** The functions the native addon exports (argument checks happen on the native side). */
export interface NativeAddon {
  cpuInfo(): CpuInfo;
  setThreads(n: number): void;
  forceIsa(isa: string | null): void;
  residentBytes(): number;
  readBandwidth(bytes?: number, runs?: number): number;
  poolRest(): void;
  evictFile(path: string): boolean;
  mapOpen(path: string): NativeMapHandle;
  mapRange(handle: NativeMapHandle, offset: number, length: number): ArrayBuffer;
  mapRelease(handle: NativeMapHandle): void;
  mapLargeBytes(handle: NativeMapHandle): number;
  mapDropRange(handle: NativeMapHandle, offset: number, length: number): boolean;
  mapUnmapView(handle: NativeMapHandle, view: Uint8Array): boolean;
  mapFile(path: string): { buffer: ArrayBuffer; size: number };
  adviseWillNeed(bytes: ArrayBuffer | ArrayBufferView, populate?: boolean): boolean;
  populateWrite?(bytes: ArrayBuffer | ArrayBufferView): boolean;
  rmsNorm(x: Float32Array, weight: Float32Array, rows: number, dim: number, eps: number, out: Float32Array): void;
  rope(x: Float32Array, nTokens: number, nHeads: number, headDim: number, positions: Int32Array, p: RopeParams): void;
  softmax(x: Float32Array, rows: number, cols: number): void;
  logSumExp(x: Float32Array, n: number): number;
  swiglu(gate: Float32Array, up: Float32Array, n: number, out: Float32Array): void;
  geglu(gate: Float32Array, up: Float32Array, n: number, out: Float32Array): void;
  swigluOai(gate: Float32Array, up: Float32Array, n: number, alpha: number, limit: number, out: Float32Array): void;
  add(a: Float32Array, b: Float32Array, n: number, out: Float32Array): void;
  storeKv(
    k: Float32Array,
    v: Float32Array,
    kCache: Uint8Array,
    vCache: Uint8Array,
    kvType: KvType,
    rowElems: number,
    pos0: number,
    nTokens: number,
    nKvHead: number,
    kvTiles?: boolean,
  ): void;
  attention(q: Float32Array, kCache: Uint8Array, vCache: Uint8Array, p: AttentionParams, out: Float32Array): void;
  kvTilesPreferred?(): boolean;
  adviseHuge?(buffer: ArrayBuffer): boolean;
  attentionSpans(
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    kCaches: Uint8Array[],
    vCaches: Uint8Array[],
    rows: Int32Array,
    p: AttentionParams,
    out: Float32Array,
  ): void;
  /** Registered by the quantization part of the library once it is built in. */
  matmul?(w: Uint8Array, wtype: GgmlType, rows: number, cols: number, x: Float32Array, n: number, y: Float32Array, packed?: Uint8Array): void;
  packedBytes?(wtype: GgmlType, rows: number, cols: number): number;
  packArena?(bytes: number): Uint8Array;
  packInto?(w: Uint8Array, wtype: GgmlType, rows: number, cols: number, dst: Uint8Array): void;
  getRows?(w: Uint8Array, wtype: GgmlType, cols: number, ids: Int32Array, out: Float32Array, packed?: Uint8Array): void;
  dequantize?(type: GgmlType, src: Uint8Array, dst: Float32Array, n: number): void;
  quantize?(type: GgmlType, src: Float32Array, dst: Uint8Array, n: number): void;
  /** The Mixture-of-Experts kernels; a batch is a Uint8Array whose layout the library owns. */
  expertBatchBytes(wtype: GgmlType, nExperts: number, nUsed: number, cols: number, maxTokens: number): number;
  expertBatchInit(batch: Uint8Array, wtype: GgmlType, nExperts: number, nUsed: number, cols: number, maxTokens: number): void;
  prepareExperts(batch: Uint8Array, wtype: GgmlType, x: Float32Array, nTokens: number, ids: Int32Array, perSlot: boolean): void;
  expertMatmul(batch: Uint8Array, w: Uint8Array, wtype: GgmlType, rows: number, y: Float32Array, bias?: Float32Array, packed?: Uint8Array): void;
  moeCombine(y: Float32Array, weights: Float32Array, nTokens: number, nUsed: number, dim: number, out: Float32Array): void;
}

const PACKAGE_NAME = 'cairn-llm';

/** Smallest buffer allocateZeroed puts on huge pages. */
const LARGE_BUFFER_MIN_BYTES = 8 * 2 ** 20;

/** The package root: the nearest folder above this module whose package.json is cairn's. */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      try {
        if ((JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown }).name === PACKAGE_NAME) return dir;
      } catch {
        // an unreadable package.json further down is not ours: keep climbing
      }
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cannot find the ${PACKAGE_NAME} package root above ${import.meta.url}`);
    dir = parent;
  }
}

/** Where the built addon lives. */
export function nativeAddonPath(): string {
  return join(packageRoot(), 'build', 'Release', 'cairn_native.node');
}

let cached: NativeAddon | undefined;
let loadError: CairnError | undefined;

/** Loads the addon once; throws CairnError NATIVE_UNAVAILABLE, saying how to build it, when missing. */
export function loadNative(): NativeAddon {
  if (cached) return cached;
  if (loadError) throw loadError;
  let path = 'build/Release/cairn_native.node';
  try {
    path = nativeAddonPath();
    cached = createRequire(import.meta.url)(path) as NativeAddon;
    return cached;
  } catch (err) {
    loadError = new CairnError(
      'NATIVE_UNAVAILABLE',
      `cairn's native kernel library could not be loaded from ${path} (${(err as Error).message}). ` +
        'Build it with `npm install` or `npm run build:native` (needs a C compiler and Python for node-gyp).',
      { cause: err },
    );
    throw loadError;
  }
}

/** True when the native library loads on this machine. */
export function isNativeAvailable(): boolean {
  try {
    loadNative();
    return true;
  } catch {
    return false;
  }
}

/**
 * log(sum(exp(x))) of one row by the native library, on the calling thread: exp(x - max) in f32
 * summed in f64 (as softmax). NaN when the library is not built, or when the row holds a NaN or
 * an infinite maximum, which the caller's exact path handles (src/sampling/logprobs.ts).
 */
export function nativeLogSumExp(x: Float32Array): number {
  if (x.length === 0 || !isNativeAvailable()) return NaN;
  return loadNative().logSumExp(x, x.length);
}

const NATIVE_CODES: ReadonlySet<string> = new Set<CairnErrorCode>(['BAD_ARGUMENT', 'FILE_NOT_FOUND']);

/** Re-raises an error thrown by the addon as a CairnError with the addon's code. */
export function asCairnError(err: unknown): unknown {
  if (err instanceof Error && !(err instanceof CairnError)) {
    const code = (err as Error & { code?: unknown }).code;
    if (typeof code === 'string' && NATIVE_CODES.has(code)) return new CairnError(code as CairnErrorCode, err.message);
  }
  return err;
}

/** Runs one addon call, turning its errors into CairnErrors. */
function call<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw asCairnError(err);
  }
}

/** The library's view of the CPU and its current settings. */
export function cpuInfo(): CpuInfo {
  return loadNative().cpuInfo();
}

/** Makes the kernels use `isa` (one of `cpuInfo().availableIsas`), or the detected level for null. */
export function forceIsa(isa: string | null): void {
  const addon = loadNative();
  call(() => addon.forceIsa(isa));
}

/** Maps a whole file read-only; the buffer keeps the mapping alive for as long as it is reachable. */
export function mapFile(path: string): { buffer: ArrayBuffer; size: number } {
  const addon = loadNative();
  return call(() => addon.mapFile(path));
}

/**
 * Tells the kernel threads that poll for work to sleep now: call it when this process hands its
 * work to another one (a pipeline stage), so its threads do not hold the CPU the next one needs.
 */
export function restKernelThreads(): void {
  if (isNativeAvailable()) loadNative().poolRest();
}

/** Drops a file's pages from the OS page cache, so the next read comes from disk (cold-start benchmarks). */
export function evictFile(path: string): boolean {
  const addon = loadNative();
  return call(() => addon.evictFile(path));
}

/** Best memory read rate of this machine in bytes/s, on the kernel threads (a buffer of `bytes`). */
export function readBandwidth(bytes = 512 << 20, runs = 5): number {
  const addon = loadNative();
  return call(() => addon.readBandwidth(bytes, runs));
}

/**
 * Asks the OS to read the pages under `bytes` ahead of use; false when it declined. With
 * `populate`, the pages are faulted in before it returns (one system call, not a fault per page).
 */
export function adviseWillNeed(bytes: ArrayBuffer | ArrayBufferView, populate = false): boolean {
  const addon = loadNative();
  return call(() => addon.adviseWillNeed(bytes, populate));
}

/**
 * Faults the pages under `bytes` in now, writable, leaving every byte as it was: memory that the
 * first request would otherwise wait on (on a virtual machine fresh memory faults in at ~1 GB/s).
 * False where the OS cannot (Linux before 5.14, other systems) or would not (out of memory): the
 * pages then fault in on use.
 */
export function populateWrite(bytes: ArrayBuffer | ArrayBufferView): boolean {
  const addon = loadNative();
  return addon.populateWrite ? call(() => addon.populateWrite!(bytes)) : false;
}

function missing(what: string): never {
  throw new CairnError('NATIVE_UNAVAILABLE', `${what} is not available in this build of the native library`);
}

/** An expert batch of the native library: its buffer (allocated once) and shape. */
export class NativeExpertBatch implements ExpertBatch {
  nTokens = 0;
  /** The library's view of the batch; only the library reads or writes it. */
  readonly buffer: Uint8Array;

  constructor(
    addon: NativeAddon,
    wtype: GgmlType,
    readonly nExperts: number,
    readonly nUsed: number,
    readonly cols: number,
    readonly maxTokens: number,
  ) {
    this.buffer = new Uint8Array(call(() => addon.expertBatchBytes(wtype, nExperts, nUsed, cols, maxTokens)));
    call(() => addon.expertBatchInit(this.buffer, wtype, nExperts, nUsed, cols, maxTokens));
  }
}

function nativeBatch(batch: ExpertBatch): NativeExpertBatch {
  if (!(batch instanceof NativeExpertBatch)) throw new CairnError('BAD_ARGUMENT', 'the expert batch was made by other kernels than these');
  return batch;
}

/**
 * The kernels of the native library, on its thread pool. Methods call the addon directly (no
 * closure per call: they run per layer and token) and turn its errors into CairnErrors.
 */
export class NativeKernels implements Kernels {
  private readonly addon: NativeAddon;
  /** Whether the OS gives huge pages for the asking (read on the first large allocation). */
  private hugePages?: boolean;

  constructor(addon: NativeAddon = loadNative()) {
    this.addon = addon;
  }

  /** `native-<isa>`, following forceIsa. */
  get name(): string {
    return `native-${this.addon.cpuInfo().isa}`;
  }

  matmul(w: Uint8Array, wtype: GgmlType, rows: number, cols: number, x: Float32Array, n: number, y: Float32Array): void {
    const fn = this.addon.matmul ?? missing('matmul');
    try {
      fn(w, wtype, rows, cols, x, n, y, this.packed.get(w));
    } catch (err) {
      throw asCairnError(err);
    }
  }

  /**
   * Packed copies of weights (packWeights), by the view that products and row lookups pass: a
   * WeakMap, so a copy lives as long as its weights' view.
   */
  private readonly packed = new WeakMap<Uint8Array, Uint8Array>();

  packWeights(matrices: readonly WeightMatrix[]): number[] {
    const a = this.addon;
    if (!a.packedBytes || !a.packArena || !a.packInto) return matrices.map(() => 0);
    try {
      // One allocation for all of them (each its own would round up to a huge page).
      const sizes = matrices.map((m) => (this.packed.has(m.data) ? 0 : a.packedBytes!(m.type, m.rows, m.cols)));
      const total = sizes.reduce((x, y) => x + y, 0);
      if (total === 0) return sizes;
      const arena = a.packArena(total);
      let at = 0;
      matrices.forEach((m, i) => {
        if (sizes[i] === 0) return;
        const dst = arena.subarray(at, at + sizes[i]);
        a.packInto!(m.data, m.type, m.rows, m.cols, dst);
        this.packed.set(m.data, dst);
        at += sizes[i];
      });
      return sizes;
    } catch (err) {
      throw asCairnError(err);
    }
  }

  createExpertBatch(wtype: GgmlType, nExperts: number, nUsed: number, cols: number, maxTokens: number): ExpertBatch {
    return new NativeExpertBatch(this.addon, wtype, nExperts, nUsed, cols, maxTokens);
  }

  prepareExperts(batch: ExpertBatch, wtype: GgmlType, x: Float32Array, nTokens: number, ids: Int32Array, input: ExpertInput): void {
    const b = nativeBatch(batch);
    if (input !== 'token' && input !== 'slot') throw new CairnError('BAD_ARGUMENT', `input must be 'token' or 'slot', got '${String(input)}'`);
    try {
      this.addon.prepareExperts(b.buffer, wtype, x, nTokens, ids, input === 'slot');
    } catch (err) {
      throw asCairnError(err);
    }
    b.nTokens = nTokens;
  }

  expertMatmul(batch: ExpertBatch, w: Uint8Array, wtype: GgmlType, rows: number, y: Float32Array, bias?: Float32Array): void {
    try {
      this.addon.expertMatmul(nativeBatch(batch).buffer, w, wtype, rows, y, bias, this.packed.get(w));
    } catch (err) {
      throw asCairnError(err);
    }
  }

  moeCombine(y: Float32Array, weights: Float32Array, nTokens: number, nUsed: number, dim: number, out: Float32Array): void {
    try {
      this.addon.moeCombine(y, weights, nTokens, nUsed, dim, out);
    } catch (err) {
      throw asCairnError(err);
    }
  }

  getRows(w: Uint8Array, wtype: GgmlType, cols: number, ids: Int32Array, out: Float32Array): void {
    const fn = this.addon.getRows ?? missing('getRows');
    try {
      fn(w, wtype, cols, ids, out, this.packed.get(w));
    } catch (err) {
      throw asCairnError(err);
    }
  }

  dequantize(type: GgmlType, src: Uint8Array, dst: Float32Array, n: number): void {
    const fn = this.addon.dequantize ?? missing('dequantize');
    try {
      fn(type, src, dst, n);
    } catch (err) {
      throw asCairnError(err);
    }
  }

  quantize(type: GgmlType, src: Float32Array, dst: Uint8Array, n: number): void {
    const fn = this.addon.quantize ?? missing('quantize');
    try {
      fn(type, src, dst, n);
    } catch (err) {
      throw asCairnError(err);
    }
  }

  rmsNorm(x: Float32Array, weight: Float32Array, rows: number, dim: number, eps: number, out: Float32Array): void {
    try {
      this.addon.rmsNorm(x, weight, rows, dim, eps, out);
    } catch (err) {
      throw asCairnError(err);
    }
  }

  rope(x: Float32Array, nTokens: number, nHeads: number, headDim: number, positions: Int32Array, p: RopeParams): void {
    try {
      this.addon.rope(x, nTokens, nHeads, headDim, positions, p);
    } catch (err) {
      throw asCairnError(err);
    }
  }

  softmax(x: Float32Array, rows: number, cols: number): void {
    try {
      this.addon.softmax(x, rows, cols);
    } catch (err) {
      throw asCairnError(err);
    }
  }

  swiglu(gate: Float32Array, up: Float32Array, n: number, out: Float32Array): void {
    try {
      this.addon.swiglu(gate, up, n, out);
    } catch (err) {
      throw asCairnError(err);
    }
  }

  geglu(gate: Float32Array, up: Float32Array, n: number, out: Float32Array): void {
    try {
      this.addon.geglu(gate, up, n, out);
    } catch (err) {
      throw asCairnError(err);
    }
  }

  swigluOai(gate: Float32Array, up: Float32Array, n: number, alpha: number, limit: number, out: Float32Array): void {
    try {
      this.addon.swigluOai(gate, up, n, alpha, limit, out);
    } catch (err) {
      throw asCairnError(err);
    }
  }

  add(a: Float32Array, b: Float32Array, n: number, out: Float32Array): void {
    try {
      this.addon.add(a, b, n, out);
    } catch (err) {
      throw asCairnError(err);
    }
  }

  storeKv(
    k: Float32Array,
    v: Float32Array,
    kCache: Uint8Array,
    vCache: Uint8Array,
    kvType: KvType,
    rowElems: number,
    pos0: number,
    nTokens: number,
    nKvHead: number,
    kvTiles?: boolean,
  ): void {
    try {
      this.addon.storeKv(k, v, kCache, vCache, kvType, rowElems, pos0, nTokens, nKvHead, kvTiles);
    } catch (err) {
      throw asCairnError(err);
    }
  }

  /**
   * True on the AVX-512 level (its VNNI kernels read 16 positions' quants from a tile as they lie),
   * unless CAIRN_KV_TILES=0 keeps rows (to compare the two).
   */
  kvTilesPreferred(): boolean {
    if (process.env.CAIRN_KV_TILES === '0') return false;
    return this.addon.kvTilesPreferred?.() ?? false;
  }

  /**
   * An ordinary zeroed ArrayBuffer (V8 frees and counts it as usual) whose whole 2 MiB pages are
   * advised to be huge before anything touches them, so that its first touches fault in 2 MiB at a
   * time; from 8 MiB up (below that the buffer's edges, on small pages either way, are much of
   * it), and only where the OS gives huge pages for the asking (elsewhere undefined: an ordinary
   * buffer is the same memory). CAIRN_LARGE_PAGES=0 leaves every buffer as it is.
   */
  allocateZeroed(bytes: number): ArrayBuffer | undefined {
    if (!Number.isSafeInteger(bytes) || bytes < LARGE_BUFFER_MIN_BYTES || process.env.CAIRN_LARGE_PAGES === '0' || !this.addon.adviseHuge) {
      return undefined;
    }
    if (!(this.hugePages ??= hugePagesForTheAsking())) return undefined;
    const buffer = new ArrayBuffer(bytes);
    return this.addon.adviseHuge(buffer) ? buffer : undefined;
  }

  populateWrite(bytes: ArrayBuffer): boolean {
    return populateWrite(bytes);
  }

  attention(q: Float32Array, kCache: Uint8Array, vCache: Uint8Array, p: AttentionParams, out: Float32Array): void {
    try {
      this.addon.attention(q, kCache, vCache, p, out);
    } catch (err) {
      throw asCairnError(err);
    }
  }

  attentionSpans(q: Float32Array, k: Float32Array, v: Float32Array, spans: readonly AttentionSpan[], p: AttentionParams, out: Float32Array): void {
    // Checked here: the library takes whole int32s, which a fraction or a huge number is not.
    const whole = (i: number, name: string, x: number): number => {
      if (!Number.isInteger(x) || x < 0 || x > 0x7fffffff) throw new CairnError('BAD_ARGUMENT', `span ${i}: ${name} must be an integer from 0 (got ${x})`);
      return x;
    };
    const rows = new Int32Array(3 * spans.length);
    for (let i = 0; i < spans.length; i++) {
      rows[3 * i] = whole(i, 'start', spans[i].start);
      rows[3 * i + 1] = whole(i, 'nTokens', spans[i].nTokens);
      rows[3 * i + 2] = whole(i, 'pos0', spans[i].pos0);
    }
    try {
      this.addon.attentionSpans(q, k, v, spans.map((s) => s.kCache), spans.map((s) => s.vCache), rows, p, out);
    } catch (err) {
      throw asCairnError(err);
    }
  }

  setThreads(n: number): void {
    try {
      this.addon.setThreads(n);
    } catch (err) {
      throw asCairnError(err);
    }
  }
}
