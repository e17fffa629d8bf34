/**
 * Scores a plan made of groups in pipeline order. One sequence goes through the stages one after
 * another: its token time is every stage's step (batch 1, its group alone on its machines) plus
 * the hops between stages (one token's hidden state) and the token id back to the coordinator.
 * With `batch` sequences in flight the stages overlap: the batch travels as min(batch, stages)
 * micro-batches, and a cycle takes the longer of one micro-batch's trip through every stage and
 * the busiest stage's work on all of them (every node computing at once, sharing machines). A
 * prompt is read as one batch of its tokens through every stage (compute-bound where the nodes
 * give their FLOP/s), each sequence position attending to half the prompt on average.
 */
import { groupMemory, groupStep, type Group } from './group.js';
import { formatBytes } from '../util/format.js';
import { hopSeconds, linkBetween } from './links.js';
import type { Candidate, PlanKind, PlanRequest, PlanStage } from './types.js';

/** Default sequences in flight for the aggregate prediction. */
export const DEFAULT_BATCH = 8;
/** Default prompt length of the prefill prediction. */
export const DEFAULT_PROMPT_TOKENS = 512;

/** Seconds for `tokens` hidden states to go from group a's rank 0 to group b's. */
function hop(req: PlanRequest, a: Group, b: Group, bytes: number): number {
  const from = a.nodes[0].id;
  const to = b.nodes[0].id;
  return from === to ? 0 : hopSeconds(linkBetween(req, from, to), bytes);
}

/** Scores groups in pipeline order as one candidate. */
export function scoreGroups(req: PlanRequest, kind: PlanKind, label: string, groups: readonly Group[]): Candidate {
  const m = req.model;
  const batch = Math.max(1, req.batch ?? DEFAULT_BATCH);
  const prompt = Math.max(1, req.promptTokens ?? DEFAULT_PROMPT_TOKENS);
  const context = Math.max(0, req.contextTokens ?? 0);
  const all = groups.flatMap((g) => g.nodes);
  const S = groups.length;
  const hops = (tokens: number, perToken: number) =>
    groups.map((g, s) => (s + 1 < S ? hop(req, g, groups[s + 1], tokens * perToken) : hop(req, g, groups[0], 4 * tokens)));

  // One sequence: stages in turn, each group alone on its machines.
  const steps = groups.map((g) => groupStep(req, g, 1, g.nodes, context));
  const f16 = m.activationBytesPerToken;
  const hop32 = hops(1, 2 * f16);
  const hop16 = hops(1, f16);
  const stepSum = steps.reduce((a, s) => a + s.seconds, 0);
  const total32 = stepSum + hop32.reduce((a, b) => a + b, 0);
  const extra = hop32.reduce((a, b) => a + b, 0) - hop16.reduce((a, b) => a + b, 0);
  const activationDtype = extra > 0.05 * total32 ? 'f16' : 'f32';
  const actBytes = activationDtype === 'f32' ? 2 * f16 : f16;
  const hop1 = activationDtype === 'f32' ? hop32 : hop16;
  const decodeSeconds = stepSum + hop1.reduce((a, b) => a + b, 0);

  // Many sequences: micro-batches overlap in the stages, every node busy.
  const micro = Math.min(batch, S);
  const each = batch / micro;
  const hopB = hops(each, actBytes);
  const stageB = groups.map((g, s) => groupStep(req, g, each, all, context).seconds + hopB[s]);
  const cycle = Math.max(
    stageB.reduce((a, b) => a + b, 0),
    micro * Math.max(...stageB),
  );

  // A prompt: all its tokens through each stage in turn.
  const hopP = hops(prompt, actBytes);
  const prefillSeconds = groups.reduce((a, g, s) => a + groupStep(req, g, prompt, g.nodes, prompt / 2).seconds + hopP[s], 0);

  const stages: PlanStage[] = [];
  const nodes: Candidate['nodes'][number][] = [];
  groups.forEach((g, s) => {
    const mem = groupMemory(req, g);
    const k = g.nodes.length;
    g.nodes.forEach((n, r) => {
      const width = majorityWidth(req, g);
      stages.push({
        nodeId: n.id,
        layerStart: g.start,
        layerEnd: g.end,
        splitRank: r,
        splitCount: k,
        memoryBytes: mem[r],
        stage: s,
        ...(k > 1 ? { splitShares: g.shares } : {}),
        ...(k > 1 && g.mode === 'tensor' && g.heads ? { heads: g.heads[r].heads, kvHeads: g.heads[r].kvHeads } : {}),
        ...(k > 1 && g.mode === 'tensor' && g.columns && width !== undefined ? { ffnColumns: g.columns.get(width)?.[r] } : {}),
        ...(k > 1 && g.experts ? { experts: g.experts[r] } : {}),
        ...(k > 1 && g.mode === 'expert' ? { home: r === 0 } : {}),
      });
      nodes.push({ nodeId: n.id, memoryBytes: mem[r], limitBytes: n.memoryBytes, fits: mem[r] <= n.memoryBytes });
    });
  });
  const over = nodes.filter((n) => !n.fits);
  const problem = over.length
    ? `does not fit: ${over.map((n) => `${n.nodeId} needs ${formatBytes(n.memoryBytes)} of ${formatBytes(n.limitBytes)}`).join(', ')}`
    : groups.find((g) => g.problem)?.problem;
  // The all-reduce of the group that spends most on it per token.
  let allReduce: Candidate['allReduce'];
  steps.forEach((st, s) => {
    if (!st.allReduce) return;
    const perToken = 2 * (groups[s].end - groups[s].start) * st.allReduce.seconds;
    if (!allReduce || perToken > allReduce.secondsPerToken)
      allReduce = { algorithm: st.allReduce.algorithm, dtype: req.exchangeDtype ?? 'f32', secondsPerToken: perToken };
  });
  return {
    kind,
    label,
    stages,
    nodes,
    fits: !problem && nodes.every((n) => n.fits),
    decodeTokensPerSecond: 1 / decodeSeconds,
    aggregateTokensPerSecond: batch / cycle,
    batch,
    prefillTokensPerSecond: prompt / prefillSeconds,
    breakdown: {
      compute: steps.reduce((a, s) => a + s.compute, 0),
      exchange: steps.reduce((a, s) => a + s.exchange, 0) + hop1.reduce((a, b) => a + b, 0),
      overhead: steps.reduce((a, s) => a + s.overhead, 0),
    },
    ...(allReduce ? { allReduce } : {}),
    activationDtype,
    ...(problem ? { problem } : {}),
  };
}

/** The FFN width most of a group's layers have (the columns a stage reports). */
function majorityWidth(req: PlanRequest, g: Group): number | undefined {
  const widths = req.model.shape?.layers.slice(g.start, g.end).map((l) => l.ffnWidth);
  if (!widths?.length) return undefined;
  const count = new Map<number, number>();
  for (const w of widths) count.set(w, (count.get(w) ?? 0) + 1);
  return [...count.entries()].sort((a, b) => b[1] - a[1])[0][0];
}
