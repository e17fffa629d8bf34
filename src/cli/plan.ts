/**
 * `cairn plan`: what the planner would do with a model on a set of nodes, before anything is
 * loaded. The nodes come from a file describing machines that need not be here (`--nodes`), from
 * live nodes asked for what they offer (`--cluster --peers`, this machine included unless
 * `--no-local-compute`), or are this machine alone, measured. Prints every candidate plan
 * (pipeline, tensor, expert, hybrid) with its nodes, their shares and memory, the predicted decode
 * speed of one sequence, the aggregate at a batch and the prefill speed, whether it fits, and the
 * plan cairn would choose with why.
 */
import { resolveModelArg } from './model-arg.js';
import { Command, Option } from 'commander';
import { CairnError } from '../util/errors.js';
import { formatBytes } from '../util/format.js';
import type { Candidate, LinkInfo, NodeInfo, PlanRequest } from '../planner/types.js';
import { addClusterKeyOptions, clusterSecretFromFlags, intArg, KV_TYPES, kvTypeOf, type ClusterKeyFlags } from './options.js';
import { kvElementBytes } from '../kernels/api.js';
import { readNodesFile } from './plan-nodes.js';

interface PlanFlags extends ClusterKeyFlags {
  model: string;
  nodes?: string;
  cluster?: boolean;
  peers?: string;
  localCompute: boolean;
  maxMemory?: number;
  threads?: number;
  ctx?: number;
  parallel: number;
  kvType: 'f16' | 'f32' | 'q8_0';
  batch: number;
  prompt: number;
  context: number;
  objective: 'decode' | 'aggregate' | 'prefill';
  allReduce: 'auto' | 'direct' | 'ring' | 'star';
  exchange: 'f32' | 'f16' | 'q8';
  json?: boolean;
}

const NODES_HELP = `
Nodes file (--nodes): machines that need not be here. Sizes, rates and durations take units or
bare numbers (bytes, bytes/s, seconds); unknown fields are ignored.

  {
    "nodes": [
      { "id": "studio", "memory": "192GiB", "bandwidth": "800GB/s", "flops": "28TFLOPS", "cores": 24 },
      { "id": "pi", "count": 4, "memory": "7GiB", "bandwidth": "4GB/s",
        "bandwidthByType": { "Q4_K": "2.5GB/s" }, "machine": "rack" }
    ],
    "links": [ { "from": "studio", "to": "pi1", "latency": "150us", "bandwidth": "117MB/s" } ],
    "defaultLink": { "latency": "150us", "bandwidth": "1Gbit/s" }
  }

  memory           what the node offers for weights, KV cache and activations
  bandwidth        matrix-vector read speed (what \`cairn bench\` measures; memory bandwidth at best)
  bandwidthByType  read speed for some GGML weight types, where they differ (Q4_K often slower)
  flops            compute rate for prompts and large batches (default: 4 FLOP per byte/s of bandwidth)
  cores, machine   nodes with the same machine share its bandwidth, in proportion to their cores
  machineBandwidth the machine's speed on all its cores: its nodes then share only what they exceed of it
  overhead         fixed time a step costs on the node (default 50us)
  count            that many nodes alike, named id1..idN
  coordinator      the node that serves the API (default: the first)
  links            measured links (either direction); others use defaultLink (default: gigabit Ethernet)

Examples:
  cairn plan -m model.gguf                          # this machine alone, measured
  cairn plan -m model.gguf --nodes nodes.json       # what would these machines do?
  cairn plan -m model.gguf --cluster --peers 10.0.0.2:7070,10.0.0.3:7070 --cluster-key-file cairn.key
`;

