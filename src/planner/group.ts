/**
 * A group: the nodes that run one pipeline stage's layers together. One node runs them whole; a
 * tensor group splits every layer's heads, FFN columns and routed experts among its ranks (shares
 * by measured speed, capped by what each node's memory holds) and sums partial results with two
 * all-reduces per layer; an expert group keeps attention, dense and shared parts on its first node (the home)
 * and spreads the routed experts, sending each node only the tokens routed to it. Rank 0 is the
 * coordinator where the group has it, and holds the embedding (first stage) and the head (last).
 */
import { formatBytes } from '../util/format.js';
import { cappedShares } from './apportion.js';
import { allReduce, exchangeBytes, type AllReduceCost } from './all-reduce.js';
import { placeExperts, touchProbability } from './experts.js';
import { WHOLE, heldBytes, stepWork, type LayerPart } from './layer-work.js';
import { hopSeconds, linkBetween, worstLink } from './links.js';
import { mainWeightType, shapeOf } from './model-shape.js';
import { ratesOf, workSeconds } from './rates.js';
import { columnRanges, columnUnit, headRanges, type HeadRanges } from './tensor-ranges.js';
import type { ModelShape, NodeInfo, PlanRequest, Range } from './types.js';

/** How a group divides its layers. */
export type GroupMode = 'tensor' | 'expert';

/** A group over a layer range, with what each rank holds. */
export interface Group {
  readonly mode: GroupMode;
  /** Rank order. */
  readonly nodes: readonly NodeInfo[];
  readonly start: number;
  readonly end: number;
  /** Relative share of each rank. */
  readonly shares: readonly number[];
  /** Tensor: each rank's heads. */
  readonly heads?: readonly HeadRanges[];
  /** Tensor: each rank's FFN columns, by FFN width. */
  readonly columns?: ReadonlyMap<number, readonly Range[]>;
  /** Each rank's routed experts (tensor groups of a Mixture-of-Experts model, and expert groups). */
  readonly experts?: readonly Range[];
  /** Why the group cannot hold its layers as given (memory or an impossible cut). */
  readonly problem?: string;
}

/** One step of a group: seconds by term, and its all-reduce. */
export interface StepCost {
  readonly seconds: number;
  readonly compute: number;
  readonly exchange: number;
  readonly overhead: number;
  readonly allReduce?: AllReduceCost;
}

/** Rank order: the coordinator first, then fastest first, then by id. */
export function rankOrder(nodes: readonly NodeInfo[]): NodeInfo[] {
  return [...nodes].sort(
    (a, b) => Number(!!b.coordinator) - Number(!!a.coordinator) || b.bytesPerSecond - a.bytesPerSecond || a.id.localeCompare(b.id),
  );
}

/** The fractions of layer `l` rank `r` of a group holds. */
export function partOf(g: Group, shape: ModelShape, l: number, r: number): LayerPart {
  if (g.nodes.length === 1) return WHOLE;
  const layer = shape.layers[l];
  if (g.mode === 'expert') {
    if (!g.experts) return WHOLE;
    const [a, b] = g.experts[r];
    const experts = layer.experts > 0 ? (b - a) / layer.experts : 0;
    return { heads: 1, kv: 1, columns: 1, experts, attention: r === 0 };
  }
  // A group that cannot be split (it carries a problem, and does not fit) is costed as if whole.
  const h = g.heads?.[r];
  if (!h) return WHOLE;
  const cols = g.columns?.get(layer.ffnWidth)?.[r];
  const ex = g.experts?.[r];
  return {
    heads: (h.heads[1] - h.heads[0]) / shape.nHead,
    kv: shape.sharedKv ? 1 : (h.kvHeads[1] - h.kvHeads[0]) / shape.nKvHead,
    columns: cols ? (cols[1] - cols[0]) / layer.ffnWidth : 0,
    experts: ex && layer.experts > 0 ? (ex[1] - ex[0]) / layer.experts : 0,
    attention: true,
  };
}

