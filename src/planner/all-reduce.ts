/**
 * The cost of summing one vector across the k ranks of a tensor group (after attention-out and
 * after FFN-down, every layer). Three ways to move the bytes, each with B bytes per rank:
 *  - direct: every rank sends its partial sum to every other at once and adds what it gets:
 *    one latency, and (k-1) B through each rank's link;
 *  - ring: reduce-scatter then all-gather, 2(k-1) steps each of one latency and B/k bytes;
 *  - star: the ranks send to rank 0, which adds and sends the sum back: two latencies, and rank
 *    0's link carries (k-1) B each way (distributed-llama's root node works this way).
 * `auto` takes the cheaper of direct and ring: direct for small groups and small vectors (one
 * latency), ring where the bytes dominate. Exchanges may be compressed: f16 halves the bytes, Q8_0
 * blocks (32 int8 + an f16 scale) make them 34/128 of f32.
 */
import type { LinkCost } from './links.js';
import type { AllReduceAlgorithm, ExchangeDtype } from './types.js';

/** Bytes of `elements` values as they travel in `dtype`. */
export function exchangeBytes(elements: number, dtype: ExchangeDtype): number {
  switch (dtype) {
    case 'f32':
      return elements * 4;
    case 'f16':
      return elements * 2;
    case 'q8':
      return (elements * 34) / 32;
  }
}

/** Seconds of one all-reduce of `bytes` per rank over `k` ranks by one algorithm. */
export function allReduceSeconds(algorithm: AllReduceAlgorithm, k: number, bytes: number, link: LinkCost): number {
  if (k <= 1) return 0;
  const lat = link.latencySeconds;
  const bw = link.bytesPerSecond;
  switch (algorithm) {
    case 'direct':
      return lat + ((k - 1) * bytes) / bw;
    case 'ring':
      return 2 * (k - 1) * (lat + bytes / k / bw);
    case 'star':
      return 2 * (lat + ((k - 1) * bytes) / bw);
  }
}

/** The algorithm used and its seconds. */
export interface AllReduceCost {
  readonly algorithm: AllReduceAlgorithm;
  readonly seconds: number;
}

/** The all-reduce a group uses: the one asked for, or (auto) the cheaper of direct and ring. */
export function allReduce(k: number, bytes: number, link: LinkCost, choice: AllReduceAlgorithm | 'auto' = 'auto'): AllReduceCost {
  if (choice !== 'auto') return { algorithm: choice, seconds: allReduceSeconds(choice, k, bytes, link) };
  const direct = allReduceSeconds('direct', k, bytes, link);
  const ring = allReduceSeconds('ring', k, bytes, link);
  return ring < direct ? { algorithm: 'ring', seconds: ring } : { algorithm: 'direct', seconds: direct };
}
