/**
 * The cost model's predictions for a plan already chosen, under the request's inputs. Once a plan
 * runs, some of its inputs become measured rather than estimated (the cost of one exchange between
 * the ranks of a group), and the plan is predicted again from them without being chosen again.
 */
import { makeGroup, type Group } from './group.js';
import { scoreGroups } from './score.js';
import type { Candidate, PlanKind, PlanRequest, PlanStage } from './types.js';

/**
 * The plan's stages as the planner's groups (ranks of one group share their layer range), scored
 * by the request. Undefined where the request lacks one of the plan's nodes, or where the groups
 * the planner makes of the same nodes would split them otherwise than the plan does (its inputs
 * changed more than the links), so that a prediction is never of another plan than the one given.
 */
export function scorePlan(req: PlanRequest, stages: readonly PlanStage[]): Candidate | undefined {
  const runs: PlanStage[][] = [];
  for (const s of stages) {
    const last = runs[runs.length - 1];
    const same = last && last[0].layerStart === s.layerStart && last[0].layerEnd === s.layerEnd && last[0].stage === s.stage && s.splitRank > 0;
    if (same) last.push(s);
    else runs.push([s]);
  }
  const groups: Group[] = [];
  for (const run of runs) {
    const nodes = run.map((s) => req.nodes.find((n) => n.id === s.nodeId));
    if (nodes.some((n) => n === undefined)) return undefined;
    const mode = run.length > 1 && run.some((s) => s.home !== undefined) ? 'expert' : 'tensor';
    const g = makeGroup(req, nodes as NonNullable<(typeof nodes)[number]>[], mode, run[0].layerStart, run[0].layerEnd);
    if (g.nodes.some((n, rank) => n.id !== run.find((s) => s.splitRank === rank)?.nodeId)) return undefined;
    groups.push(g);
  }
  const kind: PlanKind =
    groups.length === 1 && groups[0].nodes.length > 1 ? groups[0].mode : groups.every((g) => g.nodes.length === 1) ? 'pipeline' : 'hybrid';
  const c = scoreGroups(req, kind, `${kind} x${groups.reduce((a, g) => a + g.nodes.length, 0)}`, groups);
  const sameSplit = c.stages.length === stages.length && c.stages.every((s, i) => s.nodeId === stages[i].nodeId && s.splitRank === stages[i].splitRank);
  return sameSplit ? c : undefined;
}
