/**
 * The shapes a chat request carries into a template: OpenAI-style messages, tool definitions and
 * tool calls, and the options of one rendering.
 */
import type { TemplateBudget } from './template.js';

/** One part of a multi-part message; only text parts can be rendered into a text prompt. */
export interface ChatTextPart {
  readonly type: 'text';
  readonly text: string;
}

/** A tool call made by the assistant, as OpenAI's API carries it. */
export interface ChatToolCall {
  readonly id?: string;
  readonly type?: 'function';
  readonly function: {
    readonly name: string;
    /** A JSON object, as a string (OpenAI) or already parsed. */
    readonly arguments: string | Readonly<Record<string, unknown>>;
  };
}

/** A conversation turn. `role` is usually system, user, assistant or tool. */
export interface ChatMessage {
  readonly role: 'system' | 'user' | 'assistant' | 'tool' | (string & {});
  /** Text, or text parts (joined with "\n", as llama.cpp does); may be empty beside tool calls. */
  readonly content?: string | readonly ChatTextPart[] | null;
  readonly name?: string;
  readonly tool_calls?: readonly ChatToolCall[];
  /** For role `tool`: the id of the call this message answers. */
  readonly tool_call_id?: string;
  /** An assistant turn's reasoning, for templates that render it (Qwen3). */
  readonly reasoning_content?: string;
}

/** An OpenAI tool definition, passed through to the template unchanged. */
export interface ToolDefinition {
  readonly type: 'function';
  readonly function: {
    readonly name: string;
    readonly description?: string;
    readonly parameters?: Readonly<Record<string, unknown>>;
  };
}

/** Options of one rendering. */
export interface ChatRenderOptions {
  /** The BOS token's text (e.g. `<|begin_of_text|>`); templates that start with it print it. */
  readonly bosToken?: string;
  /** The EOS token's text (e.g. `</s>`); some templates close assistant turns with it. */
  readonly eosToken?: string;
  /** End with the header that opens the assistant's reply. Default true. */
  readonly addGenerationPrompt?: boolean;
  /** Tool definitions; omitted (or empty) means the template sees no `tools` variable. */
  readonly tools?: readonly ToolDefinition[];
  /**
   * Extra template variables (e.g. `enable_thinking: false` for Qwen3, `date_string` for
   * Llama 3). They may not reuse the names the renderer sets itself.
   */
  readonly variables?: Readonly<Record<string, unknown>>;
  /** The clock `strftime_now` reads; default the current time. */
  readonly now?: Date;
  /**
   * Set when the tokenizer will add BOS itself (GGUF `tokenizer.ggml.add_bos_token`): a leading
   * BOS text printed by the template is then removed, as llama.cpp does, so the prompt gets
   * exactly one BOS.
   */
  readonly tokenizerAddsBos?: boolean;
  /** Limits on the rendering's steps and time (default DEFAULT_TEMPLATE_BUDGET). */
  readonly budget?: TemplateBudget;
}
