/**
 * The decoder shape of the Mixture-of-Experts families that keep grouped-query attention (Mixtral,
 * Qwen2-MoE, Qwen3-MoE, GLM-4.5): the dense decoder's pre-norm layers, each with an MoE FFN (a
 * router, banks of experts, optional shared experts) past the model's leading dense layers. The
 * families differ in their keys (moe-keys.ts), their attention's optional tensors, the name of the
 * pre-FFN norm and which router and expert tensors their files have.
 */
import type { LayerPlan, ModelFamily } from '../family.js';
import { DenseFfn, declareDenseFfn, synthesizeDenseFfn, type DenseFfnWeights } from '../blocks/dense-ffn.js';
import { GqaAttention, declareGqa, gqaShape, synthesizeGqa, type GqaShape, type GqaTensors, type GqaWeights } from '../blocks/gqa-attention.js';
import { MoeFfn, declareMoeFfn, declareRoutedExperts, synthesizeMoeFfn, type MoeFfnShape, type MoeFfnTensors, type MoeFfnWeights } from '../blocks/moe-ffn.js';
import { GpuDenseFfn, GpuGqaAttention, GpuOutputHead, GpuPreNormLayer, type GpuDecoderLayer } from '../gpu/gpu-blocks.js';
import { GpuMoeFfn } from '../gpu/gpu-moe.js';
import type { GpuWorkspace } from '../gpu/gpu-workspace.js';
import { OutputHead, declareOutputHead, synthesizeOutputHead } from '../blocks/output-head.js';
import { synthesizeRopeFreqs } from '../blocks/rope.js';
import { PreNormLayer, declarePreNorm, synthesizePreNorm, type PRE_NORMS } from '../blocks/pre-norm-layer.js';
import { synthesizeTokenEmbedding } from '../blocks/token-embedding.js';
import type { DecoderLayer, ShardOutput } from '../blocks/types.js';
import type { Workspace } from '../blocks/workspace.js';
import type { TensorSource } from '../tensor-source.js';
import type { SyntheticModelSpec, SyntheticTensors } from '../synthetic-tensors.js';
import { denseDecoderInput, denseDecoderLayerPlan } from './dense-decoder.js';
import { describeMoe, isMoeLayer, moeFfnPlan, type MoeConfig, type MoeModelConfig } from './moe-keys.js';

/** What a family's MoE decoder layers are made of, beyond the config. */
export interface MoeDecoderParts {
  readonly attention: GqaTensors;
  /** The pre-FFN norm's name: `ffn_norm` (Mixtral, Qwen) or `post_attention_norm` (GLM-4.5). */
  readonly ffnNorm: Exclude<keyof typeof PRE_NORMS, 'attention'>;
  readonly moe: MoeFfnTensors;
  /** The head may be the embedding table when the file has no `output.weight` (not so for Qwen2-MoE). */
  readonly tiedAllowed: boolean;
}

/** GQA attention everywhere; an MoE FFN past the leading dense layers. */
export function moeDecoderLayerPlan(cfg: MoeModelConfig, l: number): LayerPlan {
  const dense = denseDecoderLayerPlan(cfg);
  return isMoeLayer(cfg, l) ? { ...dense, ffn: moeFfnPlan(cfg.moe) } : dense;
}

/** `24 layers, embedding 2048, 32 heads (4 KV) of 128, experts 8 of 128 of 768 (softmax, normalized), vocab 151936`. */
export function describeMoeDecoder(cfg: MoeModelConfig): string {
  const dense = cfg.moe.leadingDense > 0 ? `, dense FFN ${cfg.nFf}` : '';
  return `${cfg.nLayer} layers, embedding ${cfg.nEmbd}, ${cfg.nHead} heads (${cfg.nKvHead} KV) of ${cfg.headDim}, ${describeMoe(cfg.moe)}${dense}, vocab ${cfg.nVocab}`;
}

