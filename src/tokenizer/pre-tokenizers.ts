/**
 * Byte-level BPE pre-tokenizers: for each `tokenizer.ggml.pre` name llama.cpp knows, the list of
 * regexes that cut text into words (applied one after the other, each to the pieces the previous
 * one left) and the vocabulary flags that name implies. The regex sources are llama.cpp's, in its
 * regex dialect (see regex-split.ts for how they run here).
 */

/** How a pre-tokenizer name configures a BPE vocabulary. */
export interface PreTokenizerSpec {
  /** The canonical name of the regex family. */
  readonly family: string;
  readonly regexes: readonly string[];
  /** Space clean-up on decode (llama.cpp's clean_spaces); BPE vocabularies default to true. */
  readonly cleanSpaces: boolean;
  /** Words that are whole tokens skip the merges. */
  readonly ignoreMerges: boolean;
  /** Default for add_bos_token when the file does not say. */
  readonly addBos: boolean;
  /** Default for add_sep_token when the file does not say. */
  readonly addSep: boolean;
  /** The BOS id default is cleared (GLM-4 has none). */
  readonly noBos: boolean;
}

const GPT2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
const LLAMA3 =
  "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2 =
  "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN35 =
  "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const DEEPSEEK3 =
  "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+";
const BLOOM = ' ?[^(\\s|.,!?…。，、।۔،)]+';
const GPT4O =
  "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const TEKKEN =
  "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const SEED_CODER =
  "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\\r\\n]+|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const BAILINGMOE =
  "'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+";

// Cased letters (DeepSeek LLM's tokenizer.json), written as escapes so that no editor or
// normalizer can fold the canonical singletons (U+1FBE, U+2126, U+212A, ...) into other letters.
const DEEPSEEK_LLM_LETTERS =
  '\\s?[A-Za-z\\u00B5\\u00C0-\\u00D6\\u00D8-\\u00F6\\u00F8-\\u01BA\\u01BC-\\u01BF\\u01C4-\\u0293\\u0295-\\u02AF' +
  '\\u0370-\\u0373\\u0376\\u0377\\u037B-\\u037D\\u037F\\u0386\\u0388-\\u038A\\u038C\\u038E-\\u03A1\\u03A3-\\u03F5' +
  '\\u03F7-\\u0481\\u048A-\\u052F\\u0531-\\u0556\\u10A0-\\u10C5\\u13A0-\\u13F5\\u13F8-\\u13FD\\u1C90-\\u1CBA' +
  '\\u1CBD-\\u1CBF\\u1D00-\\u1D2B\\u1D6B-\\u1D77\\u1D79-\\u1D9A\\u1E00-\\u1F15\\u1F18-\\u1F1D\\u1F20-\\u1F45' +
  '\\u1F48-\\u1F4D\\u1F50-\\u1F57\\u1F59\\u1F5B\\u1F5D\\u1F5F-\\u1F7D\\u1F80-\\u1FB4\\u1FB6-\\u1FBC\\u1FBE' +
  '\\u1FC2-\\u1FC4\\u1FC6-\\u1FCC\\u1FD0-\\u1FD3\\u1FD6-\\u1FDB\\u1FE0-\\u1FEC\\u1FF2-\\u1FF4\\u1FF6-\\u1FFC' +
  '\\u2102\\u2107\\u210A-\\u2113\\u2115\\u2119-\\u211D\\u2124\\u2126\\u2128\\u212A-\\u212D\\u212F-\\u2134' +
  '\\u2139\\u213C-\\u213F\\u2145-\\u2149\\u214E\\u2183\\u2184\\u2C00-\\u2C7B\\u2C7E-\\u2CE4\\u2CEB-\\u2CEE' +
  '\\u2CF2\\u2CF3\\uA640-\\uA66D\\uA680-\\uA69B\\uA722-\\uA76F\\uA771-\\uA787\\uA78B-\\uA78E\\uAB70-\\uABBF' +
  '\\uFB00-\\uFB06\\uFB13-\\uFB17\\uFF21-\\uFF3A\\uFF41-\\uFF5A\\u{10400}-\\u{1044F}\\u{104B0}-\\u{104D3}' +
  '\\u{104D8}-\\u{104FB}\\u{10C80}-\\u{10CB2}\\u{10CC0}-\\u{10CF2}\\u{118A0}-\\u{118DF}\\u{1E900}-\\u{1E943}]+';
const CJK_HANGUL = '[\\u4E00-\\u9FA5\\u0800-\\u4E00\\uAC00-\\uD7FF]+';

