/**
 * The cost model: predicted decode speed of a plan. A decode step streams the weights each stage
 * reads per token once (memory-bound: active bytes / measured speed; a Mixture-of-Experts layer
 * reads only its chosen experts, so its stage is sized by total bytes but timed by active ones), and crosses every link once with one token's
 * activations (latency + bytes / bandwidth), plus the hop back to the coordinator with the token id.
 * With many sequences in flight the stages overlap, and throughput is set by the slowest stage.
 */
import type { LinkInfo, PlanRequest, PlanStage } from './types.js';

function link(links: readonly LinkInfo[], from: string, to: string): LinkInfo | undefined {
  return links.find((l) => (l.from === from && l.to === to) || (l.from === to && l.to === from));
}

/** Seconds one token spends crossing from stage `a`'s node to stage `b`'s node. */
function hopSeconds(req: PlanRequest, from: string, to: string, bytes: number): number {
  if (from === to) return 0;
  const l = link(req.links, from, to);
  // Unmeasured links are assumed to be gigabit Ethernet.
  const latency = l?.latencySeconds ?? 150e-6;
  const bw = l?.bytesPerSecond ?? 110e6;
  return latency + bytes / bw;
}

/** Predicted single-sequence and pipelined decode speed of a plan, and its activation dtype. */
export function predictPlan(
  req: PlanRequest,
  stages: readonly PlanStage[],
): { predictedTokensPerSecond: number; predictedPipelinedTokensPerSecond: number; activationDtype: 'f16' | 'f32' } {
  const m = req.model;
  const speed = new Map(req.nodes.map((n) => [n.id, n.bytesPerSecond]));
  let total = 0;
  let slowest = 0;
  stages.forEach((s, i) => {
    let bytes = 0;
    for (let l = s.layerStart; l < s.layerEnd; l++) bytes += m.layerActiveBytes[l];
    if (s.layerEnd === m.nLayer) bytes += m.headActiveBytes;
    const compute = bytes / (speed.get(s.nodeId) ?? 1);
    const next = stages[i + 1];
    const hop = next ? hopSeconds(req, s.nodeId, next.nodeId, m.activationBytesPerToken) : hopSeconds(req, s.nodeId, stages[0].nodeId, 4);
    total += compute + hop;
    slowest = Math.max(slowest, compute + hop);
  });
  // Sending f32 instead of f16 adds half the activation bytes on every hop between stages.
  let extra = 0;
  for (let i = 0; i + 1 < stages.length; i++) {
    const from = stages[i].nodeId;
    const to = stages[i + 1].nodeId;
    if (from === to) continue;
    const bw = link(req.links, from, to)?.bytesPerSecond ?? 110e6;
    extra += m.activationBytesPerToken / bw;
  }
  return { predictedTokensPerSecond: 1 / total, predictedPipelinedTokensPerSecond: 1 / slowest, activationDtype: extra > 0.05 * total ? 'f16' : 'f32' };
}
