/**
 * Speculative decoding as a load option: prompt lookup (the default, no extra model) or a draft
 * model, and the most draft tokens checked per step. The engine does the checking (engine.ts,
 * runner.ts); this file builds the source.
 */
import { basename } from 'node:path';
import type { GgufFile } from '../gguf/reader.js';
import { Metadata } from '../gguf/metadata.js';
import { CairnError } from '../util/errors.js';
import { DraftModel } from './draft-model.js';
import type { DraftSource } from './draft-source.js';
import { PromptLookup } from './prompt-lookup.js';
import type { ForwardRunner } from './runner.js';

/** Draft tokens a step checks per sequence when nothing else is asked. */
export const DEFAULT_MAX_DRAFT = 8;

/** How a model speculates. */
export interface SpeculationOptions {
  /** Most draft tokens a step checks per sequence (default 8); 0 turns speculative decoding off. */
  readonly maxDraft?: number;
  /** A draft model's GGUF file (same vocabulary); without one, drafts come from prompt lookup. */
  readonly draftModel?: string;
  /** A source given directly (tests, embedders of the engine); wins over draftModel. */
  readonly source?: DraftSource;
  /** Draft whatever steps cost (lengths follow acceptance alone): for tests that must see drafts. */
  readonly unpaced?: boolean;
}

/** What the loader of a draft model needs to know of the target model. */
export interface DraftTarget {
  readonly file: GgufFile;
  readonly nVocab: number;
  readonly slots: number;
  readonly ctx: number;
  readonly threads?: number;
  readonly backend?: 'native' | 'reference';
  readonly progress?: boolean;
}

/** Loads a draft model's shards in this process (load.ts gives its loader, which imports this file). */
export type DraftLoader = (
  path: string,
  opts: { slots: number; ctx: number; maxBatch: number; threads?: number; backend?: 'native' | 'reference'; progress?: boolean },
) => Promise<{ file: GgufFile; runner: ForwardRunner; close(): void }>;

/** Largest difference in vocabulary size tolerated between a model and its draft (padding rows). */
const MAX_VOCAB_DIFFERENCE = 128;

/** The engine's speculation (source and most draft tokens), or undefined when off; closes what it opened via `onClose`. */
export async function buildSpeculation(
  opts: SpeculationOptions | undefined,
  target: DraftTarget,
  load: DraftLoader,
  onClose: (close: () => void) => void,
): Promise<{ source: DraftSource; maxDraft: number; unpaced?: boolean } | undefined> {
  const maxDraft = opts?.maxDraft ?? DEFAULT_MAX_DRAFT;
  if (!(Number.isInteger(maxDraft) && maxDraft >= 0 && maxDraft <= 64)) {
    throw new CairnError('BAD_ARGUMENT', `--draft-max ${String(maxDraft)} must be a whole number from 0 (off) to 64`);
  }
  if (maxDraft === 0) return undefined;
  const unpaced = opts?.unpaced;
  if (opts?.source) return { source: opts.source, maxDraft, unpaced };
  if (!opts?.draftModel) return { source: new PromptLookup(), maxDraft, unpaced };
  const draft = await load(opts.draftModel, {
    slots: target.slots,
    ctx: target.ctx,
    // A draft pass reads the prompt once and then one token per guess: small batches are enough.
    maxBatch: Math.min(256, target.ctx),
    threads: target.threads,
    backend: target.backend,
    progress: target.progress,
  });
  try {
    checkSameVocabulary(target.file, draft.file);
  } catch (err) {
    draft.close();
    throw err;
  }
  onClose(() => draft.close());
  return { source: new DraftModel(`draft model ${basename(opts.draftModel)}`, draft.runner), maxDraft, unpaced };
}

/** Throws BAD_ARGUMENT unless the draft model's tokens are the model's (ids beyond the shorter list aside). */
export function checkSameVocabulary(model: GgufFile, draft: GgufFile): void {
  const a = new Metadata(model).strings('tokenizer.ggml.tokens') ?? [];
  const b = new Metadata(draft).strings('tokenizer.ggml.tokens') ?? [];
  const name = basename(draft.path);
  if (a.length === 0 || b.length === 0) throw new CairnError('BAD_ARGUMENT', `the draft model ${name} or the model has no vocabulary to compare`);
  if (Math.abs(a.length - b.length) > MAX_VOCAB_DIFFERENCE) {
    throw new CairnError('BAD_ARGUMENT', `the draft model ${name} has ${b.length} tokens and the model ${a.length}: give a draft model of the same family (same tokenizer)`);
  }
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) {
      throw new CairnError('BAD_ARGUMENT', `the draft model ${name} has another vocabulary (token ${i} is ${JSON.stringify(b[i])}, not ${JSON.stringify(a[i])}): give a draft model of the same family`);
    }
  }
}
