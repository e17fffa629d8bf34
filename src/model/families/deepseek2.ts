/**
 * DeepSeek V2, V2-Lite, V3, R1 and Kimi K2 (GGUF architecture `deepseek2`, llama.cpp's
 * src/models/deepseek2.cpp): multi-head latent attention (blocks/mla-attention.ts) with
 * adjacent-pair rope and YaRN (DeepSeek's mscale in the score scale), leading dense SwiGLU layers,
 * then Mixture-of-Experts layers: softmax routing (V2) or sigmoid with the score-correction bias
 * and group-limited top-k (V3, R1, K2), normalized and scaled weights, and shared experts added
 * after the routed sum.
 *
 * Files of older converters (no `*_mla` keys, an unsplit `attn_kv_b`) run too: llama.cpp runs them
 * as plain multi-head attention caching every head's keys and values; here the projection is split
 * at load and they run absorbed like the others, caching only the latent (same attention up to
 * rounding, a fraction of the cache).
 *
 * Multi-token-prediction blocks (`nextn_predict_layers`, GLM-4.7-Flash) are skipped, as llama.cpp
 * skips them.
 *
 * As llama.cpp, "lite" models (26 or 27 layers, or 48 with a 128256-token vocabulary) never read
 * `q_lora_rank` and project queries directly; the file's `yarn_beta_fast/slow` are ignored (32 and
 * 1 always: Kimi K2 ropes differently from its Hugging Face config, as in llama.cpp).
 */
import { CairnError } from '../../util/errors.js';
import { gv } from '../../gguf/values.js';
import type { Metadata } from '../../gguf/metadata.js';
import { DenseFfn, declareDenseFfn, synthesizeDenseFfn, type DenseFfnWeights } from '../blocks/dense-ffn.js';
import {
  MLA_TENSORS,
  MlaAttention,
  checkMlaShape,
  declareMla,
  mlaAttentionPlan,
  mlaKqScale,
  mlaKvRow,
  type MlaShape,
  type MlaWeights,
} from '../blocks/mla-attention.js';
import { MoeFfn, declareMoeFfn, declareRoutedExperts, synthesizeMoeFfn, type MoeFfnShape, type MoeFfnTensors, type MoeFfnWeights } from '../blocks/moe-ffn.js';
import { PreNormLayer, declarePreNorm, synthesizePreNorm } from '../blocks/pre-norm-layer.js';
import { synthesizeOutputHead } from '../blocks/output-head.js';
import { synthesizeTokenEmbedding } from '../blocks/token-embedding.js';
import type { FfnBlock } from '../blocks/types.js';
import type { ModelFamily } from '../family.js';
import type { SyntheticModelSpec, SyntheticTensors } from '../synthetic-tensors.js';
import type { TensorSource } from '../tensor-source.js';
import { GpuDenseFfn, GpuPreNormLayer } from '../gpu/gpu-blocks.js';
import { GpuMlaAttention } from '../gpu/gpu-mla.js';
import { GpuMoeFfn } from '../gpu/gpu-moe.js';
import { readDecoderConfig, writeDecoderKeys } from './decoder-keys.js';
import { denseDecoderGpuOutput, denseDecoderInput, denseDecoderOutput } from './dense-decoder.js';
import { describeMoe, isMoeLayer, moeFfnPlan, readMoeConfig, writeMoeKeys, type MoeModelConfig } from './moe-keys.js';

/** A deepseek2 model's shape: the MoE part and the latent attention of every layer. */
export interface Deepseek2Config extends MoeModelConfig {
  readonly mla: MlaShape;
}

const f = Math.fround;

/** llama.cpp's router tensors of deepseek2: the score-correction bias where the file has it (V3, K2). */
const MOE_TENSORS_READ: MoeFfnTensors = { router: { logitBias: false, selectionBias: 'optional' }, gate: 'required', expertBiases: false };

