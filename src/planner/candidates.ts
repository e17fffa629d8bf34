/**
 * The plans the planner weighs, and the choice among them. For the given nodes it scores:
 *  - pipeline: makePlan's consecutive layer ranges, one node each (and the coordinator alone);
 *  - tensor x k (k = 2..n): every layer split over the coordinator and the k-1 fastest others;
 *  - expert x k (Mixture-of-Experts models): routed experts spread over the same k nodes;
 *  - hybrid: fast-linked nodes grouped (tensor or expert groups, whichever is faster), the groups
 *    pipeline stages, a node behind a slow link a stage of its own.
 * The choice is the fastest decode of one sequence among plans that fit (or the best aggregate or
 * prefill speed when the request asks); a plan that does not fit is listed with the reason.
 */
import { isCairnError } from '../util/errors.js';
import { makeGroup, rankOrder, type Group } from './group.js';
import { linkGroupings } from './link-groups.js';
import { splitLayers, type GroupSpec } from './layer-split.js';
import { shapeOf } from './model-shape.js';
import { makePlan } from './plan.js';
import { scoreGroups } from './score.js';
import type { Candidate, NodeInfo, PlanChoice, PlanRequest } from './types.js';

/** Every candidate plan over the request's nodes (of the kinds it allows), scored. */
export function planCandidates(req: PlanRequest): Candidate[] {
  const all = allCandidates(req);
  return req.kinds ? all.filter((c) => req.kinds!.includes(c.kind)) : all;
}

function allCandidates(req: PlanRequest): Candidate[] {
  const nodes = rankOrder(req.nodes);
  if (nodes.length === 0) return [];
  const out: Candidate[] = [pipelineCandidate(req, nodes)];
  // The coordinator alone: where the model fits one machine, often the plan to beat.
  if (nodes.length > 1) out.unshift(pipelineCandidate({ ...req, nodes: [nodes[0]] }, [nodes[0]]));
  const { shape, splittable } = shapeOf(req.model);
  if (!splittable) return out;
  const moe = shape.layers.some((l) => l.experts > 1);
  // Nodes that run whole stages only (on a GPU) join no group.
  const groupable = nodes.filter((n) => !n.pipelineOnly);
  for (let k = 2; k <= groupable.length; k++) {
    out.push(tensorPlan(req, groupable.slice(0, k)));
    if (moe) out.push(expertPlan(req, groupable.slice(0, k)));
  }
  for (const grouping of linkGroupings(req, nodes)) {
    if (grouping.some((g) => g.length > 1 && g.some((n) => n.pipelineOnly))) continue;
    const c = hybridPlan(req, grouping, moe);
    if (c) out.push(c);
  }
  return out;
}

/** The candidates and the chosen one: the best of those that fit by the request's objective. */
export function choosePlan(req: PlanRequest): PlanChoice {
  const candidates = planCandidates(req);
  const objective = req.objective ?? 'decode';
  const score = (c: Candidate) =>
    objective === 'aggregate' ? c.aggregateTokensPerSecond : objective === 'prefill' ? c.prefillTokensPerSecond : c.decodeTokensPerSecond;
  const what =
    objective === 'aggregate'
      ? `aggregate decode at batch ${candidates[0]?.batch ?? 1}`
      : objective === 'prefill'
        ? 'prefill'
        : 'decode of one sequence';
  const fitting = candidates.filter((c) => c.fits).sort((a, b) => score(b) - score(a));
  const chosen = fitting[0];
  if (!chosen) {
    const why = candidates.length ? (candidates.find((c) => c.problem)?.problem ?? 'no plan fits') : 'no nodes';
    return { candidates, why: `no plan fits the nodes: ${why}` };
  }
  const next = fitting[1];
  const tps = (c: Candidate) => `${score(c) >= 100 ? score(c).toFixed(0) : score(c).toPrecision(3)} tok/s`;
  const why = `${chosen.label}: the fastest ${what} among the ${fitting.length} plan${fitting.length === 1 ? '' : 's'} that fit (${tps(chosen)}${next ? `; next ${next.label} at ${tps(next)}` : ''})`;
  return { candidates, chosen, why };
}

/** Layers split over the nodes one after another: makePlan's ranges, or where it finds none, ranges by speed (which then do not fit). */
export function pipelinePlan(req: PlanRequest): Candidate {
  return pipelineCandidate(req, rankOrder(req.nodes));
}

function pipelineCandidate(req: PlanRequest, nodes: readonly NodeInfo[]): Candidate {
  let groups: Group[];
  try {
    const plan = makePlan(req);
    groups = plan.stages.map((s) => makeGroup(req, [nodes.find((n) => n.id === s.nodeId)!], 'tensor', s.layerStart, s.layerEnd));
  } catch (err) {
    if (!isCairnError(err, 'CLUSTER_PLAN')) throw err;
    const used = nodes.slice(0, Math.min(nodes.length, req.model.nLayer));
    groups = splitLayers(
      req,
      used.map((n) => ({ nodes: [n], mode: 'tensor' })),
    )!;
  }
  return scoreGroups(req, 'pipeline', `pipeline x${groups.length}`, groups);
}

/** Every layer split over `nodes` by heads, FFN columns and routed experts (one node: the whole model on it). */
export function tensorPlan(req: PlanRequest, nodes: readonly NodeInfo[]): Candidate {
  return scoreGroups(req, 'tensor', `tensor x${nodes.length}`, [makeGroup(req, nodes, 'tensor', 0, req.model.nLayer)]);
}

/** The routed experts spread over `nodes`, attention and shared parts on the first. */
export function expertPlan(req: PlanRequest, nodes: readonly NodeInfo[]): Candidate {
  return scoreGroups(req, 'expert', `expert x${nodes.length}`, [makeGroup(req, nodes, 'expert', 0, req.model.nLayer)]);
}

/** Groups as pipeline stages: the coordinator's group first, then the faster groups. */
export function hybridPlan(req: PlanRequest, grouping: readonly (readonly NodeInfo[])[], moe = false): Candidate | undefined {
  const ordered = [...grouping]
    .map((g) => rankOrder(g))
    .sort((a, b) => Number(!!b[0].coordinator) - Number(!!a[0].coordinator) || speed(b) - speed(a) || a[0].id.localeCompare(b[0].id));
  const label = `hybrid ${ordered.map((g) => g.map((n) => n.id).join('+')).join(' > ')}`;
  const modes: GroupSpec['mode'][] = moe ? ['tensor', 'expert'] : ['tensor'];
  let best: Candidate | undefined;
  for (const mode of modes) {
    const groups = splitLayers(
      req,
      ordered.map((g) => ({ nodes: g, mode: g.length > 1 ? mode : 'tensor' })),
    );
    if (!groups) continue;
    const c = scoreGroups(req, 'hybrid', moe ? `${label} (${mode})` : label, groups);
    if (!best || Number(c.fits) - Number(best.fits) > 0 || (c.fits === best.fits && c.decodeTokensPerSecond > best.decodeTokensPerSecond))
      best = c;
  }
  return best;
}

function speed(nodes: readonly NodeInfo[]): number {
  return nodes.reduce((a, n) => a + n.bytesPerSecond, 0);
}
