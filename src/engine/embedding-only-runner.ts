/**
 * The runner behind an embedding model's engine (a BERT-style encoder): it has nothing to generate
 * with, so every step refuses. The engine built over it is told the model only makes embeddings
 * and refuses generations before they reach it; this runner only gives the engine and the server
 * its sizes (vocabulary, context for prompt bounds).
 */
import { CairnError } from '../util/errors.js';
import type { ForwardResult, ForwardRunner } from './runner.js';

/** What a generation request on an embedding model is told. */
export const EMBEDDING_ONLY = 'this model only makes embeddings (it is an encoder, with no text to generate)';

function refuse(): Promise<never> {
  return Promise.reject(new CairnError('BAD_ARGUMENT', EMBEDDING_ONLY));
}

/** A runner of an embedding model: sizes only. */
export class EmbeddingOnlyRunner implements ForwardRunner {
  readonly slots = 1;
  readonly pipelineDepth = 1;
  readonly epoch = 0;

  constructor(
    readonly nVocab: number,
    readonly ctxPerSlot: number,
    readonly maxBatch: number,
  ) {}

  startSequence(): Promise<void> {
    return refuse();
  }
  endSequence(): Promise<void> {
    return Promise.resolve();
  }
  forward(): Promise<ForwardResult> {
    return refuse();
  }
  copySlotPrefix(): Promise<void> {
    return refuse();
  }
  saveSlot(): Promise<number> {
    return refuse();
  }
  loadSlot(): Promise<void> {
    return refuse();
  }
  dropSaved(): Promise<void> {
    return Promise.resolve();
  }
  exportSaved(): Promise<Uint8Array> {
    return refuse();
  }
  importSaved(): Promise<number> {
    return refuse();
  }
}
