/**
 * POST /v1/completions: the legacy text-completion API in full. Prompts: text, token ids, or a list
 * of either (one choice each); `suffix` for fill-in-the-middle; `n` choices per prompt sharing the
 * prompt's KV; `echo` repeats the prompt, and with `logprobs` scores its tokens too (with
 * `max_tokens: 0`, only that: how evaluation harnesses score continuations); `response_format` (or
 * llama-server's `json_schema`) constrains each choice as on the chat route. `best_of` > `n` is
 * refused: it would rank candidates the answer never shows; so is a GBNF `grammar`.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { GenerationSummary } from '../../engine/engine.js';
import type { LoadedModel } from '../../engine/load.js';
import type { StepLogprobs } from '../../sampling/index.js';
import { parseBody } from '../parse-body.js';
import { badRequest, toApiError } from '../errors.js';
import { samplerFromApi, stopList, tokenView, type ServerGeneration } from '../generation.js';
import { constraintsForChoices } from '../response-format.js';
import type { ModelHost } from '../host.js';
import type { ServerMetrics } from '../metrics.js';
import { checkChoiceCount, combinedSummary, generateChoices, promptTokensOnce, streamChoices } from '../parallel-choices.js';
import { SseStream } from '../sse.js';
import { completionPrompts, type CompletionPrompt } from './completion-prompts.js';
import { completionRequest, requestedFormat, unknownFields, unsupportedField, type CompletionRequest } from './schemas.js';

/** A legacy logprobs object, built token by token with text offsets into the choice's text. */
class LegacyLogprobs {
  readonly tokens: string[] = [];
  readonly token_logprobs: (number | null)[] = [];
  readonly top_logprobs: (Record<string, number> | null)[] = [];
  readonly text_offset: number[] = [];

  constructor(private readonly model: LoadedModel) {}

  /** A token with its logprob (null: the prompt's first token, which nothing predicts). */
  add(id: number, lp: StepLogprobs | undefined, offset: number): void {
    this.tokens.push(tokenView(this.model, id).token);
    this.token_logprobs.push(lp ? lp.logprob : null);
    this.top_logprobs.push(lp ? Object.fromEntries(lp.top.map((t) => [tokenView(this.model, t.id).token, t.logprob])) : null);
    this.text_offset.push(offset);
  }

  /** The prompt's tokens, their offsets following the prompt's decoded text. */
  addPrompt(ids: readonly number[], lps: readonly StepLogprobs[]): void {
    const decoder = this.model.tokenizer.streamDecoder({ sequenceStart: true });
    let offset = 0;
    ids.forEach((id, i) => {
      this.add(id, i === 0 ? undefined : lps[i - 1], offset);
      offset += decoder.push(id).length;
    });
  }

  get empty(): boolean {
    return this.tokens.length === 0;
  }

  toJSON(): unknown {
    return { tokens: this.tokens, token_logprobs: this.token_logprobs, top_logprobs: this.top_logprobs, text_offset: this.text_offset };
  }
}

/** The state of one choice as its events come. */
interface Choice {
  readonly prompt: CompletionPrompt;
  text: string;
  readonly logprobs?: LegacyLogprobs;
  summary?: GenerationSummary;
}

function refuseUnsupported(req: CompletionRequest): void {
  const n = req.n ?? 1;
  if (req.best_of !== undefined && req.best_of !== null && req.best_of !== n) {
    throw badRequest(
      req.best_of < n
        ? `best_of (${req.best_of}) must be at least n (${n})`
        : `best_of > n is not supported: it ranks candidates server-side by logprob and returns only the best; ask for n = ${req.best_of} choices with logprobs and pick yourself`,
      'best_of',
    );
  }
  if (req.suffix !== undefined && req.suffix !== null && req.echo) throw badRequest('echo cannot be combined with suffix', 'echo');
}

