/**
 * The coordinator of a cluster (`cairn serve --cluster`): finds the nodes (static peers, and mDNS
 * when asked), measures them and the links to them, makes a plan, loads every stage (streaming
 * weights to nodes that lack the model), and runs the pipeline as the engine's ForwardRunner.
 *
 * Nodes come and go at any moment, and none of that may leave a plan that names a node that is
 * gone or take the server down. A node lost while a plan loads makes the coordinator plan again
 * without it; a node lost while the plan runs interrupts the steps in flight (the engine resumes
 * those sequences) and the coordinator plans again over the nodes left. Where they cannot hold
 * the model, requests fail with the reason (also on /health) until a node comes back: known
 * addresses are dialed again every few seconds, and a node that returns is taken into a new plan.
 */
import { basename } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Discovery, MAX_MDNS_PEERS, frameJson, jsonPayload, parsePeerList, type ClusterSecret, type Frame } from '../cluster/index.js';
import { loadShards } from '../engine/load.js';
import { RunnerInterrupted, type ForwardRequest, type ForwardResult, type ForwardRunner } from '../engine/runner.js';
import type { SequenceSpec } from '../engine/sequence-samplers.js';
import { kvElementBytes } from '../kernels/api.js';
import { checkKvType } from '../model/kv-cache.js';
import type { GgufFile } from '../gguf/reader.js';
import { createKernels, cpuInfo, openMapping, type KvType } from '../kernels/index.js';
import type { ModelConfig } from '../model/config.js';
import { allReduce, exchangeBytes } from '../planner/all-reduce.js';
import { peerLinks, worstLink } from '../planner/links.js';
import { scorePlan } from '../planner/plan-score.js';
import { makePlan } from '../planner/plan.js';
import type { LinkInfo, NodeInfo, Plan, PlanRequest, PlanStage } from '../planner/types.js';
import { measuredGroupLinks, probeGroup, probeRounds, type ProbeRank } from './exchange-probe.js';
import { chooseRunnable } from './plan-choice.js';
import { CairnError, isCairnError } from '../util/errors.js';
import { fileSha256 } from '../util/file-hash.js';
import { packParts, unpackParts } from '../util/message-framing.js';
import { ProgressReporter } from '../util/progress.js';
import { machineId, measureSpeeds, offeredMemory } from './capabilities.js';
import { coordinatorReceiveLimit, type StageSizes } from './limits.js';
import { modelMeta } from './model-meta.js';
import { NodeSet, type RemoteNode } from './node-set.js';
import { Pipeline, type RemoteStageHandle, type StageHandle } from './pipeline.js';
import type { GroupExchange } from './group-step.js';
import { ExpertDispatcher } from './expert-dispatch.js';
import { ExchangeCodec } from './exchange-codec.js';
import { TensorGroup } from './tensor-group.js';
import { MeshFrame, type GroupSpec, type LoadReply, type LoadRequest, type NodeCapabilities, type PeerRef } from './protocol.js';
import { hasControlCharacter, shardSpecOf } from './load-request.js';
import { prepareShard, sendShard, type PreparedShard } from './shard-files.js';
import type { HubShardSource } from './hub-shard.js';
import { NodeLoads } from './node-loads.js';
import { randomUUID } from 'node:crypto';

/** Settings of a coordinator. */
export interface CoordinatorOptions {
  readonly modelPath: string;
  readonly file: GgufFile;
  readonly config: ModelConfig;
  /** "host:port" of nodes. */
  readonly peers: readonly string[];
  /** The cluster key (its text, or derived with deriveClusterSecret); none: this machine's local key. */
  readonly clusterKey?: string | ClusterSecret;
  /** The coordinator also holds layers (default true). */
  readonly localCompute?: boolean;
  readonly threads?: number;
  readonly maxMemory?: number;
  readonly ctx: number;
  readonly slots: number;
  readonly kvType: KvType;
  readonly maxBatch: number;
  /** Also look for nodes over mDNS for this long before planning (0 = static peers only); the search goes on after. */
  readonly discoveryMs?: number;
  readonly mdnsInterface?: string;
  readonly log?: (line: string) => void;
  readonly progress?: boolean;
  /**
   * Where the model is published (the hub repository and commit it was pulled from): nodes that
   * lack it fetch their shard's bytes from there, and are sent them only where that fails.
   */
  readonly hubSource?: HubShardSource;
  /** Given the coordinator as soon as it exists, so its status can be read while it plans and loads. */
  readonly onCreated?: (c: ClusterCoordinator) => void;
  /** How hidden states travel between stages; default: the plan's choice from the links. */
  readonly activations?: 'f16' | 'f32';
  /**
   * `pipeline`: consecutive layer ranges, one per node; `tensor`: every layer split over all the
   * nodes (one tensor-parallel group, shares by measured speed); `auto` (default): the planner's choice.
   */
  readonly parallelism?: 'auto' | 'pipeline' | 'tensor' | 'expert' | 'hybrid';
  /** How tensor-parallel groups of 3 or more add up partial sums: by their link (auto), or always direct or ring. */
  readonly allReduce?: 'auto' | 'direct' | 'ring';
  /** How a tensor-parallel group's partial sums travel (mesh/exchange-codec.ts); default f32 (exact). */
  readonly exchange?: 'f32' | 'f16' | 'q8';
}

