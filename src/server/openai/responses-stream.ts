/**
 * Streaming a response as the Responses API does: named server-sent events, each with its
 * sequence number, in the order the official clients accumulate them (response.created, the
 * message item and its text part, text deltas, their done events, function call items, and the
 * final response.completed / incomplete / failed). And the gate that tells which generated text is
 * prose for sure, to stream at once, when a tool call in the template's syntax could still follow.
 */
import type { LoadedModel } from '../../engine/load.js';
import { proseLength, type ToolCallFormat } from '../../tokenizer/chat/index.js';
import type { SseStream } from '../sse.js';
import { functionCallItem, messageItem, outputTextPart, type Reply } from './responses-items.js';

/** The lifecycle events that carry the whole response object. */
export type LifecycleEvent = 'response.created' | 'response.in_progress' | 'response.completed' | 'response.incomplete' | 'response.failed';

/** Writes one response's events. */
export class ResponseEvents {
  private seq = 0;
  private items = 0;
  private message: { index: number; text: string } | undefined;

  constructor(
    private readonly sse: SseStream,
    private readonly messageId: string,
  ) {}

  private emit(type: string, fields: Record<string, unknown>): void {
    this.sse.event(type, { type, sequence_number: this.seq++, ...fields });
  }

  /** An event carrying the response object. */
  lifecycle(type: LifecycleEvent, response: unknown): void {
    this.emit(type, { response });
  }

  private open(): { index: number; text: string } {
    if (this.message) return this.message;
    const m = { index: this.items++, text: '' };
    this.message = m;
    this.emit('response.output_item.added', { output_index: m.index, item: messageItem(this.messageId, 'in_progress') });
    this.emit('response.content_part.added', { item_id: this.messageId, output_index: m.index, content_index: 0, part: outputTextPart('') });
    return m;
  }

  /** Text of the message as it is generated (the message item opens with the first). */
  text(delta: string): void {
    if (delta === '') return;
    const m = this.open();
    m.text += delta;
    this.emit('response.output_text.delta', { item_id: this.messageId, output_index: m.index, content_index: 0, delta, logprobs: [] });
  }

  /** What the reply streamed as text so far. */
  get streamedText(): string {
    return this.message?.text ?? '';
  }

  /**
   * Ends the output: the message's done events (with the rest of its text, where the reply holds
   * more than was streamed), then each function call's events.
   */
  finish(reply: Reply): void {
    if (reply.text !== null) {
      this.text(reply.text.slice(this.streamedText.length));
      const m = this.open();
      const base = { item_id: this.messageId, output_index: m.index, content_index: 0 };
      this.emit('response.output_text.done', { ...base, text: reply.text, logprobs: [] });
      this.emit('response.content_part.done', { ...base, part: outputTextPart(reply.text) });
      this.emit('response.output_item.done', { output_index: m.index, item: messageItem(this.messageId, reply.incomplete ? 'incomplete' : 'completed', reply.text) });
    }
    for (const c of reply.calls) {
      const index = this.items++;
      this.emit('response.output_item.added', { output_index: index, item: functionCallItem(c, 'in_progress', '') });
      this.emit('response.function_call_arguments.delta', { item_id: c.id, output_index: index, delta: c.arguments });
      this.emit('response.function_call_arguments.done', { item_id: c.id, output_index: index, name: c.name, arguments: c.arguments });
      this.emit('response.output_item.done', { output_index: index, item: functionCallItem(c, 'completed') });
    }
  }
}

/**
 * Which generated text can be streamed now. Without a tool-call format all of it; with one, text
 * is released as long as it is prose for sure (proseLength, judged on the text with special tokens
 * written out, as the calls are parsed), and from the first possible call on it is held.
 */
export class ProseGate {
  private raw = '';
  private readonly held: { rawEnd: number; text: string }[] = [];
  private readonly decoder: ReturnType<LoadedModel['tokenizer']['streamDecoder']> | undefined;
  /** Characters of the raw text whose text has been released. */
  streamedRaw = 0;

  constructor(
    model: LoadedModel,
    private readonly format: ToolCallFormat | undefined,
  ) {
    this.decoder = format ? model.tokenizer.streamDecoder({ skipSpecial: false, sequenceStart: true }) : undefined;
  }

  /** A generated token's (or released) text in; the text that may be streamed now out. */
  push(ev: { type: 'token'; id: number; text: string } | { type: 'text'; text: string }): string {
    if (!this.format || !this.decoder) return ev.text;
    if (ev.type === 'token') this.raw += this.decoder.push(ev.id);
    this.held.push({ rawEnd: this.raw.length, text: ev.text });
    const prose = proseLength(this.raw, this.format);
    let out = '';
    while (this.held.length > 0 && this.held[0].rawEnd <= prose) {
      const h = this.held.shift()!;
      this.streamedRaw = h.rawEnd;
      out += h.text;
    }
    return out;
  }

  /** The text still held (all of it prose, when the reply turned out to hold no call). */
  rest(): string {
    return this.held.map((h) => h.text).join('');
  }
}
