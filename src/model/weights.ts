/**
 * The weights of one shard, as views of the mapped GGUF file in their stored type (never
 * dequantized copies of matrices; small vectors such as norm weights and biases become f32).
 */
import { CairnError } from '../util/errors.js';
import { GgmlType, ggmlTypeInfo, ggmlTypeName } from '../gguf/ggml-types.js';
import type { GgufFile, GgufTensorInfo } from '../gguf/reader.js';
import type { Kernels } from '../kernels/api.js';
import type { ModelConfig } from './config.js';
import { isFirstShard, isLastShard, type ShardSpec } from './shard.js';

/** A weight matrix of `rows` x `cols` in its file type. */
export interface Matrix {
  readonly name: string;
  readonly type: GgmlType;
  readonly rows: number;
  readonly cols: number;
  readonly data: Uint8Array;
}

/** The weights of one transformer block. */
export interface LayerWeights {
  readonly attnNorm: Float32Array;
  readonly wq: Matrix;
  readonly wk: Matrix;
  readonly wv: Matrix;
  readonly wo: Matrix;
  readonly bq?: Float32Array;
  readonly bk?: Float32Array;
  readonly bv?: Float32Array;
  readonly bo?: Float32Array;
  /** Per-head RMSNorm weights of queries and keys (Qwen3). */
  readonly qNorm?: Float32Array;
  readonly kNorm?: Float32Array;
  readonly ffnNorm: Float32Array;
  readonly wGate: Matrix;
  readonly wUp: Matrix;
  readonly wDown: Matrix;
}

/** All weights one shard needs. */
export interface ShardWeights {
  /** Token embeddings (first shard only). */
  readonly embed?: Matrix;
  readonly layers: readonly LayerWeights[];
  /** Final norm and output head (last shard only); the head may be the tied embedding matrix. */
  readonly outputNorm?: Float32Array;
  readonly output?: Matrix;
  /** Llama 3 rope frequency factors (`rope_freqs.weight`), when the file has them. */
  readonly ropeFreqs?: Float32Array;
  /** Bytes of file data the shard references. */
  readonly bytes: number;
}

/** Returns the bytes of a tensor in the file (a mapped view, not a copy). */
export type TensorBytes = (t: GgufTensorInfo) => Uint8Array;

/** Collects a shard's weights from a GGUF file, checking every shape against the config. */
export function loadShardWeights(
  file: GgufFile,
  cfg: ModelConfig,
  shard: ShardSpec,
  bytesOf: TensorBytes,
  kernels: Kernels,
): ShardWeights {
  const byName = new Map(file.tensors.map((t) => [t.name, t]));
  let total = 0;

  const find = (name: string, required: boolean): GgufTensorInfo | undefined => {
    const t = byName.get(name);
    if (!t && required) throw new CairnError('GGUF_MALFORMED', `${file.path}: tensor "${name}" is missing`);
    return t;
  };
  const matrix = (name: string, rows: number, cols: number, required = true): Matrix | undefined => {
    const t = find(name, required);
    if (!t) return undefined;
    if (t.dims.length > 2 && t.dims.slice(2).some((d) => d !== 1)) {
      throw new CairnError('GGUF_MALFORMED', `${file.path}: tensor "${name}" has dims [${t.dims.join(', ')}], expected [${cols}, ${rows}]`);
    }
    if (t.dims[0] !== cols || (t.dims[1] ?? 1) !== rows) {
      throw new CairnError('GGUF_MALFORMED', `${file.path}: tensor "${name}" has dims [${t.dims.join(', ')}], expected [${cols}, ${rows}]`);
    }
    if (!ggmlTypeInfo(t.type)?.supported) {
      throw new CairnError('MODEL_UNSUPPORTED', `${file.path}: tensor "${name}" has type ${ggmlTypeName(t.type)}, which cairn cannot compute with yet`);
    }
    total += t.byteLength;
    return { name, type: t.type, rows, cols, data: bytesOf(t) };
  };
  const vector = (name: string, len: number, required = true): Float32Array | undefined => {
    const t = find(name, required);
    if (!t) return undefined;
    if (t.elements !== len) throw new CairnError('GGUF_MALFORMED', `${file.path}: tensor "${name}" has ${t.elements} elements, expected ${len}`);
    total += t.byteLength;
    const data = bytesOf(t);
    if (t.type === GgmlType.F32) return new Float32Array(data.buffer, data.byteOffset, len);
    if (!ggmlTypeInfo(t.type)?.supported) {
      throw new CairnError('MODEL_UNSUPPORTED', `${file.path}: tensor "${name}" has type ${ggmlTypeName(t.type)}`);
    }
    const out = new Float32Array(len);
    kernels.dequantize(t.type, data, out, len);
    return out;
  };

  const { nEmbd, nHead, nKvHead, headDim, nFf, nVocab } = cfg;
  const qDim = nHead * headDim;
  const kvDim = nKvHead * headDim;
  const layers: LayerWeights[] = [];
  for (let l = shard.layerStart; l < shard.layerEnd; l++) {
    const p = `blk.${l}.`;
    layers.push({
      attnNorm: vector(p + 'attn_norm.weight', nEmbd)!,
      wq: matrix(p + 'attn_q.weight', qDim, nEmbd)!,
      wk: matrix(p + 'attn_k.weight', kvDim, nEmbd)!,
      wv: matrix(p + 'attn_v.weight', kvDim, nEmbd)!,
      wo: matrix(p + 'attn_output.weight', nEmbd, qDim)!,
      bq: vector(p + 'attn_q.bias', qDim, cfg.arch === 'qwen2'),
      bk: vector(p + 'attn_k.bias', kvDim, cfg.arch === 'qwen2'),
      bv: vector(p + 'attn_v.bias', kvDim, cfg.arch === 'qwen2'),
      bo: vector(p + 'attn_output.bias', nEmbd, false),
      qNorm: vector(p + 'attn_q_norm.weight', headDim, cfg.arch === 'qwen3'),
      kNorm: vector(p + 'attn_k_norm.weight', headDim, cfg.arch === 'qwen3'),
      ffnNorm: vector(p + 'ffn_norm.weight', nEmbd)!,
      wGate: matrix(p + 'ffn_gate.weight', nFf, nEmbd)!,
      wUp: matrix(p + 'ffn_up.weight', nFf, nEmbd)!,
      wDown: matrix(p + 'ffn_down.weight', nEmbd, nFf)!,
    });
  }

  const first = isFirstShard(shard);
  const last = isLastShard(shard, cfg);
  const embed = first || (last && !byName.has('output.weight')) ? matrix('token_embd.weight', nVocab, nEmbd) : undefined;
  const output = last ? (matrix('output.weight', nVocab, nEmbd, false) ?? embed) : undefined;
  const ropeFreqs = vector('rope_freqs.weight', cfg.rope.nRot / 2, false);
  return {
    embed: first ? embed : undefined,
    layers,
    outputNorm: last ? vector('output_norm.weight', nEmbd) : undefined,
    output,
    ropeFreqs,
    bytes: total,
  };
}

/** The file-backed byte views of a shard's matrices (for prefetching pages). */
export function matrixViews(w: ShardWeights): Uint8Array[] {
  const out: Uint8Array[] = [];
  if (w.embed) out.push(w.embed.data);
  for (const l of w.layers) out.push(l.wq.data, l.wk.data, l.wv.data, l.wo.data, l.wGate.data, l.wUp.data, l.wDown.data);
  if (w.output && w.output !== w.embed) out.push(w.output.data);
  return out;
}
