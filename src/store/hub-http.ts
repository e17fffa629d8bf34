/**
 * The HTTP transport under the hub client: undici with proxies from the environment, redirects
 * followed by hand so the hub token never leaves the hub's origin (the hub sends LFS files to a
 * CDN with a signed URL), timeouts for connecting, for headers and for an idle body, and every
 * failure turned into a CairnError.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { Agent, EnvHttpProxyAgent, request, type Dispatcher } from 'undici';
import { CairnError } from '../util/errors.js';
import { abortedError, headerValue, statusError, unreachableError, type HubErrorContext, type HubTarget } from './hub-errors.js';

/** Settings of the transport. */
export interface HubHttpOptions {
  /** The hub's base URL without a trailing slash. */
  readonly endpoint: string;
  /** Bearer token sent to the endpoint's origin only. */
  readonly token?: string;
  /** Sent as User-Agent. */
  readonly userAgent: string;
  /** Where proxy settings are read from. */
  readonly env: NodeJS.ProcessEnv;
  /** Limit for connecting and for the response headers, in ms. */
  readonly timeoutMs: number;
  /** Limit for a body to go without data, in ms. */
  readonly idleTimeoutMs: number;
}

/** An answer with a 2xx status, after any redirects. */
export interface HubResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Dispatcher.ResponseData['body'];
  /** The URL that answered. */
  readonly url: URL;
  /** Headers of the first answer in the redirect chain (the hub's, carrying X-Linked-*). */
  readonly firstHeaders: IncomingHttpHeaders;
}

/** Redirects followed at most (the hub uses one or two). */
const MAX_REDIRECTS = 5;

/** How long a redirect target (a signed CDN URL) is reused before asking the hub again. */
const REDIRECT_TTL_MS = 5 * 60_000;

/** Drains a body we do not want, without reading an unbounded amount. */
async function discard(body: Dispatcher.ResponseData['body']): Promise<void> {
  try {
    await body.dump({ limit: 64 * 1024 });
  } catch {
    // A body that fails to drain costs only its connection.
  }
}

/**
 * Closes a body we stop reading. undici reports a destroyed body as an 'error' event, which with
 * no listener would crash the process; nobody needs that error, so it is swallowed here.
 */
export function dropBody(body: Dispatcher.ResponseData['body']): void {
  body.on('error', () => undefined);
  body.destroy();
}

/** Sends requests to the hub and whatever it redirects to. */
/**
 * Runs `make` with undici's "EnvHttpProxyAgent is experimental" warning (code UNDICI-EHPA) held
 * back: a user behind a proxy would read it as a fault of theirs on every `cairn pull`. Other
 * warnings pass; the constructor is synchronous, so nothing else runs while it is held.
 */
function withoutExperimentalWarning<T>(make: () => T): T {
  const emit = process.emitWarning;
  process.emitWarning = function (this: typeof process, warning: string | Error, ...rest: unknown[]) {
    const opt = rest[0];
    if (typeof opt === 'object' && opt !== null && (opt as { code?: unknown }).code === 'UNDICI-EHPA') return;
    return (emit as (...a: unknown[]) => void).call(process, warning, ...rest);
  } as typeof process.emitWarning;
  try {
    return make();
  } finally {
    process.emitWarning = emit;
  }
}

export class HubHttp {
  private readonly dispatcher: Dispatcher;
  private readonly origin: string;
  private readonly redirects = new Map<string, { target: string; until: number }>();
  /** For error messages. */
  readonly ctx: HubErrorContext;

  constructor(private readonly opts: HubHttpOptions) {
    this.origin = new URL(opts.endpoint).origin;
    this.ctx = { endpoint: opts.endpoint, hasToken: opts.token !== undefined };
    const agentOpts = {
      connect: { timeout: opts.timeoutMs },
      headersTimeout: opts.timeoutMs,
      bodyTimeout: opts.idleTimeoutMs,
    };
    const env = opts.env;
    const httpProxy = env.http_proxy || env.HTTP_PROXY || '';
    const httpsProxy = env.https_proxy || env.HTTPS_PROXY || '';
    // Built only where a proxy is set. Empty strings (not undefined) keep it from reading
    // process.env behind the caller's `env`.
    this.dispatcher =
      httpProxy || httpsProxy
        ? withoutExperimentalWarning(() => new EnvHttpProxyAgent({ ...agentOpts, httpProxy, httpsProxy, noProxy: env.no_proxy ?? env.NO_PROXY ?? '' }))
        : new Agent(agentOpts);
  }

