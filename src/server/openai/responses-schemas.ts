/**
 * Request bodies of OpenAI's Responses API (POST /v1/responses) as zod schemas, with the same
 * leniency as the chat schemas: unknown fields are dropped (unknownResponseFields() lists them),
 * known ones are checked, and what would change the answer's meaning and cannot be honoured here
 * (images and files in the input, built-in tools, background runs, stored prompts) is refused by
 * name (unsupportedResponseField()) before the body is parsed.
 */
import { z } from 'zod';

/** Most input items in one request (the body limit bounds their bytes). */
export const MAX_INPUT_ITEMS = 10_000;

const inputText = z.object({ type: z.literal('input_text'), text: z.string() });
// An assistant message sent back as the API returned it.
const outputText = z.object({ type: z.literal('output_text'), text: z.string() });
const refusal = z.object({ type: z.literal('refusal'), refusal: z.string() });
const contentPart = z.discriminatedUnion('type', [inputText, outputText, refusal]);

const messageItem = z.object({
  type: z.literal('message'),
  role: z.enum(['user', 'system', 'developer', 'assistant']),
  content: z.union([z.string(), z.array(contentPart)]),
  id: z.string().optional(),
  status: z.string().optional(),
});

const functionCallItem = z.object({
  type: z.literal('function_call'),
  call_id: z.string().min(1),
  name: z.string().min(1),
  arguments: z.string(),
  id: z.string().optional(),
  status: z.string().optional(),
});

const functionCallOutputItem = z.object({
  type: z.literal('function_call_output'),
  call_id: z.string().min(1),
  output: z.union([z.string(), z.array(inputText)]),
  id: z.string().nullable().optional(),
  status: z.string().nullable().optional(),
});

// A reasoning model's item sent back; this server writes none and leaves them out of the prompt.
const reasoningItem = z.object({ type: z.literal('reasoning') });

/** One input item; a message may omit `type` (OpenAI's "easy input message"). */
export const inputItem = z.preprocess(
  (v) => (isRecord(v) && v.type === undefined ? { ...v, type: 'message' } : v),
  z.discriminatedUnion('type', [messageItem, functionCallItem, functionCallOutputItem, reasoningItem]),
);

const functionTool = z.object({
  type: z.literal('function'),
  name: z.string().min(1).max(256),
  description: z.string().nullable().optional(),
  parameters: z.record(z.string(), z.unknown()).nullable().optional(),
  strict: z.boolean().nullable().optional(),
});

const textFormat = z.discriminatedUnion('type', [
  z.object({ type: z.literal('text') }),
  z.object({ type: z.literal('json_object') }),
  z.object({
    type: z.literal('json_schema'),
    name: z.string().max(256).optional(),
    description: z.string().optional(),
    schema: z.record(z.string(), z.unknown()),
    strict: z.boolean().nullable().optional(),
  }),
]);

/** POST /v1/responses */
export const responseCreateRequest = z.object({
  model: z.string().min(1).optional(),
  // Items are checked by responseInputItems, so that an error names the item's field.
  input: z.union([z.string(), z.array(z.unknown()).max(MAX_INPUT_ITEMS)]).optional(),
  instructions: z.string().nullable().optional(),
  previous_response_id: z.string().max(256).nullable().optional(),
  tools: z.array(functionTool).max(1024).nullable().optional(),
  tool_choice: z
    .union([z.enum(['none', 'auto', 'required']), z.object({ type: z.literal('function'), name: z.string().min(1) })])
    .nullable()
    .optional(),
  parallel_tool_calls: z.boolean().nullable().optional(),
  text: z.object({ format: textFormat.nullable().optional() }).nullable().optional(),
  temperature: z.number().min(0).max(2).nullable().optional(),
  top_p: z.number().min(0).max(1).nullable().optional(),
  max_output_tokens: z.number().int().min(1).nullable().optional(),
  stream: z.boolean().nullable().optional(),
  store: z.boolean().nullable().optional(),
  // OpenAI's limits: 16 pairs, keys up to 64 characters, values up to 512.
  metadata: z
    .record(z.string().max(64), z.string().max(512))
    .refine((m) => Object.keys(m).length <= 16, 'at most 16 pairs')
    .nullable()
    .optional(),
  user: z.string().max(256).optional(),
  // Accepted and ignored: no served model takes a reasoning effort.
  reasoning: z.object({}).loose().nullable().optional(),
  truncation: z.enum(['auto', 'disabled']).nullable().optional(),
});

/** The input items of a request body whose `input` is a list. */
export const responseInputItems = z.object({ input: z.array(inputItem) });

