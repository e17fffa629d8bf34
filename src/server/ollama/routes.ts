/**
 * The Ollama API shapes many desktop clients speak: /api/chat, /api/generate (NDJSON streams by
 * default), /api/tags, /api/show, /api/ps and /api/version. Options Ollama defines but cairn has
 * no use for (num_ctx, num_thread, ...) are accepted and ignored, as Ollama itself does for
 * options a model does not use. /api/chat takes `tools` and answers calls as Ollama does
 * (`message.tool_calls`, arguments as objects), parsed as the OpenAI route parses them.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { z } from 'zod';
import type { ChatMessage, ToolDefinition } from '../../engine/chat.js';
import type { GenerationEvent, GenerationSummary } from '../../engine/engine.js';
import type { LoadedModel } from '../../engine/load.js';
import { Metadata } from '../../gguf/metadata.js';
import { formatCount } from '../../util/format.js';
import { badRequest, toApiError } from '../errors.js';
import { checkIds, fillInTheMiddle } from '../openai/completion-prompts.js';
import { ollamaTag, type CatalogModel } from '../model-catalog.js';
import { parseBody } from '../parse-body.js';
import { isString, isTokenId, listOf } from '../list-schemas.js';
import { checkedSampler, logitBiasFromApi, startGeneration, stopList, type ServerGeneration } from '../generation.js';
import type { ModelHost } from '../host.js';
import type { ServerMetrics } from '../metrics.js';
import { checkSchemaSize, constraintForFormat } from '../response-format.js';
import { keepAliveMs, onlyUnloads } from '../keep-alive.js';
import { ProseGate, type GeneratedPiece } from '../prose-gate.js';
import { replyToolCalls, toolCallFormat, type ReplyToolCall } from '../tool-calls.js';
import { SAMPLER_DEFAULTS, type SamplerOptions } from '../../sampling/index.js';

/** A field Ollama's own server (Go) takes as null too: null reads as absent. */
function orNull<T extends z.ZodType>(schema: T) {
  return schema.nullish().transform((v) => v ?? undefined);
}

const options = orNull(
  z.looseObject({
    // The same ranges as the OpenAI routes: a temperature of 5 samples noise until the length limit.
    temperature: z.number().min(0).max(2).optional(),
    top_p: z.number().min(0).max(1).optional(),
    top_k: z.number().int().min(0).optional(),
    min_p: z.number().min(0).max(1).optional(),
    // -1: until the model stops or the context is full; -2: fill the context (Ollama's meanings).
    num_predict: z.number().int().min(-2).optional(),
    // Every stop string is looked for after every token: their number is bounded.
    stop: z.union([z.string(), listOf(isString, 'strings', { max: 64 })]).optional(),
    // -1: a random seed; other seeds are non-negative. A repeat_penalty of 0 would divide by zero (1 is off).
    seed: z.number().int().min(-1).optional(),
    repeat_penalty: z.number().positive().max(10).optional(),
    repeat_last_n: z.number().int().min(-1).optional(),
    presence_penalty: z.number().min(-2).max(2).optional(),
    frequency_penalty: z.number().min(-2).max(2).optional(),
    // Not an Ollama option; accepted with the OpenAI meaning (token id -> bias) for clients that send it.
    logit_bias: z.record(z.string(), z.unknown()).optional(),
  }),
);

const format = orNull(z.union([z.literal('json'), z.literal(''), z.record(z.string(), z.unknown())]));

/** A call an earlier assistant turn made: Ollama sends the arguments as an object (a JSON string is taken too). */
const toolCall = z.looseObject({
  id: z.string().optional(),
  function: z.looseObject({ name: z.string(), arguments: z.union([z.record(z.string(), z.unknown()), z.string()]).optional() }),
});

const chatMessage = z.looseObject({
  role: z.string(),
  content: orNull(z.string()),
  images: z.array(z.unknown()).nullish(),
  tool_calls: z.array(toolCall).nullish(),
  // A tool result: the tool it came from, and (newer clients) the call it answers.
  tool_name: z.string().optional(),
  tool_call_id: z.string().optional(),
});

const chatBody = z.looseObject({
  model: z.string().min(1),
  messages: z.array(chatMessage),
  stream: orNull(z.boolean()),
  options,
  format,
  tools: z.array(z.unknown()).optional(),
  keep_alive: z.unknown().optional(),
});

