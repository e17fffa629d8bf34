/**
 * The nodes file of `cairn plan --nodes`: machines that need not be here, described by what they
 * offer, and the links between them. Sizes, rates and durations take units (`192GiB`, `800GB/s`,
 * `5us`) or bare numbers (bytes, bytes per second, seconds). Every field is checked, and an error
 * names the field; fields cairn does not know are ignored.
 *
 *   {
 *     "nodes": [
 *       { "id": "studio", "memory": "192GiB", "bandwidth": "800GB/s", "flops": "28TFLOPS", "cores": 24, "machine": "m1" },
 *       { "id": "pi", "count": 4, "memory": "7GiB", "bandwidth": "4GB/s", "bandwidthByType": { "Q4_K": "2.5GB/s" } }
 *     ],
 *     "links": [{ "from": "studio", "to": "pi1", "latency": "150us", "bandwidth": "117MB/s" }],
 *     "defaultLink": { "latency": "5us", "bandwidth": "10GB/s" }
 *   }
 *
 * Nodes with the same `machine` share it; `machineBandwidth` (the machine's speed on all its cores)
 * lets them share only what they exceed of it, else each gets a part by its cores.
 * A node with `count` stands for that many alike, named id1..idN. The first node (or the one with
 * `"coordinator": true`) serves the API.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { CairnError } from '../util/errors.js';
import { parseBytes, parseDuration, parseFlops, parseRate } from '../util/units.js';
import type { LinkInfo, NodeInfo } from '../planner/types.js';

function unit(parse: (v: string | number) => number | undefined, what: string) {
  return z.union([z.number(), z.string()]).transform((v, ctx) => {
    const n = parse(v);
    if (n === undefined) {
      ctx.addIssue({ code: 'custom', message: `expected ${what}, got ${JSON.stringify(v)}` });
      return z.NEVER;
    }
    return n;
  });
}

const size = unit(parseBytes, 'a size such as "192GiB", "512GB" or a number of bytes');
const rate = unit(parseRate, 'a rate such as "800GB/s", "10Gbit/s" or a number of bytes per second');
const duration = unit(parseDuration, 'a duration such as "5us", "0.2ms" or a number of seconds');
const flops = unit(parseFlops, 'a compute rate such as "28TFLOPS" or a number of FLOP/s');

const nodeSchema = z.object({
  id: z.string().min(1),
  memory: size,
  bandwidth: rate,
  bandwidthByType: z.record(z.string(), rate).optional(),
  flops: flops.optional(),
  cores: z.number().int().min(1).optional(),
  machine: z.string().min(1).optional(),
  machineBandwidth: rate.optional(),
  coordinator: z.boolean().optional(),
  overhead: duration.optional(),
  count: z.number().int().min(1).max(256).optional(),
});

const linkSchema = z.object({ latency: duration, bandwidth: rate });

const fileSchema = z.object({
  nodes: z.array(nodeSchema).min(1),
  links: z.array(linkSchema.extend({ from: z.string().min(1), to: z.string().min(1) })).optional(),
  defaultLink: linkSchema.optional(),
});

/** What a nodes file describes. */
export interface NodesFile {
  readonly nodes: NodeInfo[];
  readonly links: LinkInfo[];
  readonly defaultLink?: { readonly latencySeconds: number; readonly bytesPerSecond: number };
}

/** `nodes[1].memory` from a zod path. */
function pathText(path: readonly PropertyKey[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i ? '.' : ''}${String(p)}`)).join('') || '(top level)';
}

/** The value at a path of parsed JSON, or undefined. */
function valueAt(json: unknown, path: readonly PropertyKey[]): unknown {
  let v = json;
  for (const p of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[p];
  }
  return v;
}

/** Checks and converts the parsed JSON of a nodes file; `source` names it in errors. */
export function parseNodesFile(json: unknown, source: string): NodesFile {
  const r = fileSchema.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0];
    const value = valueAt(json, issue.path);
    const message =
      value === undefined
        ? 'is required'
        : issue.code === 'custom'
          ? issue.message
          : `${issue.message.replace(/^Invalid input$/, 'expected a number or a string')}, got ${JSON.stringify(value)}`;
    throw new CairnError('BAD_ARGUMENT', `${source}: ${pathText(issue.path)}: ${message}`);
  }
  const f = r.data;
  const nodes: NodeInfo[] = [];
  for (const n of f.nodes) {
    const count = n.count ?? 1;
    for (let i = 1; i <= count; i++) {
      nodes.push({
        id: count > 1 ? `${n.id}${i}` : n.id,
        memoryBytes: n.memory,
        bytesPerSecond: n.bandwidth,
        ...(n.bandwidthByType ? { bytesPerSecondByType: n.bandwidthByType } : {}),
        ...(n.flops !== undefined ? { flopsPerSecond: n.flops } : {}),
        ...(n.cores !== undefined ? { cores: n.cores } : {}),
        ...(n.machine !== undefined ? { machine: n.machine } : {}),
        ...(n.machineBandwidth !== undefined ? { machineBytesPerSecond: n.machineBandwidth } : {}),
        ...(n.overhead !== undefined ? { stepOverheadSeconds: n.overhead } : {}),
        ...(n.coordinator && i === 1 ? { coordinator: true } : {}),
      });
    }
  }
  const ids = new Set<string>();
  for (const n of nodes) {
    if (ids.has(n.id)) throw new CairnError('BAD_ARGUMENT', `${source}: nodes: the id "${n.id}" is used twice`);
    ids.add(n.id);
  }
  const coordinators = nodes.filter((n) => n.coordinator);
  if (coordinators.length > 1)
    throw new CairnError(
      'BAD_ARGUMENT',
      `${source}: nodes: only one node may be the coordinator (${coordinators.map((n) => n.id).join(', ')})`,
    );
  if (coordinators.length === 0) nodes[0] = { ...nodes[0], coordinator: true };
  const links = (f.links ?? []).map((l, i): LinkInfo => {
    for (const end of ['from', 'to'] as const) {
      if (!ids.has(l[end])) throw new CairnError('BAD_ARGUMENT', `${source}: links[${i}].${end}: no node has the id "${l[end]}"`);
    }
    return { from: l.from, to: l.to, latencySeconds: l.latency, bytesPerSecond: l.bandwidth };
  });
  return {
    nodes,
    links,
    ...(f.defaultLink ? { defaultLink: { latencySeconds: f.defaultLink.latency, bytesPerSecond: f.defaultLink.bandwidth } } : {}),
  };
}

/** Reads and checks a nodes file. */
export function readNodesFile(path: string): NodesFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new CairnError('FILE_NOT_FOUND', `cannot read ${path}: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new CairnError('BAD_ARGUMENT', `${path}: not JSON: ${(err as Error).message}`);
  }
  return parseNodesFile(json, path);
}
