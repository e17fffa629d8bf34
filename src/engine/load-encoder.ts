/**
 * Loading an embedding model (a BERT-style encoder) for local use: the file mapped as a decoder's
 * is, the encoder built over it for inputs up to the context, and the same LoadedModel handle a
 * decoder gets, whose engine refuses to generate (the model has no text to give) and whose
 * embedder does the work. An encoder is small and reads each input whole, so it always runs whole
 * in this process: there are no slots, KV cache or cluster plans for it.
 */
import { Metadata } from '../gguf/metadata.js';
import { readGguf } from '../gguf/reader.js';
import { createKernels, residentBytes } from '../kernels/index.js';
import { encoderFamilyFor, readEncoderFileConfig } from '../model/encoders/registry.js';
import { loadEncoder } from '../model/encoders/build.js';
import { sequencePooling } from '../model/pooling.js';
import { summarizeModel, type ModelSummary } from '../model/summary.js';
import { tokenizerFromGguf } from '../tokenizer/index.js';
import { CairnError } from '../util/errors.js';
import { EncoderEmbedder } from './embed.js';
import { EMBEDDING_ONLY, EmbeddingOnlyRunner } from './embedding-only-runner.js';
import { Engine } from './engine.js';
import { mapAndBuild, type LoadedModel, type LoadOptions } from './load.js';

/**
 * Loads an encoder model. Its context (the longest input) is `opts.ctx`, by default the trained
 * one (at most 4096 positions, as for decoders); a model with learned positions has no more than
 * it was trained with.
 */
export async function loadEncoderModel(path: string, opts: LoadOptions = {}): Promise<LoadedModel> {
  const file = readGguf(path);
  const config = readEncoderFileConfig(new Metadata(file));
  const family = encoderFamilyFor(config.arch);
  const ctx = opts.ctx ?? Math.min(config.ctxTrain, 4096);
  if (!(Number.isInteger(ctx) && ctx >= 2)) throw new CairnError('BAD_ARGUMENT', `context size ${ctx} must be a whole number >= 2`);
  if (config.kind.positions === 'absolute' && ctx > config.ctxTrain) {
    throw new CairnError('BAD_ARGUMENT', `this ${family.name} model has ${config.ctxTrain} learned positions: a context of ${ctx} does not fit (use --ctx ${config.ctxTrain} or less)`);
  }
  const tokenizer = tokenizerFromGguf(file);
  const kernels = createKernels({ backend: opts.backend, threads: opts.threads });
  const { built, mapping, mappedBytes } = await mapAndBuild(path, opts, `loading ${path}`, (view) => [loadEncoder(file, config, view, kernels, ctx)]);
  const encoder = built[0].encoder;
  const engine = new Engine(new EmbeddingOnlyRunner(config.nVocab, ctx, Math.min(opts.maxBatch ?? 512, ctx)), tokenizer, { refuseGeneration: EMBEDDING_ONLY });
  let summary: ModelSummary | undefined;
  return {
    file,
    config,
    tokenizer,
    kernels,
    shards: [],
    engine,
    embedder: new EncoderEmbedder(encoder, sequencePooling(config.pooling)),
    embeddingOnly: true,
    mappedBytes,
    kvBytes: 0,
    packedBytes: 0,
    residentBytes,
    summary: () => (summary ??= summarizeModel(file, { ctx })),
    // Encoders run on the CPU; `auto` says so.
    placement: { backend: 'cpu', note: opts.compute === 'auto' ? 'computing on the CPU: encoder models do not run on the GPU yet' : undefined },
    close: () => mapping.close(),
  };
}
