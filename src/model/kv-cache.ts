/**
 * The KV cache of one shard: for each of its layers, `slots` independent sequences of up to
 * `ctxPerSlot` positions, in f16 (default, as llama.cpp) or f32. Views are made once at
 * construction so the forward pass never allocates.
 */
import { GgmlType } from '../gguf/ggml-types.js';
import type { KvType } from '../kernels/api.js';
import type { ModelConfig } from './config.js';
import type { ShardSpec } from './shard.js';

/** Per-layer, per-slot key and value storage. */
export class KvCache {
  readonly type: KvType;
  readonly slots: number;
  readonly ctxPerSlot: number;
  /** Elements in one cached key row (all KV heads of one position). */
  readonly kRowElems: number;
  readonly vRowElems: number;
  /** Total bytes held. */
  readonly bytes: number;
  private readonly k: Uint8Array[][]; // [layer - layerStart][slot]
  private readonly v: Uint8Array[][];

  constructor(cfg: ModelConfig, shard: ShardSpec, slots: number, ctxPerSlot: number, type: KvType = GgmlType.F16) {
    this.type = type;
    this.slots = slots;
    this.ctxPerSlot = ctxPerSlot;
    this.kRowElems = cfg.nKvHead * cfg.headDim;
    this.vRowElems = cfg.nKvHead * cfg.headDimV;
    const elem = type === GgmlType.F16 ? 2 : 4;
    const kSlot = ctxPerSlot * this.kRowElems * elem;
    const vSlot = ctxPerSlot * this.vRowElems * elem;
    this.k = [];
    this.v = [];
    for (let l = shard.layerStart; l < shard.layerEnd; l++) {
      const kBuf = new ArrayBuffer(kSlot * slots);
      const vBuf = new ArrayBuffer(vSlot * slots);
      this.k.push(Array.from({ length: slots }, (_, s) => new Uint8Array(kBuf, s * kSlot, kSlot)));
      this.v.push(Array.from({ length: slots }, (_, s) => new Uint8Array(vBuf, s * vSlot, vSlot)));
    }
    this.bytes = (kSlot + vSlot) * slots * (shard.layerEnd - shard.layerStart);
  }

  /** Key storage of a slot in the shard's i-th layer (i counts from the shard's first layer). */
  keys(i: number, slot: number): Uint8Array {
    return this.k[i][slot];
  }

  /** Value storage of a slot in the shard's i-th layer. */
  values(i: number, slot: number): Uint8Array {
    return this.v[i][slot];
  }

  /** Copies the first `n` positions of a slot out of the cache (one buffer per layer, keys then values). */
  snapshot(slot: number, n: number): KvSnapshot {
    const elem = this.type === GgmlType.F16 ? 2 : 4;
    const kb = n * this.kRowElems * elem;
    const vb = n * this.vRowElems * elem;
    const layers = this.k.map((k, i) => {
      const buf = new Uint8Array(kb + vb);
      buf.set(k[slot].subarray(0, kb), 0);
      buf.set(this.v[i][slot].subarray(0, vb), kb);
      return buf;
    });
    return { type: this.type, tokens: n, layers };
  }

  /** Writes a snapshot back into a slot (positions [0, snapshot.tokens)). */
  restore(s: KvSnapshot, slot: number): void {
    const elem = this.type === GgmlType.F16 ? 2 : 4;
    const kb = s.tokens * this.kRowElems * elem;
    if (s.type !== this.type || s.layers.length !== this.k.length || s.tokens > this.ctxPerSlot) {
      throw new RangeError('KV snapshot does not fit this cache');
    }
    s.layers.forEach((buf, i) => {
      this.k[i][slot].set(buf.subarray(0, kb));
      this.v[i][slot].set(buf.subarray(kb));
    });
  }

  /** Copies the first `n` positions of one slot into another (prompt-cache reuse). */
  copyPrefix(from: number, to: number, n: number): void {
    if (from === to || n === 0) return;
    const elem = this.type === GgmlType.F16 ? 2 : 4;
    const kb = n * this.kRowElems * elem;
    const vb = n * this.vRowElems * elem;
    for (let i = 0; i < this.k.length; i++) {
      this.k[i][to].set(this.k[i][from].subarray(0, kb));
      this.v[i][to].set(this.v[i][from].subarray(0, vb));
    }
  }
}

/** A copy of a slot's first positions, held outside the cache (the prompt cache's entries). */
export interface KvSnapshot {
  readonly type: KvType;
  readonly tokens: number;
  /** One buffer per layer of the shard: keys of every position, then values. */
  readonly layers: readonly Uint8Array[];
}

/** Bytes a KV cache of this shape would take (for memory estimates before allocating). */
export function kvCacheBytes(cfg: ModelConfig, layers: number, tokens: number, type: KvType = GgmlType.F16): number {
  const elem = type === GgmlType.F16 ? 2 : 4;
  return layers * tokens * cfg.nKvHead * (cfg.headDim + cfg.headDimV) * elem;
}
