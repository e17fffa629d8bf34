/**
 * Downloads one (possibly huge) file from the hub: several connections each fetching the next
 * missing chunk into `DEST.partial` with positional writes, a record of finished chunks beside it
 * so an interrupted download continues where it stopped (even in a new process), retries for
 * connections that drop, and a SHA-256 check before the file takes its final name.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat, statfs, type FileHandle } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CairnError, isCairnError } from '../util/errors.js';
import { formatBytes } from '../util/format.js';
import { readPartialState, writePartialState, type PartialState } from './download-state.js';
import type { HubClient } from './hub-client.js';
import { abortedError } from './hub-errors.js';

/** What to download, where, and how. */
export interface DownloadOptions {
  readonly client: HubClient;
  /** The file's URL (HubClient.fileUrl). */
  readonly url: string;
  /** Final path; the download lives at `dest.partial` until verified. */
  readonly dest: string;
  /** Expected size in bytes (from the listing). */
  readonly size: number;
  /** Expected SHA-256 (lowercase hex), checked before the file is kept. */
  readonly sha256?: string;
  /** Parallel connections; default 4. */
  readonly connections?: number;
  /** Bytes per chunk; default 16 MiB. A resumed download keeps the chunk size it started with. */
  readonly chunkBytes?: number;
  /** Called as bytes arrive with bytes done (including those of earlier runs) and the total. */
  readonly onProgress?: (done: number, total: number) => void;
  /** Stops the download, leaving the partial file and its record for a later run. */
  readonly signal?: AbortSignal;
  /** Tries after the first for a chunk that makes no progress; default 5. */
  readonly retries?: number;
  /** First wait before a retry, doubled each time up to 10 s; default 500 ms. */
  readonly retryDelayMs?: number;
}

const DEFAULT_CHUNK = 16 * 1024 * 1024;
const MAX_CONNECTIONS = 64;
const SHA256 = /^[0-9a-f]{64}$/;

/** Writes all of `data` at `position` (a positional write may write less than asked). */
async function writeAll(fh: FileHandle, data: Uint8Array, position: number): Promise<void> {
  let off = 0;
  while (off < data.length) {
    const { bytesWritten } = await fh.write(data, off, data.length - off, position + off);
    off += bytesWritten;
  }
}

/** True for failures another try may cure: a dropped or refused connection, a 5xx, a timeout. */
function retriable(err: unknown): boolean {
  return isCairnError(err, 'HUB_UNREACHABLE');
}

/**
 * Saves the chunk record after flushing the partial file, one save at a time; requests that come
 * in while a save runs are folded into one more save after it.
 */
class StateSaver {
  private running: Promise<void> | undefined;
  private dirty = false;
  private error: unknown;

  constructor(
    private readonly fh: FileHandle,
    private readonly path: string,
    private readonly state: PartialState,
  ) {}

  schedule(): void {
    this.dirty = true;
    this.running ??= this.loop()
      .catch((err: unknown) => {
        this.error ??= err;
      })
      .finally(() => {
        this.running = undefined;
      });
  }

  private async loop(): Promise<void> {
    while (this.dirty) {
      this.dirty = false;
      // Copy first: chunks finished during the flush are not yet covered by it.
      const snapshot: PartialState = { ...this.state, done: new Set(this.state.done) };
      await this.fh.datasync();
      await writePartialState(this.path, snapshot);
    }
  }

  /** Waits for pending saves; throws the first save error. */
  async flush(): Promise<void> {
    while (this.running) await this.running;
    if (this.error !== undefined) throw this.error;
  }
}

/**
 * Downloads `url` to `dest`: resumable, in parallel where the server serves ranges, verified
 * against `sha256` when given (a mismatch deletes everything and throws HUB_INTEGRITY).
 */
