/**
 * The models stored on this machine, as the server lists them (/v1/models, /api/tags) and fills
 * the store (Ollama's /api/pull). The server knows the store only through this interface, which
 * the command that starts it provides: the server module stays free of the store and the hub.
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { formatCount } from '../util/format.js';
import { ApiError, toApiError } from './errors.js';
import { parseBody } from './parse-body.js';

/** A stored model as the server lists it. */
export interface CatalogModel {
  readonly name: string;
  readonly size: number;
  readonly sha256: string;
  readonly architecture: string;
  readonly quantization: string;
  readonly parameters?: number;
  /** When it was pulled (ISO 8601). */
  readonly pulledAt: string;
}

/** One step of a pull, in Ollama's shape. */
export interface CatalogPullEvent {
  readonly status: string;
  readonly digest?: string;
  readonly total?: number;
  readonly completed?: number;
}

/** The store, for the server. */
export interface ModelCatalog {
  /** What is stored now. */
  list(): readonly CatalogModel[];
  /** Pulls `name` (`hf.co/owner/repo:TAG` or `hf:...`) into the store, telling its progress. */
  pull(name: string, onEvent: (e: CatalogPullEvent) => void, signal: AbortSignal): Promise<void>;
}

/** A stored model as Ollama's /api/tags lists it. */
export function ollamaTag(m: CatalogModel): Record<string, unknown> {
  return {
    name: m.name,
    model: m.name,
    modified_at: m.pulledAt,
    size: m.size,
    digest: m.sha256,
    details: {
      format: 'gguf',
      family: m.architecture,
      families: [m.architecture],
      parameter_size: m.parameters !== undefined ? formatCount(m.parameters) : '',
      quantization_level: m.quantization,
    },
  };
}

/** A stored model as OpenAI's /v1/models lists it. */
export function openAiModel(m: CatalogModel): Record<string, unknown> {
  const t = Date.parse(m.pulledAt);
  return { id: m.name, object: 'model', created: Number.isFinite(t) ? Math.floor(t / 1000) : 0, owned_by: 'cairn' };
}

/** At most this many pulls run at once; more get 429 (each holds connections and disk). */
const MAX_PULLS = 2;

const pullBody = z.looseObject({ model: z.string().min(1).max(1024).optional(), name: z.string().min(1).max(1024).optional(), stream: z.boolean().optional() });

/** Registers Ollama's POST /api/pull over the catalog (501 where the server has none). */
export function registerPullRoute(app: FastifyInstance, catalog: ModelCatalog | undefined): void {
  let running = 0;
  app.post('/api/pull', async (request, reply) => {
    const body = parseBody(pullBody, request.body);
    const name = body.model ?? body.name;
    if (!name) throw new ApiError(400, 'name the model to pull in "model", e.g. "hf.co/OWNER/REPO:Q4_K_M"', 'invalid_request_error', 'model', null);
    if (!catalog) throw new ApiError(501, 'this server keeps no model store', 'invalid_request_error', null, 'not_implemented');
    if (!/^(hf:|hf\.co\/|huggingface\.co\/|https:\/\/huggingface\.co\/)/i.test(name)) {
      throw new ApiError(400, `cairn pulls GGUF models from Hugging Face: name one as hf.co/OWNER/REPO:TAG, not "${name.slice(0, 200)}"`, 'invalid_request_error', 'model', null);
    }
    if (running >= MAX_PULLS) throw new ApiError(429, `${MAX_PULLS} pulls are running; retry when one ends`, 'rate_limit_error', null, 'too_many_pulls');
    running++;
    // A client that goes away stops its pull; what was fetched stays for the next one to continue.
    const abort = new AbortController();
    reply.raw.on('close', () => {
      if (!reply.raw.writableEnded) abort.abort();
    });
    try {
      if (body.stream === false) {
        await catalog.pull(name, () => {}, abort.signal);
        return { status: 'success' };
      }
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, { 'Content-Type': 'application/x-ndjson', 'Cache-Control': 'no-cache' });
      // Byte counts come many times a second: a line per step, and for bytes at most 4 a second.
      let last = 0;
      const write = (e: CatalogPullEvent) => {
        if (res.destroyed) return;
        const now = Date.now();
        const isBytes = e.completed !== undefined && e.total !== undefined && e.completed < e.total && e.completed > 0;
        if (isBytes && now - last < 250) return;
        last = now;
        res.write(JSON.stringify(e) + '\n');
      };
      try {
        await catalog.pull(name, write, abort.signal);
      } catch (err) {
        if (!res.destroyed) res.write(JSON.stringify({ error: toApiError(err).message }) + '\n');
      }
      if (!res.destroyed) res.end();
      return reply;
    } finally {
      running--;
    }
  });
}