/** What `cairn cluster status` shows. */
export interface ClusterStatus {
  readonly state: 'planning' | 'ready' | 'replanning' | 'failed';
  readonly error?: string;
  readonly epoch: number;
  readonly model: { readonly name: string; readonly sha256: string; readonly layers: number };
  readonly nodes: readonly {
    readonly id: string;
    readonly name: string;
    readonly address: string;
    readonly local: boolean;
    readonly up: boolean;
    readonly memoryBytes: number;
    readonly bytesPerSecond: number;
    readonly threads: number;
    readonly isa: string;
    /** Where its layers run, and on which GPU adapter (absent: the CPU). */
    readonly backend?: 'gpu';
    readonly adapter?: string;
    /** Its machine's CPU load (0..1) and power in watts as it reports them (null: not readable there; absent: not reported yet). */
    readonly cpuLoad?: number | null;
    readonly powerWatts?: number | null;
    /** The node's shard on its way to it (from the hub, or sent by this coordinator), while it is. */
    readonly transfer?: { readonly from: 'hub' | 'coordinator'; readonly done: number; readonly total: number };
  }[];
  readonly links: readonly { readonly to: string; readonly latencyMs: number; readonly megabytesPerSecond: number }[];
  readonly plan?: {
    /** One entry per node: a stage, or a rank of a tensor-parallel group (same layers, rank r of count, its share). */
    readonly stages: readonly {
      readonly nodeId: string;
      readonly name: string;
      readonly layerStart: number;
      readonly layerEnd: number;
      readonly memoryBytes: number;
      readonly splitRank: number;
      readonly splitCount: number;
      readonly splitShare: number;
      /** How its group splits the layers: `tensor` (every block) or `expert` (the routed experts; rank 0 holds the rest). */
      readonly splitMode?: 'tensor' | 'expert';
    }[];
    readonly predictedTokensPerSecond: number;
    readonly predictedPipelinedTokensPerSecond: number;
    /** Measured one-stream decode speed of the running plan (recent lone decode steps); absent before any. */
    readonly measuredTokensPerSecond?: number;
    readonly activationDtype: 'f16' | 'f32';
    /** Each tensor-parallel group's all-reduce of one token, measured before its first step and as estimated before (the prediction uses the measured one). */
    readonly exchanges: readonly { readonly names: readonly string[]; readonly measuredMs: number; readonly estimatedMs: number }[];
  };
}

/** A node of the plan being loaded went down: plan again without it. */
class PlanLost extends Error {}

/** A stage could not be loaded on its node (the node is up but refused or failed). */
class StageLoadFailed extends Error {
  constructor(
    readonly nodeId: string,
    cause: Error,
  ) {
    super(cause.message, { cause });
  }
}

/** Runs a model over the nodes of a cluster. */
export class ClusterCoordinator implements ForwardRunner {
  readonly nVocab: number;
  readonly maxBatch: number;
  readonly slots: number;
  readonly ctxPerSlot: number;
  epoch = 0;
  private pipeline: Pipeline | undefined;
  private plan: Plan | undefined;
  private replanning: Promise<void> | undefined;
  /** Why the next round of planning is wanted; `forced` unless only a better plan is sought. */
  private wanted: { reason: string; forced: boolean } | undefined;
  private failure: string | undefined;
  private readonly nodes: NodeSet;
  /** Shards on their way to nodes now, by node id (for status). */
  private readonly transfers = new Map<string, { from: 'hub' | 'coordinator'; done: number; total: number }>();
  /** Each remote node's CPU load and power, as it reports them. */
  private readonly loads = new NodeLoads(() => this.nodes.up().map((n) => ({ id: n.caps.nodeId, conn: n.conn })));
  private localCaps: NodeCapabilities | undefined;
  private modelSha = '';
  private closed = false;
  private started = false;
  private readonly localId = `local-${randomUUID().slice(0, 8)}`;
  /** What the last plan was made from: the links a group's all-reduce chooses its algorithm by. */
  private planRequest: PlanRequest | undefined;
  /** Links between ranks of tensor-parallel groups as their exchanges measured them. */
  private exchangeLinks: LinkInfo[] = [];
  /** The running plan's measured all-reduces (status). */
  private exchangeProbes: { names: string[]; measuredMs: number; estimatedMs: number }[] = [];
  private discovery: Discovery | undefined;
  private readonly log: (line: string) => void;

  private constructor(private readonly opts: CoordinatorOptions) {
    this.nVocab = opts.config.nVocab;
    this.maxBatch = Math.min(opts.maxBatch, opts.ctx);
    this.slots = opts.slots;
    this.ctxPerSlot = opts.ctx;
    this.log = opts.log ?? ((line) => process.stderr.write(line + '\n'));
    const sizes = this.receiveSizes();
    this.nodes = new NodeSet({
      localId: this.localId,
      clusterKey: opts.clusterKey,
      payloadLimit: (type, flags) => coordinatorReceiveLimit(type, flags, sizes),
      log: this.log,
      events: {
        joined: (n) => this.replan(`node ${n.caps.name} (${n.host}:${n.port}) joined`, false),
        left: (n) => {
          // A node of the running plan breaks the pipeline (which asks for a new plan); one
          // outside it changes nothing.
          if (!this.pipeline) return;
          if (this.plan?.stages.some((s) => s.nodeId === n.caps.nodeId)) this.pipeline.breakWith(`node ${n.caps.name} (${n.host}:${n.port}) left`);
        },
      },
    });
  }