export async function downloadFile(opts: DownloadOptions): Promise<void> {
  const { client, url, dest, size, signal } = opts;
  const connections = opts.connections ?? 4;
  if (!Number.isSafeInteger(size) || size < 0) throw new CairnError('BAD_ARGUMENT', `bad download size ${size}`);
  if (!Number.isInteger(connections) || connections < 1 || connections > MAX_CONNECTIONS) {
    throw new CairnError('BAD_ARGUMENT', `connections must be 1 to ${MAX_CONNECTIONS}, not ${connections}`);
  }
  const chunkBytes = opts.chunkBytes ?? DEFAULT_CHUNK;
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 1) throw new CairnError('BAD_ARGUMENT', `bad chunk size ${chunkBytes}`);
  const sha256 = opts.sha256?.toLowerCase();
  if (sha256 !== undefined && !SHA256.test(sha256)) throw new CairnError('BAD_ARGUMENT', `${JSON.stringify(opts.sha256)} is not a SHA-256`);
  if (signal?.aborted) throw abortedError();

  const partial = `${dest}.partial`;
  const sidecar = `${partial}.json`;
  await mkdir(dirname(dest), { recursive: true });

  let acceptRanges = false;
  if (size > 0) {
    const probe = await client.probe(url, signal);
    if (probe.size !== size) throw changed(dest, `${probe.size} bytes where the listing said ${size}`);
    // The ETag is not compared with sha256: URLs are pinned to a commit, so the content cannot
    // change under them, and the hub's ETag format is not a promise. The hash check at the end is.
    acceptRanges = probe.acceptRanges;
  }

  let state = await readPartialState(sidecar, size, sha256);
  if (state && !(await hasSize(partial, size))) state = undefined;
  if (state && !acceptRanges) state.done.clear();
  const fresh = state === undefined;
  state ??= { size, ...(sha256 !== undefined ? { sha256 } : {}), chunkBytes, done: new Set<number>() };

  if (fresh) await checkSpace(dirname(dest), size, dest);
  const fh = await open(partial, fresh ? 'w+' : 'r+');
  try {
    if (fresh) {
      // Sets the length up front (sparse where the file system allows), so positional writes
      // anywhere in it are plain overwrites.
      await fh.truncate(size);
      await fh.datasync();
      await writePartialState(sidecar, state);
    }
    if (size > 0) {
      const run = { client, url, fh, sidecar, state, opts, signal };
      if (acceptRanges) await fetchChunks(run, connections);
      else await fetchWhole(run);
    }
  } finally {
    await fh.close();
  }

  if (sha256 !== undefined) {
    const actual = await hashFile(partial, signal);
    if (actual !== sha256) {
      await rm(partial, { force: true });
      await rm(sidecar, { force: true });
      throw new CairnError(
        'HUB_INTEGRITY',
        `the SHA-256 of the downloaded ${basename(dest)} (${actual}) differs from the hub's (${sha256}); nothing was kept. ` +
          'Run the command again; if it fails the same way, a proxy or mirror in between is altering the file',
      );
    }
  }
  await rename(partial, dest);
  await rm(sidecar, { force: true });
}

function changed(dest: string, how: string): CairnError {
  return new CairnError(
    'HUB_INTEGRITY',
    `the hub reports ${how} for ${basename(dest)}: run the command again; if it persists, a mirror or proxy in between serves another file`,
  );
}

/**
 * Refuses a new download the disk cannot hold, before anything is written. The size is the hub's
 * word, and the partial file is made that long at once (sparse): without this, a size past free
 * space fills the disk before failing, and one past what the file system allows fails obscurely.
 */
async function checkSpace(dir: string, size: number, dest: string): Promise<void> {
  let free: number;
  try {
    const st = await statfs(dir);
    free = st.bavail * st.bsize;
  } catch {
    return; // A file system that cannot tell: the writes will say.
  }
  if (size > free) {
    throw new CairnError(
      'BAD_ARGUMENT',
      `${basename(dest)} is ${formatBytes(size)} and ${dir} has ${formatBytes(free)} free: make room (or set CAIRN_HOME to a larger disk) and run the command again`,
    );
  }
}

async function hasSize(path: string, size: number): Promise<boolean> {
  try {
    const st = await stat(path);
    return st.isFile() && st.size === size;
  } catch {
    return false;
  }
}

interface Run {
  readonly client: HubClient;
  readonly url: string;
  readonly fh: FileHandle;
  readonly sidecar: string;
  readonly state: PartialState;
  readonly opts: DownloadOptions;
  readonly signal: AbortSignal | undefined;
}

