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

/** Thrown when a rendering runs past its budget. */
class TemplateOverBudget extends Error {}

/** How much one rendering may do (a model file's template is code from whoever made the file). */
export interface TemplateBudget {
  /** Most interpreter steps (expressions and statements evaluated). */
  readonly maxSteps?: number;
  /** Most wall-clock time, in milliseconds. */
  readonly timeoutMs?: number;
}

/**
 * Defaults: far beyond what real templates need (a few thousand steps for a long conversation),
 * far below what a loop over a hundred million items would take.
 */
export const DEFAULT_TEMPLATE_BUDGET: Required<TemplateBudget> = { maxSteps: 5_000_000, timeoutMs: 10_000 };

/** Longest list `range()` builds; longer ones are refused before they take memory. */
export const MAX_RANGE = 1_000_000;

/** The parts of @huggingface/jinja's interpreter used here (its own typings do not resolve under ESM). */
interface JinjaInterpreter {
  run(program: unknown): { value: unknown };
  evaluate(statement: unknown, environment: Environment): unknown;
  /** Runs a list of statements: a loop's body, once per iteration, even when it is empty. */
  evaluateBlock(statements: unknown, environment: Environment): unknown;
}
const JinjaInterpreterBase = Interpreter as unknown as new (env: Environment) => JinjaInterpreter;

/**
 * The interpreter, counting steps and watching the clock: every expression and statement passes
 * through evaluate, every loop iteration through evaluateBlock.
 */
class BudgetedInterpreter extends JinjaInterpreterBase {
  private steps = 0;
  private readonly maxSteps: number;
  private readonly timeoutMs: number;
  private readonly deadline: number;

  constructor(env: Environment, budget: TemplateBudget) {
    super(env);
    this.maxSteps = budget.maxSteps ?? DEFAULT_TEMPLATE_BUDGET.maxSteps;
    this.timeoutMs = budget.timeoutMs ?? DEFAULT_TEMPLATE_BUDGET.timeoutMs;
    this.deadline = performance.now() + this.timeoutMs;
  }

  /** Counts one step; once over, every later step throws too, in case the engine catches one. */
  private tick(): void {
    if (++this.steps > this.maxSteps) throw new TemplateOverBudget(`it took more than ${this.maxSteps} steps`);
    if ((this.steps & 15) === 0 && performance.now() > this.deadline) throw new TemplateOverBudget(`it ran for more than ${this.timeoutMs} ms`);
  }

  override evaluate(statement: unknown, environment: Environment): unknown {
    this.tick();
    return super.evaluate(statement, environment);
  }

  override evaluateBlock(statements: unknown, environment: Environment): unknown {
    this.tick();
    return super.evaluateBlock(statements, environment);
  }
}

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
  const length = Math.ceil((stop - start) / step);
  if (!(length <= MAX_RANGE)) throw new Error(`range() of ${length} numbers is longer than the limit of ${MAX_RANGE}`);
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
      const result = new BudgetedInterpreter(env, options.budget ?? {}).run(this.compiled.parsed);
      text = String(result.value);
    } catch (err) {
      const what = err instanceof TemplateRaised ? 'raised an error' : err instanceof TemplateOverBudget ? 'was stopped' : 'failed';
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
