/**
 * POST /v1/chat/completions: render the conversation with the model's chat template, generate,
 * and answer as OpenAI does, streaming (SSE chunks) or not. With tools, the reply is parsed for
 * tool calls in the template's format; with response_format, decoding is constrained to JSON.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ChatMessage } from '../../engine/chat.js';
import type { LoadedModel } from '../../engine/load.js';
import type { GenerationSummary } from '../../engine/engine.js';
import type { ToolDefinition } from '../../tokenizer/chat/index.js';
import { parseBody } from '../parse-body.js';
import { badRequest, toApiError } from '../errors.js';
import { chatLogprob, samplerFromApi, stopList, type ServerGeneration } from '../generation.js';
import { checkChoiceCount, combinedSummary, generateChoices, promptTokensOnce, streamChoices } from '../parallel-choices.js';
import type { ModelHost } from '../host.js';
import type { ServerMetrics } from '../metrics.js';
import { SseStream } from '../sse.js';
import { ProseGate } from '../prose-gate.js';
import { newCallId, replyToolCalls, toolCallFormat } from '../tool-calls.js';
import { checkSchemaSize, constraintsForChoices } from '../response-format.js';
import { chatCompletionRequest, requestedFormat, unknownFields, unsupportedField, type ChatCompletionRequest } from './schemas.js';

type FinishReason = 'stop' | 'length' | 'tool_calls';

function finishReason(s: GenerationSummary): FinishReason {
  return s.finishReason === 'length' ? 'length' : 'stop';
}

/** Usage of all the choices: the prompt once (as OpenAI counts it), every choice's completion. */
function usage(summaries: readonly GenerationSummary[]): Record<string, unknown> {
  const prompt = summaries[0].promptTokens;
  const completion = summaries.reduce((a, s) => a + s.completionTokens, 0);
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    prompt_tokens_details: { cached_tokens: summaries[0].cachedTokens },
  };
}

function messagesFor(req: ChatCompletionRequest): ChatMessage[] {
  return req.messages.map((m) => ({
    role: m.role === 'developer' ? 'system' : m.role,
    content: m.content,
    name: m.name ?? undefined,
    tool_calls: m.tool_calls?.map((c) => ({ id: c.id, type: 'function' as const, function: c.function })),
    tool_call_id: m.tool_call_id ?? undefined,
    reasoning_content: m.reasoning_content ?? undefined,
  }));
}

/**
 * With tool_choice `required` or a named function, the reply must be a call: decoding is
 * constrained to `{"name": <tool>, "arguments": <its parameters>}`, whatever the template's own
 * call syntax, and the reply is returned as that call.
 */
export function forcedCallSchema(tools: ToolDefinition[], choice: ChatCompletionRequest['tool_choice']): Record<string, unknown> | undefined {
  if (choice !== 'required' && (typeof choice !== 'object' || choice === null)) return undefined;
  const allowed = typeof choice === 'object' ? tools.filter((t) => t.function.name === choice.function.name) : tools;
  if (allowed.length === 0) throw badRequest(`tool_choice names "${(choice as { function: { name: string } }).function.name}", which is not among the tools`, 'tool_choice');
  const one = (t: ToolDefinition) => ({
    type: 'object',
    properties: { name: { const: t.function.name }, arguments: t.function.parameters ?? { type: 'object' } },
    required: ['name', 'arguments'],
    additionalProperties: false,
  });
  return allowed.length === 1 ? one(allowed[0]) : { anyOf: allowed.map(one) };
}

/**
 * Combinations OpenAI answers with a 400, which cairn refuses too: a client that relies on the
 * refusal would otherwise take a plain answer for a forced call, or miss the logprobs it asked for.
 */
function refuseMismatched(req: ChatCompletionRequest): void {
  const forcing = req.tool_choice === 'required' || (typeof req.tool_choice === 'object' && req.tool_choice !== null);
  if (forcing && !(req.tools && req.tools.length > 0)) {
    throw badRequest("tool_choice 'required' or a named function is only allowed when tools are given: send tools, or tool_choice 'auto' or 'none'", 'tool_choice');
  }
  // 0 (as llama.cpp's clients send with every request) asks for nothing: only more is an error.
  if (req.top_logprobs !== undefined && req.top_logprobs !== null && req.top_logprobs > 0 && req.logprobs !== true) {
    throw badRequest('top_logprobs is only allowed when logprobs is true', 'top_logprobs');
  }
}

/**
 * Prepares the generation of a validated request, cheapest checks first: sampling fields and
 * schema sizes, then the constraint (compiled in slices), then the prompt (rendered and tokenized
 * by a prompt worker).
 */
