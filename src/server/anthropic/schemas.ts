/**
 * Request bodies of Anthropic's Messages API as zod schemas. As on the OpenAI routes, unknown
 * fields are dropped (and told, see unknownFields()), while what would change the answer and
 * cannot be honoured (images, documents, tools that run on Anthropic's servers) is refused by name
 * (unsupportedContent()). `cache_control` is accepted anywhere Anthropic takes it and ignored:
 * every prompt's prefix is cached here without being asked.
 */
import { z } from 'zod';

/** Accepted and ignored (see the file comment). */
const cacheControl = z.unknown().optional();

const textBlock = z.object({
  type: z.literal('text'),
  text: z.string(),
  cache_control: cacheControl,
  citations: z.unknown().optional(),
});

const toolUseBlock = z.object({
  type: z.literal('tool_use'),
  id: z.string().min(1),
  name: z.string().min(1),
  input: z.record(z.string(), z.unknown()),
  cache_control: cacheControl,
});

const toolResultBlock = z.object({
  type: z.literal('tool_result'),
  tool_use_id: z.string().min(1),
  content: z.union([z.string(), z.array(textBlock)]).optional(),
  is_error: z.boolean().optional(),
  cache_control: cacheControl,
});

// Sent back by clients that had thinking blocks in an earlier answer (another server's, or a
// reasoning model's own).
const thinkingBlock = z.object({ type: z.literal('thinking'), thinking: z.string(), signature: z.string().optional() });
const redactedThinkingBlock = z.object({ type: z.literal('redacted_thinking'), data: z.string() });

/** The content block types a message may hold here. */
export const CONTENT_BLOCK_TYPES = ['text', 'tool_use', 'tool_result', 'thinking', 'redacted_thinking'] as const;

const contentBlock = z.discriminatedUnion('type', [textBlock, toolUseBlock, toolResultBlock, thinkingBlock, redactedThinkingBlock]);

/** One message. `system` in `messages` is what the newest SDKs allow beside the `system` field. */
export const anthropicMessage = z.object({
  role: z.enum(['user', 'assistant', 'system']),
  content: z.union([z.string(), z.array(contentBlock)]),
});

const tool = z.object({
  name: z.string().min(1).max(256),
  description: z.string().optional(),
  input_schema: z.record(z.string(), z.unknown()),
  type: z.literal('custom').optional(),
  cache_control: cacheControl,
  strict: z.boolean().optional(),
});

const toolChoice = z.discriminatedUnion('type', [
  z.object({ type: z.literal('auto'), disable_parallel_tool_use: z.boolean().optional() }),
  z.object({ type: z.literal('any'), disable_parallel_tool_use: z.boolean().optional() }),
  z.object({ type: z.literal('tool'), name: z.string().min(1), disable_parallel_tool_use: z.boolean().optional() }),
  z.object({ type: z.literal('none') }),
]);

const jsonOutputFormat = z.object({ type: z.literal('json_schema'), schema: z.record(z.string(), z.unknown()) });

const fields = {
  model: z.string().min(1),
  messages: z.array(anthropicMessage).min(1),
  system: z.union([z.string(), z.array(textBlock)]).optional(),
  tools: z.array(tool).optional(),
  tool_choice: toolChoice.optional(),
  // Extended thinking is a budget for a model that reasons in blocks of its own; the models served
  // here reason (or not) as their template has them, in their text. Accepted so that clients that
  // always send it (Claude Code) work, and ignored.
  thinking: z.unknown().optional(),
  output_config: z.object({ effort: z.unknown().optional(), format: jsonOutputFormat.nullable().optional() }).optional(),
  // The older name of output_config.format.
  output_format: jsonOutputFormat.nullable().optional(),
  metadata: z.unknown().optional(),
  cache_control: cacheControl,
};

/** POST /v1/messages */
export const messagesRequest = z.object({
  ...fields,
  // Required, as Anthropic requires it: a client that forgets it learns at once, not on Anthropic.
  max_tokens: z.number({ error: (issue) => (issue.input === undefined ? 'required (the most tokens to generate)' : undefined) }).int().min(1),
  stop_sequences: z.array(z.string().min(1)).max(16).optional(),
  temperature: z.number().min(0).max(1).optional(),
  top_p: z.number().min(0).max(1).optional(),
  top_k: z.number().int().min(0).optional(),
  stream: z.boolean().optional(),
  service_tier: z.unknown().optional(),
});

