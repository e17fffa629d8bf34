/**
 * The sizes the planner needs, from the model's family (its declarations over the file's tensor
 * index): bytes per layer (held and read per token), the embedding and the head, KV bytes per
 * token of each layer, and the working memory of a stage.
 */
import type { GgufFile } from '../gguf/reader.js';
import type { ModelConfig } from '../model/config.js';
import { kvRows } from '../model/kv-cache.js';
import { surveyModel } from '../model/model-bytes.js';
import { wholeModel } from '../model/shard.js';
import type { ModelMeta } from '../planner/types.js';

/** Planner sizes of a model for a KV element size (2 for f16, 4 for f32) and batch. */
export function modelMeta(file: GgufFile, cfg: ModelConfig, kvElementBytes: number, maxBatch: number): ModelMeta {
  const { bytes, activationBytes } = surveyModel(file, cfg, maxBatch);
  return {
    nLayer: cfg.nLayer,
    layerBytes: bytes.layers.map((p) => p.total),
    layerActiveBytes: bytes.layers.map((p) => p.activePerToken),
    embedBytes: bytes.embed.total,
    headBytes: bytes.head.total,
    headActiveBytes: bytes.head.activePerToken,
    kvBytesPerToken: kvRows(cfg, wholeModel(cfg)).map((r) => (r.k + r.v) * kvElementBytes),
    activationBytesPerToken: cfg.nEmbd * 2,
    // Tensors every stage holds once (rope factors) are small; they ride with the working memory.
    workingBytes: activationBytes + bytes.shared.total + (64 << 20),
  };
}
