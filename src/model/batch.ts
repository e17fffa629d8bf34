/** The input of a shard's forward call: a batch of tokens from one or more sequences. */

/** A run of consecutive batch rows that belong to one sequence. */
export interface SeqSpan {
  /** KV-cache slot of the sequence. */
  readonly slot: number;
  /** Position of the span's first token in the sequence. */
  readonly pos0: number;
  /** First batch row of the span. */
  readonly start: number;
  /** Number of rows. */
  readonly n: number;
}

/** The input of one forward call. */
export interface ShardBatch {
  readonly nTokens: number;
  /** Token ids (first shard). */
  readonly tokens?: Int32Array;
  /** Hidden states, nTokens x nEmbd (later shards). */
  readonly hidden?: Float32Array;
  readonly spans: readonly SeqSpan[];
  /** Batch rows that need logits (last shard); each gets one row of nVocab in the result. */
  readonly outputRows?: ArrayLike<number>;
  /**
   * The last shard returns the outputRows' hidden states after the final norm (nEmbd each, in an
   * array of their own) instead of logits: what an embedding is pooled from.
   */
  readonly hiddenStates?: boolean;
}
