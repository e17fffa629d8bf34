// The hub client and downloader against a mock hub on loopback: listings (and their hostile
// forms), choosing a GGUF, gated repos, parallel and resumed downloads, integrity checks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isCairnError } from '../src/util/errors.js';
import { downloadFile } from '../src/store/download.js';
import { chooseGguf, ggufChoices } from '../src/store/gguf-choice.js';
import { HubClient } from '../src/store/hub-client.js';
import { parseHubRef } from '../src/store/hub-ref.js';
import { startMockHub, type MockHub } from './helpers/mock-hub.js';

const KiB = 1024;

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'cairn-hub-'));
}

/** A client for the mock with nothing from the real environment (no proxy, no token). */
function clientFor(hub: MockHub, extra: { token?: string; timeoutMs?: number; idleTimeoutMs?: number } = {}): HubClient {
  return new HubClient({ endpoint: hub.url, env: {}, ...extra });
}

/** A throwaway server answering every request with `handler`, on loopback. */
async function startServer(
  handler: (req: IncomingMessage, res: ServerResponse, base: string) => void,
): Promise<{ url: string; close(): Promise<void> }> {
  let base = '';
  const server = createServer((req, res) => handler(req, res, base));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: base,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const big = randomBytes(1024 * KiB + 12345);
const small = randomBytes(10 * KiB);
const modelRepo = {
  files: {
    'README.md': new TextEncoder().encode('# model\n'),
    'Model-Q4_K_M.gguf': big,
    'Model-IQ4_XS.gguf': small,
    'Q8_0/Model-Q8_0-00001-of-00002.gguf': randomBytes(3000),
    'Q8_0/Model-Q8_0-00002-of-00002.gguf': randomBytes(2000),
    'mmproj-Model-F16.gguf': randomBytes(100),
  },
};

test('listRepo: model info with LFS hashes, pinned to the commit', async () => {
  const hub = await startMockHub({ 'o/model': modelRepo });
  const client = clientFor(hub);
  try {
    const listing = await client.listRepo('o/model', 'main');
    assert.equal(listing.repo, 'o/model');
    assert.match(listing.commit, /^[0-9a-f]{40}$/);
    assert.equal(listing.files.length, 6);
    const q4 = listing.files.find((f) => f.path === 'Model-Q4_K_M.gguf')!;
    assert.equal(q4.size, big.length);
    assert.equal(q4.sha256, sha256(big));
    assert.ok(!hub.requests.some((r) => r.url.includes('/tree/')), 'no tree request when model info is complete');
    // The commit works as a revision too.
    assert.equal((await client.listRepo('o/model', listing.commit)).commit, listing.commit);
  } finally {
    await client.close();
    await hub.close();
  }
});

test('listRepo: siblings without sizes or LFS fall back to the paginated tree', async () => {
  const hub = await startMockHub({ 'o/plain': { ...modelRepo, lfs: false } });
  const client = clientFor(hub);
  try {
    const listing = await client.listRepo('o/plain', 'main');
    assert.deepEqual(
      listing.files.map((f) => [f.path, f.size]).sort(),
      Object.entries(modelRepo.files)
        .map(([p, d]) => [p, d.length])
        .sort(),
    );
    assert.ok(listing.files.every((f) => f.sha256 === undefined));
    const pages = hub.requests.filter((r) => r.url.includes('/tree/'));
    assert.ok(pages.length >= 3, `the tree was read page by page (${pages.length} pages)`);
    assert.ok(
      pages.every((r) => r.url.includes(`/tree/${listing.commit}`)),
      'the tree is read at the listed commit',
    );
  } finally {
    await client.close();
    await hub.close();
  }
});

test('choosing a GGUF from a real listing: by tag in any case, by path, a split set, the listing when ambiguous', async () => {
  const hub = await startMockHub({ 'o/model': modelRepo });
  const client = clientFor(hub);
  try {
    const listing = await client.listRepo('o/model', 'main');
    assert.equal(ggufChoices(listing.files).length, 3, 'mmproj is not a model; the two parts are one');
    assert.equal(chooseGguf(listing, parseHubRef('hf:o/model:q4_k_m')).parts[0].sha256, sha256(big));
    assert.equal(chooseGguf(listing, parseHubRef('hf.co/o/model:iq4_xs')).size, small.length);
    const q8 = chooseGguf(listing, parseHubRef('hf:o/model/Q8_0/Model-Q8_0-00002-of-00002.gguf'));
    assert.deepEqual(
      q8.parts.map((p) => p.size),
      [3000, 2000],
    );
    assert.equal(q8.tag, 'Q8_0');
    assert.throws(
      () => chooseGguf(listing, parseHubRef('hf:o/model')),
      (err: unknown) =>
        isCairnError(err, 'BAD_ARGUMENT') &&
        /cairn pull hf:o\/model:TAG/.test(err.message) &&
        /IQ4_XS/.test(err.message) &&
        /\(2 parts\)/.test(err.message),
    );
  } finally {
    await client.close();
    await hub.close();
  }
});

test('download: 3 connections, 64 KiB chunks, bytes equal, token kept off the CDN', async () => {
  const hub = await startMockHub({ 'o/gated': { ...modelRepo, token: 'hf_right' } });
  const client = clientFor(hub, { token: 'hf_right' });
  const dir = await tempDir();
  try {
    const listing = await client.listRepo('o/gated', 'main');
    const file = chooseGguf(listing, parseHubRef('hf:o/gated:Q4_K_M')).parts[0];
    const dest = join(dir, 'model.gguf');
    const seen: number[] = [];
    await downloadFile({
      client,
      url: client.fileUrl('o/gated', listing.commit, file.path),
      dest,
      size: file.size,
      sha256: file.sha256!,
      connections: 3,
      chunkBytes: 64 * KiB,
      onProgress: (done, total) => {
        assert.equal(total, big.length);
        seen.push(done);
      },
    });
    assert.ok((await readFile(dest)).equals(big));
    assert.ok(!existsSync(`${dest}.partial`) && !existsSync(`${dest}.partial.json`));
    assert.equal(seen.at(-1), big.length);
    assert.ok(seen.length > 17, 'progress reported as bytes arrive');
    const gets = hub.log.filter((l) => l.path === file.path);
    assert.equal(gets.length, Math.ceil(big.length / (64 * KiB)));
    assert.equal(
      gets.reduce((s, l) => s + l.end - l.start, 0),
      big.length,
    );
    const cdn = hub.requests.filter((r) => r.url.startsWith(hub.cdnUrl));
    const hubSide = hub.requests.filter((r) => r.url.startsWith(hub.url));
    assert.ok(cdn.length >= gets.length);
    assert.ok(
      cdn.every((r) => r.authorization === undefined),
      'no Authorization to the CDN origin',
    );
    assert.ok(
      hubSide.every((r) => r.authorization === 'Bearer hf_right'),
      'Authorization on every hub request',
    );
    // The CDN link is reused for a while: not one resolve per chunk.
    assert.ok(hubSide.filter((r) => r.url.includes('/resolve/')).length <= 2);
  } finally {
    await client.close();
    await hub.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('download: an aborted download resumes without reading finished chunks again', async () => {
  const hub = await startMockHub({ 'o/model': modelRepo });
  const client = clientFor(hub);
  const dir = await tempDir();
  const chunk = 64 * KiB;
  try {
    const listing = await client.listRepo('o/model', 'main');
    const file = listing.files.find((f) => f.path === 'Model-Q4_K_M.gguf')!;
    const url = client.fileUrl('o/model', listing.commit, file.path);
    const dest = join(dir, 'sub', 'model.gguf');
    const ac = new AbortController();
    await assert.rejects(
      downloadFile({
        client,
        url,
        dest,
        size: file.size,
        sha256: file.sha256!,
        connections: 2,
        chunkBytes: chunk,
        signal: ac.signal,
        onProgress: (done) => {
          if (done > big.length * 0.4) ac.abort();
        },
      }),
      (err: unknown) => isCairnError(err, 'ABORTED'),
    );
    assert.ok(existsSync(`${dest}.partial`) && existsSync(`${dest}.partial.json`), 'the partial and its record stay');
    assert.ok(!existsSync(dest));
    const record = JSON.parse(await readFile(`${dest}.partial.json`, 'utf8')) as { done: number[]; size: number; sha256: string };
    assert.equal(record.size, big.length);
    assert.equal(record.sha256, file.sha256);
    assert.ok(record.done.length >= 4, `some chunks were recorded (${record.done.length})`);
    const firstRun = hub.log.length;

    let firstProgress: number | undefined;
    // A new client stands in for a new process: only the files on disk carry over.
    const again = clientFor(hub);
    await downloadFile({
      client: again,
      url,
      dest,
      size: file.size,
      sha256: file.sha256!,
      connections: 3,
      chunkBytes: 1024 * KiB, // ignored: the record's chunk size wins
      onProgress: (done) => {
        firstProgress ??= done;
      },
    });
    await again.close();
    assert.ok((await readFile(dest)).equals(big));
    assert.equal(firstProgress, record.done.length * chunk, 'progress starts from what was kept');
    const second = hub.log.slice(firstRun);
    const reread = second.filter((l) => record.done.some((i) => l.start < (i + 1) * chunk && l.end > i * chunk));
    assert.deepEqual(reread, [], 'finished chunks were not fetched again');
    let missingBytes = 0;
    for (let i = 0; i * chunk < big.length; i++)
      if (!record.done.includes(i)) missingBytes += Math.min(big.length, (i + 1) * chunk) - i * chunk;
    assert.equal(
      second.reduce((n, l) => n + l.end - l.start, 0),
      missingBytes,
      'only the missing chunks were fetched',
    );
  } finally {
    await client.close();
    await hub.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('download: a dropped connection is retried from where it broke', async () => {
  const hub = await startMockHub({ 'o/model': modelRepo }, { dropAfterBytes: { path: 'Model-Q4_K_M.gguf', bytes: 100_000, times: 2 } });
  const client = clientFor(hub);
  const dir = await tempDir();
  try {
    const listing = await client.listRepo('o/model', 'main');
    const file = listing.files.find((f) => f.path === 'Model-Q4_K_M.gguf')!;
    const dest = join(dir, 'model.gguf');
    let last = 0;
    await downloadFile({
      client,
      url: client.fileUrl('o/model', listing.commit, file.path),
      dest,
      size: file.size,
      sha256: file.sha256!,
      connections: 2,
      chunkBytes: 256 * KiB,
      retryDelayMs: 10,
      onProgress: (done) => {
        assert.ok(done >= last, 'progress never goes back');
        last = done;
      },
    });
    assert.ok((await readFile(dest)).equals(big));
    const gets = hub.log.filter((l) => l.path === file.path);
    assert.equal(gets.filter((l) => l.end - l.start === 100_000).length, 2, 'two responses were cut');
    // The retry asks for the rest of the chunk, from what arrived (which may be less than was sent).
    assert.ok(
      gets.some((l) => l.start % (256 * KiB) !== 0),
      'a retry continued mid-chunk',
    );
    assert.ok(gets.reduce((s, l) => s + l.end - l.start, 0) <= big.length + 2 * 100_000);
  } finally {
    await client.close();
    await hub.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('download: a Content-Length that promises more than the range is harmless once the range has arrived', async () => {
  // Each ranged answer claims 100 bytes more than it sends, then the connection breaks.
  const data = randomBytes(200 * KiB + 7);
  const server = await startServer((req, res) => {
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    if (req.method === 'HEAD' || !m) {
      res.writeHead(200, { 'content-length': data.length, 'accept-ranges': 'bytes' }).end();
      return;
    }
    const start = Number(m[1]);
    const end = Number(m[2]) + 1;
    res.writeHead(206, { 'content-length': end - start + 100, 'content-range': `bytes ${start}-${end - 1}/${data.length}`, 'accept-ranges': 'bytes' });
    res.write(data.subarray(start, end), () => setImmediate(() => res.socket?.destroy()));
  });
  const client = new HubClient({ endpoint: server.url, env: {} });
  const dir = await tempDir();
  try {
    const dest = join(dir, 'model.gguf');
    await downloadFile({
      client,
      url: `${server.url}/o/r/resolve/main/model.gguf`,
      dest,
      size: data.length,
      sha256: sha256(data),
      connections: 2,
      chunkBytes: 64 * KiB,
      retryDelayMs: 10,
    });
    assert.ok((await readFile(dest)).equals(data));
  } finally {
    await client.close();
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('download: a size past the free disk space is refused before anything is written', async () => {
  const huge = 2 ** 50;
  const server = await startServer((req, res) => {
    res.writeHead(200, { 'content-length': huge, 'accept-ranges': 'bytes' });
    if (req.method === 'HEAD') res.end();
    else res.socket?.destroy();
  });
  const client = new HubClient({ endpoint: server.url, env: {} });
  const dir = await tempDir();
  try {
    const dest = join(dir, 'model.gguf');
    await assert.rejects(
      downloadFile({ client, url: `${server.url}/o/r/resolve/main/model.gguf`, dest, size: huge, sha256: 'a'.repeat(64) }),
      (err: unknown) => isCairnError(err, 'BAD_ARGUMENT') && /free/.test(err.message),
    );
    assert.ok(!existsSync(`${dest}.partial`) && !existsSync(`${dest}.partial.json`));
  } finally {
    await client.close();
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('download: a connection failing beyond the retries fails with HUB_UNREACHABLE and keeps the partial', async () => {
  const hub = await startMockHub({ 'o/model': modelRepo }, { dropAfterBytes: { path: 'Model-IQ4_XS.gguf', bytes: 0, times: 2 } });
  const client = clientFor(hub);
  const dir = await tempDir();
  try {
    const listing = await client.listRepo('o/model', 'main');
    const file = listing.files.find((f) => f.path === 'Model-IQ4_XS.gguf')!;
    const dest = join(dir, 'model.gguf');
    const opts = {
      client,
      url: client.fileUrl('o/model', listing.commit, file.path),
      dest,
      size: file.size,
      sha256: file.sha256!,
      retries: 1,
      retryDelayMs: 10,
    };
    await assert.rejects(downloadFile(opts), (err: unknown) => isCairnError(err, 'HUB_UNREACHABLE'));
    assert.ok(existsSync(`${dest}.partial`) && existsSync(`${dest}.partial.json`));
    await downloadFile(opts);
    assert.ok((await readFile(dest)).equals(small));
  } finally {
    await client.close();
    await hub.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('download: a server without ranges is read in one stream', async () => {
  const hub = await startMockHub({ 'o/model': modelRepo }, { noRanges: true });
  const client = clientFor(hub);
  const dir = await tempDir();
  try {
    const listing = await client.listRepo('o/model', 'main');
    const file = listing.files.find((f) => f.path === 'Model-Q4_K_M.gguf')!;
    const url = client.fileUrl('o/model', listing.commit, file.path);
    assert.equal((await client.probe(url)).acceptRanges, false);
    const dest = join(dir, 'model.gguf');
    await downloadFile({ client, url, dest, size: file.size, sha256: file.sha256!, connections: 4, chunkBytes: 64 * KiB });
    assert.ok((await readFile(dest)).equals(big));
    assert.deepEqual(hub.log, [{ path: file.path, start: 0, end: big.length }]);
    // A part of the file cannot be had from such a server; the whole of it can.
    await assert.rejects(
      client.readRange(url, 10, 100),
      (err: unknown) => isCairnError(err, 'HUB_UNREACHABLE') && /byte range/.test(err.message),
    );
    assert.ok(Buffer.from(await client.readRange(url, 0, big.length)).equals(big));
  } finally {
    await client.close();
    await hub.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('download: a SHA-256 mismatch is refused and nothing is kept', async () => {
  const hub = await startMockHub({ 'o/model': { ...modelRepo, wrongSha: ['Model-IQ4_XS.gguf'] } });
  const client = clientFor(hub);
  const dir = await tempDir();
  try {
    const listing = await client.listRepo('o/model', 'main');
    const file = listing.files.find((f) => f.path === 'Model-IQ4_XS.gguf')!;
    assert.notEqual(file.sha256, sha256(small));
    const dest = join(dir, 'model.gguf');
    await assert.rejects(
      downloadFile({
        client,
        url: client.fileUrl('o/model', listing.commit, file.path),
        dest,
        size: file.size,
        sha256: file.sha256!,
        chunkBytes: 4 * KiB,
      }),
      (err: unknown) => isCairnError(err, 'HUB_INTEGRITY') && /SHA-256/.test(err.message) && /nothing was kept/.test(err.message),
    );
    assert.ok(!existsSync(dest) && !existsSync(`${dest}.partial`) && !existsSync(`${dest}.partial.json`));
  } finally {
    await client.close();
    await hub.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('probe and readRange: size, hash and commit from the hub, exact bytes from the CDN', async () => {
  const hub = await startMockHub({ 'o/model': modelRepo });
  const client = clientFor(hub);
  try {
    const listing = await client.listRepo('o/model', 'main');
    const url = client.fileUrl('o/model', listing.commit, 'Model-Q4_K_M.gguf');
    assert.deepEqual(await client.probe(url), { size: big.length, etag: sha256(big), commit: listing.commit, acceptRanges: true });
    assert.ok(Buffer.from(await client.readRange(url, 1000, 5000)).equals(big.subarray(1000, 6000)));
    assert.equal((await client.readRange(url, 5, 0)).length, 0);
    // Paths are encoded segment by segment.
    assert.equal(
      client.fileUrl('o/model', listing.commit, 'a b/é+.gguf'),
      `${hub.url}/o/model/resolve/${listing.commit}/a%20b/%C3%A9%2B.gguf`,
    );
  } finally {
    await client.close();
    await hub.close();
  }
});

test('gated repos: 401 without a token and 403 with a wrong one are HUB_AUTH saying what to do', async () => {
  const hub = await startMockHub({ 'o/gated': { ...modelRepo, token: 'hf_right' } });
  const none = clientFor(hub);
  const wrong = clientFor(hub, { token: 'hf_wrong' });
  try {
    await assert.rejects(none.listRepo('o/gated', 'main'), (err: unknown) => {
      assert.ok(isCairnError(err, 'HUB_AUTH'));
      assert.equal(
        err.message,
        `\`o/gated\` is gated or private: accept its terms at ${hub.url}/o/gated and set HF_TOKEN to a token that may read it`,
      );
      return true;
    });
    await assert.rejects(
      wrong.listRepo('o/gated', 'main'),
      (err: unknown) => isCairnError(err, 'HUB_AUTH') && /may not read it/.test(err.message) && err.message.includes(`${hub.url}/o/gated`),
    );
    const right = clientFor(hub, { token: 'hf_right' });
    const commit = (await right.listRepo('o/gated', 'main')).commit;
    await right.close();
    await assert.rejects(none.probe(none.fileUrl('o/gated', commit, 'Model-IQ4_XS.gguf')), (err: unknown) => isCairnError(err, 'HUB_AUTH'));
    await assert.rejects(wrong.readRange(wrong.fileUrl('o/gated', commit, 'Model-IQ4_XS.gguf'), 0, 10), (err: unknown) =>
      isCairnError(err, 'HUB_AUTH'),
    );
    assert.equal(hub.requests.filter((r) => r.authorization === 'Bearer hf_wrong').length, 2);
  } finally {
    await none.close();
    await wrong.close();
    await hub.close();
  }
});

test('HF_ENDPOINT, HF_TOKEN and HUGGING_FACE_HUB_TOKEN come from the environment', async () => {
  const hub = await startMockHub({ 'o/gated': { ...modelRepo, token: 'hf_right' } });
  try {
    const a = new HubClient({ env: { HF_ENDPOINT: `${hub.url}/`, HF_TOKEN: 'hf_right' } });
    assert.equal(a.endpoint, hub.url);
    assert.equal((await a.listRepo('o/gated', 'main')).files.length, 6);
    const b = new HubClient({ env: { HF_ENDPOINT: hub.url, HUGGING_FACE_HUB_TOKEN: 'hf_right' } });
    assert.equal((await b.listRepo('o/gated', 'main')).files.length, 6);
    assert.equal(new HubClient({ env: {} }).endpoint, 'https://huggingface.co');
    assert.throws(
      () => new HubClient({ env: { HF_ENDPOINT: 'ftp://x' } }),
      (err: unknown) => isCairnError(err, 'BAD_ARGUMENT'),
    );
    await a.close();
    await b.close();
  } finally {
    await hub.close();
  }
});

test('missing repos, revisions and files are HUB_NOT_FOUND naming them', async () => {
  const hub = await startMockHub({ 'o/model': modelRepo });
  const client = clientFor(hub);
  try {
    await assert.rejects(
      client.listRepo('o/nope', 'main'),
      (err: unknown) => isCairnError(err, 'HUB_NOT_FOUND') && err.message.includes('`o/nope` was not found'),
    );
    await assert.rejects(
      client.listRepo('o/model', 'v9'),
      (err: unknown) => isCairnError(err, 'HUB_NOT_FOUND') && err.message.includes('no revision `v9`'),
    );
    await assert.rejects(
      client.probe(client.fileUrl('o/model', 'main', 'gone.gguf')),
      (err: unknown) => isCairnError(err, 'HUB_NOT_FOUND') && err.message.includes('no file `gone.gguf`'),
    );
    await assert.rejects(client.listRepo('../x', 'main'), (err: unknown) => isCairnError(err, 'BAD_ARGUMENT'));
  } finally {
    await client.close();
    await hub.close();
  }
});

test('an unreachable or silent hub is HUB_UNREACHABLE mentioning HF_ENDPOINT and proxies', async () => {
  const silent = await startServer(() => {
    // never answers
  });
  const stalls = await startServer((_req, res) => {
    res.writeHead(206, { 'content-range': 'bytes 0-99/100', 'content-length': 100 });
    res.write(Buffer.alloc(10));
  });
  try {
    const refused = new HubClient({ endpoint: 'http://127.0.0.1:1', env: {} });
    await assert.rejects(
      refused.listRepo('o/model', 'main'),
      (err: unknown) =>
        isCairnError(err, 'HUB_UNREACHABLE') &&
        /ECONNREFUSED/.test(err.message) &&
        /HF_ENDPOINT/.test(err.message) &&
        /HTTPS_PROXY/.test(err.message),
    );
    const slow = new HubClient({ endpoint: silent.url, env: {}, timeoutMs: 200 });
    await assert.rejects(
      slow.listRepo('o/model', 'main'),
      (err: unknown) => isCairnError(err, 'HUB_UNREACHABLE') && /timed out/.test(err.message),
    );
    const idle = new HubClient({ endpoint: stalls.url, env: {}, idleTimeoutMs: 200 });
    await assert.rejects(
      idle.readRange(`${stalls.url}/x`, 0, 100),
      (err: unknown) => isCairnError(err, 'HUB_UNREACHABLE') && /no data arrived/.test(err.message),
    );
    await Promise.all([refused.close(), slow.close(), idle.close()]);
  } finally {
    await silent.close();
    await stalls.close();
  }
});

test('hostile listings: unsafe paths and bad sizes or hashes are dropped, malformed answers refused', async () => {
  const hex = 'ab'.repeat(32);
  let answer: (u: URL, base: string) => { status?: number; body: unknown; headers?: Record<string, string> } = () => ({ body: {} });
  const server = await startServer((req, res, base) => {
    const { status = 200, body, headers = {} } = answer(new URL(req.url ?? '/', base), base);
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(text);
  });
  const client = new HubClient({ endpoint: server.url, env: {} });
  const commit = 'c'.repeat(40);
  try {
    answer = () => ({
      body: {
        sha: commit,
        siblings: [
          { rfilename: '../x.gguf', size: 10, lfs: { sha256: hex, size: 10 } },
          { rfilename: '/abs.gguf', size: 10, lfs: { sha256: hex, size: 10 } },
          { rfilename: 'a\\b.gguf', size: 10, lfs: { sha256: hex, size: 10 } },
          { rfilename: 'a/./b.gguf', size: 10, lfs: { sha256: hex, size: 10 } },
          { rfilename: 'ctl\u0001.gguf', size: 10, lfs: { sha256: hex, size: 10 } },
          { rfilename: 42, size: 10 },
          'junk',
          null,
          { rfilename: 'good.gguf', size: 7, lfs: { sha256: hex.toUpperCase(), size: 7 } },
          { rfilename: 'good.gguf', size: 8, lfs: { sha256: hex, size: 8 } },
          { rfilename: 'README.md', size: 3 },
        ],
      },
    });
    const listing = await client.listRepo('o/r', 'main');
    assert.deepEqual(listing.files, [
      { path: 'good.gguf', size: 7, sha256: hex },
      { path: 'README.md', size: 3 },
    ]);

    // Bad sizes or hashes make the siblings incomplete: the tree is asked, and its bad entries dropped too.
    answer = (u, base) =>
      u.pathname.includes('/tree/')
        ? u.searchParams.get('cursor') === null
          ? {
              body: [
                { type: 'file', path: 'x/../y.gguf', size: 5 },
                { type: 'file', path: 'neg.gguf', size: -1 },
                { type: 'file', path: 'float.gguf', size: 1.5 },
                { type: 'file', path: 'huge.gguf', size: 2 ** 60 },
                { type: 'file', path: 'badsha.gguf', size: 4, lfs: { oid: 'xyz', size: 4 } },
                { type: 'directory', path: 'dir' },
                { type: 'file', path: 'ok.gguf', size: 9, lfs: { oid: hex, size: 9 } },
              ],
              headers: { link: `<${base}${u.pathname}?recursive=true&cursor=1>; rel="next"` },
            }
          : { body: [{ type: 'file', path: 'dir/two.gguf', size: 1 }] }
        : {
            body: {
              sha: commit,
              siblings: [
                { rfilename: 'ok.gguf', size: '9' },
                { rfilename: 'big.gguf', size: 1e300 },
              ],
            },
          };
    const tree = await client.listRepo('o/r', 'main');
    assert.deepEqual(tree.files, [
      { path: 'badsha.gguf', size: 4 },
      { path: 'ok.gguf', size: 9, sha256: hex },
      { path: 'dir/two.gguf', size: 1 },
    ]);

    // A next-page link to another site is refused.
    answer = (u) =>
      u.pathname.includes('/tree/')
        ? { body: [], headers: { link: '<http://127.0.0.2:9/steal>; rel="next"' } }
        : { body: { sha: commit, siblings: [{ rfilename: 'm.gguf' }] } };
    await assert.rejects(
      client.listRepo('o/r', 'main'),
      (err: unknown) => isCairnError(err, 'HUB_UNREACHABLE') && /another site/.test(err.message),
    );

    for (const body of [{ sha: 'nothex', siblings: [] }, [], 'not json {', { siblings: [] }]) {
      answer = () => ({ body });
      await assert.rejects(client.listRepo('o/r', 'main'), (err: unknown) => isCairnError(err, 'HUB_UNREACHABLE'), JSON.stringify(body));
    }

    // An answer too big to be a listing is cut off.
    answer = () => ({ body: ' '.repeat(33 * 1024 * 1024) });
    await assert.rejects(
      client.listRepo('o/r', 'main'),
      (err: unknown) => isCairnError(err, 'HUB_UNREACHABLE') && /more than/.test(err.message),
    );

    // A redirect to a non-http scheme is refused.
    answer = () => ({ status: 302, body: '', headers: { location: 'file:///etc/passwd' } });
    await assert.rejects(
      client.listRepo('o/r', 'main'),
      (err: unknown) => isCairnError(err, 'HUB_UNREACHABLE') && /file:/.test(err.message),
    );
  } finally {
    await client.close();
    await server.close();
  }
});

test('proxies come from the environment (lower-case too), NO_PROXY goes direct', async () => {
  const hub = await startMockHub({ 'o/model': modelRepo });
  const tunnels: string[] = [];
  // A CONNECT proxy, as undici's ProxyAgent tunnels through one for http and https alike.
  const proxy = createServer();
  proxy.on('connect', (req: IncomingMessage, socket, head) => {
    tunnels.push(req.url ?? '');
    const [host, port] = (req.url ?? '').split(':');
    const upstream = connect(Number(port), host, () => {
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    upstream.on('error', () => socket.destroy());
    socket.on('error', () => upstream.destroy());
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  const dir = await tempDir();
  try {
    // undici's "experimental" warning is not shown to a user behind a proxy.
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on('warning', onWarning);
    const via = new HubClient({ env: { HF_ENDPOINT: hub.url, http_proxy: proxyUrl } });
    const listing = await via.listRepo('o/model', 'main');
    process.off('warning', onWarning);
    assert.deepEqual(warnings.filter((w) => /experimental/i.test(w)), []);
    const file = listing.files.find((f) => f.path === 'Model-IQ4_XS.gguf')!;
    const dest = join(dir, 'm.gguf');
    await downloadFile({
      client: via,
      url: via.fileUrl('o/model', listing.commit, file.path),
      dest,
      size: file.size,
      sha256: file.sha256!,
    });
    assert.ok((await readFile(dest)).equals(small));
    const hubHost = new URL(hub.url).host;
    const cdnHost = new URL(hub.cdnUrl).host;
    assert.ok(tunnels.includes(hubHost) && tunnels.includes(cdnHost), `both origins went through the proxy: ${tunnels.join(', ')}`);
    await via.close();

    tunnels.length = 0;
    const direct = new HubClient({ env: { HF_ENDPOINT: hub.url, HTTP_PROXY: proxyUrl, NO_PROXY: '127.0.0.1' } });
    assert.equal((await direct.listRepo('o/model', 'main')).commit, listing.commit);
    assert.deepEqual(tunnels, []);
    await direct.close();
  } finally {
    proxy.closeAllConnections();
    await new Promise<void>((resolve) => proxy.close(() => resolve()));
    await hub.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('download: a record for another file is ignored and the partial started over; a wrong size is refused', async () => {
  const hub = await startMockHub({ 'o/model': modelRepo });
  const client = clientFor(hub);
  const dir = await tempDir();
  try {
    const listing = await client.listRepo('o/model', 'main');
    const file = listing.files.find((f) => f.path === 'Model-IQ4_XS.gguf')!;
    const url = client.fileUrl('o/model', listing.commit, file.path);
    const dest = join(dir, 'model.gguf');
    await writeFile(`${dest}.partial`, Buffer.alloc(file.size, 7));
    const other = { version: 1, size: file.size, sha256: 'ee'.repeat(32), chunkBytes: 4096, done: [0, 1, 2] };
    await writeFile(`${dest}.partial.json`, JSON.stringify(other));
    await downloadFile({ client, url, dest, size: file.size, sha256: file.sha256!, chunkBytes: 4096 });
    assert.ok((await readFile(dest)).equals(small));
    assert.equal(
      hub.log.reduce((n, l) => n + l.end - l.start, 0),
      small.length,
      'every chunk fetched',
    );

    await assert.rejects(
      downloadFile({ client, url, dest: join(dir, 'x.gguf'), size: file.size + 1 }),
      (err: unknown) => isCairnError(err, 'HUB_INTEGRITY') && /reports/.test(err.message),
    );
  } finally {
    await client.close();
    await hub.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('probe: a download server that refuses HEAD is asked with a one-byte ranged GET', async () => {
  const commit = 'd'.repeat(40);
  const server = await startServer((req, res) => {
    if (req.url!.startsWith('/o/r/resolve/')) {
      res.writeHead(302, { location: '/cdn/x', 'x-linked-size': '100', 'x-linked-etag': `"${'ab'.repeat(32)}"`, 'x-repo-commit': commit });
      res.end();
    } else if (req.method === 'HEAD') {
      res.writeHead(403).end();
    } else if (req.headers.range === 'bytes=0-0') {
      res.writeHead(206, { 'content-range': 'bytes 0-0/100', 'content-length': 1 }).end('x');
    } else {
      res.writeHead(500).end();
    }
  });
  const client = new HubClient({ endpoint: server.url, env: {} });
  try {
    assert.deepEqual(await client.probe(client.fileUrl('o/r', commit, 'm.gguf')), {
      size: 100,
      etag: 'ab'.repeat(32),
      commit,
      acceptRanges: true,
    });
  } finally {
    await client.close();
    await server.close();
  }
});
