/**
 * A cluster node (`cairn node`): listens for a coordinator, reports what it can do, loads the
 * shard it is given (from its own copy of the model, from its shard cache, or from tensors the
 * coordinator streams), connects to the next stage and to the other ranks of its tensor-parallel
 * group, and runs steps in a StageRunner. When the coordinator that loaded it goes away, it drops
 * the shard and waits for the next one.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  ClusterServer,
  connectPeer,
  Discovery,
  DType,
  frameJson,
  jsonPayload,
  loadNodeIdentity,
  type Frame,
  type ListenAddress,
  type PeerConnection,
  type ClusterSecret,
} from '../cluster/index.js';
import { loadExpertRank, loadShards } from '../engine/load.js';
import { loadGpuStage } from '../engine/load-gpu.js';
import { WebGpuKernels } from '../kernels/webgpu/gpu-kernels.js';
import { describeAdapter } from '../kernels/webgpu/device.js';
import { gpuMachineId, measureGpuSpeed } from './gpu-capabilities.js';
import { cpuStageModel, gpuStageModel } from './stage-model.js';
import { readGguf, type GgufFile } from '../gguf/reader.js';
import { createKernels, cpuInfo, type Kernels, type KvType } from '../kernels/index.js';
import { readModelConfig, type ModelConfig } from '../model/config.js';
import { declareExpertShard, declareShard } from '../model/build-shard.js';
import { Workspace } from '../model/blocks/workspace.js';
import { GgufTensorSource } from '../model/gguf-tensor-source.js';
import { expertSplitOf, tensorSplitOf, validateShard, type ShardSpec } from '../model/shard.js';
import { kvCacheBytes } from '../model/kv-cache.js';
import { CairnError, isCairnError } from '../util/errors.js';
import { cacheDir, fileSha256 } from '../util/file-hash.js';
import { ProgressReporter } from '../util/progress.js';
import { machineId, measureSpeeds, offeredMemory } from './capabilities.js';
import { shardSpecOf, validateLoadRequest } from './load-request.js';
import { nodeReceiveLimit, type StageSizes } from './limits.js';
import { MeshFrame, type LoadReply, type LoadRequest, type NodeCapabilities } from './protocol.js';
import { unpackMessage } from '../util/message-framing.js';
import { ShardCache } from './shard-cache.js';
import { describeLayers, manifestDigest } from './shard-manifest.js';
import { fetchShardFromHub, type PublishedFiles } from './hub-shard.js';
import type { MachineLoad } from './node-loads.js';
import { ShardReceiver } from './shard-receiver.js';
import { checkExchangeProbe, checkKvOp, checkSeqEnd, checkSeqStart } from './validate.js';
import { StageRunner, type StageLinks } from './stage-runner.js';
import { TensorGroup } from './tensor-group.js';
import { ExchangeCodec } from './exchange-codec.js';
import { ExpertDispatcher } from './expert-dispatch.js';
import { ExpertRankRunner } from './expert-rank.js';

/** Load requests a node holds at once (the one loading and those waiting their turn). */
export const MAX_PENDING_LOADS = 4;

/** Version string both ends of a mesh connection must share. */
export const MESH_COMPATIBILITY = 'cairn-mesh/2';