function usage(choices: readonly Choice[], prompts: readonly CompletionPrompt[]): Record<string, number> {
  const prompt = prompts.reduce((a, p) => a + p.ids.length, 0);
  const completion = choices.reduce((a, c) => a + (c.summary?.completionTokens ?? 0), 0);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

const finishReason = (s: GenerationSummary): 'stop' | 'length' => (s.finishReason === 'length' ? 'length' : 'stop');

/** Handles one text completion request. */
export async function completions(host: ModelHost, metrics: ServerMetrics, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const refused = unsupportedField(request.body);
  if (refused) throw badRequest(refused.message, refused.param);
  const req = parseBody(completionRequest, request.body);
  host.ignored(unknownFields(request.body, 'completion'));
  refuseUnsupported(req);
  const format = requestedFormat(req);
  const model = host.require(req.model);
  const abort = new AbortController();
  // The response closing before it was written means the client went away.
  reply.raw.on('close', () => {
    if (!reply.raw.writableEnded) abort.abort();
  });
  const sampler = samplerFromApi(req, model);
  const n = req.n ?? 1;
  const prompts = await completionPrompts(host, model, req, abort.signal);
  checkChoiceCount(model, prompts.length * n, 'n', `${prompts.length} prompts x n = ${n} asks for ${prompts.length * n} choices, which`);
  const wantLogprobs = req.logprobs !== null && req.logprobs !== undefined;
  const scorePrompt = req.echo === true && wantLogprobs;
  const maxTokens = req.max_tokens ?? 16;
  const choices: Choice[] = prompts.flatMap((prompt) => Array.from({ length: n }, () => ({ prompt, text: '', logprobs: wantLogprobs ? new LegacyLogprobs(model) : undefined })));
  const id = `cmpl-${randomUUID()}`;
  const created = Math.floor(Date.now() / 1000);
  const name = host.nameFor(req.model);
  const echoOf = (c: Choice) => (req.echo ? c.prompt.text : '');

  // Echo alone, with nothing to generate or score, needs no forward pass.
  if (maxTokens === 0 && !scorePrompt) {
    const out = choices.map((c, index) => ({ text: echoOf(c), index, logprobs: null, finish_reason: 'length' }));
    if (!req.stream) {
      await reply.send({ id, object: 'text_completion', created, model: name, system_fingerprint: 'cairn', choices: out, usage: usage(choices, prompts) });
      return;
    }
    reply.hijack();
    const sse = new SseStream(reply.raw, () => abort.abort());
    for (const o of out) sse.send({ id, object: 'text_completion', created, model: name, system_fingerprint: 'cairn', choices: [o] });
    if (req.stream_options?.include_usage) sse.send({ id, object: 'text_completion', created, model: name, choices: [], usage: usage(choices, prompts) });
    sse.done();
    return;
  }
  const constraints = await constraintsForChoices(model, format, choices.length, req.json_schema ? 'json_schema' : undefined);
  const plans = prompts.map((prompt, p) => {
    const gen: ServerGeneration = {
      prompt: prompt.ids,
      maxTokens,
      sampler,
      stop: stopList(req.stop),
      logprobs: wantLogprobs ? req.logprobs! : undefined,
      promptLogprobs: scorePrompt ? req.logprobs! : undefined,
      ignoreEos: req.ignore_eos,
      maxDraft: req['speculative.n_max'],
      constraint: constraints[p * n],
    };
    return { gen, n, choice: (i: number) => ({ ...gen, constraint: constraints[p * n + i] }) };
  });
  const events = generateChoices(model, plans, abort.signal);
  metrics.requestStarted(reply.raw);

  if (!req.stream) {
    try {
      for await (const { index, event } of events) {
        const c = choices[index];
        if (event.type === 'prompt') c.logprobs?.addPrompt(c.prompt.ids, event.logprobs);
        else if (event.type === 'token') c.logprobs?.add(event.id, event.logprobs, echoOf(c).length + c.text.length);
        if (event.type === 'done') c.summary = event.summary;
        else c.text += event.text;
      }
    } finally {
      // Ended however it ends (a later choice refused by a full queue throws): no longer in flight.
      const ended = choices.map((c) => c.summary);
      metrics.requestEnded(combinedSummary(ended), reply.raw, promptTokensOnce(ended, n));
    }
    const failed = choices.find((c) => !c.summary || c.summary.finishReason === 'error');
    if (failed) throw toApiError(failed.summary?.error ?? new Error('generation ended without a result'), 'prompt');
    await reply.send({
      id,
      object: 'text_completion',
      created,
      model: name,
      system_fingerprint: 'cairn',
      choices: choices.map((c, index) => ({ text: echoOf(c) + c.summary!.text, index, logprobs: c.logprobs ?? null, finish_reason: finishReason(c.summary!) })),
      usage: usage(choices, prompts),
    });
    return;
  }

  reply.hijack();
  const sse = new SseStream(reply.raw, () => abort.abort());
  const chunk = (index: number, text: string, finish: string | null, logprobs: unknown = null) => ({
    id,
    object: 'text_completion',
    created,
    model: name,
    system_fingerprint: 'cairn',
    choices: [{ text, index, logprobs, finish_reason: finish }],
  });
  // Without prompt scores the echo goes first; with them it goes with them, once the prompt is read.
  if (!scorePrompt) choices.forEach((c, index) => req.echo && sse.send(chunk(index, echoOf(c), null)));
  const { summaries, error } = await streamChoices(
    events,
    choices.length,
    (index, event) => {
      const c = choices[index];
      if (event.type === 'prompt') {
        const lp = new LegacyLogprobs(model);
        lp.addPrompt(c.prompt.ids, event.logprobs);
        sse.send(chunk(index, echoOf(c), null, lp));
        return;
      }
      const offset = echoOf(c).length + c.text.length;
      c.text += event.text;
      if (event.type === 'token' && event.logprobs) {
        const lp = new LegacyLogprobs(model);
        lp.add(event.id, event.logprobs, offset);
        sse.send(chunk(index, event.text, null, lp));
      } else if (event.text !== '') sse.send(chunk(index, event.text, null));
    },
    (index, summary) => sse.send(chunk(index, '', finishReason(summary))),
  );
  summaries.forEach((s, i) => (choices[i].summary = s));
  metrics.requestEnded(combinedSummary(summaries), reply.raw, promptTokensOnce(summaries, n));
  if (error || summaries.some((s) => !s)) {
    if (!abort.signal.aborted) sse.send(toApiError(error ?? new Error('generation ended without a result'), 'prompt').body());
    sse.end();
    return;
  }
  if (req.stream_options?.include_usage) sse.send({ id, object: 'text_completion', created, model: name, choices: [], usage: usage(choices, prompts) });
  sse.done();
}
