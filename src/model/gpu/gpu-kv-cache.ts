/**
 * A GPU shard's KV cache: per layer and slot, F16 keys and values of ctx positions on the device.
 * Snapshots (the prompt cache's entries) come back to the host in the CPU cache's layout (per
 * layer, the keys of every position, then the values), so a saved prefix means the same bytes to
 * either backend.
 */
import { GgmlType } from '../../gguf/ggml-types.js';
import type { GpuTensor, WebGpuKernels } from '../../kernels/webgpu/gpu-kernels.js';
import type { KvRowShape } from '../family.js';
import type { KvSnapshot } from '../kv-cache.js';
import { CairnError } from '../../util/errors.js';
import type { GpuKv } from './gpu-blocks.js';

/** Per-layer, per-slot F16 key and value tensors on the device. */
export class GpuKvCache implements GpuKv {
  private readonly k: GpuTensor[][] = [];
  private readonly v: GpuTensor[][] = [];
  readonly bytes: number;
  readonly type = GgmlType.F16;

  constructor(
    private readonly gpu: WebGpuKernels,
    readonly rows: readonly KvRowShape[],
    readonly slots: number,
    readonly ctxPerSlot: number,
  ) {
    let bytes = 0;
    for (const r of rows) {
      if (r.k % 2 !== 0 || r.v % 2 !== 0) throw new CairnError('MODEL_UNSUPPORTED', 'KV cache rows of an odd number of elements do not run on the GPU yet');
      // A kernel sees a layer's cache of one sequence through one binding.
      if (ctxPerSlot * r.k * 2 > gpu.gpu.maxBinding) {
        const most = Math.floor(gpu.gpu.maxBinding / (r.k * 2));
        throw new CairnError('MODEL_UNSUPPORTED', `a context of ${ctxPerSlot} tokens needs a KV cache larger than the GPU lets one kernel see (${gpu.gpu.maxBinding} bytes); use --ctx ${most} or less, or --backend cpu`);
      }
      this.k.push(Array.from({ length: slots }, () => gpu.tensor(ctxPerSlot * r.k * 2)));
      this.v.push(Array.from({ length: slots }, () => gpu.tensor(ctxPerSlot * r.v * 2)));
      bytes += slots * ctxPerSlot * (r.k + r.v) * 2;
    }
    this.bytes = bytes;
  }

  keys(layer: number, slot: number): GpuTensor {
    return this.k[layer][slot];
  }

  values(layer: number, slot: number): GpuTensor {
    return this.v[layer][slot];
  }

  /** Frees the cache on the device. */
  release(): void {
    for (const t of [...this.k.flat(), ...this.v.flat()]) t.buffer.destroy();
  }

  /** Copies the first n positions of one slot into another, on the device. */
  copyPrefix(from: number, to: number, n: number): void {
    if (from === to || n === 0) return;
    this.checkSlot(from);
    this.checkSlot(to);
    this.rows.forEach((r, i) => {
      this.gpu.copy(this.k[i][from], 0, this.k[i][to], 0, n * r.k * 2);
      this.gpu.copy(this.v[i][from], 0, this.v[i][to], 0, n * r.v * 2);
    });
  }

  /** The first n positions of a slot, read back in the CPU cache's snapshot layout. */
  async snapshot(slot: number, n: number): Promise<KvSnapshot> {
    this.checkSlot(slot);
    const layers: Uint8Array[] = [];
    for (let i = 0; i < this.rows.length; i++) {
      const kb = n * this.rows[i].k * 2;
      const vb = n * this.rows[i].v * 2;
      const buf = new Uint8Array(kb + vb);
      buf.set(new Uint8Array(await this.gpu.read(this.k[i][slot], kb)), 0);
      buf.set(new Uint8Array(await this.gpu.read(this.v[i][slot], vb)), kb);
      layers.push(buf);
    }
    return { type: this.type, tokens: n, layers };
  }

  /** Writes a snapshot back into a slot (positions [0, snapshot.tokens)). */
  restore(s: KvSnapshot, slot: number): void {
    this.checkSlot(slot);
    if (s.type !== this.type || s.layers.length !== this.rows.length || s.tokens > this.ctxPerSlot) throw new RangeError('KV snapshot does not fit this cache');
    s.layers.forEach((buf, i) => {
      const kb = s.tokens * this.rows[i].k * 2;
      if (buf.length !== kb + s.tokens * this.rows[i].v * 2) throw new RangeError('KV snapshot does not fit this cache');
      this.gpu.write(this.k[i][slot], buf.subarray(0, kb));
      this.gpu.write(this.v[i][slot], buf.subarray(kb));
    });
  }

  private checkSlot(slot: number): void {
    if (!(Number.isInteger(slot) && slot >= 0 && slot < this.slots)) throw new CairnError('BAD_ARGUMENT', `KV slot ${slot} does not exist`);
  }
}
