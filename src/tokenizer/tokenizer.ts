/**
 * The tokenizer of a model: text to token ids and back, with the same results as llama.cpp on
 * the same GGUF file (llama_tokenize / llama_detokenize).
 */
import { readGguf, type GgufFile } from '../gguf/reader.js';
import { Metadata } from '../gguf/metadata.js';
import { CairnError } from '../util/errors.js';
import { BpeTokenizer } from './bpe.js';
import { PieceTable, cleanSpaces, concatBytes, stripOneLeadingSpace } from './detokenize.js';
import { partitionSpecial } from './special-partition.js';
import { byteToken, spmTokenize } from './spm.js';
import { StreamingDecoder, type StreamingDecoderOptions } from './streaming-decoder.js';
import { wellFormed } from './unicode.js';
import type { Vocab } from './vocab.js';
import { loadVocab } from './vocab-load.js';
import { wpmTokenize } from './wpm.js';

/** Options of Tokenizer.encode. */
export interface EncodeOptions {
  /** Add BOS/EOS (or CLS/SEP for BERT) as the vocabulary asks. Default true. */
  addSpecial?: boolean;
  /** Treat control-token texts in the input (e.g. "<|im_start|>") as those tokens. Default false. */
  parseSpecial?: boolean;
}

/** Options of Tokenizer.decode. */
export interface DecodeOptions {
  /**
   * Render control and unknown tokens as nothing, and drop a leading BOS / trailing EOS that the
   * vocabulary adds (llama.cpp's remove_special without unparse_special). Default true, as
   * llama-server prints generated text; false renders them as their text (e.g. "<|im_end|>").
   */
  skipSpecial?: boolean;
}

const decoder = new TextDecoder('utf-8', { fatal: false });

/** Text to token ids and back for one vocabulary. */
export class Tokenizer {
  private readonly pieces: PieceTable;
  private readonly bpe: BpeTokenizer | undefined;
  /** The newline token (llama.cpp's linefeed id), if the vocabulary has one. */
  readonly nlId: number | undefined;

  constructor(readonly vocab: Vocab) {
    this.pieces = new PieceTable(vocab);
    this.bpe = vocab.type === 'bpe' ? new BpeTokenizer(vocab) : undefined;
    this.nlId = this.findNewline();
  }

  private findNewline(): number | undefined {
    if (this.vocab.type === 'spm') return byteToken(this.vocab, 0x0a) ?? this.vocab.special.pad;
    if (this.vocab.type === 'wpm') return this.vocab.special.pad;
    return this.encode('\n', { addSpecial: false })[0] ?? this.vocab.special.pad;
  }

  /** Number of tokens in the vocabulary. */
  get vocabSize(): number {
    return this.vocab.size;
  }
  /** Beginning-of-sequence token. */
  get bosId(): number | undefined {
    return this.vocab.special.bos;
  }
  /** End-of-sequence token. */
  get eosId(): number | undefined {
    return this.vocab.special.eos;
  }
  /** End-of-turn token. */
  get eotId(): number | undefined {
    return this.vocab.special.eot;
  }
  /** End-of-message token (tool calls). */
  get eomId(): number | undefined {
    return this.vocab.special.eom;
  }
  /** Unknown token. */
  get unkId(): number | undefined {
    return this.vocab.special.unk;
  }
  /** Separator token. */
  get sepId(): number | undefined {
    return this.vocab.special.sep;
  }
  /** Padding token. */
  get padId(): number | undefined {
    return this.vocab.special.pad;
  }
  /** Whether encode() with addSpecial puts BOS first. */
  get addBos(): boolean {
    return this.vocab.flags.addBos;
  }
  /** Whether encode() with addSpecial puts EOS last. */
  get addEos(): boolean {
    return this.vocab.flags.addEos;
  }

