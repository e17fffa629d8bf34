/**
 * GLM-4.5, GLM-4.5-Air and GLM-4.6 (GGUF architecture `glm4moe`): grouped-query attention with
 * Q/K/V biases, per-head Q/K norms where the file has them (GLM-4.5/4.6, not Air), neox rope over
 * part of each head (`rope.dimension_count`, half the head); the pre-FFN norm is named
 * `post_attention_norm`; leading dense layers, then MoE layers routed by sigmoid with DeepSeek-V3's
 * score-correction bias (`exp_probs_b`, choosing only), the chosen weights normalized and scaled as
 * the file says, plus shared experts. The multi-token-prediction layers after the model's own
 * (`nextn_predict_layers`, counted in `block_count`) are skipped, as llama.cpp skips them.
 */
import { CairnError } from '../../util/errors.js';
import type { Metadata } from '../../gguf/metadata.js';
import { gv } from '../../gguf/values.js';
import { checkGqaConfig, type GqaTensors } from '../blocks/gqa-attention.js';
import type { ModelFamily } from '../family.js';
import type { SyntheticModelSpec, SyntheticTensors } from '../synthetic-tensors.js';
import { readDecoderConfig, writeDecoderKeys } from './decoder-keys.js';
import { readMoeConfig, writeMoeKeys, type MoeKeyRules, type MoeModelConfig } from './moe-keys.js';
import { moeDecoderMethods, synthesizeMoeDecoder, syntheticMoeConfig, type MoeDecoderParts } from './moe-decoder.js';

/** llama.cpp's GLM-4.5 loader. */
const ATTENTION: GqaTensors = { qkvBias: 'optional', outputBias: false, qkNorm: 'optional', ropeFreqs: false };
const PARTS: MoeDecoderParts = {
  attention: ATTENTION,
  ffnNorm: 'postAttention',
  moe: { router: { logitBias: false, selectionBias: 'required' }, gate: 'required', expertBiases: false },
  tiedAllowed: true,
};
const KEYS: MoeKeyRules = {
  width: { key: 'required', fallback: 'nFf/used' },
  gating: { default: 'sigmoid' },
  normalize: 'read',
  readScale: true,
  shared: 'count',
  readLeadingDense: true,
};

function readGlm4Moe(meta: Metadata, arch: string): MoeModelConfig {
  const path = meta.file.path;
  if (meta.has(`${arch}.rope.dimension_sections`)) {
    throw new CairnError(
      'MODEL_UNSUPPORTED',
      `${path}: multimodal rope sections ("${arch}.rope.dimension_sections", GLM-4.5V) are not supported`,
    );
  }
  const all = readDecoderConfig(meta, arch, 'neox', { ffnRequired: false });
  checkGqaConfig(all, path);
  const nextn = meta.number(`${arch}.nextn_predict_layers`) ?? 0;
  if (!(Number.isInteger(nextn) && nextn >= 0 && nextn < all.nLayer)) {
    throw new CairnError('GGUF_MALFORMED', `${path}: ${nextn} multi-token-prediction layers of ${all.nLayer} blocks`);
  }
  const cfg = { ...all, nLayer: all.nLayer - nextn };
  const moe = readMoeConfig(meta, arch, cfg.nLayer, cfg.nFf, KEYS);
  if (moe.shared === 0) {
    // llama.cpp would add silu(x) in place of the missing shared experts; no real file has none.
    throw new CairnError(
      'MODEL_UNSUPPORTED',
      `${path}: GLM-4.5 models without shared experts ("${arch}.expert_shared_count" = 0) are not supported`,
    );
  }
  return { ...cfg, moe };
}

/** Writes a synthetic model's multi-token-prediction extras on layer l (its decoder layer is written with the others). */
function synthesizeNextn(spec: SyntheticModelSpec, out: SyntheticTensors, l: number): void {
  const e = spec.nEmbd;
  out.matrix(`blk.${l}.nextn.eh_proj.weight`, e, 2 * e, 1 / Math.sqrt(2 * e), l);
  out.f32(`blk.${l}.nextn.enorm.weight`, [e], 0.1, 1);
  out.f32(`blk.${l}.nextn.hnorm.weight`, [e], 0.1, 1);
  out.f32(`blk.${l}.nextn.shared_head_norm.weight`, [e], 0.1, 1);
}

/** The GLM-4.5 family. */
export const glm4MoeFamily: ModelFamily<MoeModelConfig> = {
  name: 'GLM-4.5',
  architectures: ['glm4moe'],
  readConfig: readGlm4Moe,
  ...moeDecoderMethods(PARTS),
  synthetic: {
    shapes: {},
    write(spec, out) {
      const nextn = spec.moe?.nextn ?? 0;
      const hd = spec.headDim ?? spec.nEmbd / spec.nHead;
      synthesizeMoeDecoder(spec, out, PARTS, syntheticMoeConfig(spec), spec.nLayer + nextn);
      for (let l = spec.nLayer; l < spec.nLayer + nextn; l++) synthesizeNextn(spec, out, l);
      // Partial rotary as GLM's converter writes it: half of each head.
      writeDecoderKeys(spec, out, { blockCount: spec.nLayer + nextn, ropeDims: hd / 2 });
      if (nextn > 0) out.meta(`${spec.arch}.nextn_predict_layers`, gv.u32(nextn));
      writeMoeKeys(spec, out, { width: true, gating: true, norm: true, scale: true, shared: 'count', leadingDense: true });
    },
  },
};