/** The plan command. */
export function planCommand(): Command {
  const cmd = new Command('plan')
    .description(
      'Predict how a model runs on a set of nodes: every candidate plan with memory per node and predicted speeds, and the one cairn chooses',
    )
    .requiredOption('-m, --model <model>', 'GGUF model: a file, a stored model (cairn ls), or hf:OWNER/REPO:TAG')
    .option('--nodes <file>', 'nodes.json describing the machines (see below); they need not be here')
    .option('--cluster', 'ask live nodes (started with `cairn node`) what they offer, and measure the links to them')
    .option('--peers <list>', 'with --cluster: nodes as host:port,host:port')
    .option('--no-local-compute', 'with --cluster: leave this machine out of the plans')
    .option('--max-memory <bytes>', 'memory this machine offers (default: 90% of free memory)', intArg(1))
    .option('-t, --threads <n>', 'threads for measuring this machine (default: physical cores)', intArg(1))
    .option('-c, --ctx <n>', "context per sequence (default: the model's, at most 4096)", intArg(16))
    .option('--parallel <n>', 'sequences to hold KV cache for, as `cairn serve --parallel`', intArg(1), 1)
    .addOption(new Option('--kv-type <type>', 'KV cache element type').choices(KV_TYPES).default('f16'))
    .option('--batch <n>', 'sequences decoded together for the aggregate prediction', intArg(1), 8)
    .option('--prompt <n>', 'prompt tokens for the prefill prediction', intArg(1), 512)
    .option('--context <n>', 'positions already cached when decoding (their KV rows are read every step)', intArg(0), 0)
    .addOption(new Option('--objective <what>', 'what the choice maximizes').choices(['decode', 'aggregate', 'prefill']).default('decode'))
    .addOption(
      new Option('--all-reduce <algorithm>', 'all-reduce of tensor groups (auto: the cheaper of direct and ring)')
        .choices(['auto', 'direct', 'ring', 'star'])
        .default('auto'),
    )
    .addOption(
      new Option('--exchange <type>', 'element type of all-reduces and expert exchanges').choices(['f32', 'f16', 'q8']).default('f32'),
    )
    .option('--json', 'print one JSON object');
  return addClusterKeyOptions(cmd)
    .addHelpText('after', NODES_HELP)
    .action(async (o: PlanFlags) => {
      if (o.nodes && o.cluster)
        throw new CairnError('BAD_ARGUMENT', '--nodes and --cluster cannot be used together: plan over a file or over live nodes');
      if (o.peers && !o.cluster) throw new CairnError('BAD_ARGUMENT', '--peers needs --cluster');
      const { readGguf } = await import('../gguf/reader.js');
      const { readModelConfig } = await import('../model/config.js');
      const { modelMeta } = await import('../mesh/model-meta.js');
      const { choosePlan } = await import('../planner/candidates.js');
      o.model = (await resolveModelArg(o.model, { quiet: o.json })).path;
      const file = readGguf(o.model);
      const config = readModelConfig(file);
      const ctx = o.ctx ?? Math.min(config.ctxTrain, 4096);
      const model = modelMeta(file, config, kvElementBytes(kvTypeOf(o.kvType)), Math.min(512, ctx));
      const found = o.nodes ? { ...readNodesFile(o.nodes), source: o.nodes, notes: [] as string[] } : await liveNodes(o, config);
      const req: PlanRequest = {
        model,
        nodes: found.nodes,
        links: found.links,
        ...(found.defaultLink ? { defaultLink: found.defaultLink } : {}),
        kvTokens: ctx * o.parallel,
        batch: o.batch,
        promptTokens: o.prompt,
        contextTokens: o.context,
        allReduce: o.allReduce,
        exchangeDtype: o.exchange,
        objective: o.objective,
      };
      const choice = choosePlan(req);
      const notes = [...found.notes];
      const assumed = found.nodes.filter((n) => n.flopsPerSecond === undefined).map((n) => n.id);
      if (assumed.length)
        notes.push(`no compute rate given for ${assumed.join(', ')}: prefill and large batches assume 4 FLOP per byte/s of bandwidth`);
      if (o.json) {
        process.stdout.write(
          JSON.stringify(
            {
              model: { path: o.model, architecture: config.arch, layers: config.nLayer, ctx, kvTokens: req.kvTokens },
              nodes: found.nodes,
              links: found.links,
              defaultLink: found.defaultLink,
              batch: o.batch,
              promptTokens: o.prompt,
              candidates: choice.candidates,
              chosen: choice.chosen?.label ?? null,
              why: choice.why,
              notes,
            },
            null,
            2,
          ) + '\n',
        );
        return;
      }
      process.stdout.write(render(o, found.source, req, choice.candidates, choice.chosen, choice.why, notes));
      if (!choice.chosen) process.exitCode = 1;
    });
}

