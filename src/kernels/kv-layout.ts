/**
 * The two orders a saved KV prefix's bytes come in. A CPU cache keeps each head's rows in one
 * stretch (Kernels.storeKv), so its snapshots hold, per layer, every head's first n rows in turn
 * (`heads`); a GPU cache keeps every head of a position side by side (`rows`), as did the CPU cache
 * of earlier versions, whose prompt-cache files still say so. A snapshot names its order and a
 * cache of the other kind rearranges it on restore, so a saved prefix means the same to either.
 */

/** Order of a snapshot's rows: every head of a position side by side, or each head's positions in turn. */
export type KvSnapshotLayout = 'rows' | 'heads';

/** Whether a value (read from a saved prefix's head) names a snapshot order. */
export function isKvSnapshotLayout(x: unknown): x is KvSnapshotLayout {
  return x === 'rows' || x === 'heads';
}

/**
 * One part (the keys or the values) of a layer's snapshot: n positions of `heads` heads of
 * `headBytes` each, rearranged from one order to the other (a copy; the same bytes when the orders
 * agree or there is one head).
 */
export function rearrangeKv(
  src: Uint8Array,
  n: number,
  heads: number,
  headBytes: number,
  from: KvSnapshotLayout,
  to: KvSnapshotLayout,
): Uint8Array {
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
 * `vHeadBytes`) in the order `to`; the same buffer when it is already in that order.
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
  const kb = n * heads * kHeadBytes;
  if (buf.length !== kb + n * heads * vHeadBytes) throw new RangeError('KV snapshot does not fit this cache');
  if (from === to || heads === 1) return buf;
  const out = new Uint8Array(buf.length);
  out.set(rearrangeKv(buf.subarray(0, kb), n, heads, kHeadBytes, from, to), 0);
  out.set(rearrangeKv(buf.subarray(kb), n, heads, vHeadBytes, from, to), kb);
  return out;
}