const generateBody = z.looseObject({
  model: z.string().min(1),
  prompt: orNull(z.string()),
  system: orNull(z.string()),
  // Fill in the middle: the model writes what goes between prompt and suffix.
  suffix: orNull(z.string()),
  images: z.array(z.unknown()).nullish(),
  // The `context` an earlier answer returned (deprecated by Ollama, still sent by its older clients): the conversation so far.
  context: listOf(isTokenId, 'token ids').nullish(),
  raw: orNull(z.boolean()),
  // A Go template of Ollama's for this request's prompt: refused when given (the model's own chat template is used).
  template: orNull(z.string()),
  stream: orNull(z.boolean()),
  options,
  format,
  keep_alive: z.unknown().optional(),
});

type Options = z.infer<typeof options>;

function sampler(o: Options, model: LoadedModel): SamplerOptions {
  return checkedSampler({
    logitBias: logitBiasFromApi(o?.logit_bias, model, 'options.logit_bias'),
    temperature: o?.temperature,
    topP: o?.top_p,
    topK: o?.top_k,
    minP: o?.min_p,
    seed: o?.seed,
    repeatPenalty: o?.repeat_penalty,
    repeatLastN: o?.repeat_last_n,
    presencePenalty: o?.presence_penalty,
    frequencyPenalty: o?.frequency_penalty,
  });
}


async function formatConstraint(model: LoadedModel, f: z.infer<typeof format>): Promise<ServerGeneration['constraint']> {
  if (f === undefined || f === '') return undefined;
  if (f === 'json') return constraintForFormat(model, { type: 'json_object' }, 'format');
  return constraintForFormat(model, { type: 'json_schema', json_schema: { schema: f } }, 'format');
}

const ns = (ms: number) => Math.round(ms * 1e6);

function doneFields(s: GenerationSummary, t0: number): Record<string, unknown> {
  return {
    done: true,
    done_reason: s.finishReason === 'length' ? 'length' : 'stop',
    total_duration: ns(performance.now() - t0),
    load_duration: 0,
    prompt_eval_count: s.promptTokens - s.cachedTokens,
    prompt_eval_duration: ns(s.prefillMs),
    eval_count: s.completionTokens,
    eval_duration: ns(s.decodeMs),
  };
}

/** How a route shapes its answer's lines. */
interface AnswerShape {
  /** A streamed line holding `text` of the reply. */
  piece(text: string): Record<string, unknown>;
  /** The last line (done), or unstreamed the whole answer; `all` is the reply's text unstreamed, '' streamed. */
  final(s: GenerationSummary, all: string): Record<string, unknown>;
  /** With tools: the text of a generated piece that may be streamed now (what may be a call is held). */
  release?(ev: GeneratedPiece): string;
  /** With tools: the lines between the streamed text and the last one (the calls, or the text held after all). */
  held?(s: GenerationSummary): Record<string, unknown>[];
}

/** Runs a generation and answers as NDJSON lines or one object, shaped by `shape`. */
async function answer(reply: FastifyReply, metrics: ServerMetrics, stream: boolean, events: AsyncIterable<GenerationEvent>, shape: AnswerShape): Promise<void> {
  metrics.requestStarted(reply.raw);
  let summary: GenerationSummary | undefined;
  if (!stream) {
    for await (const ev of events) if (ev.type === 'done') summary = ev.summary;
    metrics.requestEnded(summary, reply.raw);
    if (!summary || summary.finishReason === 'error') throw toApiError(summary?.error);
    await reply.send(shape.final(summary, summary.text));
    return;
  }
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, { 'Content-Type': 'application/x-ndjson', 'Cache-Control': 'no-cache' });
  for await (const ev of events) {
    if (ev.type === 'done') {
      summary = ev.summary;
      break;
    }
    const text = shape.release ? shape.release(ev) : ev.text;
    if (text && !res.destroyed) res.write(JSON.stringify(shape.piece(text)) + '\n');
  }
  metrics.requestEnded(summary, reply.raw);
  if (!res.destroyed) {
    if (!summary || summary.finishReason === 'error') res.write(JSON.stringify({ error: toApiError(summary?.error).message }) + '\n');
    else if (summary.finishReason !== 'abort') {
      for (const line of shape.held?.(summary) ?? []) res.write(JSON.stringify(line) + '\n');
      res.write(JSON.stringify(shape.final(summary, '')) + '\n');
    }
    res.end();
  }
}

