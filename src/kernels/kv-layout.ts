/**
 * The orders a saved KV prefix's bytes come in. A CPU cache keeps each head's rows in one stretch
 * (Kernels.storeKv), so its snapshots hold, per layer, every head's first n rows in turn (`heads`);
 * a GPU cache keeps every head of a position side by side (`rows`), as did the CPU cache of earlier
 * versions, whose prompt-cache files still say so; a tiled Q8_0 cache (below) keeps each head's
 * first n positions as whole tiles (`tiles`). A snapshot names its order and a cache of another kind
 * rearranges it on restore, so a saved prefix means the same to every cache.
 *
 * A tiled Q8_0 cache (Kernels.storeKv with kvTiles; native/src/ops.h CAIRN_KV_Q8_0_TILES) keeps
 * each head's positions in tiles of KV_TILE_ROWS: a tile takes the bytes of its positions' rows, at
 * their place. With nb blocks a head it holds 512 nb bytes of quants, then the 16 positions' f16
 * scales of block 0, of block 1, and so on. A key tile's quants are transposed by dwords, each plus
 * 128 as an unsigned byte (64-byte vector i: quants 4i..4i+3 of positions 0..15 in turn), so the
 * score kernels read 16 positions in their vector lanes as they lie; a value tile keeps each
 * position's quants together (position r's at 32 nb r).
 */
import { KV_TILE_ROWS } from './api.js';

/** Order of a snapshot's rows: every head of a position side by side, each head's positions in turn, or each head's tiles in turn. */
export type KvSnapshotLayout = 'rows' | 'heads' | 'tiles';

/** Whether a value (read from a saved prefix's head) names a snapshot order. */
export function isKvSnapshotLayout(x: unknown): x is KvSnapshotLayout {
  return x === 'rows' || x === 'heads' || x === 'tiles';
}

/** The two orders of whole rows (a tiled snapshot goes through rearrangeKvLayer). */
export type RowOrder = Exclude<KvSnapshotLayout, 'tiles'>;

/** Q8_0 block bytes (an f16 scale and 32 quants). */
export const Q8_BLOCK_BYTES = 34;

/** Positions n rows take in whole tiles. */
export function tiledPositions(n: number): number {
  return Math.ceil(n / KV_TILE_ROWS) * KV_TILE_ROWS;
}

/** Byte of a tile with nb blocks a head that holds lane r's scale of block b (its low byte). */
const scaleAt = (nb: number, b: number, r: number) => 512 * nb + 32 * b + 2 * r;
/** Byte of a key tile that holds lane r's quant i of block b (dword by dword, + 128). */
const keyAt = (b: number, i: number, r: number) => (b * 8 + (i >> 2)) * 64 + 4 * r + (i & 3);
/** Byte of a value tile where lane r's quants of block b start (a tile with nb blocks a head). */
const valueAt = (nb: number, b: number, r: number) => r * 32 * nb + 32 * b;

/**
 * Writes one position's row of a head (nb Q8_0 blocks as a row holds them) into lane r of its tile,
 * as a key (`k`) or a value (`v`) tile holds it.
 */
export function putTileRow(tile: Uint8Array, r: number, row: Uint8Array, nb: number, part: 'k' | 'v'): void {
  for (let b = 0; b < nb; b++) {
    const src = b * Q8_BLOCK_BYTES;
    tile.set(row.subarray(src, src + 2), scaleAt(nb, b, r));
    if (part === 'v') tile.set(row.subarray(src + 2, src + Q8_BLOCK_BYTES), valueAt(nb, b, r));
    else for (let i = 0; i < 32; i++) tile[keyAt(b, i, r)] = row[src + 2 + i] ^ 0x80;
  }
}

/** Reads lane r of a tile back as a row of nb Q8_0 blocks (into `row`). */
export function getTileRow(tile: Uint8Array, r: number, nb: number, part: 'k' | 'v', row: Uint8Array): void {
  for (let b = 0; b < nb; b++) {
    const dst = b * Q8_BLOCK_BYTES;
    row.set(tile.subarray(scaleAt(nb, b, r), scaleAt(nb, b, r) + 2), dst);
    if (part === 'v') row.set(tile.subarray(valueAt(nb, b, r), valueAt(nb, b, r) + 32), dst + 2);
    else for (let i = 0; i < 32; i++) row[dst + 2 + i] = tile[keyAt(b, i, r)] ^ 0x80;
  }
}

/** Zeroes lanes [from, KV_TILE_ROWS) of a tile (positions a snapshot does not hold). */
export function clearTileLanes(tile: Uint8Array, from: number, nb: number, part: 'k' | 'v'): void {
  for (let b = 0; b < nb; b++) tile.fill(0, scaleAt(nb, b, from), scaleAt(nb, b + 1, 0));
  if (part === 'v') tile.fill(0, valueAt(nb, 0, from), 512 * nb);
  else for (let i = 0; i < 8 * nb; i++) tile.fill(0, i * 64 + 4 * from, (i + 1) * 64);
}

/** Calls fn with each of a head's first n positions: its tile (of `tiles`), its lane, and its row (of `rows`). */
function eachLane(
  tiles: Uint8Array,
  rows: Uint8Array,
  n: number,
  headBytes: number,
  fn: (tile: Uint8Array, lane: number, row: Uint8Array) => void,
): void {
  const tileBytes = KV_TILE_ROWS * headBytes;
  for (let i = 0; i < n; i++) {
    const t = Math.floor(i / KV_TILE_ROWS) * tileBytes;
    fn(tiles.subarray(t, t + tileBytes), i % KV_TILE_ROWS, rows.subarray(i * headBytes, (i + 1) * headBytes));
  }
}

