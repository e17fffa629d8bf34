/**
 * Streaming a response as the Responses API does: named server-sent events, each with its
 * sequence number, in the order the official clients accumulate them (response.created, the
 * message item and its text part, text deltas, their done events, function call items, and the
 * final response.completed / incomplete / failed). Which text may stream at once while a tool call
 * could still follow is the shared ProseGate's (../prose-gate.ts).
 */
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