/** A 400 for images: the model reads text (as Ollama answers for a model without vision). */
function refuseImages(lists: readonly (readonly unknown[] | null | undefined)[], param?: string): void {
  const i = lists.findIndex((l) => l !== null && l !== undefined && l.length > 0);
  if (i >= 0) throw badRequest('Images are not supported: this model reads text.', param ?? `messages.${i}.images`);
}

/** An abort controller that fires when the client goes away before the response is written. */
function clientGone(reply: FastifyReply): AbortController {
  const abort = new AbortController();
  reply.raw.on('close', () => {
    if (!reply.raw.writableEnded) abort.abort();
  });
  return abort;
}

/** How an Ollama route shapes its lines (as AnswerShape, given the time and the done fields). */
interface OllamaShape {
  piece(text: string, created: string): Record<string, unknown>;
  final(s: GenerationSummary, all: string, created: string, done: Record<string, unknown>, prompt: number[]): Record<string, unknown>;
  release?(ev: GeneratedPiece): string;
  held?(s: GenerationSummary, created: string): Record<string, unknown>[];
}

/** Ollama's messages as the chat template takes them: calls with object arguments, a tool result's tool as its name. */
function chatMessages(list: readonly z.infer<typeof chatMessage>[]): ChatMessage[] {
  return list.map((m) => ({
    role: m.role,
    content: m.content ?? '',
    tool_calls: m.tool_calls?.map((c) => ({ id: c.id, type: 'function' as const, function: { name: c.function.name, arguments: c.function.arguments ?? {} } })),
    name: m.tool_name,
    tool_call_id: m.tool_call_id,
  }));
}

/**
 * An earlier conversation (`context`) cut to go before a prompt of `promptLength` tokens: one grown
 * past the context loses its oldest tokens (its start token kept), as Ollama truncates, with a
 * quarter of the context left for the answer. Clients send the whole conversation back every turn
 * and would otherwise fail once it is long.
 */
function fittedContext(context: readonly number[], promptLength: number, bos: number | undefined, ctx: number): readonly number[] {
  const room = ctx - Math.max(1, Math.floor(ctx / 4));
  if (context.length + promptLength <= room) return context;
  const head = context[0] === bos ? context.slice(0, 1) : [];
  const keep = Math.max(0, room - promptLength - head.length);
  return [...head, ...(keep > 0 ? context.slice(Math.max(head.length, context.length - keep)) : [])];
}

/** Calls as Ollama answers them: arguments as an object, each with its index. */
function ollamaToolCalls(calls: readonly ReplyToolCall[]): Record<string, unknown>[] {
  return calls.map((c, index) => ({ id: c.id, function: { index, name: c.name, arguments: c.arguments } }));
}

/**
 * Runs one Ollama generation: the options become sampling settings, the shapes come from the
 * route. Cheap checks come first, then the format's constraint, then the prompt (`prompt`,
 * prepared by a prompt worker).
 */
async function runOllama(
  reply: FastifyReply,
  metrics: ServerMetrics,
  model: LoadedModel,
  body: { stream?: boolean; options?: Options; format?: z.infer<typeof format> },
  abort: AbortController,
  prompt: () => Promise<number[]>,
  shape: OllamaShape,
): Promise<void> {
  const numPredict = body.options?.num_predict;
  const samplerOptions = sampler(body.options, model);
  const constraint = await formatConstraint(model, body.format);
  const ids = await prompt();
  const gen: ServerGeneration = {
    prompt: ids,
    // As Ollama's runner: a positive num_predict limits, 0 and negatives do not.
    maxTokens: numPredict !== undefined && numPredict > 0 ? numPredict : undefined,
    sampler: samplerOptions,
    stop: stopList(body.options?.stop),
    constraint,
  };
  const t0 = performance.now();
  const now = () => new Date().toISOString();
  await answer(reply, metrics, body.stream ?? true, startGeneration(model, gen, abort.signal), {
    piece: (text) => shape.piece(text, now()),
    final: (s, all) => shape.final(s, all, now(), doneFields(s, t0), ids),
    release: shape.release,
    held: shape.held && ((s) => shape.held!(s, now())),
  });
}

