/**
 * The KV cache of one shard: for each of its layers, `slots` independent sequences of up to
 * `ctxPerSlot` positions, in f16 (default, as llama.cpp), f32 or Q8_0 (in rows, or in tiles of 16
 * positions where the kernels read those faster: kv-layout.ts), each stored head by head.
 * Each layer's row shape comes from its family (layers may differ: latent attention caches one
 * compressed row, some layers none of their values). Views are made once at construction so the
 * forward pass never allocates.
 */
import { GgmlType } from '../gguf/ggml-types.js';
import { KV_TILE_ROWS, kvElementBytes, type KvType } from '../kernels/api.js';
import { CairnError } from '../util/errors.js';
import type { ModelConfig } from './config.js';
import type { KvRowShape } from './family.js';
import { clearTileLanes, Q8_BLOCK_BYTES, rearrangeKvLayer, tiledPositions, type KvSnapshotLayout } from '../kernels/kv-layout.js';
import { arenaViews, SNAPSHOT_ALIGN } from './kv-arenas.js';
import { familyOf } from './registry.js';
import { checkLayerRange, tensorSplitOf, type ShardSpec } from './shard.js';
import { headRange } from './tensor-split.js';

/**
 * Throws BAD_ARGUMENT when the model's layers cannot cache in `type`: a Q8_0 cache needs each
 * cached head in whole blocks of 32 (a grouped-query head, or latent attention's row of the latent
 * and its rope part, as llama.cpp's `-ctk q8_0` quantizes it).
 */
