/**
 * Which nodes may share a layer: hybrid plans group nodes whose links are fast, and give a node
 * behind a slow link a pipeline stage of its own. The groupings tried are the levels of a
 * single-linkage clustering by the time one token's hidden state takes over a link: for each
 * distinct link time t, nodes joined by links no slower than t form a group.
 */
import { hopSeconds, linkBetween } from './links.js';
import type { NodeInfo, PlanRequest } from './types.js';

/** Partitions of `nodes` into groups of fast-linked nodes, from the tightest to the loosest, without the all-apart and all-together ones. */
export function linkGroupings(req: PlanRequest, nodes: readonly NodeInfo[]): NodeInfo[][][] {
  const n = nodes.length;
  const bytes = req.model.activationBytesPerToken;
  const pairs: { i: number; j: number; t: number }[] = [];
  for (let i = 0; i < n; i++)
    for (let j = i + 1; j < n; j++) pairs.push({ i, j, t: hopSeconds(linkBetween(req, nodes[i].id, nodes[j].id), bytes) });
  const levels = [...new Set(pairs.map((p) => p.t))].sort((a, b) => a - b);
  const out: NodeInfo[][][] = [];
  const seen = new Set<string>();
  for (const t of levels) {
    const parent = nodes.map((_, i) => i);
    const find = (x: number): number => (parent[x] === x ? x : (parent[x] = find(parent[x])));
    for (const p of pairs) if (p.t <= t) parent[find(p.i)] = find(p.j);
    const groups = new Map<number, NodeInfo[]>();
    nodes.forEach((node, i) => {
      const r = find(i);
      groups.set(r, [...(groups.get(r) ?? []), node]);
    });
    if (groups.size === 1 || groups.size === n) continue;
    const parts = [...groups.values()];
    const key = parts
      .map((g) =>
        g
          .map((x) => x.id)
          .sort()
          .join('+'),
      )
      .sort()
      .join('|');
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(parts);
  }
  return out;
}
