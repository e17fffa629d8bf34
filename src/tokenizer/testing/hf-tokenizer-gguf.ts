/**
 * Turns a Hugging Face tokenizer.json (byte-level BPE) into GGUF tokenizer metadata the way
 * llama.cpp's convert_hf_to_gguf.py does, so tests can check our tokenizer on vocabularies that
 * ship as tokenizer.json only. Tokens are listed in id order including added tokens (gaps become
 * "[PADn]" unused tokens); added tokens are CONTROL when marked special or when they look special
 * ("<|...|>"), USER_DEFINED otherwise; merges are written as "left right".
 */
import { readFileSync } from 'node:fs';
import { gv, type GgufValue } from '../../gguf/values.js';
import { TokenType } from '../token-attr.js';

interface AddedToken {
  id: number;
  content: string;
  special: boolean;
}

interface TokenizerJson {
  added_tokens?: AddedToken[];
  model: { type: string; vocab: Record<string, number>; merges: (string | [string, string])[] };
}

interface TokenizerConfig {
  bos_token?: string | { content: string } | null;
  eos_token?: string | { content: string } | null;
  add_bos_token?: boolean;
  add_eos_token?: boolean;
}

/** What to write besides the vocabulary itself. */
export interface HfConversionOptions {
  /** Value of tokenizer.ggml.pre (convert_hf_to_gguf.py picks it from a hash of the tokenizer). */
  pre: string;
  /** tokenizer_config.json, for the BOS/EOS tokens and add_bos/add_eos flags. */
  configPath?: string;
}

/** convert_hf_to_gguf.py's does_token_look_special. */
function looksSpecial(t: string): boolean {
  return (
    ['<pad>', '<mask>', '<2mass>', '[@BOS@]'].includes(t) ||
    (t.startsWith('<|') && t.endsWith('|>')) ||
    (t.startsWith('<｜') && t.endsWith('｜>')) ||
    (t.startsWith('<unused') && t.endsWith('>'))
  );
}

function tokenContent(t: TokenizerConfig['bos_token']): string | undefined {
  if (t === null || t === undefined) return undefined;
  return typeof t === 'string' ? t : t.content;
}

/** GGUF metadata entries (tokenizer.ggml.*) for a byte-level BPE tokenizer.json. */
export function hfTokenizerMetadata(tokenizerJsonPath: string, options: HfConversionOptions): [string, GgufValue][] {
  const json = JSON.parse(readFileSync(tokenizerJsonPath, 'utf8')) as TokenizerJson;
  if (json.model.type !== 'BPE') throw new Error(`${tokenizerJsonPath}: model type ${json.model.type} is not BPE`);
  const added = new Map<number, AddedToken>((json.added_tokens ?? []).map((t) => [t.id, t]));
  const byId = new Map<number, string>(Object.entries(json.model.vocab).map(([text, id]) => [id, text]));
  for (const t of added.values()) byId.set(t.id, t.content);
  let size = 0;
  for (const id of byId.keys()) size = Math.max(size, id + 1);

  const tokens: string[] = [];
  const types: number[] = [];
  for (let id = 0; id < size; id++) {
    const text = byId.get(id);
    const a = added.get(id);
    if (text === undefined) {
      tokens.push(`[PAD${id}]`);
      types.push(TokenType.UNUSED);
    } else if (a) {
      const control = a.special || looksSpecial(text);
      tokens.push(control ? text : text.replaceAll('\u2581', ' '));
      types.push(control ? TokenType.CONTROL : TokenType.USER_DEFINED);
    } else {
      tokens.push(text);
      types.push(TokenType.NORMAL);
    }
  }
  const merges = json.model.merges.map((m) => (typeof m === 'string' ? m : `${m[0]} ${m[1]}`));

  const meta: [string, GgufValue][] = [
    ['general.architecture', gv.str('llama')],
    ['tokenizer.ggml.model', gv.str('gpt2')],
    ['tokenizer.ggml.pre', gv.str(options.pre)],
    ['tokenizer.ggml.tokens', gv.strs(tokens)],
    ['tokenizer.ggml.token_type', gv.i32s(types)],
    ['tokenizer.ggml.merges', gv.strs(merges)],
  ];
  if (options.configPath) {
    const config = JSON.parse(readFileSync(options.configPath, 'utf8')) as TokenizerConfig;
    const idOf = (t: TokenizerConfig['bos_token']): number | undefined => {
      const c = tokenContent(t);
      const id = c === undefined ? -1 : tokens.indexOf(c);
      return id >= 0 ? id : undefined;
    };
    const bos = idOf(config.bos_token);
    const eos = idOf(config.eos_token);
    if (bos !== undefined) meta.push(['tokenizer.ggml.bos_token_id', gv.u32(bos)]);
    if (eos !== undefined) meta.push(['tokenizer.ggml.eos_token_id', gv.u32(eos)]);
    if (config.add_bos_token !== undefined) meta.push(['tokenizer.ggml.add_bos_token', gv.bool(config.add_bos_token)]);
    if (config.add_eos_token !== undefined) meta.push(['tokenizer.ggml.add_eos_token', gv.bool(config.add_eos_token)]);
  }
  return meta;
}
