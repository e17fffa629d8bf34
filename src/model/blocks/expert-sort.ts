/**
 * llama.cpp picks a token's experts with `std::sort` over all expert indices, descending by score
 * (ggml's argsort), and takes the first k. Which experts win a tie, and the order of the chosen
 * (the order their outputs are summed in), are therefore those of libstdc++'s introsort: for 16
 * entries or fewer a plain insertion sort (ties keep the lower index first), beyond that the
 * partition order. `sortIndicesDescending` replays that algorithm step for step (GCC's
 * bits/stl_algo.h and stl_heap.h), so ties resolve exactly as in llama.cpp; `topKDescending`
 * takes a fast path when the top k are untied, where every sort agrees.
 */

/** Sizes below which libstdc++'s introsort stops partitioning (`_S_threshold`). */
const THRESHOLD = 16;

/**
 * Sorts idx[0..n) (a permutation of indices into `s`) by descending s, as libstdc++'s std::sort
 * with `s[a] > s[b]` would. `s` must hold no NaN (a NaN breaks the strict weak order the
 * algorithm's unguarded loops rely on; callers map NaN to -Infinity first).
 */
export function sortIndicesDescending(idx: Int32Array, n: number, s: Float32Array): void {
  if (n < 2) return;
  introsortLoop(idx, 0, n, 2 * Math.floor(Math.log2(n)), s);
  finalInsertionSort(idx, 0, n, s);
}

function introsortLoop(idx: Int32Array, first: number, last: number, depth: number, s: Float32Array): void {
  while (last - first > THRESHOLD) {
    if (depth === 0) {
      heapSort(idx, first, last, s);
      return;
    }
    depth--;
    const cut = partitionPivot(idx, first, last, s);
    introsortLoop(idx, cut, last, depth, s);
    last = cut;
  }
}

function swap(idx: Int32Array, a: number, b: number): void {
  const t = idx[a];
  idx[a] = idx[b];
  idx[b] = t;
}

/** `__unguarded_partition_pivot`: median of three moved to `first`, then Hoare partition. */
function partitionPivot(idx: Int32Array, first: number, last: number, s: Float32Array): number {
  const mid = first + ((last - first) >> 1);
  moveMedianToFirst(idx, first, first + 1, mid, last - 1, s);
  const pivot = s[idx[first]];
  let lo = first + 1;
  let hi = last;
  for (;;) {
    // The pivot value sits at both ends' sentinels, so these loops stay in range for any strict
    // weak order; the bounds only guard against a caller breaking that contract.
    while (lo < last && s[idx[lo]] > pivot) lo++;
    hi--;
    while (hi > first && pivot > s[idx[hi]]) hi--;
    if (!(lo < hi)) return lo;
    swap(idx, lo, hi);
    lo++;
  }
}

function moveMedianToFirst(idx: Int32Array, result: number, a: number, b: number, c: number, s: Float32Array): void {
  const va = s[idx[a]];
  const vb = s[idx[b]];
  const vc = s[idx[c]];
  if (va > vb) {
    if (vb > vc) swap(idx, result, b);
    else if (va > vc) swap(idx, result, c);
    else swap(idx, result, a);
  } else if (va > vc) swap(idx, result, a);
  else if (vb > vc) swap(idx, result, c);
  else swap(idx, result, b);
}

function finalInsertionSort(idx: Int32Array, first: number, last: number, s: Float32Array): void {
  if (last - first > THRESHOLD) {
    insertionSort(idx, first, first + THRESHOLD, s);
    for (let i = first + THRESHOLD; i < last; i++) unguardedLinearInsert(idx, i, first, s);
  } else insertionSort(idx, first, last, s);
}

function insertionSort(idx: Int32Array, first: number, last: number, s: Float32Array): void {
  if (first === last) return;
  for (let i = first + 1; i < last; i++) {
    const v = idx[i];
    if (s[v] > s[idx[first]]) {
      idx.copyWithin(first + 1, first, i);
      idx[first] = v;
    } else unguardedLinearInsert(idx, i, first, s);
  }
}

