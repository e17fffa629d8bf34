/**
 * The coordinator of a cluster (`cairn serve --cluster`): finds the nodes (static peers, and mDNS
 * when asked), measures them and the links to them, makes a plan, loads every stage (streaming
 * weights to nodes that lack the model), and runs the pipeline as the engine's ForwardRunner.
 * When a node goes away, the steps in flight fail with a clear error, and the coordinator plans
 * again over the nodes that are left; the next request runs on the new plan.
 */
import { basename } from 'node:path';
import {
  connectPeer,
  Discovery,
  frameJson,
  jsonPayload,
  measureLink,
  parsePeerList,
  type PeerConnection,
  type ClusterSecret,
} from '../cluster/index.js';
import { loadShards, type LoadedShards } from '../engine/load.js';
import type { ForwardRequest, ForwardResult, ForwardRunner } from '../engine/runner.js';
import type { SequenceSpec } from '../engine/sequence-samplers.js';
import { GgmlType } from '../gguf/ggml-types.js';
import type { GgufFile } from '../gguf/reader.js';
import { createKernels, cpuInfo, openMapping, type KvType } from '../kernels/index.js';
import type { ModelConfig } from '../model/config.js';
import { makePlan } from '../planner/plan.js';
import type { LinkInfo, NodeInfo, Plan } from '../planner/types.js';
import { CairnError } from '../util/errors.js';
import { fileSha256 } from '../util/file-hash.js';
import { ProgressReporter } from '../util/progress.js';
import { measureMatvecSpeed, offeredMemory } from './capabilities.js';
import { coordinatorReceiveLimit, type StageSizes } from './limits.js';
import { modelMeta } from './model-meta.js';
import { MESH_COMPATIBILITY } from './node.js';
import { Pipeline, type PipelineStage } from './pipeline.js';
import { MeshFrame, type LoadReply, type LoadRequest, type NodeCapabilities } from './protocol.js';
import { hasControlCharacter } from './load-request.js';
import { prepareShard, sendShard, type PreparedShard } from './shard-files.js';
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
  /** Also look for nodes over mDNS for this long before planning (0 = static peers only). */
  readonly discoveryMs?: number;
  readonly mdnsInterface?: string;
  readonly log?: (line: string) => void;
  readonly progress?: boolean;
  /** How hidden states travel between stages; default: the plan's choice from the links. */
  readonly activations?: 'f16' | 'f32';
}

interface RemoteNode {
  readonly conn: PeerConnection;
  readonly caps: NodeCapabilities;
  readonly host: string;
  readonly port: number;
  link: LinkInfo;
  up: boolean;
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
  }[];
  readonly links: readonly { readonly to: string; readonly latencyMs: number; readonly megabytesPerSecond: number }[];
  readonly plan?: {
    readonly stages: readonly { readonly nodeId: string; readonly name: string; readonly layerStart: number; readonly layerEnd: number; readonly memoryBytes: number }[];
    readonly predictedTokensPerSecond: number;
    readonly predictedPipelinedTokensPerSecond: number;
    readonly activationDtype: 'f16' | 'f32';
  };
}