/** Settings of a node. */
export interface NodeOptions {
  readonly host?: string;
  readonly port?: number;
  /** The cluster key (its text, or derived with deriveClusterSecret); none: this machine's local key. */
  readonly clusterKey?: string | ClusterSecret;
  readonly name?: string;
  readonly threads?: number;
  readonly maxMemory?: number;
  /** Folder of GGUF files this node has (whole models, found by SHA-256). */
  readonly modelsDir?: string;
  /** Announce the node over mDNS (default: only when a cluster key is set). */
  readonly mdns?: boolean;
  readonly mdnsInterface?: string;
  /** Where shards received from coordinators are kept. */
  readonly shardDir?: string;
  /** Most bytes the shard cache may hold (default: its disk's free space less 10%). */
  readonly cacheMaxBytes?: number;
  /** Progress and status lines (default: stderr). */
  readonly log?: (line: string) => void;
  /** Reads published model files (the hub), so a shard can be fetched from there rather than sent by the coordinator. */
  readonly published?: PublishedFiles;
  /** Reads this machine's CPU load and power (for the coordinator's status); absent: reported as unknown. */
  readonly sampleMachine?: () => MachineLoad;
  /**
   * Where the node's layers run: `gpu` (an error when no adapter opens), `auto` (a hardware GPU
   * if there is one, else the CPU, saying why), `cpu` (default). A node on a GPU advertises the
   * GPU's measured read rate; ranks of tensor- and expert-parallel groups still run on its CPU.
   */
  readonly backend?: 'cpu' | 'gpu' | 'auto';
}

/** A running node. */
export class MeshNode {
  private stage: StageRunner | undefined;
  /** The expert rank this node holds instead of a stage (rank > 0 of an expert-parallel group). */
  private expertRank: ExpertRankRunner | undefined;
  private owner: PeerConnection | undefined;
  private next: PeerConnection | undefined;
  /** Connections to the other ranks of this node's tensor-parallel group (by rank; none at its own). */
  private groupPeers: (PeerConnection | undefined)[] = [];
  /** The connections of groupPeers this node opened (the ones it closes). */
  private dialed: PeerConnection[] = [];
  private readonly cache: ShardCache;
  private readonly receiver: ShardReceiver;
  private readonly models = new Map<string, string>();
  private discovery: Discovery | undefined;
  private receiving: { bar: ProgressReporter; done: number } | undefined;
  /** Cache digests of the shard loaded and the one being loaded: never evicted. */
  private loadedDigest: string | undefined;
  private loadingDigest: string | undefined;
  /** Loads run one at a time, so two requests never leave two stages. */
  private loadQueue: Promise<unknown> = Promise.resolve();
  /** Load requests taken and not yet answered (each holds its request until its turn). */
  private loadsPending = 0;
  capabilities!: NodeCapabilities;
  address!: ListenAddress;
  /** The GPU the node's stages run on (backend gpu, or auto with a hardware adapter). */
  private gpu: WebGpuKernels | undefined;

  private constructor(
    private readonly opts: NodeOptions,
    private readonly server: ClusterServer,
    private readonly kernels: Kernels,
    private readonly nodeId: string,
    private readonly name: string,
  ) {
    this.cache = new ShardCache({
      dir: opts.shardDir ?? (opts.modelsDir ? join(opts.modelsDir, '.cairn-shards') : join(cacheDir(), 'shards')),
      maxBytes: opts.cacheMaxBytes,
      log: (line) => this.log(`cairn node: shard cache: ${line}`),
    });
    this.receiver = new ShardReceiver(this.cache);
  }