  /**
   * Finds the nodes, plans and loads. Rejects with a clear error when no plan can be made at all
   * from the nodes reachable at start; after that, failures keep the coordinator up.
   */
  static async start(opts: CoordinatorOptions): Promise<ClusterCoordinator> {
    // A cache type the model cannot use fails here, before any node is asked to load.
    checkKvType(opts.config, opts.kvType);
    const c = new ClusterCoordinator(opts);
    opts.onCreated?.(c);
    try {
      await c.startUp();
    } catch (err) {
      await c.close();
      throw err;
    }
    return c;
  }

  get pipelineDepth(): number {
    return this.pipeline?.stages.length ?? 1;
  }

  /** Why the cluster cannot run the model now (it lost nodes it needs), else undefined. */
  get unavailable(): string | undefined {
    return this.failure && `the cluster cannot run the model: ${this.failure}`;
  }

  private async startUp(): Promise<void> {
    const bar = new ProgressReporter(this.opts.progress ? `hashing ${basename(this.opts.modelPath)}` : undefined);
    this.modelSha = await fileSha256(this.opts.modelPath, (d, t) => bar.update(d, t));
    bar.stop();
    if (this.opts.localCompute ?? true) {
      const kernels = createKernels({ threads: this.opts.threads });
      const info = cpuInfo();
      this.localCaps = {
        nodeId: this.localId,
        name: 'coordinator',
        memoryBytes: offeredMemory(this.opts.maxMemory),
        ...measureSpeeds(kernels),
        threads: info.threads,
        isa: info.isa,
        machine: machineId(),
        models: [this.modelSha],
        host: '127.0.0.1',
        port: 0,
      };
    }
    const dials = parsePeerList([...this.opts.peers]).map((a) => this.nodes.add(a.host, a.port));
    if ((this.opts.discoveryMs ?? 0) > 0) {
      this.discovery = new Discovery({ identity: { id: this.localId, name: 'coordinator' }, port: 0, mdns: true, advertise: false, interface: this.opts.mdnsInterface });
      this.discovery.on('warning', (w) => this.log(`cairn: mDNS: ${w.message}`));
      // Nodes found later are dialed as found, and taken into a new plan once they answer.
      // The node set keeps and redials every address it was given: addresses found over mDNS are
      // capped too, or announcements that come and go would add addresses without end.
      const found = new Set<string>();
      let full = false;
      this.discovery.on('up', (p) => {
        if (p.source !== 'mdns') return;
        const where = `${p.host}:${p.port}`;
        if (!found.has(where) && found.size >= MAX_MDNS_PEERS) {
          if (!full) this.log(`cairn: mDNS: ${MAX_MDNS_PEERS} node addresses found already; ignoring ${where} and further ones`);
          full = true;
          return;
        }
        found.add(where);
        const dial = this.nodes.add(p.host, p.port);
        if (!this.started) dials.push(dial);
      });
      await this.discovery.start();
      await new Promise((r) => setTimeout(r, this.opts.discoveryMs));
    }
    await Promise.all(dials);
    if (!this.localCaps && this.nodes.up().length === 0) {
      throw new CairnError('CLUSTER_PLAN', 'no nodes to run the model on: give --peers host:port (nodes started with `cairn node`), or allow local compute');
    }
    // Heartbeats and redials run while the first plan loads; joins start counting once it is up.
    this.nodes.watch();
    await this.establish();
    this.started = true;
    this.nodes.start();
    this.loads.start();
    // A node that answered while the first plan loaded was not announced: take it in now if it helps.
    this.replan('nodes joined while the first plan loaded', false);
  }

  /** The model's sizes that bound what nodes may send back (limits.ts). */
  private receiveSizes(): StageSizes {
    const { config, file } = this.opts;
    const meta = modelMeta(file, config, kvElementBytes(this.opts.kvType), this.maxBatch);
    return { maxBatch: this.maxBatch, nEmbd: config.nEmbd, nVocab: config.nVocab, slots: this.slots, kvBytesPerSlot: meta.kvBytesPerToken.reduce((a, b) => a + b, 0) * this.ctxPerSlot };
  }

  /** Node infos the planner may use: this machine (when it computes) and every node that is up, less `excluded`. */
  private planInputs(excluded: ReadonlyMap<string, string> = new Map()): { infos: NodeInfo[]; remote: RemoteNode[] } {
    const remote = this.nodes.up().filter((n) => !excluded.has(n.caps.nodeId));
    // Nodes on one machine (the same machine id) share its cores and memory bandwidth.
    const info = (c: NodeCapabilities, coordinator: boolean): NodeInfo => ({
      id: c.nodeId,
      memoryBytes: c.memoryBytes,
      bytesPerSecond: c.bytesPerSecond,
      cores: c.threads,
      ...(c.machine ? { machine: c.machine } : {}),
      ...(c.machineBytesPerSecond ? { machineBytesPerSecond: c.machineBytesPerSecond } : {}),
      ...(c.backend === 'gpu' ? { pipelineOnly: true } : {}),
      ...(coordinator ? { coordinator: true } : {}),
    });
    const infos: NodeInfo[] = [
      ...(this.localCaps && !excluded.has(this.localId) ? [info(this.localCaps, true)] : []),
      ...remote.map((n) => info(n.caps, false)),
    ];
    return { infos, remote };
  }

