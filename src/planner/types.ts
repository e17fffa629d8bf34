/**
 * What the planner reasons about: the model's sizes, the nodes (memory, speed) and the links
 * between them; and what it produces: a plan of shards on nodes with its predicted speed.
 */

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

/** Planning inputs besides the model. */
export interface PlanRequest {
  readonly model: ModelMeta;
  readonly nodes: readonly NodeInfo[];
  readonly links: readonly LinkInfo[];
  /** KV positions to reserve per stage: context x slots. */
  readonly kvTokens: number;
}