/** llama.cpp's "lite" rule (deepseek2.cpp load_arch_hparams): these models have no query bottleneck. */
function isLite(nLayer: number, nVocab: number): boolean {
  return nLayer === 27 || nLayer === 26 || (nLayer === 48 && nVocab === 128256);
}

function readDeepseek2Config(m: Metadata, arch: string): Deepseek2Config {
  const path = m.file.path;
  const k = (suffix: string) => `${arch}.${suffix}`;
  const temperature = m.number(k('attention.temperature_scale')) ?? 0;
  if (temperature !== 0)
    throw new CairnError('MODEL_UNSUPPORTED', `${path}: attention temperature scaling (Mistral Large 3) is not supported`);
  const keyMla = m.number(k('attention.key_length_mla')) ?? 0;
  const valueMla = m.number(k('attention.value_length_mla')) ?? 0;
  // Older converters wrote no MLA keys and an unsplit attn_kv_b; llama.cpp runs those files too.
  const unsplit = keyMla === 0 && valueMla === 0;
  if (!unsplit && (keyMla === 0 || valueMla === 0)) {
    throw new CairnError(
      'GGUF_MALFORMED',
      `${path}: "${k('attention.key_length_mla')}" and "${k('attention.value_length_mla')}" come together`,
    );
  }
  const logMulKey = m.number(k('rope.scaling.yarn_log_multiplier'));
  // It scales every rope op: a NaN or an infinity would load and then fail every forward pass.
  if (logMulKey !== undefined && !Number.isFinite(logMulKey)) {
    throw new CairnError('GGUF_MALFORMED', `${path}: "${k('rope.scaling.yarn_log_multiplier')}" is ${logMulKey}, not a finite number`);
  }
  // The converter stores 0.1 x mscale_all_dim; llama.cpp divides it back in f32.
  const yarnLogMul = logMulKey === undefined ? 0 : f(f(logMulKey) / f(0.1));
  const all = readDecoderConfig(m, arch, 'normal', { yarnLogMul, ffnRequired: false });
  // Multi-token-prediction blocks (GLM-4.7-Flash) follow the model's layers in block_count; inference
  // skips them, as llama.cpp does without load_mtp.
  const nextn = m.number(k('nextn_predict_layers')) ?? 0;
  if (!(Number.isInteger(nextn) && nextn >= 0 && nextn < all.nLayer)) {
    throw new CairnError('GGUF_MALFORMED', `${path}: ${nextn} multi-token-prediction layers of ${all.nLayer} blocks`);
  }
  const base = { ...all, nLayer: all.nLayer - nextn };
  const kvLora = m.requireNumber(k('attention.kv_lora_rank'));
  const qLora = isLite(base.nLayer, base.nVocab) ? 0 : m.requireNumber(k('attention.q_lora_rank'));
  const ropeDim = base.rope.nRot;
  if (unsplit) {
    // Every head has its own keys and values there (llama.cpp: multi-head attention over them).
    if (base.nKvHead !== base.nHead) {
      throw new CairnError(
        'GGUF_MALFORMED',
        `${path}: ${base.nKvHead} KV heads for ${base.nHead} heads in a file without latent attention keys`,
      );
    }
  } else {
    if (base.nKvHead !== 1) {
      throw new CairnError(
        'GGUF_MALFORMED',
        `${path}: latent attention caches one row per token, but "${k('attention.head_count_kv')}" is ${base.nKvHead}`,
      );
    }
    // The cache row llama.cpp sizes from key_length / value_length must be the latent and rope part.
    if (base.headDim !== kvLora + ropeDim || base.headDimV !== kvLora) {
      throw new CairnError(
        'GGUF_MALFORMED',
        `${path}: key/value lengths ${base.headDim}/${base.headDimV} are not the latent cache row (${kvLora} + ${ropeDim} / ${kvLora})`,
      );
    }
  }
  // Per-head key and value sizes: the *_mla keys, or (older files) the plain ones.
  const keyLength = unsplit ? base.headDim : keyMla;
  const valueLength = unsplit ? base.headDimV : valueMla;
  const mla: MlaShape = {
    nEmbd: base.nEmbd,
    nHead: base.nHead,
    qLora,
    kvLora,
    nope: keyLength - ropeDim,
    ropeDim,
    vDim: valueLength,
    rmsEps: base.rmsEps,
    rope: base.rope,
    kqScale: mlaKqScale(base.rope, keyLength, yarnLogMul),
    unsplit,
  };
  checkMlaShape(mla, path);
  // GLM-4.7-Flash files (also deepseek2) default to sigmoid routing, DeepSeek V2's to softmax.
  const glmLite = (base.nLayer === 47 || base.nLayer === 48) && base.nVocab === 154880;
  const moe = readMoeConfig(m, arch, base.nLayer, base.nFf, {
    width: { key: 'required' },
    gating: { default: glmLite ? 'sigmoid' : 'softmax' },
    normalize: 'read',
    readScale: true,
    shared: 'count',
    readLeadingDense: true,
  });
  if (moe.shared < 1) throw new CairnError('MODEL_UNSUPPORTED', `${path}: ${arch} without shared experts is not supported`);
  // The family's own view of heads: keys of nope + rope, values of vDim (the cache holds neither).
  return { ...base, headDim: keyLength, headDimV: valueLength, moe, mla };
}

