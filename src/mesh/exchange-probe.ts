/**
 * The measured cost of an exchange inside a tensor-parallel group. Until a group runs, the planner
 * knows the links between its ranks only as estimates (the slower of each rank's link to the
 * coordinator, measured once while the processes were cold), and a decode step makes two
 * all-reduces per layer, so that estimate decides the prediction: on loopback namespaces it
 * predicted 0.6x the measured speed. Once the ranks have loaded, every rank runs the same series
 * of all-reduces of one token's hidden state at once (TensorGroup.probe) before the first step,
 * and the slowest rank's median becomes the link between each two of them: the latency that,
 * with the bytes over the estimated bandwidth, makes the measured time (planner/all-reduce.ts).
 */
import { frameJson, jsonPayload, type PeerConnection } from '../cluster/index.js';
import { exchangeBytes } from '../planner/all-reduce.js';
import { linkBetween } from '../planner/links.js';
import type { ExchangeDtype, LinkInfo, PlanRequest } from '../planner/types.js';
import { CairnError } from '../util/errors.js';
import { MeshFrame, type ExchangeProbe } from './protocol.js';
import type { TensorGroup } from './tensor-group.js';

/** All-reduces of a probe at most: the first half warms the path up, the median of the second is kept. */
export const PROBE_ROUNDS = 600;
/** Fewest all-reduces of a probe. */
const MIN_PROBE_ROUNDS = 20;
/** Seconds a probe aims to take at most, by the estimate of one all-reduce (slow links get fewer rounds). */
const PROBE_BUDGET_SECONDS = 2;

/** Rounds of a probe whose all-reduces are estimated at `estimatedSeconds` each. */
export function probeRounds(estimatedSeconds: number): number {
  const fit = Math.floor(PROBE_BUDGET_SECONDS / Math.max(estimatedSeconds, 1e-9));
  return Math.max(MIN_PROBE_ROUNDS, Math.min(PROBE_ROUNDS, fit));
}
/** A probe that takes longer than this fails (a rank that never joins it). */
const PROBE_TIMEOUT_MS = 60_000;

/** One rank of a group as the probe reaches it: this process's own group, or a node's connection. */
export type ProbeRank = { readonly nodeId: string } & ({ readonly local: TensorGroup } | { readonly conn: PeerConnection });

/** Runs the probe on every rank at once; the slowest rank's median seconds of one all-reduce. */
export async function probeGroup(ranks: readonly ProbeRank[], probe: ExchangeProbe): Promise<number> {
  const times = await Promise.all(
    ranks.map(async (r) => {
      if ('local' in r) return r.local.probe(probe.rounds, probe.values);
      const p = jsonPayload(probe);
      const reply = frameJson(await r.conn.request(MeshFrame.exchangeProbe, p.meta, p.payload, { timeoutMs: PROBE_TIMEOUT_MS })) as { seconds?: unknown };
      const s = reply?.seconds;
      if (typeof s !== 'number' || !Number.isFinite(s) || s < 0 || s > PROBE_TIMEOUT_MS / 1000) {
        throw new CairnError('CLUSTER_PROTOCOL', `node ${r.nodeId} answered an exchange probe with ${String(s)} seconds`);
      }
      return s;
    }),
  );
  return Math.max(...times);
}

/**
 * The links between every two of a group's ranks that make one direct all-reduce of `values`
 * (in `dtype`) cost the measured `seconds`: latency = seconds - (k - 1) x bytes / bandwidth, the
 * bandwidth as the request had it (a token's exchange is too small to measure it by).
 */
export function measuredGroupLinks(req: PlanRequest, nodeIds: readonly string[], seconds: number, values: number, dtype: ExchangeDtype): LinkInfo[] {
  const k = nodeIds.length;
  const bytes = exchangeBytes(values, dtype);
  const out: LinkInfo[] = [];
  for (let i = 0; i < k; i++) {
    for (let j = i + 1; j < k; j++) {
      const { bytesPerSecond } = linkBetween(req, nodeIds[i], nodeIds[j]);
      out.push({ from: nodeIds[i], to: nodeIds[j], latencySeconds: Math.max(0, seconds - ((k - 1) * bytes) / bytesPerSecond), bytesPerSecond });
    }
  }
  return out;
}