  /** Starts a node: measures it, indexes its models, listens and (optionally) announces itself. */
  static async start(opts: NodeOptions): Promise<MeshNode> {
    const log = opts.log ?? ((line: string) => process.stderr.write(line + '\n'));
    // Checked before the shard cache makes its folder inside: a mistyped --models-dir is told, not created.
    if (opts.modelsDir !== undefined) checkModelsDir(opts.modelsDir);
    const identity = await loadNodeIdentity({ name: opts.name });
    const kernels = createKernels({ threads: opts.threads });
    // Limits follow the shard loaded at the time a frame arrives (none: only small messages).
    const self: { node?: MeshNode } = {};
    const payloadLimit = (type: number, flags: number): number => nodeReceiveLimit(type, flags, self.node?.stageSizes);
    const server = new ClusterServer({
      payloadLimit,
      nodeId: identity.id,
      name: identity.name,
      clusterKey: opts.clusterKey,
      compatibility: MESH_COMPATIBILITY,
      host: opts.host,
      port: opts.port ?? 0,
    });
    const node = new MeshNode({ ...opts, log }, server, kernels, identity.id, identity.name);
    self.node = node;
    await node.indexModels();
    node.gpu = await openNodeGpu(opts.backend ?? 'cpu', log);
    const speeds = node.gpu ? await gpuSpeeds(node.gpu) : measureSpeeds(kernels);
    node.address = await server.listen();
    const info = cpuInfo();
    node.capabilities = {
      nodeId: identity.id,
      name: identity.name,
      memoryBytes: offeredMemory(opts.maxMemory),
      bytesPerSecond: speeds.bytesPerSecond,
      threads: info.threads,
      isa: info.isa,
      machine: node.gpu ? gpuMachineId(node.gpu) : machineId(),
      machineBytesPerSecond: speeds.machineBytesPerSecond,
      ...(node.gpu ? { backend: 'gpu' as const, adapter: describeAdapter(node.gpu.gpu.adapter) } : {}),
      models: [...node.models.keys()],
      host: node.address.host,
      port: node.address.port,
    };
    server.on('connection', (conn) => node.attach(conn));
    server.on('refused', (err, from) => log(`cairn node: refused ${from}: ${err.message}`));
    if (opts.mdns ?? opts.clusterKey !== undefined) {
      node.discovery = new Discovery({ identity, port: node.address.port, mdns: true, interface: opts.mdnsInterface });
      node.discovery.on('warning', (w) => log(`cairn node: mDNS: ${w.message}`));
      await node.discovery.start();
    }
    return node;
  }

  /** Sizes of the loaded stage, which bound what peers may send (undefined: nothing loaded). */
  get stageSizes(): StageSizes | undefined {
    return this.stage?.sizes ?? this.expertRank?.sizes;
  }

  private log(line: string): void {
    this.opts.log!(line);
  }

  private async indexModels(): Promise<void> {
    const dir = this.opts.modelsDir;
    if (!dir) return;
    let names: string[];
    try {
      names = readdirSync(dir).filter((n) => n.endsWith('.gguf'));
    } catch (err) {
      throw new CairnError('FILE_NOT_FOUND', `--models-dir ${dir}: ${(err as Error).message}`);
    }
    for (const n of names) {
      const path = join(dir, n);
      const bar = new ProgressReporter(process.stderr.isTTY ? `hashing ${n}` : undefined);
      const sha = await fileSha256(path, (done, total) => bar.update(done, total));
      bar.stop();
      this.models.set(sha, path);
    }
  }

  private attach(conn: PeerConnection): void {
    conn.on('request', (frame) => void this.onRequest(conn, frame));
    conn.on('frame', (frame) => this.onFrame(conn, frame));
    conn.on('close', () => {
      if (this.receiver.abortFrom(conn)) {
        this.stopReceiving();
        this.log('cairn node: shard transfer dropped: the coordinator disconnected');
      }
      if (conn === this.owner) this.unload(`the coordinator ${conn.peer.name} disconnected`);
    });
  }

  private onFrame(conn: PeerConnection, frame: Frame): void {
    if (frame.type === MeshFrame.forward) {
      this.stage?.onForward(frame);
    } else if (frame.type === MeshFrame.partial) {
      this.stage?.onPartial(conn.peer.nodeId, frame);
    } else if (frame.type === MeshFrame.shardChunk) {
      this.onShardChunk(conn, frame);
    } else if (frame.type === MeshFrame.seqEnd) {
      try {
        this.stage?.endSequence(checkSeqEnd(frameJson(frame)).seq);
      } catch (err) {
        this.log(`cairn node: ignored a malformed sequence end: ${(err as Error).message}`);
      }
    }
  }