/** The MoE FFN of a deepseek2 layer. */
function moeShape(cfg: Deepseek2Config): MoeFfnShape {
  return {
    nEmbd: cfg.nEmbd,
    width: cfg.moe.width,
    routing: cfg.moe.routing,
    activation: 'silu',
    sharedWidth: cfg.moe.sharedWidth,
    sharedGated: false,
  };
}

/** Layer l's tensors in llama.cpp's order: attention norm, latent attention, FFN norm, then experts or (leading layers) a dense FFN. */
function declareLayer(
  cfg: Deepseek2Config,
  l: number,
  src: TensorSource,
): { attnNorm: Float32Array; attention: MlaWeights; ffnNorm: Float32Array; moe?: MoeFfnWeights; dense?: DenseFfnWeights } {
  const p = `blk.${l}.`;
  const attnNorm = declarePreNorm(src, p, 'attention', cfg.nEmbd);
  const attention = declareMla(src, p, cfg.mla);
  const ffnNorm = declarePreNorm(src, p, 'ffn', cfg.nEmbd);
  if (!isMoeLayer(cfg, l)) return { attnNorm, attention, ffnNorm, dense: declareDenseFfn(src, p, cfg.nEmbd, cfg.nFf) };
  if (src.has(`${p}ffn_gate_up_exps.weight`)) {
    throw new CairnError('MODEL_UNSUPPORTED', `${src.path}: merged expert gate/up tensors ("${p}ffn_gate_up_exps.weight") are not supported`);
  }
  return { attnNorm, attention, ffnNorm, moe: declareMoeFfn(src, p, moeShape(cfg), MOE_TENSORS_READ) };
}

