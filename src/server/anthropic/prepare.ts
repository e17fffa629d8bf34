/**
 * From a validated Messages request to what the engine runs: the prompt (the conversation
 * rendered by a prompt worker with a prefilled answer's start after it, tokenized together), the
 * sampler, stop sequences, and a decoding constraint where tool_choice forces a call or
 * output_config asks for JSON.
 */
import type { LoadedModel } from '../../engine/load.js';
import type { ToolDefinition } from '../../tokenizer/chat/index.js';
import { badRequest } from '../errors.js';
import { samplerFromApi, type ServerGeneration } from '../generation.js';
import type { ModelHost } from '../host.js';
import { forcedCallSchema } from '../openai/chat.js';
import { checkSchemaSize, constraintForFormat } from '../response-format.js';
import { conversationOf, toolDefinitions } from './conversation.js';
import type { CountTokensRequest, MessagesRequest } from './schemas.js';

/** A request's prompt and the tools rendered into it. */
export interface AnthropicPrompt {
  readonly prompt: number[];
  readonly tools?: ToolDefinition[];
  /** The start of the answer the client wrote (a final assistant turn), if any. */
  readonly prefill?: string;
}

/** Renders and tokenizes a request's prompt (also what count_tokens counts). */
export async function promptOf(host: ModelHost, req: CountTokensRequest, signal: AbortSignal): Promise<AnthropicPrompt> {
  req.tools?.forEach((t, i) => checkSchemaSize(t.input_schema, `tools.${i}.input_schema`));
  const { messages, prefill } = conversationOf(req);
  const tools = toolDefinitions(req);
  // The prefill is tokenized with the rendered conversation, as the model would have read its own
  // answer so far (on its own, a SentencePiece tokenizer would start it with a word boundary).
  const prompt = await host.prompts.chat(messages, { tools, continuation: prefill }, signal);
  return { prompt, tools, prefill };
}

/** tool_choice in the OpenAI terms forcedCallSchema takes. */
function openAiChoice(choice: MessagesRequest['tool_choice']): 'required' | { type: 'function'; function: { name: string } } | undefined {
  if (choice?.type === 'any') return 'required';
  if (choice?.type === 'tool') return { type: 'function', function: { name: choice.name } };
  return undefined;
}

/** Everything a generation needs, cheapest checks first; `forced`: the reply is one tool call. */
export async function prepareMessage(
  host: ModelHost,
  model: LoadedModel,
  req: MessagesRequest,
  signal: AbortSignal,
): Promise<{ gen: ServerGeneration; tools?: ToolDefinition[]; forced: boolean }> {
  const choice = openAiChoice(req.tool_choice);
  if (choice && (!req.tools || req.tools.length === 0)) throw badRequest(`tool_choice ${req.tool_choice!.type} needs tools`, 'tool_choice');
  const format = req.output_config?.format ?? req.output_format ?? undefined;
  const tools = toolDefinitions(req);
  if (format && tools) throw badRequest('output_config.format and tools cannot be combined', 'output_config.format');
  const sampler = samplerFromApi({ temperature: req.temperature, top_p: req.top_p, top_k: req.top_k }, model);
  const forced = tools ? forcedCallSchema(tools, choice) : undefined;
  const schema = forced ?? format?.schema;
  const constraint = schema
    ? await constraintForFormat(model, { type: 'json_schema', json_schema: { schema } }, forced ? 'tools' : 'output_config.format.schema')
    : undefined;
  const { prompt, prefill } = await promptOf(host, req, signal);
  // A forced call is a JSON document from its first character; a written start cannot be part of it.
  if (prefill !== undefined && constraint) throw badRequest('A final assistant turn (prefill) cannot be combined with a forced tool_choice or output_config.format.', 'messages');
  const gen: ServerGeneration = { prompt, maxTokens: req.max_tokens, sampler, stop: req.stop_sequences, constraint };
  return { gen, tools, forced: forced !== undefined };
}