/** This machine (measured) and, with --cluster, the live nodes of --peers and the links to them. */
async function liveNodes(
  o: PlanFlags,
  config: import('../model/config.js').ModelConfig,
): Promise<{ nodes: NodeInfo[]; links: LinkInfo[]; defaultLink?: PlanRequest['defaultLink']; source: string; notes: string[] }> {
  const notes: string[] = [];
  const nodes: NodeInfo[] = [];
  const localId = 'this-machine';
  if (!o.cluster || o.localCompute) nodes.push(await measureHere(o, localId));
  if (!o.cluster) return { nodes, links: [], source: 'this machine', notes };
  const peers = (o.peers ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
  if (peers.length === 0) throw new CairnError('BAD_ARGUMENT', '--cluster needs --peers host:port,... (nodes started with `cairn node`)');
  const clusterKey = await clusterSecretFromFlags(o);
  const { parsePeerList } = await import('../cluster/index.js');
  const { NodeSet } = await import('../mesh/node-set.js');
  const { coordinatorReceiveLimit } = await import('../mesh/limits.js');
  // Only capabilities and pings come back: the smallest sizes the limits allow will do.
  const sizes = { maxBatch: 1, nEmbd: config.nEmbd, nVocab: config.nVocab, slots: 1, kvBytesPerSlot: 0 };
  const set = new NodeSet({
    localId,
    clusterKey,
    payloadLimit: (type, flags) => coordinatorReceiveLimit(type, flags, sizes),
    log: (line) => notes.push(line.replace(/^cairn: /, '')),
    events: { joined: () => {}, left: () => {} },
  });
  try {
    await Promise.all(parsePeerList(peers).map((a) => set.add(a.host, a.port)));
    const up = set.up();
    // Nodes go by name; two of one name (two nodes on one host) by name and address.
    const idOf = new Map(
      up.map((n) => {
        const name = n.caps.name || n.caps.nodeId;
        const twice = up.filter((m) => (m.caps.name || m.caps.nodeId) === name).length > 1 || name === localId;
        return [n, twice ? `${name}@${n.host}:${n.port}` : name];
      }),
    );
    for (const n of up) {
      nodes.push({
        id: idOf.get(n)!,
        memoryBytes: n.caps.memoryBytes,
        bytesPerSecond: n.caps.bytesPerSecond,
        cores: n.caps.threads,
        machine: n.caps.machine ?? n.host,
        ...(n.caps.machineBytesPerSecond ? { machineBytesPerSecond: n.caps.machineBytesPerSecond } : {}),
        ...(n.caps.backend === 'gpu' ? { pipelineOnly: true } : {}),
      });
    }
    if (nodes.length === 0) throw new CairnError('CLUSTER_UNREACHABLE', `no node answered: ${notes.join('; ')}`);
    if (!nodes.some((n) => n.coordinator)) nodes[0] = { ...nodes[0], coordinator: true };
    // Links were measured from here; between two peers assume the slower of their links to here.
    const here = new Map(up.map((n) => [idOf.get(n)!, n.link]));
    const links: LinkInfo[] = [];
    const ids = nodes.map((n) => n.id);
    for (let i = 0; i < ids.length; i++) {
      for (let j = i + 1; j < ids.length; j++) {
        const a = here.get(ids[i]);
        const b = here.get(ids[j]);
        if (ids[i] === localId && b)
          links.push({ from: localId, to: ids[j], latencySeconds: b.latencySeconds, bytesPerSecond: b.bytesPerSecond });
        else if (a && b)
          links.push({
            from: ids[i],
            to: ids[j],
            latencySeconds: Math.max(a.latencySeconds, b.latencySeconds),
            bytesPerSecond: Math.min(a.bytesPerSecond, b.bytesPerSecond),
          });
      }
    }
    if (up.length > 1) notes.push('links between two peers are taken as the slower of their links to this machine');
    return {
      nodes,
      links,
      source: `${up.length} live node${up.length === 1 ? '' : 's'}${o.localCompute ? ' and this machine' : ''}`,
      notes,
    };
  } finally {
    set.close('plan made');
  }
}

/** This machine as a node: the memory it offers and its measured matrix-vector speed (as `cairn node` measures itself). */
async function measureHere(o: PlanFlags, id: string): Promise<NodeInfo> {
  const { createKernels, cpuInfo } = await import('../kernels/index.js');
  const { machineId, measureSpeeds, offeredMemory } = await import('../mesh/capabilities.js');
  const kernels = createKernels({ threads: o.threads });
  return {
    id,
    coordinator: true,
    memoryBytes: offeredMemory(o.maxMemory),
    ...measureSpeeds(kernels),
    cores: o.threads ?? cpuInfo().threads,
    // The id `cairn node` reports, so that nodes on this machine are known to share it.
    machine: machineId(),
  };
}

function tps(x: number): string {
  if (!Number.isFinite(x)) return '-';
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
}

/** One candidate's nodes: share (layers or split) and memory. */
function nodesText(c: Candidate): string {
  return c.stages
    .map((s) => {
      const share =
        s.splitCount > 1 && s.splitShares
          ? `${Math.round((100 * s.splitShares[s.splitRank]) / s.splitShares.reduce((a, b) => a + b, 0))}%`
          : '';
      const layers =
        c.kind === 'pipeline' || c.kind === 'hybrid'
          ? s.layerEnd - s.layerStart === 1
            ? `L${s.layerStart}`
            : `L${s.layerStart}-${s.layerEnd - 1}`
          : '';
      const use = c.nodes.find((n) => n.nodeId === s.nodeId);
      const mem = `${formatBytes(s.memoryBytes)}${use && !use.fits ? ` > ${formatBytes(use.limitBytes)}` : ''}`;
      return `${s.nodeId} ${[layers, share].filter(Boolean).join(' ')} ${mem}`.replace(/ +/g, ' ');
    })
    .join(', ');
}

function render(
  o: PlanFlags,
  source: string,
  req: PlanRequest,
  candidates: readonly Candidate[],
  chosen: Candidate | undefined,
  why: string,
  notes: readonly string[],
): string {
  const out: string[] = [];
  const m = req.model;
  const gib = (b: number) => formatBytes(b);
  const total = m.layerBytes.reduce((a, b) => a + b, 0) + m.embedBytes + m.headBytes;
  out.push(`model ${o.model}: ${m.nLayer} layers, ${gib(total)} of weights; KV cache for ${req.kvTokens} tokens`);
  out.push(`nodes (${source}):`);
  for (const n of req.nodes) {
    const extra = [
      n.flopsPerSecond ? `${(n.flopsPerSecond / 1e12).toFixed(2)} TFLOP/s` : '',
      n.bytesPerSecondByType
        ? Object.entries(n.bytesPerSecondByType)
            .map(([t, r]) => `${t} ${(r / 1e9).toFixed(1)} GB/s`)
            .join(' ')
        : '',
      n.cores ? `${n.cores} cores` : '',
      n.machine ? `on ${n.machine}` : '',
      n.coordinator ? 'coordinator' : '',
    ].filter(Boolean);
    out.push(
      `  ${n.id.padEnd(14)} ${gib(n.memoryBytes).padStart(10)}  ${(n.bytesPerSecond / 1e9).toFixed(1).padStart(6)} GB/s  ${extra.join(', ')}`,
    );
  }
  out.push('');
  const head = ['plan', 'fits', 'decode tok/s', `batch ${req.batch ?? 8} tok/s`, 'prefill tok/s', 'all-reduce', 'nodes (share, memory)'];
  const rows = candidates.map((c) => [
    `${c === chosen ? '* ' : '  '}${c.label}`,
    c.fits ? 'yes' : 'no',
    tps(c.decodeTokensPerSecond),
    tps(c.aggregateTokensPerSecond),
    tps(c.prefillTokensPerSecond),
    c.allReduce ? `${c.allReduce.algorithm} ${c.allReduce.dtype}` : '-',
    nodesText(c),
  ]);
  const widths = head.map((h, i) => Math.max(h.length + (i === 0 ? 2 : 0), ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : i >= 2 && i <= 4 ? c.padStart(widths[i]) : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  out.push(line([`  ${head[0]}`, ...head.slice(1)]));
  for (const r of rows) out.push(line(r));
  out.push('');
  if (chosen) {
    out.push(`chosen: ${why}`);
    // Why the others that do not fit do not (the table says only "no").
    const unfit = candidates.filter((x) => !x.fits && x.problem);
    if (unfit.length > 0) out.push('not possible:', ...unfit.map((c) => `  ${c.label}: ${c.problem}`));
  } else {
    out.push('no plan fits the nodes:');
    for (const c of candidates.filter((x) => x.problem)) out.push(`  ${c.label}: ${c.problem}`);
  }
  for (const n of notes) out.push(`note: ${n}`);
  return out.join('\n') + '\n';
}