  /** Token ids of `text`. */
  encode(text: string, options: EncodeOptions = {}): number[] {
    if (typeof text !== 'string') throw new CairnError('BAD_ARGUMENT', `encode() needs a string, got ${typeof text}`);
    const addSpecial = options.addSpecial ?? true;
    const fragments = partitionSpecial(this.vocab, wellFormed(text), options.parseSpecial ?? false);
    const { flags, special } = this.vocab;
    const out: number[] = [];
    switch (this.vocab.type) {
      case 'spm': {
        if (addSpecial && flags.addBos) out.push(special.bos!);
        // Text at the start or right after a special token gets the space prefix.
        let afterSpecial = true;
        for (const f of fragments) {
          if ('token' in f) {
            out.push(f.token);
            afterSpecial = true;
            continue;
          }
          const prefixed = flags.addSpacePrefix && afterSpecial ? ` ${f.text}` : f.text;
          spmTokenize(this.vocab, prefixed.replaceAll(' ', '\u2581'), out);
          afterSpecial = false;
        }
        if (addSpecial && flags.addEos) out.push(special.eos!);
        break;
      }
      case 'bpe': {
        if (addSpecial && flags.addBos) out.push(special.bos!);
        for (const f of fragments) {
          if ('token' in f) out.push(f.token);
          else this.bpe!.tokenize(flags.escapeWhitespaces ? f.text.replaceAll(' ', '\u2581') : f.text, out);
        }
        if (addSpecial && flags.addEos) out.push(special.eos!);
        break;
      }
      case 'wpm': {
        if (addSpecial) out.push(this.required(special.bos, 'CLS (BOS)'));
        for (const f of fragments) {
          if ('token' in f) out.push(f.token);
          else wpmTokenize(this.vocab, f.text, out);
        }
        if (addSpecial) out.push(this.required(special.sep, 'SEP'));
        break;
      }
    }
    return out;
  }

  private required(id: number | undefined, what: string): number {
    if (id === undefined) throw new CairnError('BAD_ARGUMENT', `the vocabulary has no ${what} token; encode with addSpecial: false`);
    return id;
  }

  /** Throws unless `id` is a token id of this vocabulary. */
  checkId(id: number): void {
    if (!this.vocab.has(id)) {
      throw new CairnError('BAD_ARGUMENT', `token id ${String(id)} is not in the vocabulary (0..${this.vocab.size - 1})`);
    }
  }

  /** The bytes a token renders to; control and unknown tokens are empty unless `special`. */
  tokenPiece(id: number, special = true): Uint8Array {
    this.checkId(id);
    return this.pieces.piece(id, special);
  }

  /**
   * Detokenized bytes (before UTF-8 decoding). As llama_detokenize: where the vocabulary adds a
   * space prefix (SPM), the first token loses one leading space, and the clean-up of spaces runs
   * where the vocabulary asks for it. One difference: a leading BOS does not use up that
   * space removal, so [BOS, "▁Once"] decodes to "Once" as SentencePiece and llama2.c print it
   * (llama.cpp would give " Once").
   */
  decodeBytes(ids: readonly number[], options: DecodeOptions = {}): Uint8Array {
    if (!Array.isArray(ids)) throw new CairnError('BAD_ARGUMENT', 'decode() needs an array of token ids');
    for (const id of ids) this.checkId(id);
    const skip = options.skipSpecial ?? true;
    const { flags, special } = this.vocab;
    let start = 0;
    let end = ids.length;
    if (skip && flags.addBos && end > 0 && ids[0] === special.bos) start = 1;
    if (skip && flags.addEos && end > start && ids[end - 1] === special.eos) end--;
    let removeSpace = flags.addSpacePrefix;
    const parts: Uint8Array[] = [];
    for (let i = start; i < end; i++) {
      const piece = this.pieces.piece(ids[i], !skip);
      if (i === 0 && ids[i] === special.bos) {
        parts.push(piece);
        continue;
      }
      parts.push(removeSpace ? stripOneLeadingSpace(piece) : piece);
      removeSpace = false;
    }
    const bytes = concatBytes(parts);
    return flags.cleanSpaces ? cleanSpaces(bytes) : bytes;
  }

  /** Text of a sequence of token ids (invalid UTF-8 becomes U+FFFD). */
  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    return decoder.decode(this.decodeBytes(ids, options));
  }

  /** The token's text as stored in the vocabulary (e.g. "▁Hello", "Ġworld", "<0x0A>"). */
  tokenText(id: number): string {
    this.checkId(id);
    return this.vocab.texts[id];
  }

  /** The id of an exact token text, if there is such a token. */
  tokenId(text: string): number | undefined {
    return this.vocab.idOf(text);
  }

  /** True for tokens that end generation (EOS, EOT, EOM and the like). */
  isEog(id: number): boolean {
    return this.vocab.eog.has(id);
  }

  /** True for control tokens. */
  isControl(id: number): boolean {
    return this.vocab.has(id) && this.vocab.isControl(id);
  }

  /** A decoder for a stream of ids (see StreamingDecoder). */
  streamDecoder(options: StreamingDecoderOptions = {}): StreamingDecoder {
    return new StreamingDecoder(this, options);
  }
}

/** Builds the tokenizer of a GGUF file (a parsed header, or a path to read). */
export function tokenizerFromGguf(file: GgufFile | string): Tokenizer {
  const header = typeof file === 'string' ? readGguf(file) : file;
  return new Tokenizer(loadVocab(new Metadata(header)));
}