  private async onRequest(conn: PeerConnection, frame: Frame): Promise<void> {
    const ok = (value: unknown) => {
      const p = jsonPayload(value);
      conn.reply(frame, frame.type, p.meta, p.payload);
    };
    try {
      switch (frame.type) {
        case MeshFrame.info:
          return ok(this.capabilities);
        case MeshFrame.machine:
          return ok(this.opts.sampleMachine?.() ?? { cpuLoad: null, powerWatts: null });
        case MeshFrame.load:
          return ok(await this.load(conn, frameJson(frame)));
        case MeshFrame.shardBegin: {
          this.stopReceiving();
          const m = this.receiver.start(conn, frameJson(frame), this.pinned());
          this.log(`cairn node: receiving ${describeLayers(m)} (${mib(m.fileSize)})`);
          this.receiving = { bar: new ProgressReporter(process.stderr.isTTY ? `receiving ${describeLayers(m)}` : undefined, m.fileSize), done: 0 };
          return ok({});
        }
        case MeshFrame.shardEnd: {
          this.stopReceiving();
          await this.receiver.finish(conn);
          return ok({});
        }
        case MeshFrame.seqStart: {
          this.refuseOtherCoordinator(conn);
          if (!this.stage) throw new CairnError('BAD_ARGUMENT', 'no shard loaded');
          const b = this.stage.bounds;
          const s = checkSeqStart(frameJson(frame), b.nVocab, b.ctxPerSlot);
          this.stage.startSequence(s.seq, s.spec);
          return ok({});
        }
        case MeshFrame.kv: {
          this.refuseOtherCoordinator(conn);
          if (!this.stage) throw new CairnError('BAD_ARGUMENT', 'no shard loaded');
          const { head, bodies } = unpackMessage(frame.payload, { what: 'KV operation' });
          const b = this.stage.bounds;
          const op = checkKvOp(head, b.slots, b.ctxPerSlot);
          if (bodies.length !== (op.op === 'import' ? 1 : 0)) throw new CairnError('CLUSTER_PROTOCOL', `malformed KV operation: ${op.op} with ${bodies.length} bodies`);
          const r = await this.stage.kv(op, bodies[0]);
          if (r.data) conn.reply(frame, frame.type, {}, r.data);
          else ok({ bytes: r.bytes });
          return;
        }
        case MeshFrame.experts: {
          if (!this.expertRank) throw new CairnError('BAD_ARGUMENT', 'this node holds no experts');
          const out = this.expertRank.answer(conn.peer.nodeId, frame);
          conn.reply(frame, frame.type, { dtype: DType.raw }, out);
          return;
        }
        case MeshFrame.exchangeProbe: {
          if (!this.stage) throw new CairnError('BAD_ARGUMENT', 'no shard loaded');
          if (conn !== this.owner) throw new CairnError('BAD_ARGUMENT', 'only the coordinator that loaded the stage may probe its group');
          const probe = checkExchangeProbe(frameJson(frame), this.stage.epoch, this.stage.sizes.nEmbd);
          return ok({ seconds: await this.stage.probeExchange(probe) });
        }
        case MeshFrame.unload:
          // Another coordinator's unload leaves the shard of the one using this node alone.
          if (!this.owner || conn === this.owner || !this.owner.isOpen) this.unload('unloaded by the coordinator');
          return ok({});
        default:
          conn.replyError(frame, `unknown request type ${frame.type}`);
      }
    } catch (err) {
      if (conn.isOpen) conn.replyError(frame, (err as Error).message);
    }
  }

  private onShardChunk(conn: PeerConnection, frame: Frame): void {
    try {
      if (this.receiver.chunk(conn, frame.sequence, frame.payload) && this.receiving) {
        this.receiving.bar.update((this.receiving.done += frame.payload.length));
      }
    } catch (err) {
      // The partial file is gone already; tell the coordinator now rather than after the last chunk.
      this.stopReceiving();
      const reason = (err as Error).message;
      this.log(`cairn node: shard transfer failed: ${reason}`);
      const p = jsonPayload({ reason });
      conn.write(MeshFrame.shardAbort, p.meta, p.payload).catch(() => {});
    }
  }