/** The deepseek2 family. */
export const deepseek2Family: ModelFamily<Deepseek2Config> = {
  name: 'DeepSeek V2 / V3 / Kimi K2',
  architectures: ['deepseek2'],
  readConfig: readDeepseek2Config,
  layerPlan: (cfg, l) => ({
    attention: mlaAttentionPlan(cfg.mla),
    ffn: isMoeLayer(cfg, l) ? moeFfnPlan(cfg.moe) : { kind: 'dense', width: cfg.nFf },
    kv: mlaKvRow(cfg.mla),
  }),
  describe(cfg) {
    const a = cfg.mla;
    const q = (a.qLora > 0 ? `queries via rank ${a.qLora}` : 'direct queries') + (a.unsplit ? ', attn_kv_b split at load' : '');
    return `${cfg.nLayer} layers, embedding ${cfg.nEmbd}, ${a.nHead} latent-attention heads (keys ${a.nope}+${a.ropeDim}, values ${a.vDim}, latent ${a.kvLora}, ${q}), dense FFN ${cfg.nFf}, ${describeMoe(cfg.moe)}, vocab ${cfg.nVocab}`;
  },
  input: (cfg, src) => denseDecoderInput(cfg, src),
  layer(cfg, l, src, ws) {
    const d = declareLayer(cfg, l, src);
    const ffn: FfnBlock = d.moe ? new MoeFfn(moeShape(cfg), d.moe, ws) : new DenseFfn(d.dense!, ws);
    return new PreNormLayer(d.attnNorm, new MlaAttention(cfg.mla, d.attention, ws), d.ffnNorm, ffn, cfg.rmsEps, ws);
  },
  gpu: {
    layer(cfg, l, src, ws) {
      const d = declareLayer(cfg, l, src);
      const ffn = d.moe ? new GpuMoeFfn(moeShape(cfg), d.moe, ws) : new GpuDenseFfn(d.dense!, ws);
      return new GpuPreNormLayer(d.attnNorm, new GpuMlaAttention(cfg.mla, d.attention, ws), d.ffnNorm, ffn, cfg.rmsEps, ws);
    },
    output: (cfg, src, ws) => denseDecoderGpuOutput(cfg, src, ws),
  },
  routedExperts: (cfg, l, src, ws) =>
    isMoeLayer(cfg, l) ? new MoeFfn(moeShape(cfg), declareRoutedExperts(src, `blk.${l}.`, moeShape(cfg), MOE_TENSORS_READ), ws) : undefined,
  output: (cfg, src) => denseDecoderOutput(cfg, src),
  synthetic: {
    shapes: {
      // DeepSeek-V2-Lite at its real shape (15.7B parameters, 2.4B active per token).
      'deepseek-v2-lite': {
        arch: 'deepseek2',
        nEmbd: 2048,
        nLayer: 27,
        nHead: 16,
        nKvHead: 1,
        nFf: 10944,
        nVocab: 102400,
        ctx: 163840,
        yarn: { factor: 40, origCtx: 4096 },
        mla: { qLora: 0, kvLora: 512, nope: 128, ropeDim: 64, vDim: 128, mscaleAllDim: 0.707 },
        moe: { experts: 64, used: 6, width: 1408, shared: 2, leadingDense: 1, sigmoid: false, normalize: false, scale: 1 },
      },
    },
    write: writeDeepseek2,
  },
};

