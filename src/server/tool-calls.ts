/**
 * The tool calls in a finished reply, parsed in the syntax the model's chat template teaches. One
 * parse for every route that offers tools (OpenAI's chat and Responses, Anthropic's Messages,
 * Ollama's chat); each route only shapes the calls as its API carries them.
 */
import { randomUUID } from 'node:crypto';
import type { GenerationSummary } from '../engine/engine.js';
import type { LoadedModel } from '../engine/load.js';
import { detectToolCallFormat, parseToolCalls, type ToolCallFormat } from '../tokenizer/chat/index.js';
import type { ModelHost } from './host.js';

/** One call of a reply: its id, the tool's name and its argument object. */
export interface ReplyToolCall {
  /** The id the model wrote (Mistral), else a new `call_...` one. */
  readonly id: string;
  readonly name: string;
  readonly arguments: Record<string, unknown>;
}

/** A new call id, in OpenAI's form (`call_` and 24 hex digits). */
export function newCallId(): string {
  return `call_${randomUUID().replace(/-/g, '').slice(0, 24)}`;
}

/** The tool-call syntax the loaded model's template teaches; undefined when it teaches none. */
export function toolCallFormat(host: ModelHost): ToolCallFormat | undefined {
  return detectToolCallFormat(host.prompts.templateSource ?? '');
}

/**
 * Splits a finished reply into its prose (null when there is none) and its tool calls; undefined
 * when it holds no call. `from` skips that many characters of the reply's text (special tokens
 * written out), already streamed as prose.
 */
export function replyToolCalls(host: ModelHost, model: LoadedModel, summary: GenerationSummary, from = 0): { content: string | null; calls: ReplyToolCall[] } | undefined {
  const format = toolCallFormat(host);
  if (!format) return undefined;
  // Calls are written with special tokens (<|python_tag|>, [TOOL_CALLS]): parse the text with them.
  const text = model.tokenizer.decode([...summary.tokens], { skipSpecial: false }).slice(from);
  const parsed = parseToolCalls(text, format);
  if (parsed.toolCalls.length === 0) return undefined;
  return {
    content: parsed.content === '' ? null : parsed.content,
    calls: parsed.toolCalls.map((c) => ({ id: c.id ?? newCallId(), name: c.name, arguments: c.arguments })),
  };
}
