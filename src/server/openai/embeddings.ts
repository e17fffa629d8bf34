/**
 * POST /v1/embeddings, as OpenAI (and llama.cpp's server) answer it: `input` is a string, an array
 * of strings, an array of token ids or an array of such arrays; each becomes one unit-length
 * vector, as a list of floats or (`encoding_format: "base64"`) the little-endian f32 bytes in
 * base64. A text longer than the context is refused, not cut. `dimensions` may only name the
 * model's own size: cutting a vector short is meaningful only for models trained for it, which a
 * GGUF file does not say.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { parseBody } from '../parse-body.js';
import { isString, isTokenId, listOf } from '../list-schemas.js';
import { badRequest } from '../errors.js';
import type { ModelHost } from '../host.js';
import { checkInputCount, checkTotal, clientSignal, embedLists, tokenizeTexts } from '../embedding-inputs.js';

/** The request body. */
const embeddingsRequest = z.object({
  input: z.union([z.string(), listOf(isString, 'strings'), listOf(isTokenId, 'token ids'), listOf((v): v is number[] => Array.isArray(v) && v.every(isTokenId), 'token id lists')]),
  model: z.string().optional(),
  encoding_format: z.enum(['float', 'base64']).optional(),
  dimensions: z.number().int().optional(),
  user: z.string().optional(),
});

const KNOWN = new Set(['input', 'model', 'encoding_format', 'dimensions', 'user']);

/** An f32 vector as OpenAI's base64 encoding: its little-endian bytes. */
export function base64Floats(v: Float32Array): string {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
}

/** The inputs as texts or as token lists. */
function inputsOf(input: z.infer<typeof embeddingsRequest>['input']): { texts: string[] } | { lists: number[][] } {
  if (typeof input === 'string') return { texts: [input] };
  if (input.length === 0) return { texts: [] };
  if (typeof input[0] === 'string') return { texts: input as string[] };
  if (typeof input[0] === 'number') return { lists: [input as number[]] };
  return { lists: input as number[][] };
}

async function embeddings(host: ModelHost, request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
  const req = parseBody(embeddingsRequest, request.body);
  if (request.body && typeof request.body === 'object') host.ignored(Object.keys(request.body).filter((k) => !KNOWN.has(k)));
  const model = host.require(req.model);
  const dim = model.embedder.dim;
  if (req.dimensions !== undefined && req.dimensions !== dim) {
    throw badRequest(
      `This model's embeddings have ${dim} dimensions; "dimensions" can only ask for that many: a shortened vector is meaningful only for models trained for it, and the model file does not say this one was.`,
      'dimensions',
    );
  }
  const signal = clientSignal(reply.raw);
  const inputs = inputsOf(req.input);
  let lists: number[][];
  if ('texts' in inputs) {
    checkInputCount(inputs.texts.length, 'input');
    const empty = inputs.texts.findIndex((t) => t === '');
    if (empty >= 0) throw badRequest(`Input ${empty} is an empty string; every input needs some text.`, 'input');
    lists = await tokenizeTexts(host, model, inputs.texts, { truncate: false, signal, param: 'input' });
  } else {
    lists = inputs.lists;
    checkInputCount(lists.length, 'input');
    checkTotal(lists.reduce((a, l) => a + l.length, 0), 'input');
  }
  const vectors = await embedLists(model, lists, { normalize: true, signal, param: 'input' });
  const tokens = lists.reduce((a, l) => a + l.length, 0);
  const base64 = req.encoding_format === 'base64';
  return {
    object: 'list',
    data: vectors.map((v, index) => ({ object: 'embedding', index, embedding: base64 ? base64Floats(v) : Array.from(v) })),
    model: host.nameFor(req.model),
    usage: { prompt_tokens: tokens, total_tokens: tokens },
  };
}

/** Registers POST /v1/embeddings. */
export function registerEmbeddingsRoute(app: FastifyInstance, host: ModelHost): void {
  app.post('/v1/embeddings', (request, reply) => embeddings(host, request, reply));
}