  private stopReceiving(): void {
    this.receiving?.bar.stop();
    this.receiving = undefined;
  }

  private pinned(): Set<string> {
    return new Set([this.loadedDigest, this.loadingDigest].filter((d): d is string => d !== undefined));
  }

  /** Loads a shard from a local copy (whole model or checked cached shard), or says it needs the data. */
  private load(conn: PeerConnection, raw: unknown): Promise<LoadReply> {
    // A coordinator waits for each load's answer before the next: more than a few waiting is a
    // peer flooding the queue, whose requests would each be held until their turn.
    if (this.loadsPending >= MAX_PENDING_LOADS) {
      return Promise.reject(new CairnError('BAD_ARGUMENT', `load refused: ${MAX_PENDING_LOADS} load requests are already waiting at this node; try again once they are answered`));
    }
    this.loadsPending++;
    const run = this.loadQueue.then(() => this.loadNow(conn, raw)).finally(() => this.loadsPending--);
    this.loadQueue = run.catch(() => {});
    return run;
  }

  private async loadNow(conn: PeerConnection, raw: unknown): Promise<LoadReply> {
    const req = validateLoadRequest(raw);
    this.refuseOtherCoordinator(conn);
    this.unload('replaced by a new plan');
    const whole = this.models.get(req.modelSha256);
    let path: string;
    let source: 'model' | 'shard-cache' | 'transfer' | 'hub';
    let digest: string | undefined;
    if (whole) {
      path = whole;
      source = 'model';
    } else {
      if (!req.shard) {
        throw new CairnError('BAD_ARGUMENT', `this node has no copy of ${req.modelName}, and the load request states no shard manifest to check a shard against`);
      }
      let bar: ProgressReporter | undefined;
      const found = await this.cache.find(req.shard, {
        onCheck: (bytes) => {
          this.log(`cairn node: checking the cached shard of ${describeLayers(req)} (${mib(bytes)}) against the coordinator's hashes`);
          bar = new ProgressReporter(process.stderr.isTTY ? `checking ${describeLayers(req)}` : undefined, bytes);
        },
        onProgress: (done) => bar?.update(done),
      });
      bar?.stop();
      if (found.path === undefined) {
        const damaged = found.damaged ? { damaged: found.damaged } : {};
        if (!req.hub || !this.opts.published) return { status: 'need-data', ...damaged };
        try {
          path = await this.fetchFromHub(conn, req);
        } catch (err) {
          const why = (err as Error).message;
          this.log(`cairn node: could not fetch ${describeLayers(req)} from ${this.opts.published.where}: ${why}`);
          return { status: 'need-data', ...damaged, hubFailed: why.slice(0, 1000) };
        }
        digest = manifestDigest(req.shard);
        source = 'hub';
      } else {
        path = found.path;
        digest = found.digest;
        source = 'shard-cache';
      }
    }
    this.loadingDigest = digest;
    try {
      const expertRank = req.group?.mode === 'expert' && req.group.rank > 0;
      // The KV cache and the activations (maxBatch tokens) are allocated from these numbers:
      // refuse what this node never offered, before anything is allocated.
      const file = readGguf(path);
      const config = readModelConfig(file);
      const spec = shardSpecOf(req);
      validateShard(spec, config);
      const activationBytes = shardActivationBytes(file, config, spec, req.maxBatch, expertRank);
      const kvBytes = expertRank ? 0 : kvCacheBytes(config, req, req.ctx * req.slots, req.kvType as KvType);
      if (kvBytes + activationBytes > this.capabilities.memoryBytes) {
        throw new CairnError(
          'BAD_ARGUMENT',
          `the load request asks for ${mib(kvBytes)} of KV cache and ${mib(activationBytes)} of activations (${req.maxBatch} tokens a step); this node offers ${mib(this.capabilities.memoryBytes)} in all`,
        );
      }
      if (expertRank) return await this.loadExpertRank(conn, req, path, source, digest);
      const rank = !req.group
        ? ''
        : req.group.mode === 'expert'
          ? ` as the home of an expert-parallel group of ${req.group.peers.length}`
          : ` as rank ${req.group.rank + 1} of ${req.group.peers.length} (partial sums in ${req.group.exchange ?? 'f32'}${req.group.allReduce && req.group.allReduce !== 'auto' ? `; ${req.group.allReduce} all-reduce` : ''})`;
      const onGpu = this.gpu && !req.group;
      const where = onGpu ? ' onto the GPU' : this.gpu ? ' (on the CPU: group ranks do not run on the GPU yet)' : '';
      this.log(`cairn node: loading ${describeLayers(req)} of ${req.modelName}${rank}${where} from ${source === 'model' ? path : 'the shard cache'}`);
      const loaded = onGpu
        ? gpuStageModel(await loadGpuStage(path, { ctx: req.ctx, slots: req.slots, kvType: req.kvType, maxBatch: req.maxBatch, layerStart: req.layerStart, layerEnd: req.layerEnd }, this.gpu!))
        : cpuStageModel(
            await loadShards(path, {
              threads: this.opts.threads,
              ctx: req.ctx,
              slots: req.slots,
              kvType: req.kvType as KvType,
              maxBatch: req.maxBatch,
              shards: [shardSpecOf(req)],
            }),
          );
      const dial = (p: { host: string; port: number }) =>
        connectPeer(p.host, p.port, { nodeId: this.nodeId, name: this.name, clusterKey: this.opts.clusterKey, compatibility: MESH_COMPATIBILITY, payloadLimit: (t, f) => nodeReceiveLimit(t, f, this.stageSizes) });
      try {
        if (req.next) this.next = await dial(req.next);
        // The other ranks of the group: this node sends its partial sums (and, as rank 0, each
        // step's input) over its own connection to each; theirs come in over theirs. An expert
        // group's home sends its requests to the expert ranks and takes their answers on the same.
        // A rank that is the coordinator is reached over the connection this request came on.
        const viaCoordinator = req.group?.peers.find((p) => p.coordinator);
        if (viaCoordinator && viaCoordinator.nodeId !== conn.peer.nodeId) {
          throw new CairnError('BAD_ARGUMENT', `load request: the group's coordinator rank ${viaCoordinator.nodeId} is not the node that sent it`);
        }
        const dialGroup = async (p: LoadRequest['next'] & object): Promise<PeerConnection> => {
          const c = await dial(p);
          this.dialed.push(c);
          return c;
        };
        if (req.group) this.groupPeers = await Promise.all(req.group.peers.map((p, r) => (r === req.group!.rank ? undefined : p.coordinator ? conn : dialGroup(p))));
      } catch (err) {
        loaded.close();
        this.dropLinks('the load failed');
        throw err;
      }
      if (!conn.isOpen) {
        // The coordinator left while this shard was loading: nobody would ever unload it.
        loaded.close();
        this.dropLinks('the coordinator left');
        throw new CairnError('CLUSTER_CLOSED', 'the coordinator disconnected during the load');
      }
      this.owner = conn;
      this.loadedDigest = digest;
      let group: StageLinks['group'];
      if (req.group?.mode === 'expert') {
        const ranks = this.groupPeers.slice(1).filter((p): p is PeerConnection => p !== undefined);
        group = { experts: new ExpertDispatcher(loaded.config, loaded.shards![0].shard, req.epoch, ranks), followers: [] };
      } else if (req.group) {
        if (req.group.exchange === 'q8' && loaded.config.nEmbd % 32 !== 0) {
          loaded.close();
          this.dropLinks('the load failed');
          throw new CairnError('BAD_ARGUMENT', `q8 exchanges need an embedding size that is a multiple of 32, not ${loaded.config.nEmbd}; use f16`);
        }
        const codec = req.group.exchange && req.group.exchange !== 'f32' ? new ExchangeCodec(this.kernels, req.group.exchange) : undefined;
        const exchange = new TensorGroup(req.group.rank, req.epoch, this.groupPeers, req.group.peers.map((p) => p.nodeId), codec, req.group.link, req.group.allReduce, loaded.maxBatch * loaded.config.nEmbd);
        // (The coordinator's connection, where it is a rank, unloads the stage when it closes.)
        for (const peer of this.dialed) peer.on('close', () => exchange.break(new CairnError('CLUSTER_CLOSED', `rank ${peer.peer.name} of the tensor-parallel group disconnected`)));
        group = { exchange, followers: req.group.rank === 0 ? this.groupPeers.filter((p): p is PeerConnection => p !== undefined) : [] };
      }
      this.stage = new StageRunner(loaded, req.epoch, { next: this.next, coordinator: conn, group }, { savedBytes: this.capabilities.memoryBytes });
      return { status: 'loaded', source };
    } finally {
      this.loadingDigest = undefined;
    }
  }