/**
 * One head's first n positions between rows (n x headBytes, Q8_0 blocks) and tiles (whole tiles:
 * tiledPositions(n) x headBytes; lanes past n zero on the way in, ignored on the way back).
 */
export function tilesFromRows(rows: Uint8Array, n: number, headBytes: number, part: 'k' | 'v'): Uint8Array {
  const out = new Uint8Array(tiledPositions(n) * headBytes);
  eachLane(out, rows, n, headBytes, (tile, lane, row) => putTileRow(tile, lane, row, headBytes / Q8_BLOCK_BYTES, part));
  return out;
}

/** The rows of one head's first n positions held in tiles (tilesFromRows' inverse). */
export function rowsFromTiles(tiles: Uint8Array, n: number, headBytes: number, part: 'k' | 'v'): Uint8Array {
  const out = new Uint8Array(n * headBytes);
  eachLane(tiles, out, n, headBytes, (tile, lane, row) => getTileRow(tile, lane, headBytes / Q8_BLOCK_BYTES, part, row));
  return out;
}

/**
 * A layer's snapshot between `heads` (each head's n rows in turn, keys then values) and `tiles`
 * (each head's tiledPositions(n) positions as tiles, keys then values).
 */
function retileLayer(buf: Uint8Array, n: number, heads: number, kHeadBytes: number, vHeadBytes: number, toTiles: boolean): Uint8Array {
  const [fromN, toN] = toTiles ? [n, tiledPositions(n)] : [tiledPositions(n), n];
  if (buf.length !== fromN * heads * (kHeadBytes + vHeadBytes)) throw new RangeError('KV snapshot does not fit this cache');
  if (kHeadBytes % Q8_BLOCK_BYTES !== 0 || vHeadBytes % Q8_BLOCK_BYTES !== 0) throw new RangeError('a tiled KV snapshot holds Q8_0 heads');
  const out = new Uint8Array(toN * heads * (kHeadBytes + vHeadBytes));
  let from = 0;
  let to = 0;
  for (const [part, hb] of [
    ['k', kHeadBytes],
    ['v', vHeadBytes],
  ] as const) {
    for (let h = 0; h < heads; h++) {
      const src = buf.subarray(from, from + fromN * hb);
      out.set(toTiles ? tilesFromRows(src, n, hb, part) : rowsFromTiles(src, n, hb, part), to);
      from += fromN * hb;
      to += toN * hb;
    }
  }
  return out;
}

/**
 * One part (the keys or the values) of a layer's snapshot: n positions of `heads` heads of
 * `headBytes` each, rearranged from one order to the other (a copy; the same bytes when the orders
 * agree or there is one head).
 */
export function rearrangeKv(src: Uint8Array, n: number, heads: number, headBytes: number, from: RowOrder, to: RowOrder): Uint8Array {
  if (src.length !== n * heads * headBytes) throw new RangeError('KV snapshot does not fit this cache');
  if (from === to || heads === 1) return src;
  const out = new Uint8Array(src.length);
  for (let i = 0; i < n; i++) {
    for (let h = 0; h < heads; h++) {
      const rowAt = (i * heads + h) * headBytes;
      const headAt = (h * n + i) * headBytes;
      if (to === 'heads') out.set(src.subarray(rowAt, rowAt + headBytes), headAt);
      else out.set(src.subarray(headAt, headAt + headBytes), rowAt);
    }
  }
  return out;
}

/**
 * A layer's snapshot (n positions of keys, then of values, `heads` heads each of `kHeadBytes` and
 * `vHeadBytes`; in `tiles`, tiledPositions(n) positions as tiles) in the order `to`; the same
 * buffer when it is already in that order.
 */
export function rearrangeKvLayer(
  buf: Uint8Array,
  n: number,
  heads: number,
  kHeadBytes: number,
  vHeadBytes: number,
  from: KvSnapshotLayout,
  to: KvSnapshotLayout,
): Uint8Array {
  if (from === to) {
    const positions = from === 'tiles' ? tiledPositions(n) : n;
    if (buf.length !== positions * heads * (kHeadBytes + vHeadBytes)) throw new RangeError('KV snapshot does not fit this cache');
    return buf;
  }
  // Tiles go through `heads`, the order their heads' stretches already have.
  if (from === 'tiles')
    return rearrangeKvLayer(retileLayer(buf, n, heads, kHeadBytes, vHeadBytes, false), n, heads, kHeadBytes, vHeadBytes, 'heads', to);
  if (to === 'tiles')
    return retileLayer(rearrangeKvLayer(buf, n, heads, kHeadBytes, vHeadBytes, from, 'heads'), n, heads, kHeadBytes, vHeadBytes, true);
  const kb = n * heads * kHeadBytes;
  if (buf.length !== kb + n * heads * vHeadBytes) throw new RangeError('KV snapshot does not fit this cache');
  if (heads === 1) return buf;
  const out = new Uint8Array(buf.length);
  out.set(rearrangeKv(buf.subarray(0, kb), n, heads, kHeadBytes, from, to), 0);
  out.set(rearrangeKv(buf.subarray(kb), n, heads, vHeadBytes, from, to), kb);
  return out;
}
