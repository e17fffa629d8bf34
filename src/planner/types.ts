/**
 * What the planner reasons about: the model's sizes, the nodes (memory, speed) and the links
 * between them; and what it produces: a plan of shards on nodes with its predicted speed.
 */

/** A half-open range [start, end). */
export type Range = readonly [number, number];

/**
 * One layer's weights by the way a split divides them (bytes as held in memory). A tensor-parallel
 * rank holds its share of the query heads of `attentionBytes`, its KV heads of `kvProjectionBytes`,
 * its FFN columns of the dense or shared-expert weights and a contiguous range of the routed
 * experts; everything in `replicatedBytes` it holds whole (as the model's tensor split divides a
 * layer).
 */
export interface LayerShape {
  /** Attention weights that go with the query heads: q and output (latent attention: q_b, kv_b, output). */
  readonly attentionBytes: number;
  /** Attention weights that go with the KV heads: k and v (latent attention: its down-projections, which every rank holds). */
  readonly kvProjectionBytes: number;
  /** Dense feed-forward weights (0 in a Mixture-of-Experts layer). */
  readonly denseFfnBytes: number;
  /** All routed experts of the layer (0 in a dense layer). */
  readonly expertBytes: number;
  /** Routed experts (0 in a dense layer). */
  readonly experts: number;
  /** Routed experts each token uses. */
  readonly expertsUsed: number;
  /** Shared experts, which every token uses. */
  readonly sharedExpertBytes: number;
  /** Norms, the router and other small tensors every rank holds whole. */
  readonly replicatedBytes: number;
  /** Parameters one token uses in this layer (a decode step does 2 FLOPs per parameter). */
  readonly activeParameters: number;
  /** Hidden width split by columns: the dense FFN's, or a Mixture-of-Experts layer's shared experts' total (0: none). */
  readonly ffnWidth: number;
  /** The GGML type of most of the layer's bytes (a node may read some types faster than others), e.g. `Q4_K`. */
  readonly weightType: string;
}

/** The shape of a model as splitting it needs (tensor and expert plans). */
export interface ModelShape {
  readonly nEmbd: number;
  readonly nHead: number;
  /** KV heads (latent attention: nHead, with sharedKv). */
  readonly nKvHead: number;
  /** Per-head width of the attention output's input columns (the value head size), where head cuts must land on blocks. */
  readonly headDim: number;
  readonly nVocab: number;
  /** Elements per quantization block of the split matrices: a column split lands on a multiple of it. */
  readonly blockSize: number;
  /** Per layer (length nLayer). */
  readonly layers: readonly LayerShape[];
  /** Parameters of the output head (one matrix-vector product per token). */
  readonly headParameters: number;
  readonly headWeightType: string;
  /** True where every rank keeps the whole KV row (latent attention caches one row all heads share). */
  readonly sharedKv?: boolean;
}

/** Sizes of a model, as the planner needs them (read from GGUF by the caller). */
export interface ModelMeta {
  readonly nLayer: number;
  /** Weight bytes each layer holds (length nLayer): what sizes a stage's memory. */
  readonly layerBytes: readonly number[];
  /**
   * Weight bytes each layer reads per decoded token (length nLayer): what sets a stage's speed.
   * Equal to layerBytes for dense layers; a Mixture-of-Experts layer reads only its chosen experts.
   */
  readonly layerActiveBytes: readonly number[];
  /** Token embedding bytes (held by the stage with layer 0). */
  readonly embedBytes: number;
  /** Output norm + head bytes (held by the stage with the last layer). */
  readonly headBytes: number;
  /** Output norm + head bytes read per decoded token. */
  readonly headActiveBytes: number;
  /** KV-cache bytes per token position of each layer (length nLayer; latent attention caches less). */
  readonly kvBytesPerToken: readonly number[];
  /** Bytes of one token's hidden state on the wire (nEmbd x 2 for f16). */
  readonly activationBytesPerToken: number;
  /** Fixed per-stage working memory (activation buffers, logits). */
  readonly workingBytes: number;
  /** How the layers divide under tensor and expert splits; without it only pipeline plans are made. */
  readonly shape?: ModelShape;
}

