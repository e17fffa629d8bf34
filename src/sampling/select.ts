/**
 * Order statistics over a logits array without sorting the whole vocabulary: argmax, and the top
 * k ids by a bounded heap (O(n log k)) written into a caller's buffer. Ties always go to the lower
 * token id, so results never depend on the engine's sort. NaN counts as -Infinity.
 */

/** True when token `a` (value `va`) ranks above token `b` (value `vb`). */
function ranksAbove(va: number, a: number, vb: number, b: number): boolean {
  return va > vb || (va === vb && a < b);
}

function valueAt(values: ArrayLike<number>, id: number): number {
  const v = values[id];
  return v !== v ? -Infinity : v;
}

/** Index of the largest value; ties go to the lowest index. Throws on an empty array. */
export function argmax(values: ArrayLike<number>): number {
  if (values.length === 0) throw new RangeError('argmax of an empty array');
  let best = 0;
  let bestValue = valueAt(values, 0);
  for (let i = 1; i < values.length; i++) {
    const v = values[i];
    if (v > bestValue) {
      best = i;
      bestValue = v;
    }
  }
  return best;
}

/**
 * Writes the ids of the `k` highest values into `out[0..k)`, best first, and returns how many it
 * wrote (k clamped to the array length). `out` must hold at least that many entries.
 */
export function selectTop(values: ArrayLike<number>, k: number, out: Int32Array): number {
  const n = values.length;
  const m = Math.min(Math.max(0, Math.floor(k)), n);
  if (m === 0) return 0;
  if (out.length < m) throw new RangeError(`selectTop needs a buffer of ${m}, got ${out.length}`);
  // out[0..m) is a min-heap by rank: its root is the weakest token kept so far.
  for (let i = 0; i < m; i++) {
    out[i] = i;
    siftUp(values, out, i);
  }
  // Every id scanned from here on is above every id in the heap, so on a tie the heap's wins: only
  // a strictly greater value gets in (NaN never does).
  let rootValue = valueAt(values, out[0]);
  for (let id = nextAbove(values, m, n, rootValue); id < n; id = nextAbove(values, id + 1, n, rootValue)) {
    out[0] = id;
    siftDown(values, out, 0, m);
    rootValue = valueAt(values, out[0]);
  }
  // Heap sort: move the weakest to the end repeatedly, leaving the best first.
  for (let end = m - 1; end > 0; end--) {
    const weakest = out[0];
    out[0] = out[end];
    out[end] = weakest;
    siftDown(values, out, 0, end);
  }
  return m;
}

/** Vocabularies of up to this many ids are sorted by numeric keys (21 bits of id beside 32 of value fill a double exactly). */
const KEYED_SORT_IDS = 1 << 21;
const f32 = new Float32Array(1);
const f32Bits = new Uint32Array(f32.buffer);

/**
 * Sorts ids[0..count) best first (ties to the lower id, NaN as -Infinity). Each id becomes one
 * double, its value's bits flipped into descending order above the id, so a plain numeric sort of
 * typed doubles does it (3x faster than a comparator over 12k ids); `keys` is scratch of count or
 * more entries. Larger vocabularies take the comparator.
 */
export function sortByRank(values: Float32Array, ids: Int32Array, count: number, keys: Float64Array): void {
  if (values.length > KEYED_SORT_IDS || keys.length < count) {
    ids.subarray(0, count).sort((a, b) => (ranksAbove(valueAt(values, a), a, valueAt(values, b), b) ? -1 : 1));
    return;
  }
  for (let i = 0; i < count; i++) {
    const v = values[ids[i]];
    f32[0] = v !== v ? -Infinity : v + 0; // + 0: -0 ranks as +0
    const bits = f32Bits[0];
    const ordered = bits & 0x80000000 ? ~bits >>> 0 : (bits | 0x80000000) >>> 0;
    keys[i] = (0xffffffff - ordered) * KEYED_SORT_IDS + ids[i];
  }
  const sorted = keys.subarray(0, count).sort();
  for (let i = 0; i < count; i++) ids[i] = sorted[i] % KEYED_SORT_IDS;
}

/**
 * The first id from `from` on whose value is above `threshold` (n if none). A loop of its own: with
 * the heap's calls in the same loop, V8 compiled the scan of a 128k vocabulary 5x slower (0.59
 * against 0.11 ms), and that scan is most of what sampling a token costs.
 */
function nextAbove(values: ArrayLike<number>, from: number, n: number, threshold: number): number {
  for (let id = from; id < n; id++) if (values[id] > threshold) return id;
  return n;
}

function siftUp(values: ArrayLike<number>, heap: Int32Array, i: number): void {
  const id = heap[i];
  const v = valueAt(values, id);
  while (i > 0) {
    const parent = (i - 1) >> 1;
    const pid = heap[parent];
    // A parent that ranks above its child violates the min-heap order.
    if (!ranksAbove(valueAt(values, pid), pid, v, id)) break;
    heap[i] = pid;
    i = parent;
  }
  heap[i] = id;
}

function siftDown(values: ArrayLike<number>, heap: Int32Array, i: number, size: number): void {
  const id = heap[i];
  const v = valueAt(values, id);
  for (;;) {
    let child = 2 * i + 1;
    if (child >= size) break;
    let cid = heap[child];
    let cv = valueAt(values, cid);
    const right = child + 1;
    if (right < size) {
      const rid = heap[right];
      const rv = valueAt(values, rid);
      if (ranksAbove(cv, cid, rv, rid)) {
        child = right;
        cid = rid;
        cv = rv;
      }
    }
    if (!ranksAbove(v, id, cv, cid)) break;
    heap[i] = cid;
    i = child;
  }
  heap[i] = id;
}
