/**
 * A stand-in for the Hugging Face hub on 127.0.0.1, for tests of the hub client and downloader.
 * It answers the routes cairn uses the way the real hub does: model info (`sha`, `siblings` with
 * LFS hashes), the paginated file tree, and `resolve` URLs that redirect LFS files to a CDN with
 * X-Linked-Size / X-Linked-Etag / X-Repo-Commit headers. The CDN is a second server on another
 * port, so another origin, which lets tests check that the token is not sent there. It can gate
 * repos behind a token, advertise wrong hashes, refuse ranges, and drop connections mid-body.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One repo the mock serves. */
export interface MockRepo {
  /** Path inside the repo to content. */
  files: Record<string, Uint8Array>;
  /** The commit sha (40 hex); derived from the repo name when absent. */
  commit?: string;
  /** When set, the repo is gated: requests need `Authorization: Bearer <token>`. */
  token?: string;
  /** Whether files are in LFS (model info lists sizes and hashes, resolve redirects); default true. */
  lfs?: boolean;
  /** Paths whose advertised SHA-256 (listing and X-Linked-Etag) is wrong. */
  wrongSha?: string[];
}

/** Behaviours for failure tests. */
export interface MockHubOptions {
  /** Destroy the socket after sending `bytes` body bytes of `path`, the first `times` GETs (default 1). */
  dropAfterBytes?: { path: string; bytes: number; times?: number };
  /** Ignore Range headers and never advertise Accept-Ranges. */
  noRanges?: boolean;
}

/** A running mock hub. */
export interface MockHub {
  /** The hub's base URL (use as endpoint / HF_ENDPOINT). */
  url: string;
  /** The CDN's base URL (another origin). */
  cdnUrl: string;
  /** File bytes served by each GET: the range sent, end exclusive (short when the connection was dropped). */
  log: { path: string; start: number; end: number }[];
  /** Every request to either server, with its absolute URL. */
  requests: { method: string; url: string; authorization?: string }[];
  close(): Promise<void>;
}

interface Entry {
  repoName: string;
  repo: MockRepo;
  commit: string;
  path: string;
  data: Uint8Array;
  sha256: string;
  advertisedSha: string;
  gitOid: string;
}

const PAGE = 2;