  /** A plan over the nodes that are up (less `excluded`); throws CLUSTER_PLAN saying what is missing. */
  private makePlan(excluded: ReadonlyMap<string, string> = new Map()): Plan {
    const { file, config } = this.opts;
    const kvBytes = kvElementBytes(this.opts.kvType);
    const { infos, remote } = this.planInputs(excluded);
    try {
      if (infos.length === 0) throw new CairnError('CLUSTER_PLAN', 'no node is up');
      // Links between two nodes are not measured: the slower of their links to this machine.
      const measured = remote.map((n) => n.link);
      // Links between ranks that an earlier plan's exchanges measured come first (probeExchanges).
      const ids = new Set(infos.map((n) => n.id));
      const exchanged = this.exchangeLinks.filter((l) => ids.has(l.from) && ids.has(l.to));
      const req = { model: modelMeta(file, config, kvBytes, this.maxBatch), nodes: infos, links: [...exchanged, ...measured, ...peerLinks(measured)], kvTokens: this.opts.ctx * this.opts.slots };
      this.planRequest = req;
      const parallelism = this.opts.parallelism ?? 'auto';
      if (parallelism === 'pipeline') return makePlan(req);
      return chooseRunnable(req, this.localId, parallelism, this.opts.exchange);
    } catch (err) {
      const gone = this.nodes.all().filter((n) => !this.nodes.usable(n));
      const notes = [
        ...gone.map((n) => `node ${n.caps.name} (${n.host}:${n.port}) is down: ${n.downReason ?? 'connection closed'}`),
        ...[...excluded].map(([id, why]) => `${this.nameOf(id)} could not load its layers: ${why}`),
      ];
      throw new CairnError('CLUSTER_PLAN', `${(err as Error).message}${notes.length ? `\n${notes.join('\n')}` : ''}`);
    }
  }

  /**
   * Plans and loads until a plan runs: a node lost meanwhile, or one that fails to load its
   * stage, is left out of the next try. Throws CLUSTER_PLAN once the nodes left cannot hold the model.
   */
  private async establish(): Promise<void> {
    const excluded = new Map<string, string>();
    for (;;) {
      if (this.closed) throw new CairnError('SHUTTING_DOWN', 'the coordinator is stopping');
      const plan = this.makePlan(excluded);
      try {
        await this.loadPlan(plan);
        return;
      } catch (err) {
        if (this.closed) throw err;
        const remote = plan.stages.filter((s) => s.nodeId !== this.localId);
        const used = remote.map((s) => this.nodes.get(s.nodeId)).filter((n): n is RemoteNode => n !== undefined);
        const lost = await this.nodes.confirm(used);
        if (lost.length > 0 || used.length < remote.length) {
          this.log(`cairn: lost ${lost.map((n) => `${n.caps.name} (${n.host}:${n.port})`).join(', ') || 'a node'} while loading plan ${this.epoch + 1}; planning again`);
          continue;
        }
        if (!(err instanceof StageLoadFailed)) throw err;
        excluded.set(err.nodeId, err.message);
        this.log(`cairn: ${this.nameOf(err.nodeId)} could not load its layers (${err.message}); planning without it`);
      }
    }
  }

