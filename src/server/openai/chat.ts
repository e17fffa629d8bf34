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
import { detectToolCallFormat, parseToolCalls, type ToolDefinition } from '../../tokenizer/chat/index.js';
import { parseBody } from '../parse-body.js';
import { badRequest, toApiError } from '../errors.js';
import { chatLogprob, samplerFromApi, startGeneration, stopList, type ServerGeneration } from '../generation.js';
import type { ModelHost } from '../host.js';
import type { ServerMetrics } from '../metrics.js';
import { SseStream } from '../sse.js';
import { ProseGate } from '../prose-gate.js';
import { checkSchemaSize, constraintForFormat } from '../response-format.js';
import { chatCompletionRequest, unknownFields, unsupportedField, type ChatCompletionRequest } from './schemas.js';

type FinishReason = 'stop' | 'length' | 'tool_calls';

function finishReason(s: GenerationSummary): FinishReason {
  return s.finishReason === 'length' ? 'length' : 'stop';
}

function usage(s: GenerationSummary): Record<string, unknown> {
  return {
    prompt_tokens: s.promptTokens,
    completion_tokens: s.completionTokens,
    total_tokens: s.promptTokens + s.completionTokens,
    prompt_tokens_details: { cached_tokens: s.cachedTokens },
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
 * Prepares the generation of a validated request, cheapest checks first: sampling fields and
 * schema sizes, then the constraint (compiled in slices), then the prompt (rendered and tokenized
 * by a prompt worker).
 */
async function prepare(host: ModelHost, model: LoadedModel, req: ChatCompletionRequest, signal: AbortSignal): Promise<{ gen: ServerGeneration; tools?: ToolDefinition[]; forced: boolean }> {
  const tools = req.tools && req.tools.length > 0 && req.tool_choice !== 'none' ? (req.tools as ToolDefinition[]) : undefined;
  if (tools && req.response_format && req.response_format.type !== 'text') {
    throw badRequest('response_format and tools cannot be combined', 'response_format');
  }
  const sampler = samplerFromApi(req, model);
  req.tools?.forEach((t, i) => checkSchemaSize(t.function.parameters, `tools.${i}.function.parameters`));
  const forced = tools ? forcedCallSchema(tools, req.tool_choice) : undefined;
  const format = forced ? ({ type: 'json_schema', json_schema: { schema: forced } } as const) : req.response_format;
  const constraint = format ? await constraintForFormat(model, format, forced ? 'tools' : undefined) : undefined;
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
  return { gen, tools, forced: forced !== undefined };
}

/** The call a forced reply holds (the constraint guarantees its shape once complete). */
export function forcedCall(summary: GenerationSummary): { content: null; calls: unknown[] } | undefined {
  try {
    const v = JSON.parse(summary.text) as { name: string; arguments: unknown };
    return { content: null, calls: [{ index: 0, id: `call_${randomUUID().replace(/-/g, '').slice(0, 24)}`, type: 'function', function: { name: v.name, arguments: JSON.stringify(v.arguments) } }] };
  } catch {
    return undefined; // cut off by max_tokens: returned as text with finish_reason length
  }
}

/**
 * Splits a finished reply into content and tool calls, in the template's format. `from` skips
 * that many characters of the reply's text (special tokens written out), already streamed as prose.
 */
export function toolCallsOf(host: ModelHost, model: LoadedModel, summary: GenerationSummary, from = 0): { content: string | null; calls: unknown[] } | undefined {
  const format = detectToolCallFormat(host.prompts.templateSource ?? '');
  if (!format) return undefined;
  const text = model.tokenizer.decode([...summary.tokens], { skipSpecial: false }).slice(from);
  const parsed = parseToolCalls(text, format);
  if (parsed.toolCalls.length === 0) return undefined;
  return {
    content: parsed.content === '' ? null : parsed.content,
    calls: parsed.toolCalls.map((c, index) => ({
      index,
      id: c.id ?? `call_${randomUUID().replace(/-/g, '').slice(0, 24)}`,
      type: 'function',
      function: { name: c.name, arguments: JSON.stringify(c.arguments) },
    })),
  };
}

/** Handles one chat completion request. */
export async function chatCompletions(host: ModelHost, metrics: ServerMetrics, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const req = parseBody(chatCompletionRequest, request.body);
  const refused = unsupportedField(request.body);
  if (refused) throw badRequest(refused.message, refused.param);
  host.ignored(unknownFields(request.body, 'chat'));
  const model = host.require(req.model);
  const abort = new AbortController();
  // The response closing before it was written means the client went away.
  reply.raw.on('close', () => {
    if (!reply.raw.writableEnded) abort.abort();
  });
  const { gen, tools, forced } = await prepare(host, model, req, abort.signal);
  const id = `chatcmpl-${randomUUID()}`;
  const created = Math.floor(Date.now() / 1000);
  const events = startGeneration(model, gen, abort.signal);
  metrics.requestStarted(reply.raw);

  if (!req.stream) {
    const logprobs: unknown[] = [];
    let summary: GenerationSummary | undefined;
    for await (const ev of events) {
      if (ev.type === 'token' && ev.logprobs) logprobs.push(chatLogprob(model, ev.logprobs));
      if (ev.type === 'done') summary = ev.summary;
    }
    metrics.requestEnded(summary, reply.raw);
    if (!summary || summary.finishReason === 'error') throw toApiError(summary?.error ?? new Error('generation ended without a result'));
    const calls = forced ? forcedCall(summary) : tools ? toolCallsOf(host, model, summary) : undefined;
    const message = calls
      ? { role: 'assistant', content: calls.content, tool_calls: calls.calls.map((c) => ({ ...(c as object), index: undefined })) }
      : { role: 'assistant', content: summary.text };
    await reply.send({
      id,
      object: 'chat.completion',
      created,
      model: host.nameFor(req.model),
      system_fingerprint: 'cairn',
      choices: [{ index: 0, message, logprobs: gen.logprobs !== undefined ? { content: logprobs } : null, finish_reason: calls ? 'tool_calls' : finishReason(summary) }],
      usage: usage(summary),
    });
    return;
  }

  reply.hijack();
  const sse = new SseStream(reply.raw, () => abort.abort());
  const chunk = (delta: Record<string, unknown>, finish: string | null, logprobs?: unknown) => ({
    id,
    object: 'chat.completion.chunk',
    created,
    model: host.nameFor(req.model),
    system_fingerprint: 'cairn',
    choices: [{ index: 0, delta, logprobs: logprobs ?? null, finish_reason: finish }],
  });
  sse.send(chunk({ role: 'assistant', content: '' }, null));
  // With tools the reply may hold calls, known only once complete. Text is streamed as long as it
  // is prose for sure (ProseGate); from the first possible call on, the rest waits for the end.
  const format = tools && !forced ? detectToolCallFormat(host.prompts.templateSource ?? '') : undefined;
  const gate = format ? new ProseGate<{ content: unknown[] }>(model, format) : undefined;
  let summary: GenerationSummary | undefined;
  for await (const ev of events) {
    if (ev.type === 'done') {
      summary = ev.summary;
      break;
    }
    if (forced) continue; // the whole reply is the call
    const lp = ev.type === 'token' && ev.logprobs ? { content: [chatLogprob(model, ev.logprobs)] } : undefined;
    if (gate) {
      for (const h of gate.release(ev, lp)) if (h.text !== '' || h.extra) sse.send(chunk({ content: h.text }, null, h.extra));
      continue;
    }
    if (ev.text === '' && !lp) continue;
    sse.send(chunk({ content: ev.text }, null, lp));
  }
  metrics.requestEnded(summary, reply.raw);
  if (!summary || summary.finishReason === 'error' || summary.finishReason === 'abort') {
    if (summary?.finishReason !== 'abort') sse.send(toApiError(summary?.error ?? new Error('generation ended without a result')).body());
    sse.end();
    return;
  }
  let finish: string = finishReason(summary);
  if (tools) {
    const calls = forced ? forcedCall(summary) : toolCallsOf(host, model, summary, gate?.streamedRaw ?? 0);
    if (calls) {
      if (calls.content) sse.send(chunk({ content: calls.content }, null));
      sse.send(chunk({ tool_calls: calls.calls }, null));
      finish = 'tool_calls';
    } else if (forced) {
      if (summary.text) sse.send(chunk({ content: summary.text }, null));
    } else {
      // No call after all: what was held is prose, sent in one chunk (with its tokens' logprobs).
      const held = gate?.heldPieces() ?? [];
      const text = held.map((h) => h.text).join('');
      const lps = held.flatMap((h) => h.extra?.content ?? []);
      if (text !== '' || lps.length > 0) sse.send(chunk({ content: text }, null, lps.length > 0 ? { content: lps } : undefined));
    }
  }
  sse.send(chunk({}, finish));
  if (req.stream_options?.include_usage) {
    sse.send({ id, object: 'chat.completion.chunk', created, model: host.nameFor(req.model), system_fingerprint: 'cairn', choices: [], usage: usage(summary) });
  }
  sse.done();
}
