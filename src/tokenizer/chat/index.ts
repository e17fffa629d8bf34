/**
 * Chat templates: render OpenAI-style conversations with the model's Jinja template (or a
 * built-in fallback), and parse tool calls back out of generated text.
 */
export { ChatTemplate, DEFAULT_TEMPLATE_BUDGET, MAX_RANGE, renderChat, type TemplateBudget } from './template.js';
export {
  BUILTIN_TEMPLATE_NAMES,
  builtinChatTemplate,
  guessChatTemplateName,
  resolveChatTemplate,
  type BuiltinTemplateName,
  type ChatTemplateSource,
} from './builtin.js';
export {
  detectToolCallFormat,
  parseToolCalls,
  proseLength,
  ProseTracker,
  type ParsedToolCall,
  type ToolCallFormat,
  type ToolCallParse,
} from './tool-calls.js';
export { strftime } from './strftime.js';
export type { ChatMessage, ChatRenderOptions, ChatTextPart, ChatToolCall, ToolDefinition } from './types.js';
