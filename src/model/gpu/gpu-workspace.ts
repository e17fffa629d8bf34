/**
 * A GPU shard's device memory besides its weights: named f32 activation tensors sized once for
 * `maxBatch` tokens and shared by every block that asks for the same name (as the CPU Workspace),
 * and the weight uploads, each matrix cut into row ranges no larger than one binding may see.
 */
import { CairnError } from '../../util/errors.js';
import { ggmlRowBytes, ggmlTypeName, type GgmlType } from '../../gguf/ggml-types.js';
import type { GpuTensor, WebGpuKernels } from '../../kernels/webgpu/gpu-kernels.js';
import { gpuWeightFormat } from '../../kernels/webgpu/wgsl-weights.js';
import type { GpuBankPart } from '../../kernels/webgpu/expert-kernels.js';
import type { ExpertBank, Matrix } from '../tensor-source.js';

/** A named activation tensor; `t` is set when the workspace allocates. */
export interface GpuScratch {
  readonly name: string;
  readonly perToken: number;
  t: GpuTensor;
}

/** A weight matrix on the device: row ranges, each its own tensor. */
export interface GpuMatrix {
  readonly name: string;
  readonly type: GgmlType;
  readonly rows: number;
  readonly cols: number;
  readonly parts: readonly { readonly t: GpuTensor; readonly rowStart: number; readonly rows: number }[];
}

/** A bank of experts (or of per-head matrices) on the device: runs of whole experts, each its own tensor. */
export interface GpuBank {
  readonly name: string;
  readonly type: GgmlType;
  readonly rows: number;
  readonly cols: number;
  readonly count: number;
  readonly parts: readonly GpuBankPart[];
}

/** The activation tensors and uploads of one GPU shard. */
export class GpuWorkspace {
  private readonly scratch = new Map<string, GpuScratch[]>();
  /** Per name, the most floats a token needs and the most bytes whatever the batch (made at allocate, for the batch then). */
  private readonly sizes = new Map<string, { perToken: number; fixed: number }>();
  private readonly indirect = new Set<string>();
  private allocated = false;
  /** Every tensor this workspace made, released together. */
  private readonly owned: GpuTensor[] = [];
  /** Bytes uploaded (weights) and allocated (activations). */
  weightBytes = 0;
  activationBytes = 0;

  constructor(
    readonly gpu: WebGpuKernels,
    /** Tokens a step takes at most; fitBatch may lower it before allocate. */
    public maxBatch: number,
    /** Positions each sequence may reach (as Workspace.ctx: for weights that depend on it). */
    readonly ctx = 0,
  ) {}

  /** Reserves `perToken` floats per batch token under `name` (shared with every block using that name). */
  buffer(name: string, perToken: number): GpuScratch {
    return this.reserve(name, perToken, 0);
  }

  /**
   * Reserves `elems` words under `name`, whatever the batch (per-step tables of a layer); `indirect`:
   * also workgroup counts a kernel writes for a later dispatch.
   */
  fixed(name: string, elems: number, opts: { indirect?: boolean } = {}): GpuScratch {
    if (opts.indirect) this.indirect.add(name);
    return this.reserve(name, 0, elems * 4);
  }

  /**
   * Lowers maxBatch (before allocate) to the most tokens whose activations one binding holds: a
   * large vocabulary's logits (nVocab floats a token) outgrow a 128 MiB binding at 512 tokens, and
   * a step of fewer tokens runs the same model. Returns the batch (at least 1: allocate then refuses what does not fit).
   */
  fitBatch(): number {
    if (this.allocated) throw new Error('GPU workspace batch fitted after allocation');
    for (const { perToken } of this.sizes.values()) {
      // Not below one token: allocate then says what does not fit.
      if (perToken > 0) this.maxBatch = Math.max(1, Math.min(this.maxBatch, Math.floor(this.gpu.gpu.maxBinding / (perToken * 4))));
    }
    return this.maxBatch;
  }

  private reserve(name: string, perToken: number, bytes: number): GpuScratch {
    if (this.allocated) throw new Error(`GPU workspace buffer "${name}" asked for after allocation`);
    const h: GpuScratch = { name, perToken, t: undefined as unknown as GpuTensor };
    const list = this.scratch.get(name) ?? [];
    list.push(h);
    this.scratch.set(name, list);
    const size = this.sizes.get(name);
    this.sizes.set(name, { perToken: Math.max(size?.perToken ?? 0, perToken), fixed: Math.max(size?.fixed ?? 0, bytes) });
    return h;
  }

