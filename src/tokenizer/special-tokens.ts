/**
 * Special token handling at load time, as llama.cpp does it: ids from metadata (ignoring ids out
 * of range), ids guessed from well-known token texts when metadata is silent, the end-of-generation
 * set, attribute fixes, and the list of tokens matched verbatim before tokenizing.
 */
import type { Metadata } from '../gguf/metadata.js';
import type { SpecialIds } from './vocab.js';
import { TokenAttr } from './token-attr.js';

const ID_KEYS: ReadonlyArray<readonly [keyof SpecialIds, string]> = [
  ['bos', 'tokenizer.ggml.bos_token_id'],
  ['eos', 'tokenizer.ggml.eos_token_id'],
  ['eot', 'tokenizer.ggml.eot_token_id'],
  ['eom', 'tokenizer.ggml.eom_token_id'],
  ['unk', 'tokenizer.ggml.unknown_token_id'],
  ['sep', 'tokenizer.ggml.seperator_token_id'],
  ['pad', 'tokenizer.ggml.padding_token_id'],
  ['mask', 'tokenizer.ggml.mask_token_id'],
  ['fimPre', 'tokenizer.ggml.fim_pre_token_id'],
  ['fimSuf', 'tokenizer.ggml.fim_suf_token_id'],
  ['fimMid', 'tokenizer.ggml.fim_mid_token_id'],
  ['fimPad', 'tokenizer.ggml.fim_pad_token_id'],
  ['fimRep', 'tokenizer.ggml.fim_rep_token_id'],
  ['fimSep', 'tokenizer.ggml.fim_sep_token_id'],
  // Older names of the FIM keys.
  ['fimPre', 'tokenizer.ggml.prefix_token_id'],
  ['fimSuf', 'tokenizer.ggml.suffix_token_id'],
  ['fimMid', 'tokenizer.ggml.middle_token_id'],
];

/** Applies the id keys present in metadata over the defaults; ids outside the vocabulary are ignored. */
export function readSpecialIds(meta: Metadata, defaults: SpecialIds, nTokens: number): SpecialIds {
  const ids: SpecialIds = { ...defaults };
  for (const [name, key] of ID_KEYS) {
    const current = ids[name];
    if (current !== undefined && (current < 0 || current >= nTokens)) ids[name] = undefined;
    const value = meta.number(key);
    if (value === undefined) continue;
    if (Number.isInteger(value) && value >= 0 && value < nTokens) ids[name] = value;
  }
  return ids;
}

// Texts that mark a token as end-of-turn, end-of-message or fill-in-the-middle when the file does
// not say which token that is (converters do not always write the keys).
const GUESSES: ReadonlyArray<readonly [keyof SpecialIds, readonly string[]]> = [
  [
    'eot',
    [
      '<|eot_id|>', '<|im_end|>', '<|end|>', '<end_of_turn>', '<|endoftext|>', '<|end_of_text|>', '<EOT>', '_<EOT>',
      '[EOT]', '<｜end▁of▁sentence｜>', '<end_of_utterance>',
    ],
  ],
  ['eom', ['<|eom_id|>']],
  ['fimPre', ['<|fim_prefix|>', '<fim-prefix>', '<fim_prefix>', '<｜fim▁begin｜>', '<PRE>', '▁<PRE>', '<|code_prefix|>', '<|prefix|>']],
  ['fimSuf', ['<|fim_suffix|>', '<fim-suffix>', '<fim_suffix>', '<｜fim▁hole｜>', '<SUF>', '▁<SUF>', '<|code_suffix|>', '<|suffix|>']],
  ['fimMid', ['<|fim_middle|>', '<fim-middle>', '<fim_middle>', '<｜fim▁end｜>', '<MID>', '▁<MID>', '<|code_middle|>', '<|middle|>']],
  ['fimPad', ['<|fim_pad|>', '<fim-pad>', '<fim_pad>', '<PAD>', '[PAD]']],
  ['fimRep', ['<|fim_repo|>', '<|repo_name|>', '<fim-repo>', '<REPO>', '<reponame>']],
  ['fimSep', ['<|file_sep|>']],
];

const EOG_TEXTS = new Set([
  '<|eot_id|>', '<|im_end|>', '<|end|>', '<|return|>', '<|call|>', '<|flush|>', '<|calls|>', '<end_of_turn>',
  '<|endoftext|>', '</s>', '<|eom_id|>', '<EOT>', '_<EOT>', '[EOT]', '[EOS]', '<|end_of_text|>', '<end_of_utterance>',
  '<eos>', '<turn|>', '<|tool_response>', '<｜end▁of▁sentence｜>', '[e~[',
]);

// Harmony-style chat markers that must always be rendered as text.
const ALWAYS_RENDERED = new Set(['<|channel|>', '<|message|>', '<|start|>', '<|constrain|>']);