export type ResponseCreateRequest = z.infer<typeof responseCreateRequest>;
/** An input item after validation. */
export type InputItem = z.infer<typeof inputItem>;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const REQUEST_KEYS = new Set(Object.keys(responseCreateRequest.shape));
const ITEM_KEYS: Record<string, Set<string>> = {
  message: new Set(Object.keys(messageItem.shape)),
  function_call: new Set(Object.keys(functionCallItem.shape)),
  function_call_output: new Set(Object.keys(functionCallOutputItem.shape)),
};
const TOOL_KEYS = new Set(Object.keys(functionTool.shape));

/**
 * The fields of a request body that cairn does not know and ignores, by path (`include`,
 * `input[].phase`, `text.verbosity`), each once. Reasoning items count as one such field.
 */
export function unknownResponseFields(body: unknown): string[] {
  if (!isRecord(body)) return [];
  const out = new Set<string>();
  for (const k of Object.keys(body)) if (!REQUEST_KEYS.has(k) || (k === 'reasoning' && !unsetValue(body.reasoning))) out.add(k);
  if (isRecord(body.text)) for (const k of Object.keys(body.text)) if (k !== 'format') out.add(`text.${k}`);
  if (Array.isArray(body.tools)) for (const t of body.tools) if (isRecord(t)) for (const k of Object.keys(t)) if (!TOOL_KEYS.has(k)) out.add(`tools[].${k}`);
  if (Array.isArray(body.input)) {
    for (const item of body.input) {
      if (!isRecord(item)) continue;
      const type = typeof item.type === 'string' ? item.type : 'message';
      if (type === 'reasoning') out.add('input[].reasoning');
      const known = ITEM_KEYS[type];
      if (known) for (const k of Object.keys(item)) if (!known.has(k)) out.add(`input[].${k}`);
    }
  }
  return [...out];
}

function unsetValue(v: unknown): boolean {
  return v === undefined || v === null || v === false || (Array.isArray(v) && v.length === 0) || (isRecord(v) && Object.keys(v).length === 0);
}

const TEXT_PARTS = new Set(['input_text', 'output_text', 'refusal']);
const ITEM_TYPES = new Set(['message', 'function_call', 'function_call_output', 'reasoning']);

/** A part type as it may be quoted in a message (bounded, so a hostile one cannot fill the log). */
function typeName(v: unknown): string {
  return isRecord(v) && typeof v.type === 'string' ? v.type.slice(0, 64) : 'unknown';
}

/**
 * A field of a Responses request that would change what the answer means and that cairn cannot
 * honour, with why, or undefined.
 */
export function unsupportedResponseField(body: unknown): { param: string; message: string } | undefined {
  if (!isRecord(body)) return undefined;
  if (body.background === true) return { param: 'background', message: 'Background responses are not supported; send the request and wait for it (or stream it).' };
  if (!unsetValue(body.conversation)) return { param: 'conversation', message: "Conversations are not supported; continue a response with 'previous_response_id'." };
  if (!unsetValue(body.prompt)) return { param: 'prompt', message: "Stored prompt templates are not supported; send 'instructions' and 'input'." };
  if (Array.isArray(body.tools)) {
    for (const [i, t] of body.tools.entries()) {
      if (isRecord(t) && t.type !== 'function') {
        return { param: `tools.${i}.type`, message: `Tools of type '${typeName(t)}' are not supported: only function tools can be served here (built-in tools run on OpenAI's servers).` };
      }
    }
  }
  if (isRecord(body.tool_choice) && body.tool_choice.type !== 'function') {
    return { param: 'tool_choice', message: `tool_choice of type '${typeName(body.tool_choice)}' is not supported: send 'none', 'auto', 'required' or {"type": "function", "name": ...}.` };
  }
  if (!Array.isArray(body.input)) return undefined;
  for (const [i, item] of body.input.entries()) {
    if (!isRecord(item)) continue;
    const type = item.type === undefined ? 'message' : typeName(item);
    if (!ITEM_TYPES.has(type)) {
      return { param: `input.${i}`, message: `Input items of type '${type}' are not supported: send messages, function_call and function_call_output items.` };
    }
    const parts = type === 'message' ? item.content : type === 'function_call_output' ? item.output : undefined;
    if (!Array.isArray(parts)) continue;
    const j = parts.findIndex((p) => isRecord(p) && typeof p.type === 'string' && !TEXT_PARTS.has(p.type));
    if (j >= 0) {
      const field = type === 'message' ? 'content' : 'output';
      return { param: `input.${i}.${field}.${j}`, message: `Content of type '${typeName(parts[j])}' is not supported: this model reads text.` };
    }
  }
  return undefined;
}