  /**
   * Sends `method` to `url`, following up to 5 redirects (http/https only, never from https down to
   * http) with the token sent only to the hub's origin; returns the first 2xx answer and throws the
   * matching CairnError for any other. `reuseRedirect` lets a GET go straight to the place the
   * hub redirected the same URL to in the last minutes (one request instead of two per chunk).
   */
  async send(
    method: 'GET' | 'HEAD',
    url: string,
    target: HubTarget,
    opts: { headers?: Record<string, string>; signal?: AbortSignal; reuseRedirect?: boolean } = {},
  ): Promise<HubResponse> {
    if (opts.reuseRedirect) {
      const cached = this.redirects.get(url);
      if (cached && cached.until > Date.now()) {
        try {
          return await this.follow(method, new URL(cached.target), target, opts, undefined);
        } catch (err) {
          // An expired or refused link: forget it and ask the hub again. Other failures stand.
          if (!(err instanceof CairnError) || (err.code !== 'HUB_AUTH' && err.code !== 'HUB_NOT_FOUND')) throw err;
          this.redirects.delete(url);
        }
      }
    }
    return this.follow(method, new URL(url), target, opts, url);
  }

  private async follow(
    method: 'GET' | 'HEAD',
    start: URL,
    target: HubTarget,
    opts: { headers?: Record<string, string>; signal?: AbortSignal },
    cacheKey: string | undefined,
  ): Promise<HubResponse> {
    let url = start;
    let firstHeaders: IncomingHttpHeaders | undefined;
    for (let hop = 0; ; hop++) {
      const headers: Record<string, string> = { 'user-agent': this.opts.userAgent, ...opts.headers };
      if (this.opts.token !== undefined && url.origin === this.origin) headers.authorization = `Bearer ${this.opts.token}`;
      let res: Dispatcher.ResponseData;
      try {
        res = await request(url, { method, headers, dispatcher: this.dispatcher, signal: opts.signal });
      } catch (err) {
        if (opts.signal?.aborted) throw abortedError();
        throw unreachableError(err, url.origin, this.ctx);
      }
      firstHeaders ??= res.headers;
      const status = res.statusCode;
      if (status >= 200 && status < 300) {
        if (cacheKey !== undefined && url.href !== cacheKey && url.origin !== this.origin) {
          this.redirects.set(cacheKey, { target: url.href, until: Date.now() + REDIRECT_TTL_MS });
        }
        return { status, headers: res.headers, body: res.body, url, firstHeaders };
      }
      await discard(res.body);
      if (status >= 300 && status < 400 && status !== 304) {
        const location = headerValue(res.headers, 'location');
        if (location === undefined) throw this.badRedirect(url, status, 'without a Location');
        if (hop >= MAX_REDIRECTS) throw this.badRedirect(url, status, `more than ${MAX_REDIRECTS} times`);
        let next: URL;
        try {
          next = new URL(location, url);
        } catch {
          throw this.badRedirect(url, status, 'to a malformed URL');
        }
        if (next.protocol !== 'http:' && next.protocol !== 'https:') throw this.badRedirect(url, status, `to a ${next.protocol} URL`);
        if (url.protocol === 'https:' && next.protocol === 'http:') throw this.badRedirect(url, status, 'from https down to http');
        url = next;
        continue;
      }
      throw statusError(status, res.headers, url.origin, target, this.ctx);
    }
  }

  private badRedirect(url: URL, status: number, how: string): CairnError {
    return new CairnError(
      'HUB_UNREACHABLE',
      `${url.origin} redirected (${status}) ${how}, which a Hugging Face hub does not do: check HF_ENDPOINT (now ${this.opts.endpoint}) and any proxy`,
    );
  }

  /** Closes idle connections; requests after this fail. */
  async close(): Promise<void> {
    await this.dispatcher.close();
  }
}

/** Reads a whole body, refusing more than `maxBytes` (a hostile server could send without end). */
export async function readBounded(res: HubResponse, maxBytes: number, what: string, signal?: AbortSignal): Promise<Uint8Array> {
  const declared = Number(headerValue(res.headers, 'content-length'));
  if (Number.isFinite(declared) && declared > maxBytes) {
    await discard(res.body);
    throw tooBig(res.url, what, maxBytes);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      total += chunk.length;
      if (total > maxBytes) {
        dropBody(res.body);
        throw tooBig(res.url, what, maxBytes);
      }
      chunks.push(chunk);
    }
  } catch (err) {
    if (err instanceof CairnError) throw err;
    if (signal?.aborted) throw abortedError();
    throw new CairnError('HUB_UNREACHABLE', `the connection to ${res.url.origin} broke while reading ${what}: run the command again`, {
      cause: err,
    });
  }
  return Buffer.concat(chunks, total);
}

function tooBig(url: URL, what: string, maxBytes: number): CairnError {
  return new CairnError(
    'HUB_UNREACHABLE',
    `${url.origin} sent more than ${maxBytes} bytes for ${what}, more than a Hugging Face hub would: check HF_ENDPOINT`,
  );
}