/** Result of the special-token pass. */
export interface SpecialTokenSetup {
  readonly ids: SpecialIds;
  readonly eog: Set<number>;
  readonly specialTokens: number[];
}

/**
 * Guesses missing ids from token texts, builds the EOG set and the verbatim-match list, and
 * updates `attrs` in place (tokens recognised as special become CONTROL). Tokens are visited in
 * id order, so where several texts match the lowest id wins.
 */
export function setupSpecialTokens(
  texts: readonly string[],
  attrs: Uint16Array,
  given: SpecialIds,
  modelName: string,
  pre: string,
  architecture: string,
): SpecialTokenSetup {
  const ids: SpecialIds = { ...given };
  const markControl = (id: number): void => {
    attrs[id] |= TokenAttr.CONTROL;
  };

  for (let id = 0; id < texts.length; id++) {
    for (const [name, candidates] of GUESSES) {
      if (ids[name] === undefined && candidates.includes(texts[id])) {
        ids[name] = id;
        markControl(id);
      }
    }
  }
  for (let id = 0; id < texts.length; id++) {
    if (attrs[id] & TokenAttr.CONTROL && texts[id].includes('unused')) attrs[id] |= TokenAttr.UNUSED;
  }

  const eog = new Set<number>();
  for (const id of [ids.fimPad, ids.fimRep, ids.fimSep]) if (id !== undefined) eog.add(id);
  for (let id = 0; id < texts.length; id++) {
    if (EOG_TEXTS.has(texts[id])) {
      eog.add(id);
      markControl(id);
    }
  }
  for (let id = 0; id < texts.length; id++) {
    if (ALWAYS_RENDERED.has(texts[id])) attrs[id] = TokenAttr.USER_DEFINED;
  }
  for (const id of [ids.eos, ids.eot, ids.eom]) if (id !== undefined) eog.add(id);
  applyEogExceptions(texts, attrs, eog);

  const specialTokens: number[] = [];
  for (let id = 0; id < texts.length; id++) {
    if (attrs[id] & (TokenAttr.CONTROL | TokenAttr.USER_DEFINED | TokenAttr.UNKNOWN)) specialTokens.push(id);
  }
  const byteLength = new Map(specialTokens.map((id) => [id, Buffer.byteLength(texts[id], 'utf8')]));
  specialTokens.sort((a, b) => byteLength.get(b)! - byteLength.get(a)! || a - b);

  applyStripAttrs(texts, attrs, specialTokens, modelName.toLowerCase(), pre, architecture);
  return { ids, eog, specialTokens };
}

/** Chat formats where a listed EOG text is in fact a mid-turn marker. */
function applyEogExceptions(texts: readonly string[], attrs: Uint16Array, eog: Set<number>): void {
  const find = (...wanted: string[]): number | undefined => [...eog].find((id) => wanted.includes(texts[id]));
  const end = find('<|end|>');
  const hasReturn = find('<|return|>') !== undefined;
  const hasCall = find('<|call|>', '<|calls|>') !== undefined;
  const hasFlush = find('<|flush|>') !== undefined;
  if (end !== undefined && hasCall && (hasReturn || hasFlush)) {
    eog.delete(end);
    attrs[end] = TokenAttr.USER_DEFINED;
  }
  const closeS = find('</s>');
  if (closeS !== undefined && find('<|tool_response>') !== undefined) {
    eog.delete(closeS);
    attrs[closeS] = TokenAttr.NORMAL;
  }
}

/** Per-model whitespace stripping around special tokens (llama.cpp sets these by model name). */
function applyStripAttrs(
  texts: readonly string[],
  attrs: Uint16Array,
  specialTokens: readonly number[],
  modelName: string,
  pre: string,
  architecture: string,
): void {
  const idOf = (text: string): number | undefined => {
    const id = texts.indexOf(text);
    return id === -1 ? undefined : id;
  };
  const set = (text: string, bit: number, on: boolean): void => {
    const id = idOf(text);
    if (id !== undefined) attrs[id] = on ? attrs[id] | bit : attrs[id] & ~bit;
  };
  const anyOf = (s: string, parts: string[]): boolean => parts.some((p) => s.includes(p));
  if (anyOf(pre, ['jina-v2-de', 'jina-v2-es', 'jina-v2-code']) || anyOf(architecture, ['nomic-bert-moe', 'jina-bert-v3'])) {
    set('<mask>', TokenAttr.LSTRIP, true);
  } else if (anyOf(modelName, ['phi-3', 'phi3'])) {
    for (const id of specialTokens) attrs[id] |= TokenAttr.RSTRIP;
    set('</s>', TokenAttr.RSTRIP, true);
    for (const t of ['<unk>', '<s>', '<|endoftext|>']) set(t, TokenAttr.RSTRIP, false);
  } else if (modelName.includes('modern-bert')) {
    set('[MASK]', TokenAttr.LSTRIP, true);
  }
}
