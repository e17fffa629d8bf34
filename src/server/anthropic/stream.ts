/**
 * An answer streamed as Anthropic streams it: message_start and a ping, then each content block
 * as content_block_start, its deltas and content_block_stop, then message_delta (stop reason and
 * final usage) and message_stop. Blocks are numbered in the order they open.
 */
import type { ApiError } from '../errors.js';
import type { SseStream } from '../sse.js';
import { anthropicErrorBody } from './errors.js';

/** Usage as Anthropic reports it. */
export interface AnthropicUsage {
  readonly input_tokens: number;
  readonly output_tokens: number;
  readonly cache_creation_input_tokens: number;
  readonly cache_read_input_tokens: number;
}

/** Writes one message's events to an SSE stream. */
export class MessageStream {
  private index = -1;
  /** The type of the block open now, if one is. */
  private open: string | undefined;

  constructor(private readonly sse: SseStream) {}

  /** message_start with the message as known before generating, then a ping. */
  start(message: Record<string, unknown>): void {
    this.sse.event('message_start', { type: 'message_start', message });
    this.ping();
  }

  /** A ping: traffic on a stream that is waiting for its next token (a long prompt being read). */
  ping(): void {
    this.sse.event('ping', { type: 'ping' });
  }

  /** Text, appended to the open text block (opened here if none is). */
  text(text: string): void {
    if (text === '') return;
    if (this.open !== 'text') this.openBlock({ type: 'text', text: '' });
    this.sse.event('content_block_delta', { type: 'content_block_delta', index: this.index, delta: { type: 'text_delta', text } });
  }

  /** A whole tool_use block; its input goes as one input_json_delta. */
  toolUse(id: string, name: string, input: Record<string, unknown>): void {
    this.openBlock({ type: 'tool_use', id, name, input: {} });
    this.sse.event('content_block_delta', { type: 'content_block_delta', index: this.index, delta: { type: 'input_json_delta', partial_json: JSON.stringify(input) } });
    this.closeBlock();
  }

  /** Closes the last block, then message_delta and message_stop, and ends the response. */
  finish(stopReason: string, stopSequence: string | null, usage: AnthropicUsage): void {
    // An answer with nothing in it still has a (empty) text block, as the unstreamed one does.
    if (this.index < 0) this.openBlock({ type: 'text', text: '' });
    this.closeBlock();
    this.sse.event('message_delta', { type: 'message_delta', delta: { stop_reason: stopReason, stop_sequence: stopSequence }, usage });
    this.sse.event('message_stop', { type: 'message_stop' });
    this.sse.end();
  }

  /** Ends the response as it is (the client is gone). */
  end(): void {
    this.sse.end();
  }

  /** An `error` event, and the end of the response. */
  error(err: ApiError): void {
    this.sse.event('error', anthropicErrorBody(err));
    this.sse.end();
  }

  private openBlock(block: Record<string, unknown>): void {
    this.closeBlock();
    this.index++;
    this.open = String(block.type);
    this.sse.event('content_block_start', { type: 'content_block_start', index: this.index, content_block: block });
  }

  private closeBlock(): void {
    if (this.open === undefined) return;
    this.open = undefined;
    this.sse.event('content_block_stop', { type: 'content_block_stop', index: this.index });
  }
}
