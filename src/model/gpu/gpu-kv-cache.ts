/**
 * A GPU shard's KV cache: per layer and slot, F16 (or Q8_0) keys and values of ctx positions on the device.
 * The device keeps every head of a position side by side, so its snapshots (the prompt cache's
 * entries: per layer, the keys of every position, then the values) come back in the `rows` layout,
 * and a snapshot the CPU cache made (`heads`) is rearranged on restore (kv-layout.ts): a saved
 * prefix means the same to either backend.
 */
import { GgmlType } from '../../gguf/ggml-types.js';
import { gpuKvBytes, type GpuKvType, type GpuTensor, type WebGpuKernels } from '../../kernels/webgpu/gpu-kernels.js';
import type { KvRowShape } from '../family.js';
import type { KvSnapshot } from '../kv-cache.js';
import { rearrangeKvLayer } from '../../kernels/kv-layout.js';
import { CairnError } from '../../util/errors.js';
import type { GpuKv } from './gpu-blocks.js';

/** Per-layer, per-slot key and value tensors on the device, F16 or Q8_0. */
export class GpuKvCache implements GpuKv {
  private readonly k: GpuTensor[][] = [];
  private readonly v: GpuTensor[][] = [];
  readonly bytes: number;

  constructor(
    private readonly gpu: WebGpuKernels,
    readonly rows: readonly KvRowShape[],
    readonly slots: number,
    readonly ctxPerSlot: number,
    readonly type: GpuKvType = GgmlType.F16,
  ) {
    let bytes = 0;
    const unit = type === GgmlType.Q8_0 ? 64 : 2;
    for (const r of rows) {
      if (r.k % unit !== 0 || r.v % unit !== 0) {
        throw new CairnError('MODEL_UNSUPPORTED', type === GgmlType.Q8_0 ? 'a Q8_0 KV cache on the GPU needs rows of an even number of 32-element blocks; use --kv-type f16' : 'KV cache rows of an odd number of elements do not run on the GPU yet');
      }
      // A kernel sees a layer's cache of one sequence through one binding.
      if (gpuKvBytes(type, ctxPerSlot * r.k) > gpu.gpu.maxBinding) {
        const most = Math.floor(gpu.gpu.maxBinding / gpuKvBytes(type, r.k));
        throw new CairnError('MODEL_UNSUPPORTED', `a context of ${ctxPerSlot} tokens needs a KV cache larger than the GPU lets one kernel see (${gpu.gpu.maxBinding} bytes); use --ctx ${most} or less, or --backend cpu`);
      }
      this.k.push(Array.from({ length: slots }, () => gpu.tensor(gpuKvBytes(type, ctxPerSlot * r.k))));
      this.v.push(Array.from({ length: slots }, () => gpu.tensor(gpuKvBytes(type, ctxPerSlot * r.v))));
      bytes += slots * gpuKvBytes(type, ctxPerSlot * (r.k + r.v));
    }
    this.bytes = bytes;
  }

  /** Bytes of n positions of a row of `elems` elements. */
  private rowBytes(n: number, elems: number): number {
    return gpuKvBytes(this.type, n * elems);
  }

  keys(layer: number, slot: number): GpuTensor {
    return this.k[layer][slot];
  }

  values(layer: number, slot: number): GpuTensor {
    return this.v[layer][slot];
  }

  /** Frees the cache on the device. */
  release(): void {
    for (const t of [...this.k.flat(), ...this.v.flat()]) this.gpu.free(t);
  }

  /** Copies the first n positions of one slot into another, on the device. */
  copyPrefix(from: number, to: number, n: number): void {
    if (from === to || n === 0) return;
    this.checkSlot(from);
    this.checkSlot(to);
    this.rows.forEach((r, i) => {
      this.gpu.copy(this.k[i][from], 0, this.k[i][to], 0, this.rowBytes(n, r.k));
      this.gpu.copy(this.v[i][from], 0, this.v[i][to], 0, this.rowBytes(n, r.v));
    });
  }

  /** The first n positions of a slot, read back in the CPU cache's snapshot layout. */
  async snapshot(slot: number, n: number): Promise<KvSnapshot> {
    this.checkSlot(slot);
    const layers: Uint8Array[] = [];
    for (let i = 0; i < this.rows.length; i++) {
      const kb = this.rowBytes(n, this.rows[i].k);
      const vb = this.rowBytes(n, this.rows[i].v);
      const buf = new Uint8Array(kb + vb);
      buf.set(new Uint8Array(await this.gpu.read(this.k[i][slot], kb)), 0);
      buf.set(new Uint8Array(await this.gpu.read(this.v[i][slot], vb)), kb);
      layers.push(buf);
    }
    return { type: this.type, tokens: n, layers, layout: 'rows' };
  }

  /** Writes a snapshot back into a slot (positions [0, snapshot.tokens)). */
  restore(s: KvSnapshot, slot: number): void {
    this.checkSlot(slot);
    if (s.type !== this.type || s.layers.length !== this.rows.length || s.tokens > this.ctxPerSlot) throw new RangeError('KV snapshot does not fit this cache');
    s.layers.forEach((buf, i) => {
      const r = this.rows[i];
      const rows = rearrangeKvLayer(buf, s.tokens, r.heads, gpuKvBytes(this.type, r.k / r.heads), gpuKvBytes(this.type, r.v / r.heads), s.layout, 'rows');
      const kb = this.rowBytes(s.tokens, r.k);
      this.gpu.write(this.k[i][slot], rows.subarray(0, kb));
      this.gpu.write(this.v[i][slot], rows.subarray(kb));
    });
  }

  private checkSlot(slot: number): void {
    if (!(Number.isInteger(slot) && slot >= 0 && slot < this.slots)) throw new CairnError('BAD_ARGUMENT', `KV slot ${slot} does not exist`);
  }
}
