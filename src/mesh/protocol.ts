/**
 * The mesh's messages on top of the cluster transport: frame types, and what each carries. Small
 * ones are JSON frames. The hot ones (a step's input travelling down the pipeline, its result
 * coming back, a partial sum within a tensor-parallel group) and KV operations are raw frames
 * holding one message of util/message-framing.ts: a JSON head (the interfaces below) and a binary
 * body: token ids as i32, hidden states as f32, or f16 where the plan finds the links slow enough
 * that half the bytes matter.
 */
import { FIRST_APP_FRAME_TYPE } from '../cluster/index.js';
import type { StepLogprobs } from '../sampling/index.js';
import type { SequenceSpec } from '../engine/sequence-samplers.js';
import type { HubShardSource } from './hub-shard.js';

/** Frame types of the mesh. */
export const MeshFrame = {
  /** request -> JSON NodeCapabilities */
  info: FIRST_APP_FRAME_TYPE,
  /** request JSON LoadRequest -> JSON LoadReply */
  load: FIRST_APP_FRAME_TYPE + 1,
  /** request JSON ShardTransferBegin (the shard's manifest) -> JSON ok once room is made for it */
  shardBegin: FIRST_APP_FRAME_TYPE + 2,
  /** one-way raw bytes of the shard file, in order (sequence = chunk index) */
  shardChunk: FIRST_APP_FRAME_TYPE + 3,
  /** request -> JSON ok once every tensor's hash checked */
  shardEnd: FIRST_APP_FRAME_TYPE + 4,
  /** one-way step input: message ForwardHead + token ids or hidden states */
  forward: FIRST_APP_FRAME_TYPE + 5,
  /** one-way step result from the last stage to the coordinator: message ResultHead + logits */
  result: FIRST_APP_FRAME_TYPE + 6,
  /** one-way JSON {epoch, step, message}: a stage failed a step */
  stepError: FIRST_APP_FRAME_TYPE + 7,
  /** request JSON {seq, spec} -> ok (to the last stage) */
  seqStart: FIRST_APP_FRAME_TYPE + 8,
  /** one-way JSON {seq} */
  seqEnd: FIRST_APP_FRAME_TYPE + 9,
  /** request message KvOp (+ the bytes to import) -> JSON {bytes} or raw bytes (export) */
  kv: FIRST_APP_FRAME_TYPE + 10,
  /** request -> ok: drop the loaded shard */
  unload: FIRST_APP_FRAME_TYPE + 11,
  /** one-way JSON {reason}, node -> coordinator: the node gave up the shard transfer in progress */
  shardAbort: FIRST_APP_FRAME_TYPE + 12,
  /** one-way, rank -> the other ranks of its tensor-parallel group: message PartialHead + the partial sum */
  partial: FIRST_APP_FRAME_TYPE + 13,
  /**
   * request, an expert-parallel home -> one of its expert ranks: message ExpertStepHead + the
   * tokens' FFN inputs (f32), chosen experts (int32) and weights (f32) -> raw f32 outputs
   */
  experts: FIRST_APP_FRAME_TYPE + 14,
  /** one-way JSON {done, total}, node -> coordinator: bytes of its shard fetched from the hub so far */
  shardProgress: FIRST_APP_FRAME_TYPE + 15,
  /** request -> JSON {cpuLoad, powerWatts}: the node's machine as it reads it (null: not readable) */
  machine: FIRST_APP_FRAME_TYPE + 16,
  /**
   * request JSON ExchangeProbe, coordinator -> every rank of a tensor-parallel group at once ->
   * JSON {seconds}: the median time of one all-reduce between the ranks (TensorGroup.probe)
   */
  exchangeProbe: FIRST_APP_FRAME_TYPE + 17,
} as const;

/** A probe of a tensor-parallel group's exchanges: `rounds` all-reduces of `values` f32 values each. */
export interface ExchangeProbe {
  readonly epoch: number;
  readonly rounds: number;
  readonly values: number;
}

