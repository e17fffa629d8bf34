/**
 * Links between nodes as the cost model sees them: the measured link of a pair (either
 * direction), else a fast local link for two nodes on one machine, else the request's default
 * (gigabit Ethernet unless it says otherwise). A hop of `bytes` costs latency + bytes / bandwidth.
 */
import type { LinkInfo, NodeInfo, PlanRequest } from './types.js';

/** The link a request assumes where none was measured: gigabit Ethernet through a switch. */
export const DEFAULT_LINK = { latencySeconds: 150e-6, bytesPerSecond: 110e6 } as const;
/** Two processes on one machine: loopback TCP. */
export const SAME_MACHINE_LINK = { latencySeconds: 30e-6, bytesPerSecond: 4e9 } as const;

/** Latency and bandwidth of a link. */
export interface LinkCost {
  readonly latencySeconds: number;
  readonly bytesPerSecond: number;
}

/** The link between two nodes (by id) under a request. */
export function linkBetween(req: Pick<PlanRequest, 'links' | 'nodes' | 'defaultLink'>, a: string, b: string): LinkCost {
  const measured = req.links.find((l: LinkInfo) => (l.from === a && l.to === b) || (l.from === b && l.to === a));
  if (measured) return measured;
  const na = req.nodes.find((n: NodeInfo) => n.id === a);
  const nb = req.nodes.find((n: NodeInfo) => n.id === b);
  if (na?.machine !== undefined && na.machine === nb?.machine) return SAME_MACHINE_LINK;
  return req.defaultLink ?? DEFAULT_LINK;
}

/** Seconds for `bytes` to cross one link; nothing within a node. */
export function hopSeconds(link: LinkCost, bytes: number): number {
  return link.latencySeconds + bytes / link.bytesPerSecond;
}

/** The slowest link among a group of nodes: the largest latency and the smallest bandwidth of any pair. */
export function worstLink(req: Pick<PlanRequest, 'links' | 'nodes' | 'defaultLink'>, ids: readonly string[]): LinkCost {
  let latency = 0;
  let bw = Infinity;
  for (let i = 0; i < ids.length; i++) {
    for (let j = i + 1; j < ids.length; j++) {
      const l = linkBetween(req, ids[i], ids[j]);
      latency = Math.max(latency, l.latencySeconds);
      bw = Math.min(bw, l.bytesPerSecond);
    }
  }
  return { latencySeconds: latency, bytesPerSecond: bw };
}

/**
 * Links between every two of `measured`'s nodes, estimated from links measured from one node (the
 * coordinator) to each of them: the slower of the two (largest latency, smallest bandwidth). A
 * coordinator measures only its own links; between two of its peers this is the best it knows,
 * and it carries what each peer's messages cost to process, which an idealized link would not.
 */
export function peerLinks(measured: readonly LinkInfo[]): LinkInfo[] {
  const out: LinkInfo[] = [];
  for (let i = 0; i < measured.length; i++) {
    for (let j = i + 1; j < measured.length; j++) {
      const a = measured[i];
      const b = measured[j];
      if (a.to === b.to) continue;
      out.push({
        from: a.to,
        to: b.to,
        latencySeconds: Math.max(a.latencySeconds, b.latencySeconds),
        bytesPerSecond: Math.min(a.bytesPerSecond, b.bytesPerSecond),
      });
    }
  }
  return out;
}
