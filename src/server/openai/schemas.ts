/**
 * Request bodies of the OpenAI API as zod schemas. Clients are sloppy in what they send: the
 * official SDKs send an assistant message back with the fields they added to it (`parsed`,
 * `annotations`, `audio: null`, `function_call: null`), front ends pass user parameters through
 * (`reasoning_effort`), proxies add their own (`cache_control`). Unknown fields are therefore
 * dropped (unknownFields() lists them, for a debug log line), while the known ones are checked,
 * and fields that would change what the answer means, which cairn cannot honour (legacy
 * `functions`, audio output, images in the input), are refused by name (unsupportedField()).
 */
import { z } from 'zod';
import { badRequest } from '../errors.js';
import { isString, isTokenId, listOf } from '../list-schemas.js';

const textPart = z.object({ type: z.literal('text'), text: z.string() });
// An assistant message sent back as OpenAI wrote it may hold a refusal part: its words, as text.
const refusalPart = z.object({ type: z.literal('refusal'), refusal: z.string() }).transform((p) => ({ type: 'text' as const, text: p.refusal }));

const toolCall = z.object({
  id: z.string().optional(),
  type: z.literal('function').optional(),
  function: z.object({ name: z.string(), arguments: z.string() }),
  index: z.number().int().optional(),
});

/** One chat message. `developer` is OpenAI's newer name for `system`. */
export const chatMessage = z.object({
  role: z.enum(['system', 'developer', 'user', 'assistant', 'tool']),
  content: z.union([z.string(), z.array(z.union([textPart, refusalPart])), z.null()]).optional(),
  // Python's model_dump() sends the fields it does not have as null (`tool_calls: None`).
  name: z.string().nullish(),
  tool_calls: z.array(toolCall).nullish(),
  tool_call_id: z.string().nullish(),
  reasoning_content: z.string().nullish(),
  refusal: z.string().nullable().optional(),
});

const toolDefinition = z.object({
  type: z.literal('function'),
  function: z.object({
    name: z.string().min(1),
    description: z.string().optional(),
    parameters: z.record(z.string(), z.unknown()).optional(),
    strict: z.boolean().nullable().optional(),
  }),
});

const stop = z.union([z.string(), listOf(isString, 'strings', { max: 16 })]).nullable().optional();

