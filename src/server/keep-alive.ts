/**
 * Ollama's `keep_alive`: how long the model stays loaded after a request. Every request that uses
 * the model holds it (an unloaded one loads again first); as it ends, its keep_alive, if it gave
 * one, becomes the model's: 0 unloads it once idle, a negative value keeps it until shutdown, a
 * duration ("5m", "1h30m", or a number of seconds) keeps it that long after the last request.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { badRequest } from './errors.js';
import type { ModelHost } from './host.js';

const UNIT_MS: Readonly<Record<string, number>> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * A keep_alive value in ms (Infinity: forever), as Ollama reads it: a number of seconds, or a Go
 * duration string (or a number of seconds as a string); negative means forever. Undefined when absent; a 400 naming `keep_alive` when
 * it is neither.
 */
export function keepAliveMs(value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined;
  let ms: number;
  if (typeof value === 'number' && Number.isFinite(value)) ms = value * 1000;
  else if (typeof value === 'string' && value.length <= 64) ms = goDurationMs(value.trim());
  else ms = NaN;
  if (Number.isNaN(ms)) throw badRequest(`keep_alive must be a duration such as "5m", "1h30m" or "0", or a number of seconds (negative: keep loaded); got ${JSON.stringify(value).slice(0, 40)}`, 'keep_alive');
  return ms < 0 ? Infinity : ms;
}

/** A Go duration ("300ms", "-1.5h", "2h45m") or a number of seconds ("-1", "300", as OLLAMA_KEEP_ALIVE takes) in ms, or NaN. */
function goDurationMs(s: string): number {
  if (/^[-+]?(\d+(\.\d*)?|\.\d+)$/.test(s)) return Number(s) * 1000;
  const m = /^([-+]?)((?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+)$/.exec(s);
  if (!m) return NaN;
  let total = 0;
  for (const part of m[2].matchAll(/(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g)) total += Number(part[1]) * UNIT_MS[part[2]];
  return m[1] === '-' ? -total : total;
}

/** Requests that use the model. Listing, probing and describing it do not load it again. */
function usesModel(request: FastifyRequest): boolean {
  if (request.method !== 'POST') return false;
  const path = request.url.split('?')[0];
  return path !== '/api/show' && path !== '/api/version';
}

/**
 * An Ollama request that only sets keep_alive to 0 (no prompt, no messages): Ollama's way to unload
 * a model. It must not load an unloaded model first.
 */
export function onlyUnloads(body: unknown, keepAlive: number | undefined): boolean {
  if (keepAlive !== 0 || typeof body !== 'object' || body === null) return false;
  const b = body as { prompt?: unknown; messages?: unknown; input?: unknown };
  const none = (v: unknown) => v === undefined || v === '' || (Array.isArray(v) && v.length === 0);
  return none(b.prompt) && none(b.messages) && none(b.input);
}

/** Holds the model for every request that uses it, and applies the request's keep_alive as it ends. */
export function registerKeepAlive(app: FastifyInstance, host: ModelHost): void {
  app.addHook('preHandler', async (request, reply) => {
    if (!usesModel(request)) return;
    const body = request.body as { keep_alive?: unknown } | undefined;
    const keep = keepAliveMs(typeof body === 'object' && body !== null ? body.keep_alive : undefined);
    const loaded = host.state !== 'unloaded';
    if (!loaded && onlyUnloads(body, keep)) return;
    await host.enter();
    // 'close' comes for every response, streamed ones included, and for a client that went away.
    reply.raw.once('close', () => host.leave(keep));
  });
}
