/**
 * The KV cache of one shard: for each of its layers, `slots` independent sequences of up to
 * `ctxPerSlot` positions, in f16 (default, as llama.cpp) or f32. Each layer's row shape comes from
 * its family (layers may differ: latent attention caches one compressed row, some layers none of
 * their values). Views are made once at construction so the forward pass never allocates.
 */
import { GgmlType } from '../gguf/ggml-types.js';
import { kvElementBytes, type KvType } from '../kernels/api.js';
import { CairnError } from '../util/errors.js';
import type { ModelConfig } from './config.js';
import type { KvRowShape } from './family.js';
import { familyOf } from './registry.js';
import { checkLayerRange, tensorSplitOf, type ShardSpec } from './shard.js';
import { headRange } from './tensor-split.js';

/**
 * Throws BAD_ARGUMENT when the model's layers cannot cache in `type`: a Q8_0 cache needs grouped-
 * query attention with head sizes in whole blocks of 32 (latent attention keeps f16 or f32).
 */
export function checkKvType(cfg: ModelConfig, type: KvType): void {
  if (type !== GgmlType.Q8_0) return;
  const family = familyOf(cfg);
  for (let l = 0; l < cfg.nLayer; l++) {
    const a = family.layerPlan(cfg, l).attention;
    if (a.kind !== 'gqa') {
      throw new CairnError('BAD_ARGUMENT', `a q8_0 KV cache is not available for ${cfg.arch}'s latent attention (MLA): use --kv-type f16`);
    }
    if (a.headDim % 32 !== 0) {
      throw new CairnError('BAD_ARGUMENT', `a q8_0 KV cache needs head sizes in blocks of 32, and ${cfg.arch} layer ${l} has ${a.headDim}: use --kv-type f16`);
    }
  }
}

/**
 * The KV row shape of each layer in [layerStart, layerEnd), as the model's family says; for a
 * tensor-parallel rank, of the KV heads it holds (tensor-split.ts).
 */
export function kvRows(cfg: ModelConfig, range: Pick<ShardSpec, 'layerStart' | 'layerEnd'> & Partial<ShardSpec>): KvRowShape[] {
  checkLayerRange(range, cfg);
  const family = familyOf(cfg);
  const split = range.splitCount !== undefined ? tensorSplitOf(range as ShardSpec) : undefined;
  const rows: KvRowShape[] = [];
  for (let l = range.layerStart; l < range.layerEnd; l++) {
    const plan = family.layerPlan(cfg, l);
    const a = plan.attention;
    if (split && a.kind === 'gqa') {
      const kv = headRange(a.heads, a.kvHeads, a.headDim, split).kvHeads;
      const share = (kv[1] - kv[0]) / a.kvHeads;
      rows.push({ k: plan.kv.k * share, v: plan.kv.v * share });
    } else {
      rows.push(plan.kv);
    }
  }
  return rows;
}

/** Bytes a KV cache of layers [layerStart, layerEnd) would take for `tokens` positions (memory estimates before allocating). */
export function kvCacheBytes(
  cfg: ModelConfig,
  range: Pick<ShardSpec, 'layerStart' | 'layerEnd'>,
  tokens: number,
  type: KvType = GgmlType.F16,
): number {
  return kvRows(cfg, range).reduce((a, r) => a + (r.k + r.v), 0) * tokens * kvElementBytes(type);
}

/** Per-layer, per-slot key and value storage. */
export class KvCache {
  readonly type: KvType;
  readonly slots: number;
  readonly ctxPerSlot: number;
  /** Elements of one cached position, per layer of the shard. */
  readonly rows: readonly KvRowShape[];
  /** Total bytes held. */
  readonly bytes: number;
  private readonly k: Uint8Array[][]; // [layer - layerStart][slot]
  private readonly v: Uint8Array[][];

  constructor(rows: readonly KvRowShape[], slots: number, ctxPerSlot: number, type: KvType = GgmlType.F16) {
    if (type === GgmlType.Q8_0 && rows.some((r) => r.k % 32 !== 0 || r.v % 32 !== 0)) throw new RangeError('a Q8_0 KV cache needs rows in whole blocks of 32');
    this.type = type;
    this.slots = slots;
    this.ctxPerSlot = ctxPerSlot;
    this.rows = rows;
    const elem = kvElementBytes(type);
    this.k = [];
    this.v = [];
    let bytes = 0;
    for (const row of rows) {
      const kSlot = ctxPerSlot * row.k * elem;
      const vSlot = ctxPerSlot * row.v * elem;
      const kBuf = new ArrayBuffer(kSlot * slots);
      const vBuf = new ArrayBuffer(vSlot * slots);
      this.k.push(Array.from({ length: slots }, (_, s) => new Uint8Array(kBuf, s * kSlot, kSlot)));
      this.v.push(Array.from({ length: slots }, (_, s) => new Uint8Array(vBuf, s * vSlot, vSlot)));
      bytes += (kSlot + vSlot) * slots;
    }
    this.bytes = bytes;
  }

  /** Key storage of a slot in the shard's i-th layer (i counts from the shard's first layer). */
  keys(i: number, slot: number): Uint8Array {
    return this.k[i][slot];
  }

  /** Value storage of a slot in the shard's i-th layer. */
  values(i: number, slot: number): Uint8Array {
    return this.v[i][slot];
  }

  /** Bytes of the first n positions' keys and values in layer i. */
  private prefixBytes(i: number, n: number): { kb: number; vb: number } {
    const elem = kvElementBytes(this.type);
    return { kb: n * this.rows[i].k * elem, vb: n * this.rows[i].v * elem };
  }

  /** Copies the first `n` positions of a slot out of the cache (one buffer per layer, keys then values). */
  snapshot(slot: number, n: number): KvSnapshot {
    const layers = this.k.map((k, i) => {
      const { kb, vb } = this.prefixBytes(i, n);
      const buf = new Uint8Array(kb + vb);
      buf.set(k[slot].subarray(0, kb), 0);
      buf.set(this.v[i][slot].subarray(0, vb), kb);
      return buf;
    });
    return { type: this.type, tokens: n, layers };
  }

  /** Writes a snapshot back into a slot (positions [0, snapshot.tokens)). */
  restore(s: KvSnapshot, slot: number): void {
    if (s.type !== this.type || s.layers.length !== this.k.length || s.tokens > this.ctxPerSlot) {
      throw new RangeError('KV snapshot does not fit this cache');
    }
    s.layers.forEach((buf, i) => {
      const { kb, vb } = this.prefixBytes(i, s.tokens);
      if (buf.length !== kb + vb) throw new RangeError('KV snapshot does not fit this cache');
      this.k[i][slot].set(buf.subarray(0, kb));
      this.v[i][slot].set(buf.subarray(kb));
    });
  }

  /** Copies the first `n` positions of one slot into another (prompt-cache reuse). */
  copyPrefix(from: number, to: number, n: number): void {
    if (from === to || n === 0) return;
    for (let i = 0; i < this.k.length; i++) {
      const { kb, vb } = this.prefixBytes(i, n);
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
