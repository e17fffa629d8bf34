/**
 * POST /v1/messages, Anthropic's Messages API: the conversation rendered with the model's chat
 * template, generated, and answered as a message of text and tool_use blocks, whole or streamed
 * as Anthropic streams it. Tool calls are parsed from the reply in the template's format (or
 * decoded as one forced call), as on the OpenAI chat route.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { GenerationEvent, GenerationSummary } from '../../engine/engine.js';
import type { LoadedModel } from '../../engine/load.js';
import { detectToolCallFormat } from '../../tokenizer/chat/index.js';
import { badRequest, toApiError } from '../errors.js';
import { startGeneration } from '../generation.js';
import type { ModelHost } from '../host.js';
import type { ServerMetrics } from '../metrics.js';
import { forcedCall, toolCallsOf } from '../openai/chat.js';
import { parseBody } from '../parse-body.js';
import { SseStream } from '../sse.js';
import { prepareMessage } from './prepare.js';
import { ProseGate } from '../prose-gate.js';
import { messagesRequest, unknownFields, unsupportedContent, type MessagesRequest } from './schemas.js';
import { MessageStream, type AnthropicUsage } from './stream.js';

const PING_INTERVAL_MS = 10_000;

/** An id in Anthropic's form: the prefix and 24 hex digits. */
function newId(prefix: 'msg_' | 'toolu_'): string {
  return prefix + randomUUID().replace(/-/g, '').slice(0, 24);
}

/**
 * Anthropic's usage. Every prompt's KV stays in the prefix cache here, unasked and at no cost, as
 * with OpenAI's automatic caching: nothing is written at a breakpoint the client set, which is
 * what cache_creation_input_tokens counts on Anthropic, so it is 0. The prompt tokens reused from
 * the cache are cache reads, and input_tokens counts the rest, so that the three add up to the
 * prompt, as Anthropic's do.
 */
function usageOf(s: GenerationSummary): AnthropicUsage {
  return {
    input_tokens: s.promptTokens - s.cachedTokens,
    output_tokens: s.completionTokens,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: s.cachedTokens,
  };
}

/** Why the generation ended, in Anthropic's words, and the stop sequence that ended it. */
function stopOf(s: GenerationSummary): { reason: string; sequence: string | null } {
  if (s.finishReason === 'length') return { reason: 'max_tokens', sequence: null };
  if (s.stop !== undefined) return { reason: 'stop_sequence', sequence: s.stop };
  return { reason: 'end_turn', sequence: null };
}

/** A parsed call as a tool_use block (its arguments as an object, as Anthropic's input is). */
function toolUseOf(call: unknown): { type: 'tool_use'; id: string; name: string; input: Record<string, unknown> } {
  const fn = (call as { function: { name: string; arguments: string } }).function;
  let input: unknown;
  try {
    input = JSON.parse(fn.arguments);
  } catch {
    input = undefined;
  }
  const object = typeof input === 'object' && input !== null && !Array.isArray(input);
  return { type: 'tool_use', id: newId('toolu_'), name: fn.name, input: object ? (input as Record<string, unknown>) : {} };
}

/** The reply's text and tool calls, once complete; `from` as in toolCallsOf. */
function replyOf(host: ModelHost, model: LoadedModel, s: GenerationSummary, tools: boolean, forced: boolean, from = 0): { text: string | undefined; calls: unknown[] } {
  const parsed = forced ? forcedCall(s) : tools ? toolCallsOf(host, model, s, from) : undefined;
  // A forced reply cut off by max_tokens is no call: it is returned as text.
  if (!parsed) return { text: undefined, calls: [] };
  return { text: parsed.content ?? '', calls: parsed.calls };
}