  /** Loads rank > 0 of an expert-parallel group: its routed experts only; it dials no one (its home dials it). */
  /**
   * Fetches the shard a load request describes from where the model is published, telling the
   * coordinator the bytes fetched (at most twice a second) for its status.
   */
  private async fetchFromHub(conn: PeerConnection, req: LoadRequest): Promise<string> {
    const manifest = req.shard!;
    this.stopReceiving();
    this.log(`cairn node: fetching ${describeLayers(req)} (${mib(manifest.fileSize)}) from ${this.opts.published!.where}: ${req.hub!.repo}`);
    const bar = new ProgressReporter(process.stderr.isTTY ? `fetching ${describeLayers(req)}` : undefined, manifest.fileSize);
    let told = 0;
    const tell = (done: number, total: number) => {
      bar.update(done, total);
      const now = Date.now();
      if (now - told < 500 && done < total) return;
      told = now;
      const p = jsonPayload({ done, total });
      if (conn.isOpen) conn.write(MeshFrame.shardProgress, p.meta, p.payload).catch(() => {});
    };
    const gone = new AbortController();
    const onClose = () => gone.abort();
    conn.on('close', onClose);
    try {
      return await fetchShardFromHub({
        files: this.opts.published!,
        source: req.hub!,
        manifest,
        spec: shardSpecOf(req),
        receiver: this.receiver,
        pinned: this.pinned(),
        onProgress: tell,
        signal: gone.signal,
      });
    } finally {
      bar.stop();
      conn.off('close', onClose);
    }
  }

