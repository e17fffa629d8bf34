/**
 * Parses tool calls out of generated text, for the formats the supported templates teach:
 *
 * - `hermes` (Qwen 2.5/3, Hermes): `<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>`,
 *   any number of them, with prose around them.
 * - `llama3` (Llama 3.1/3.2 JSON tool calling): the reply is `{"name": ..., "parameters": {...}}`
 *   (optionally after `<|python_tag|>`, several separated by `;`). Built-in tool syntax
 *   (`brave_search.call(...)`) is not parsed.
 * - `mistral`: `[TOOL_CALLS] [{"name": ..., "arguments": {...}}, ...]`, and the newer
 *   `[TOOL_CALLS]name[ARGS]{...}`.
 *
 * Text that does not hold a well-formed call stays in `content`; nothing here throws on model
 * output.
 */
import { readJsonAt } from './json-scan.js';

/** The tool-call syntaxes understood. */
export type ToolCallFormat = 'hermes' | 'llama3' | 'mistral';

/** One parsed call. */
export interface ParsedToolCall {
  readonly name: string;
  /** The argument object (serialize with JSON.stringify for OpenAI's string field). */
  readonly arguments: Record<string, unknown>;
  /** The call id, when the model wrote one (Mistral). */
  readonly id?: string;
}

/** Generated text split into prose and tool calls. */
export interface ToolCallParse {
  /** The text outside the calls, trimmed. */
  readonly content: string;
  readonly toolCalls: readonly ParsedToolCall[];
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A call from a decoded JSON object with a string name and object arguments under `argsKeys`. */
function callFrom(value: unknown, argsKeys: readonly string[]): ParsedToolCall | undefined {
  if (!isObject(value) || typeof value.name !== 'string' || value.name === '') return undefined;
  let args: unknown = {};
  for (const key of argsKeys) {
    if (key in value) {
      args = value[key];
      break;
    }
  }
  if (typeof args === 'string') {
    try {
      args = JSON.parse(args);
    } catch {
      return undefined;
    }
  }
  if (!isObject(args)) return undefined;
  const call: { name: string; arguments: Record<string, unknown>; id?: string } = { name: value.name, arguments: args };
  if (typeof value.id === 'string') call.id = value.id;
  return call;
}

function skipSpace(text: string, i: number): number {
  while (i < text.length && /\s/.test(text[i])) i++;
  return i;
}

function parseHermes(text: string): ToolCallParse {
  const OPEN = '<tool_call>';
  const CLOSE = '</tool_call>';
  const calls: ParsedToolCall[] = [];
  let content = '';
  let pos = 0;
  for (;;) {
    const at = text.indexOf(OPEN, pos);
    if (at < 0) break;
    const jsonStart = skipSpace(text, at + OPEN.length);
    const json = readJsonAt(text, jsonStart);
    const call = json && callFrom(json.value, ['arguments', 'parameters']);
    if (!json || !call) {
      content += text.slice(pos, at + OPEN.length);
      pos = at + OPEN.length;
      continue;
    }
    content += text.slice(pos, at);
    calls.push(call);
    const after = skipSpace(text, json.end);
    // A missing close tag is tolerated: generation often stops on EOS right after the JSON.
    pos = text.startsWith(CLOSE, after) ? after + CLOSE.length : json.end;
  }
  content += text.slice(pos);
  return { content: content.trim(), toolCalls: calls };
}

function parseLlama3(text: string): ToolCallParse {
  const TAG = '<|python_tag|>';
  let body = text.trim();
  if (body.startsWith(TAG)) body = body.slice(TAG.length).trim();
  const calls: ParsedToolCall[] = [];
  let i = 0;
  while (i < body.length) {
    const json = readJsonAt(body, i);
    const call = json && callFrom(json.value, ['parameters', 'arguments']);
    if (!json || !call) return { content: text.trim(), toolCalls: [] };
    calls.push(call);
    i = skipSpace(body, json.end);
    if (body[i] === ';') i = skipSpace(body, i + 1);
  }
  return calls.length > 0 ? { content: '', toolCalls: calls } : { content: text.trim(), toolCalls: [] };
}

function parseMistral(text: string): ToolCallParse {
  const TAG = '[TOOL_CALLS]';
  const at = text.indexOf(TAG);
  if (at < 0) return { content: text.trim(), toolCalls: [] };
  const before = text.slice(0, at);
  const rest = text.slice(at + TAG.length);
  const start = skipSpace(rest, 0);
  if (rest[start] === '[') {
    const json = readJsonAt(rest, start);
    if (json && Array.isArray(json.value)) {
      const calls = json.value.map((v) => callFrom(v, ['arguments', 'parameters']));
      if (calls.length > 0 && calls.every((c) => c !== undefined)) {
        return { content: (before + rest.slice(json.end)).trim(), toolCalls: calls as ParsedToolCall[] };
      }
    }
    return { content: text.trim(), toolCalls: [] };
  }
  // Newer tokenizers: [TOOL_CALLS]name[ARGS]{...}, repeated.
  const calls: ParsedToolCall[] = [];
  let tail = text.slice(at);
  for (;;) {
    const m = /^\s*\[TOOL_CALLS\]\s*([^[\s]+)\s*\[ARGS\]\s*/.exec(tail);
    if (!m) break;
    const json = readJsonAt(tail, m[0].length);
    const call = json && callFrom({ name: m[1], arguments: json.value }, ['arguments']);
    if (!json || !call) break;
    calls.push(call);
    tail = tail.slice(json.end);
  }
  if (calls.length === 0) return { content: text.trim(), toolCalls: [] };
  return { content: (before + tail).trim(), toolCalls: calls };
}

/** Splits generated `text` into prose and tool calls written in `format`. */
export function parseToolCalls(text: string, format: ToolCallFormat): ToolCallParse {
  switch (format) {
    case 'hermes':
      return parseHermes(text);
    case 'llama3':
      return parseLlama3(text);
    case 'mistral':
      return parseMistral(text);
    default:
      return { content: text.trim(), toolCalls: [] };
  }
}

/** Length of the longest end of `text` that is a proper start of `marker`. */
function partialMarkerAtEnd(text: string, marker: string): number {
  for (let n = Math.min(marker.length - 1, text.length); n > 0; n--) {
    if (marker.startsWith(text.slice(text.length - n))) return n;
  }
  return 0;
}

/** The marker a call begins with, for the formats whose calls may follow prose. */
const CALL_MARKERS: Partial<Record<ToolCallFormat, string>> = { hermes: '<tool_call>', mistral: '[TOOL_CALLS]' };
const PYTHON_TAG = '<|python_tag|>';

/**
 * How much of a reply still being generated is prose for sure: the length of the start of `text`
 * in which no tool call written in `format` can begin, whatever tokens follow. A server streams
 * that much as content and holds the rest until the reply is complete and parsed.
 */
export function proseLength(text: string, format: ToolCallFormat): number {
  return new ProseTracker(format).push(text);
}

/**
 * proseLength of a reply that grows by appends, in work proportional to what is appended: a
 * marker is looked for only from where the last search could not rule one out, and once the
 * answer can no longer change (a marker found; a Llama 3 reply's start decided) it is kept.
 * (proseLength over the whole reply at every token costs its length each time: a long streamed
 * reply would cost the square of its length.)
 */
export class ProseTracker {
  private text = '';
  private from = 0;
  private settled: number | 'all' | undefined;

  constructor(private readonly format: ToolCallFormat) {}

  /** Appends `piece` and returns proseLength of the whole reply so far. */
  push(piece: string): number {
    this.text += piece;
    if (this.settled === 'all') return this.text.length;
    if (this.settled !== undefined) return this.settled;
    const marker = CALL_MARKERS[this.format];
    if (marker) {
      const at = this.text.indexOf(marker, this.from);
      if (at >= 0) return (this.settled = at);
      // No marker starts before the held end (a possible start of one): search on from there.
      this.from = this.text.length - partialMarkerAtEnd(this.text, marker);
      return this.from;
    }
    if (this.format === 'llama3') {
      // A call is the whole reply, so its start decides: a call for good once `{` or the whole
      // python tag has come, undecided while only spaces or a start of the tag have, else prose.
      const body = this.text.trimStart();
      if (body.startsWith('{') || body.startsWith(PYTHON_TAG)) return (this.settled = 0);
      if (body === '' || PYTHON_TAG.startsWith(body)) return 0;
    }
    this.settled = 'all';
    return this.text.length;
  }
}

/**
 * The tool-call format a chat template teaches, read from its source; undefined when it shows
 * none of the known markers.
 */
export function detectToolCallFormat(templateSource: string): ToolCallFormat | undefined {
  if (templateSource.includes('<tool_call>')) return 'hermes';
  if (templateSource.includes('[TOOL_CALLS]')) return 'mistral';
  if (templateSource.includes('<|start_header_id|>') && templateSource.includes('"parameters"')) return 'llama3';
  return undefined;
}