/** Where a peer node listens. */
export interface PeerRef {
  readonly host: string;
  readonly port: number;
  readonly nodeId: string;
  /**
   * A rank that is the coordinator itself (it listens nowhere): reached over the connection the
   * load request came on, which must be that node's (host and port are then empty).
   */
  readonly coordinator?: boolean;
}

/**
 * A stage's tensor-parallel group, as its load request states it: this node is rank `rank` of the
 * `peers` (every rank's node, in rank order), holding its share of every layer (model/tensor-split.ts).
 */
export interface GroupSpec {
  readonly rank: number;
  /** Relative share of each rank. */
  readonly shares: readonly number[];
  readonly peers: readonly PeerRef[];
  /** How partial sums travel (exchange-codec.ts); default f32. */
  readonly exchange?: 'f32' | 'f16' | 'q8';
  /**
   * The slowest link between the group's ranks, as the coordinator estimates it: with it (and 3
   * ranks or more) each all-reduce takes a ring where that costs less than direct exchange.
   */
  readonly link?: { readonly latencySeconds: number; readonly bytesPerSecond: number };
  /** The all-reduce to use: `auto` (default: by the link), or always `direct` or `ring` (3 ranks or more). */
  readonly allReduce?: 'auto' | 'direct' | 'ring';
  /**
   * `tensor` (default): every rank holds a slice of every block and all add up partial sums.
   * `expert`: rank 0 (the home) holds the layers but for the other ranks' routed experts, which
   * hold only those and compute the tokens the home sends them.
   */
  readonly mode?: 'tensor' | 'expert';
}

/**
 * The head of an expert request: which plan, step and layer (of the group's range), and how many
 * tokens (those routed to the rank's experts) follow as inputs (n x nEmbd f32), chosen experts and
 * weights (n x used each, int32 and f32).
 */
export interface ExpertStepHead {
  readonly epoch: number;
  readonly step: number;
  readonly layer: number;
  readonly n: number;
}

/** The JSON head of a partial-sum frame; f32 values (the step's tokens x nEmbd) follow. */
export interface PartialHead {
  readonly epoch: number;
  readonly step: number;
  /** Which partial sum of the step (two per layer: after attention, after the FFN). */
  readonly index: number;
  readonly rank: number;
  /**
   * A ring all-reduce's message: its step around the ring (0 to 2(k-1) - 1: reduce-scatter, then
   * all-gather), carrying one chunk of the values. Absent: direct exchange, the whole partial.
   */
  readonly phase?: number;
}

/** What a node reports about itself. */
export interface NodeCapabilities {
  readonly nodeId: string;
  readonly name: string;
  /** Bytes the node offers for weights, KV cache and activations. */
  readonly memoryBytes: number;
  /** Measured weight-streaming speed of a matrix-vector product, bytes per second. */
  readonly bytesPerSecond: number;
  readonly threads: number;
  readonly isa: string;
  /** Id of the machine the node runs on (capabilities.ts machineId): nodes with one id share it. */
  readonly machine?: string;
  /** The same product's speed on all the machine's cores (capabilities.ts measureMachineSpeed). */
  readonly machineBytesPerSecond?: number;
  /** Where its layers run (`cairn node --backend`); absent: the CPU. */
  readonly backend?: 'cpu' | 'gpu';
  /** The GPU adapter it computes on, in one line (backend gpu). */
  readonly adapter?: string;
  /** SHA-256 of the whole model files it has in its models folder. */
  readonly models: readonly string[];
  /** Address other stages reach it at. */
  readonly host: string;
  readonly port: number;
}

