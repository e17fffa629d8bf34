/**
 * The decoder shape Llama, Mistral, Qwen2 and Qwen3 share, built from the shared blocks: token
 * embedding; per layer a pre-norm residual pair of grouped-query attention and a dense SwiGLU FFN;
 * final norm and head (tied to the embedding when the file has no head). The families differ in
 * their config keys, their attention's optional tensors (GqaTensors) and their rope layout.
 */
import type { ModelConfig } from '../config.js';
import type { LayerPlan, ModelFamily } from '../family.js';
import { DenseFfn, declareDenseFfn, synthesizeDenseFfn } from '../blocks/dense-ffn.js';
import { GqaAttention, declareGqa, gqaKvRow, gqaShape, synthesizeGqa, type GqaTensors } from '../blocks/gqa-attention.js';
import { OutputHead, declareOutputHead, synthesizeOutputHead } from '../blocks/output-head.js';
import { PreNormLayer, declarePreNorm, synthesizePreNorm } from '../blocks/pre-norm-layer.js';
import { synthesizeRopeFreqs } from '../blocks/rope.js';
import { TokenEmbedding, declareTokenEmbedding, synthesizeTokenEmbedding } from '../blocks/token-embedding.js';
import type { DecoderLayer, ShardInput, ShardOutput } from '../blocks/types.js';
import type { Workspace } from '../blocks/workspace.js';
import type { TensorSource } from '../tensor-source.js';
import type { SyntheticModelSpec, SyntheticTensors } from '../synthetic-tensors.js';
import { GpuDenseFfn, GpuGqaAttention, GpuOutputHead, GpuPreNormLayer, type GpuDecoderLayer } from '../gpu/gpu-blocks.js';
import type { GpuWorkspace } from '../gpu/gpu-workspace.js';

/** Every layer: GQA attention and a dense FFN of nFf. */
export function denseDecoderLayerPlan(cfg: ModelConfig): LayerPlan {
  return {
    attention: { kind: 'gqa', heads: cfg.nHead, kvHeads: cfg.nKvHead, headDim: cfg.headDim },
    ffn: { kind: 'dense', width: cfg.nFf },
    kv: gqaKvRow(gqaShape(cfg)),
  };
}

/** `16 layers, embedding 2048, 32 heads (8 KV) of 64, FFN 8192, vocab 32000`. */
export function describeDenseDecoder(cfg: ModelConfig): string {
  return `${cfg.nLayer} layers, embedding ${cfg.nEmbd}, ${cfg.nHead} heads (${cfg.nKvHead} KV) of ${cfg.headDim}, FFN ${cfg.nFf}, vocab ${cfg.nVocab}`;
}

/** The first shard's token embedding. */
export function denseDecoderInput(cfg: ModelConfig, src: TensorSource): ShardInput {
  return new TokenEmbedding(declareTokenEmbedding(src, cfg.nVocab, cfg.nEmbd));
}

/** The last shard's final norm and head. */
export function denseDecoderOutput(cfg: ModelConfig, src: TensorSource): ShardOutput {
  return new OutputHead(declareOutputHead(src, cfg.nVocab, cfg.nEmbd), cfg.rmsEps);
}

/** Declares and builds layer `l`: attention norm, attention, FFN norm, FFN (llama.cpp's tensor order). */
export function denseDecoderLayer(cfg: ModelConfig, l: number, src: TensorSource, ws: Workspace, tensors: GqaTensors): DecoderLayer {
  const p = `blk.${l}.`;
  const shape = gqaShape(cfg);
  const attnNorm = declarePreNorm(src, p, 'attention', cfg.nEmbd);
  const attention = new GqaAttention(shape, declareGqa(src, p, shape, tensors), ws);
  const ffnNorm = declarePreNorm(src, p, 'ffn', cfg.nEmbd);
  const ffn = new DenseFfn(declareDenseFfn(src, p, cfg.nEmbd, cfg.nFf), ws);
  return new PreNormLayer(attnNorm, attention, ffnNorm, ffn, cfg.rmsEps, ws);
}

/** Layer `l` on the GPU: the same declarations as denseDecoderLayer, run by the GPU blocks. */
export function denseDecoderGpuLayer(cfg: ModelConfig, l: number, src: TensorSource, ws: GpuWorkspace, tensors: GqaTensors): GpuDecoderLayer {
  const p = `blk.${l}.`;
  const shape = gqaShape(cfg);
  const attnNorm = declarePreNorm(src, p, 'attention', cfg.nEmbd);
  const attention = new GpuGqaAttention(shape, declareGqa(src, p, shape, tensors), ws);
  const ffnNorm = declarePreNorm(src, p, 'ffn', cfg.nEmbd);
  const ffn = new GpuDenseFfn(declareDenseFfn(src, p, cfg.nEmbd, cfg.nFf), ws);
  return new GpuPreNormLayer(attnNorm, attention, ffnNorm, ffn, cfg.rmsEps, ws);
}

/** The final norm and head on the GPU. */
export function denseDecoderGpuOutput(cfg: ModelConfig, src: TensorSource, ws: GpuWorkspace): GpuOutputHead {
  return new GpuOutputHead(declareOutputHead(src, cfg.nVocab, cfg.nEmbd), cfg.rmsEps, ws);
}

/** The dense decoder's GPU parts for a family whose attention has these tensors. */
export function denseDecoderGpu(tensors: GqaTensors): NonNullable<ModelFamily['gpu']> {
  return {
    layer: (cfg, l, src, ws) => denseDecoderGpuLayer(cfg, l, src, ws, tensors),
    output: (cfg, src, ws) => denseDecoderGpuOutput(cfg, src, ws),
  };
}

/** Writes every tensor of a synthetic model of this shape, in llama.cpp's order. */
export function synthesizeDenseDecoder(spec: SyntheticModelSpec, out: SyntheticTensors, tensors: GqaTensors): void {
  const e = spec.nEmbd;
  const hd = spec.headDim ?? e / spec.nHead;
  synthesizeTokenEmbedding(out, spec.nVocab, e, spec.tied ?? false);
  synthesizeOutputHead(out, spec.nVocab, e, spec.tied ?? false);
  if (spec.ropeFreqs) synthesizeRopeFreqs(out, hd);
  const shape = { nEmbd: e, nHead: spec.nHead, nKvHead: spec.nKvHead, headDim: hd };
  for (let l = 0; l < spec.nLayer; l++) {
    const p = `blk.${l}.`;
    synthesizePreNorm(out, p, 'attention', e);
    synthesizeGqa(out, p, l, shape, tensors);
    synthesizePreNorm(out, p, 'ffn', e);
    synthesizeDenseFfn(out, p, l, e, spec.nFf);
  }
}
