/**
 * How fast a node reads weights and computes while others work beside it. A node's figures are
 * measured (or given) with the machine to itself; nodes that run on one machine (same `machine`)
 * and compute at the same time share it. Where the machine's own speed is known (all its cores
 * at once, `machineBytesPerSecond`), they are slowed only as far as their speeds add up to more
 * than it: two one-thread nodes on a 2-core box each keep a core, and lose only what their reads
 * together exceed of its memory. Where it is not, each gets a part in proportion to its cores
 * (equally when cores are not given): two nodes on one 2-core box each get half.
 */
import type { NodeInfo } from './types.js';

/** Assumed compute rate where a node gives none: FLOP/s per byte/s of read speed (a CPU streaming quantized weights). */
export const DEFAULT_FLOPS_PER_BYTE = 4;
/** Assumed fixed cost of a step on a node where none is given (dispatch, framing, sampling), seconds. */
export const DEFAULT_STEP_OVERHEAD_SECONDS = 50e-6;

/** What a node does per second while the nodes in `busy` compute too. */
export interface NodeRates {
  /** Bytes per second of a matrix-vector product over weights of a GGML type. */
  read(weightType: string): number;
  /** FLOP/s of batched products. */
  readonly flops: number;
  /** Fixed seconds per step. */
  readonly overhead: number;
  /** The part of its machine the node has (1: alone). */
  readonly share: number;
}

/** The part of its machine `node` gets while every node of `busy` (on any machine) computes. */
export function machineShare(node: NodeInfo, busy: readonly NodeInfo[]): number {
  if (node.machine === undefined) return 1;
  const peers = busy.filter((n) => n.machine === node.machine && n.id !== node.id);
  if (peers.length === 0) return 1;
  const machine = [node, ...peers].map((n) => n.machineBytesPerSecond);
  if (machine.every((m) => m !== undefined && m > 0)) {
    const demand = node.bytesPerSecond + peers.reduce((a, n) => a + n.bytesPerSecond, 0);
    return Math.min(1, Math.min(...(machine as number[])) / demand);
  }
  const cores = (n: NodeInfo) => n.cores ?? 1;
  return cores(node) / (cores(node) + peers.reduce((a, n) => a + cores(n), 0));
}

/** The rates of `node` while the nodes in `busy` compute at the same time (itself included or not). */
export function ratesOf(node: NodeInfo, busy: readonly NodeInfo[] = []): NodeRates {
  const share = machineShare(node, busy);
  const base = node.bytesPerSecond;
  return {
    read: (t) => (node.bytesPerSecondByType?.[t] ?? base) * share,
    flops: (node.flopsPerSecond ?? base * DEFAULT_FLOPS_PER_BYTE) * share,
    overhead: node.stepOverheadSeconds ?? DEFAULT_STEP_OVERHEAD_SECONDS,
    share,
  };
}

/** Seconds to read `bytes` of weights of a type and do `flops` with them: whichever bound is slower (the roofline). */
export function workSeconds(rates: NodeRates, weightType: string, bytes: number, flops: number): number {
  if (bytes <= 0 && flops <= 0) return 0;
  return Math.max(bytes / rates.read(weightType), flops / rates.flops);
}