  private async loadExpertRank(conn: PeerConnection, req: LoadRequest, path: string, source: 'model' | 'shard-cache' | 'transfer' | 'hub', digest: string | undefined): Promise<LoadReply> {
    const g = req.group!;
    this.log(`cairn node: loading the routed experts of ${describeLayers(req)} of ${req.modelName} as expert rank ${g.rank} of ${g.peers.length} from ${source === 'model' ? path : 'the shard cache'}`);
    const loaded = await loadExpertRank(path, shardSpecOf(req), { threads: this.opts.threads, maxBatch: req.maxBatch });
    if (!conn.isOpen) {
      loaded.close();
      throw new CairnError('CLUSTER_CLOSED', 'the coordinator disconnected during the load');
    }
    this.owner = conn;
    this.loadedDigest = digest;
    this.expertRank = new ExpertRankRunner(loaded, req.epoch, g.peers[0].nodeId);
    return { status: 'loaded', source };
  }

  /**
   * A node serves one coordinator at a time: while the one that loaded it is connected, another
   * may not replace its shard (the first would wait for ever on steps whose answers went to the
   * second), run sequences on it or unload it. The same coordinator on a new connection (restarted
   * before its old connection was found dead) may.
   */
  private refuseOtherCoordinator(conn: PeerConnection): void {
    const owner = this.owner;
    if (!owner || owner === conn || !owner.isOpen || owner.peer.nodeId === conn.peer.nodeId) return;
    throw new CairnError(
      'BAD_ARGUMENT',
      `this node is in use by another coordinator (${owner.peer.name} at ${owner.peer.address}); a node serves one coordinator at a time (stop that one, or give this coordinator other nodes)`,
    );
  }

