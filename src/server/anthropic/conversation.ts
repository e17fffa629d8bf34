/**
 * An Anthropic conversation as the chat messages a template renders (OpenAI-shaped): the system
 * prompt first, tool_use blocks as an assistant's tool calls, tool_result blocks as tool messages
 * right after the turn that called them, and a final assistant turn as the start of the answer
 * (Anthropic's prefill), kept apart to be appended to the rendered prompt.
 */
import type { ChatMessage } from '../../engine/chat.js';
import type { ChatToolCall, ToolDefinition } from '../../tokenizer/chat/index.js';
import { badRequest } from '../errors.js';
import type { AnthropicMessage, CountTokensRequest } from './schemas.js';

/** The conversation to render, and the text the answer continues, if any. */
export interface Conversation {
  readonly messages: ChatMessage[];
  readonly prefill?: string;
}

type Block = Exclude<AnthropicMessage['content'], string>[number];
type TextBlock = Extract<Block, { type: 'text' }>;

const BILLING_HEADER = /^x-anthropic-billing-header:(?:\s*[\w.-]+=[^;\n]*;)*[ \t]*\n?/;

/**
 * A system text without Claude Code's billing header. The header carries a field that changes
 * with every request, so left in it would make each prompt differ from the last in its first
 * tokens and the prefix cache would never be hit; it is billing data, nothing for the model.
 */
function systemText(text: string): string {
  return text.startsWith('x-anthropic-billing-header:') ? text.replace(BILLING_HEADER, '') : text;
}

function textParts(blocks: readonly TextBlock[]): ChatMessage['content'] {
  return blocks.map((b) => ({ type: 'text' as const, text: b.text }));
}

function systemMessage(system: CountTokensRequest['system']): ChatMessage | undefined {
  if (system === undefined) return undefined;
  if (typeof system === 'string') return system === '' ? undefined : { role: 'system', content: systemText(system) };
  const blocks = system.map((b) => ({ ...b, text: systemText(b.text) })).filter((b) => b.text !== '');
  return blocks.length === 0 ? undefined : { role: 'system', content: textParts(blocks) };
}

/**
 * A user turn: its tool results first, each a tool message (templates expect them right after
 * the calls), then its text as a user message. `is_error` has no place in a chat template; the
 * result's text already says what failed.
 */
function userMessages(blocks: readonly Block[]): ChatMessage[] {
  const out: ChatMessage[] = [];
  const texts: TextBlock[] = [];
  for (const b of blocks) {
    if (b.type === 'text') texts.push(b);
    else if (b.type === 'tool_result') {
      const content = b.content === undefined ? '' : typeof b.content === 'string' ? b.content : textParts(b.content);
      out.push({ role: 'tool', tool_call_id: b.tool_use_id, content });
    }
    // Thinking blocks belong to assistant turns; in a user turn there is nothing to render.
  }
  if (texts.length > 0 || out.length === 0) out.push({ role: 'user', content: textParts(texts) });
  return out;
}

function assistantMessage(blocks: readonly Block[]): ChatMessage {
  const texts: TextBlock[] = [];
  const calls: ChatToolCall[] = [];
  let reasoning: string | undefined;
  for (const b of blocks) {
    if (b.type === 'text') texts.push(b);
    else if (b.type === 'tool_use') calls.push({ id: b.id, type: 'function', function: { name: b.name, arguments: b.input } });
    else if (b.type === 'thinking') reasoning = (reasoning ?? '') + b.thinking;
    // redacted_thinking is encrypted for Anthropic's models; nothing here can read it.
  }
  return {
    role: 'assistant',
    content: texts.length > 0 ? textParts(texts) : calls.length > 0 ? null : '',
    tool_calls: calls.length > 0 ? calls : undefined,
    reasoning_content: reasoning,
  };
}

/** A system message's content, which may hold only text. */
function systemContent(content: AnthropicMessage['content']): CountTokensRequest['system'] {
  if (typeof content === 'string') return content;
  const texts = content.filter((b): b is TextBlock => b.type === 'text');
  if (texts.length < content.length) throw badRequest('A system message may hold only text blocks.', 'messages');
  return texts;
}

/** The text of a final assistant turn that the answer continues, or undefined when it is not one. */
function prefillOf(m: AnthropicMessage): string | undefined {
  if (m.role !== 'assistant') return undefined;
  if (typeof m.content === 'string') return m.content;
  if (m.content.some((b) => b.type === 'tool_use')) {
    throw badRequest('The last message is an assistant turn with tool_use blocks: send their tool_result blocks in a user turn after it.', 'messages');
  }
  return m.content.flatMap((b) => (b.type === 'text' ? [b.text] : [])).join('\n');
}

/** The chat messages of a request (see the file comment). */
export function conversationOf(req: CountTokensRequest): Conversation {
  const messages: ChatMessage[] = [];
  const system = systemMessage(req.system);
  if (system) messages.push(system);
  const last = req.messages[req.messages.length - 1];
  const prefill = prefillOf(last);
  const turns = prefill === undefined ? req.messages : req.messages.slice(0, -1);
  for (const m of turns) {
    if (m.role === 'system') {
      const s = systemMessage(systemContent(m.content));
      if (s) messages.push(s);
    } else if (typeof m.content === 'string') messages.push({ role: m.role, content: m.content });
    else if (m.role === 'user') messages.push(...userMessages(m.content));
    else messages.push(assistantMessage(m.content));
  }
  if (messages.length === 0) throw badRequest('The conversation is empty: send at least one user message.', 'messages');
  return { messages, prefill: prefill === '' ? undefined : prefill };
}

/** The tools as the template takes them (OpenAI's shape); undefined for none. */
export function toolDefinitions(req: CountTokensRequest): ToolDefinition[] | undefined {
  if (!req.tools || req.tools.length === 0 || req.tool_choice?.type === 'none') return undefined;
  // No description key where none was given: templates test `description is defined`.
  return req.tools.map((t) => ({
    type: 'function',
    function: t.description === undefined ? { name: t.name, parameters: t.input_schema } : { name: t.name, description: t.description, parameters: t.input_schema },
  }));
}
