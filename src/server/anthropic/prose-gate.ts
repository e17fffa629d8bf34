/**
 * While a reply may still turn into a tool call, its text can be streamed only as far as it is
 * prose for sure (proseLength, judged on the reply with special tokens written out, as calls are
 * parsed); the rest waits until the reply is complete and parsed.
 */
import type { LoadedModel } from '../../engine/load.js';
import { proseLength, type ToolCallFormat } from '../../tokenizer/chat/index.js';

/** Lets through the streamed text that cannot be part of a tool call. */
export class ProseGate {
  private raw = '';
  private readonly held: { rawEnd: number; text: string }[] = [];
  private readonly decoder: { push(id: number): string };
  /** Characters of the reply (special tokens written out) whose text has been let through. */
  passedRaw = 0;

  constructor(model: LoadedModel, private readonly format: ToolCallFormat) {
    this.decoder = model.tokenizer.streamDecoder({ skipSpecial: false, sequenceStart: true });
  }

  /** Takes one generated piece; returns the text that may be sent now (held text included). */
  push(ev: { type: 'token'; id: number; text: string } | { type: 'text'; text: string }): string {
    if (ev.type === 'token') this.raw += this.decoder.push(ev.id);
    this.held.push({ rawEnd: this.raw.length, text: ev.text });
    const prose = proseLength(this.raw, this.format);
    let out = '';
    while (this.held.length > 0 && this.held[0].rawEnd <= prose) {
      const h = this.held.shift()!;
      this.passedRaw = h.rawEnd;
      out += h.text;
    }
    return out;
  }

  /** The text held back so far (prose after all, when the reply held no call). */
  heldText(): string {
    return this.held.map((h) => h.text).join('');
  }
}
