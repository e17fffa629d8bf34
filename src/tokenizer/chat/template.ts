/**
 * Chat templates: a Jinja string (GGUF `tokenizer.chat_template` or a built-in) compiled once and
 * rendered per request with @huggingface/jinja, with the globals real templates call
 * (`raise_exception`, `strftime_now`, `range`, `namespace`, the `tojson` filter).
 *
 * About BOS: many templates print the BOS text themselves (`{{ bos_token }}`). The rendered
 * prompt is tokenized with special-token parsing on, so that text becomes the BOS token. If the
 * tokenizer would also add a BOS, the prompt starts with two. llama.cpp's rule, which this module
 * follows when `tokenizerAddsBos` is set, is to cut the template's leading BOS text so there is
 * exactly one; a caller that does not set it must tokenize without adding BOS when the rendered
 * text already starts with the BOS text.
 */
import { Environment, Interpreter, Template } from '@huggingface/jinja';
import { CairnError } from '../../util/errors.js';
import { templateMessages } from './messages.js';
import { strftime } from './strftime.js';
import type { ChatMessage, ChatRenderOptions } from './types.js';

/** Thrown by the template's own `raise_exception(...)`, told apart from engine failures. */
class TemplateRaised extends Error {}

/** Variable names the renderer sets itself; `variables` may not reuse them. */
const RESERVED = new Set([
  'messages', 'tools', 'bos_token', 'eos_token', 'add_generation_prompt',
  'raise_exception', 'strftime_now', 'range', 'namespace',
  'true', 'false', 'none', 'True', 'False', 'None',
]);

function range(start: number, stop?: number, step = 1): number[] {
  if (stop === undefined) {
    stop = start;
    start = 0;
  }
  if (step === 0) throw new Error('range() step must not be zero');
  const out: number[] = [];
  for (let i = start; step > 0 ? i < stop : i > stop; i += step) out.push(i);
  return out;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A compiled chat template. */
export class ChatTemplate {
  private constructor(
    /** The Jinja source. */
    readonly source: string,
    /** The built-in's name, or undefined for a template read from a model file. */
    readonly name: string | undefined,
    private readonly compiled: Template,
  ) {}

  /** Parses `source`; a syntax error raises TEMPLATE_ERROR naming the problem. */
  static compile(source: string, name?: string): ChatTemplate {
    if (typeof source !== 'string' || source.length === 0) {
      throw new CairnError('TEMPLATE_ERROR', 'chat template is empty');
    }
    try {
      return new ChatTemplate(source, name, new Template(source));
    } catch (err) {
      throw new CairnError('TEMPLATE_ERROR', `chat template${label(name)} does not parse: ${describe(err)}`, {
        cause: err,
      });
    }
  }

  /**
   * Renders a conversation to the prompt text. Template failures (including the template's own
   * `raise_exception`) raise TEMPLATE_ERROR; malformed messages or options raise BAD_ARGUMENT.
   */
  render(messages: readonly ChatMessage[], options: ChatRenderOptions = {}): string {
    const env = this.environment(messages, options);
    let text: string;
    try {
      const result = new Interpreter(env).run(this.compiled.parsed);
      text = String(result.value);
    } catch (err) {
      const what = err instanceof TemplateRaised ? 'raised an error' : 'failed';
      throw new CairnError('TEMPLATE_ERROR', `chat template${label(this.name)} ${what}: ${describe(err)}`, {
        cause: err,
      });
    }
    const bos = options.bosToken;
    if (options.tokenizerAddsBos && bos && text.startsWith(bos)) text = text.slice(bos.length);
    return text;
  }

  private environment(messages: readonly ChatMessage[], options: ChatRenderOptions): Environment {
    const env = new Environment();
    const now = options.now ?? new Date();
    const globals: Record<string, unknown> = {
      true: true,
      false: false,
      none: null,
      True: true,
      False: false,
      None: null,
      raise_exception: (message: unknown) => {
        throw new TemplateRaised(String(message));
      },
      strftime_now: (format: unknown) => strftime(now, String(format)),
      range,
      messages: templateMessages(messages),
      bos_token: options.bosToken ?? '',
      eos_token: options.eosToken ?? '',
      add_generation_prompt: options.addGenerationPrompt ?? true,
    };
    if (options.tools !== undefined && options.tools !== null) {
      if (!Array.isArray(options.tools)) throw new CairnError('BAD_ARGUMENT', 'tools must be an array');
      if (options.tools.length > 0) globals.tools = options.tools;
    }
    for (const [key, value] of Object.entries(options.variables ?? {})) {
      if (RESERVED.has(key)) {
        throw new CairnError('BAD_ARGUMENT', `template variable '${key}' is set by the renderer; pass it as an option`);
      }
      globals[key] = value;
    }
    for (const [key, value] of Object.entries(globals)) env.set(key, value);
    return env;
  }
}

function label(name: string | undefined): string {
  return name === undefined ? '' : ` '${name}'`;
}

/** Renders `messages` with `template`; see `ChatTemplate.render`. */
export function renderChat(
  template: ChatTemplate,
  messages: readonly ChatMessage[],
  options: ChatRenderOptions = {},
): string {
  return template.render(messages, options);
}