async function prepare(
  host: ModelHost,
  model: LoadedModel,
  req: ChatCompletionRequest,
  n: number,
  signal: AbortSignal,
): Promise<{ gen: ServerGeneration; choice: (i: number) => ServerGeneration; tools?: ToolDefinition[]; forced: boolean }> {
  const tools = req.tools && req.tools.length > 0 && req.tool_choice !== 'none' ? (req.tools as ToolDefinition[]) : undefined;
  const asked = requestedFormat(req);
  if (tools && asked && asked.type !== 'text') {
    throw badRequest('response_format and tools cannot be combined', req.json_schema ? 'json_schema' : 'response_format');
  }
  const sampler = samplerFromApi(req, model);
  req.tools?.forEach((t, i) => checkSchemaSize(t.function.parameters, `tools.${i}.function.parameters`));
  const forced = tools ? forcedCallSchema(tools, req.tool_choice) : undefined;
  const format = forced ? ({ type: 'json_schema', json_schema: { schema: forced } } as const) : asked;
  const constraints = await constraintsForChoices(model, format, n, forced ? 'tools' : req.json_schema ? 'json_schema' : undefined);
  const constraint = constraints[0];
  const prompt = await host.prompts.chat(messagesFor(req), { tools, variables: req.chat_template_kwargs }, signal);
  const gen: ServerGeneration = {
    prompt,
    maxTokens: req.max_completion_tokens ?? req.max_tokens,
    sampler,
    stop: stopList(req.stop),
    logprobs: req.logprobs ? (req.top_logprobs ?? 0) : undefined,
    ignoreEos: req.ignore_eos,
    maxDraft: req['speculative.n_max'],
    constraint,
  };
  return { gen, choice: (i) => (constraints[i] ? { ...gen, constraint: constraints[i] } : gen), tools, forced: forced !== undefined };
}

/** The call a forced reply holds (the constraint guarantees its shape once complete). */
export function forcedCall(summary: GenerationSummary): { content: null; calls: unknown[] } | undefined {
  try {
    const v = JSON.parse(summary.text) as { name: string; arguments: unknown };
    return { content: null, calls: [{ index: 0, id: newCallId(), type: 'function', function: { name: v.name, arguments: JSON.stringify(v.arguments) } }] };
  } catch {
    return undefined; // cut off by max_tokens: returned as text with finish_reason length
  }
}

/**
 * Splits a finished reply into content and tool calls in OpenAI's shape (arguments as JSON text).
 * `from` as in replyToolCalls.
 */
export function toolCallsOf(host: ModelHost, model: LoadedModel, summary: GenerationSummary, from = 0): { content: string | null; calls: unknown[] } | undefined {
  const parsed = replyToolCalls(host, model, summary, from);
  if (!parsed) return undefined;
  return {
    content: parsed.content,
    calls: parsed.calls.map((c, index) => ({ index, id: c.id, type: 'function', function: { name: c.name, arguments: JSON.stringify(c.arguments) } })),
  };
}