/** Waits before retry `attempt` (0-based), doubling from retryDelayMs up to 10 s. */
async function backoff(run: Run, attempt: number, signal: AbortSignal): Promise<void> {
  const ms = Math.min(10_000, (run.opts.retryDelayMs ?? 500) * 2 ** attempt);
  try {
    await sleep(ms, undefined, { signal });
  } catch {
    throw abortedError();
  }
}

/** Fetches every chunk the record lacks with up to `connections` workers. */
async function fetchChunks(run: Run, connections: number): Promise<void> {
  const { state, opts } = run;
  const size = state.size;
  const chunkBytes = state.chunkBytes;
  const count = Math.ceil(size / chunkBytes);
  const chunkEnd = (i: number): number => Math.min(size, (i + 1) * chunkBytes);
  const missing: number[] = [];
  let progress = 0;
  for (let i = 0; i < count; i++) {
    if (state.done.has(i)) progress += chunkEnd(i) - i * chunkBytes;
    else missing.push(i);
  }
  opts.onProgress?.(progress, size);
  if (missing.length === 0) return;

  // One controller for all workers: the caller's abort or one worker's failure stops them all.
  const stop = new AbortController();
  const onAbort = (): void => stop.abort();
  run.signal?.addEventListener('abort', onAbort, { once: true });
  if (run.signal?.aborted) stop.abort();
  const saver = new StateSaver(run.fh, run.sidecar, state);
  let failure: unknown;
  let next = 0;

  const fetchRange = async (start: number, end: number): Promise<void> => {
    let pos = start;
    for (let attempt = 0; ;) {
      const before = pos;
      try {
        for await (const chunk of await run.client.openRange(run.url, pos, end, stop.signal)) {
          await writeAll(run.fh, chunk, pos);
          pos += chunk.length;
          progress += chunk.length;
          opts.onProgress?.(progress, size);
        }
        return;
      } catch (err) {
        if (stop.signal.aborted || !retriable(err)) throw err;
        // A try that brought bytes resets the count: only a connection that gives nothing fails.
        attempt = pos > before ? 0 : attempt + 1;
        if (attempt > (opts.retries ?? 5)) throw err;
        await backoff(run, Math.max(0, attempt - 1), stop.signal);
      }
    }
  };

  const worker = async (): Promise<void> => {
    while (!stop.signal.aborted && next < missing.length) {
      const i = missing[next++];
      await fetchRange(i * chunkBytes, chunkEnd(i));
      state.done.add(i);
      saver.schedule();
    }
  };

  const workers = Math.min(count < 2 ? 1 : connections, missing.length);
  await Promise.all(
    Array.from({ length: workers }, () =>
      worker().catch((err: unknown) => {
        failure ??= err;
        stop.abort();
      }),
    ),
  );
  run.signal?.removeEventListener('abort', onAbort);
  saver.schedule();
  await saver.flush();
  if (run.signal?.aborted) throw abortedError();
  if (failure !== undefined) throw failure;
}

/** Fetches the file in one stream from its start, for servers that do not serve ranges. */
async function fetchWhole(run: Run): Promise<void> {
  const { state, opts } = run;
  const size = state.size;
  const signal = run.signal ?? new AbortController().signal;
  for (let attempt = 0; ; attempt++) {
    let pos = 0;
    opts.onProgress?.(0, size);
    try {
      for await (const chunk of await run.client.openRange(run.url, 0, size, run.signal)) {
        await writeAll(run.fh, chunk, pos);
        pos += chunk.length;
        opts.onProgress?.(pos, size);
      }
      return;
    } catch (err) {
      if (signal.aborted) throw abortedError();
      if (!retriable(err) || attempt >= (opts.retries ?? 5)) throw err;
      await backoff(run, attempt, signal);
    }
  }
}

/** SHA-256 (hex) of a file, streamed. */
async function hashFile(path: string, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(path, { highWaterMark: 4 << 20, ...(signal ? { signal } : {}) })) {
      hash.update(chunk as Buffer);
    }
  } catch (err) {
    if (signal?.aborted) throw abortedError();
    throw err;
  }
  return hash.digest('hex');
}
