/**
 * Turns what the hub (or the network under it) answered into CairnErrors whose messages say what
 * to do. The hub hides private repos behind 401 and marks the reason in `X-Error-Code`
 * (`RepoNotFound`, `GatedRepo`, `EntryNotFound`, `RevisionNotFound`), so that header decides first.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { CairnError } from '../util/errors.js';

/** What a request was about, for error messages. */
export interface HubTarget {
  /** `owner/name`, when the request concerns one repo. */
  readonly repo?: string;
  /** A file path inside the repo. */
  readonly path?: string;
  /** The revision asked for. */
  readonly revision?: string;
}

/** Facts about the client that change what a message advises. */
export interface HubErrorContext {
  /** The hub's base URL, e.g. https://huggingface.co. */
  readonly endpoint: string;
  /** Whether a token was sent. */
  readonly hasToken: boolean;
}

/** One header's value as a string (the first, where it repeats). */
export function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** The error for a non-2xx, non-redirect answer from `origin`. */
export function statusError(
  status: number,
  headers: IncomingHttpHeaders,
  origin: string,
  target: HubTarget,
  ctx: HubErrorContext,
): CairnError {
  const fromHub = origin === new URL(ctx.endpoint).origin;
  const errorCode = fromHub ? headerValue(headers, 'x-error-code') : undefined;
  const repo = target.repo === undefined ? 'the repository' : `\`${target.repo}\``;
  const privateHint = ctx.hasToken
    ? 'if it is private, check that the token in HF_TOKEN may read it'
    : 'if it is private, set HF_TOKEN to a token that may read it';
  const notFoundRepo = (): CairnError =>
    new CairnError('HUB_NOT_FOUND', `${repo} was not found at ${ctx.endpoint}: check the name (hf:OWNER/REPO); ${privateHint}`);

  if (errorCode === 'RepoNotFound') return notFoundRepo();
  if (errorCode === 'RevisionNotFound') {
    return new CairnError(
      'HUB_NOT_FOUND',
      `${repo} has no revision \`${target.revision ?? '?'}\`: check the branch, tag or commit, or leave out @REVISION to use main`,
    );
  }
  if (errorCode === 'GatedRepo' || (fromHub && (status === 401 || status === 403))) return authError(target, ctx);
  if (errorCode === 'EntryNotFound' || (status === 404 && target.path !== undefined)) {
    const at = target.revision === undefined ? '' : ` at revision ${target.revision}`;
    return new CairnError(
      'HUB_NOT_FOUND',
      `${repo} has no file \`${target.path ?? '?'}\`${at}: run \`cairn pull hf:${target.repo ?? 'OWNER/REPO'}\` to list its GGUF files`,
    );
  }
  if (status === 404 && fromHub) return notFoundRepo();
  if (status === 401 || status === 403 || status === 404 || status === 410) {
    return new CairnError(
      status === 404 || status === 410 ? 'HUB_NOT_FOUND' : 'HUB_AUTH',
      `the download server ${origin} answered ${status} for ${target.path ?? 'a file'} of ${repo}: the download link may have expired; run the command again`,
    );
  }
  if (status === 429) {
    return new CairnError(
      'HUB_UNREACHABLE',
      `${origin} is limiting the request rate (429): wait a few minutes and run the command again` +
        (ctx.hasToken ? '' : '; requests with a token (HF_TOKEN) get a higher limit'),
    );
  }
  if (status >= 500) {
    return new CairnError(
      'HUB_UNREACHABLE',
      `${origin} answered ${status} (a server error): try again later, or set HF_ENDPOINT to a mirror`,
    );
  }
  return new CairnError(
    'HUB_UNREACHABLE',
    `${origin} answered ${status}, which cairn does not expect from a Hugging Face hub: check HF_ENDPOINT (now ${ctx.endpoint})`,
  );
}

/** The error for a gated or private repo the request may not read. */
export function authError(target: HubTarget, ctx: HubErrorContext): CairnError {
  const repo = target.repo ?? 'OWNER/REPO';
  const page = `${ctx.endpoint}/${repo}`;
  const message = ctx.hasToken
    ? `\`${repo}\` is gated or private and the token in HF_TOKEN may not read it: accept its terms at ${page} ` +
      'with the account the token belongs to, and check the token has read access to it'
    : `\`${repo}\` is gated or private: accept its terms at ${page} and set HF_TOKEN to a token that may read it`;
  return new CairnError('HUB_AUTH', message);
}

/** The error code of a network failure (undici puts it on the error or its cause). */
export function networkErrorCode(err: unknown): string | undefined {
  const e = err as { code?: unknown; cause?: { code?: unknown } } | null;
  if (typeof e?.code === 'string') return e.code;
  if (typeof e?.cause?.code === 'string') return e.cause.code;
  return undefined;
}

/** The error for a request that got no answer from `origin`: refused, no such host, timed out. */
export function unreachableError(err: unknown, origin: string, ctx: HubErrorContext): CairnError {
  const code = networkErrorCode(err);
  const timedOut = code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'ETIMEDOUT';
  const what = timedOut ? 'timed out' : (code ?? (err instanceof Error ? err.message : String(err)));
  const hub = origin === new URL(ctx.endpoint).origin ? '' : ` (the hub ${ctx.endpoint} sent cairn there)`;
  return new CairnError(
    'HUB_UNREACHABLE',
    `cannot reach ${origin}${hub}: ${what}. Check the network; set HF_ENDPOINT to use a mirror of the hub, ` +
      'and HTTPS_PROXY (with NO_PROXY for hosts to reach directly) when a proxy is the way out',
    { cause: err },
  );
}

/** The error for a connection that broke while a body was arriving. */
export function droppedError(err: unknown, origin: string): CairnError {
  const code = networkErrorCode(err);
  const what = code === 'UND_ERR_BODY_TIMEOUT' ? 'no data arrived for too long' : (code ?? String(err));
  return new CairnError(
    'HUB_UNREACHABLE',
    `the connection to ${origin} broke during a download (${what}): run the command again to resume`,
    {
      cause: err,
    },
  );
}

/** The error for a cancelled request. */
export function abortedError(): CairnError {
  return new CairnError('ABORTED', 'the download was cancelled; run the command again to resume it');
}