function sha256(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

function gitBlobOid(data: Uint8Array): string {
  return createHash('sha1').update(`blob ${data.length}\0`).update(data).digest('hex');
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function errorCode(res: ServerResponse, status: number, code: string, message: string): void {
  json(res, status, { error: message }, { 'x-error-code': code, 'x-error-message': message });
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Starts the hub and its CDN on loopback, ports chosen by the system. */
export async function startMockHub(repos: Record<string, MockRepo>, opts: MockHubOptions = {}): Promise<MockHub> {
  const log: MockHub['log'] = [];
  const requests: MockHub['requests'] = [];
  const entries = new Map<string, Entry>();
  const byId: Entry[] = [];
  const commits = new Map<string, string>();
  for (const [repoName, repo] of Object.entries(repos)) {
    const commit = repo.commit ?? createHash('sha1').update(repoName).digest('hex');
    commits.set(repoName, commit);
    for (const [path, data] of Object.entries(repo.files)) {
      const real = sha256(data);
      const e: Entry = {
        repoName,
        repo,
        commit,
        path,
        data,
        sha256: real,
        advertisedSha: repo.wrongSha?.includes(path) ? sha256(`${real} is not it`) : real,
        gitOid: gitBlobOid(data),
      };
      entries.set(`${repoName}\u0000${path}`, e);
      byId.push(e);
    }
  }
  let dropsLeft = opts.dropAfterBytes ? (opts.dropAfterBytes.times ?? 1) : 0;

  const hub = createServer((req, res) => route(req, res));
  const cdn = createServer((req, res) => cdnRoute(req, res));
  const url = await listen(hub);
  const cdnUrl = await listen(cdn);

  function record(req: IncomingMessage, base: string): URL {
    const u = new URL(req.url ?? '/', base);
    requests.push({
      method: req.method ?? 'GET',
      url: u.href,
      ...(req.headers.authorization !== undefined ? { authorization: req.headers.authorization } : {}),
    });
    return u;
  }

  /** Applies the gate; false when it answered already. */
  function admit(req: IncomingMessage, res: ServerResponse, repo: MockRepo, name: string): boolean {
    if (repo.token === undefined) return true;
    const auth = req.headers.authorization;
    if (auth === undefined) {
      errorCode(res, 401, 'GatedRepo', `Access to model ${name} is restricted. You must be authenticated to access it.`);
      return false;
    }
    if (auth !== `Bearer ${repo.token}`) {
      errorCode(res, 403, 'GatedRepo', `Access to model ${name} is restricted and you are not in the authorized list.`);
      return false;
    }
    return true;
  }

  function files(name: string): Entry[] {
    return byId.filter((e) => e.repoName === name).sort((a, b) => (a.path < b.path ? -1 : 1));
  }

  function route(req: IncomingMessage, res: ServerResponse): void {
    const u = record(req, url);
    const segs = u.pathname.split('/').slice(1);
    let decoded: string[];
    try {
      decoded = segs.map((s) => decodeURIComponent(s));
    } catch {
      errorCode(res, 400, 'BadRequest', 'bad encoding');
      return;
    }
    const api = decoded[0] === 'api' && decoded[1] === 'models';
    const name = api ? `${decoded[2]}/${decoded[3]}` : `${decoded[0]}/${decoded[1]}`;
    const kind = api ? decoded[4] : decoded[2];
    const rev = api ? decoded[5] : decoded[3];
    const repo = repos[name];
    if (!repo) {
      errorCode(res, 401, 'RepoNotFound', 'Repository not found');
      return;
    }
    if (!admit(req, res, repo, name)) return;
    const commit = commits.get(name)!;
    if (rev !== 'main' && rev !== commit) {
      errorCode(res, 404, 'RevisionNotFound', `Invalid rev id: ${rev}`);
      return;
    }
    const lfs = repo.lfs ?? true;
    if (api && kind === 'revision' && decoded.length === 6) {
      json(res, 200, {
        _id: commit.slice(0, 24),
        id: name,
        modelId: name,
        sha: commit,
        private: false,
        gated: repo.token !== undefined ? 'manual' : false,
        siblings: files(name).map((e) =>
          lfs
            ? {
                rfilename: e.path,
                blobId: e.gitOid,
                size: e.data.length,
                lfs: { sha256: e.advertisedSha, size: e.data.length, pointerSize: 134 },
              }
            : { rfilename: e.path },
        ),
      });
      return;
    }
    if (api && kind === 'tree' && decoded.length === 6) {
      const all: unknown[] = [];
      const dirs = new Set<string>();
      for (const e of files(name)) {
        const parts = e.path.split('/');
        for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
      }
      for (const d of [...dirs].sort()) all.push({ type: 'directory', oid: sha256(d).slice(0, 40), path: d });
      for (const e of files(name)) {
        all.push({
          type: 'file',
          oid: e.gitOid,
          size: e.data.length,
          path: e.path,
          ...(lfs ? { lfs: { oid: e.advertisedSha, size: e.data.length, pointerSize: 134 } } : {}),
        });
      }
      const recursive = u.searchParams.get('recursive') === 'true';
      const list = recursive ? all : all.filter((x) => !(x as { path: string }).path.includes('/'));
      const cursor = Number(u.searchParams.get('cursor') ?? 0);
      const page = list.slice(cursor, cursor + PAGE);
      const headers: Record<string, string> = {};
      if (cursor + PAGE < list.length) {
        const next = new URL(u.href);
        next.searchParams.set('cursor', String(cursor + PAGE));
        headers.link = `<${next.href}>; rel="next"`;
      }
      json(res, 200, page, headers);
      return;
    }
    if (!api && kind === 'resolve') {
      const path = decoded.slice(4).join('/');
      const e = entries.get(`${name}\u0000${path}`);
      if (!e) {
        errorCode(res, 404, 'EntryNotFound', `${path} does not exist on "${rev}"`);
        return;
      }
      if (!lfs) {
        serveBytes(req, res, e, { etag: `"${e.gitOid}"`, 'x-repo-commit': commit });
        return;
      }
      res.writeHead(302, {
        location: `${cdnUrl}/cdn/${byId.indexOf(e)}/${encodeURIComponent(e.path)}`,
        'x-linked-size': String(e.data.length),
        'x-linked-etag': `"${e.advertisedSha}"`,
        'x-repo-commit': commit,
        etag: `"${e.advertisedSha}"`,
        'content-length': 0,
      });
      res.end();
      return;
    }
    errorCode(res, 404, 'NotFound', 'no such route');
  }

  function cdnRoute(req: IncomingMessage, res: ServerResponse): void {
    const u = record(req, cdnUrl);
    const m = /^\/cdn\/(\d+)\//.exec(u.pathname);
    const e = m ? byId[Number(m[1])] : undefined;
    if (!e) {
      res.writeHead(404).end();
      return;
    }
    serveBytes(req, res, e, {});
  }

  function serveBytes(req: IncomingMessage, res: ServerResponse, e: Entry, headers: Record<string, string>): void {
    const size = e.data.length;
    let start = 0;
    let end = size;
    let status = 200;
    const h: Record<string, string | number> = { ...headers, 'content-type': 'application/octet-stream' };
    const range = req.headers.range;
    if (!opts.noRanges) {
      h['accept-ranges'] = 'bytes';
      if (range !== undefined) {
        const m = /^bytes=(\d+)-(\d*)$/.exec(range);
        const a = m ? Number(m[1]) : NaN;
        const b = m && m[2] !== '' ? Number(m[2]) + 1 : size;
        if (!m || a >= size || b <= a) {
          res.writeHead(416, { 'content-range': `bytes */${size}` }).end();
          return;
        }
        start = a;
        end = Math.min(b, size);
        status = 206;
        h['content-range'] = `bytes ${start}-${end - 1}/${size}`;
      }
    }
    h['content-length'] = end - start;
    res.writeHead(status, h);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const body = e.data.subarray(start, end);
    const drop = opts.dropAfterBytes;
    if (drop && drop.path === e.path && dropsLeft > 0 && body.length > drop.bytes) {
      dropsLeft--;
      log.push({ path: e.path, start, end: start + drop.bytes });
      const kill = (): void => {
        res.socket?.destroy();
      };
      if (drop.bytes === 0) {
        res.flushHeaders();
        setImmediate(kill);
      } else {
        res.write(body.subarray(0, drop.bytes), () => setImmediate(kill));
      }
      return;
    }
    log.push({ path: e.path, start, end });
    res.end(body);
  }

  return {
    url,
    cdnUrl,
    log,
    requests,
    async close() {
      for (const s of [hub, cdn]) {
        s.closeAllConnections();
        await new Promise<void>((resolve) => s.close(() => resolve()));
      }
    },
  };
}
