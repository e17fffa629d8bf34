/**
 * WordPiece (llama.cpp's "WPM" vocab type, BERT): normalize, split into words at whitespace and
 * around punctuation and CJK ideographs, then cover each word greedily with the longest tokens.
 * GGUF BERT vocabularies mark word starts with U+2581 instead of marking continuations with "##".
 * A word that cannot be covered completely becomes the unknown token.
 */
import { CpFlag, cpFlags, nfdFirstCp, toLowerCp, utf8Length } from './unicode.js';
import type { Vocab } from './vocab.js';

const WORD_START = '\u2581';

/**
 * Longest word (in code points) that is split into pieces; a longer one is the unknown token, as
 * in BERT's own WordPiece (max_input_chars_per_word). It also bounds the work per word: the
 * longest-match search costs up to the square of the candidate length at each position, and a
 * vocabulary with a token of thousands of characters would otherwise make that per position.
 */
export const MAX_WORD_CHARS = 100;

/** CJK ideograph blocks, as BERT's tokenizer lists them. */
function isChineseChar(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    // 0x2B920, not 0x2B820: the Hugging Face implementation has it so, and ids must match it.
    (cp >= 0x2b920 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

/** Normalizes and splits text into words. */
export function wpmWords(text: string, lowercase: boolean, stripAccents: boolean): string[] {
  const words: string[] = [''];
  const endWord = (): void => {
    if (words[words.length - 1] !== '') words.push('');
  };
  for (const ch of text) {
    let cp = ch.codePointAt(0)!;
    if (stripAccents) cp = nfdFirstCp(cp);
    const flags = cpFlags(cp);
    if (flags & CpFlag.WHITESPACE) {
      endWord();
      continue;
    }
    if (cp === 0 || cp === 0xfffd || flags & CpFlag.CONTROL) continue;
    if (stripAccents && flags & CpFlag.MARK) continue;
    const s = String.fromCodePoint(lowercase ? toLowerCp(cp) : cp);
    if (flags & CpFlag.PUNCTUATION || (cp < 0x7f && flags & CpFlag.SYMBOL) || isChineseChar(cp)) {
      endWord();
      words[words.length - 1] = s;
      words.push('');
    } else {
      words[words.length - 1] += s;
    }
  }
  if (words[words.length - 1] === '') words.pop();
  return words;
}

/** Tokenizes raw text (no special tokens in it) and appends the ids to `out`. */
export function wpmTokenize(vocab: Vocab, text: string, out: number[]): void {
  for (const word of wpmWords(text, vocab.flags.lowercase, vocab.flags.stripAccents)) {
    if (word === '') continue;
    if (word.length > MAX_WORD_CHARS && Array.from(word).length > MAX_WORD_CHARS) {
      if (vocab.special.unk !== undefined) out.push(vocab.special.unk);
      continue;
    }
    const chars = Array.from(WORD_START + word);
    const byteEnd: number[] = [0];
    for (const c of chars) byteEnd.push(byteEnd[byteEnd.length - 1] + utf8Length(c.codePointAt(0)!));
    const before = out.length;
    for (let i = 0; i < chars.length; ) {
      let matched = -1;
      let longest = i;
      while (longest < chars.length && byteEnd[longest + 1] - byteEnd[i] <= vocab.maxTokenLen) longest++;
      for (let j = longest; j > i; j--) {
        const id = vocab.idOf(chars.slice(i, j).join(''));
        if (id !== undefined) {
          out.push(id);
          matched = j;
          break;
        }
      }
      if (matched === -1) {
        out.length = before;
        break;
      }
      i = matched;
    }
    if (out.length === before && vocab.special.unk !== undefined) out.push(vocab.special.unk);
  }
}
