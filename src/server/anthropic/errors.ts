/**
 * Errors of the Anthropic routes in Anthropic's shape, `{type: "error", error: {type, message}}`,
 * with the same HTTP status as any other route: Anthropic's SDKs pick their error class by status
 * and read `error.type` and `error.message`.
 */
import type { ApiError } from '../errors.js';

/** True for the paths whose errors are answered in Anthropic's shape (/v1/messages and below). */
export function isAnthropicPath(url: string): boolean {
  return url === '/v1/messages' || url.startsWith('/v1/messages/') || url.startsWith('/v1/messages?');
}

/** Anthropic's error type for an HTTP status. */
function errorType(status: number): string {
  switch (status) {
    case 401:
      return 'authentication_error';
    case 403:
      return 'permission_error';
    case 404:
      return 'not_found_error';
    case 413:
      return 'request_too_large';
    case 429:
      return 'rate_limit_error';
    // The model is loading, the server shutting down, a cluster short of nodes: retry later, which
    // is what Anthropic's clients do on overloaded_error.
    case 503:
      return 'overloaded_error';
    case 504:
      return 'timeout_error';
    default:
      return status < 500 ? 'invalid_request_error' : 'api_error';
  }
}

/** The body of an error answer (or of a stream's `error` event). */
export function anthropicErrorBody(err: ApiError): { type: 'error'; error: { type: string; message: string } } {
  return { type: 'error', error: { type: errorType(err.status), message: err.message } };
}
