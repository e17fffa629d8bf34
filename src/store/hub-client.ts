/**
 * A client for the Hugging Face hub's HTTP API, only what `cairn pull` needs: list a repo's files
 * at a revision (pinned to the commit the listing is of, so a download cannot mix two versions),
 * ask a file's size and hash, and read byte ranges of it. Settings follow huggingface_hub's
 * environment variables (HF_ENDPOINT, HF_TOKEN) and the usual proxy variables.
 */
import { CairnError } from '../util/errors.js';
import { abortedError, droppedError, headerValue, type HubTarget } from './hub-errors.js';
import { dropBody, HubHttp, readBounded, type HubResponse } from './hub-http.js';
import { isCommitSha, nextLink, parseModelInfo, parseTreePage, type HubFile } from './hub-listing.js';
import { isSafeRepoPath, isValidRepoId, isValidRevision } from './repo-names.js';

export type { HubFile } from './hub-listing.js';

/** The files of a repo at one commit. */
export interface RepoListing {
  /** `owner/name`. */
  readonly repo: string;
  /** The 40-hex commit sha the listing is of. */
  readonly commit: string;
  /** Files with their sizes (and LFS hashes where the hub gives them). */
  readonly files: readonly HubFile[];
}

/** Settings of a HubClient; all optional. */
export interface HubClientOptions {
  /** The hub's base URL; default HF_ENDPOINT or https://huggingface.co. */
  readonly endpoint?: string;
  /** Access token for gated and private repos; default HF_TOKEN or HUGGING_FACE_HUB_TOKEN. */
  readonly token?: string;
  /** Where HF_* and proxy variables are read; default process.env. */
  readonly env?: NodeJS.ProcessEnv;
  /** Sent as User-Agent. */
  readonly userAgent?: string;
  /** Limit for connecting and for response headers, in ms (default 30 s). */
  readonly timeoutMs?: number;
  /** Limit for a response body to go without data, in ms (default 30 s). */
  readonly idleTimeoutMs?: number;
}

/** What a HEAD of a file says about it. */
export interface ProbeResult {
  /** Size in bytes. */
  readonly size: number;
  /** The hub's ETag, unquoted; for LFS files the SHA-256 of the content. */
  readonly etag?: string;
  /** The commit the hub resolved the URL to. */
  readonly commit?: string;
  /** Whether the server that serves the bytes honours `Range`. */
  readonly acceptRanges: boolean;
}

const DEFAULT_ENDPOINT = 'https://huggingface.co';
/** Largest JSON answer read: a model listing of tens of thousands of files fits well inside. */
const MAX_JSON_BYTES = 32 * 1024 * 1024;
/** Most files taken from one listing. */
const MAX_FILES = 100_000;
/** Most tree pages followed (the hub pages by 1000 entries, so this covers MAX_FILES). */
const MAX_TREE_PAGES = 200;

function endpointFrom(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new CairnError('BAD_ARGUMENT', `HF_ENDPOINT ${JSON.stringify(raw)} is not a URL: set it like https://huggingface.co`);
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.search || url.hash || url.username || url.password) {
    throw new CairnError(
      'BAD_ARGUMENT',
      `HF_ENDPOINT ${JSON.stringify(raw)} must be a plain http(s) URL without query or credentials, like https://huggingface.co`,
    );
  }
  return url.href.replace(/\/+$/, '');
}

function tokenFrom(raw: string | undefined): string | undefined {
  const token = raw?.trim();
  if (!token) return undefined;
  if (!/^[\x21-\x7e]+$/.test(token)) {
    throw new CairnError('BAD_ARGUMENT', 'HF_TOKEN holds characters a hub token cannot have: copy the token again from your hub settings');
  }
  return token;
}