const REGEXES: Readonly<Record<string, readonly string[]>> = {
  default: ['[\\p{P}\\$\\+<=>\\^~\\|]+', GPT2, '\\p{N}+', '[0-9][0-9][0-9]'],
  gpt2: [GPT2],
  llama3: [LLAMA3],
  'deepseek-llm': [
    '[\r\n]',
    DEEPSEEK_LLM_LETTERS,
    '\\s?[!-/:-~\\uFF01-\\uFF0F\\uFF1A-\\uFF5E\\u2018-\\u201F\\u3000-\\u3002]+',
    // llama.cpp's \s+$ matches the same run; but tried at each space of a long run that does not
    // end the piece, it backtracks over the rest of the run: quadratic. Only a run's first space
    // can start the match.
    '(?<!\\s)\\s+$',
    CJK_HANGUL,
    '\\p{N}+',
  ],
  'deepseek-coder': ['[\r\n]', '\\s?\\p{L}+', '\\s?\\p{P}+', CJK_HANGUL, '\\p{N}'],
  'deepseek-v3': ['\\p{N}{1,3}', '[\\u4E00-\\u9FA5\\u3040-\\u309F\\u30A0-\\u30FF]+', DEEPSEEK3],
  falcon: ['[\\p{P}\\$\\+<=>\\^~\\|`]+', GPT2, '[0-9][0-9][0-9]'],
  starcoder: ['\\p{N}', GPT2],
  qwen2: [QWEN2],
  qwen35: [QWEN35],
  bloom: [BLOOM],
  viking: [BLOOM, '\\p{N}'],
  tekken: [TEKKEN],
  gpt4o: [GPT4O],
  'seed-coder': [SEED_CODER],
  bailingmoe: [BAILINGMOE],
};

interface NameEntry {
  family: keyof typeof REGEXES;
  cleanSpaces?: false;
  ignoreMerges?: true;
  addBos?: true;
  addSep?: true;
  noBos?: true;
}

const NAMES = new Map<string, NameEntry>();
function names(list: string[], entry: NameEntry): void {
  for (const n of list) NAMES.set(n, entry);
}
names(['default'], { family: 'default' });
names(['llama3', 'llama-v3', 'llama-bpe', 'falcon3', 'falcon-h1', 'pixtral', 'midm-2.0', 'lfm2', 'jina-v5-nano'], {
  family: 'llama3',
  ignoreMerges: true,
  addBos: true,
});
names(['dbrx', 'smaug-bpe'], { family: 'llama3' });
names(['glm4', 'chatglm-bpe'], { family: 'llama3', noBos: true });
names(['deepseek-llm'], { family: 'deepseek-llm', cleanSpaces: false });
names(['deepseek-coder'], { family: 'deepseek-coder', cleanSpaces: false });
names(['deepseek-v3', 'hunyuan-dense', 'joyai-llm', 'hy_v4'], { family: 'deepseek-v3', cleanSpaces: false });
names(['falcon'], { family: 'falcon' });
names(['starcoder', 'refact', 'codeshell', 'exaone', 'minerva-7b', 'mellum2'], { family: 'starcoder' });
names(['command-r', 'smollm'], { family: 'starcoder', cleanSpaces: false });
names(['gpt-2', 'phi-2', 'jina-es', 'jina-de', 'gigachat', 'jina-v2-es', 'jina-v2-de', 'a.x-4.0', 'mellum', 'modern-bert'], {
  family: 'gpt2',
});
names(['mpt', 'olmo', 'jais', 'exaone4'], { family: 'gpt2' });
names(['jina-v1-en', 'jina-v2-code', 'roberta-bpe'], { family: 'gpt2', addSep: true });
names(['trillion', 'granite-docling'], { family: 'gpt2', cleanSpaces: false });
names(['qwen2', 'deepseek-r1-qwen', 'kormo', 'f2llmv2', 'hunyuan', 'solar-open', 'grok-2'], {
  family: 'qwen2',
  cleanSpaces: false,
});
names(['stablelm2', 'megrez'], { family: 'qwen2' });
names(['qwen35'], { family: 'qwen35', cleanSpaces: false });
names(['poro-chat'], { family: 'bloom', cleanSpaces: false });
names(['bloom', 'gpt3-finnish'], { family: 'bloom' });
names(['viking'], { family: 'viking', cleanSpaces: false });
names(['tekken'], { family: 'tekken', cleanSpaces: false, ignoreMerges: true, addBos: true });
names(['gpt-4o', 'llama4', 'kanana2', 'talkie', 'minimax-m2'], { family: 'gpt4o', cleanSpaces: false });
names(['seed-coder'], { family: 'seed-coder', cleanSpaces: false });
names(['bailingmoe', 'bailingmoe2', 'llada-moe'], { family: 'bailingmoe', cleanSpaces: false });

/** Every pre-tokenizer name this module knows. */
export function knownPreTokenizers(): string[] {
  return [...NAMES.keys()];
}

/**
 * The spec for a `tokenizer.ggml.pre` value; an absent value means "default" (llama.cpp warns
 * that quality suffers). Returns undefined for names that are unknown or not supported here.
 */
export function preTokenizerSpec(name: string | undefined): PreTokenizerSpec | undefined {
  const entry = NAMES.get(name === undefined || name === '' ? 'default' : name);
  if (!entry) return undefined;
  return {
    family: entry.family,
    regexes: REGEXES[entry.family],
    cleanSpaces: entry.cleanSpaces ?? true,
    ignoreMerges: entry.ignoreMerges ?? false,
    addBos: entry.addBos ?? false,
    addSep: entry.addSep ?? false,
    noBos: entry.noBos ?? false,
  };
}