/** /api/show's answer for the loaded model. */
function showBody(host: ModelHost, model: LoadedModel): Record<string, unknown> {
  const m = new Metadata(model.file);
  const template = m.string('tokenizer.chat_template') ?? '';
  const arch = model.config.arch;
  const ctx = model.engine.runner.ctxPerSlot;
  // Ollama's "parameters": one `name value` line each; clients read num_ctx from it.
  const parameters = [
    `num_ctx ${ctx}`,
    `temperature ${SAMPLER_DEFAULTS.temperature}`,
    `top_k ${SAMPLER_DEFAULTS.topK}`,
    `top_p ${SAMPLER_DEFAULTS.topP}`,
    `min_p ${SAMPLER_DEFAULTS.minP}`,
    `repeat_penalty ${SAMPLER_DEFAULTS.repeatPenalty}`,
  ].join('\n');
  return {
    details: details(model),
    template,
    parameters,
    modified_at: new Date(host.created * 1000).toISOString(),
    // A template that reads `tools` can be given them.
    capabilities: model.embeddingOnly ? ['embedding'] : ['completion', ...(/\btools\b/.test(template) ? ['tools'] : [])],
    model_info: {
      'general.architecture': arch,
      'general.parameter_count': model.summary().parameters,
      [`${arch}.context_length`]: model.config.ctxTrain,
      [`${arch}.embedding_length`]: model.config.nEmbd,
      [`${arch}.block_count`]: model.config.nLayer,
    },
  };
}

/**
 * Ollama's answer to a request with nothing to generate: it loads the model (the keep-alive hook
 * did) and says `load`, or with keep_alive 0 lets it go and says `unload`.
 */
function loadOrUnload(host: ModelHost, body: { model: string; keep_alive?: unknown; messages?: unknown }): Record<string, unknown> {
  const unload = onlyUnloads(body, keepAliveMs(body.keep_alive));
  if (unload) host.requireName(body.model);
  else host.require(body.model);
  const done = { created_at: new Date().toISOString(), done: true, done_reason: unload ? 'unload' : 'load' };
  return body.messages !== undefined ? { model: host.nameFor(body.model), ...done, message: { role: 'assistant', content: '' } } : { model: host.nameFor(body.model), ...done };
}

/** Model details as /api/tags and /api/show report them. */
function details(model: LoadedModel): Record<string, unknown> {
  const s = model.summary();
  return {
    format: 'gguf',
    family: s.architecture,
    families: [s.architecture],
    parameter_size: formatCount(s.parameters),
    // The type holding the most bytes names the file's quantization (Q4_K for a Q4_K_M file).
    quantization_level: s.quantization[0]?.type ?? 'unknown',
  };
}

/**
 * The Ollama version /api/version reports: clients gate features on it (tools, structured outputs,
 * thinking), so it names the Ollama release whose API these routes follow, not cairn's own version.
 */
export const OLLAMA_API_VERSION = '0.16.0';

