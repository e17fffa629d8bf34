/**
 * What a GGUF model is, at a glance: architecture, size, quantization mix, tokenizer, and how much
 * memory it needs for a given context. Used by `cairn inspect` and the load path.
 */
import { ggmlTypeName } from '../gguf/ggml-types.js';
import { Metadata } from '../gguf/metadata.js';
import type { GgufFile } from '../gguf/reader.js';
import { readModelConfig, type ModelConfig } from './config.js';
import { kvCacheBytes } from './kv-cache.js';
import type { KvType } from '../kernels/api.js';
import { GgmlType } from '../gguf/ggml-types.js';
import { surveyModel, type ModelBytes } from './model-bytes.js';
import { familyOf } from './registry.js';
import { wholeModel } from './shard.js';
import { encoderFamilyFor, isEncoderArchitecture, readEncoderFileConfig } from './encoders/registry.js';
import { encoderActivationBytes, encoderBytes } from './encoders/build.js';

/** A model's description and memory estimate. */
export interface ModelSummary {
  readonly path: string;
  readonly fileBytes: number;
  readonly ggufVersion: number;
  readonly architecture: string;
  readonly name?: string;
  /** Config, when the architecture is one cairn runs. */
  readonly config?: ModelConfig;
  /** The family's name and its one-line description of the shape, when cairn runs the model. */
  readonly family?: { readonly name: string; readonly shape: string };
  /** Bytes held and read per token, by part, when cairn runs the model. */
  readonly bytes?: ModelBytes;
  /** A Mixture-of-Experts model's experts (as its first expert layer has them) and where they are. */
  readonly experts?: ExpertSummary;
  readonly unsupportedReason?: string;
  /** Parameters of every tensor in the file (`bytes.parameters`: those the model uses). */
  readonly parameters: number;
  /** Bytes of every tensor in the file (`bytes.total`: those the model uses). */
  readonly tensorBytes: number;
  /** Tensor count and bytes per GGML type. */
  readonly quantization: { type: string; tensors: number; bytes: number; parameters: number }[];
  readonly contextLength?: number;
  readonly tokenizer: { model?: string; pre?: string; tokens: number; bos?: number; eos?: number; hasChatTemplate: boolean };
  readonly memory?: { ctx: number; kvType: string; weightsBytes: number; kvCacheBytes: number; activationBytes: number; totalBytes: number };
  readonly tensors: { name: string; type: string; dims: readonly number[]; bytes: number }[];
}

/** The experts of a Mixture-of-Experts model. */
export interface ExpertSummary {
  /** Routed experts per layer. */
  readonly routed: number;
  /** Routed experts a token uses. */
  readonly used: number;
  /** Shared experts every token uses. */
  readonly shared: number;
  /** Hidden width of one routed expert. */
  readonly width: number;
  /** Layers with experts (the others are dense). */
  readonly layers: number;
}

/** The experts of a model whose family plans Mixture-of-Experts layers; undefined for a dense model. */
export function expertSummary(cfg: ModelConfig): ExpertSummary | undefined {
  const f = familyOf(cfg);
  const moe = Array.from({ length: cfg.nLayer }, (_, l) => f.layerPlan(cfg, l).ffn).filter((p) => p.kind === 'moe');
  if (moe.length === 0) return undefined;
  const first = moe[0];
  return { routed: first.experts, used: first.used, shared: first.shared, width: first.width, layers: moe.length };
}

/** Describes a GGUF file; `ctx` (default: the trained context, capped at 4096) sizes the estimate. */
export function summarizeModel(file: GgufFile, opts: { ctx?: number; kvType?: KvType; batch?: number } = {}): ModelSummary {
  const m = new Metadata(file);
  const byType = new Map<number, { tensors: number; bytes: number; parameters: number }>();
  let parameters = 0;
  let tensorBytes = 0;
  for (const t of file.tensors) {
    parameters += t.elements;
    tensorBytes += t.byteLength;
    const e = byType.get(t.type) ?? { tensors: 0, bytes: 0, parameters: 0 };
    e.tensors++;
    e.bytes += t.byteLength;
    e.parameters += t.elements;
    byType.set(t.type, e);
  }
  let config: ModelConfig | undefined;
  let unsupportedReason: string | undefined;
  let memory: ModelSummary['memory'];
  let bytes: ModelBytes | undefined;
  let family: ModelSummary['family'];
  let experts: ExpertSummary | undefined;
  const kvType = opts.kvType ?? GgmlType.F16;
  const arch = m.string('general.architecture') ?? 'unknown';
  try {
    if (isEncoderArchitecture(arch)) {
      // An embedding model: no KV cache, its activations sized for the longest input.
      const cfg = readEncoderFileConfig(m);
      const ctx = opts.ctx ?? Math.min(cfg.ctxTrain, 4096);
      const weights = encoderBytes(file, cfg).bytes;
      const act = encoderActivationBytes(cfg, ctx);
      memory = { ctx, kvType: ggmlTypeName(kvType), weightsBytes: weights, kvCacheBytes: 0, activationBytes: act, totalBytes: weights + act };
      const f = encoderFamilyFor(arch);
      family = { name: `${f.name} (embeddings only)`, shape: f.describe(cfg) };
      config = cfg;
    } else {
      const cfg = readModelConfig(file);
      const survey = surveyModel(file, cfg, opts.batch ?? 512);
      const ctx = opts.ctx ?? Math.min(cfg.ctxTrain, 4096);
      const kv = kvCacheBytes(cfg, wholeModel(cfg), ctx, kvType);
      const act = survey.activationBytes;
      // The weights the model uses: a file may carry tensors it skips (multi-token-prediction blocks).
      const weights = survey.bytes.total;
      memory = { ctx, kvType: ggmlTypeName(kvType), weightsBytes: weights, kvCacheBytes: kv, activationBytes: act, totalBytes: weights + kv + act };
      const f = familyOf(cfg);
      family = { name: f.name, shape: f.describe(cfg) };
      bytes = survey.bytes;
      experts = expertSummary(cfg);
      config = cfg;
    }
  } catch (err) {
    unsupportedReason = (err as Error).message;
  }
  return {
    path: file.path,
    fileBytes: file.fileSize,
    ggufVersion: file.version,
    architecture: arch,
    name: m.string('general.name'),
    config,
    family,
    bytes,
    experts,
    unsupportedReason,
    parameters,
    tensorBytes,
    quantization: [...byType.entries()]
      .sort((a, b) => b[1].bytes - a[1].bytes)
      .map(([type, e]) => ({ type: ggmlTypeName(type), ...e })),
    contextLength: m.number(`${arch}.context_length`),
    tokenizer: {
      model: m.string('tokenizer.ggml.model'),
      pre: m.string('tokenizer.ggml.pre'),
      tokens: m.strings('tokenizer.ggml.tokens')?.length ?? 0,
      bos: m.number('tokenizer.ggml.bos_token_id'),
      eos: m.number('tokenizer.ggml.eos_token_id'),
      hasChatTemplate: m.has('tokenizer.chat_template'),
    },
    memory,
    tensors: file.tensors.map((t) => ({ name: t.name, type: ggmlTypeName(t.type), dims: t.dims, bytes: t.byteLength })),
  };
}