/** Bytes each rank needs: its weights, its KV cache, working memory, and embedding / head on rank 0 of the first / last stage. */
export function groupMemory(req: PlanRequest, g: Group): number[] {
  const m = req.model;
  const { shape } = shapeOf(m);
  return g.nodes.map((_, r) => {
    let bytes = m.workingBytes;
    for (let l = g.start; l < g.end; l++) {
      const p = partOf(g, shape, l, r);
      bytes += heldBytes(shape.layers[l], p);
      if (p.attention) bytes += m.kvBytesPerToken[l] * req.kvTokens * p.kv;
    }
    if (r === 0 && g.start === 0) bytes += m.embedBytes;
    if (r === 0 && g.end === m.nLayer) bytes += m.headBytes;
    return bytes;
  });
}

/** Makes a group of `nodes` over layers [start, end): shares from speed within memory, and the ranges they give. */
export function makeGroup(req: PlanRequest, nodes: readonly NodeInfo[], mode: GroupMode, start: number, end: number): Group {
  const ranks = rankOrder(nodes);
  const base = { mode, nodes: ranks, start, end };
  if (ranks.length === 1) return finish(req, { ...base, shares: [1] });
  const { shape, splittable } = shapeOf(req.model);
  if (!splittable) return { ...base, shares: ranks.map(() => 1), problem: 'the model has no shape to split by' };
  const type = mainWeightType(shape);
  const speed = ranks.map((n) => ratesOf(n, ranks).read(type));
  // Memory a rank needs = fixed + share x splittable; its cap is the share its memory leaves room for.
  const probe = (shares: number[]) => groupMemoryOf(req, shape, mode, ranks, start, end, shares);
  const zero = probe(ranks.map((_, i) => (i === 0 ? 1e-9 : 0)));
  const full = probe(ranks.map(() => 1));
  const caps = ranks.map((n, i) => (full[i] > zero[i] ? (n.memoryBytes - zero[i]) / (full[i] - zero[i]) : Infinity));
  const shares = cappedShares(speed, caps) ?? speed.map((s) => s / speed.reduce((a, b) => a + b, 0));
  if (mode === 'expert') {
    const first = firstMoeLayer(shape, start, end);
    if (first < 0) return { ...base, shares, problem: 'no Mixture-of-Experts layer to spread' };
    const experts = placeExperts(shape.layers[first].experts, shares);
    if (!experts) return { ...base, shares, problem: `${shape.layers[first].experts} experts cannot be spread over ${ranks.length} nodes` };
    return finish(req, { ...base, shares, experts });
  }
  const heads = headRanges(shape.nHead, shape.nKvHead, shape.headDim, shares, shape.blockSize);
  if (!heads)
    return { ...base, shares, problem: `${shape.nHead} heads (${shape.nKvHead} KV heads) cannot be split over ${ranks.length} ranks` };
  const columns = new Map<number, readonly Range[]>();
  for (let l = start; l < end; l++) {
    const w = shape.layers[l].ffnWidth;
    if (w === 0 || columns.has(w)) continue;
    const c = columnRanges(w, shares, shape.blockSize);
    if (!c)
      return {
        ...base,
        shares,
        problem: `an FFN width of ${w} cannot be split over ${ranks.length} ranks at ${columnUnit(w, ranks.length, shape.blockSize)}-element boundaries`,
      };
    columns.set(w, c);
  }
  const moe = firstMoeLayer(shape, start, end);
  const experts = moe < 0 ? undefined : placeExperts(shape.layers[moe].experts, shares);
  if (moe >= 0 && !experts)
    return { ...base, shares, problem: `${shape.layers[moe].experts} experts cannot be split over ${ranks.length} ranks` };
  return finish(req, { ...base, shares, heads, columns, ...(experts ? { experts } : {}) });
}

function firstMoeLayer(shape: ModelShape, start: number, end: number): number {
  for (let l = start; l < end; l++) if (shape.layers[l].experts > 1) return l;
  return -1;
}

/** Memory by rank for fractional shares (before the cuts): what sizes the caps. */
function groupMemoryOf(
  req: PlanRequest,
  shape: ModelShape,
  mode: GroupMode,
  ranks: readonly NodeInfo[],
  start: number,
  end: number,
  shares: number[],
): number[] {
  const m = req.model;
  return ranks.map((_, r) => {
    const s = shares[r];
    let bytes = m.workingBytes;
    for (let l = start; l < end; l++) {
      const layer = shape.layers[l];
      const p: LayerPart =
        mode === 'expert'
          ? { heads: 1, kv: 1, columns: 1, experts: s, attention: r === 0 }
          : { heads: s, kv: shape.sharedKv ? 1 : s, columns: s, experts: s, attention: true };
      bytes += heldBytes(layer, p);
      if (p.attention) bytes += m.kvBytesPerToken[l] * req.kvTokens * p.kv;
    }
    if (r === 0 && start === 0) bytes += m.embedBytes;
    if (r === 0 && end === m.nLayer) bytes += m.headBytes;
    return bytes;
  });
}