/** The sizes and rules of an MoE layer's FFN. */
export function moeFfnShape(nEmbd: number, m: MoeConfig): MoeFfnShape {
  return { nEmbd, width: m.width, routing: m.routing, activation: 'silu', sharedWidth: m.sharedWidth, sharedGated: m.sharedGated };
}

/** The last shard's final norm and head. */
export function moeDecoderOutput(cfg: MoeModelConfig, src: TensorSource, parts: MoeDecoderParts): ShardOutput {
  return new OutputHead(declareOutputHead(src, cfg.nVocab, cfg.nEmbd, parts.tiedAllowed), cfg.rmsEps);
}

/** What layer `l` declares, in llama.cpp's order: attention norm, attention, pre-FFN norm, then experts or (leading layers) a dense FFN. */
interface MoeDecoderLayerWeights {
  readonly attnNorm: Float32Array;
  readonly shape: GqaShape;
  readonly attention: GqaWeights;
  readonly ffnNorm: Float32Array;
  readonly ffn: { readonly kind: 'moe'; readonly shape: MoeFfnShape; readonly w: MoeFfnWeights } | { readonly kind: 'dense'; readonly w: DenseFfnWeights };
}

function declareMoeDecoderLayer(cfg: MoeModelConfig, l: number, src: TensorSource, parts: MoeDecoderParts): MoeDecoderLayerWeights {
  const p = `blk.${l}.`;
  const shape = gqaShape(cfg);
  const attnNorm = declarePreNorm(src, p, 'attention', cfg.nEmbd);
  const attention = declareGqa(src, p, shape, parts.attention);
  const ffnNorm = declarePreNorm(src, p, parts.ffnNorm, cfg.nEmbd);
  if (!isMoeLayer(cfg, l)) return { attnNorm, shape, attention, ffnNorm, ffn: { kind: 'dense', w: declareDenseFfn(src, p, cfg.nEmbd, cfg.nFf) } };
  const s = moeFfnShape(cfg.nEmbd, cfg.moe);
  return { attnNorm, shape, attention, ffnNorm, ffn: { kind: 'moe', shape: s, w: declareMoeFfn(src, p, s, parts.moe) } };
}

/** Declares and builds layer `l`. */
export function moeDecoderLayer(cfg: MoeModelConfig, l: number, src: TensorSource, ws: Workspace, parts: MoeDecoderParts): DecoderLayer {
  const d = declareMoeDecoderLayer(cfg, l, src, parts);
  const ffn = d.ffn.kind === 'moe' ? new MoeFfn(d.ffn.shape, d.ffn.w, ws) : new DenseFfn(d.ffn.w, ws);
  return new PreNormLayer(d.attnNorm, new GqaAttention(d.shape, d.attention, ws), d.ffnNorm, ffn, cfg.rmsEps, ws);
}

/** Layer `l` on the GPU: the same declarations, run by the GPU blocks. */
export function moeDecoderGpuLayer(cfg: MoeModelConfig, l: number, src: TensorSource, ws: GpuWorkspace, parts: MoeDecoderParts): GpuDecoderLayer {
  const d = declareMoeDecoderLayer(cfg, l, src, parts);
  const ffn = d.ffn.kind === 'moe' ? new GpuMoeFfn(d.ffn.shape, d.ffn.w, ws) : new GpuDenseFfn(d.ffn.w, ws);
  return new GpuPreNormLayer(d.attnNorm, new GpuGqaAttention(d.shape, d.attention, ws), d.ffnNorm, ffn, cfg.rmsEps, ws);
}

/** The final norm and head on the GPU. */
export function moeDecoderGpuOutput(cfg: MoeModelConfig, src: TensorSource, ws: GpuWorkspace, parts: MoeDecoderParts): GpuOutputHead {
  return new GpuOutputHead(declareOutputHead(src, cfg.nVocab, cfg.nEmbd, parts.tiedAllowed), cfg.rmsEps, ws);
}

