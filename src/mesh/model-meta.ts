/**
 * The sizes the planner needs, from the model's family (its declarations over the file's tensor
 * index): bytes per layer (held and read per token), the embedding and the head, KV bytes per
 * token of each layer, the working memory of a stage, and the shape tensor and expert splits divide
 * (each layer's bytes by the way a split cuts them, with its heads, widths and experts).
 */
import { ggmlTypeInfo, ggmlTypeName } from '../gguf/ggml-types.js';
import type { GgufFile, GgufTensorInfo } from '../gguf/reader.js';
import type { ModelConfig } from '../model/config.js';
import { kvRows } from '../model/kv-cache.js';
import { shardTensorNames, surveyModel, type PartBytes } from '../model/model-bytes.js';
import { familyOf } from '../model/registry.js';
import { wholeModel } from '../model/shard.js';
import type { LayerPlan } from '../model/family.js';
import type { LayerShape, ModelMeta, ModelShape } from '../planner/types.js';

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
    // A family whose layers a tensor-parallel rank cannot hold part of gets pipeline plans only.
    ...(familyOf(cfg).unsplittable ? {} : { shape: modelShape(file, cfg, bytes.layers, bytes.head) }),
  };
}

/** Which part of a split a layer tensor (name after `blk.N.`) belongs to. */
type Part = 'heads' | 'kv' | 'dense' | 'experts' | 'shared' | 'other';

function partOfTensor(name: string): Part {
  if (/^attn_(q|output|q_b|kv_b|k_b|v_b)\.(weight|bias)$/.test(name) || name === 'attn_sinks.weight' || name === 'attn_sinks')
    return 'heads';
  if (/^attn_(k|v|q_a|kv_a_mqa)\.(weight|bias)$/.test(name)) return 'kv';
  if (/_exps\.(weight|bias)$/.test(name)) return 'experts';
  if (/^ffn_(gate|up|down)_shexp\.weight$/.test(name)) return 'shared';
  if (/^ffn_(gate|up|down)\.(weight|bias)$/.test(name)) return 'dense';
  return 'other';
}

/** The planner's view of how the model's layers split (tensor-split.ts in the model says how a rank cuts them). */
function modelShape(file: GgufFile, cfg: ModelConfig, layers: readonly PartBytes[], head: PartBytes): ModelShape {
  const family = familyOf(cfg);
  const declared = new Set(shardTensorNames(file, cfg, { layerStart: 0, layerEnd: cfg.nLayer }));
  const byLayer = new Map<number, GgufTensorInfo[]>();
  for (const t of file.tensors) {
    const m = /^blk\.(\d+)\./.exec(t.name);
    if (!m || !declared.has(t.name)) continue;
    const l = Number(m[1]);
    byLayer.set(l, [...(byLayer.get(l) ?? []), t]);
  }
  let blockSize = 1;
  const shapes: LayerShape[] = [];
  for (let l = 0; l < cfg.nLayer; l++) {
    const plan: LayerPlan = family.layerPlan(cfg, l);
    const sums: Record<Part, number> = { heads: 0, kv: 0, dense: 0, experts: 0, shared: 0, other: 0 };
    const byType = new Map<number, number>();
    for (const t of byLayer.get(l) ?? []) {
      const part = partOfTensor(t.name.slice(`blk.${l}.`.length));
      sums[part] += t.byteLength;
      byType.set(t.type, (byType.get(t.type) ?? 0) + t.byteLength);
      if (t.dims.length >= 2) blockSize = Math.max(blockSize, ggmlTypeInfo(t.type)?.blockSize ?? 1);
    }
    const main = [...byType.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
    const ffn = plan.ffn;
    const split = sums.heads + sums.kv + sums.dense + sums.experts + sums.shared;
    shapes.push({
      attentionBytes: sums.heads,
      kvProjectionBytes: sums.kv,
      denseFfnBytes: sums.dense,
      expertBytes: sums.experts,
      experts: ffn.kind === 'moe' ? ffn.experts : 0,
      expertsUsed: ffn.kind === 'moe' ? ffn.used : 0,
      sharedExpertBytes: sums.shared,
      // What the family holds beyond the split parts: norms, the router, biases.
      replicatedBytes: Math.max(0, layers[l].total - split),
      activeParameters: layers[l].activeParameters,
      ffnWidth: ffn.kind === 'dense' ? ffn.width : ffn.sharedWidth,
      weightType: main === undefined ? '*' : ggmlTypeName(main),
    });
  }
  const a = family.layerPlan(cfg, 0).attention;
  const headTensor =
    file.tensors.find((t) => t.name === 'output.weight' && declared.has(t.name)) ??
    file.tensors.find((t) => t.name === 'token_embd.weight');
  return {
    nEmbd: cfg.nEmbd,
    nHead: a.heads,
    nKvHead: a.kind === 'gqa' ? a.kvHeads : a.heads,
    headDim: a.kind === 'gqa' ? a.headDim : a.vDim,
    nVocab: cfg.nVocab,
    blockSize,
    layers: shapes,
    headParameters: head.activeParameters,
    headWeightType: headTensor ? ggmlTypeName(headTensor.type) : '*',
    ...(a.kind === 'mla' ? { sharedKv: true } : {}),
  };
}
