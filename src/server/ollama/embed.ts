/**
 * Ollama's embedding routes. POST /api/embed takes `input` (a string or strings) and answers
 * unit-length vectors; a text longer than the context is cut to it unless `truncate` is false
 * (then 400), and an empty input only loads the model, as Ollama answers it. POST /api/embeddings
 * is the older form: one `prompt`, its vector not normalized (as Ollama's), never cut.
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { parseBody } from '../parse-body.js';
import { isString, listOf } from '../list-schemas.js';
import { badRequest } from '../errors.js';
import type { ModelHost } from '../host.js';
import { checkInputCount, clientSignal, embedLists, tokenizeTexts } from '../embedding-inputs.js';

const keepAlive = z.union([z.string(), z.number()]).optional();
const options = z.record(z.string(), z.unknown()).optional();

const embedBody = z.object({
  model: z.string().optional(),
  input: z.union([z.string(), listOf(isString, 'strings')]).optional(),
  truncate: z.boolean().optional(),
  dimensions: z.number().int().optional(),
  options,
  keep_alive: keepAlive,
});

const legacyBody = z.object({
  model: z.string().optional(),
  prompt: z.string().optional(),
  options,
  keep_alive: keepAlive,
});

/** Nanoseconds since `t0` (performance.now()), as Ollama reports durations. */
function nsSince(t0: number): number {
  return Math.round((performance.now() - t0) * 1e6);
}

/** Registers POST /api/embed and POST /api/embeddings. */
export function registerOllamaEmbedRoutes(app: FastifyInstance, host: ModelHost): void {
  app.post('/api/embed', async (request, reply) => {
    const t0 = performance.now();
    const body = parseBody(embedBody, request.body);
    const model = host.require(body.model);
    const name = body.model ?? host.id;
    const texts = body.input === undefined ? [] : typeof body.input === 'string' ? (body.input === '' ? [] : [body.input]) : body.input;
    if (texts.length === 0) return { model: name, embeddings: [], total_duration: nsSince(t0), load_duration: 0, prompt_eval_count: 0 };
    checkInputCount(texts.length, 'input');
    const dim = model.embedder.dim;
    if (body.dimensions !== undefined && body.dimensions !== dim) {
      throw badRequest(`This model's embeddings have ${dim} dimensions; "dimensions" can only ask for that many (the model file does not say it was trained for shorter ones).`, 'dimensions');
    }
    const signal = clientSignal(reply.raw);
    const lists = await tokenizeTexts(host, model, texts, { truncate: body.truncate ?? true, signal, param: 'input' });
    const vectors = await embedLists(model, lists, { normalize: true, signal, param: 'input' });
    return {
      model: name,
      embeddings: vectors.map((v) => Array.from(v)),
      total_duration: nsSince(t0),
      load_duration: 0,
      prompt_eval_count: lists.reduce((a, l) => a + l.length, 0),
    };
  });

  app.post('/api/embeddings', async (request, reply) => {
    const body = parseBody(legacyBody, request.body);
    const model = host.require(body.model);
    if (body.prompt === undefined || body.prompt === '') return { embedding: [] };
    const signal = clientSignal(reply.raw);
    const lists = await tokenizeTexts(host, model, [body.prompt], { truncate: false, signal, param: 'prompt' });
    const [v] = await embedLists(model, lists, { normalize: false, signal, param: 'prompt' });
    return { embedding: Array.from(v) };
  });
}