  /** Allocates every named tensor once; blocks' handles point at them from now on. */
  allocate(): void {
    if (this.allocated) return;
    this.allocated = true;
    for (const [name, list] of this.scratch) {
      const size = this.sizes.get(name)!;
      const bytes = Math.max(size.fixed, size.perToken * this.maxBatch * 4);
      if (bytes > this.gpu.gpu.maxBinding) {
        throw new CairnError('MODEL_UNSUPPORTED', `activations of ${this.maxBatch} tokens (${name}) are larger than the GPU lets one kernel see (${this.gpu.gpu.maxBinding} bytes); run this model on the CPU (--backend cpu)`);
      }
      const t = this.own(this.gpu.tensor(bytes, { indirect: this.indirect.has(name) }));
      this.activationBytes += bytes;
      for (const h of list) h.t = t;
    }
  }

  /** An f32 vector (a norm's weights, a bias) on the device. */
  vector(v: Float32Array): GpuTensor {
    return this.upload(v);
  }

  /** Constant data on the device (counted with the weights). */
  upload(data: ArrayBufferView): GpuTensor {
    this.weightBytes += data.byteLength;
    return this.own(this.gpu.upload(data));
  }

  /** Frees every tensor of the workspace on the device; its blocks must not run afterwards. */
  release(): void {
    for (const t of this.owned.splice(0)) this.gpu.free(t);
  }

  /** Rows of rowBytes that one binding holds, in whole groups of `unit` rows (at least one group). */
  private rowsPerBinding(rowBytes: number, unit = 1): number {
    return unit * Math.max(1, Math.floor((this.gpu.gpu.maxBinding - 8) / (unit * rowBytes)));
  }

  private own(t: GpuTensor): GpuTensor {
    this.owned.push(t);
    return t;
  }

  /** A weight matrix in its file layout on the device, cut into row ranges that fit one binding. */
  matrix(m: Matrix): GpuMatrix {
    if (!gpuWeightFormat(m.type)) {
      throw new CairnError('MODEL_UNSUPPORTED', `tensor ${m.name} is ${ggmlTypeName(m.type)}, a type the GPU kernels do not read yet; run this model on the CPU (--backend cpu)`);
    }
    const rowBytes = ggmlRowBytes(m.type, m.cols);
    const perPart = this.rowsPerBinding(rowBytes);
    const parts = [];
    for (let r = 0; r < m.rows; r += perPart) {
      const rows = Math.min(perPart, m.rows - r);
      parts.push({ t: this.own(this.gpu.upload(m.data.subarray(r * rowBytes, (r + rows) * rowBytes))), rowStart: r, rows });
    }
    this.weightBytes += m.data.byteLength;
    return { name: m.name, type: m.type, rows: m.rows, cols: m.cols, parts };
  }

  /**
   * A SwiGLU FFN's gate and up matrices as one, their rows interleaved (gate 0, up 0, gate 1, ...),
   * each row still in its file layout, for the product that writes silu(gate) x up in one dispatch
   * (WebGpuKernels.matmul's swiglu); undefined where that product cannot take them (their types or
   * shapes differ, or the item product does not read the type).
   */
  pairedMatrix(gate: Matrix, up: Matrix): GpuMatrix | undefined {
    if (gate.type !== up.type || gate.rows !== up.rows || gate.cols !== up.cols || !this.gpu.pairedSwiglu(gate.type, gate.cols)) return undefined;
    const rowBytes = ggmlRowBytes(gate.type, gate.cols);
    const perPart = this.rowsPerBinding(rowBytes, 2);
    const parts = [];
    for (let r = 0; r < 2 * gate.rows; r += perPart) {
      const rows = Math.min(perPart, 2 * gate.rows - r);
      const host = new Uint8Array(rows * rowBytes);
      for (let j = 0; j < rows; j += 2) {
        const src = (r + j) / 2;
        host.set(gate.data.subarray(src * rowBytes, (src + 1) * rowBytes), j * rowBytes);
        host.set(up.data.subarray(src * rowBytes, (src + 1) * rowBytes), (j + 1) * rowBytes);
      }
      parts.push({ t: this.own(this.gpu.upload(host)), rowStart: r, rows });
    }
    this.weightBytes += gate.data.byteLength + up.data.byteLength;
    return { name: `${gate.name}+${up.name}`, type: gate.type, rows: 2 * gate.rows, cols: gate.cols, parts };
  }