/** An expert rank's part of layer `l`: its range of the routed experts (none in the leading dense layers). */
export function moeDecoderRoutedExperts(cfg: MoeModelConfig, l: number, src: TensorSource, ws: Workspace, parts: MoeDecoderParts): MoeFfn | undefined {
  if (!isMoeLayer(cfg, l)) return undefined;
  const s = moeFfnShape(cfg.nEmbd, cfg.moe);
  return new MoeFfn(s, declareRoutedExperts(src, `blk.${l}.`, s, parts.moe), ws);
}

/** The MoE shape of a synthetic model (spec.moe), as a family with these shared experts reads it back. */
export function syntheticMoeConfig(spec: SyntheticModelSpec, sharedGated = false): MoeConfig {
  const moe = spec.moe;
  if (!moe) throw new Error(`synthetic ${spec.arch} model without its Mixture-of-Experts shape (spec.moe)`);
  const shared = moe.shared ?? (sharedGated ? 1 : 0);
  return {
    routing: {
      experts: moe.experts,
      used: moe.used,
      gating: moe.sigmoid ? 'sigmoid' : 'softmax',
      normalize: moe.normalize ?? false,
      scale: moe.scale ?? 0,
      groups: moe.groups ?? 0,
      groupsUsed: moe.groupsUsed ?? 0,
    },
    width: moe.width,
    shared,
    sharedWidth: moe.sharedWidth ?? shared * moe.width,
    sharedGated,
    leadingDense: moe.leadingDense ?? 0,
  };
}

/**
 * Writes every tensor of a synthetic MoE decoder, layers 0..`layers` (default nLayer; more for
 * files that carry skipped layers after the model's own).
 */
export function synthesizeMoeDecoder(
  spec: SyntheticModelSpec,
  out: SyntheticTensors,
  parts: MoeDecoderParts,
  m: MoeConfig,
  layers = spec.nLayer,
): void {
  const e = spec.nEmbd;
  const hd = spec.headDim ?? e / spec.nHead;
  const tied = (spec.tied ?? false) && parts.tiedAllowed;
  synthesizeTokenEmbedding(out, spec.nVocab, e, tied);
  synthesizeOutputHead(out, spec.nVocab, e, tied);
  if (spec.ropeFreqs && parts.attention.ropeFreqs) synthesizeRopeFreqs(out, hd);
  const shape = { nEmbd: e, nHead: spec.nHead, nKvHead: spec.nKvHead, headDim: hd };
  const ffn = moeFfnShape(e, m);
  for (let l = 0; l < layers; l++) {
    const p = `blk.${l}.`;
    synthesizePreNorm(out, p, 'attention', e);
    synthesizeGqa(out, p, l, shape, parts.attention, spec.attnExtras);
    synthesizePreNorm(out, p, parts.ffnNorm, e);
    if (l >= m.leadingDense) synthesizeMoeFfn(out, p, l, ffn, parts.moe);
    else synthesizeDenseFfn(out, p, l, e, spec.nFf);
  }
}

/** The methods every GQA Mixture-of-Experts family shares: plan, description, and its parts' input, layers and output. */
export function moeDecoderMethods(
  parts: MoeDecoderParts,
): Pick<ModelFamily<MoeModelConfig>, 'layerPlan' | 'describe' | 'input' | 'layer' | 'routedExperts' | 'output' | 'gpu'> {
  return {
    gpu: {
      layer: (cfg, l, src, ws) => moeDecoderGpuLayer(cfg, l, src, ws, parts),
      output: (cfg, src, ws) => moeDecoderGpuOutput(cfg, src, ws, parts),
    },
    routedExperts: (cfg, l, src, ws) => moeDecoderRoutedExperts(cfg, l, src, ws, parts),
    layerPlan: moeDecoderLayerPlan,
    describe: describeMoeDecoder,
    input: (cfg, src) => denseDecoderInput(cfg, src),
    layer: (cfg, l, src, ws) => moeDecoderLayer(cfg, l, src, ws, parts),
    output: (cfg, src) => moeDecoderOutput(cfg, src, parts),
  };
}