  /** Loads every stage of a plan and makes it the running one; throws PlanLost or StageLoadFailed. */
  private async loadPlan(plan: Plan): Promise<void> {
    const epoch = this.epoch + 1;
    this.log(`cairn: plan ${epoch}: ${plan.stages.map((s) => `${this.nameOf(s.nodeId)} layers ${s.layerStart}-${s.layerEnd - 1}${s.splitCount > 1 ? ` (rank ${s.splitRank + 1} of ${s.splitCount})` : ''}`).join(', ')}`);
    const remoteOf = (nodeId: string): RemoteNode => {
      const node = this.nodes.get(nodeId);
      if (!node || !this.nodes.usable(node)) throw new PlanLost(`lost ${this.nameOf(nodeId)}`);
      return node;
    };
    const checkAlive = () => plan.stages.forEach((s) => s.nodeId !== this.localId && remoteOf(s.nodeId));
    const stages: StageHandle[] = [];
    const followers: RemoteStageHandle[] = [];
    const expertRanks: RemoteStageHandle[] = [];
    let pipeline: Pipeline | undefined;
    const groups = groupStages(plan.stages);
    try {
      for (let i = 0; i < groups.length; i++) {
        checkAlive();
        const group = groups[i];
        const s = group[0];
        const nextGroup = groups[i + 1];
        const mode = group.length > 1 && s.home !== undefined ? ('expert' as const) : ('tensor' as const);
        const worst = this.planRequest && group.length > 2 ? worstLink(this.planRequest, group.map((r) => r.nodeId)) : undefined;
        const link = worst ? { latencySeconds: worst.latencySeconds, bytesPerSecond: worst.bytesPerSecond } : undefined;
        const shares = s.splitShares ?? group.map(() => 1);
        const groupSpec = (rank: number, peers: PeerRef[]): GroupSpec | undefined =>
          group.length > 1
            ? { rank, shares, peers, ...(mode === 'expert' ? { mode } : { exchange: this.opts.exchange, ...(link ? { link } : {}), ...(this.opts.allReduce ? { allReduce: this.opts.allReduce } : {}) }) }
            : undefined;
        if (s.nodeId === this.localId) {
          if (i > 0) throw new StageLoadFailed(s.nodeId, new CairnError('CLUSTER_PLAN', "the coordinator's layers must be the first stage"));
          if (group.some((r, rank) => rank > 0 && r.nodeId === this.localId)) throw new StageLoadFailed(s.nodeId, new CairnError('CLUSTER_PLAN', 'the coordinator can only be rank 0 of its group'));
          let loaded: Awaited<ReturnType<typeof loadShards>>;
          const split = group.length > 1 ? { splitRank: 0, splitCount: group.length, splitShares: shares, ...(mode === 'expert' ? { splitMode: mode } : {}) } : { splitRank: 0, splitCount: 1 };
          try {
            loaded = await loadShards(this.opts.modelPath, {
              threads: this.opts.threads,
              ctx: this.opts.ctx,
              slots: this.opts.slots,
              kvType: this.opts.kvType,
              maxBatch: this.maxBatch,
              shards: [{ layerStart: s.layerStart, layerEnd: s.layerEnd, ...split }],
              progress: this.opts.progress,
            });
          } catch (err) {
            throw new StageLoadFailed(s.nodeId, err as Error);
          }
          if (group.length === 1) {
            stages.push({ kind: 'local', loaded, nodeId: s.nodeId, name: 'coordinator' });
            continue;
          }
          // The other ranks reach this process over the connections it holds to them.
          try {
            const nodes = group.slice(1).map((r) => remoteOf(r.nodeId));
            const peers = [{ host: '', port: 0, nodeId: this.localId, coordinator: true }, ...nodes.map((n) => ({ host: n.host, port: n.port, nodeId: n.caps.nodeId }))];
            for (let rank = 1; rank < group.length; rank++) {
              const member = await this.loadRank(group[rank], nodes[rank - 1], epoch, groupSpec(rank, peers));
              if (mode === 'expert') expertRanks.push(member);
              else followers.push(member);
            }
            const conns = nodes.map((n) => n.conn);
            const localGroup: GroupExchange =
              mode === 'expert'
                ? { experts: new ExpertDispatcher(loaded.config, loaded.shards[0].shard, epoch, conns) }
                : {
                    exchange: new TensorGroup(
                      0,
                      epoch,
                      [undefined, ...conns],
                      group.map((r) => r.nodeId),
                      this.opts.exchange && this.opts.exchange !== 'f32' ? new ExchangeCodec(loaded.kernels, this.opts.exchange) : undefined,
                      link,
                      this.opts.allReduce,
                      this.maxBatch * loaded.config.nEmbd,
                    ),
                  };
            stages.push({ kind: 'local', loaded, nodeId: s.nodeId, name: 'coordinator', group: localGroup });
          } catch (err) {
            loaded.close();
            throw err;
          }
          continue;
        }
        const nodes = group.map((r) => remoteOf(r.nodeId));
        const next = nextGroup ? remoteOf(nextGroup[0].nodeId) : undefined;
        const peers = nodes.map((n) => ({ host: n.host, port: n.port, nodeId: n.caps.nodeId }));
        for (let rank = 0; rank < group.length; rank++) {
          // Rank 0 passes the group's output on; the other ranks send only to their group.
          const member = await this.loadRank(group[rank], nodes[rank], epoch, groupSpec(rank, peers), rank === 0 ? next : undefined);
          if (rank === 0) stages.push(member);
          else if (mode === 'expert') expertRanks.push(member);
          else followers.push(member);
        }
      }
      checkAlive();
      const wire = this.opts.activations ?? plan.activationDtype;
      pipeline = new Pipeline(
        stages,
        epoch,
        this.opts.config.nVocab,
        this.opts.config.nEmbd,
        { broken: (reason) => this.replan(reason, true), misbehaved: (id, detail) => this.nodes.misbehaved(id, detail) },
        wire,
        followers,
        expertRanks,
      );
      // A node that left after its stage loaded is not in a running plan.
      if (pipeline.broken) throw new PlanLost(pipeline.broken);
      const predicted = await this.probeExchanges(plan, groups, stages, epoch);
      if (pipeline.broken) throw new PlanLost(pipeline.broken);
      this.pipeline = pipeline;
      this.plan = { ...predicted, activationDtype: wire };
      this.epoch = epoch;
    } catch (err) {
      if (pipeline) await pipeline.close('the plan lost a node while loading');
      else for (const st of stages) if (st.kind === 'local') st.loaded.close();
      throw err;
    }
  }