  /**
   * Matrices of one type and row length as one, their rows one after the other (a layer's Q, K and
   * V projections, for one product of a decode token), in one tensor; undefined where they differ
   * or do not fit one binding together.
   */
  stackedMatrix(ms: readonly Matrix[]): GpuMatrix | undefined {
    const [first] = ms;
    if (!first || ms.some((m) => m.type !== first.type || m.cols !== first.cols) || !gpuWeightFormat(first.type)) return undefined;
    const rowBytes = ggmlRowBytes(first.type, first.cols);
    const rows = ms.reduce((a, m) => a + m.rows, 0);
    if (rows > this.rowsPerBinding(rowBytes)) return undefined;
    const host = new Uint8Array(rows * rowBytes);
    let at = 0;
    for (const m of ms) {
      host.set(m.data.subarray(0, m.rows * rowBytes), at);
      at += m.rows * rowBytes;
    }
    return { name: ms.map((m) => m.name).join('+'), type: first.type, rows, cols: first.cols, parts: [{ t: this.upload(host), rowStart: 0, rows }] };
  }

  /**
   * A bank of experts in its file layout on the device, cut into runs of whole experts that fit one
   * binding. A bank that holds a range of a layer's experts (a tensor-parallel rank's) is refused.
   */
  bank(b: ExpertBank): GpuBank {
    if (!gpuWeightFormat(b.type)) {
      throw new CairnError('MODEL_UNSUPPORTED', `tensor ${b.name} is ${ggmlTypeName(b.type)}, a type the GPU kernels do not read yet; run this model on the CPU (--backend cpu)`);
    }
    if (b.first) throw new CairnError('MODEL_UNSUPPORTED', 'a rank holding a range of the experts does not run on the GPU yet');
    const perPart = Math.floor((this.gpu.gpu.maxBinding - 8) / b.expertBytes);
    if (perPart < 1) throw new CairnError('MODEL_UNSUPPORTED', `one expert of ${b.name} (${b.expertBytes} bytes) is larger than the GPU lets one kernel see; use --backend cpu`);
    const parts: GpuBankPart[] = [];
    for (let e = 0; e < b.count; e += perPart) {
      const count = Math.min(perPart, b.count - e);
      parts.push({ t: this.own(this.gpu.upload(b.data.subarray(e * b.expertBytes, (e + count) * b.expertBytes))), first: e, count });
    }
    this.weightBytes += b.data.byteLength;
    return { name: b.name, type: b.type, rows: b.rows, cols: b.cols, count: b.count, parts };
  }
}

/** y (n x rows) = x (n x cols) W^T, each part of W writing its rows; with `accumulate`, y += x W^T. */
export function gpuMatmul(gpu: WebGpuKernels, w: GpuMatrix, x: GpuTensor, n: number, y: GpuTensor, accumulate = false): void {
  for (const p of w.parts) gpu.matmul(p.t, w.type, p.rows, w.cols, x, n, y, { yOffset: p.rowStart, yStride: w.rows, accumulate });
}

/** y (n x rows) = x (n x cols) W[rowStart, rowStart + rows)^T: a range of rows of a matrix held in one part (a stackedMatrix's). */
export function gpuMatmulRows(gpu: WebGpuKernels, w: GpuMatrix, rowStart: number, rows: number, x: GpuTensor, n: number, y: GpuTensor): void {
  const [part] = w.parts;
  if (w.parts.length !== 1 || rowStart < 0 || rowStart + rows > w.rows) throw new Error(`rows ${rowStart}+${rows} of a matrix of ${w.rows} rows in ${w.parts.length} parts`);
  gpu.matmul(part.t, w.type, rows, w.cols, x, n, y, { wOffset: rowStart * ggmlRowBytes(w.type, w.cols) });
}

/** y (n x rows / 2) = silu(x gate^T) x (x up^T) from a pairedMatrix, each part writing its pairs. */
export function gpuPairedSwiglu(gpu: WebGpuKernels, pair: GpuMatrix, x: GpuTensor, n: number, y: GpuTensor): void {
  for (const p of pair.parts) gpu.matmul(p.t, pair.type, p.rows, pair.cols, x, n, y, { yOffset: p.rowStart / 2, yStride: pair.rows / 2, swiglu: true });
}