function unguardedLinearInsert(idx: Int32Array, last: number, lowest: number, s: Float32Array): void {
  const v = idx[last];
  const sv = s[v];
  let next = last - 1;
  while (next >= lowest && sv > s[idx[next]]) {
    idx[last] = idx[next];
    last = next;
    next--;
  }
  idx[last] = v;
}

/** `std::__partial_sort(first, last, last)`: make_heap, then sort_heap (libstdc++'s exact sift order). */
function heapSort(idx: Int32Array, first: number, last: number, s: Float32Array): void {
  const len = last - first;
  if (len >= 2) {
    for (let parent = (len - 2) >> 1; ; parent--) {
      adjustHeap(idx, first, parent, len, idx[first + parent], s);
      if (parent === 0) break;
    }
  }
  while (last - first > 1) {
    last--;
    const v = idx[last];
    idx[last] = idx[first];
    adjustHeap(idx, first, 0, last - first, v, s);
  }
}

/** `__adjust_heap` with the comparator `s[a] > s[b]` (a min-heap on s, so sort_heap leaves s descending). */
function adjustHeap(idx: Int32Array, first: number, hole: number, len: number, value: number, s: Float32Array): void {
  const top = hole;
  let child = hole;
  while (child < (len - 1) >> 1) {
    child = 2 * (child + 1);
    if (s[idx[first + child]] > s[idx[first + child - 1]]) child--;
    idx[first + hole] = idx[first + child];
    hole = child;
  }
  if ((len & 1) === 0 && child === (len - 2) >> 1) {
    child = 2 * (child + 1);
    idx[first + hole] = idx[first + child - 1];
    hole = child - 1;
  }
  // __push_heap
  const sv = s[value];
  let parent = (hole - 1) >> 1;
  while (hole > top && s[idx[first + parent]] > sv) {
    idx[first + hole] = idx[first + parent];
    hole = parent;
    parent = (hole - 1) >> 1;
  }
  idx[first + hole] = value;
}

/** Caller-owned scratch of `topKDescending` for up to `n` scores and `k` picks. */
export class TopKScratch {
  readonly values: Float32Array;
  readonly indices: Int32Array;
  readonly order: Int32Array;

  constructor(n: number, k: number) {
    this.values = new Float32Array(k + 1);
    this.indices = new Int32Array(k + 1);
    this.order = new Int32Array(n);
  }
}

/**
 * Writes the first k of `sortIndicesDescending` over s[0..n) to out[at..at+k): the k best indices
 * in llama.cpp's order (k <= n). When the k best scores are distinct and above all the others,
 * every correct sort agrees on them, so one pass finds them; otherwise the whole sort is replayed.
 */
export function topKDescending(s: Float32Array, n: number, k: number, out: Int32Array, at: number, scratch: TopKScratch): void {
  const top = scratch.values;
  const topIdx = scratch.indices;
  const m = Math.min(k + 1, n);
  let count = 0;
  for (let i = 0; i < n; i++) {
    const v = s[i];
    let j: number;
    if (count < m) j = count++;
    else if (v > top[m - 1]) j = m - 1;
    else continue;
    // After any equal values: the kept ones stay in index order among equals.
    while (j > 0 && v > top[j - 1]) {
      top[j] = top[j - 1];
      topIdx[j] = topIdx[j - 1];
      j--;
    }
    top[j] = v;
    topIdx[j] = i;
  }
  let untied = true;
  for (let j = 1; j < m && untied; j++) untied = top[j - 1] > top[j];
  if (untied) {
    for (let j = 0; j < k; j++) out[at + j] = topIdx[j];
    return;
  }
  const order = scratch.order;
  for (let i = 0; i < n; i++) order[i] = i;
  sortIndicesDescending(order, n, s);
  for (let j = 0; j < k; j++) out[at + j] = order[j];
}