const HEARTBEAT_MS = 400;
const HEARTBEAT_TIMEOUT_MS = 1500;

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
  private failure: string | undefined;
  private readonly nodes = new Map<string, RemoteNode>();
  private localCaps: NodeCapabilities | undefined;
  private modelSha = '';
  private heartbeat: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly localId = `local-${randomUUID().slice(0, 8)}`;
  private discovery: Discovery | undefined;
  private readonly log: (line: string) => void;

  private constructor(private readonly opts: CoordinatorOptions) {
    this.nVocab = opts.config.nVocab;
    this.maxBatch = Math.min(opts.maxBatch, opts.ctx);
    this.slots = opts.slots;
    this.ctxPerSlot = opts.ctx;
    this.log = opts.log ?? ((line) => process.stderr.write(line + '\n'));
  }

  /** Finds the nodes, plans and loads; rejects with a clear error when the model cannot be placed. */
  static async start(opts: CoordinatorOptions): Promise<ClusterCoordinator> {
    const c = new ClusterCoordinator(opts);
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

  private async startUp(): Promise<void> {
    const bar = new ProgressReporter(this.opts.progress ? `hashing ${basename(this.opts.modelPath)}` : undefined, 1);
    this.modelSha = await fileSha256(this.opts.modelPath, (d, t) => bar.update(d / t));
    bar.stop();
    if (this.opts.localCompute ?? true) {
      const kernels = createKernels({ threads: this.opts.threads });
      const info = cpuInfo();
      this.localCaps = {
        nodeId: this.localId,
        name: 'coordinator',
        memoryBytes: offeredMemory(this.opts.maxMemory),
        bytesPerSecond: measureMatvecSpeed(kernels),
        threads: info.threads,
        isa: info.isa,
        models: [this.modelSha],
        host: '127.0.0.1',
        port: 0,
      };
    }
    const addresses = parsePeerList([...this.opts.peers]).map((a) => ({ host: a.host, port: a.port }));
    if ((this.opts.discoveryMs ?? 0) > 0) {
      this.discovery = new Discovery({ identity: { id: this.localId, name: 'coordinator' }, port: 0, mdns: true, advertise: false, interface: this.opts.mdnsInterface });
      this.discovery.on('warning', (w) => this.log(`cairn: mDNS: ${w.message}`));
      this.discovery.on('up', (p) => {
        if (p.source === 'mdns' && !addresses.some((a) => a.host === p.host && a.port === p.port)) addresses.push({ host: p.host, port: p.port });
      });
      await this.discovery.start();
      await new Promise((r) => setTimeout(r, this.opts.discoveryMs));
    }
    await Promise.all(addresses.map((a) => this.connectNode(a.host, a.port)));
    if (!this.localCaps && this.nodes.size === 0) {
      throw new CairnError('CLUSTER_PLAN', 'no nodes to run the model on: give --peers host:port (nodes started with `cairn node`), or allow local compute');
    }
    await this.planAndLoad();
    this.heartbeat = setInterval(() => this.beat(), HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  private async connectNode(host: string, port: number): Promise<void> {
    let conn: PeerConnection;
    try {
      const sizes = this.receiveSizes();
      conn = await connectPeer(host, port, {
        nodeId: this.localId,
        name: 'coordinator',
        clusterKey: this.opts.clusterKey,
        compatibility: MESH_COMPATIBILITY,
        payloadLimit: (type, flags) => coordinatorReceiveLimit(type, flags, sizes),
      });
    } catch (err) {
      this.log(`cairn: node ${host}:${port} not used: ${(err as Error).message}`);
      return;
    }
    const p = jsonPayload({});
    const caps = frameJson(await conn.request(MeshFrame.info, p.meta, p.payload)) as NodeCapabilities;
    const m = await measureLink(conn);
    const link: LinkInfo = { from: this.localId, to: caps.nodeId, latencySeconds: m.latency.medianMs / 2000, bytesPerSecond: m.bandwidth.bytesPerSecond };
    const node: RemoteNode = { conn, caps, host, port, link, up: true };
    this.nodes.set(caps.nodeId, node);
    conn.on('close', (info) => {
      if (!node.up) return;
      node.up = false;
      this.log(`cairn: node ${caps.name} (${host}:${port}) left: ${info.reason}`);
    });
    this.log(`cairn: node ${caps.name} at ${host}:${port}: ${(caps.memoryBytes / 2 ** 30).toFixed(1)} GiB, ${(caps.bytesPerSecond / 1e9).toFixed(1)} GB/s, link ${(m.latency.medianMs * 1000).toFixed(0)} us round trip`);
  }

  /** The model's sizes that bound what nodes may send back (limits.ts). */
  private receiveSizes(): StageSizes {
    const { config, file } = this.opts;
    const meta = modelMeta(file, config, this.opts.kvType === GgmlType.F32 ? 4 : 2, this.maxBatch);
    return { maxBatch: this.maxBatch, nEmbd: config.nEmbd, nVocab: config.nVocab, slots: this.slots, kvBytesPerSlot: meta.kvBytesPerLayerToken * config.nLayer * this.ctxPerSlot };
  }

  private beat(): void {
    for (const n of this.nodes.values()) {
      if (!n.up || !n.conn.isOpen) continue;
      n.conn.ping(0, { timeoutMs: HEARTBEAT_TIMEOUT_MS }).catch(() => n.conn.destroy('no heartbeat reply'));
    }
  }

  private async planAndLoad(): Promise<void> {
    const { file, config } = this.opts;
    const kvBytes = this.opts.kvType === GgmlType.F32 ? 4 : 2;
    const up = [...this.nodes.values()].filter((n) => n.up && n.conn.isOpen);
    const infos: NodeInfo[] = [
      ...(this.localCaps ? [{ id: this.localCaps.nodeId, memoryBytes: this.localCaps.memoryBytes, bytesPerSecond: this.localCaps.bytesPerSecond, coordinator: true }] : []),
      ...up.map((n) => ({ id: n.caps.nodeId, memoryBytes: n.caps.memoryBytes, bytesPerSecond: n.caps.bytesPerSecond })),
    ];
    const plan = makePlan({ model: modelMeta(file, config, kvBytes, this.maxBatch), nodes: infos, links: up.map((n) => n.link), kvTokens: this.opts.ctx * this.opts.slots });
    const epoch = this.epoch + 1;
    this.log(`cairn: plan ${epoch}: ${plan.stages.map((s) => `${this.nameOf(s.nodeId)} layers ${s.layerStart}-${s.layerEnd - 1}`).join(', ')}`);
    const stages: PipelineStage[] = [];
    try {
      for (let i = 0; i < plan.stages.length; i++) {
        const s = plan.stages[i];
        const nextStage = plan.stages[i + 1];
        if (s.nodeId === this.localId) {
          const loaded: LoadedShards = await loadShards(this.opts.modelPath, {
            threads: this.opts.threads,
            ctx: this.opts.ctx,
            slots: this.opts.slots,
            kvType: this.opts.kvType,
            maxBatch: this.maxBatch,
            shards: [{ layerStart: s.layerStart, layerEnd: s.layerEnd, splitRank: 0, splitCount: 1 }],
            progress: this.opts.progress,
          });
          stages.push({ kind: 'local', loaded, nodeId: s.nodeId, name: 'coordinator' });
          continue;
        }
        const node = this.nodes.get(s.nodeId)!;
        const next = nextStage ? this.nodes.get(nextStage.nodeId) : undefined;
        const req: LoadRequest = {
          modelSha256: this.modelSha,
          modelName: basename(this.opts.modelPath),
          layerStart: s.layerStart,
          layerEnd: s.layerEnd,
          ctx: this.opts.ctx,
          slots: this.opts.slots,
          kvType: this.opts.kvType,
          maxBatch: this.maxBatch,
          next: next ? { host: next.host, port: next.port, nodeId: next.caps.nodeId } : undefined,
          epoch,
        };
        await this.loadRemote(node, req);
        stages.push({ kind: 'remote', conn: node.conn, nodeId: s.nodeId, name: node.caps.name, layerStart: s.layerStart, layerEnd: s.layerEnd });
      }
    } catch (err) {
      for (const st of stages) if (st.kind === 'local') st.loaded.close();
      throw err;
    }
    const wire = this.opts.activations ?? plan.activationDtype;
    this.pipeline = new Pipeline(stages, epoch, config.nVocab, config.nEmbd, (reason) => this.onBroken(reason), wire);
    this.plan = { ...plan, activationDtype: wire };
    this.epoch = epoch;
    this.failure = undefined;
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
      const bar = new ProgressReporter(this.opts.progress ? `hashing ${range} for ${node.caps.name}` : undefined, 1);
      try {
        return await prepareShard(this.opts.modelPath, this.opts.file, this.modelSha, this.opts.config.nLayer, req.layerStart, req.layerEnd, (d, t) => bar.update(d / t));
      } finally {
        bar.stop();
      }
    };
    const ask = async () => {
      const p = jsonPayload(shard ? { ...req, shard: shard.manifest } : req);
      return frameJson(await node.conn.request(MeshFrame.load, p.meta, p.payload, { timeoutMs: 600_000 })) as LoadReply;
    };
    if (!node.caps.models.includes(this.modelSha)) shard = await prepare();
    let reply = await ask();
    if (reply.status === 'need-data' && !shard) {
      shard = await prepare();
      reply = await ask();
    }
    if (reply.status === 'need-data') {
      if (typeof reply.damaged === 'string' && !hasControlCharacter(reply.damaged)) this.log(`cairn: ${node.caps.name}: ${reply.damaged.slice(0, 500)}`);
      const mapping = openMapping(this.opts.modelPath);
      const bar = new ProgressReporter(this.opts.progress ? `sending ${range} to ${node.caps.name}` : undefined, 1);
      try {
        this.log(`cairn: ${node.caps.name} lacks the model; sending the tensors of ${range}`);
        await sendShard(node.conn, shard!, (t) => mapping.view(t.offset, t.byteLength), (d, t) => bar.update(d / t));
      } finally {
        bar.stop();
        mapping.close();
      }
      reply = await ask();
    }
    if (reply.status !== 'loaded') throw new CairnError('CLUSTER_REMOTE', `node ${node.caps.name} could not load ${range}`);
  }

  private onBroken(reason: string): void {
    if (this.closed || this.replanning) return;
    this.log(`cairn: ${reason}; planning again`);
    const old = this.pipeline;
    this.replanning = (async () => {
      try {
        await old?.close(reason);
        await this.planAndLoad();
        this.log(`cairn: plan ${this.epoch} ready`);
      } catch (err) {
        this.failure = (err as Error).message;
        this.pipeline = undefined;
        this.log(`cairn: the cluster cannot run the model any more: ${this.failure}`);
      } finally {
        this.replanning = undefined;
      }
    })();
  }

  async settle(): Promise<void> {
    while (this.replanning) await this.replanning;
  }

  private current(): Pipeline {
    if (this.failure) throw new CairnError('CLUSTER_PLAN', `the cluster cannot run the model: ${this.failure}`);
    if (!this.pipeline || this.replanning) throw new CairnError('CLUSTER_CLOSED', 'the cluster is re-planning; retry shortly');
    return this.pipeline;
  }

  forward(req: ForwardRequest): Promise<ForwardResult> {
    try {
      return this.current().forward(req);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  startSequence(seq: number, spec: SequenceSpec): Promise<void> {
    return this.current().startSequence(seq, spec);
  }

  async endSequence(seq: number): Promise<void> {
    if (this.pipeline && !this.pipeline.broken) await this.pipeline.endSequence(seq);
  }

  async copySlotPrefix(from: number, to: number, n: number): Promise<void> {
    await this.current().kv({ op: 'copy', from, to, n });
  }

  async saveSlot(slot: number, n: number, key: number): Promise<number> {
    return (await this.current().kv({ op: 'save', slot, n, key })).reduce((a, r) => a + r.bytes, 0);
  }

  async loadSlot(key: number, slot: number): Promise<void> {
    await this.current().kv({ op: 'load', key, slot });
  }

  async dropSaved(key: number): Promise<void> {
    if (this.pipeline && !this.pipeline.broken) await this.pipeline.kv({ op: 'drop', key });
  }

  /** Saved prefixes of all stages in one buffer: u32 stage count, then u32 length + bytes per stage. */
  async exportSaved(key: number): Promise<Uint8Array> {
    const parts = (await this.current().kv({ op: 'export', key })).map((r) => r.data!);
    const out = Buffer.alloc(4 + parts.reduce((a, p) => a + 4 + p.length, 0));
    let o = out.writeUInt32LE(parts.length, 0);
    for (const p of parts) {
      o = out.writeUInt32LE(p.length, o);
      out.set(p, o);
      o += p.length;
    }
    return out;
  }

  async importSaved(key: number, bytes: Uint8Array): Promise<number> {
    const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const count = b.readUInt32LE(0);
    const pipeline = this.current();
    if (count !== pipeline.stages.length) throw new CairnError('BAD_ARGUMENT', 'saved prefix was made for another plan');
    const parts: Uint8Array[] = [];
    let o = 4;
    for (let i = 0; i < count; i++) {
      const n = b.readUInt32LE(o);
      parts.push(b.subarray(o + 4, o + 4 + n));
      o += 4 + n;
    }
    return (await pipeline.kv({ op: 'import', key }, parts)).reduce((a, r) => a + r.bytes, 0);
  }

  /** Nodes, links, the plan and its state. */
  status(): ClusterStatus {
    const state = this.failure ? 'failed' : this.replanning ? 'replanning' : this.pipeline ? 'ready' : 'planning';
    const nodes: ClusterStatus['nodes'][number][] = [];
    if (this.localCaps) {
      const c = this.localCaps;
      nodes.push({ id: c.nodeId, name: c.name, address: 'local', local: true, up: true, memoryBytes: c.memoryBytes, bytesPerSecond: c.bytesPerSecond, threads: c.threads, isa: c.isa });
    }
    for (const n of this.nodes.values()) {
      const c = n.caps;
      nodes.push({ id: c.nodeId, name: c.name, address: `${n.host}:${n.port}`, local: false, up: n.up && n.conn.isOpen, memoryBytes: c.memoryBytes, bytesPerSecond: c.bytesPerSecond, threads: c.threads, isa: c.isa });
    }
    return {
      state,
      error: this.failure,
      epoch: this.epoch,
      model: { name: basename(this.opts.modelPath), sha256: this.modelSha, layers: this.opts.config.nLayer },
      nodes,
      links: [...this.nodes.values()].map((n) => ({ to: n.caps.name, latencyMs: n.link.latencySeconds * 2000, megabytesPerSecond: n.link.bytesPerSecond / 1e6 })),
      plan: this.plan && {
        stages: this.plan.stages.map((s) => ({ nodeId: s.nodeId, name: this.nameOf(s.nodeId), layerStart: s.layerStart, layerEnd: s.layerEnd, memoryBytes: s.memoryBytes })),
        predictedTokensPerSecond: this.plan.predictedTokensPerSecond,
        predictedPipelinedTokensPerSecond: this.plan.predictedPipelinedTokensPerSecond,
        activationDtype: this.plan.activationDtype,
      },
    };
  }

  /** Unloads every stage and closes every connection. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    await this.pipeline?.close('the coordinator is stopping');
    for (const n of this.nodes.values()) n.conn.close('the coordinator is stopping');
    await this.discovery?.stop();
  }
}