/** Handles one chat completion request. */
export async function chatCompletions(host: ModelHost, metrics: ServerMetrics, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  // Refused by name first: an image part would otherwise fail the schema as a vague invalid input.
  const refused = unsupportedField(request.body);
  if (refused) throw badRequest(refused.message, refused.param);
  const req = parseBody(chatCompletionRequest, request.body);
  refuseMismatched(req);
  host.ignored(unknownFields(request.body, 'chat'));
  const model = host.require(req.model);
  const abort = new AbortController();
  // The response closing before it was written means the client went away.
  reply.raw.on('close', () => {
    if (!reply.raw.writableEnded) abort.abort();
  });
  const n = req.n ?? 1;
  checkChoiceCount(model, n, 'n', `n = ${n}`);
  const { gen, choice, tools, forced } = await prepare(host, model, req, n, abort.signal);
  const id = `chatcmpl-${randomUUID()}`;
  const created = Math.floor(Date.now() / 1000);
  const events = generateChoices(model, [{ gen, n, choice }], abort.signal);
  metrics.requestStarted(reply.raw);

  if (!req.stream) {
    const states = Array.from({ length: n }, () => ({ logprobs: [] as unknown[], summary: undefined as GenerationSummary | undefined }));
    try {
      for await (const { index, event: ev } of events) {
        if (ev.type === 'token' && ev.logprobs) states[index].logprobs.push(chatLogprob(model, ev.logprobs));
        if (ev.type === 'done') states[index].summary = ev.summary;
      }
    } finally {
      // Ended however it ends (a later choice refused by a full queue throws): no longer in flight.
      const ended = states.map((c) => c.summary);
      metrics.requestEnded(combinedSummary(ended), reply.raw, promptTokensOnce(ended, n));
    }
    const failed = states.find((c) => !c.summary || c.summary.finishReason === 'error');
    if (failed) throw toApiError(failed.summary?.error ?? new Error('generation ended without a result'));
    const summaries = states.map((c) => c.summary!);
    await reply.send({
      id,
      object: 'chat.completion',
      created,
      model: host.nameFor(req.model),
      system_fingerprint: 'cairn',
      choices: states.map((c, index) => {
        const summary = summaries[index];
        const calls = forced ? forcedCall(summary) : tools ? toolCallsOf(host, model, summary) : undefined;
        const message = calls
          ? { role: 'assistant', content: calls.content, tool_calls: calls.calls.map((call) => ({ ...(call as object), index: undefined })) }
          : { role: 'assistant', content: summary.text };
        return { index, message, logprobs: gen.logprobs !== undefined ? { content: c.logprobs } : null, finish_reason: calls ? 'tool_calls' : finishReason(summary) };
      }),
      usage: usage(summaries),
    });
    return;
  }

  reply.hijack();
  const sse = new SseStream(reply.raw, () => abort.abort());
  const chunk = (index: number, delta: Record<string, unknown>, finish: string | null, logprobs?: unknown) => ({
    id,
    object: 'chat.completion.chunk',
    created,
    model: host.nameFor(req.model),
    system_fingerprint: 'cairn',
    choices: [{ index, delta, logprobs: logprobs ?? null, finish_reason: finish }],
  });
  // With tools the reply may hold calls, known only once complete. Text is streamed as long as it
  // is prose for sure (ProseGate); from the first possible call on, the rest waits for the end.
  const format = tools && !forced ? toolCallFormat(host) : undefined;
  const gates = Array.from({ length: n }, () => (format ? new ProseGate<{ content: unknown[] }>(model, format) : undefined));
  for (let index = 0; index < n; index++) sse.send(chunk(index, { role: 'assistant', content: '' }, null));
  /** A choice's end: what it held back (tool calls, or prose after all), then its finish reason. */
  const finish = (index: number, summary: GenerationSummary) => {
    const gate = gates[index];
    let reason: string = finishReason(summary);
    if (tools) {
      const calls = forced ? forcedCall(summary) : toolCallsOf(host, model, summary, gate?.streamedRaw ?? 0);
      if (calls) {
        if (calls.content) sse.send(chunk(index, { content: calls.content }, null));
        sse.send(chunk(index, { tool_calls: calls.calls }, null));
        reason = 'tool_calls';
      } else if (forced) {
        if (summary.text) sse.send(chunk(index, { content: summary.text }, null));
      } else {
        // No call after all: what was held is prose, sent in one chunk (with its tokens' logprobs).
        const held = gate?.heldPieces() ?? [];
        const text = held.map((h) => h.text).join('');
        const lps = held.flatMap((h) => h.extra?.content ?? []);
        if (text !== '' || lps.length > 0) sse.send(chunk(index, { content: text }, null, lps.length > 0 ? { content: lps } : undefined));
      }
    }
    sse.send(chunk(index, {}, reason));
  };
  const { summaries, error } = await streamChoices(
    events,
    n,
    (index, ev) => {
      if (forced) return; // the whole reply is the call
      const lp = ev.type === 'token' && ev.logprobs ? { content: [chatLogprob(model, ev.logprobs)] } : undefined;
      const gate = gates[index];
      if (gate) {
        for (const h of gate.release(ev, lp)) if (h.text !== '' || h.extra) sse.send(chunk(index, { content: h.text }, null, h.extra));
        return;
      }
      if (ev.text === '' && !lp) return;
      sse.send(chunk(index, { content: ev.text }, null, lp));
    },
    finish,
  );
  metrics.requestEnded(combinedSummary(summaries), reply.raw, promptTokensOnce(summaries, n));
  if (error || summaries.some((s) => !s)) {
    if (!abort.signal.aborted) sse.send(toApiError(error ?? new Error('generation ended without a result')).body());
    sse.end();
    return;
  }
  if (req.stream_options?.include_usage) {
    sse.send({ id, object: 'chat.completion.chunk', created, model: host.nameFor(req.model), system_fingerprint: 'cairn', choices: [], usage: usage(summaries as GenerationSummary[]) });
  }
  sse.done();
}
