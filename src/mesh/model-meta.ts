/**
 * The sizes the planner needs, read from a GGUF file's tensor index: bytes per layer, the
 * embedding and the head, KV bytes per token, and the working memory of a stage.
 */
import type { GgufFile } from '../gguf/reader.js';
import type { ModelConfig } from '../model/config.js';
import { activationBytes } from '../model/summary.js';
import type { ModelMeta } from '../planner/types.js';

/** Planner sizes of a model for a KV element size (2 for f16, 4 for f32) and batch. */
export function modelMeta(file: GgufFile, cfg: ModelConfig, kvElementBytes: number, maxBatch: number): ModelMeta {
  const layerBytes = new Array<number>(cfg.nLayer).fill(0);
  let embedBytes = 0;
  let headBytes = 0;
  let output = 0;
  for (const t of file.tensors) {
    const m = /^blk\.(\d+)\./.exec(t.name);
    if (m && Number(m[1]) < cfg.nLayer) layerBytes[Number(m[1])] += t.byteLength;
    else if (t.name === 'token_embd.weight') embedBytes = t.byteLength;
    else if (t.name === 'output.weight') output = t.byteLength;
    else if (t.name === 'output_norm.weight') headBytes += t.byteLength;
  }
  // A tied head reads the embedding matrix, which the last stage then holds too.
  headBytes += output || embedBytes;
  return {
    nLayer: cfg.nLayer,
    layerBytes,
    embedBytes,
    headBytes,
    kvBytesPerLayerToken: cfg.nKvHead * (cfg.headDim + cfg.headDimV) * kvElementBytes,
    activationBytesPerToken: cfg.nEmbd * 2,
    workingBytes: activationBytes(cfg, maxBatch) + (64 << 20),
  };
}
