/**
 * The Ollama API shapes many desktop clients speak: /api/chat, /api/generate (NDJSON streams by
 * default), /api/tags, /api/show, /api/ps and /api/version. Options Ollama defines but cairn has
 * no use for (num_ctx, num_thread, ...) are accepted and ignored, as Ollama itself does for
 * options a model does not use.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { z } from 'zod';
import type { ChatMessage } from '../../engine/chat.js';
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
import { SAMPLER_DEFAULTS, type SamplerOptions } from '../../sampling/index.js';

const options = z
  .looseObject({
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
  })
  .optional();

const format = z.union([z.literal('json'), z.literal(''), z.record(z.string(), z.unknown())]).optional();

const chatBody = z.looseObject({
  model: z.string().min(1),
  messages: z.array(
    z.looseObject({ role: z.string(), content: z.string().optional(), images: z.array(z.unknown()).nullish(), tool_calls: z.array(z.unknown()).optional() }),
  ),
  stream: z.boolean().optional(),
  options,
  format,
  tools: z.array(z.unknown()).optional(),
  keep_alive: z.unknown().optional(),
});

const generateBody = z.looseObject({
  model: z.string().min(1),
  prompt: z.string().optional(),
  system: z.string().optional(),
  // Fill in the middle: the model writes what goes between prompt and suffix.
  suffix: z.string().optional(),
  images: z.array(z.unknown()).nullish(),
  // The `context` an earlier answer returned (deprecated by Ollama, still sent by its older clients): the conversation so far.
  context: listOf(isTokenId, 'token ids').nullish(),
  raw: z.boolean().optional(),
  stream: z.boolean().optional(),
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

/** Runs a generation and answers as NDJSON lines or one object; `piece` shapes each line. */
async function answer(
  reply: FastifyReply,
  metrics: ServerMetrics,
  stream: boolean,
  events: AsyncIterable<GenerationEvent>,
  piece: (text: string) => Record<string, unknown>,
  final: (s: GenerationSummary, all: string) => Record<string, unknown>,
): Promise<void> {
  metrics.requestStarted(reply.raw);
  let summary: GenerationSummary | undefined;
  if (!stream) {
    for await (const ev of events) if (ev.type === 'done') summary = ev.summary;
    metrics.requestEnded(summary, reply.raw);
    if (!summary || summary.finishReason === 'error') throw toApiError(summary?.error);
    await reply.send(final(summary, summary.text));
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
    if (ev.text && !res.destroyed) res.write(JSON.stringify(piece(ev.text)) + '\n');
  }
  metrics.requestEnded(summary, reply.raw);
  if (!res.destroyed) {
    if (!summary || summary.finishReason === 'error') res.write(JSON.stringify({ error: toApiError(summary?.error).message }) + '\n');
    else if (summary.finishReason !== 'abort') res.write(JSON.stringify(final(summary, '')) + '\n');
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
  piece: (text: string, created: string) => Record<string, unknown>,
  final: (s: GenerationSummary, all: string, created: string, done: Record<string, unknown>, prompt: number[]) => Record<string, unknown>,
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
  await answer(
    reply,
    metrics,
    body.stream ?? true,
    startGeneration(model, gen, abort.signal),
    (text) => piece(text, now()),
    (s, all) => final(s, all, now(), doneFields(s, t0), ids),
  );
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
    const messages = body.messages.map((m) => ({ role: m.role, content: m.content ?? '' }) as ChatMessage);
    body.tools?.forEach((t, i) => checkSchemaSize(t, `tools.${i}`));
    const abort = clientGone(reply);
    await runOllama(
      reply,
      metrics,
      model,
      body,
      abort,
      () => host.prompts.chat(messages, { tools: body.tools as never }, abort.signal),
      (text, created_at) => ({ model: host.id, created_at, message: { role: 'assistant', content: text }, done: false }),
      (_s, all, created_at, done) => ({ model: host.id, created_at, message: { role: 'assistant', content: all }, ...done }),
    );
  });

  app.post('/api/generate', async (request, reply) => {
    const body = parseBody(generateBody, request.body);
    if (body.prompt === undefined || body.prompt === '') return { ...loadOrUnload(host, body), response: '' };
    const model = host.require(body.model);
    refuseImages([body.images], 'images');
    const text = body.prompt;
    const messages = [...(body.system ? [{ role: 'system', content: body.system }] : []), { role: 'user', content: text }] as ChatMessage[];
    const abort = clientGone(reply);
    // Answering without the suffix or the earlier context would answer another question than the one asked.
    const prompt = async () => {
      if (body.suffix) return fillInTheMiddle(host, model, text, body.suffix, abort.signal);
      const ids = await (body.raw ? host.prompts.text(text, abort.signal) : host.prompts.chat(messages, {}, abort.signal));
      if (!body.context || body.context.length === 0) return ids;
      // The context starts with its own BOS: the prompt's would sit in the middle of the conversation.
      const rest = ids[0] === model.tokenizer.vocab.special.bos ? ids.slice(1) : ids;
      return checkIds(model, [...body.context, ...rest], 'the context with the prompt', 'context');
    };
    await runOllama(
      reply,
      metrics,
      model,
      body,
      abort,
      prompt,
      (text, created_at) => ({ model: host.id, created_at, response: text, done: false }),
      (s, all, created_at, done, prompt) => ({ model: host.id, created_at, response: all, ...done, context: [...prompt, ...s.tokens] }),
    );
  });
}
