/**
 * API errors in OpenAI's JSON shape, `{ error: { message, type, param, code } }`, with the HTTP
 * status that goes with each kind. Every failure path of the server answers through here.
 */
import { isCairnError } from '../util/errors.js';

/** An error to send to an API client. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
  }

  /** The response body. */
  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** 400 for a request the server cannot accept; `param` names the field. */
export const badRequest = (message: string, param: string | null = null): ApiError =>
  new ApiError(400, message, 'invalid_request_error', param, 'invalid_value');

/** 401 for a missing or wrong API key. */
export const unauthorized = (): ApiError =>
  new ApiError(401, 'Missing or invalid API key: send "Authorization: Bearer <key>" with the key the server was started with.', 'authentication_error', null, 'invalid_api_key');

/** 404 for an unknown model. */
export const modelNotFound = (model: string, available: readonly string[]): ApiError =>
  new ApiError(404, `The model "${model}" does not exist on this server. Available: ${available.join(', ')}.`, 'invalid_request_error', 'model', 'model_not_found');

/** 404 for an unknown route. */
export const routeNotFound = (method: string, url: string): ApiError =>
  new ApiError(404, `No route ${method} ${url.slice(0, 200)}. See GET /v1/models, POST /v1/chat/completions, /v1/completions, /v1/responses, /v1/messages, /v1/embeddings, and Ollama's /api/chat, /api/generate, /api/embed.`, 'invalid_request_error', null, 'not_found');

/** 413 for a body over the limit. */
export const tooLarge = (limit: number): ApiError =>
  new ApiError(413, `The request body is larger than the server's limit of ${limit} bytes.`, 'invalid_request_error', null, 'request_too_large');

/** 429 when every slot is busy and the queue is full. */
export const queueFull = (): ApiError =>
  new ApiError(429, 'The server is busy: every slot is in use and the queue is full. Retry shortly.', 'rate_limit_error', null, 'queue_full');

/** 503 while the model loads (or after it failed to load). */
export const unavailable = (message: string): ApiError => new ApiError(503, message, 'unavailable_error', null, 'model_not_ready');

/**
 * The field that holds each route's prompt, by route path; the chat-shaped routes hold it in
 * `messages`. (Ollama's errors are a bare message, naming no field.)
 */
const PROMPT_FIELDS: ReadonlyMap<string, string> = new Map([
  ['/v1/completions', 'prompt'],
  ['/v1/responses', 'input'],
  ['/v1/embeddings', 'input'],
  ['/tokenize', 'content'],
]);

/** The request field a "context full" error of the route at `path` names (its prompt's field). */
export function promptFieldOf(path: string | undefined): string {
  return (path !== undefined ? PROMPT_FIELDS.get(path) : undefined) ?? 'messages';
}

/**
 * Maps any thrown error to an ApiError (cairn's own errors keep their message). A prompt over the
 * context is a 400 naming `promptField`, the field that held the prompt.
 */
export function toApiError(err: unknown, promptField = 'messages'): ApiError {
  if (err instanceof ApiError) return err;
  if (isCairnError(err)) {
    if (err.code === 'QUEUE_FULL') return queueFull();
    if (err.code === 'SHUTTING_DOWN') return unavailable(err.message);
    if (err.code === 'CONTEXT_FULL') return new ApiError(400, err.message, 'invalid_request_error', promptField, 'context_length_exceeded');
    if (err.code === 'BAD_ARGUMENT' || err.code === 'TEMPLATE_ERROR' || err.code === 'TOKENIZER_UNSUPPORTED') return badRequest(err.message);
    // The cluster cannot run the model right now (a node lost, a plan being made): retry later.
    if (err.code === 'CLUSTER_PLAN' || err.code === 'CLUSTER_CLOSED' || err.code === 'CLUSTER_TIMEOUT' || err.code === 'CLUSTER_UNREACHABLE')
      return new ApiError(503, err.message, 'unavailable_error', null, 'cluster_unavailable');
    // A node answered with something wrong: the fault is upstream of this server.
    if (err.code === 'CLUSTER_REMOTE' || err.code === 'CLUSTER_PROTOCOL') return new ApiError(502, err.message, 'server_error', null, 'cluster_node_error');
    // The hub refused, lacks or mangled what a pull asked for, or cannot be reached: upstream faults.
    if (err.code === 'HUB_AUTH' || err.code === 'HUB_NOT_FOUND') return new ApiError(err.code === 'HUB_AUTH' ? 403 : 404, err.message, 'invalid_request_error', 'model', err.code.toLowerCase());
    if (err.code === 'HUB_UNREACHABLE' || err.code === 'HUB_INTEGRITY') return new ApiError(502, err.message, 'server_error', null, err.code.toLowerCase());
    if (err.code === 'FILE_NOT_FOUND') return new ApiError(404, err.message, 'invalid_request_error', 'model', 'model_not_found');
    // Nobody reads this answer (the client left); the status keeps /metrics honest.
    if (err.code === 'ABORTED') return new ApiError(499, err.message, 'invalid_request_error', null, 'client_closed_request');
    return new ApiError(500, err.message, 'server_error', null, err.code);
  }
  return new ApiError(500, `Internal error: ${(err as Error)?.message ?? String(err)}`, 'server_error');
}
