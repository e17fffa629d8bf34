/**
 * From a conversation to prompt token ids: pick the chat template (the file's
 * `tokenizer.chat_template`, a named built-in, or one guessed from the vocabulary), render the
 * messages, and tokenize with special tokens parsed, adding BOS only when the template did not.
 */
import { Metadata } from '../gguf/metadata.js';
import type { GgufFile } from '../gguf/reader.js';
import { resolveChatTemplate, type BuiltinTemplateName, type ChatMessage, type ChatTemplate, type TemplateBudget, type ToolDefinition } from '../tokenizer/chat/index.js';
import type { Tokenizer } from '../tokenizer/index.js';
import { CairnError } from '../util/errors.js';
import { BUILTIN_TEMPLATE_NAMES } from '../tokenizer/chat/index.js';

export type { ChatMessage, ToolDefinition } from '../tokenizer/chat/index.js';

/** What chatPrompt needs of a loaded model. */
export interface ChatModel {
  readonly file: GgufFile;
  readonly tokenizer: Tokenizer;
}

/** Options of one chat rendering. */
export interface ChatPromptOptions {
  /** A built-in template name instead of the file's. */
  readonly template?: string;
  readonly tools?: readonly ToolDefinition[];
  readonly variables?: Readonly<Record<string, unknown>>;
  readonly addGenerationPrompt?: boolean;
  /** Limits on the template's steps and time (see TemplateBudget). */
  readonly budget?: TemplateBudget;
}

const cache = new WeakMap<GgufFile, Map<string, ChatTemplate>>();

/** The chat template a model uses (cached per file). */
export function modelChatTemplate(model: ChatModel, name?: string): ChatTemplate {
  if (name !== undefined && !(BUILTIN_TEMPLATE_NAMES as readonly string[]).includes(name)) {
    throw new CairnError('BAD_ARGUMENT', `unknown chat template "${name}" (built-in: ${BUILTIN_TEMPLATE_NAMES.join(', ')})`);
  }
  let perFile = cache.get(model.file);
  if (!perFile) cache.set(model.file, (perFile = new Map()));
  const key = name ?? '';
  let t = perFile.get(key);
  if (!t) {
    const m = new Metadata(model.file);
    t = resolveChatTemplate({
      name: name as BuiltinTemplateName | undefined,
      template: m.string('tokenizer.chat_template'),
      tokens: m.strings('tokenizer.ggml.tokens'),
    });
    perFile.set(key, t);
  }
  return t;
}

/** Renders a conversation with the model's template and returns the prompt's token ids. */
export function chatPrompt(model: ChatModel, messages: readonly ChatMessage[], opts: ChatPromptOptions = {}): number[] {
  return model.tokenizer.encode(chatText(model, messages, opts), { addSpecial: true, parseSpecial: true });
}

/**
 * Renders a conversation with the model's template: the prompt as text, to be tokenized as
 * chatPrompt does (with special tokens parsed and BOS added where the tokenizer adds it).
 */
export function chatText(model: ChatModel, messages: readonly ChatMessage[], opts: ChatPromptOptions = {}): string {
  const tok = model.tokenizer;
  return modelChatTemplate(model, opts.template).render(messages, {
    bosToken: tok.bosId !== undefined ? tok.tokenText(tok.bosId) : '',
    eosToken: tok.eosId !== undefined ? tok.tokenText(tok.eosId) : '',
    addGenerationPrompt: opts.addGenerationPrompt ?? true,
    tools: opts.tools,
    variables: opts.variables,
    tokenizerAddsBos: tok.addBos,
    budget: opts.budget,
  });
}
