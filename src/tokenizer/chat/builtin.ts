/**
 * Built-in chat templates for model files that carry none, and the guess of which one fits a
 * vocabulary. Written in the same Jinja dialect as model templates, so one renderer serves both.
 * They render plain conversations; tool definitions are ignored. Tool results go in the format's
 * role for them (chatml: `tool`, llama-3: `ipython`) or, where it has none (llama-2, mistral, gemma, phi-3), in a
 * user turn that says it is a tool result, so a conversation with tool turns still renders.
 */
import { CairnError } from '../../util/errors.js';
import { ChatTemplate } from './template.js';

/** Names of the built-in templates. */
export type BuiltinTemplateName = 'chatml' | 'llama-2' | 'llama-3' | 'mistral' | 'gemma' | 'phi-3';

// Each line starts with a whitespace-stripping tag, so the layout never reaches the output.
const SOURCES: Record<BuiltinTemplateName, string> = {
  chatml: String.raw`
{%- for m in messages %}
  {{- '<|im_start|>' + m.role + '\n' + m.content + '<|im_end|>\n' }}
{%- endfor %}
{%- if add_generation_prompt %}
  {{- '<|im_start|>assistant\n' }}
{%- endif %}`,

  'llama-3': String.raw`
{{- bos_token }}
{%- for m in messages %}
  {%- if m.role == 'tool' %}{%- set role = 'ipython' %}{%- else %}{%- set role = m.role %}{%- endif %}
  {{- '<|start_header_id|>' + role + '<|end_header_id|>\n\n' + m.content | trim + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}
  {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}`,

  'llama-2': String.raw`
{%- if messages and messages[0].role == 'system' %}
  {%- set system = messages[0].content | trim %}{%- set turns = messages[1:] %}
{%- else %}
  {%- set system = '' %}{%- set turns = messages %}
{%- endif %}
{%- for m in turns %}
  {%- if m.role == 'user' or m.role == 'tool' %}
    {%- if m.role == 'tool' %}{%- set text = 'Tool result: ' + m.content | trim %}{%- else %}{%- set text = m.content | trim %}{%- endif %}
    {%- if loop.first and system %}
      {{- bos_token + '[INST] <<SYS>>\n' + system + '\n<</SYS>>\n\n' + text + ' [/INST]' }}
    {%- else %}
      {{- bos_token + '[INST] ' + text + ' [/INST]' }}
    {%- endif %}
  {%- elif m.role == 'assistant' %}
    {{- ' ' + m.content | trim + ' ' + eos_token }}
  {%- else %}
    {{- raise_exception("the llama-2 format has no '" + m.role + "' role") }}
  {%- endif %}
{%- endfor %}`,

  mistral: String.raw`
{%- if messages and messages[0].role == 'system' %}
  {%- set system = messages[0].content %}{%- set turns = messages[1:] %}
{%- else %}
  {%- set system = '' %}{%- set turns = messages %}
{%- endif %}
{%- set ns = namespace(last_user=-1) %}
{%- for m in turns %}
  {%- if m.role == 'user' or m.role == 'tool' %}{%- set ns.last_user = loop.index0 %}{%- endif %}
{%- endfor %}
{{- bos_token }}
{%- for m in turns %}
  {%- if m.role == 'user' or m.role == 'tool' %}
    {%- if m.role == 'tool' %}{%- set text = 'Tool result: ' + m.content %}{%- else %}{%- set text = m.content %}{%- endif %}
    {%- if loop.index0 == ns.last_user and system %}
      {{- '[INST] ' + system + '\n\n' + text + '[/INST]' }}
    {%- else %}
      {{- '[INST] ' + text + '[/INST]' }}
    {%- endif %}
  {%- elif m.role == 'assistant' %}
    {{- ' ' + m.content | trim + eos_token }}
  {%- else %}
    {{- raise_exception("the mistral format has no '" + m.role + "' role") }}
  {%- endif %}
{%- endfor %}`,

  // Gemma's turns: the assistant is 'model', and a system prompt opens the first turn.
  gemma: String.raw`
{{- bos_token }}
{%- if messages and messages[0].role == 'system' %}
  {%- set prefix = messages[0].content | trim + '\n\n' %}{%- set turns = messages[1:] %}
{%- else %}
  {%- set prefix = '' %}{%- set turns = messages %}
{%- endif %}
{%- for m in turns %}
  {%- if m.role == 'assistant' %}{%- set role = 'model' %}{%- elif m.role == 'user' or m.role == 'tool' %}{%- set role = 'user' %}
  {%- else %}{{- raise_exception("the gemma format has no '" + m.role + "' role") }}{%- endif %}
  {%- if m.role == 'tool' %}{%- set text = 'Tool result: ' + m.content | trim %}{%- else %}{%- set text = m.content | trim %}{%- endif %}
  {%- if loop.first %}{%- set text = prefix + text %}{%- endif %}
  {{- '<start_of_turn>' + role + '\n' + text + '<end_of_turn>\n' }}
{%- endfor %}
{%- if add_generation_prompt %}
  {{- '<start_of_turn>model\n' }}
{%- endif %}`,

  // Phi-3's turns: a tag per role, each turn closed by <|end|>; without a generation prompt, EOS.
  'phi-3': String.raw`
{%- for m in messages %}
  {%- if m.role == 'system' or m.role == 'user' or m.role == 'assistant' %}
    {{- '<|' + m.role + '|>\n' + m.content + '<|end|>\n' }}
  {%- elif m.role == 'tool' %}
    {{- '<|user|>\nTool result: ' + m.content + '<|end|>\n' }}
  {%- else %}
    {{- raise_exception("the phi-3 format has no '" + m.role + "' role") }}
  {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
  {{- '<|assistant|>\n' }}
{%- else %}
  {{- eos_token }}
{%- endif %}`,
};

