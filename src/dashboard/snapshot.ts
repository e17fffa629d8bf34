/**
 * Builds the dashboard's snapshot once a second from the model host, the server's metrics, the
 * engine's counters and the requests it holds, and the cluster's status, and keeps the last minutes of
 * live samples.
 */
import type { ModelHost } from '../server/host.js';
import type { ServerMetrics } from '../server/metrics.js';
import type { ServerOptions } from '../server/app.js';
import { MachineSampler } from './machine.js';
import { finishedRequests, runningRequests } from '../server/held-requests.js';
import type { CatalogModel } from '../server/model-catalog.js';
import type { ClusterInfo, DashboardSnapshot, LiveSample, ModelInfo, StoredModelInfo } from './wire.js';

/** Live samples kept: five minutes at one a second. */
export const HISTORY_SECONDS = 300;
/** Window of the prompt-cache hit rate, in samples. */
const CACHE_WINDOW = 60;
/** Stored models listed at most. */
export const STORED_LISTED = 200;
/** How often the store is read again. */
const STORED_EVERY_MS = 5000;

/** Where the numbers come from. */
export interface SnapshotSources {
  readonly host: ModelHost;
  readonly metrics: ServerMetrics;
  readonly cluster?: ServerOptions['cluster'];
  /** The models stored on this machine. */
  readonly stored?: () => readonly CatalogModel[];
}

/** Longest text a snapshot carries from a node (a peer names itself; the page shows it). */
export const MAX_PEER_TEXT = 200;

