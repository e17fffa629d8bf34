/**
 * OpenAI's Responses API: POST /v1/responses renders the input items (after the conversation of
 * `previous_response_id`, with `instructions` as the system message) with the model's chat
 * template, generates, and answers with a response object, or streams its events. Function tools
 * and text.format work as in the chat route (tool calls parsed in the template's syntax, forced
 * calls and JSON schemas by constrained decoding). Responses are kept in memory (see
 * response-store.ts) for follow-ups and GET/DELETE /v1/responses/{id}. `reasoning` is accepted
 * and ignored: no served model takes a reasoning effort.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ChatMessage } from '../../engine/chat.js';
import type { GenerationSummary } from '../../engine/engine.js';
import type { LoadedModel } from '../../engine/load.js';
import { detectToolCallFormat, type ToolDefinition } from '../../tokenizer/chat/index.js';
import { CairnError, isCairnError } from '../../util/errors.js';
import { ApiError, badRequest, toApiError } from '../errors.js';
import { samplerFromApi, startGeneration, type ServerGeneration } from '../generation.js';
import type { ModelHost } from '../host.js';
import type { ServerMetrics } from '../metrics.js';
import { parseBody } from '../parse-body.js';
import { checkSchemaSize, constraintForFormat, type ResponseFormat } from '../response-format.js';
import { SseStream } from '../sse.js';
import { forcedCall, forcedCallSchema, toolCallsOf } from './chat.js';
import { ResponseStore } from './response-store.js';
import { assistantTurn, messagesOfInput, newId, outputOf, replyCalls, type Reply } from './responses-items.js';
import { responseCreateRequest, responseInputItems, unknownResponseFields, unsupportedResponseField, type ResponseCreateRequest } from './responses-schemas.js';
import { ResponseEvents } from './responses-stream.js';
import { ProseGate } from '../prose-gate.js';

/** 404 for a response this server does not keep. */
function responseNotFound(id: string, param: string | null): ApiError {
  const what = param ? 'Previous response' : 'Response';
  return new ApiError(404, `${what} with id '${id.slice(0, 64)}' not found (responses are kept in memory while the server runs, the most recent ones up to a bound, and not with store: false).`, 'invalid_request_error', param, param ? 'previous_response_not_found' : 'not_found');
}

/** One request as the response object echoes it. */
interface Echo {
  readonly id: string;
  readonly createdAt: number;
  readonly model: string;
  readonly req: ResponseCreateRequest;
}

type Status = 'in_progress' | 'completed' | 'incomplete' | 'failed';

function usageOf(s: GenerationSummary): Record<string, unknown> {
  return {
    input_tokens: s.promptTokens,
    input_tokens_details: { cached_tokens: s.cachedTokens },
    output_tokens: s.completionTokens,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: s.promptTokens + s.completionTokens,
  };
}

/** The response object, with the request's settings echoed as OpenAI does. */
function responseObject(e: Echo, status: Status, output: unknown[], summary?: GenerationSummary, error?: ApiError): Record<string, unknown> {
  const { req } = e;
  return {
    id: e.id,
    object: 'response',
    created_at: e.createdAt,
    status,
    ...(status === 'completed' ? { completed_at: Math.floor(Date.now() / 1000) } : {}),
    background: false,
    error: error ? { code: error.status === 429 ? 'rate_limit_exceeded' : 'server_error', message: error.message } : null,
    incomplete_details: status === 'incomplete' ? { reason: 'max_output_tokens' } : null,
    instructions: req.instructions ?? null,
    max_output_tokens: req.max_output_tokens ?? null,
    model: e.model,
    output,
    parallel_tool_calls: req.parallel_tool_calls ?? true,
    previous_response_id: req.previous_response_id ?? null,
    reasoning: { effort: null, summary: null },
    store: req.store ?? true,
    temperature: req.temperature ?? null,
    text: { format: req.text?.format ?? { type: 'text' } },
    tool_choice: req.tool_choice ?? 'auto',
    tools: (req.tools ?? []).map((t) => ({ type: 'function', name: t.name, description: t.description ?? null, parameters: t.parameters ?? null, strict: t.strict ?? null })),
    top_p: req.top_p ?? null,
    truncation: req.truncation ?? 'disabled',
    usage: summary ? usageOf(summary) : null,
    ...(req.user !== undefined ? { user: req.user } : {}),
    metadata: req.metadata ?? {},
  };
}

/** The chat route's tool_choice shape, for its forced-call schema. */
function chatToolChoice(choice: ResponseCreateRequest['tool_choice']) {
  return typeof choice === 'object' && choice !== null ? { type: 'function' as const, function: { name: choice.name } } : choice;
}