/** Writes a synthetic deepseek2 model: tensors in llama.cpp's order, then its keys. */
function writeDeepseek2(spec: SyntheticModelSpec, out: SyntheticTensors): void {
  const a = spec.mla;
  const moe = spec.moe;
  if (!a || !moe) throw new Error('a deepseek2 synthetic model needs its mla and moe shapes');
  const e = spec.nEmbd;
  const qk = a.nope + a.ropeDim;
  const sigmoid = moe.sigmoid !== false;
  synthesizeTokenEmbedding(out, spec.nVocab, e, spec.tied ?? false);
  synthesizeOutputHead(out, spec.nVocab, e, spec.tied ?? false);
  const moeFfn: MoeFfnShape = {
    nEmbd: e,
    width: moe.width,
    routing: {
      experts: moe.experts,
      used: moe.used,
      gating: sigmoid ? 'sigmoid' : 'softmax',
      normalize: false,
      scale: 0,
      groups: 0,
      groupsUsed: 0,
    },
    activation: 'silu',
    sharedWidth: (moe.shared ?? 1) * moe.width,
    sharedGated: false,
  };
  const written: MoeFfnTensors = { ...MOE_TENSORS_READ, router: { logitBias: false, selectionBias: sigmoid ? 'required' : 'none' } };
  const nextn = moe.nextn ?? 0;
  for (let l = 0; l < spec.nLayer + nextn; l++) {
    const p = `blk.${l}.`;
    synthesizePreNorm(out, p, 'attention', e);
    if (a.qLora > 0) out.f32(p + MLA_TENSORS.qANorm, [a.qLora], 0.1, 1);
    out.f32(p + MLA_TENSORS.kvANorm, [a.kvLora], 0.1, 1);
    if (a.qLora > 0) {
      out.matrix(p + MLA_TENSORS.qA, a.qLora, e, 1 / Math.sqrt(e), l);
      out.matrix(p + MLA_TENSORS.qB, spec.nHead * qk, a.qLora, 1 / Math.sqrt(a.qLora), l);
    } else {
      out.matrix(p + MLA_TENSORS.q, spec.nHead * qk, e, 1 / Math.sqrt(e), l);
    }
    out.matrix(p + MLA_TENSORS.kvA, a.kvLora + a.ropeDim, e, 1 / Math.sqrt(e), l);
    if (a.unsplit) {
      out.matrix(p + MLA_TENSORS.kvB, spec.nHead * (a.nope + a.vDim), a.kvLora, 1 / Math.sqrt(a.kvLora), l);
    } else {
      out.experts(p + MLA_TENSORS.kB, spec.nHead, a.kvLora, a.nope, 1 / Math.sqrt(a.nope), l);
      out.experts(p + MLA_TENSORS.vB, spec.nHead, a.vDim, a.kvLora, 1 / Math.sqrt(a.kvLora), l);
    }
    out.matrix(p + MLA_TENSORS.o, e, spec.nHead * a.vDim, 1 / Math.sqrt(spec.nHead * a.vDim), l);
    synthesizePreNorm(out, p, 'ffn', e);
    if (l < (moe.leadingDense ?? 0)) synthesizeDenseFfn(out, p, l, e, spec.nFf);
    else synthesizeMoeFfn(out, p, l, moeFfn, written);
    if (l >= spec.nLayer) {
      // A multi-token-prediction block: a full layer and its own projections, which inference skips.
      out.matrix(`${p}nextn.eh_proj.weight`, e, 2 * e, 1 / Math.sqrt(2 * e), l);
      out.f32(`${p}nextn.enorm.weight`, [e], 0.1, 1);
      out.f32(`${p}nextn.hnorm.weight`, [e], 0.1, 1);
      out.f32(`${p}nextn.shared_head_norm.weight`, [e], 0.1, 1);
    }
  }
  writeDecoderKeys(spec, out, { ropeDims: a.ropeDim, blockCount: spec.nLayer + nextn });
  if (nextn > 0) out.meta(`${spec.arch}.nextn_predict_layers`, gv.u32(nextn));
  const k = (suffix: string) => `${spec.arch}.${suffix}`;
  if (a.unsplit) {
    out.meta(k('attention.key_length'), gv.u32(qk));
    out.meta(k('attention.value_length'), gv.u32(a.vDim));
  } else {
    out.meta(k('attention.key_length'), gv.u32(a.kvLora + a.ropeDim));
    out.meta(k('attention.value_length'), gv.u32(a.kvLora));
    out.meta(k('attention.key_length_mla'), gv.u32(qk));
    out.meta(k('attention.value_length_mla'), gv.u32(a.vDim));
  }
  out.meta(k('attention.q_lora_rank'), gv.u32(a.qLora));
  out.meta(k('attention.kv_lora_rank'), gv.u32(a.kvLora));
  if (spec.yarn && a.mscaleAllDim !== undefined) out.meta(k('rope.scaling.yarn_log_multiplier'), gv.f32(0.1 * a.mscaleAllDim));
  writeMoeKeys(spec, out, { width: true, gating: true, norm: true, scale: true, shared: 'count', leadingDense: true });
}
