/**
 * Request bodies of the OpenAI API as zod schemas. Unknown fields are refused (strict objects) so
 * a misspelled parameter is a 400 that names it, not a silently ignored setting. Fields OpenAI
 * defines but cairn does not act on are accepted only where ignoring them changes nothing
 * (`user`, `store`, `metadata`).
 */
import { z } from 'zod';

const textPart = z.strictObject({ type: z.literal('text'), text: z.string() });

const toolCall = z.strictObject({
  id: z.string().optional(),
  type: z.literal('function').optional(),
  function: z.strictObject({ name: z.string(), arguments: z.string() }),
  index: z.number().int().optional(),
});

/** One chat message. `developer` is OpenAI's newer name for `system`. */
export const chatMessage = z.strictObject({
  role: z.enum(['system', 'developer', 'user', 'assistant', 'tool']),
  content: z.union([z.string(), z.array(textPart), z.null()]).optional(),
  name: z.string().optional(),
  tool_calls: z.array(toolCall).optional(),
  tool_call_id: z.string().optional(),
  reasoning_content: z.string().optional(),
  refusal: z.string().nullable().optional(),
});

const toolDefinition = z.strictObject({
  type: z.literal('function'),
  function: z.strictObject({
    name: z.string().min(1),
    description: z.string().optional(),
    parameters: z.record(z.string(), z.unknown()).optional(),
    strict: z.boolean().nullable().optional(),
  }),
});

const stop = z.union([z.string(), z.array(z.string()).max(16)]).nullable().optional();

/** Sampling fields shared by chat and text completions (OpenAI names plus llama.cpp extensions). */
const sampling = {
  model: z.string().min(1),
  temperature: z.number().min(0).max(2).nullable().optional(),
  top_p: z.number().min(0).max(1).nullable().optional(),
  top_k: z.number().int().min(0).nullable().optional(),
  min_p: z.number().min(0).max(1).nullable().optional(),
  repeat_penalty: z.number().min(0).nullable().optional(),
  presence_penalty: z.number().min(-2).max(2).nullable().optional(),
  frequency_penalty: z.number().min(-2).max(2).nullable().optional(),
  seed: z.number().int().nullable().optional(),
  stop,
  stream: z.boolean().nullable().optional(),
  stream_options: z.strictObject({ include_usage: z.boolean().optional() }).nullable().optional(),
  n: z.literal(1, { message: 'only n = 1 is supported' }).nullable().optional(),
  logit_bias: z.record(z.string().regex(/^\d+$/, 'keys must be token ids'), z.number().min(-100).max(100)).nullable().optional(),
  user: z.string().optional(),
  ignore_eos: z.boolean().optional(),
};

const responseFormat = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('text') }),
  z.strictObject({ type: z.literal('json_object') }),
  z.strictObject({
    type: z.literal('json_schema'),
    json_schema: z.strictObject({
      name: z.string().optional(),
      description: z.string().optional(),
      schema: z.record(z.string(), z.unknown()).optional(),
      strict: z.boolean().nullable().optional(),
    }),
  }),
]);

/** POST /v1/chat/completions */
export const chatCompletionRequest = z.strictObject({
  ...sampling,
  messages: z.array(chatMessage).min(1),
  max_tokens: z.number().int().min(1).nullable().optional(),
  max_completion_tokens: z.number().int().min(1).nullable().optional(),
  logprobs: z.boolean().nullable().optional(),
  top_logprobs: z.number().int().min(0).max(20).nullable().optional(),
  response_format: responseFormat.nullable().optional(),
  tools: z.array(toolDefinition).nullable().optional(),
  tool_choice: z
    .union([z.enum(['none', 'auto', 'required']), z.strictObject({ type: z.literal('function'), function: z.strictObject({ name: z.string() }) })])
    .nullable()
    .optional(),
  parallel_tool_calls: z.boolean().nullable().optional(),
  store: z.boolean().nullable().optional(),
  metadata: z.record(z.string(), z.string()).nullable().optional(),
  chat_template_kwargs: z.record(z.string(), z.unknown()).optional(),
});

/** POST /v1/completions */
export const completionRequest = z.strictObject({
  ...sampling,
  prompt: z.union([z.string(), z.array(z.string()).length(1), z.array(z.number().int().min(0)).min(1), z.array(z.array(z.number().int().min(0)).min(1)).length(1)]),
  max_tokens: z.number().int().min(0).nullable().optional(),
  logprobs: z.number().int().min(0).max(5).nullable().optional(),
  echo: z.boolean().nullable().optional(),
  suffix: z.null().optional(),
  best_of: z.literal(1).nullable().optional(),
});

export type ChatCompletionRequest = z.infer<typeof chatCompletionRequest>;
export type CompletionRequest = z.infer<typeof completionRequest>;

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