function chatFormat(format: NonNullable<NonNullable<ResponseCreateRequest['text']>['format']>): ResponseFormat {
  return format.type === 'json_schema' ? { type: 'json_schema', json_schema: { schema: format.schema } } : format;
}

/**
 * The prompt of the instructions and a conversation, and the conversation as it went into it.
 * With truncation `auto`, a conversation over the context loses its oldest turns (after its
 * leading system messages; 1, 2, 4, ... of them, so that few renders are tried) until it fits;
 * with `disabled` (OpenAI's default) it is a 400. What was dropped is dropped from what is kept
 * for follow-ups too (they would drop it again), which also bounds what a chain of them holds.
 */
async function render(
  host: ModelHost,
  instructions: readonly ChatMessage[],
  conversation: readonly ChatMessage[],
  tools: ToolDefinition[] | undefined,
  auto: boolean,
  signal: AbortSignal,
): Promise<{ prompt: number[]; conversation: readonly ChatMessage[] }> {
  const head = conversation.findIndex((m) => m.role !== 'system');
  const fixed = head < 0 ? conversation.length : head;
  const turns = conversation.length - fixed;
  for (let drop = 0; ; drop = Math.min(Math.max(1, drop * 2), turns - 1)) {
    let tail = conversation.slice(fixed + drop);
    // A tool result whose call was dropped would answer nothing.
    while (tail.length > 1 && tail[0].role === 'tool') tail = tail.slice(1);
    const kept = drop === 0 ? conversation : [...conversation.slice(0, fixed), ...tail];
    try {
      return { prompt: await host.prompts.chat([...instructions, ...kept], { tools }, signal), conversation: kept };
    } catch (err) {
      if (!isCairnError(err, 'CONTEXT_FULL')) throw err;
      if (!auto) throw new ApiError(400, `${err.message} (or send truncation: 'auto' to drop the oldest turns)`, 'invalid_request_error', 'input', 'context_length_exceeded');
      if (drop >= turns - 1) throw new ApiError(400, err.message, 'invalid_request_error', 'input', 'context_length_exceeded');
    }
  }
}

/** Prepares the generation, cheapest checks first (as the chat route does). */
async function prepare(
  host: ModelHost,
  model: LoadedModel,
  req: ResponseCreateRequest,
  conversation: readonly ChatMessage[],
  signal: AbortSignal,
): Promise<{ gen: ServerGeneration; tools?: ToolDefinition[]; forced: boolean; conversation: readonly ChatMessage[] }> {
  const tools = req.tools && req.tools.length > 0 && req.tool_choice !== 'none'
    ? req.tools.map((t): ToolDefinition => ({ type: 'function', function: { name: t.name, description: t.description ?? undefined, parameters: t.parameters ?? undefined } }))
    : undefined;
  const format = req.text?.format ?? undefined;
  if (tools && format && format.type !== 'text') throw badRequest('text.format and tools cannot be combined', 'text.format');
  const instructions: ChatMessage[] = req.instructions ? [{ role: 'system', content: req.instructions }] : [];
  if (instructions.length + conversation.length === 0) throw badRequest("Send 'input': a string, or a list of items.", 'input');
  const sampler = samplerFromApi({ temperature: req.temperature, top_p: req.top_p }, model);
  req.tools?.forEach((t, i) => checkSchemaSize(t.parameters, `tools.${i}.parameters`));
  const forced = tools ? forcedCallSchema(tools, chatToolChoice(req.tool_choice)) : undefined;
  const constraint = forced
    ? await constraintForFormat(model, { type: 'json_schema', json_schema: { schema: forced } }, 'tools')
    : format
      ? await constraintForFormat(model, chatFormat(format), 'text.format.schema')
      : undefined;
  const r = await render(host, instructions, conversation, tools, req.truncation === 'auto', signal);
  return { gen: { prompt: r.prompt, maxTokens: req.max_output_tokens, sampler, constraint }, tools, forced: forced !== undefined, conversation: r.conversation };
}

/**
 * What a finished generation replied. A streamed reply passes what it streamed: the text, up to
 * `from` characters of the raw reply, and the text held back since.
 */
function replyOf(host: ModelHost, model: LoadedModel, summary: GenerationSummary, how: { forced: boolean; tools?: ToolDefinition[]; parallel: boolean }, messageId: string, streamed?: { text: string; from: number; rest: string }): Reply {
  const parsed = how.forced ? forcedCall(summary) : how.tools ? toolCallsOf(host, model, summary, streamed?.from) : undefined;
  if (!parsed) {
    const text = streamed && how.tools && !how.forced ? streamed.text + streamed.rest : summary.text;
    return { messageId, text, calls: [], incomplete: summary.finishReason === 'length' };
  }
  const calls = replyCalls(parsed.calls);
  const text = (streamed?.text ?? '') + (parsed.content ?? '');
  return { messageId, text: text === '' ? null : text, calls: how.parallel ? calls : calls.slice(0, 1), incomplete: false };
}

