/**
 * POST /v1/completions: the legacy text-completion API. The prompt is text (tokenized with BOS and
 * special tokens, as llama.cpp's server does) or token ids (used as given).
 */
import { randomUUID } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { GenerationSummary } from '../../engine/engine.js';
import type { LoadedModel } from '../../engine/load.js';
import type { StepLogprobs } from '../../sampling/index.js';
import { CairnError } from '../../util/errors.js';
import { parseBody } from '../parse-body.js';
import { badRequest, toApiError } from '../errors.js';
import { samplerFromApi, startGeneration, stopList, tokenView, vocabularySize } from '../generation.js';
import type { ModelHost } from '../host.js';
import type { ServerMetrics } from '../metrics.js';
import { SseStream } from '../sse.js';
import { completionRequest, unknownFields, type CompletionRequest } from './schemas.js';

/** The prompt's token ids: text is tokenized by a prompt worker (after the byte check); ids are checked. */
async function promptIds(host: ModelHost, model: LoadedModel, p: CompletionRequest['prompt'], signal: AbortSignal): Promise<number[]> {
  if (typeof p === 'string') return host.prompts.text(p, signal);
  if (typeof p[0] === 'string') return host.prompts.text(p[0], signal);
  const ids = (Array.isArray(p[0]) ? p[0] : p) as number[];
  const ctx = model.engine.runner.ctxPerSlot;
  if (ids.length >= ctx) throw new CairnError('CONTEXT_FULL', `the prompt has ${ids.length} tokens but the context holds ${ctx}; shorten it or raise --ctx`);
  const n = vocabularySize(model);
  const bad = ids.find((id) => !(Number.isInteger(id) && id >= 0 && id < n));
  if (bad !== undefined) throw badRequest(`prompt token ${bad} is outside the vocabulary (0 to ${n - 1})`, 'prompt');
  return ids;
}

/** Legacy logprobs object for a run of steps, with text offsets from `offset0`. */
function legacyLogprobs(model: LoadedModel, steps: { lp: StepLogprobs; text: string }[], offset0: number): unknown {
  let offset = offset0;
  const out = { tokens: [] as string[], token_logprobs: [] as number[], top_logprobs: [] as Record<string, number>[], text_offset: [] as number[] };
  for (const { lp, text } of steps) {
    out.tokens.push(tokenView(model, lp.id).token);
    out.token_logprobs.push(lp.logprob);
    out.top_logprobs.push(Object.fromEntries(lp.top.map((t) => [tokenView(model, t.id).token, t.logprob])));
    out.text_offset.push(offset);
    offset += text.length;
  }
  return out;
}

function usage(s: GenerationSummary): Record<string, unknown> {
  return { prompt_tokens: s.promptTokens, completion_tokens: s.completionTokens, total_tokens: s.promptTokens + s.completionTokens };
}

/** Handles one text completion request. */
export async function completions(host: ModelHost, metrics: ServerMetrics, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const req = parseBody(completionRequest, request.body);
  host.ignored(unknownFields(request.body, 'completion'));
  const model = host.require(req.model);
  const abort = new AbortController();
  // The response closing before it was written means the client went away.
  reply.raw.on('close', () => {
    if (!reply.raw.writableEnded) abort.abort();
  });
  const sampler = samplerFromApi(req, model);
  const prompt = await promptIds(host, model, req.prompt, abort.signal);
  const echo = req.echo ? (typeof req.prompt === 'string' ? req.prompt : model.tokenizer.decode(prompt)) : '';
  const id = `cmpl-${randomUUID()}`;
  const created = Math.floor(Date.now() / 1000);
  const wantLogprobs = req.logprobs !== null && req.logprobs !== undefined;
  if (req.max_tokens === 0) {
    await reply.send({ id, object: 'text_completion', created, model: host.nameFor(req.model), choices: [{ text: echo, index: 0, logprobs: null, finish_reason: 'length' }], usage: { prompt_tokens: prompt.length, completion_tokens: 0, total_tokens: prompt.length } });
    return;
  }
  const events = startGeneration(
    model,
    {
      prompt,
      maxTokens: req.max_tokens ?? 16,
      sampler,
      stop: stopList(req.stop),
      logprobs: wantLogprobs ? req.logprobs! : undefined,
      ignoreEos: req.ignore_eos,
    },
    abort.signal,
  );
  metrics.requestStarted(reply.raw);

  if (!req.stream) {
    const steps: { lp: StepLogprobs; text: string }[] = [];
    let summary: GenerationSummary | undefined;
    for await (const ev of events) {
      if (ev.type === 'token' && ev.logprobs) steps.push({ lp: ev.logprobs, text: ev.text });
      if (ev.type === 'done') summary = ev.summary;
    }
    metrics.requestEnded(summary, reply.raw);
    if (!summary || summary.finishReason === 'error') throw toApiError(summary?.error ?? new Error('generation ended without a result'));
    await reply.send({
      id,
      object: 'text_completion',
      created,
      model: host.nameFor(req.model),
      system_fingerprint: 'cairn',
      choices: [{ text: echo + summary.text, index: 0, logprobs: wantLogprobs ? legacyLogprobs(model, steps, echo.length) : null, finish_reason: summary.finishReason === 'length' ? 'length' : 'stop' }],
      usage: usage(summary),
    });
    return;
  }

  reply.hijack();
  const sse = new SseStream(reply.raw, () => abort.abort());
  const chunk = (text: string, finish: string | null, logprobs: unknown = null) => ({
    id,
    object: 'text_completion',
    created,
    model: host.nameFor(req.model),
    system_fingerprint: 'cairn',
    choices: [{ text, index: 0, logprobs, finish_reason: finish }],
  });
  if (echo) sse.send(chunk(echo, null));
  let offset = echo.length;
  let summary: GenerationSummary | undefined;
  for await (const ev of events) {
    if (ev.type === 'done') {
      summary = ev.summary;
      break;
    }
    if (ev.text === '' && !(ev.type === 'token' && ev.logprobs)) continue;
    const lp = ev.type === 'token' && ev.logprobs ? legacyLogprobs(model, [{ lp: ev.logprobs, text: ev.text }], offset) : null;
    offset += ev.text.length;
    sse.send(chunk(ev.text, null, lp));
  }
  metrics.requestEnded(summary, reply.raw);
  if (!summary || summary.finishReason === 'error' || summary.finishReason === 'abort') {
    if (summary?.finishReason !== 'abort') sse.send(toApiError(summary?.error ?? new Error('generation ended without a result')).body());
    sse.end();
    return;
  }
  sse.send(chunk('', summary.finishReason === 'length' ? 'length' : 'stop'));
  if (req.stream_options?.include_usage) sse.send({ id, object: 'text_completion', created, model: host.nameFor(req.model), choices: [], usage: usage(summary) });
  sse.done();
}