/**
 * POST /v1/messages/count_tokens: the fields that make the prompt. Those of generation are
 * known too (a client may send the request it is about to make) and have no effect.
 */
export const countTokensRequest = messagesRequest.extend({ max_tokens: messagesRequest.shape.max_tokens.optional() });

export type MessagesRequest = z.infer<typeof messagesRequest>;
export type CountTokensRequest = z.infer<typeof countTokensRequest>;
export type AnthropicMessage = z.infer<typeof anthropicMessage>;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The fields of `body` that the schema dropped, by path (`messages[].content[].citations_x`), at
 * most 100. Found by walking the body beside what the schema made of it: a key of an object the
 * schema kept whose value it did not keep is unknown. (Fields the schema takes whole, such as
 * `input_schema` or `metadata`, keep every key, so nothing inside them counts.)
 */
export function unknownFields(body: unknown, parsed: unknown): string[] {
  const out = new Set<string>();
  const walk = (raw: unknown, kept: unknown, path: string): void => {
    // A value the schema kept as it came (`metadata`, a tool_use `input`) dropped nothing inside
    // it: walking it would only recurse as deep as the client nested it, to a stack overflow.
    if (out.size >= 100 || raw === kept) return;
    if (Array.isArray(raw) && Array.isArray(kept)) {
      raw.forEach((r, i) => walk(r, kept[i], `${path}[]`));
    } else if (isRecord(raw) && isRecord(kept)) {
      for (const k in raw) {
        if (out.size >= 100) return;
        const v = raw[k];
        const p = path ? `${path}.${k}` : k;
        if (!(k in kept)) out.add(p);
        else walk(v, kept[k], p);
      }
    }
  };
  walk(body, parsed, '');
  return [...out];
}

/** What unsupportedContent() found: the field and why. */
export interface Refusal {
  readonly param: string;
  readonly message: string;
}

function blockRefusal(block: unknown, param: string, allowed: readonly string[]): Refusal | undefined {
  if (!isRecord(block) || typeof block.type !== 'string' || allowed.includes(block.type)) return undefined;
  return {
    param,
    message: `Content blocks of type '${block.type.slice(0, 64)}' are not supported: this model reads text (blocks of type ${allowed.join(', ')} are).`,
  };
}

/**
 * A part of a request that would change what the answer means and that cannot be honoured here,
 * or undefined: image and document blocks (the model reads text), tools that Anthropic runs on
 * its own servers (web search, code execution), MCP servers. Checked before the schema, so that
 * the answer names the block rather than a failed match.
 */
export function unsupportedContent(body: unknown): Refusal | undefined {
  if (!isRecord(body)) return undefined;
  if (Array.isArray(body.messages)) {
    for (const [i, m] of body.messages.entries()) {
      if (!isRecord(m) || !Array.isArray(m.content)) continue;
      for (const [j, block] of m.content.entries()) {
        const refused = blockRefusal(block, `messages.${i}.content.${j}`, CONTENT_BLOCK_TYPES);
        if (refused) return refused;
        if (isRecord(block) && block.type === 'tool_result' && Array.isArray(block.content)) {
          for (const [k, inner] of block.content.entries()) {
            const r = blockRefusal(inner, `messages.${i}.content.${j}.content.${k}`, ['text']);
            if (r) return r;
          }
        }
      }
    }
  }
  if (Array.isArray(body.tools)) {
    for (const [i, t] of body.tools.entries()) {
      if (isRecord(t) && t.type !== undefined && t.type !== 'custom') {
        return {
          param: `tools.${i}.type`,
          message: `Tools of type '${String(t.type).slice(0, 64)}' run on Anthropic's servers and are not supported; define the tool with a name and an input_schema.`,
        };
      }
    }
  }
  if (Array.isArray(body.mcp_servers) && body.mcp_servers.length > 0) {
    return { param: 'mcp_servers', message: 'MCP servers are not supported; connect them to the client and send their tools as tools.' };
  }
  return undefined;
}
