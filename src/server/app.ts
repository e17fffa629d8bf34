/**
 * The HTTP server: OpenAI routes under /v1, Ollama routes under /api, /health and /metrics, with
 * API-key checks, body limits and every error answered as OpenAI-style JSON.
 */
import { openAiModel, registerPullRoute, type CatalogModel, type ModelCatalog } from './model-catalog.js';
import cors from '@fastify/cors';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { timingSafeEqual } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { hostAllowed } from './host-check.js';
import { ApiError, badRequest, promptFieldOf, routeNotFound, toApiError, tooLarge, unauthorized } from './errors.js';
import type { ModelHost } from './host.js';
import type { ClusterStatus } from '../mesh/coordinator.js';
import { ServerMetrics } from './metrics.js';
import { chatCompletions } from './openai/chat.js';
import { completions } from './openai/completions.js';
import { registerResponsesRoutes } from './openai/responses.js';
import { registerOllamaRoutes } from './ollama/routes.js';
import { registerKeepAlive } from './keep-alive.js';
import { registerLlamaServerRoutes } from './llama-server-routes.js';
import { registerAnthropicRoutes } from './anthropic/routes.js';
import { registerEmbeddingsRoute } from './openai/embeddings.js';
import { registerOllamaEmbedRoutes } from './ollama/embed.js';
import { anthropicErrorBody, isAnthropicPath } from './anthropic/errors.js';

/** Server settings. */
export interface ServerOptions {
  /** Require `Authorization: Bearer <apiKey>` on every route but /health. */
  readonly apiKey?: string;
  /** Largest request body in bytes (default 8 MiB). */
  readonly bodyLimit?: number;
  /** cairn's version (reported by /props as its build_info). */
  readonly version?: string;
  /** The cluster's status, when the model runs on a cluster (GET /v1/cluster). */
  readonly cluster?: () => ClusterStatus | undefined;
  /**
   * Longest a client may take to send a whole request, headers and body, in ms (default 30 s);
   * a slower one (a trickled body) gets 408 and is disconnected. Headers alone get at most 10 s.
   */
  readonly requestTimeoutMs?: number;
  /**
   * A connection with no traffic either way for this long is closed, in ms (default 10 min, what
   * OpenAI's clients wait for a reply): a generation that has not produced its reply yet counts.
   */
  readonly idleTimeoutMs?: number;
  /** A kept-alive connection with no request for this long is closed, in ms (default 10 s). */
  readonly keepAliveTimeoutMs?: number;
  /** Told once per request as its response ends (not /health and /metrics, which are polled). */
  readonly logRequest?: (entry: RequestLogEntry) => void;
  /**
   * Web pages of these origins (or of any, '*') may call the API from a browser: CORS headers and
   * preflight answers. Absent: none (browsers then allow only pages of the server's own origin).
   */
  readonly corsOrigins?: readonly string[] | '*';
  /**
   * A web app for browsers: its page answers `GET /` when the request accepts text/html (anything
   * else still gets Ollama's probe answer). Its page and static files need no API key: they hold no
   * data, and the calls the app makes carry the key.
   */
  readonly webApp?: WebApp;
  /** The models stored on this machine: listed beside the loaded one, and filled by /api/pull. */
  readonly models?: ModelCatalog;
  /** The address the server listens on: on loopback, requests naming another host are refused (host-check.ts). */
  readonly bindAddress?: string;
  /** Host names answered besides this machine's own, on loopback ('*': any). */
  readonly allowedHosts?: readonly string[] | '*';
}

/** A web app served beside the API (see ServerOptions.webApp). */
export interface WebApp {
  /** Sends the app's page. */
  sendPage(reply: FastifyReply): Promise<unknown>;
  /** True for the path (without its query) of one of the app's static files. */
  isAsset(path: string): boolean;
}

/** True for a browser asking for a page (its Accept names text/html). */
function wantsHtml(request: FastifyRequest): boolean {
  return /\btext\/html\b/i.test(String(request.headers.accept ?? '').slice(0, 1024));
}

