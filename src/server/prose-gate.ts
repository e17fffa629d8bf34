/**
 * Which generated text can be streamed now, for the routes that parse tool calls from a finished
 * reply (chat completions, Anthropic's Messages, OpenAI's Responses). Without a tool-call format all of it;
 * with one, text is released as long as it is prose for sure (proseLength, judged on the reply
 * with special tokens written out, as calls are parsed), and from the first possible call on it
 * is held until the reply is complete and parsed.
 */
import type { LoadedModel } from '../engine/load.js';
import { ProseTracker, type ToolCallFormat } from '../tokenizer/chat/index.js';

/** A piece of the reply as it came, with what the route keeps beside it (its token's logprobs). */
export interface GatedPiece<T> {
  readonly rawEnd: number;
  readonly text: string;
  readonly extra?: T;
}

/** A generation event's text (a token's, with its id, or text released at the end). */
export interface GeneratedPiece {
  readonly type: string;
  readonly id?: number;
  readonly text: string;
}

/** Lets through the streamed text that cannot be part of a tool call. */
export class ProseGate<T = never> {
  private rawLength = 0;
  private readonly held: GatedPiece<T>[] = [];
  private readonly decoder: { push(id: number): string } | undefined;
  private readonly prose: ProseTracker | undefined;
  /** Characters of the reply (special tokens written out) whose text has been let through. */
  streamedRaw = 0;

  constructor(
    model: LoadedModel,
    private readonly format: ToolCallFormat | undefined,
  ) {
    this.decoder = format ? model.tokenizer.streamDecoder({ skipSpecial: false, sequenceStart: true }) : undefined;
    this.prose = format ? new ProseTracker(format) : undefined;
  }

  /** Takes one generated piece; returns the text that may be sent now (held text included). */
  push(ev: GeneratedPiece): string {
    if (!this.format) return ev.text;
    return this.release(ev).map((p) => p.text).join('');
  }

  /** Takes one generated piece with its `extra`; returns the pieces that may be sent now, in order. */
  release(ev: GeneratedPiece, extra?: T): GatedPiece<T>[] {
    if (!this.format || !this.decoder || !this.prose) return [{ rawEnd: 0, text: ev.text, extra }];
    const piece = ev.type === 'token' && ev.id !== undefined ? this.decoder.push(ev.id) : '';
    this.rawLength += piece.length;
    this.held.push({ rawEnd: this.rawLength, text: ev.text, extra });
    const prose = this.prose.push(piece);
    const out: GatedPiece<T>[] = [];
    while (this.held.length > 0 && this.held[0].rawEnd <= prose) {
      const h = this.held.shift()!;
      this.streamedRaw = h.rawEnd;
      out.push(h);
    }
    return out;
  }

  /** The pieces still held (all of them prose, when the reply turned out to hold no call). */
  heldPieces(): readonly GatedPiece<T>[] {
    return this.held;
  }

  /** The text still held. */
  rest(): string {
    return this.held.map((h) => h.text).join('');
  }
}