function finish(req: PlanRequest, g: Group): Group {
  const mem = groupMemory(req, g);
  const over = g.nodes.map((n, i) => [n, mem[i]] as const).filter(([n, b]) => b > n.memoryBytes);
  if (over.length === 0) return g;
  return {
    ...g,
    problem: `does not fit: ${over.map(([n, b]) => `${n.id} needs ${formatBytes(b)} of ${formatBytes(n.memoryBytes)}`).join(', ')}`,
  };
}

/**
 * One step of `tokens` tokens (one per sequence, or a prompt's tokens) through the group's layers,
 * each sequence with `context` positions cached, while the nodes in `busy` compute too (sharing
 * machines). Includes the head on the last stage, sending the input to every rank, and the
 * group's fixed step cost.
 */
export function groupStep(req: PlanRequest, g: Group, tokens: number, busy: readonly NodeInfo[], context = 0): StepCost {
  const m = req.model;
  const { shape } = shapeOf(m);
  const rates = g.nodes.map((n) => ratesOf(n, busy));
  const dtype = req.exchangeDtype ?? 'f32';
  const k = g.nodes.length;
  let compute = 0;
  let exchange = 0;
  let ar: AllReduceCost | undefined;
  const vector = exchangeBytes(tokens * shape.nEmbd, dtype);
  if (g.mode === 'tensor' || k === 1) {
    const link = worstLink(
      req,
      g.nodes.map((n) => n.id),
    );
    if (k > 1) {
      ar = allReduce(k, vector, link, req.allReduce ?? 'auto');
      // The step's input reaches rank 0; the others get it from there.
      exchange += hopSeconds(link, (k - 1) * vector);
    }
    for (let l = g.start; l < g.end; l++) {
      const layer = shape.layers[l];
      let slowest = 0;
      for (let r = 0; r < k; r++) {
        const w = stepWork(shape, layer, m.kvBytesPerToken[l], partOf(g, shape, l, r), tokens, context);
        slowest = Math.max(slowest, workSeconds(rates[r], layer.weightType, w.bytes, w.flops));
      }
      compute += slowest;
      if (ar) exchange += 2 * ar.seconds;
    }
  } else {
    const home = g.nodes[0];
    const links = g.nodes.map((n) => linkBetween(req, home.id, n.id));
    for (let l = g.start; l < g.end; l++) {
      const layer = shape.layers[l];
      const pre = stepWork(shape, layer, m.kvBytesPerToken[l], { ...partOf(g, shape, l, 0), experts: 0 }, tokens, context);
      compute += workSeconds(rates[0], layer.weightType, pre.bytes, pre.flops);
      if (layer.experts <= 1) continue;
      let slowest = 0;
      let latency = 0;
      let wire = 0;
      for (let r = 0; r < k; r++) {
        const p = { ...partOf(g, shape, l, r), attention: false };
        const w = stepWork(shape, layer, 0, p, tokens, context);
        slowest = Math.max(slowest, workSeconds(rates[r], layer.weightType, w.bytes, w.flops));
        if (r === 0) continue;
        // Tokens routed to node r go there and come back.
        const pTouch = touchProbability(layer.experts, p.experts * layer.experts, layer.expertsUsed);
        const anyToken = 1 - Math.pow(1 - pTouch, tokens);
        latency = Math.max(latency, 2 * links[r].latencySeconds * anyToken);
        wire += (2 * tokens * pTouch * exchangeBytes(shape.nEmbd, dtype)) / links[r].bytesPerSecond;
      }
      compute += slowest;
      exchange += latency + wire;
    }
  }
  if (g.end === m.nLayer) {
    compute += workSeconds(rates[0], shape.headWeightType, m.headActiveBytes, 2 * tokens * shape.headParameters);
  }
  const overhead = Math.max(...rates.map((r) => r.overhead));
  return { seconds: compute + exchange + overhead, compute, exchange, overhead, allReduce: ar };
}
