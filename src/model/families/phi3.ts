/**
 * Phi-3, Phi-3.5 and Phi-4 (GGUF architecture `phi3`; llama.cpp's models/phi3.cpp): grouped-query
 * attention with Q, K and V in one matrix (`attn_qkv`; three tensors where a file has them), neox
 * rope over the rope dimension count (a part of the head in Phi-4-mini), a SwiGLU FFN whose gate
 * and up are one matrix (`ffn_up` of 2 x nFf rows), RMSNorm, and a head tied to the embeddings where
 * the file has none. The long-context models (128k) carry two sets of rope frequency factors,
 * `rope_factors_short` and `rope_factors_long`: as llama.cpp, a context longer than the original
 * one (`rope.scaling.original_context_length`) rotates with the long ones, and every rotation is
 * scaled by `rope.scaling.attn_factor`. The sliding window some files name is ignored, as llama.cpp
 * ignores it (its converters wrote it wrongly), so every layer sees the whole context.
 *
 * On the GPU the fused matrices are uploaded as the GPU blocks stack their Q, K and V (one matrix)
 * and pair gate and up. Not yet: a tensor-parallel group (a rank would need two row ranges of one
 * tensor).
 */
import { CairnError } from '../../util/errors.js';
import type { Metadata } from '../../gguf/metadata.js';
import { gv } from '../../gguf/values.js';
import type { ModelConfig } from '../config.js';
import type { ModelFamily } from '../family.js';
import { FusedFfn, declareFusedFfn, synthesizeFusedFfn, type FusedFfnWeights } from '../blocks/fused-ffn.js';
import type { DenseFfnWeights } from '../blocks/dense-ffn.js';
import { GpuDenseFfn, GpuGqaAttention, GpuPreNormLayer } from '../gpu/gpu-blocks.js';
import { ggmlRowBytes } from '../../gguf/ggml-types.js';
import {
  GqaAttention,
  checkGqaConfig,
  declareGqa,
  gqaShape,
  synthesizeGqa,
  type GqaTensors,
  type GqaWeights,
} from '../blocks/gqa-attention.js';
import { PreNormLayer, declarePreNorm, synthesizePreNorm } from '../blocks/pre-norm-layer.js';
import type { Workspace } from '../blocks/workspace.js';
import type { Matrix, TensorSource } from '../tensor-source.js';
import type { SyntheticModelSpec, SyntheticTensors } from '../synthetic-tensors.js';
import { readDecoderConfig, writeDecoderKeys } from './decoder-keys.js';
import {
  denseDecoderGpuOutput,
  denseDecoderInput,
  denseDecoderLayerPlan,
  denseDecoderOutput,
  describeDenseDecoder,
} from './dense-decoder.js';
import { synthesizeOutputHead } from '../blocks/output-head.js';
import { synthesizeTokenEmbedding } from '../blocks/token-embedding.js';

/** Phi-3's hyperparameters beyond the shared decoder's. */
export interface Phi3Config extends ModelConfig {
  /** The context the model was trained with before its long-context extension: longer ones take the long rope factors. */
  readonly origCtx: number;
}

/** Where a file has Q, K and V apart: their biases if present, as llama.cpp's loader. */
const TENSORS: GqaTensors = { qkvBias: 'optional', outputBias: false, qkNorm: false, ropeFreqs: false };

/** llama.cpp's names of the fused attention matrix and of the rope factor sets (one each for all layers). */
const QKV = 'attn_qkv';
const ROPE_LONG = 'rope_factors_long.weight';
const ROPE_SHORT = 'rope_factors_short.weight';

function readPhi3(m: Metadata, arch: string): Phi3Config {
  const path = m.file.path;
  const base = readDecoderConfig(m, arch, 'neox');
  checkGqaConfig(base, path);
  const key = `${arch}.rope.scaling.original_context_length`;
  const origCtx = m.number(key) ?? base.ctxTrain;
  if (!(Number.isSafeInteger(origCtx) && origCtx > 0))
    throw new CairnError('GGUF_MALFORMED', `${path}: "${key}" is ${origCtx}, not a positive whole number`);
  return { ...base, origCtx };
}