/** `s`, cut to `max` characters. */
function clip(s: string, max = MAX_PEER_TEXT): string {
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/**
 * The fields of the coordinator's status the page reads, their texts cut short. Nodes describe
 * themselves (names, ISA, GPU adapter), and not every text is bounded where it is received: one of
 * megabytes would go out to every open page each second, past what a feed may buffer or a page
 * accepts as one event, and the dashboard would never show a snapshot.
 */
export function clusterInfo(status: ClusterInfo): ClusterInfo {
  const { plan } = status;
  return {
    state: clip(status.state),
    ...(status.error !== undefined ? { error: clip(status.error, 1000) } : {}),
    epoch: status.epoch,
    model: { name: clip(status.model.name), layers: status.model.layers },
    nodes: status.nodes.map((n) => ({
      id: clip(n.id),
      name: clip(n.name),
      address: clip(n.address),
      local: n.local,
      up: n.up,
      memoryBytes: n.memoryBytes,
      threads: n.threads,
      isa: clip(n.isa),
      ...(n.backend !== undefined ? { backend: n.backend } : {}),
      ...(n.adapter !== undefined ? { adapter: clip(n.adapter) } : {}),
      ...(n.cpuLoad !== undefined ? { cpuLoad: n.cpuLoad } : {}),
      ...(n.powerWatts !== undefined ? { powerWatts: n.powerWatts } : {}),
      ...(n.transfer !== undefined ? { transfer: { from: n.transfer.from, done: n.transfer.done, total: n.transfer.total } } : {}),
    })),
    links: status.links.map((l) => ({ to: clip(l.to), latencyMs: l.latencyMs, megabytesPerSecond: l.megabytesPerSecond })),
    ...(plan !== undefined
      ? {
          plan: {
            stages: plan.stages.map((st) => ({
              nodeId: clip(st.nodeId),
              name: clip(st.name),
              layerStart: st.layerStart,
              layerEnd: st.layerEnd,
              memoryBytes: st.memoryBytes,
              splitRank: st.splitRank,
              splitCount: st.splitCount,
              splitShare: st.splitShare,
              ...(st.splitMode !== undefined ? { splitMode: st.splitMode } : {}),
            })),
            predictedTokensPerSecond: plan.predictedTokensPerSecond,
            predictedPipelinedTokensPerSecond: plan.predictedPipelinedTokensPerSecond,
            ...(plan.measuredTokensPerSecond !== undefined ? { measuredTokensPerSecond: plan.measuredTokensPerSecond } : {}),
          },
        }
      : {}),
  };
}

type EngineStats = { promptTokens: number; cachedTokens: number; generatedTokens: number };

/** Takes one snapshot per call (call it once a second) and remembers the live part. */
export class Snapshotter {
  readonly history: LiveSample[] = [];
  private readonly machine = new MachineSampler();
  private lastStats: { of: object; stats: EngineStats } | undefined;
  private lastAt = performance.now();
  private lastSeq = 0;
  /** Prompt and cached tokens of each of the last CACHE_WINDOW samples. */
  private readonly promptWindow: { prompt: number; cached: number }[] = [];
  private summary:
    { of: object; value: { architecture: string; parameters: number; quantization: readonly { type: string }[] } } | undefined;

  private stored: { at: number; models: StoredModelInfo[] } | undefined;

  constructor(private readonly sources: SnapshotSources) {}

  /** The snapshot of now; its live part joins the history. */
  take(): DashboardSnapshot {
    const status = this.sources.cluster?.();
    const live = this.live(status?.plan);
    this.history.push(live);
    if (this.history.length > HISTORY_SECONDS) this.history.shift();
    const cluster = status ? clusterInfo(status) : null;
    const { host, metrics } = this.sources;
    const running = runningRequests(host.model?.engine, host.id);
    const requests = { running: running.list, runningTotal: running.total, finished: finishedRequests(metrics.recent) };
    return { model: this.model(), live, requests, machine: this.machine.sample(), cluster, stored: this.storedModels() };
  }

  private live(plan: ClusterInfo['plan']): LiveSample {
    const { host, metrics } = this.sources;
    const now = performance.now();
    const seconds = Math.max((now - this.lastAt) / 1000, 1e-3);
    this.lastAt = now;
    const engine = host.model?.engine;
    // Keep_alive may have replaced the engine (and its counters) since the last sample.
    const stats: EngineStats = engine ? { ...engine.stats } : { promptTokens: 0, cachedTokens: 0, generatedTokens: 0 };
    const before = engine && this.lastStats?.of === engine ? this.lastStats.stats : stats;
    this.lastStats = engine ? { of: engine, stats } : undefined;
    const ended = metrics.recent.filter((r) => r.seq > this.lastSeq);
    if (ended.length) this.lastSeq = ended[ended.length - 1].seq;
    this.promptWindow.push({ prompt: stats.promptTokens - before.promptTokens, cached: stats.cachedTokens - before.cachedTokens });
    if (this.promptWindow.length > CACHE_WINDOW) this.promptWindow.shift();
    const prompt = this.promptWindow.reduce((a, w) => a + w.prompt, 0);
    const cached = this.promptWindow.reduce((a, w) => a + w.cached, 0);
    const first = ended.filter((r) => r.completionTokens > 0);
    return {
      t: Date.now(),
      tokensPerSecond: (stats.generatedTokens - before.generatedTokens) / seconds,
      promptTokensPerSecond: (stats.promptTokens - before.promptTokens) / seconds,
      inFlight: metrics.requestsInFlight,
      queued: engine?.queued ?? 0,
      busySlots: engine?.activeCount ?? 0,
      ttftMs: first.length ? first.reduce((a, r) => a + r.ttftMs, 0) / first.length : null,
      requestTokensPerSecond: ended.filter((r) => r.decodeTokensPerSecond > 0).map((r) => r.decodeTokensPerSecond),
      cacheHitRate: prompt > 0 ? cached / prompt : null,
      planPredictedTokensPerSecond: plan?.predictedTokensPerSecond ?? null,
      planMeasuredTokensPerSecond: plan?.measuredTokensPerSecond ?? null,
    };
  }

  /** The store's models, read at most every STORED_EVERY_MS (it is a folder of files). */
  private storedModels(): StoredModelInfo[] | null {
    const list = this.sources.stored;
    if (!list) return null;
    const now = performance.now();
    if (!this.stored || now - this.stored.at > STORED_EVERY_MS) {
      let models: StoredModelInfo[] = [];
      try {
        models = list()
          .slice(0, STORED_LISTED)
          .map((m) => ({ name: m.name, size: m.size, architecture: m.architecture, quantization: m.quantization, pulledAt: m.pulledAt }));
      } catch {
        // An unreadable store lists nothing.
      }
      this.stored = { at: now, models };
    }
    return this.stored.models;
  }

  private model(): ModelInfo {
    const { host } = this.sources;
    const m = host.model;
    // The summary walks every tensor: once per loaded model.
    if (m && this.summary?.of !== m) this.summary = { of: m, value: m.summary() };
    const s = m ? this.summary?.value : undefined;
    return {
      id: host.id,
      state: host.state,
      architecture: s?.architecture ?? null,
      quantization: s?.quantization[0]?.type ?? null,
      parameters: s?.parameters ?? null,
      layers: m?.config.nLayer ?? null,
      contextTrain: m?.config.ctxTrain ?? null,
      contextPerSlot: m?.engine.runner.ctxPerSlot ?? null,
      slots: m?.engine.runner.slots ?? null,
      fileBytes: m?.file.fileSize ?? null,
      kvBytes: m?.kvBytes ?? null,
      residentBytes: m?.residentBytes() ?? process.memoryUsage.rss(),
      embeddingOnly: m?.embeddingOnly ?? false,
    };
  }
}