  /**
   * Measures an all-reduce inside each tensor-parallel group of a plan just loaded (exchange-probe.ts),
   * keeps the links it implies for later plans, and returns the plan predicted again with them. A
   * probe that fails leaves the estimate (a rank lost meanwhile breaks the pipeline, which the
   * caller checks).
   */
  private async probeExchanges(plan: Plan, groups: readonly (readonly PlanStage[])[], stages: readonly StageHandle[], epoch: number): Promise<Plan> {
    this.exchangeProbes = [];
    const base = this.planRequest;
    if (!base) return plan;
    const dtype = this.opts.exchange ?? 'f32';
    const values = this.opts.config.nEmbd;
    const found: LinkInfo[] = [];
    const probes: typeof this.exchangeProbes = [];
    const local = stages.find((st) => st.kind === 'local')?.group?.exchange;
    const rankOf = (nodeId: string): ProbeRank | undefined => {
      if (nodeId === this.localId) return local && { nodeId, local };
      const node = this.nodes.get(nodeId);
      return node && { nodeId, conn: node.conn };
    };
    for (const group of groups) {
      if (group.length < 2 || group.some((r) => r.home !== undefined)) continue;
      const ids = group.map((r) => r.nodeId);
      const names = ids.map((id) => this.nameOf(id));
      const ranks = ids.map(rankOf);
      if (ranks.some((r) => r === undefined)) continue;
      try {
        const estimated = allReduce(ids.length, exchangeBytes(values, dtype), worstLink(base, ids), 'direct').seconds;
        const seconds = await probeGroup(ranks as ProbeRank[], { epoch, rounds: probeRounds(estimated), values });
        this.log(`cairn: group ${names.join(' + ')}: one all-reduce of a token took ${(seconds * 1000).toFixed(2)} ms (estimated ${(estimated * 1000).toFixed(2)} ms)`);
        probes.push({ names, measuredMs: seconds * 1000, estimatedMs: estimated * 1000 });
        found.push(...measuredGroupLinks(base, ids, seconds, values, dtype));
      } catch (err) {
        this.log(`cairn: could not measure the exchanges of group ${names.join(' + ')}: ${(err as Error).message}`);
      }
    }
    this.exchangeProbes = probes;
    if (found.length === 0) return plan;
    const pair = (l: LinkInfo) => [l.from, l.to].sort().join(' ');
    const fresh = new Set(found.map(pair));
    this.exchangeLinks = [...found, ...this.exchangeLinks.filter((l) => !fresh.has(pair(l)))];
    const req: PlanRequest = { ...base, links: [...found, ...base.links] };
    this.planRequest = req;
    const c = scorePlan({ ...req, exchangeDtype: dtype }, plan.stages);
    if (!c?.fits) return plan;
    return { ...plan, predictedTokensPerSecond: c.decodeTokensPerSecond, predictedPipelinedTokensPerSecond: c.aggregateTokensPerSecond };
  }

  /** Loads one plan entry on its node (a stage, or a rank of `group`); `next`: where its output goes. */
  private async loadRank(r: PlanStage, node: RemoteNode, epoch: number, group: GroupSpec | undefined, next?: RemoteNode): Promise<RemoteStageHandle> {
    const req: LoadRequest = {
      modelSha256: this.modelSha,
      modelName: basename(this.opts.modelPath),
      layerStart: r.layerStart,
      layerEnd: r.layerEnd,
      ctx: this.opts.ctx,
      slots: this.opts.slots,
      kvType: this.opts.kvType,
      maxBatch: this.maxBatch,
      next: next ? { host: next.host, port: next.port, nodeId: next.caps.nodeId } : undefined,
      group,
      epoch,
    };
    try {
      await this.loadRemote(node, req);
    } catch (err) {
      throw new StageLoadFailed(r.nodeId, err as Error);
    }
    return { kind: 'remote', conn: node.conn, nodeId: r.nodeId, name: node.caps.name, layerStart: r.layerStart, layerEnd: r.layerEnd };
  }

  private nameOf(nodeId: string): string {
    return nodeId === this.localId ? 'coordinator' : (this.nodes.get(nodeId)?.caps.name ?? nodeId);
  }

  /**
   * Loads a stage on a node, streaming its tensors first when the node lacks them. A node without
   * its own copy of the model is told the shard's manifest (hashes from this coordinator's copy),
   * against which it checks any cached shard and every byte it receives.
   */
  private async loadRemote(node: RemoteNode, req: LoadRequest): Promise<void> {
    const range = `layers ${req.layerStart}-${req.layerEnd - 1}`;
    let shard: PreparedShard | undefined;
    const prepare = async (): Promise<PreparedShard> => {
      const bar = new ProgressReporter(this.opts.progress ? `hashing ${range} for ${node.caps.name}` : undefined);
      try {
        // A rank of a group is sent only what it reads of its layers.
        return await prepareShard(this.opts.modelPath, this.opts.file, this.modelSha, this.opts.config.nLayer, shardSpecOf(req), (d, t) => bar.update(d, t));
      } finally {
        bar.stop();
      }
    };
    // The hub is offered once: after it failed, the shard comes from here.
    let offerHub = this.opts.hubSource !== undefined;
    const ask = async () => {
      const hub = shard && offerHub ? this.opts.hubSource : undefined;
      const p = jsonPayload(shard ? { ...req, shard: shard.manifest, ...(hub ? { hub } : {}) } : req);
      // Fetching from the hub takes as long as the download: allow for 1 MB/s at least.
      const timeoutMs = 600_000 + (hub && shard ? Math.ceil(shard.manifest.fileSize / 1000) : 0);
      return frameJson(await node.conn.request(MeshFrame.load, p.meta, p.payload, { timeoutMs })) as LoadReply;
    };
    const onProgress = (frame: Frame) => {
      if (frame.type !== MeshFrame.shardProgress) return;
      try {
        const { done, total } = frameJson(frame) as { done?: unknown; total?: unknown };
        if (typeof done === 'number' && typeof total === 'number' && Number.isSafeInteger(done) && Number.isSafeInteger(total) && done >= 0 && done <= total) {
          this.transfers.set(node.caps.nodeId, { from: 'hub', done, total });
        }
      } catch {
        // A malformed progress note only goes untold.
      }
    };
    node.conn.on('frame', onProgress);
    try {
      if (!node.caps.models.includes(this.modelSha)) shard = await prepare();
      let reply = await ask();
      if (reply.status === 'need-data' && !shard) {
        shard = await prepare();
        reply = await ask();
      }
      if (reply.status === 'need-data' && typeof reply.hubFailed === 'string' && offerHub) {
        if (!hasControlCharacter(reply.hubFailed)) this.log(`cairn: ${node.caps.name} could not fetch ${range} from the hub: ${reply.hubFailed.slice(0, 500)}`);
        offerHub = false;
      }
      if (reply.status === 'need-data') {
        if (typeof reply.damaged === 'string' && !hasControlCharacter(reply.damaged)) this.log(`cairn: ${node.caps.name}: ${reply.damaged.slice(0, 500)}`);
        const mapping = openMapping(this.opts.modelPath);
        const bar = new ProgressReporter(this.opts.progress ? `sending ${range} to ${node.caps.name}` : undefined);
        try {
          this.log(`cairn: ${node.caps.name} lacks the model; sending the tensors of ${range}`);
          await sendShard(node.conn, shard!, (t) => mapping.view(t.offset, t.byteLength), (d, t) => {
            bar.update(d, t);
            this.transfers.set(node.caps.nodeId, { from: 'coordinator', done: d, total: t });
          });
        } finally {
          bar.stop();
          mapping.close();
        }
        reply = await ask();
      }
      if (reply.status !== 'loaded') throw new CairnError('CLUSTER_REMOTE', `node ${node.caps.name} could not load ${range}`);
      if (reply.source === 'hub') this.log(`cairn: ${node.caps.name} fetched ${range} from the hub`);
    } finally {
      node.conn.off('frame', onProgress);
      this.transfers.delete(node.caps.nodeId);
    }
  }