/** Handles one Messages request. */
export async function createMessage(host: ModelHost, metrics: ServerMetrics, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const refused = unsupportedContent(request.body);
  if (refused) throw badRequest(refused.message, refused.param);
  const req = parseBody(messagesRequest, request.body);
  host.ignored(unknownFields(request.body, req));
  if (typeof req.thinking === 'object' && req.thinking !== null && (req.thinking as { type?: unknown }).type !== 'disabled') host.ignored(['thinking']);
  const model = host.require(req.model);
  const abort = new AbortController();
  // The response closing before it was written means the client went away.
  reply.raw.on('close', () => {
    if (!reply.raw.writableEnded) abort.abort();
  });
  const { gen, tools, forced } = await prepareMessage(host, model, req, abort.signal);
  const id = newId('msg_');
  const events = startGeneration(model, gen, abort.signal);
  metrics.requestStarted(reply.raw);
  if (req.stream) return streamMessage(host, model, metrics, req, reply, { id, events, promptTokens: gen.prompt.length, tools: tools !== undefined, forced, abort });

  let summary: GenerationSummary | undefined;
  for await (const ev of events) if (ev.type === 'done') summary = ev.summary;
  metrics.requestEnded(summary, reply.raw);
  if (!summary || summary.finishReason === 'error') throw toApiError(summary?.error ?? new Error('generation ended without a result'));
  const { text, calls } = replyOf(host, model, summary, tools !== undefined, forced);
  const content: Record<string, unknown>[] = [];
  const prose = text ?? summary.text;
  if (prose !== '') content.push({ type: 'text', text: prose });
  content.push(...calls.map(toolUseOf));
  // Clients read content[0].text; an empty answer is an empty text block rather than no block.
  if (content.length === 0) content.push({ type: 'text', text: '' });
  const stop = calls.length > 0 ? { reason: 'tool_use', sequence: null } : stopOf(summary);
  await reply.send({
    id,
    type: 'message',
    role: 'assistant',
    model: host.nameFor(req.model),
    content,
    stop_reason: stop.reason,
    stop_sequence: stop.sequence,
    usage: usageOf(summary),
  });
}

interface Streaming {
  readonly id: string;
  readonly events: AsyncIterable<GenerationEvent>;
  readonly promptTokens: number;
  readonly tools: boolean;
  readonly forced: boolean;
  readonly abort: AbortController;
}

async function streamMessage(host: ModelHost, model: LoadedModel, metrics: ServerMetrics, req: MessagesRequest, reply: FastifyReply, s: Streaming): Promise<void> {
  reply.hijack();
  const out = new MessageStream(new SseStream(reply.raw, () => s.abort.abort()));
  // How much of the prompt the cache holds is known only at the end: message_start counts the
  // whole prompt as input, and message_delta gives the split (clients take its figures).
  out.start({
    id: s.id,
    type: 'message',
    role: 'assistant',
    model: host.nameFor(req.model),
    content: [],
    stop_reason: null,
    stop_sequence: null,
    usage: { input_tokens: s.promptTokens, output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
  });
  // With tools, text streams only as far as it cannot be the start of a call; a forced reply is
  // the call, sent whole at the end.
  const format = s.tools && !s.forced ? detectToolCallFormat(host.prompts.templateSource ?? '') : undefined;
  const gate = format ? new ProseGate(model, format) : undefined;
  let summary: GenerationSummary | undefined;
  // As Anthropic does, pings keep a quiet stream alive for proxies and idle timeouts, while a long
  // prompt is read or a forced call is decoded without deltas.
  const keepAlive = setInterval(() => out.ping(), PING_INTERVAL_MS);
  try {
    for await (const ev of s.events) {
      if (ev.type === 'done') {
        summary = ev.summary;
        break;
      }
      if (s.forced || ev.type === 'prompt') continue;
      out.text(gate ? gate.push(ev) : ev.text);
    }
  } finally {
    clearInterval(keepAlive);
  }
  metrics.requestEnded(summary, reply.raw);
  if (!summary || summary.finishReason === 'error' || summary.finishReason === 'abort') {
    if (summary?.finishReason === 'abort') out.end();
    else out.error(toApiError(summary?.error ?? new Error('generation ended without a result')));
    return;
  }
  const { text, calls } = replyOf(host, model, summary, s.tools, s.forced, gate?.streamedRaw ?? 0);
  if (text !== undefined) out.text(text);
  else if (s.forced) out.text(summary.text);
  else out.text(gate?.rest() ?? '');
  for (const call of calls) {
    const block = toolUseOf(call);
    out.toolUse(block.id, block.name, block.input);
  }
  const stop = calls.length > 0 ? { reason: 'tool_use', sequence: null } : stopOf(summary);
  out.finish(stop.reason, stop.sequence, usageOf(summary));
}
