/**
 * What the dashboard's event feed sends, shared by the server (src/dashboard) and the web app
 * (web/): plain data only, so the browser build can import these types without Node's.
 */

/** The served model, as the Models view shows it. */
export interface ModelInfo {
  readonly id: string;
  /** Loading state: loading, ready, failed or unloaded (keep_alive ran out). */
  readonly state: string;
  readonly architecture: string | null;
  /** The tensor type holding the most bytes (Q4_K for a Q4_K_M file). */
  readonly quantization: string | null;
  readonly parameters: number | null;
  readonly layers: number | null;
  readonly contextTrain: number | null;
  readonly contextPerSlot: number | null;
  readonly slots: number | null;
  readonly fileBytes: number | null;
  readonly kvBytes: number | null;
  readonly residentBytes: number;
  readonly embeddingOnly: boolean;
}

/** One second of serving. */
export interface LiveSample {
  /** ms since the epoch. */
  readonly t: number;
  /** Tokens generated over the last second, all requests together. */
  readonly tokensPerSecond: number;
  /** Prompt tokens admitted over the last second. */
  readonly promptTokensPerSecond: number;
  readonly inFlight: number;
  readonly queued: number;
  readonly busySlots: number;
  /** Mean time to first token of the requests that ended this second (null: none ended). */
  readonly ttftMs: number | null;
  /** Decode speed of each request that ended this second. */
  readonly requestTokensPerSecond: readonly number[];
  /** Share of prompt tokens served from the prompt cache over the last minute (null: no prompt). */
  readonly cacheHitRate: number | null;
  /** A cluster's plan: its predicted one-stream speed, and the one measured (null: no cluster, or not measured yet). */
  readonly planPredictedTokensPerSecond: number | null;
  readonly planMeasuredTokensPerSecond: number | null;
}

/** This machine's load. */
export interface MachineSample {
  /** Busy share of all cores over the last second, 0..1 (null: not readable). */
  readonly cpuLoad: number | null;
  /** Power in watts: RAPL packages, else hwmon sensors (null: neither readable here). */
  readonly powerWatts: number | null;
  readonly totalMemoryBytes: number;
  readonly freeMemoryBytes: number;
}

/** A cluster as `GET /v1/cluster` reports it (the fields the dashboard reads). */
export interface ClusterInfo {
  readonly state: string;
  readonly error?: string;
  readonly epoch: number;
  readonly model: { readonly name: string; readonly layers: number };
  readonly nodes: readonly {
    readonly id: string;
    readonly name: string;
    readonly address: string;
    readonly local: boolean;
    readonly up: boolean;
    readonly memoryBytes: number;
    readonly threads: number;
    readonly isa: string;
    /** Where a remote node's layers run, and on which GPU adapter (absent: its CPU). */
    readonly backend?: 'gpu';
    readonly adapter?: string;
    /** A remote node's CPU load (0..1) and power in watts as it reports them (null: not readable there; absent: not reported yet). */
    readonly cpuLoad?: number | null;
    readonly powerWatts?: number | null;
    /** Its shard on its way to it, while it is. */
    readonly transfer?: { readonly from: 'hub' | 'coordinator'; readonly done: number; readonly total: number };
  }[];
  /** From the coordinator to each node. */
  readonly links: readonly { readonly to: string; readonly latencyMs: number; readonly megabytesPerSecond: number }[];
  readonly plan?: {
    readonly stages: readonly {
      readonly nodeId: string;
      readonly name: string;
      readonly layerStart: number;
      readonly layerEnd: number;
      readonly memoryBytes: number;
      readonly splitRank: number;
      readonly splitCount: number;
      readonly splitShare: number;
      readonly splitMode?: 'tensor' | 'expert';
    }[];
    readonly predictedTokensPerSecond: number;
    readonly predictedPipelinedTokensPerSecond: number;
    readonly measuredTokensPerSecond?: number;
  };
}

/** A request the engine holds now: waiting for a slot, reading its prompt, or generating. */
export interface RunningRequest {
  /** The engine's number for it (counting from 1 since the model loaded). */
  readonly id: number;
  readonly model: string;
  readonly phase: 'queued' | 'prompt' | 'generating';
  readonly promptTokens: number;
  /** Tokens generated so far. */
  readonly tokens: number;
  /** The most it may generate. */
  readonly maxTokens: number;
  /** Decode speed so far: tokens after the first, per second since the first (null: fewer than two yet). */
  readonly tokensPerSecond: number | null;
  /** Since it reached the engine, in ms. */
  readonly elapsedMs: number;
  /** Time to its first token in ms (null: none yet). */
  readonly ttftMs: number | null;
}

/** A request that ended. */
export interface FinishedRequest {
  /** Its place in the order requests ended (1, 2, ...). */
  readonly seq: number;
  /** ms since the epoch. */
  readonly endedAt: number;
  readonly promptTokens: number;
  readonly completionTokens: number;
  /** Decode speed: tokens after the first per second (0: fewer than two tokens). */
  readonly tokensPerSecond: number;
  readonly ttftMs: number;
}

/** The requests of this moment and the last ones that ended. */
export interface RequestsInfo {
  /** Oldest first, at most MAX_RUNNING_LISTED of them (src/server/held-requests.ts). */
  readonly running: readonly RunningRequest[];
  /** How many the engine holds in all; more than `running` lists when it was cut. */
  readonly runningTotal: number;
  /** Newest first, at most the last 20. */
  readonly finished: readonly FinishedRequest[];
}

/** One event of the feed, sent every second. */
export interface DashboardSnapshot {
  readonly model: ModelInfo;
  readonly live: LiveSample;
  readonly requests: RequestsInfo;
  /** The machine the server runs on. */
  readonly machine: MachineSample;
  /** The cluster, when the model runs on one. */
  readonly cluster: ClusterInfo | null;
  /** The models stored on this machine (`cairn pull`), at most STORED_LISTED; null where the server keeps no store. */
  readonly stored: readonly StoredModelInfo[] | null;
}

/** A model stored on disk. */
export interface StoredModelInfo {
  readonly name: string;
  readonly size: number;
  readonly architecture: string;
  readonly quantization: string;
  /** ISO 8601. */
  readonly pulledAt: string;
}

/** The first event of the feed: the live samples of the last minutes, oldest first. */
export interface DashboardHistory {
  readonly samples: readonly LiveSample[];
}
