/**
 * Anthropic's Messages API: POST /v1/messages and POST /v1/messages/count_tokens. Errors on these
 * paths are answered in Anthropic's shape (see errors.ts and the server's error handler).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { badRequest } from '../errors.js';
import type { ModelHost } from '../host.js';
import type { ServerMetrics } from '../metrics.js';
import { parseBody } from '../parse-body.js';
import { createMessage } from './messages.js';
import { promptOf } from './prepare.js';
import { countTokensRequest, unknownFields, unsupportedContent } from './schemas.js';

/** count_tokens: the tokens of the prompt the same request would generate from, tools included. */
async function countTokens(host: ModelHost, request: FastifyRequest, reply: FastifyReply): Promise<{ input_tokens: number }> {
  const refused = unsupportedContent(request.body);
  if (refused) throw badRequest(refused.message, refused.param);
  const req = parseBody(countTokensRequest, request.body);
  host.ignored(unknownFields(request.body, req));
  host.require(req.model);
  const abort = new AbortController();
  // The response closing before it was written means the client went away.
  reply.raw.on('close', () => {
    if (!reply.raw.writableEnded) abort.abort();
  });
  const { prompt } = await promptOf(host, req, abort.signal);
  return { input_tokens: prompt.length };
}

/** Registers the Messages API routes. */
export function registerAnthropicRoutes(app: FastifyInstance, host: ModelHost, metrics: ServerMetrics): void {
  app.post('/v1/messages', (request, reply) => createMessage(host, metrics, request, reply));
  app.post('/v1/messages/count_tokens', (request, reply) => countTokens(host, request, reply));
}