/** The names `builtinChatTemplate` accepts. */
export const BUILTIN_TEMPLATE_NAMES: readonly BuiltinTemplateName[] = Object.freeze(
  Object.keys(SOURCES) as BuiltinTemplateName[],
);

function isBuiltinName(name: string): name is BuiltinTemplateName {
  return Object.prototype.hasOwnProperty.call(SOURCES, name);
}

/** A built-in template by name; an unknown name raises TEMPLATE_ERROR listing the known ones. */
export function builtinChatTemplate(name: string): ChatTemplate {
  if (!isBuiltinName(name)) {
    throw new CairnError(
      'TEMPLATE_ERROR',
      `unknown chat template '${name}'; built-in templates are: ${BUILTIN_TEMPLATE_NAMES.join(', ')}`,
    );
  }
  return ChatTemplate.compile(SOURCES[name], name);
}

/**
 * Guesses the chat format from a vocabulary's token strings: `<|im_start|>` -> chatml,
 * `<|start_header_id|>` -> llama-3, an `[INST]` token -> mistral (Mistral vocabularies have it as
 * a control token; Llama 2's spells it with ordinary pieces), `<start_of_turn>` -> gemma, `<|user|>`
 * with `<|end|>` -> phi-3, `<s>` and `</s>` -> llama-2.
 * Undefined when nothing matches.
 */
export function guessChatTemplateName(tokens: readonly string[]): BuiltinTemplateName | undefined {
  const vocab = new Set(tokens);
  if (vocab.has('<|im_start|>')) return 'chatml';
  if (vocab.has('<|start_header_id|>')) return 'llama-3';
  if (vocab.has('[INST]')) return 'mistral';
  if (vocab.has('<start_of_turn>')) return 'gemma';
  if (vocab.has('<|user|>') && vocab.has('<|end|>')) return 'phi-3';
  if (vocab.has('<s>') && vocab.has('</s>')) return 'llama-2';
  return undefined;
}

/** Where a chat template may come from, most specific first. */
export interface ChatTemplateSource {
  /** A built-in to use regardless of the file (like llama.cpp's `--chat-template NAME`). */
  readonly name?: string;
  /** The model file's `tokenizer.chat_template`. */
  readonly template?: string;
  /** The vocabulary, to guess a built-in when the file has no template. */
  readonly tokens?: readonly string[];
}

/**
 * Picks the template to use: the named built-in if `name` is set, else the file's template, else
 * a built-in guessed from the vocabulary, else chatml (llama.cpp's default too).
 */
export function resolveChatTemplate(source: ChatTemplateSource = {}): ChatTemplate {
  if (source.name !== undefined) return builtinChatTemplate(source.name);
  if (source.template !== undefined && source.template.trim() !== '') {
    return ChatTemplate.compile(source.template);
  }
  const guessed = source.tokens ? guessChatTemplateName(source.tokens) : undefined;
  return builtinChatTemplate(guessed ?? 'chatml');
}