/** Registers the Ollama routes; `stored` gives the other models of the store, which /api/tags lists after the loaded one. */
export function registerOllamaRoutes(app: FastifyInstance, host: ModelHost, metrics: ServerMetrics, stored: () => readonly CatalogModel[] = () => []): void {
  app.get('/api/version', async () => ({ version: OLLAMA_API_VERSION }));

  // What listing and describing the model need, kept from when it was loaded: they answer while
  // keep_alive has it unloaded without loading it again.
  let described: { of: LoadedModel; size: number; details: Record<string, unknown>; show: Record<string, unknown> } | undefined;
  const describe = () => {
    const m = host.model;
    if (m && host.state === 'ready' && described?.of !== m) described = { of: m, size: m.file.fileSize, details: details(m), show: showBody(host, m) };
    return described;
  };

  app.get('/api/tags', async () => {
    const entry: Record<string, unknown> = { name: host.id, model: host.id, modified_at: new Date(host.created * 1000).toISOString(), size: 0, digest: '' };
    const d = describe();
    if (d) {
      entry.size = d.size;
      entry.details = d.details;
    }
    return { models: [entry, ...stored().map(ollamaTag)] };
  });

  app.get('/api/ps', async () => {
    const d = host.state === 'ready' ? describe() : undefined;
    // Ollama reports a model kept forever with an expiry far in the future.
    const expires = Number.isFinite(host.expiresAt) ? new Date(host.expiresAt).toISOString() : '9999-12-31T00:00:00Z';
    return { models: d ? [{ name: host.id, model: host.id, size: d.size, size_vram: 0, digest: '', details: d.details, expires_at: expires }] : [] };
  });

  app.post('/api/show', async (request) => {
    const body = parseBody(z.looseObject({ model: z.string().optional(), name: z.string().optional() }), request.body);
    const name = body.model ?? body.name ?? host.id;
    if (host.state === 'unloaded' && described) {
      host.requireName(name);
      return described.show;
    }
    host.require(name);
    return describe()!.show;
  });

  app.post('/api/chat', async (request, reply) => {
    const body = parseBody(chatBody, request.body);
    if (body.messages.length === 0) return loadOrUnload(host, body);
    const model = host.require(body.model);
    refuseImages(body.messages.map((m) => m.images));
    const messages = chatMessages(body.messages);
    body.tools?.forEach((t, i) => checkSchemaSize(t, `tools.${i}`));
    const tools = body.tools && body.tools.length > 0 ? (body.tools as ToolDefinition[]) : undefined;
    const stream = body.stream ?? true;
    // With tools, the reply is parsed for calls; streamed, text goes out only while it is prose for sure.
    const format = tools && stream ? toolCallFormat(host) : undefined;
    const gate = format ? new ProseGate(model, format) : undefined;
    const line = (created_at: string, message: Record<string, unknown>) => ({ model: host.id, created_at, message: { role: 'assistant', ...message }, done: false });
    const abort = clientGone(reply);
    await runOllama(reply, metrics, model, body, abort, () => host.prompts.chat(messages, { tools }, abort.signal), {
      piece: (text, created_at) => line(created_at, { content: text }),
      release: gate && ((ev) => gate.push(ev)),
      // As Ollama streams a call: in a line of its own, when complete, none of its text sent as content.
      held: gate && ((s, created_at) => {
        const calls = replyToolCalls(host, model, s, gate.streamedRaw);
        if (calls) return [line(created_at, { content: calls.content ?? '', tool_calls: ollamaToolCalls(calls.calls) })];
        const rest = gate.rest();
        return rest ? [line(created_at, { content: rest })] : [];
      }),
      final: (s, all, created_at, done) => {
        const calls = tools && !stream ? replyToolCalls(host, model, s) : undefined;
        const message = calls ? { role: 'assistant', content: calls.content ?? '', tool_calls: ollamaToolCalls(calls.calls) } : { role: 'assistant', content: all };
        return { model: host.id, created_at, message, ...done };
      },
    });
  });

  app.post('/api/generate', async (request, reply) => {
    const body = parseBody(generateBody, request.body);
    if (body.prompt === undefined || body.prompt === '') return { ...loadOrUnload(host, body), response: '' };
    const model = host.require(body.model);
    refuseImages([body.images], 'images');
    if (body.template) throw badRequest("A request's own template (Ollama's Go template syntax) is not supported: the model's chat template is used; send raw: true with the prompt laid out as you need it.", 'template');
    const text = body.prompt;
    const messages = [...(body.system ? [{ role: 'system', content: body.system }] : []), { role: 'user', content: text }] as ChatMessage[];
    const abort = clientGone(reply);
    // Answering without the suffix or the earlier context would answer another question than the one asked.
    const prompt = async () => {
      if (body.suffix) return fillInTheMiddle(host, model, text, body.suffix, abort.signal);
      const ids = await (body.raw ? host.prompts.text(text, abort.signal) : host.prompts.chat(messages, {}, abort.signal));
      if (!body.context || body.context.length === 0) return ids;
      // The context starts with its own BOS: the prompt's would sit in the middle of the conversation.
      const bos = model.tokenizer.vocab.special.bos;
      const rest = ids[0] === bos ? ids.slice(1) : ids;
      const context = fittedContext(body.context, rest.length, bos, model.engine.runner.ctxPerSlot);
      return checkIds(model, [...context, ...rest], 'the context with the prompt', 'context');
    };
    await runOllama(
      reply,
      metrics,
      model,
      body,
      abort,
      prompt,
      {
        piece: (text, created_at) => ({ model: host.id, created_at, response: text, done: false }),
        final: (s, all, created_at, done, prompt) => ({ model: host.id, created_at, response: all, ...done, context: [...prompt, ...s.tokens] }),
      },
    );
  });
}