/** Sampling fields shared by chat and text completions (OpenAI names plus llama.cpp extensions). */
const sampling = {
  model: z.string().min(1),
  temperature: z.number().min(0).max(2).nullable().optional(),
  top_p: z.number().min(0).max(1).nullable().optional(),
  top_k: z.number().int().min(0).nullable().optional(),
  min_p: z.number().min(0).max(1).nullable().optional(),
  // A factor the logits are divided by: 0 is no penalty but a division by zero (1 is off).
  repeat_penalty: z.number().positive().nullable().optional(),
  presence_penalty: z.number().min(-2).max(2).nullable().optional(),
  frequency_penalty: z.number().min(-2).max(2).nullable().optional(),
  // -1: a random seed, as llama.cpp takes it; other seeds are non-negative.
  seed: z.number().int().min(-1).nullable().optional(),
  stop,
  stream: z.boolean().nullable().optional(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullable().optional(),
  /** Choices per request (per prompt for text completions), generated side by side. */
  n: z.number().int().min(1).max(64).nullable().optional(),
  logit_bias: z.record(z.string().regex(/^\d+$/, 'keys must be token ids'), z.number().min(-100).max(100)).nullable().optional(),
  user: z.string().optional(),
  ignore_eos: z.boolean().optional(),
  /** llama.cpp server's name: most draft tokens checked per step for this request (0 = no speculative decoding). */
  'speculative.n_max': z.number().int().min(0).max(64).optional(),
};

const responseFormat = z.discriminatedUnion('type', [
  z.object({ type: z.literal('text') }),
  z.object({ type: z.literal('json_object') }),
  z.object({
    type: z.literal('json_schema'),
    json_schema: z.object({
      name: z.string().optional(),
      description: z.string().optional(),
      schema: z.record(z.string(), z.unknown()).optional(),
      strict: z.boolean().nullable().optional(),
    }),
  }),
]);

/** POST /v1/chat/completions */
export const chatCompletionRequest = z.object({
  ...sampling,
  messages: z.array(chatMessage).min(1),
  max_tokens: z.number().int().min(1).nullable().optional(),
  max_completion_tokens: z.number().int().min(1).nullable().optional(),
  logprobs: z.boolean().nullable().optional(),
  top_logprobs: z.number().int().min(0).max(20).nullable().optional(),
  response_format: responseFormat.nullable().optional(),
  /** llama-server's field: a JSON schema the reply follows (response_format's json_schema.schema). */
  json_schema: z.record(z.string(), z.unknown()).nullable().optional(),
  tools: z.array(toolDefinition).nullable().optional(),
  tool_choice: z
    .union([z.enum(['none', 'auto', 'required']), z.object({ type: z.literal('function'), function: z.object({ name: z.string() }) })])
    .nullable()
    .optional(),
  parallel_tool_calls: z.boolean().nullable().optional(),
  store: z.boolean().nullable().optional(),
  metadata: z.record(z.string(), z.string()).nullable().optional(),
  chat_template_kwargs: z.record(z.string(), z.unknown()).optional(),
});

/** POST /v1/completions */
export const completionRequest = z.object({
  ...sampling,
  prompt: z.union([
    z.string(),
    listOf(isString, 'strings', { min: 1, max: 64 }),
    listOf(isTokenId, 'token ids', { min: 1 }),
    listOf((v): v is number[] => Array.isArray(v) && v.length > 0 && v.every(isTokenId), 'token id lists', { min: 1, max: 64 }),
  ], { error: 'expected a string, 1 to 64 strings, a list of token ids, or 1 to 64 lists of token ids' }),
  max_tokens: z.number().int().min(0).nullable().optional(),
  logprobs: z.number().int().min(0).max(5).nullable().optional(),
  echo: z.boolean().nullable().optional(),
  suffix: z.string().nullable().optional(),
  best_of: z.number().int().min(1).nullable().optional(),
  // Constrained output, as on the chat route (json_schema: llama-server's field).
  response_format: responseFormat.nullable().optional(),
  json_schema: z.record(z.string(), z.unknown()).nullable().optional(),
});

/** The output format a request asks for: response_format, or llama-server's json_schema; both is a 400. */
export function requestedFormat(req: { response_format?: z.infer<typeof responseFormat> | null; json_schema?: Record<string, unknown> | null }): z.infer<typeof responseFormat> | undefined {
  if (req.json_schema !== undefined && req.json_schema !== null) {
    if (req.response_format && req.response_format.type !== 'text') throw badRequest('give either response_format or json_schema, not both', 'json_schema');
    return { type: 'json_schema', json_schema: { schema: req.json_schema } };
  }
  return req.response_format ?? undefined;
}

export type ChatCompletionRequest = z.infer<typeof chatCompletionRequest>;
export type CompletionRequest = z.infer<typeof completionRequest>;

/** The fields of an object schema's shape. */
function keysOf(schema: z.ZodObject): Set<string> {
  return new Set(Object.keys(schema.shape));
}

const CHAT_KEYS = keysOf(chatCompletionRequest);
const COMPLETION_KEYS = keysOf(completionRequest);
const MESSAGE_KEYS = keysOf(chatMessage);

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Most unknown fields listed for one request. */
const MAX_UNKNOWN = 100;

/**
 * The fields of a request body that cairn does not know and ignores, by path (`reasoning_effort`,
 * `messages[].annotations`), each once.
 */
export function unknownFields(body: unknown, kind: 'chat' | 'completion'): string[] {
  if (!isRecord(body)) return [];
  const out = new Set<string>();
  const known = kind === 'chat' ? CHAT_KEYS : COMPLETION_KEYS;
  // At most MAX_UNKNOWN: a body of a hundred thousand made-up fields is not worth listing.
  for (const k in body) {
    if (out.size >= MAX_UNKNOWN) return [...out];
    if (!known.has(k)) out.add(k);
  }
  if (kind === 'chat' && Array.isArray(body.messages)) {
    for (const m of body.messages) {
      if (!isRecord(m)) continue;
      for (const k in m) {
        if (out.size >= MAX_UNKNOWN) return [...out];
        if (!MESSAGE_KEYS.has(k)) out.add(`messages[].${k}`);
      }
    }
  }
  return [...out];
}

/** Nothing set: absent, null, false, or an empty list. */
function unset(v: unknown): boolean {
  return v === undefined || v === null || v === false || (Array.isArray(v) && v.length === 0);
}

/**
 * A field of a chat request that would change what the answer means and that cairn cannot honour,
 * with why, or undefined. (Ignoring these would answer another question than the one asked.)
 */
export function unsupportedField(body: unknown): { param: string; message: string } | undefined {
  if (!isRecord(body)) return undefined;
  if (!unset(body.functions) || !unset(body.function_call)) {
    return { param: unset(body.functions) ? 'function_call' : 'functions', message: "Legacy 'functions' / 'function_call' are not supported; send 'tools' / 'tool_choice'." };
  }
  if (Array.isArray(body.modalities) && body.modalities.some((m) => m !== 'text')) {
    return { param: 'modalities', message: 'Only text output is supported (modalities: ["text"]).' };
  }
  if (!unset(body.audio)) return { param: 'audio', message: 'Audio output is not supported.' };
  if (!unset(body.prediction)) return { param: 'prediction', message: 'Predicted outputs are not supported.' };
  if (!unset(body.web_search_options)) return { param: 'web_search_options', message: 'Web search is not supported.' };
  if (!unset(body.grammar)) return { param: 'grammar', message: 'GBNF grammars are not supported; constrain the output with response_format (json_schema) or json_schema instead.' };
  if (Array.isArray(body.messages)) {
    for (const [i, m] of body.messages.entries()) {
      if (!isRecord(m) || !Array.isArray(m.content)) continue;
      const part = m.content.find((p) => isRecord(p) && p.type !== 'text' && p.type !== 'refusal');
      if (part) {
        const type = isRecord(part) ? String(part.type) : 'unknown';
        return { param: `messages.${i}.content`, message: `Content parts of type '${type}' are not supported: this model reads text.` };
      }
    }
  }
  return undefined;
}

/** Turns a zod failure into one sentence naming the field. */
export function describeZodError(err: z.ZodError): { message: string; param: string | null } {
  const issue = err.issues[0];
  if (!issue) return { message: 'invalid request', param: null };
  const path = issue.path.map(String).join('.');
  if (issue.code === 'unrecognized_keys') {
    const keys = (issue as { keys: string[] }).keys;
    const where = path ? `${path}.` : '';
    return { message: `Unknown parameter: ${keys.map((k) => `'${where}${k}'`).join(', ')}.`, param: `${where}${keys[0]}` };
  }
  return { message: `Invalid parameter '${path || '(body)'}': ${issue.message}.`, param: path || null };
}
