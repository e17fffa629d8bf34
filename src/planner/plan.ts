/**
 * The planner: a pure function from a model's sizes, the nodes and their links to a pipeline plan.
 * Every node gets a consecutive range of layers; ranges are sized in proportion to each node's
 * measured speed (so every stage takes about as long per token) and capped by its memory, with the
 * rest flowing to nodes that still have room. The coordinator runs the first stage, so token ids
 * enter and leave the pipeline at the machine that serves the API. When the whole cluster cannot
 * hold the model, the error names the shortfall of every node before anything is loaded.
 */
import { CairnError } from '../util/errors.js';
import { predictPlan } from './cost.js';
import type { Plan, PlanRequest, PlanStage } from './types.js';

/** Bytes a stage with layers [start, end) needs. */
export function stageBytes(req: PlanRequest, start: number, end: number): number {
  const m = req.model;
  let bytes = m.workingBytes;
  for (let l = start; l < end; l++) bytes += m.layerBytes[l] + m.kvBytesPerToken[l] * req.kvTokens;
  if (start === 0) bytes += m.embedBytes;
  if (end === m.nLayer) bytes += m.headBytes;
  return bytes;
}

/** Makes a plan or throws CairnError (CLUSTER_PLAN) naming each node's shortfall. */
export function makePlan(req: PlanRequest): Plan {
  const { model } = req;
  if (req.nodes.length === 0) throw new CairnError('CLUSTER_PLAN', 'no nodes to plan over');
  if (model.nLayer < 1 || [model.layerBytes, model.layerActiveBytes, model.kvBytesPerToken].some((a) => a.length !== model.nLayer)) throw new CairnError('CLUSTER_PLAN', 'model sizes are inconsistent');
  // Coordinator first; the others in a stable order (fastest first, then by id).
  const nodes = [...req.nodes].sort((a, b) => Number(!!b.coordinator) - Number(!!a.coordinator) || b.bytesPerSecond - a.bytesPerSecond || a.id.localeCompare(b.id));
  const usable = nodes.filter((n) => n.memoryBytes > model.workingBytes);
  const perLayer = (model.layerBytes.reduce((a, b) => a + b, 0) + model.kvBytesPerToken.reduce((a, b) => a + b, 0) * req.kvTokens) / model.nLayer;

  // Layers each node could hold at most (ignoring which end it sits at: refined below).
  const cap = usable.map((n) => Math.max(0, Math.floor((n.memoryBytes - model.workingBytes) / perLayer)));
  const totalSpeed = usable.reduce((a, n) => a + n.bytesPerSecond, 0);
  let counts = usable.map((n) => Math.min(cap[usable.indexOf(n)], Math.round((model.nLayer * n.bytesPerSecond) / totalSpeed)));
  counts = rebalance(counts, cap, usable.map((n) => n.bytesPerSecond), model.nLayer);

  // Check exact memory with the embedding and head on the end stages; move layers off a stage
  // that overflows onto stages with room, a few passes at most.
  for (let pass = 0; pass < 4 * model.nLayer; pass++) {
    const over = firstOverflow(req, usable, counts);
    if (over < 0) break;
    const room = usable.findIndex((_, i) => i !== over && counts[i] < cap[i] && stageFits(req, usable, counts, i, 1));
    if (room < 0 || counts[over] === 0) break;
    counts[over]--;
    counts[room]++;
  }
  const sum = counts.reduce((a, b) => a + b, 0);
  if (sum !== model.nLayer || firstOverflow(req, usable, counts) >= 0) throw shortfall(req, nodes);

  const stages: PlanStage[] = [];
  let start = 0;
  usable.forEach((n, i) => {
    if (counts[i] === 0) return;
    const end = start + counts[i];
    stages.push({ nodeId: n.id, layerStart: start, layerEnd: end, splitRank: 0, splitCount: 1, memoryBytes: stageBytes(req, start, end) });
    start = end;
  });
  return { stages, ...predictPlan(req, stages) };
}

/** Makes the counts sum to nLayer within caps, adding to (or taking from) nodes by speed. */
function rebalance(counts: number[], cap: number[], speed: number[], total: number): number[] {
  const c = [...counts];
  let sum = c.reduce((a, b) => a + b, 0);
  while (sum < total) {
    // Give a layer to the node with room whose stage would stay fastest (smallest count/speed).
    let best = -1;
    for (let i = 0; i < c.length; i++) if (c[i] < cap[i] && (best < 0 || (c[i] + 1) / speed[i] < (c[best] + 1) / speed[best])) best = i;
    if (best < 0) break;
    c[best]++;
    sum++;
  }
  while (sum > total) {
    let worst = -1;
    for (let i = 0; i < c.length; i++) if (c[i] > 0 && (worst < 0 || c[i] / speed[i] > c[worst] / speed[worst])) worst = i;
    c[worst]--;
    sum--;
  }
  return c;
}

function rangeOf(counts: number[], i: number): [number, number] {
  let start = 0;
  for (let j = 0; j < i; j++) start += counts[j];
  return [start, start + counts[i]];
}

function stageFits(req: PlanRequest, nodes: PlanRequest['nodes'], counts: number[], i: number, extra: number): boolean {
  const c = [...counts];
  c[i] += extra;
  const [s, e] = rangeOf(c, i);
  return stageBytes(req, s, Math.min(e, req.model.nLayer)) <= nodes[i].memoryBytes;
}

function firstOverflow(req: PlanRequest, nodes: PlanRequest['nodes'], counts: number[]): number {
  for (let i = 0; i < counts.length; i++) {
    if (counts[i] === 0) continue;
    const [s, e] = rangeOf(counts, i);
    if (stageBytes(req, s, e) > nodes[i].memoryBytes) return i;
  }
  return -1;
}

function shortfall(req: PlanRequest, nodes: PlanRequest['nodes']): CairnError {
  const total = stageBytes(req, 0, req.model.nLayer);
  const have = nodes.reduce((a, n) => a + Math.max(0, n.memoryBytes - req.model.workingBytes), 0);
  const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;
  // Spread the missing bytes over the nodes in proportion to their memory, so each line says how
  // much more that node would need for the model to fit with the others as they are.
  const missing = Math.max(0, total - have);
  const lines = nodes.map((n) => {
    const share = have > 0 ? (missing * Math.max(0, n.memoryBytes - req.model.workingBytes)) / have : missing / nodes.length;
    return `  ${n.id}: has ${gib(n.memoryBytes)}, short by about ${gib(share)}`;
  });
  return new CairnError(
    'CLUSTER_PLAN',
    `the model does not fit the cluster: it needs ${gib(total)} (weights, KV cache for ${req.kvTokens} tokens, working memory) but the nodes offer ${gib(have)}, ${gib(missing)} short:\n${lines.join('\n')}\nAdd a node, raise --max-memory, or lower --ctx/--parallel.`,
  );
}