function parseJson(bytes: Uint8Array, what: string, origin: string): unknown {
  try {
    return JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch {
    throw malformed(what, origin);
  }
}

function malformed(what: string, origin: string): CairnError {
  return new CairnError(
    'HUB_UNREACHABLE',
    `${origin} sent ${what} that is not what a Hugging Face hub sends: check HF_ENDPOINT and any proxy in between`,
  );
}

function unquoteEtag(v: string | undefined): string | undefined {
  if (v === undefined) return undefined;
  const s = v
    .trim()
    .replace(/^W\//, '')
    .replace(/^"(.*)"$/, '$1');
  return s === '' ? undefined : s;
}

function safeInt(v: string | undefined): number | undefined {
  if (v === undefined || !/^\d{1,16}$/.test(v.trim())) return undefined;
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** Talks to one hub endpoint. */
export class HubClient {
  /** The hub's base URL, without a trailing slash. */
  readonly endpoint: string;
  private readonly http: HubHttp;

  constructor(opts: HubClientOptions = {}) {
    const env = opts.env ?? process.env;
    this.endpoint = endpointFrom(opts.endpoint ?? (env.HF_ENDPOINT || DEFAULT_ENDPOINT));
    const token = tokenFrom(opts.token ?? (env.HF_TOKEN || env.HUGGING_FACE_HUB_TOKEN));
    this.http = new HubHttp({
      endpoint: this.endpoint,
      ...(token !== undefined ? { token } : {}),
      userAgent: opts.userAgent ?? `cairn node/${process.versions.node}`,
      env,
      timeoutMs: opts.timeoutMs ?? 30_000,
      idleTimeoutMs: opts.idleTimeoutMs ?? 30_000,
    });
  }

  /**
   * The files of `repo` at `revision` and the commit that revision points to. Uses the model-info
   * answer and, where it lacks sizes or LFS hashes, the (paginated) tree of that commit.
   */
  async listRepo(repo: string, revision: string, signal?: AbortSignal): Promise<RepoListing> {
    if (!isValidRepoId(repo)) throw new CairnError('BAD_ARGUMENT', `${JSON.stringify(repo)} is not a repo id: write it as OWNER/NAME`);
    if (!isValidRevision(revision)) {
      throw new CairnError('BAD_ARGUMENT', `${JSON.stringify(revision)} is not a revision: give a branch, tag or commit, e.g. main`);
    }
    const target: HubTarget = { repo, revision };
    const url = `${this.endpoint}/api/models/${repo}/revision/${encodeURIComponent(revision)}?blobs=true`;
    const info = parseModelInfo(await this.getJson(url, target, 'a model listing', signal), MAX_FILES);
    if (info === undefined) throw malformed('a model listing', new URL(this.endpoint).origin);
    const sized = info.files.filter((f): f is HubFile => f.size !== undefined);
    if (!info.incomplete) return { repo, commit: info.commit, files: sized };
    try {
      return { repo, commit: info.commit, files: await this.listTree(repo, info.commit, signal) };
    } catch (err) {
      // A mirror without the tree API still serves what model info had.
      if (err instanceof CairnError && err.code === 'HUB_NOT_FOUND') return { repo, commit: info.commit, files: sized };
      throw err;
    }
  }

  private async listTree(repo: string, commit: string, signal?: AbortSignal): Promise<HubFile[]> {
    const origin = new URL(this.endpoint).origin;
    const files: HubFile[] = [];
    const seen = new Set<string>();
    let url: string | undefined = `${this.endpoint}/api/models/${repo}/tree/${commit}?recursive=true`;
    for (let page = 0; url !== undefined; page++) {
      if (page >= MAX_TREE_PAGES) throw malformed(`more than ${MAX_TREE_PAGES} pages of a file tree`, origin);
      const res = await this.http.send('GET', url, { repo, revision: commit }, { signal });
      const json = parseJson(await readBounded(res, MAX_JSON_BYTES, 'a file tree', signal), 'a file tree', origin);
      const entries = parseTreePage(json);
      if (entries === undefined) throw malformed('a file tree', origin);
      for (const f of entries) {
        if (seen.has(f.path)) continue;
        seen.add(f.path);
        files.push(f);
      }
      if (files.length > MAX_FILES) throw malformed(`a tree of more than ${MAX_FILES} files`, origin);
      const next = nextLink(headerValue(res.headers, 'link'));
      if (next === undefined) break;
      let nextUrl: URL;
      try {
        nextUrl = new URL(next, res.url);
      } catch {
        throw malformed('a bad next-page link', origin);
      }
      // Pages stay on the hub: a link elsewhere would take the listing (not the token) off it.
      if (nextUrl.origin !== origin) throw malformed('a next-page link to another site', origin);
      url = nextUrl.href;
    }
    return files;
  }

  private async getJson(url: string, target: HubTarget, what: string, signal?: AbortSignal): Promise<unknown> {
    const res = await this.http.send('GET', url, target, { signal, headers: { accept: 'application/json' } });
    return parseJson(await readBounded(res, MAX_JSON_BYTES, what, signal), what, res.url.origin);
  }

  /** The download URL of `path` at `commit`: `{endpoint}/{repo}/resolve/{commit}/{path}`, each segment encoded. */
  fileUrl(repo: string, commit: string, path: string): string {
    if (!isValidRepoId(repo)) throw new CairnError('BAD_ARGUMENT', `${JSON.stringify(repo)} is not a repo id: write it as OWNER/NAME`);
    if (!isValidRevision(commit)) throw new CairnError('BAD_ARGUMENT', `${JSON.stringify(commit)} is not a revision`);
    if (!isSafeRepoPath(path)) throw new CairnError('BAD_ARGUMENT', `${JSON.stringify(path)} is not a file path inside a repo`);
    const encoded = path.split('/').map(encodeURIComponent).join('/');
    return `${this.endpoint}/${repo}/resolve/${encodeURIComponent(commit)}/${encoded}`;
  }

  /** What a URL is about, for error messages (repo, revision and path when it is a resolve URL). */
  private targetOf(url: string): HubTarget {
    const prefix = `${this.endpoint}/`;
    if (!url.startsWith(prefix)) return {};
    const m = /^([^/]+\/[^/]+)\/resolve\/([^/]+)\/([^?#]+)/.exec(url.slice(prefix.length));
    if (!m) return {};
    try {
      return { repo: m[1], revision: decodeURIComponent(m[2]), path: decodeURIComponent(m[3]) };
    } catch {
      return {};
    }
  }

  /**
   * Size, ETag, commit and range support of a file. The hub's own first answer (a redirect for
   * LFS files) carries X-Linked-Size, X-Linked-Etag and X-Repo-Commit, which win over what the
   * server the bytes come from says. Where that server refuses HEAD (a signed URL may allow GET
   * only), a one-byte ranged GET answers instead.
   */
  async probe(url: string, signal?: AbortSignal): Promise<ProbeResult> {
    const target = this.targetOf(url);
    let res: HubResponse;
    let size: number | undefined;
    let acceptRanges: boolean;
    try {
      res = await this.http.send('HEAD', url, target, { signal });
      await res.body.dump({ limit: 0 }).catch(() => undefined);
      size = safeInt(headerValue(res.headers, 'content-length'));
      acceptRanges = /\bbytes\b/i.test(headerValue(res.headers, 'accept-ranges') ?? '');
    } catch (err) {
      const statusLike =
        err instanceof CairnError && ['HUB_AUTH', 'HUB_NOT_FOUND', 'HUB_UNREACHABLE'].includes(err.code) && err.cause === undefined;
      if (!statusLike) throw err;
      res = await this.http.send('GET', url, target, { signal, headers: { range: 'bytes=0-0' } });
      await res.body.dump({ limit: 64 * 1024 }).catch(() => undefined);
      const range = /^bytes 0-0\/(\d+)$/.exec(headerValue(res.headers, 'content-range') ?? '');
      acceptRanges = res.status === 206 && range !== null;
      size = acceptRanges ? safeInt(range![1]) : res.status === 200 ? safeInt(headerValue(res.headers, 'content-length')) : undefined;
    }
    const first = res.firstHeaders;
    size = safeInt(headerValue(first, 'x-linked-size')) ?? size;
    if (size === undefined) throw malformed(`no file size for ${target.path ?? url}`, res.url.origin);
    const etag = unquoteEtag(headerValue(first, 'x-linked-etag') ?? headerValue(first, 'etag'));
    const commit = headerValue(first, 'x-repo-commit');
    return {
      size,
      ...(etag !== undefined ? { etag } : {}),
      ...(isCommitSha(commit) ? { commit } : {}),
      acceptRanges,
    };
  }

  /** Bytes [start, start+length) of a file in one ranged GET; exactly `length` bytes or a throw. */
  async readRange(url: string, start: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    checkRange(start, start + length);
    const out = new Uint8Array(length);
    if (length === 0) return out;
    let at = 0;
    for await (const chunk of await this.openRange(url, start, start + length, signal)) {
      out.set(chunk, at);
      at += chunk.length;
    }
    return out;
  }

  /**
   * The body of a ranged GET of bytes [start, end) as it arrives. The answer must be 206 with the
   * same Content-Range (or 200 when the range is the whole file from 0); the stream yields exactly
   * end-start bytes or throws (HUB_UNREACHABLE when the connection breaks, ABORTED on `signal`).
   */
  async openRange(url: string, start: number, end: number, signal?: AbortSignal): Promise<AsyncIterable<Uint8Array>> {
    checkRange(start, end);
    if (end === start) throw new CairnError('BAD_ARGUMENT', 'an empty byte range cannot be requested');
    const target = this.targetOf(url);
    const res = await this.http.send('GET', url, target, { signal, headers: { range: `bytes=${start}-${end - 1}` }, reuseRedirect: true });
    const length = end - start;
    const origin = res.url.origin;
    if (res.status === 206) {
      const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(headerValue(res.headers, 'content-range') ?? '');
      if (!m || Number(m[1]) !== start || Number(m[2]) !== end - 1) {
        dropBody(res.body);
        throw malformed(`bytes other than the range asked for (${start}-${end - 1})`, origin);
      }
    } else if (res.status !== 200 || start !== 0 || safeInt(headerValue(res.headers, 'content-length')) !== length) {
      dropBody(res.body);
      throw new CairnError(
        'HUB_UNREACHABLE',
        `${origin} answered ${res.status} without the byte range asked for (${start}-${end - 1}) of ${target.path ?? 'a file'}: run the command again; with a proxy, check it passes Range requests`,
      );
    }
    return bodyOf(res, length, signal);
  }

  /** Closes idle connections (they would not keep the process alive, but tests want them gone). */
  async close(): Promise<void> {
    await this.http.close();
  }
}

function checkRange(start: number, end: number): void {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
    throw new CairnError('BAD_ARGUMENT', `bad byte range [${start}, ${end})`);
  }
}

/** Yields a body's chunks, exactly `length` bytes in all; more or fewer is an error. */
async function* bodyOf(res: HubResponse, length: number, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
  let got = 0;
  let finished = false;
  try {
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      if (got + chunk.length > length) throw malformed(`more bytes than the ${length} asked for`, res.url.origin);
      got += chunk.length;
      yield chunk;
    }
    if (got !== length) throw droppedError(new Error(`${got} of ${length} bytes arrived`), res.url.origin);
    finished = true;
  } catch (err) {
    if (err instanceof CairnError) throw err;
    if (signal?.aborted) throw abortedError();
    // Every byte asked for arrived before the connection failed (a Content-Length that promised
    // more): the range is whole. Asking again for the empty rest would fail the download.
    if (got === length) return;
    throw droppedError(err, res.url.origin);
  } finally {
    if (!finished) dropBody(res.body);
  }
}
