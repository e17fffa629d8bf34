/**
 * Turns request messages into the plain values templates expect: content as one string, tool-call
 * arguments as objects (templates print them with `tojson`), absent fields left absent (templates
 * test `'tool_calls' in message` and `is defined`).
 */
import { CairnError } from '../../util/errors.js';
import type { ChatMessage, ChatToolCall } from './types.js';

function bad(message: string): CairnError {
  return new CairnError('BAD_ARGUMENT', message);
}

function contentText(content: ChatMessage['content'], index: number): string {
  if (content === undefined || content === null) return '';
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) throw bad(`messages[${index}].content must be a string or an array of parts`);
  const texts: string[] = [];
  content.forEach((part: unknown, j: number) => {
    const p = part as { type?: unknown; text?: unknown } | null;
    if (p === null || typeof p !== 'object' || p.type !== 'text' || typeof p.text !== 'string') {
      const kind = p !== null && typeof p === 'object' ? String(p.type) : typeof p;
      throw bad(`messages[${index}].content[${j}] is a '${kind}' part; only text parts can be rendered`);
    }
    texts.push(p.text);
  });
  return texts.join('\n');
}

function toolCallValue(call: ChatToolCall, where: string): Record<string, unknown> {
  const fn = call?.function;
  if (fn === undefined || typeof fn.name !== 'string') throw bad(`${where}.function.name must be a string`);
  let args: unknown = fn.arguments ?? {};
  if (typeof args === 'string') {
    try {
      args = args.trim() === '' ? {} : JSON.parse(args);
    } catch {
      // Not JSON: templates that print strings verbatim still work; leave it as given.
    }
  }
  const out: Record<string, unknown> = { type: call.type ?? 'function', function: { name: fn.name, arguments: args } };
  if (call.id !== undefined) out.id = call.id;
  return out;
}

/** Plain template values for `messages`; malformed messages raise BAD_ARGUMENT. */
export function templateMessages(messages: readonly ChatMessage[]): Record<string, unknown>[] {
  if (!Array.isArray(messages)) throw bad('messages must be an array');
  return messages.map((m, i) => {
    if (m === null || typeof m !== 'object' || typeof m.role !== 'string') {
      throw bad(`messages[${i}] needs a string role`);
    }
    const out: Record<string, unknown> = { role: m.role, content: contentText(m.content, i) };
    if (m.name !== undefined) out.name = m.name;
    if (m.tool_call_id !== undefined) out.tool_call_id = m.tool_call_id;
    if (m.reasoning_content !== undefined) out.reasoning_content = m.reasoning_content;
    if (m.tool_calls !== undefined && m.tool_calls !== null) {
      if (!Array.isArray(m.tool_calls)) throw bad(`messages[${i}].tool_calls must be an array`);
      if (m.tool_calls.length > 0) {
        out.tool_calls = m.tool_calls.map((c: ChatToolCall, j: number) => toolCallValue(c, `messages[${i}].tool_calls[${j}]`));
      }
    }
    return out;
  });
}