/** Layer l's attention weights: the fused matrix (and its bias) where the file has it, else Q, K and V apart; with the rope factors for the context. */
function declareAttention(cfg: Phi3Config, p: string, src: TensorSource, ctx: number): GqaWeights {
  const s = gqaShape(cfg);
  const qDim = cfg.nHead * cfg.headDim;
  const kvDim = cfg.nKvHead * cfg.headDim;
  // Both sets are declared (the file holds both, and a shard needs both to serve any context); one rotates.
  const long = src.sharedVector(ROPE_LONG, cfg.rope.nRot / 2, false);
  const short = src.sharedVector(ROPE_SHORT, cfg.rope.nRot / 2, false);
  const ropeFreqs = ctx > cfg.origCtx ? long : short;
  if (!src.has(`${p}${QKV}.weight`)) return { ...declareGqa(src, p, s, TENSORS), ropeFreqs };
  const total = qDim + 2 * kvDim;
  return {
    qkv: { w: src.matrix(`${p}${QKV}.weight`, total, cfg.nEmbd), bias: src.optionalVector(`${p}${QKV}.bias`, total) },
    o: { w: src.matrix(`${p}attn_output.weight`, cfg.nEmbd, qDim) },
    ropeFreqs,
  };
}

/** Rows [r0, r1) of a matrix, as host bytes to upload (the GPU copies them: nothing else reads this view). */
function rowsView(m: Matrix, r0: number, r1: number): Matrix {
  const rowBytes = ggmlRowBytes(m.type, m.cols);
  return { ...m, name: `${m.name}[${r0}:${r1}]`, rows: r1 - r0, data: m.data.subarray(r0 * rowBytes, r1 * rowBytes) };
}

/** The fused weights as the GPU blocks take them: Q, K and V (which they stack again), gate and up (which they pair). */
function gpuParts(cfg: Phi3Config, w: GqaWeights, ffn: FusedFfnWeights): { attention: GqaWeights; ffn: DenseFfnWeights } {
  const f = ffn.down.cols;
  const dense: DenseFfnWeights = { gate: rowsView(ffn.gateUp, 0, f), up: rowsView(ffn.gateUp, f, 2 * f), down: ffn.down };
  if (!w.qkv) return { attention: w, ffn: dense };
  const qDim = cfg.nHead * cfg.headDim;
  const kvDim = cfg.nKvHead * cfg.headDim;
  const cut = [0, qDim, qDim + kvDim, qDim + 2 * kvDim];
  const [q, k, v] = [0, 1, 2].map((i) => ({ w: rowsView(w.qkv.w, cut[i], cut[i + 1]), bias: w.qkv.bias?.subarray(cut[i], cut[i + 1]) }));
  const { qkv: _fused, ...rest } = w;
  return { attention: { ...rest, q, k, v }, ffn: dense };
}

/** Layer l's weights in llama.cpp's order: attention norm, attention (with the rope factors for `ctx`), FFN norm, FFN. */
function declareLayer(cfg: Phi3Config, l: number, src: TensorSource, ctx: number) {
  const p = `blk.${l}.`;
  const attnNorm = declarePreNorm(src, p, 'attention', cfg.nEmbd);
  const attention = declareAttention(cfg, p, src, ctx);
  const ffnNorm = declarePreNorm(src, p, 'ffn', cfg.nEmbd);
  return { attnNorm, attention, ffnNorm, ffn: declareFusedFfn(src, p, cfg.nEmbd, cfg.nFf) };
}

function buildLayer(cfg: Phi3Config, l: number, src: TensorSource, ws: Workspace): PreNormLayer {
  const d = declareLayer(cfg, l, src, ws.ctx);
  return new PreNormLayer(d.attnNorm, new GqaAttention(gqaShape(cfg), d.attention, ws), d.ffnNorm, new FusedFfn(d.ffn, ws), cfg.rmsEps, ws);
}

/**
 * Writes a random-weight Phi-3 model: fused attention matrices (or Q, K and V apart with
 * `separateQkv`), fused gate/up, and with `longRope` the two factor sets (short near 1, long
 * stretched up to 8x), the original context and the attention factor.
 */
