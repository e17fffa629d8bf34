/**
 * The decoder shape of the Mixture-of-Experts families that keep grouped-query attention (Mixtral,
 * Qwen2-MoE, Qwen3-MoE, GLM-4.5): the dense decoder's pre-norm layers, each with an MoE FFN (a
 * router, banks of experts, optional shared experts) past the model's leading dense layers. The
 * families differ in their keys (moe-keys.ts), their attention's optional tensors, the name of the
 * pre-FFN norm and which router and expert tensors their files have.
 */
import type { LayerPlan, ModelFamily } from '../family.js';
import { DenseFfn, declareDenseFfn, synthesizeDenseFfn } from '../blocks/dense-ffn.js';
import { GqaAttention, declareGqa, gqaShape, synthesizeGqa, type GqaTensors } from '../blocks/gqa-attention.js';
import { MoeFfn, declareMoeFfn, declareRoutedExperts, synthesizeMoeFfn, type MoeFfnShape, type MoeFfnTensors } from '../blocks/moe-ffn.js';
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

/** Declares and builds layer `l`: attention norm, attention, pre-FFN norm, then experts or (leading layers) a dense FFN. */
export function moeDecoderLayer(cfg: MoeModelConfig, l: number, src: TensorSource, ws: Workspace, parts: MoeDecoderParts): DecoderLayer {
  const p = `blk.${l}.`;
  const shape = gqaShape(cfg);
  const attnNorm = declarePreNorm(src, p, 'attention', cfg.nEmbd);
  const attention = new GqaAttention(shape, declareGqa(src, p, shape, parts.attention), ws);
  const ffnNorm = declarePreNorm(src, p, parts.ffnNorm, cfg.nEmbd);
  let ffn;
  if (isMoeLayer(cfg, l)) {
    const s = moeFfnShape(cfg.nEmbd, cfg.moe);
    ffn = new MoeFfn(s, declareMoeFfn(src, p, s, parts.moe), ws);
  } else ffn = new DenseFfn(declareDenseFfn(src, p, cfg.nEmbd, cfg.nFf), ws);
  return new PreNormLayer(attnNorm, attention, ffnNorm, ffn, cfg.rmsEps, ws);
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
): Pick<ModelFamily<MoeModelConfig>, 'layerPlan' | 'describe' | 'input' | 'layer' | 'routedExperts' | 'output'> {
  return {
    routedExperts: (cfg, l, src, ws) => moeDecoderRoutedExperts(cfg, l, src, ws, parts),
    layerPlan: moeDecoderLayerPlan,
    describe: describeMoeDecoder,
    input: (cfg, src) => denseDecoderInput(cfg, src),
    layer: (cfg, l, src, ws) => moeDecoderLayer(cfg, l, src, ws, parts),
    output: (cfg, src) => moeDecoderOutput(cfg, src, parts),
  };
}
