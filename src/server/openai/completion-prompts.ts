/**
 * The prompts of a text completion request as token ids: a text or a list of texts (tokenized with
 * BOS and special tokens, as llama.cpp's server does), token ids or a list of them (used as given,
 * checked), and with `suffix` a fill-in-the-middle prompt in the model's own FIM tokens.
 */
import type { LoadedModel } from '../../engine/load.js';
import { CairnError } from '../../util/errors.js';
import { badRequest } from '../errors.js';
import { vocabularySize } from '../generation.js';
import type { ModelHost } from '../host.js';
import type { CompletionRequest } from './schemas.js';

/** One prompt: its ids and the text an echo repeats. */
export interface CompletionPrompt {
  readonly ids: number[];
  readonly text: string;
}

/** `ids` checked against the context and the vocabulary (a 400 naming `param`); `at` names them in messages. */
export function checkIds(model: LoadedModel, ids: readonly number[], at: string, param = 'prompt'): number[] {
  const ctx = model.engine.runner.ctxPerSlot;
  if (ids.length >= ctx) throw new CairnError('CONTEXT_FULL', `${at} has ${ids.length} tokens but the context holds ${ctx}; shorten it or raise --ctx`);
  const n = vocabularySize(model);
  const bad = ids.find((id) => !(Number.isInteger(id) && id >= 0 && id < n));
  if (bad !== undefined) throw badRequest(`${at}: token ${bad} is outside the vocabulary (0 to ${n - 1})`, param);
  return [...ids];
}

/** The request's prompts, in order (one choice per prompt and `n`). */
export async function completionPrompts(host: ModelHost, model: LoadedModel, req: CompletionRequest, signal: AbortSignal): Promise<CompletionPrompt[]> {
  const p = req.prompt;
  if (req.suffix !== undefined && req.suffix !== null) {
    if (typeof p !== 'string' && !(Array.isArray(p) && p.every((x) => typeof x === 'string'))) {
      throw badRequest('suffix needs the prompt as text (the code before the gap), not token ids', 'suffix');
    }
    const texts = typeof p === 'string' ? [p] : (p as string[]);
    return Promise.all(texts.map(async (prefix) => ({ ids: await fillInTheMiddle(host, model, prefix, req.suffix!, signal), text: prefix })));
  }
  if (typeof p === 'string') return [{ ids: await host.prompts.text(p, signal), text: p }];
  if (p.length === 0) throw badRequest('prompt is an empty list', 'prompt');
  if (typeof p[0] === 'string') return Promise.all((p as string[]).map(async (text) => ({ ids: await host.prompts.text(text, signal), text })));
  if (Array.isArray(p[0])) {
    return (p as number[][]).map((ids, i) => {
      const checked = checkIds(model, ids, `prompt ${i}`);
      return { ids: checked, text: model.tokenizer.decode(checked) };
    });
  }
  const ids = checkIds(model, p as number[], 'the prompt');
  return [{ ids, text: model.tokenizer.decode(ids) }];
}

/**
 * A fill-in-the-middle prompt as llama.cpp's server builds it (prefix-suffix-middle order):
 * [BOS] FIM_PRE prefix FIM_SUF suffix FIM_MID; the model writes the middle and ends it with an
 * end-of-generation token (FIM pad, repo and file separators count as one).
 */
export async function fillInTheMiddle(host: ModelHost, model: LoadedModel, prefix: string, suffix: string, signal: AbortSignal): Promise<number[]> {
  const special = model.tokenizer.vocab.special;
  const { fimPre, fimSuf, fimMid } = special;
  if (fimPre === undefined || fimSuf === undefined || fimMid === undefined) {
    throw badRequest("this model has no fill-in-the-middle tokens, so it cannot complete between a prompt and a suffix; send the prompt without 'suffix', or use a code model trained for infilling", 'suffix');
  }
  const [pre, suf] = await Promise.all([host.prompts.text(prefix, signal, { plain: true }), host.prompts.text(suffix, signal, { plain: true })]);
  const bos = model.tokenizer.addBos && special.bos !== undefined ? [special.bos] : [];
  return checkIds(model, [...bos, fimPre, ...pre, fimSuf, ...suf, fimMid], 'the prompt with its suffix');
}