/** The web app's page and files, which need no key (GET and HEAD only). */
function isPublicWebRequest(request: FastifyRequest, web: WebApp | undefined): boolean {
  if (!web || (request.method !== 'GET' && request.method !== 'HEAD')) return false;
  const path = request.url.split('?')[0];
  return (path === '/' && wantsHtml(request)) || web.isAsset(path);
}

/** Body types a page of any site may POST without the browser asking the server first (CORS's "simple" requests). */
const SIMPLE_BODY_TYPES = new Set(['', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data']);

/**
 * True for a POST that a page of another origin (not one of `corsOrigins`) had the browser send
 * without a preflight: a form or a no-cors fetch. Any body is parsed as JSON (for Ollama's clients),
 * so without this check any web site the user opens could generate, pull models or unload the model
 * (keep_alive: 0) on a server that has no API key (CSRF). Browsers send Origin on every such POST;
 * clients that are not browsers send none and are not affected, nor are JSON posts, which a browser
 * sends cross-origin only after CORS allowed them.
 */
function isCrossSiteFormPost(request: FastifyRequest, corsOrigins: ServerOptions['corsOrigins']): boolean {
  const origin = request.headers.origin;
  if (request.method !== 'POST' || origin === undefined) return false;
  // A key header cannot be added to a form or a no-cors fetch: such a request is no forgery (apps in
  // webviews post with their own origins, tauri:// or app://, and a key).
  if (request.headers.authorization !== undefined || request.headers['x-api-key'] !== undefined) return false;
  const type = String(request.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (!SIMPLE_BODY_TYPES.has(type) || corsOrigins === '*' || corsOrigins?.includes(origin)) return false;
  let host: string;
  try {
    host = new URL(origin).host;
  } catch {
    // "null": a sandboxed frame, a file, a redirect across sites.
    return true;
  }
  return host === '' || host.toLowerCase() !== String(request.headers.host ?? '').toLowerCase();
}

/** One request, as the request log tells it. */
export interface RequestLogEntry {
  readonly method: string;
  /** The path, without the query. */
  readonly path: string;
  readonly status: number;
  /** Prompt and generated tokens, where the request generated. */
  readonly promptTokens?: number;
  readonly completionTokens?: number;
  readonly ms: number;
}

/** Node's own defaults would let a trickled request hold its connection forever (fastify's are 0). */
function httpTimeouts(opts: ServerOptions): { requestTimeout: number; connectionTimeout: number; keepAliveTimeout: number; http: { headersTimeout: number; requestTimeout: number; connectionsCheckingInterval: number } } {
  const request = opts.requestTimeoutMs ?? 30_000;
  return {
    requestTimeout: request,
    connectionTimeout: opts.idleTimeoutMs ?? 600_000,
    keepAliveTimeout: opts.keepAliveTimeoutMs ?? 10_000,
    // Node checks both timeouts at this interval, so it bounds how late a slow client is dropped.
    http: { headersTimeout: Math.min(request, 10_000), requestTimeout: request, connectionsCheckingInterval: Math.min(Math.max(Math.floor(request / 4), 100), 5000) },
  };
}

function keyMatches(header: string | undefined, key: string): boolean {
  const given = header?.startsWith('Bearer ') ? header.slice(7).trim() : undefined;
  if (given === undefined) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(key);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Answers `api` in the shape of the API the request's path belongs to. */
async function sendError(request: FastifyRequest, reply: FastifyReply, api: ApiError): Promise<void> {
  // Ollama's clients read `error` as a string (an object prints as [object Object]).
  if (request.url.startsWith('/api/')) await reply.status(api.status).send({ error: api.message });
  else if (isAnthropicPath(request.url)) await reply.status(api.status).send(anthropicErrorBody(api));
  else await reply.status(api.status).send(api.body());
}

/** Builds the server for a model host (not yet listening). */
export function buildServer(host: ModelHost, opts: ServerOptions = {}): { app: FastifyInstance; metrics: ServerMetrics } {
  const bodyLimit = opts.bodyLimit ?? 8 * 1024 * 1024;
  const app = Fastify({
    bodyLimit,
    logger: false,
    forceCloseConnections: true,
    ...httpTimeouts(opts),
    // A path the router cannot read (bad percent-encoding, a parameter over its length) is answered
    // before any route or error handler: in the API's error shape too, not fastify's own.
    frameworkErrors: (err, request, reply) => {
      const status = err.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 414 : 400;
      void sendError(request, reply, new ApiError(status, `The path cannot be read: ${err.message.slice(0, 300)}`, 'invalid_request_error', null, 'invalid_path'));
    },
  });
  // Closing the server stops the prompt workers, even one stuck in a model's template.
  app.addHook('onClose', async () => host.close());
  const metrics = new ServerMetrics();
  // Ollama clients often send JSON without a JSON content type; parse any body as JSON.
  app.removeContentTypeParser('text/plain');
  app.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, done) => {
    const text = String(body);
    if (text.trim() === '') return done(null, undefined);
    try {
      done(null, JSON.parse(text));
    } catch (err) {
      done(badRequest(`The body is not valid JSON: ${(err as Error).message}`), undefined);
    }
  });

  // A compressed body would read as JSON that is not valid: say what is wrong with it instead.
  app.addHook('preParsing', async (request) => {
    const encoding = request.headers['content-encoding'];
    const hasBody = request.headers['transfer-encoding'] !== undefined || Number(request.headers['content-length'] ?? 0) > 0;
    if (hasBody && encoding !== undefined && encoding.trim().toLowerCase() !== 'identity')
      throw new ApiError(415, `Bodies with content-encoding "${encoding.slice(0, 40)}" are not read here; send the JSON uncompressed.`, 'invalid_request_error', null, 'unsupported_content_encoding');
  });

  const requireKey = async (request: FastifyRequest) => {
    // A browser's preflight never carries the key; the request that follows it does.
    if (!opts.apiKey || request.url === '/health' || (opts.corsOrigins && request.method === 'OPTIONS') || isPublicWebRequest(request, opts.webApp)) return;
    const header = request.headers.authorization ?? (request.headers['x-api-key'] ? `Bearer ${String(request.headers['x-api-key'])}` : undefined);
    if (!keyMatches(header, opts.apiKey)) throw unauthorized();
  };
  const hostPolicy = { bindAddress: opts.bindAddress, allowedHosts: opts.allowedHosts };
  const refuseOtherHosts = async (request: FastifyRequest) => {
    if (!hostAllowed(request.headers.host, hostPolicy))
      throw new ApiError(
        403,
        `This server listens on ${opts.bindAddress} and answers requests for this machine only, not for host "${String(request.headers.host).slice(0, 200)}" (a web page reaching it by DNS rebinding). Behind a reverse proxy, name the host with --allowed-hosts.`,
        'invalid_request_error',
        null,
        'host_not_allowed',
      );
  };
  const refuseCrossSite = async (request: FastifyRequest) => {
    if (isCrossSiteFormPost(request, opts.corsOrigins))
      throw new ApiError(403, "A page of another site may not post here (its Origin is not this server's); allow its origin with --cors-origin.", 'invalid_request_error', null, 'cross_site_request');
  };
  const addGuards = () => {
    for (const guard of [refuseOtherHosts, refuseCrossSite, requireKey]) app.addHook('onRequest', guard);
  };
  if (opts.corsOrigins) {
    // CORS first, so that errors (a 401 among them) carry its headers and browsers show them.
    const origin = opts.corsOrigins === '*' ? '*' : [...opts.corsOrigins];
    // The request headers a preflight names are allowed as asked (the origin is what is checked):
    // the SDKs send headers of their own (x-stainless-*, anthropic-version, ...) that a fixed list misses.
    void app.register(cors, { origin, methods: ['GET', 'HEAD', 'POST', 'DELETE', 'OPTIONS'], maxAge: 600 });
    void app.after(addGuards);
  } else addGuards();
  app.addHook('onResponse', async (request, reply) => {
    metrics.responded(request.routeOptions.url ?? 'unknown', reply.statusCode);
  });
  if (opts.logRequest) {
    const log = opts.logRequest;
    app.addHook('onRequest', async (request, reply) => {
      const path = request.url.split('?')[0];
      if (path === '/health' || path === '/metrics') return;
      const t0 = performance.now();
      // 'close' comes for every response, streamed (hijacked) ones included.
      reply.raw.once('close', () => {
        const tokens = metrics.tokensOf(reply.raw);
        log({ method: request.method, path, status: reply.raw.statusCode, promptTokens: tokens?.prompt, completionTokens: tokens?.completion, ms: Math.round(performance.now() - t0) });
      });
    });
  }

  app.setErrorHandler(async (err, request, reply) => {
    let api: ApiError;
    const e = err as { code?: string; statusCode?: number; message: string };
    if (err instanceof ApiError) api = err;
    else if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') api = tooLarge(bodyLimit);
    else if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') api = new ApiError(415, 'Send the request body as JSON (Content-Type: application/json).', 'invalid_request_error', null, 'unsupported_media_type');
    else if (e.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || e.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || (e.statusCode === 400 && e.code?.startsWith('FST_'))) api = badRequest(`The body is not valid JSON: ${e.message}`);
    else api = toApiError(err, promptFieldOf(request.routeOptions.url));
    if (reply.sent || reply.raw.headersSent) return;
    await sendError(request, reply, api);
  });
  // Ollama's clients and front ends probe the root to see that a server is up; browsers get the app.
  app.get('/', async (request, reply) => {
    void reply.header('Vary', 'Accept');
    if (opts.webApp && wantsHtml(request)) return opts.webApp.sendPage(reply);
    return reply.type('text/plain; charset=utf-8').send('Ollama is running');
  });
  app.setNotFoundHandler(async (request) => {
    throw routeNotFound(request.method, request.url);
  });

  registerKeepAlive(app, host);

  app.get('/health', async (_request, reply) => {
    // A cluster that lost the nodes it needs is up but cannot answer: 503 with the reason.
    const down = host.state === 'ready' ? host.model?.engine.runner.unavailable : undefined;
    if (host.state === 'ready' && !down) return { status: 'ok', model: host.id };
    // Unloaded by keep_alive: the server answers, loading the model again on the next request.
    if (host.state === 'unloaded') return { status: 'ok', model: host.id, loaded: false };
    await reply.status(503).send({ status: down ? 'unavailable' : host.state, error: down ?? host.error?.message });
  });
  app.get('/metrics', async (_request, reply) => {
    await reply.type('text/plain; version=0.0.4').send(metrics.render(host));
  });

  const modelObject = () => ({ id: host.id, object: 'model', created: host.created, owned_by: 'cairn' });
  // The loaded model first, then what the store holds besides it.
  app.get('/v1/models', async () => ({ object: 'list', data: [modelObject(), ...storedBesides(opts.models, host).map(openAiModel)] }));
  app.get('/v1/models/:id', async (request) => {
    const { id } = request.params as { id: string };
    host.require(id);
    return modelObject();
  });
  app.get('/v1/cluster', async () => {
    const status = opts.cluster?.();
    if (!status) throw new ApiError(404, host.state === 'loading' ? 'The cluster is still forming; retry in a moment.' : 'This server does not run a cluster (start it with --cluster).', 'invalid_request_error', null, 'not_a_cluster');
    return status;
  });
  app.post('/v1/chat/completions', (request, reply) => chatCompletions(host, metrics, request, reply));
  app.post('/v1/completions', (request, reply) => completions(host, metrics, request, reply));
  registerResponsesRoutes(app, host, metrics);
  registerOllamaRoutes(app, host, metrics, () => storedBesides(opts.models, host));
  registerPullRoute(app, opts.models);
  registerLlamaServerRoutes(app, host, opts.version);
  registerAnthropicRoutes(app, host, metrics);
  registerEmbeddingsRoute(app, host);
  registerOllamaEmbedRoutes(app, host);
  return { app, metrics };
}

/** Stored models other than the one being served (the same file listed once). */
function storedBesides(models: ModelCatalog | undefined, host: ModelHost): readonly CatalogModel[] {
  if (!models) return [];
  try {
    return models.list().filter((m) => m.name !== host.id && !host.path.endsWith(`sha256-${m.sha256}`));
  } catch {
    // An unreadable store lists nothing; the loaded model is still served.
    return [];
  }
}