/** A node the plan may use. */
export interface NodeInfo {
  readonly id: string;
  /** Bytes this node may use for weights, KV cache and activations. */
  readonly memoryBytes: number;
  /** Measured weight-streaming speed of a decode step, in bytes per second. */
  readonly bytesPerSecond: number;
  /** True for the coordinator (it receives requests and samples; it starts and ends the pipeline). */
  readonly coordinator?: boolean;
  /** Matrix-vector read speed by GGML weight type (`Q4_K` may stream slower than `Q8_0`); others use bytesPerSecond. */
  readonly bytesPerSecondByType?: Readonly<Record<string, number>>;
  /** Compute rate of batched matrix products (prefill, large batches), FLOP/s. */
  readonly flopsPerSecond?: number;
  /** Cores the node computes with; nodes on one machine share it in proportion to their cores. */
  readonly cores?: number;
  /** The machine the node runs on: nodes with the same id share its cores and memory bandwidth. */
  readonly machine?: string;
  /**
   * The matrix-vector read speed of the node's whole machine (all its cores at once), bytes per
   * second: nodes sharing the machine are slowed only where their own speeds add up to more.
   */
  readonly machineBytesPerSecond?: number;
  /** Fixed time per step this node adds (sampling, framing, dispatch), seconds. */
  readonly stepOverheadSeconds?: number;
  /**
   * The node computes on a GPU, which runs whole pipeline stages only: it is never made a rank of
   * a tensor- or expert-parallel group (it would compute that on its CPU, not at the rate it offers).
   */
  readonly pipelineOnly?: boolean;
}

/** A measured link between two nodes. */
export interface LinkInfo {
  readonly from: string;
  readonly to: string;
  /** One-way latency in seconds (half the measured round trip). */
  readonly latencySeconds: number;
  readonly bytesPerSecond: number;
}

/** One shard of the plan on one node. */
export interface PlanStage {
  readonly nodeId: string;
  readonly layerStart: number;
  readonly layerEnd: number;
  readonly splitRank: number;
  readonly splitCount: number;
  /** Bytes the stage needs: weights, KV cache and working memory. */
  readonly memoryBytes: number;
  /** Pipeline position of the stage's group (ranks of one tensor or expert group share it). */
  readonly stage?: number;
  /** Relative share of each rank of the group (splitCount entries), as the model's tensor split takes them. */
  readonly splitShares?: readonly number[];
  /** Tensor split: the query heads this rank holds. */
  readonly heads?: Range;
  /** Tensor split: the KV heads its query heads read (shared with a neighbour where ranks outnumber KV heads). */
  readonly kvHeads?: Range;
  /** Tensor split: the FFN hidden columns this rank holds (of the shared experts, in a Mixture-of-Experts layer). */
  readonly ffnColumns?: Range;
  /** Tensor or expert split: the routed experts this node holds in every Mixture-of-Experts layer of the range. */
  readonly experts?: Range;
  /** Expert split: true for the node that runs attention, dense and shared parts and routes tokens. */
  readonly home?: boolean;
}

/** A plan: stages in pipeline order, and what the cost model predicts for it. */
export interface Plan {
  readonly stages: readonly PlanStage[];
  /** Predicted decode tokens per second of one sequence. */
  readonly predictedTokensPerSecond: number;
  /** Predicted aggregate tokens per second with every stage busy (many sequences in flight). */
  readonly predictedPipelinedTokensPerSecond: number;
  /**
   * How hidden states travel between stages: f32 (exact) unless the links are slow enough that
   * the extra bytes cost more than 5% of a token's time, then f16.
   */
  readonly activationDtype: 'f16' | 'f32';
}

