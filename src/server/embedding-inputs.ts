/**
 * What the embedding routes (OpenAI's /v1/embeddings, Ollama's /api/embed and /api/embeddings)
 * share: texts tokenized off the event loop (with the model's special tokens, as llama.cpp's
 * server adds them) and cut to the context where the route truncates, bounds on a request's size,
 * and the embedder run with its errors as 400s naming the input.
 */
import type { LoadedModel } from '../engine/load.js';
import type { Tokenizer } from '../tokenizer/index.js';
import { CairnError, isCairnError } from '../util/errors.js';
import { ApiError, badRequest } from './errors.js';
import type { ModelHost } from './host.js';
import { checkPromptBytes } from './prompt-bounds.js';

/** Inputs one request may hold (OpenAI's limit). */
export const MAX_INPUTS = 2048;
/** Tokens one request may hold over all its inputs (OpenAI's limit). */
export const MAX_TOTAL_TOKENS = 300_000;
/** Embedding requests of one model that may wait for their turn before more are refused (429). */
const MAX_WAITING = 32;
/** Texts tokenized at once (the prompt workers' queue is shared with every other route). */
const TOKENIZE_AT_ONCE = 8;

/** Throws a 400 unless there are 1 to MAX_INPUTS inputs. */
export function checkInputCount(n: number, param: string | null): void {
  if (n === 0) throw badRequest('The input is empty: give a string, an array of strings, or token ids.', param);
  if (n > MAX_INPUTS) throw badRequest(`The input has ${n} items; at most ${MAX_INPUTS} are allowed in one request.`, param);
}

/**
 * Ids cut to `max` tokens, keeping the special tokens the tokenizer puts first (BOS, BERT's CLS)
 * and last (EOS, BERT's SEP): the text is cut, as Ollama cuts it, not its frame.
 */
export function truncateIds(ids: readonly number[], max: number, tk: Tokenizer): number[] {
  if (ids.length <= max) return [...ids];
  const last = ids[ids.length - 1];
  const closes = (tk.addEos && last === tk.eosId) || (tk.vocab.flags.addSep && last === tk.sepId);
  return closes && max >= 2 ? [...ids.slice(0, max - 1), last] : ids.slice(0, max);
}

/**
 * Token ids of each text, with the model's special tokens. With `truncate`, a text longer than the
 * model's context is cut to it; otherwise it is refused (400) naming its index. The total over
 * all inputs is bounded by MAX_TOTAL_TOKENS.
 */
export async function tokenizeTexts(
  host: ModelHost,
  model: LoadedModel,
  texts: readonly string[],
  opts: { readonly truncate: boolean; readonly signal: AbortSignal; readonly param: string | null },
): Promise<number[][]> {
  const max = model.embedder.maxTokens;
  const prompts = host.prompts;
  const out: number[][] = [];
  // The cheap byte bound first: a text that cannot fit is refused before anything is tokenized.
  if (!opts.truncate) texts.forEach((text, i) => inputError(() => checkPromptBytes(text, prompts.byteLimit, max), i, opts.param));
  let total = 0;
  for (let i = 0; i < texts.length; i += TOKENIZE_AT_ONCE) {
    const batch = texts.slice(i, i + TOKENIZE_AT_ONCE);
    const lists = await Promise.all(batch.map((text) => prompts.text(text, opts.signal, { uncapped: true })));
    for (const [j, ids] of lists.entries()) {
      const kept = opts.truncate ? truncateIds(ids, max, model.tokenizer) : ids;
      if (kept.length > max) {
        throw new ApiError(400, `Input ${i + j} has ${ids.length} tokens, more than the ${max} of this model's context; shorten it (or raise --ctx).`, 'invalid_request_error', opts.param, 'context_length_exceeded');
      }
      total += kept.length;
      checkTotal(total, opts.param);
      out.push(kept);
    }
  }
  return out;
}

/** Throws a 400 when a request's inputs hold more than MAX_TOTAL_TOKENS tokens. */
export function checkTotal(total: number, param: string | null): void {
  if (total > MAX_TOTAL_TOKENS) throw badRequest(`The inputs hold more than ${MAX_TOTAL_TOKENS} tokens in all; send them in several requests.`, param);
}

/** Runs `f`, turning a CONTEXT_FULL (a text too long) into a 400 naming input `i`. */
function inputError(f: () => void, i: number, param: string | null): void {
  try {
    f();
  } catch (err) {
    if (isCairnError(err, 'CONTEXT_FULL')) throw new ApiError(400, `Input ${i}: ${err.message}`, 'invalid_request_error', param, 'context_length_exceeded');
    throw err;
  }
}

const waiting = new WeakMap<LoadedModel, number>();

/**
 * One vector per token list (normalized unless told not to). The embedder's refusals (an empty
 * input, an id outside the vocabulary, a list too long, a model that cannot make embeddings here)
 * are 400s; more than MAX_WAITING requests waiting on one model, 429.
 */
export async function embedLists(
  model: LoadedModel,
  lists: readonly (readonly number[])[],
  opts: { readonly normalize: boolean; readonly signal: AbortSignal; readonly param: string | null },
): Promise<Float32Array[]> {
  const e = model.embedder;
  if (e.unavailable) throw badRequest(`This model cannot make embeddings here: ${e.unavailable}.`, opts.param);
  const n = waiting.get(model) ?? 0;
  if (n >= MAX_WAITING) throw new ApiError(429, 'The server is busy: too many embedding requests are waiting. Retry shortly.', 'rate_limit_error', null, 'queue_full');
  waiting.set(model, n + 1);
  try {
    return await e.embed(lists, { normalize: opts.normalize, signal: opts.signal });
  } catch (err) {
    if (err instanceof CairnError && (err.code === 'BAD_ARGUMENT' || err.code === 'CONTEXT_FULL')) {
      throw new ApiError(400, `${err.message.charAt(0).toUpperCase()}${err.message.slice(1)}.`, 'invalid_request_error', opts.param, err.code === 'CONTEXT_FULL' ? 'context_length_exceeded' : 'invalid_value');
    }
    throw err;
  } finally {
    waiting.set(model, (waiting.get(model) ?? 1) - 1);
  }
}

/** A request's abort signal: it fires when the client goes away before the answer is written. */
export function clientSignal(raw: { on(event: 'close', f: () => void): unknown; writableEnded: boolean }): AbortSignal {
  const abort = new AbortController();
  raw.on('close', () => {
    if (!raw.writableEnded) abort.abort();
  });
  return abort.signal;
}
