/**
 * Which plan the coordinator runs, from the planner's candidates: the kinds this mesh can run
 * (pipelines, and tensor- or expert-parallel groups of remote nodes, alone or as pipeline stages)
 * and the user's --parallelism.
 */
import { choosePlan, expertPlan, hybridPlan, pipelinePlan, tensorPlan } from '../planner/candidates.js';
import { shapeOf } from '../planner/model-shape.js';
import { makePlan } from '../planner/plan.js';
import type { Candidate, Plan, PlanRequest } from '../planner/types.js';
import { CairnError } from '../util/errors.js';

/** A candidate of the planner as the plan the coordinator runs. */
function asPlan(c: Candidate): Plan {
  return {
    stages: c.stages,
    predictedTokensPerSecond: c.decodeTokensPerSecond,
    predictedPipelinedTokensPerSecond: c.aggregateTokensPerSecond,
    activationDtype: c.activationDtype,
  };
}

/** How much faster a plan with tensor groups must be predicted to be before `auto` leaves a pipeline for it. */
const GROUP_MARGIN = 1.1;

/**
 * The planner's choice among the plans this mesh runs (`hybrid`: a stage of its own, the
 * coordinator's where it computes, ahead of a group of the other nodes): pipelines, and tensor- or
 * expert-parallel groups (alone or as pipeline stages). The coordinator, where it computes, is
 * rank 0 of its group (the other ranks reach it over the connections it holds to them), and its
 * stage the first. `tensor`: every layer split over every node that computes; `expert`: the routed
 * experts of a Mixture-of-Experts model spread over them, the first holding the rest. `auto`: makePlan's pipeline over every node (a node added
 * is a node used), unless a plan with groups that also uses every node is predicted faster at
 * decoding one sequence by GROUP_MARGIN (its exchanges are what the cost model knows least about).
 */
export function chooseRunnable(
  req: PlanRequest,
  localId: string,
  parallelism: 'auto' | 'tensor' | 'expert' | 'hybrid',
  exchange?: 'f32' | 'f16' | 'q8',
): Plan {
  const withExchange: PlanRequest = { ...req, exchangeDtype: exchange ?? 'f32' };
  if (parallelism === 'hybrid') {
    // A stage of its own (the coordinator's, or the first node's), then the other nodes as one group.
    const local = req.nodes.filter((n) => n.id === localId);
    const remote = req.nodes.filter((n) => n.id !== localId);
    const groups = local.length ? [local, remote] : [remote.slice(0, 1), remote.slice(1)];
    if (groups[1].length < 2) {
      throw new CairnError(
        'CLUSTER_PLAN',
        `a hybrid plan needs a group of at least 2 nodes after the first stage; ${req.nodes.length} node${req.nodes.length === 1 ? ' is' : 's are'} up`,
      );
    }
    const c = hybridPlan(withExchange, groups);
    if (!c?.fits)
      throw new CairnError(
        'CLUSTER_PLAN',
        `a stage followed by a group of ${groups[1].length} nodes does not fit: ${c?.problem ?? 'the layers cannot be split so'}`,
      );
    return asPlan(c);
  }
  const moe = shapeOf(req.model).shape.layers.some((l) => l.experts > 1);
  if (parallelism === 'tensor' || parallelism === 'expert') {
    // Every node that computes, the coordinator (where it does) as rank 0.
    const all = req.nodes;
    const what = parallelism === 'tensor' ? 'tensor-parallel' : 'expert-parallel';
    if (all.length < 2) {
      throw new CairnError(
        'CLUSTER_PLAN',
        `a ${what} plan needs at least 2 nodes that compute (the coordinator counts unless --no-local-compute); ${all.length} ${all.length === 1 ? 'is' : 'are'} up`,
      );
    }
    if (parallelism === 'expert') {
      if (!moe) throw new CairnError('CLUSTER_PLAN', 'an expert-parallel plan needs a Mixture-of-Experts model; this one has no routed experts');
      const c = expertPlan(withExchange, all);
      if (!c.fits) throw new CairnError('CLUSTER_PLAN', `the experts spread over the ${all.length} nodes do not fit: ${c.problem ?? 'not enough memory'}`);
      return asPlan(c);
    }
    const c = tensorPlan(withExchange, all);
    // A shape that cannot be cut that many ways is no question of memory: said as it is.
    if (!c.fits) throw new CairnError('CLUSTER_PLAN', `every layer split over the ${all.length} nodes ${c.problem && !c.problem.startsWith('does not fit') ? 'is not possible' : 'does not fit'}: ${c.problem ?? 'not enough memory'}`);
    return asPlan(c);
  }
  const pipeline = makePlan(req);
  const scored = pipelinePlan(withExchange);
  const all = new Set(req.nodes.map((n) => n.id));
  // The planner's groups put the coordinator first; this mesh runs groups of remote nodes, so
  // their candidates are added: every layer split over the remote nodes, and the coordinator's
  // own stage ahead of such a group.
  const local = req.nodes.filter((n) => n.id === localId);
  const remote = req.nodes.filter((n) => n.id !== localId);
  const extra: Candidate[] = [];
  if (remote.length >= 2) {
    extra.push(tensorPlan({ ...withExchange, nodes: remote }, remote));
    if (moe) extra.push(expertPlan({ ...withExchange, nodes: remote }, remote));
    if (local.length) {
      const h = hybridPlan(withExchange, [local, remote]);
      if (h) extra.push(h);
    }
  }
  // The coordinator takes part only as rank 0 of the first stage (rankOrder puts it there).
  const runnable = [...choosePlan({ ...withExchange, kinds: ['tensor', 'expert', 'hybrid'] }).candidates, ...extra].filter(
    (c) => c.fits && c.stages.every((s, i) => s.nodeId !== localId || (i === 0 && s.splitRank === 0)),
  );
  const usesAll = runnable.filter((c) => new Set(c.stages.map((s) => s.nodeId)).size === all.size);
  const grouped = usesAll.sort((a, b) => b.decodeTokensPerSecond - a.decodeTokensPerSecond)[0];
  if (grouped && grouped.decodeTokensPerSecond > GROUP_MARGIN * scored.decodeTokensPerSecond) return asPlan(grouped);
  // The pipeline as makePlan cut it, with the cost model's predictions of it.
  return {
    ...pipeline,
    predictedTokensPerSecond: scored.decodeTokensPerSecond,
    predictedPipelinedTokensPerSecond: scored.aggregateTokensPerSecond,
  };
}
