/**
 * Responses API items and chat messages, both ways: input items (messages, function calls and
 * their outputs) become the chat messages a template renders, and a generated reply becomes
 * output items (an assistant message, function calls) and the assistant turn a follow-up
 * (`previous_response_id`) continues from.
 */
import { randomUUID } from 'node:crypto';
import type { ChatMessage } from '../../engine/chat.js';
import type { InputItem } from './responses-schemas.js';

/** A fresh id with OpenAI's prefix for its kind (`resp`, `msg`, `fc`, `call`). */
export function newId(prefix: string): string {
  return `${prefix}_${randomUUID().replace(/-/g, '')}`;
}

type ToolCall = { id: string; type: 'function'; function: { name: string; arguments: string } };
type Message = { role: string; content: ChatMessage['content']; tool_calls?: ToolCall[]; tool_call_id?: string };

function textOf(content: Extract<InputItem, { type: 'message' }>['content']): ChatMessage['content'] {
  if (typeof content === 'string') return content;
  return content.map((p) => ({ type: 'text' as const, text: p.type === 'refusal' ? p.refusal : p.text }));
}

/**
 * The chat messages of a request's input: a string is one user message; `developer` is a system
 * message; function_call items join the assistant message they follow (as one chat message holds
 * its text and its calls) and function_call_output items are tool messages. Reasoning items are
 * left out (no template here renders another model's reasoning).
 */
export function messagesOfInput(input: string | readonly InputItem[] | undefined): ChatMessage[] {
  if (input === undefined) return [];
  if (typeof input === 'string') return [{ role: 'user', content: input }];
  const out: Message[] = [];
  for (const item of input) {
    if (item.type === 'message') {
      out.push({ role: item.role === 'developer' ? 'system' : item.role, content: textOf(item.content) });
    } else if (item.type === 'function_call') {
      const call: ToolCall = { id: item.call_id, type: 'function', function: { name: item.name, arguments: item.arguments } };
      const last = out.at(-1);
      if (last?.role === 'assistant') last.tool_calls = [...(last.tool_calls ?? []), call];
      else out.push({ role: 'assistant', content: null, tool_calls: [call] });
    } else if (item.type === 'function_call_output') {
      const content = typeof item.output === 'string' ? item.output : item.output.map((p) => ({ type: 'text' as const, text: p.text }));
      out.push({ role: 'tool', tool_call_id: item.call_id, content });
    }
  }
  return out;
}

/** A function call the model made. */
export interface ReplyCall {
  /** The output item's id (`fc_...`). */
  readonly id: string;
  /** The id a function_call_output answers (`call_...`). */
  readonly callId: string;
  readonly name: string;
  readonly arguments: string;
}

/** What a generation replied, as the output is built from it. */
export interface Reply {
  readonly messageId: string;
  /** The message's text; null when the reply is calls alone. */
  readonly text: string | null;
  readonly calls: readonly ReplyCall[];
  /** Cut off by max_output_tokens. */
  readonly incomplete: boolean;
}

/** The calls of chat's tool-call parsers ({id, function: {name, arguments}}) as reply calls. */
export function replyCalls(calls: readonly unknown[]): ReplyCall[] {
  return calls.map((c) => {
    const call = c as { id: string; function: { name: string; arguments: string } };
    return { id: newId('fc'), callId: call.id, name: call.function.name, arguments: call.function.arguments };
  });
}

/** An assistant message output item; `text` undefined gives it no content yet (streaming). */
export function messageItem(id: string, status: 'in_progress' | 'completed' | 'incomplete', text?: string): Record<string, unknown> {
  return { type: 'message', id, status, role: 'assistant', content: text === undefined ? [] : [outputTextPart(text)] };
}

/** An output_text content part. */
export function outputTextPart(text: string): Record<string, unknown> {
  return { type: 'output_text', text, annotations: [] };
}

/** A function_call output item. */
export function functionCallItem(c: ReplyCall, status: 'in_progress' | 'completed', args = c.arguments): Record<string, unknown> {
  return { type: 'function_call', id: c.id, call_id: c.callId, name: c.name, arguments: args, status };
}

/** The output items of a reply: its message (when it has text, or nothing else), then its calls. */
export function outputOf(r: Reply): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  if (r.text !== null) out.push(messageItem(r.messageId, r.incomplete ? 'incomplete' : 'completed', r.text));
  for (const c of r.calls) out.push(functionCallItem(c, 'completed'));
  return out;
}

/** The reply as the assistant turn of the conversation (what a follow-up continues). */
export function assistantTurn(r: Reply): ChatMessage {
  const tool_calls = r.calls.map((c) => ({ id: c.callId, type: 'function' as const, function: { name: c.name, arguments: c.arguments } }));
  return { role: 'assistant', content: r.text, ...(tool_calls.length > 0 ? { tool_calls } : {}) };
}