  private unload(reason: string): void {
    if (this.expertRank) {
      this.log(`cairn node: dropping its experts: ${reason}`);
      this.expertRank.close();
      this.expertRank = undefined;
      this.loadedDigest = undefined;
      this.owner = undefined;
    }
    if (!this.stage) return;
    this.log(`cairn node: dropping its shard: ${reason}`);
    this.stage.close();
    this.stage = undefined;
    this.loadedDigest = undefined;
    this.dropLinks('the plan changed');
    this.owner = undefined;
  }

  /** Closes the connections to the next stage and to the group's other ranks. */
  private dropLinks(reason: string): void {
    this.next?.close(reason);
    this.next = undefined;
    // Only what this node dialed: a rank that is the coordinator is reached over its own connection.
    for (const p of this.dialed) p.close(reason);
    this.dialed = [];
    this.groupPeers = [];
  }

  /** Stops listening and drops everything. */
  async close(): Promise<void> {
    this.unload('the node is stopping');
    this.receiver.abort();
    this.stopReceiving();
    await this.discovery?.stop();
    await this.server.close();
    this.gpu?.destroy();
    this.gpu = undefined;
  }
}

/** Opens the GPU `backend` asks for: gpu insists (GPU_UNAVAILABLE says why not), auto passes a software adapter by, cpu opens none. */
async function openNodeGpu(backend: 'cpu' | 'gpu' | 'auto', log: (line: string) => void): Promise<WebGpuKernels | undefined> {
  if (backend === 'cpu') return undefined;
  let gpu: WebGpuKernels;
  try {
    gpu = await WebGpuKernels.open();
  } catch (e) {
    if (backend === 'gpu' || !isCairnError(e, 'GPU_UNAVAILABLE')) throw e;
    log(`cairn node: computing on the CPU: ${(e as Error).message}`);
    return undefined;
  }
  if (backend === 'auto' && gpu.gpu.adapter.software) {
    log(`cairn node: computing on the CPU: the only GPU adapter is ${describeAdapter(gpu.gpu.adapter)} (ask for it with --backend gpu)`);
    gpu.destroy();
    return undefined;
  }
  return gpu;
}

/** A GPU node's speeds: the GPU's read rate, which nodes sharing the GPU share. */
async function gpuSpeeds(gpu: WebGpuKernels): Promise<{ bytesPerSecond: number; machineBytesPerSecond: number }> {
  const rate = await measureGpuSpeed(gpu);
  return { bytesPerSecond: rate, machineBytesPerSecond: rate };
}

/** Bytes of the activation buffers a shard holds for `maxBatch` tokens a step (a dry build: nothing mapped or allocated). */
function shardActivationBytes(file: GgufFile, config: ModelConfig, spec: ShardSpec, maxBatch: number, expertRank: boolean): number {
  const src = new GgufTensorSource(file, undefined, tensorSplitOf(spec), expertSplitOf(spec));
  const ws = new Workspace(maxBatch);
  if (expertRank) declareExpertShard(config, spec, src, ws);
  else declareShard(config, spec, src, ws);
  return ws.bytes;
}

function mib(n: number): string {
  return `${(n / 2 ** 20).toFixed(1)} MiB`;
}

/** --models-dir must name a folder that exists. */
function checkModelsDir(dir: string): void {
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch (err) {
    throw new CairnError('FILE_NOT_FOUND', `--models-dir ${dir}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such folder' : (err as Error).message}`);
  }
  if (!isDir) throw new CairnError('BAD_ARGUMENT', `--models-dir ${dir}: not a folder (it holds the GGUF files this node has)`);
}