  /**
   * Asks for a new plan. `forced`: the running one is broken (or gone); otherwise (a node joined)
   * only a plan that differs from the running one, or any plan at all after a failure, is worth
   * the pause. Requests that come while planning run are folded into one more round.
   */
  private replan(reason: string, forced: boolean): void {
    if (this.closed || !this.started) return;
    this.wanted = { reason: this.wanted?.forced && !forced ? this.wanted.reason : reason, forced: forced || (this.wanted?.forced ?? false) };
    if (this.replanning) return;
    this.replanning = this.replanRounds().finally(() => (this.replanning = undefined));
  }

  private async replanRounds(): Promise<void> {
    // Start with a yield, so that `replanning` is set before the first round does anything.
    await Promise.resolve();
    while (this.wanted && !this.closed) {
      const { reason, forced } = this.wanted;
      this.wanted = undefined;
      if (!forced && !this.failure && this.pipeline && !this.pipeline.broken && !this.planWouldChange()) continue;
      const t0 = performance.now();
      this.log(`cairn: ${reason}; planning again`);
      const old = this.pipeline;
      this.pipeline = undefined;
      this.plan = undefined;
      await old?.close(reason);
      try {
        await this.establish();
        this.failure = undefined;
        this.log(`cairn: plan ${this.epoch} ready ${((performance.now() - t0) / 1000).toFixed(2)} s after: ${reason}`);
      } catch (err) {
        if (this.closed) return;
        this.failure = (err as Error).message;
        this.log(`cairn: the cluster cannot run the model now: ${this.failure}\ncairn: waiting for nodes to come back`);
      }
    }
  }

  /** True when a plan over the nodes up now differs from the running one. */
  private planWouldChange(): boolean {
    let next: Plan;
    try {
      next = this.makePlan();
    } catch {
      return false;
    }
    const key = (p: Plan | undefined) => JSON.stringify(p?.stages.map((s) => [s.nodeId, s.layerStart, s.layerEnd, s.splitRank, s.splitCount, s.splitShares]));
    return key(next) !== key(this.plan);
  }

  /** Resolves once no planning runs. */
  async settle(): Promise<void> {
    while (this.replanning) await this.replanning;
  }

  private current(): Pipeline {
    if (this.closed) throw new CairnError('SHUTTING_DOWN', 'the coordinator is stopping');
    const p = this.pipeline;
    if (p && !p.broken) return p;
    if (p?.broken && !this.replanning) this.replan(p.broken, true);
    if (this.replanning) throw new RunnerInterrupted('the cluster is re-planning; the request goes on once the new plan is loaded');
    throw new CairnError('CLUSTER_PLAN', this.unavailable ?? 'the cluster has no plan');
  }