export function checkKvType(cfg: ModelConfig, type: KvType): void {
  if (type !== GgmlType.Q8_0) return;
  const family = familyOf(cfg);
  for (let l = 0; l < cfg.nLayer; l++) {
    const a = family.layerPlan(cfg, l).attention;
    const [what, size] = a.kind === 'gqa' ? ['head sizes', a.headDim] : ['latent rows (latent + rope part)', a.kvLora + a.ropeDim];
    if (size % 32 !== 0) {
      throw new CairnError('BAD_ARGUMENT', `a q8_0 KV cache needs ${what} in blocks of 32, and ${cfg.arch} layer ${l} has ${size}: use --kv-type f16`);
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
      rows.push({ k: plan.kv.k * share, v: plan.kv.v * share, heads: kv[1] - kv[0] });
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
  return kvRowsBytes(kvRows(cfg, range), tokens, type);
}

/** Bytes of `tokens` cached positions of layers with these rows. */
function kvRowsBytes(rows: readonly KvRowShape[], tokens: number, type: KvType): number {
  return rows.reduce((a, r) => a + (r.k + r.v), 0) * tokens * kvElementBytes(type);
}

/** How a KvCache keeps its positions. */
export interface KvCacheOptions {
  /**
   * A Q8_0 cache in tiles of 16 positions (kv-layout.ts; Kernels.kvTilesPreferred says where that
   * is faster). Only where every layer caches keys and values apart: latent attention, which reads
   * one cache as both, keeps rows.
   */
  tiles?: boolean;
  /**
   * Zeroed memory for the cache's arenas (Kernels.allocateZeroed: huge pages, so a decode token's
   * pass over a long context and its store of the new row do not walk the page tables every 4 KiB);
   * undefined, or absent, takes an ordinary ArrayBuffer.
   */
  allocate?: (bytes: number) => ArrayBuffer | undefined;
  /** Faults a snapshot's fresh arena in before the copy fills it (Kernels.populateWrite). */
  populate?: (arena: ArrayBuffer) => unknown;
}

/**
 * Per-layer, per-slot key and value storage. Each slot's keys (and values) of a layer are laid out
 * head by head (Kernels.storeKv): head h's rows of positions [0, headPositions) at h x headPositions
 * rows (headPositions: ctxPerSlot, rounded up to whole tiles in a tiled cache).
 */
export class KvCache {
  readonly type: KvType;
  readonly slots: number;
  readonly ctxPerSlot: number;
  /** Whether the cache is tiled (storeKv and attention take kvTiles). */
  readonly tiles: boolean;
  /** Where the cache's arenas and its snapshots' come from (KvCacheOptions.allocate). */
  private readonly allocate?: (bytes: number) => ArrayBuffer | undefined;
  private readonly populate?: (arena: ArrayBuffer) => unknown;
  /** Positions each head's stretch holds: its stride, the kernels' kvCapacity. */
  private readonly headPositions: number;
  /** Elements of one cached position, per layer of the shard. */
  readonly rows: readonly KvRowShape[];
  /** Total bytes held. */
  readonly bytes: number;
  /** The arenas that came from `allocate` (the others are ordinary ArrayBuffers). */
  private readonly allocated = new Set<ArrayBufferLike>();
  private readonly k: Uint8Array[][]; // [layer - layerStart][slot]
  private readonly v: Uint8Array[][];

  constructor(rows: readonly KvRowShape[], slots: number, ctxPerSlot: number, type: KvType = GgmlType.F16, options: KvCacheOptions = {}) {
    if (rows.some((r) => !(Number.isInteger(r.heads) && r.heads >= 1) || r.k % r.heads !== 0 || r.v % r.heads !== 0)) {
      throw new RangeError('KV cache rows must hold whole heads');
    }
    if (type === GgmlType.Q8_0 && rows.some((r) => (r.k / r.heads) % 32 !== 0 || (r.v / r.heads) % 32 !== 0)) {
      throw new RangeError('a Q8_0 KV cache needs heads in whole blocks of 32');
    }
    this.type = type;
    this.slots = slots;
    this.ctxPerSlot = ctxPerSlot;
    this.rows = rows;
    this.tiles = options.tiles === true && type === GgmlType.Q8_0 && rows.every((r) => r.v > 0);
    this.allocate = options.allocate;
    this.populate = options.populate;
    this.headPositions = this.tiles ? tiledPositions(ctxPerSlot) : ctxPerSlot;
    const elem = kvElementBytes(type);
    this.k = [];
    this.v = [];
    const total = kvRowsBytes(rows, this.headPositions * slots, type);
    // A context no machine holds (a typo, 1e99) is told as such rather than as the allocator's RangeError.
    const tooLarge = () =>
      new CairnError(
        'BAD_ARGUMENT',
        `a KV cache of ${slots} slot${slots === 1 ? '' : 's'} x ${ctxPerSlot} positions needs ${(total / 2 ** 30).toFixed(1)} GiB, more than can be allocated here; lower the context (--ctx) or the parallel slots`,
      );
    if (!Number.isSafeInteger(slots) || !Number.isSafeInteger(ctxPerSlot) || !Number.isSafeInteger(Math.ceil(total))) throw tooLarge();
    // The layers' key and value stretches, one after another in as few arenas as fit.
    let stretches: Uint8Array[];
    try {
      const allocate = options.allocate;
      stretches = arenaViews(
        rows.flatMap((row) => [this.headPositions * row.k * elem * slots, this.headPositions * row.v * elem * slots]),
        allocate &&
          ((bytes) => {
            const buffer = allocate(bytes);
            if (buffer) this.allocated.add(buffer);
            return buffer;
          }),
      );
    } catch (err) {
      if (err instanceof RangeError) throw tooLarge();
      throw err;
    }
    let bytes = 0;
    rows.forEach((row, i) => {
      const kSlot = this.headPositions * row.k * elem;
      const vSlot = this.headPositions * row.v * elem;
      this.k.push(Array.from({ length: slots }, (_, s) => stretches[2 * i].subarray(s * kSlot, (s + 1) * kSlot)));
      this.v.push(Array.from({ length: slots }, (_, s) => stretches[2 * i + 1].subarray(s * vSlot, (s + 1) * vSlot)));
      bytes += (kSlot + vSlot) * slots;
    });
    this.bytes = bytes;
  }

  /** Zeroed memory of `bytes` from where this cache's own comes (KvCacheOptions.allocate), for copies of its snapshots. */
  arena(bytes: number): ArrayBuffer {
    return this.allocate?.(bytes) ?? new ArrayBuffer(bytes);
  }

  /** An arena for a copy of `bytes` that is about to be written whole (a snapshot, or one read back): faulted in first. */
  copyArena(bytes: number): ArrayBuffer {
    const arena = this.arena(bytes);
    this.populate?.(arena);
    return arena;
  }

  /**
   * The key and value storage (layer by layer, slot by slot) that lies on memory from `allocate`:
   * huge pages for a shard's own cache, where a slot's first few positions touch most of its pages,
   * each head's positions being one stretch. (On small pages a slot faults in what it fills.)
   */
  *allocatedStorage(): IterableIterator<Uint8Array> {
    for (let i = 0; i < this.rows.length; i++) {
      for (const s of [...this.k[i], ...this.v[i]]) if (this.allocated.has(s.buffer)) yield s;
    }
  }

  /** Key storage of a slot in the shard's i-th layer (i counts from the shard's first layer). */
  keys(i: number, slot: number): Uint8Array {
    return this.k[i][slot];
  }

  /** Value storage of a slot in the shard's i-th layer. */
  values(i: number, slot: number): Uint8Array {
    return this.v[i][slot];
  }

  /** Bytes of one head's row of keys and of values in layer i. */
  private headBytes(i: number): { kh: number; vh: number } {
    const elem = kvElementBytes(this.type);
    const r = this.rows[i];
    return { kh: (r.k / r.heads) * elem, vh: (r.v / r.heads) * elem };
  }

  /**
   * Calls fn once per head of layer i with the byte range of that head's first n positions in a
   * slot's storage (from `at`, `bytes` long; in a tiled cache, the whole tiles that hold them) and
   * where they go in a snapshot (`packed`), for keys and for values.
   */
  private eachHead(i: number, n: number, fn: (part: 'k' | 'v', at: number, bytes: number, packed: number) => void): void {
    const { kh, vh } = this.headBytes(i);
    const heads = this.rows[i].heads;
    const m = this.tiles ? tiledPositions(n) : n;
    for (let h = 0; h < heads; h++) fn('k', h * this.headPositions * kh, m * kh, h * m * kh);
    for (let h = 0; h < heads; h++) fn('v', h * this.headPositions * vh, m * vh, heads * m * kh + h * m * vh);
  }

  /** The order of this cache's snapshots. */
  private get layout(): KvSnapshotLayout {
    return this.tiles ? 'tiles' : 'heads';
  }

  /** Bytes a snapshot of `n` positions holds (what snapshotBytes() counts), known before copying anything. */
  snapshotBytes(n: number): number {
    return this.snapshotLayerBytes(n).reduce((a, b) => a + b, 0);
  }

  /** Bytes of each layer's buffer in a snapshot of `n` positions (a tiled cache's whole tiles). */
  private snapshotLayerBytes(n: number): number[] {
    const m = this.tiles ? tiledPositions(n) : n;
    return this.rows.map((r) => m * (r.k + r.v) * kvElementBytes(this.type));
  }

  /**
   * Copies the first `n` positions of a slot out of the cache (one buffer per layer: each head's
   * keys, then each head's values; a tiled cache's as the whole tiles that hold them).
   */
  snapshot(slot: number, n: number): KvSnapshot {
    const m = this.tiles ? tiledPositions(n) : n;
    // The layers' copies in arenas from the cache's allocator: fresh memory faults in a page at a
    // time, and on 4 KiB pages that, not the copy, was most of a long prefix's snapshot.
    const copies = arenaViews(this.snapshotLayerBytes(n), (bytes) => this.copyArena(bytes), SNAPSHOT_ALIGN);
    const layers = this.rows.map((_, i) => {
      const buf = copies[i];
      const { kh, vh } = this.headBytes(i);
      this.eachHead(i, n, (part, at, bytes, packed) => {
        buf.set((part === 'k' ? this.k : this.v)[i][slot].subarray(at, at + bytes), packed);
        // A last tile's lanes past n hold what an earlier sequence left: not part of this one's prefix.
        if (m > n) {
          const hb = part === 'k' ? kh : vh;
          const last = packed + bytes - KV_TILE_ROWS * hb;
          clearTileLanes(buf.subarray(last, packed + bytes), n % KV_TILE_ROWS, hb / Q8_BLOCK_BYTES, part);
        }
      });
      return buf;
    });
    return { type: this.type, tokens: n, layers, layout: this.layout };
  }

  /** Writes a snapshot back into a slot (positions [0, snapshot.tokens)), in either layout. */
  restore(s: KvSnapshot, slot: number): void {
    if (s.type !== this.type || s.layers.length !== this.k.length || s.tokens > this.ctxPerSlot) {
      throw new RangeError('KV snapshot does not fit this cache');
    }
    const n = s.tokens;
    const layers = s.layers.map((buf, i) => {
      const { kh, vh } = this.headBytes(i);
      return rearrangeKvLayer(buf, n, this.rows[i].heads, kh, vh, s.layout, this.layout);
    });
    layers.forEach((buf, i) => {
      this.eachHead(i, n, (part, at, bytes, packed) => (part === 'k' ? this.k : this.v)[i][slot].set(buf.subarray(packed, packed + bytes), at));
    });
  }

  /**
   * Copies the first `n` positions of one slot into another (prompt-cache reuse); a tiled cache
   * copies the whole tiles that hold them (the positions after n are the target's to write).
   */
  copyPrefix(from: number, to: number, n: number): void {
    if (from === to || n === 0) return;
    for (let i = 0; i < this.k.length; i++) {
      this.eachHead(i, n, (part, at, bytes) => {
        const store = part === 'k' ? this.k : this.v;
        store[i][to].set(store[i][from].subarray(at, at + bytes), at);
      });
    }
  }
}

/** A copy of a slot's first positions, held outside the cache (the prompt cache's entries). */
export interface KvSnapshot {
  readonly type: KvType;
  readonly tokens: number;
  /** One buffer per layer of the shard: its keys, then its values, each in `layout` order. */
  readonly layers: readonly Uint8Array[];
  /** The order of each part's rows (kv-layout.ts). */
  readonly layout: KvSnapshotLayout;
}
