/**
 * Which generated text can be streamed now, for the chat-shaped APIs that parse tool calls from a
 * finished reply (Anthropic's Messages, OpenAI's Responses). Without a tool-call format all of it;
 * with one, text is released as long as it is prose for sure (proseLength, judged on the reply
 * with special tokens written out, as calls are parsed), and from the first possible call on it
 * is held until the reply is complete and parsed.
 */
import type { LoadedModel } from '../engine/load.js';
import { proseLength, type ToolCallFormat } from '../tokenizer/chat/index.js';

/** Lets through the streamed text that cannot be part of a tool call. */
export class ProseGate {
  private raw = '';
  private readonly held: { rawEnd: number; text: string }[] = [];
  private readonly decoder: { push(id: number): string } | undefined;
  /** Characters of the reply (special tokens written out) whose text has been let through. */
  streamedRaw = 0;

  constructor(
    model: LoadedModel,
    private readonly format: ToolCallFormat | undefined,
  ) {
    this.decoder = format ? model.tokenizer.streamDecoder({ skipSpecial: false, sequenceStart: true }) : undefined;
  }

  /** Takes one generated piece; returns the text that may be sent now (held text included). */
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