  forward(req: ForwardRequest): Promise<ForwardResult> {
    try {
      return this.current().forward(req);
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  async startSequence(seq: number, spec: SequenceSpec): Promise<void> {
    return this.current().startSequence(seq, spec);
  }

  async endSequence(seq: number): Promise<void> {
    if (this.pipeline && !this.pipeline.broken) await this.pipeline.endSequence(seq);
  }

  async copySlotPrefix(from: number, to: number, n: number): Promise<void> {
    await this.current().kv({ op: 'copy', from, to, n });
  }

  async saveSlot(slot: number, n: number, key: number): Promise<number> {
    try {
      return (await this.current().kv({ op: 'save', slot, n, key })).reduce((a, r) => a + r.bytes, 0);
    } catch (err) {
      // A node refused to keep the prefix (its memory bound): the stages that did keep it drop it
      // again, and the prompt cache goes on without the prefix (BAD_ARGUMENT) rather than failing
      // the request. A lost node (another code) is the re-planning's business.
      if (!isCairnError(err, 'CLUSTER_REMOTE')) throw err;
      await this.dropSaved(key).catch(() => {});
      throw new CairnError('BAD_ARGUMENT', `a node did not keep the prompt prefix: ${(err as Error).message}`);
    }
  }

  async loadSlot(key: number, slot: number): Promise<void> {
    await this.current().kv({ op: 'load', key, slot });
  }

  async dropSaved(key: number): Promise<void> {
    if (this.pipeline && !this.pipeline.broken) await this.pipeline.kv({ op: 'drop', key });
  }

  /** Saved prefixes of every node of the plan in one buffer: one part per node, in the order of pipeline.members (util/message-framing.ts). */
  async exportSaved(key: number): Promise<Uint8Array> {
    return packParts((await this.current().kv({ op: 'export', key })).map((r) => r.data!));
  }

  async importSaved(key: number, bytes: Uint8Array): Promise<number> {
    const pipeline = this.current();
    const parts = unpackParts(bytes, { what: 'saved prefix', code: 'BAD_ARGUMENT' });
    if (parts.length !== pipeline.members.length) {
      throw new CairnError('BAD_ARGUMENT', `the saved prefix holds the caches of ${parts.length} nodes, this plan has ${pipeline.members.length} (it was made for another plan)`);
    }
    return (await pipeline.kv({ op: 'import', key }, parts)).reduce((a, r) => a + r.bytes, 0);
  }

  /** Nodes, links, the plan and its state. */
  status(): ClusterStatus {
    const state = this.replanning ? 'replanning' : this.failure ? 'failed' : this.pipeline ? 'ready' : 'planning';
    const nodes: ClusterStatus['nodes'][number][] = [];
    if (this.localCaps) {
      const c = this.localCaps;
      nodes.push({ id: c.nodeId, name: c.name, address: 'local', local: true, up: true, memoryBytes: c.memoryBytes, bytesPerSecond: c.bytesPerSecond, threads: c.threads, isa: c.isa });
    }
    for (const n of this.nodes.all()) {
      const c = n.caps;
      const transfer = this.transfers.get(c.nodeId);
      const load = this.loads.get(c.nodeId);
      nodes.push({ id: c.nodeId, name: c.name, address: `${n.host}:${n.port}`, local: false, up: this.nodes.usable(n), memoryBytes: c.memoryBytes, bytesPerSecond: c.bytesPerSecond, threads: c.threads, isa: c.isa, ...(c.backend === 'gpu' ? { backend: 'gpu' as const, adapter: c.adapter } : {}), ...(load ?? {}), ...(transfer ? { transfer } : {}) });
    }
    return {
      state,
      error: this.failure,
      epoch: this.epoch,
      model: { name: basename(this.opts.modelPath), sha256: this.modelSha, layers: this.opts.config.nLayer },
      nodes,
      links: this.nodes.all().map((n) => ({ to: n.caps.name, latencyMs: n.link.latencySeconds * 2000, megabytesPerSecond: n.link.bytesPerSecond / 1e6 })),
      plan: this.plan && {
        stages: this.plan.stages.map((s) => ({
          nodeId: s.nodeId,
          name: this.nameOf(s.nodeId),
          layerStart: s.layerStart,
          layerEnd: s.layerEnd,
          memoryBytes: s.memoryBytes,
          splitRank: s.splitRank,
          splitCount: s.splitCount,
          splitShare: s.splitShares ? s.splitShares[s.splitRank] / s.splitShares.reduce((a, b) => a + b, 0) : 1,
          ...(s.splitCount > 1 ? { splitMode: s.home !== undefined ? ('expert' as const) : ('tensor' as const) } : {}),
        })),
        predictedTokensPerSecond: this.plan.predictedTokensPerSecond,
        predictedPipelinedTokensPerSecond: this.plan.predictedPipelinedTokensPerSecond,
        measuredTokensPerSecond: this.pipeline?.measuredTokensPerSecond,
        activationDtype: this.plan.activationDtype,
        exchanges: this.exchangeProbes,
      },
    };
  }

  /** Unloads every stage and closes every connection. */
  async close(): Promise<void> {
    this.closed = true;
    this.loads.stop();
    const p = this.pipeline;
    this.pipeline = undefined;
    await p?.close('the coordinator is stopping');
    this.nodes.close('the coordinator is stopping');
    await this.discovery?.stop();
  }
}

/** Consecutive plan entries of one layer range split over several ranks form one group (one pipeline stage). */
function groupStages(stages: readonly PlanStage[]): PlanStage[][] {
  const groups: PlanStage[][] = [];
  for (const s of stages) {
    const last = groups[groups.length - 1];
    if (last && s.splitCount > 1 && s.splitRank > 0 && last[0].layerStart === s.layerStart && last[0].layerEnd === s.layerEnd) last.push(s);
    else groups.push([s]);
  }
  for (const g of groups) {
    if (g.length !== g[0].splitCount || g.some((s, r) => s.splitRank !== r)) {
      throw new CairnError('CLUSTER_PLAN', `the plan's ranks of layers ${g[0].layerStart}-${g[0].layerEnd - 1} do not form a whole group`);
    }
  }
  return groups;
}
