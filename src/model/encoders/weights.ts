/**
 * An encoder's tensors, by llama.cpp's names: the token, token-type and (BERT) position tables and
 * the input LayerNorm; per layer Q/K/V (separate with optional biases, or one fused `attn_qkv`),
 * the attention output and its post-norm, the FFN (up/down with optional biases for BERT; gate,
 * up and down for nomic-bert) and the layer's output norm. Declared through a TensorSource, so
 * loading, checking a file and counting bytes share these declarations; written here too for
 * random-weight models.
 */
import { CairnError } from '../../util/errors.js';
import type { Linear } from '../blocks/linear.js';
import { declareLayerNorm, synthesizeLayerNorm, type LayerNormWeights } from '../blocks/layer-norm.js';
import type { Matrix, TensorSource } from '../tensor-source.js';
import type { SyntheticModelSpec, SyntheticTensors } from '../synthetic-tensors.js';
import type { EncoderConfig, EncoderKind } from './config.js';

/** Query, key and value projections: one fused matrix (rows: queries, then keys, then values) or three. */
export type QkvWeights = { readonly fused: Linear } | { readonly q: Linear; readonly k: Linear; readonly v: Linear };

/** One encoder layer's weights. */
export interface EncoderLayerWeights {
  readonly qkv: QkvWeights;
  readonly out: Linear;
  readonly attnNorm: LayerNormWeights;
  readonly up: Linear;
  readonly down: Linear;
  /** nomic-bert's SwiGLU gate. */
  readonly gate?: Linear;
  readonly outNorm: LayerNormWeights;
}

/** A whole encoder's weights. */
export interface EncoderWeights {
  readonly tokens: Matrix;
  /** The token-type table, where the file has one (row 0 is added to every token). */
  readonly types?: Matrix;
  /** BERT's learned positions (ctxTrain rows). */
  readonly positions?: Matrix;
  readonly inputNorm: LayerNormWeights;
  readonly layers: readonly EncoderLayerWeights[];
}

function linear(src: TensorSource, name: string, rows: number, cols: number, bias: boolean): Linear {
  return { w: src.matrix(`${name}.weight`, rows, cols), bias: bias ? src.optionalVector(`${name}.bias`, rows) : undefined };
}

/** Declares every tensor of the model; `enter` is told each part before its tensors (for byte accounting). */
export function declareEncoder(cfg: EncoderConfig, src: TensorSource, enter: (part: number | 'embed') => void = () => {}): EncoderWeights {
  const D = cfg.nEmbd;
  const kvw = cfg.nKvHead * cfg.headDim;
  enter('embed');
  const tokens = src.embedding('token_embd.weight', cfg.nVocab, D);
  const types = src.has('token_types.weight') ? src.embedding('token_types.weight', cfg.tokenTypes, D) : undefined;
  const positions = cfg.kind.positions === 'absolute' ? src.embedding('position_embd.weight', cfg.ctxTrain, D) : undefined;
  const inputNorm = declareLayerNorm(src, 'token_embd_norm', D);
  const layers: EncoderLayerWeights[] = [];
  // nomic-bert's graph runs its FFN without biases (llama.cpp loads them where present, unused).
  const ffnBias = cfg.kind.ffn === 'gelu';
  for (let l = 0; l < cfg.nLayer; l++) {
    enter(l);
    const p = `blk.${l}.`;
    for (const extra of ['attn_q_norm', 'attn_k_norm', 'attn_norm_2']) {
      if (src.has(`${p}${extra}.weight`)) {
        throw new CairnError('MODEL_UNSUPPORTED', `${src.path}: tensor "${p}${extra}.weight" belongs to a BERT variant (jina-bert) that is not supported`);
      }
    }
    const qkv: QkvWeights = src.has(`${p}attn_qkv.weight`)
      ? { fused: linear(src, `${p}attn_qkv`, D + 2 * kvw, D, true) }
      : { q: linear(src, `${p}attn_q`, D, D, true), k: linear(src, `${p}attn_k`, kvw, D, true), v: linear(src, `${p}attn_v`, kvw, D, true) };
    const out = linear(src, `${p}attn_output`, D, D, true);
    const attnNorm = declareLayerNorm(src, `${p}attn_output_norm`, D);
    const up = linear(src, `${p}ffn_up`, cfg.nFf, D, ffnBias);
    const gate = cfg.kind.ffn === 'swiglu' ? linear(src, `${p}ffn_gate`, cfg.nFf, D, false) : undefined;
    const down = linear(src, `${p}ffn_down`, D, cfg.nFf, ffnBias);
    const outNorm = declareLayerNorm(src, `${p}layer_output_norm`, D);
    layers.push({ qkv, out, attnNorm, up, down, gate, outNorm });
  }
  return { tokens, types, positions, inputNorm, layers };
}

/**
 * Writes the tensors of a random-weight encoder: BERT's separate biased Q/K/V, nomic-bert's fused
 * unbiased QKV and gated FFN, as their converters write them. `spec.ctx` sizes BERT's position table.
 */
export function synthesizeEncoder(spec: SyntheticModelSpec, kind: EncoderKind, out: SyntheticTensors): void {
  const D = spec.nEmbd;
  const hd = spec.headDim ?? D / spec.nHead;
  const kvw = spec.nKvHead * hd;
  const std = 1 / Math.sqrt(D);
  out.matrix('token_embd.weight', spec.nVocab, D, 0.5);
  // Converters keep this small table in f32 (llama.cpp adds its row with an f32-only add).
  out.f32('token_types.weight', [D, 2], 0.5);
  if (kind.positions === 'absolute') out.matrix('position_embd.weight', spec.ctx ?? 512, D, 0.5);
  synthesizeLayerNorm(out, 'token_embd_norm', D);
  const gelu = kind.ffn === 'gelu';
  for (let l = 0; l < spec.nLayer; l++) {
    const p = `blk.${l}.`;
    if (gelu) {
      for (const [name, rows] of [['attn_q', D], ['attn_k', kvw], ['attn_v', kvw]] as const) {
        out.matrix(`${p}${name}.weight`, rows, D, std, l);
        out.f32(`${p}${name}.bias`, [rows], 0.05);
      }
    } else {
      out.matrix(`${p}attn_qkv.weight`, D + 2 * kvw, D, std, l);
    }
    out.matrix(`${p}attn_output.weight`, D, D, std, l);
    if (gelu) out.f32(`${p}attn_output.bias`, [D], 0.05);
    synthesizeLayerNorm(out, `${p}attn_output_norm`, D);
    out.matrix(`${p}ffn_up.weight`, spec.nFf, D, std, l);
    if (gelu) out.f32(`${p}ffn_up.bias`, [spec.nFf], 0.05);
    else out.matrix(`${p}ffn_gate.weight`, spec.nFf, D, std, l);
    out.matrix(`${p}ffn_down.weight`, D, spec.nFf, 1 / Math.sqrt(spec.nFf), l);
    if (gelu) out.f32(`${p}ffn_down.bias`, [D], 0.05);
    synthesizeLayerNorm(out, `${p}layer_output_norm`, D);
  }
}