/** How an all-reduce moves its bytes: each rank to every other, around a ring, or through rank 0. */
export type AllReduceAlgorithm = 'direct' | 'ring' | 'star';

/** Element type of exchanged hidden states: f32 exact, f16 half the bytes, q8 (Q8_0 blocks) about a quarter. */
export type ExchangeDtype = 'f32' | 'f16' | 'q8';

/** Planning inputs besides the model. */
export interface PlanRequest {
  readonly model: ModelMeta;
  readonly nodes: readonly NodeInfo[];
  readonly links: readonly LinkInfo[];
  /** KV positions to reserve per stage: context x slots. */
  readonly kvTokens: number;
  /** The link assumed between nodes with no measured link (default: gigabit Ethernet). */
  readonly defaultLink?: { readonly latencySeconds: number; readonly bytesPerSecond: number };
  /** Sequences decoded together for the aggregate prediction (default 8). */
  readonly batch?: number;
  /** Prompt tokens of the prefill prediction (default 512). */
  readonly promptTokens?: number;
  /** Positions already cached when decoding, whose KV rows each step reads (default 0). */
  readonly contextTokens?: number;
  /** All-reduce algorithm of tensor groups: `auto` (default) takes the cheaper of direct and ring. */
  readonly allReduce?: AllReduceAlgorithm | 'auto';
  /** Element type of all-reduces and expert exchanges (default f32). */
  readonly exchangeDtype?: ExchangeDtype;
  /** What the choice maximizes among plans that fit (default: decode speed of one sequence). */
  readonly objective?: 'decode' | 'aggregate' | 'prefill';
  /** The kinds of plan to consider (default: all); a runner that cannot run a kind leaves it out. */
  readonly kinds?: readonly PlanKind[];
}

/** The kinds of plan the planner scores. */
export type PlanKind = 'pipeline' | 'tensor' | 'expert' | 'hybrid';

/** What one node of a candidate holds against what it offers. */
export interface NodeUse {
  readonly nodeId: string;
  readonly memoryBytes: number;
  readonly limitBytes: number;
  readonly fits: boolean;
}

/** A scored plan: its shards, the memory each node needs and the speeds the cost model predicts. */
export interface Candidate {
  readonly kind: PlanKind;
  /** Short name, e.g. `tensor x3` or `hybrid [a+b] > [c]`. */
  readonly label: string;
  /** Shards in pipeline order; ranks of one group share `stage` and their layer range. */
  readonly stages: readonly PlanStage[];
  readonly nodes: readonly NodeUse[];
  /** True when every node holds its part within its memory. */
  readonly fits: boolean;
  /** Predicted decode tokens per second of one sequence. */
  readonly decodeTokensPerSecond: number;
  /** Predicted aggregate decode tokens per second with `batch` sequences in flight. */
  readonly aggregateTokensPerSecond: number;
  readonly batch: number;
  /** Predicted prompt tokens per second (a prompt of PlanRequest.promptTokens). */
  readonly prefillTokensPerSecond: number;
  /** One decoded token's time (batch 1) by term, seconds. */
  readonly breakdown: { readonly compute: number; readonly exchange: number; readonly overhead: number };
  /** The all-reduce of the tensor groups, when there are any (the slowest group's). */
  readonly allReduce?: { readonly algorithm: AllReduceAlgorithm; readonly dtype: ExchangeDtype; readonly secondsPerToken: number };
  /** How hidden states travel between stages. */
  readonly activationDtype: 'f16' | 'f32';
  /** Why the candidate cannot be used as it is (it does not fit, a split is impossible). */
  readonly problem?: string;
}

/** The candidates and the one chosen. */
export interface PlanChoice {
  readonly candidates: readonly Candidate[];
  /** Undefined when no candidate fits. */
  readonly chosen?: Candidate;
  /** One line saying why. */
  readonly why: string;
}