/** Handles one POST /v1/responses. */
async function createResponse(host: ModelHost, metrics: ServerMetrics, store: ResponseStore, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const refused = unsupportedResponseField(request.body);
  if (refused) throw badRequest(refused.message, refused.param);
  const req = parseBody(responseCreateRequest, request.body);
  const input = Array.isArray(req.input) ? parseBody(responseInputItems, request.body).input : req.input;
  host.ignored(unknownResponseFields(request.body));
  const model = host.require(req.model);
  let earlier: readonly ChatMessage[] = [];
  if (req.previous_response_id) {
    const previous = store.get(req.previous_response_id);
    if (!previous) throw responseNotFound(req.previous_response_id, 'previous_response_id');
    earlier = previous.conversation;
  }
  const given = [...earlier, ...messagesOfInput(input)];
  const abort = new AbortController();
  // The response closing before it was written means the client went away.
  reply.raw.on('close', () => {
    if (!reply.raw.writableEnded) abort.abort();
  });
  const { gen, tools, forced, conversation } = await prepare(host, model, req, given, abort.signal);
  const echo: Echo = { id: newId('resp'), createdAt: Math.floor(Date.now() / 1000), model: host.nameFor(req.model), req };
  const how = { forced, tools, parallel: req.parallel_tool_calls !== false };
  const events = startGeneration(model, gen, abort.signal);
  metrics.requestStarted(reply.raw);

  // The finished response, kept for follow-ups unless store is false.
  const finished = (summary: GenerationSummary, r: Reply): Record<string, unknown> => {
    const body = responseObject(echo, r.incomplete ? 'incomplete' : 'completed', outputOf(r), summary);
    if (req.store !== false) store.put(echo.id, { response: body, conversation: [...conversation, assistantTurn(r)] });
    return body;
  };

  if (!req.stream) {
    let summary: GenerationSummary | undefined;
    for await (const ev of events) if (ev.type === 'done') summary = ev.summary;
    metrics.requestEnded(summary, reply.raw);
    if (summary?.finishReason === 'abort') throw toApiError(new CairnError('ABORTED', 'the client closed the request'));
    if (!summary || summary.finishReason === 'error') throw toApiError(summary?.error ?? new Error('generation ended without a result'), 'input');
    await reply.send(finished(summary, replyOf(host, model, summary, how, newId('msg'))));
    return;
  }

  reply.hijack();
  const sse = new SseStream(reply.raw, () => abort.abort());
  const gate = new ProseGate(model, tools && !forced ? detectToolCallFormat(host.prompts.templateSource ?? '') : undefined);
  const messageId = newId('msg');
  const out = new ResponseEvents(sse, messageId);
  out.lifecycle('response.created', responseObject(echo, 'in_progress', []));
  out.lifecycle('response.in_progress', responseObject(echo, 'in_progress', []));
  let summary: GenerationSummary | undefined;
  for await (const ev of events) {
    if (ev.type === 'done') {
      summary = ev.summary;
      break;
    }
    // A forced reply is the call as JSON, sent once complete.
    if (forced || (ev.type !== 'token' && ev.type !== 'text')) continue;
    out.text(gate.push(ev));
  }
  metrics.requestEnded(summary, reply.raw);
  if (!summary || summary.finishReason === 'error' || summary.finishReason === 'abort') {
    if (summary?.finishReason !== 'abort') {
      const error = toApiError(summary?.error ?? new Error('generation ended without a result'), 'input');
      out.lifecycle('response.failed', responseObject(echo, 'failed', [], summary, error));
    }
    sse.end();
    return;
  }
  const r = replyOf(host, model, summary, how, messageId, { text: out.streamedText, from: gate.streamedRaw, rest: gate.rest() });
  out.finish(r);
  const body = finished(summary, r);
  out.lifecycle(r.incomplete ? 'response.incomplete' : 'response.completed', body);
  sse.end();
}

/** Registers POST /v1/responses, and GET and DELETE /v1/responses/{id} for the kept ones. */
export function registerResponsesRoutes(app: FastifyInstance, host: ModelHost, metrics: ServerMetrics, store = new ResponseStore()): void {
  app.post('/v1/responses', (request, reply) => createResponse(host, metrics, store, request, reply));
  app.get('/v1/responses/:id', async (request) => {
    const { id } = request.params as { id: string };
    const kept = store.get(id);
    if (!kept) throw responseNotFound(id, null);
    return kept.response;
  });
  app.delete('/v1/responses/:id', async (request) => {
    const { id } = request.params as { id: string };
    if (!store.delete(id)) throw responseNotFound(id, null);
    return { id, object: 'response', deleted: true };
  });
}
