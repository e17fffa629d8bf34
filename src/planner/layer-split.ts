/**
 * Consecutive layer ranges for the groups of a pipeline: in proportion to each group's speed (the
 * read speed of its nodes together), then layers moved off a group that does not fit onto a
 * neighbouring group that can take them, until every group fits or no move helps.
 */
import { apportion } from './apportion.js';
import { makeGroup, type Group, type GroupMode } from './group.js';
import { mainWeightType, shapeOf } from './model-shape.js';
import { ratesOf } from './rates.js';
import type { NodeInfo, PlanRequest } from './types.js';

/** A group to be given layers: its nodes and how it divides them. */
export interface GroupSpec {
  readonly nodes: readonly NodeInfo[];
  readonly mode: GroupMode;
}

/** Groups over consecutive layer ranges, or undefined when there are fewer layers than groups. */
export function splitLayers(req: PlanRequest, specs: readonly GroupSpec[]): Group[] | undefined {
  const L = req.model.nLayer;
  const type = mainWeightType(shapeOf(req.model).shape);
  const speed = specs.map((g) => g.nodes.reduce((a, n) => a + ratesOf(n, g.nodes).read(type), 0));
  const counts = apportion(L, speed);
  if (!counts) return undefined;
  const build = (c: number[]) => {
    let start = 0;
    return specs.map((g, i) => {
      const grp = makeGroup(req, g.nodes, g.mode, start, start + c[i]);
      start += c[i];
      return grp;
    });
  };
  let groups = build(counts);
  for (let pass = 0; pass < L * specs.length; pass++) {
    const over = groups.findIndex((g) => g.problem?.startsWith('does not fit'));
    if (over < 0 || counts[over] <= 1) break;
    // Try the neighbours; keep the move after which the receiving group still fits.
    let moved = false;
    for (const to of [over + 1, over - 1]) {
      if (to < 0 || to >= specs.length) continue;
      const c = [...counts];
      c[over]--;
      c[to]++;
      const next = build(c);
      if (!next[to].problem) {
        counts.splice(0, counts.length, ...c);
        groups = next;
        moved = true;
        break;
      }
    }
    if (!moved) break;
  }
  return groups;
}