/** Coordinator -> node: load this shard. Every field is validated by the node (load-request.ts). */
export interface LoadRequest {
  readonly modelSha256: string;
  readonly modelName: string;
  readonly layerStart: number;
  readonly layerEnd: number;
  readonly ctx: number;
  readonly slots: number;
  readonly kvType: number;
  readonly maxBatch: number;
  /** Where the next stage listens (undefined for the last stage); for a group, its rank 0. */
  readonly next?: PeerRef;
  /** The stage's tensor-parallel group (undefined: this node holds the layers whole). */
  readonly group?: GroupSpec;
  /** Plan generation, so frames of an old plan are told apart. */
  readonly epoch: number;
  /**
   * The shard file the node must hold, from the coordinator's own copy of the model. Needed by a
   * node without its own copy: it loads a cached shard, or accepts a transfer, only as this file.
   */
  readonly shard?: ShardManifest;
  /**
   * Where the model is published (with `shard`): a node without the shard fetches its bytes from
   * there (hub-shard.ts), or answers need-data with why it could not.
   */
  readonly hub?: HubShardSource;
}

/** Node -> coordinator. */
export type LoadReply =
  | { readonly status: 'loaded'; readonly source: 'model' | 'shard-cache' | 'transfer' | 'hub' }
  /** `damaged`: why a cached copy was deleted (e.g. which tensor no longer matched); `hubFailed`: why fetching from the hub failed. */
  | { readonly status: 'need-data'; readonly damaged?: string; readonly hubFailed?: string };

/** One tensor of a shard file: where its bytes lie, and their SHA-256. */
export interface ShardTensorEntry {
  readonly name: string;
  readonly offset: number;
  readonly byteLength: number;
  readonly sha256: string;
}

/**
 * A shard file byte for byte (validated by shard-manifest.ts): its size, the SHA-256 of its GGUF
 * header (every byte before the first tensor) and every tensor's place and SHA-256, in file
 * order. All other bytes are zero padding.
 */
export interface ShardManifest {
  readonly modelSha256: string;
  readonly layerStart: number;
  readonly layerEnd: number;
  readonly fileSize: number;
  readonly headerSha256: string;
  readonly tensors: readonly ShardTensorEntry[];
}

/** Coordinator -> node before streaming a shard file: the file's manifest. */
export type ShardTransferBegin = ShardManifest;

/** KV operations broadcast to every stage. */
export type KvOp =
  | { readonly op: 'copy'; readonly from: number; readonly to: number; readonly n: number }
  | { readonly op: 'save'; readonly slot: number; readonly n: number; readonly key: number }
  | { readonly op: 'load'; readonly key: number; readonly slot: number }
  | { readonly op: 'drop'; readonly key: number }
  | { readonly op: 'export'; readonly key: number }
  | { readonly op: 'import'; readonly key: number };

/** Start of a sequence on the last stage. */
export interface SeqStart {
  readonly seq: number;
  readonly spec: SequenceSpec;
}

/** The JSON head of a forward frame. */
export interface ForwardHead {
  readonly epoch: number;
  readonly step: number;
  readonly nTokens: number;
  /** [slot, pos0, start, n] per span. */
  readonly spans: readonly (readonly [number, number, number, number])[];
  /**
   * [row, seq, mode (0 sample, 1 logits)] per output, or [row, seq, 0, draft] for a sampled row
   * whose next row reads a draft token (speculative decoding: OutputRequest.draft).
   */
  readonly outputs: readonly (readonly [number, number, number] | readonly [number, number, number, number])[];
  /** `tokens`: i32 ids follow; `hidden16`/`hidden32`: f16 or f32 hidden states follow. */
  readonly kind: 'tokens' | 'hidden16' | 'hidden32';
  /** How hidden states travel between stages in this plan. */
  readonly wire: 'f16' | 'f32';
}

/** The JSON head of a result frame; f32 logits of the `logits` outputs follow. */
export interface ResultHead {
  readonly epoch: number;
  readonly step: number;
  readonly tokens: readonly number[];
  readonly logprobs: readonly (StepLogprobs | null)[];
}