function synthesizePhi3(spec: SyntheticModelSpec, out: SyntheticTensors): void {
  const e = spec.nEmbd;
  const hd = spec.headDim ?? e / spec.nHead;
  const rot = spec.ropeDims ?? hd;
  synthesizeTokenEmbedding(out, spec.nVocab, e, spec.tied ?? false);
  synthesizeOutputHead(out, spec.nVocab, e, spec.tied ?? false);
  if (spec.longRope) {
    const half = rot / 2;
    out.constant(
      ROPE_LONG,
      new Float32Array(half).map((_, i) => 1 + (7 * i) / Math.max(1, half - 1)),
    );
    out.constant(
      ROPE_SHORT,
      new Float32Array(half).map((_, i) => 1 + (0.5 * i) / Math.max(1, half - 1)),
    );
  }
  const qDim = spec.nHead * hd;
  const kvDim = spec.nKvHead * hd;
  for (let l = 0; l < spec.nLayer; l++) {
    const p = `blk.${l}.`;
    synthesizePreNorm(out, p, 'attention', e);
    if (spec.separateQkv) synthesizeGqa(out, p, l, { nEmbd: e, nHead: spec.nHead, nKvHead: spec.nKvHead, headDim: hd }, TENSORS);
    else {
      out.matrix(`${p}${QKV}.weight`, qDim + 2 * kvDim, e, 1 / Math.sqrt(e), l);
      out.matrix(`${p}attn_output.weight`, e, qDim, 1 / Math.sqrt(qDim), l);
    }
    synthesizePreNorm(out, p, 'ffn', e);
    synthesizeFusedFfn(out, p, l, e, spec.nFf);
  }
  writeDecoderKeys({ ...spec, headDim: hd }, out, { ropeDims: rot });
  if (spec.longRope) {
    out.meta(`${spec.arch}.rope.scaling.original_context_length`, gv.u32(spec.longRope.origCtx));
    out.meta(`${spec.arch}.rope.scaling.attn_factor`, gv.f32(spec.longRope.attnFactor));
  }
  // As the converter writes it for Phi-3-mini (llama.cpp ignores it; so does cairn).
  if (spec.slidingWindow !== undefined) out.meta(`${spec.arch}.attention.sliding_window`, gv.u32(spec.slidingWindow));
}

/** The Phi-3 family. */
export const phi3Family: ModelFamily<Phi3Config> = {
  name: 'Phi-3 / Phi-4',
  architectures: ['phi3'],
  readConfig: readPhi3,
  layerPlan: (cfg) => denseDecoderLayerPlan(cfg),
  describe: (cfg) => describeDenseDecoder(cfg),
  input: (cfg, src) => denseDecoderInput(cfg, src),
  layer: buildLayer,
  output: (cfg, src) => denseDecoderOutput(cfg, src),
  unsplittable:
    'a rank would need two row ranges of each fused QKV and gate/up matrix, which it cannot hold yet; run the model as pipeline stages',
  gpu: {
    layer(cfg, l, src, ws) {
      const d = declareLayer(cfg, l, src, ws.ctx);
      const parts = gpuParts(cfg, d.attention, d.ffn);
      return new GpuPreNormLayer(
        d.attnNorm,
        new GpuGqaAttention(gqaShape(cfg), parts.attention, ws),
        d.ffnNorm,
        new GpuDenseFfn(parts.ffn, ws),
        cfg.rmsEps,
        ws,
      );
    },
    output: (cfg, src, ws) => denseDecoderGpuOutput(cfg, src, ws),
  },
  synthetic: {
    shapes: {
      'phi4-mini': {
        arch: 'phi3',
        nEmbd: 3072,
        nLayer: 32,
        nHead: 24,
        nKvHead: 8,
        headDim: 128,
        ropeDims: 96,
        nFf: 8192,
        nVocab: 200064,
        ctx: 131072,
        ropeBase: 10000,
        tied: true,
        longRope: { origCtx: 4096, attnFactor: 1.1902 },
      },
    },
    write: synthesizePhi3,
  },
};
