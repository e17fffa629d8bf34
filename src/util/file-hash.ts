/**
 * SHA-256 of big files (models are gigabytes), streamed, with a small cache keyed by path, size
 * and modification time so a file is hashed once per change, not once per start.
 */
import { createHash } from 'node:crypto';
import { createReadStream, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

/** Where cairn keeps caches (XDG_CACHE_HOME/cairn or ~/.cache/cairn). */
export function cacheDir(): string {
  return join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'cairn');
}

type HashCache = Record<string, { size: number; mtimeMs: number; sha256: string }>;

function cachePath(): string {
  return join(cacheDir(), 'file-hashes.json');
}

function readCache(): HashCache {
  try {
    return JSON.parse(readFileSync(cachePath(), 'utf8')) as HashCache;
  } catch {
    return {};
  }
}

/** SHA-256 (hex) of a file; `onProgress` gets bytes hashed so far. Cached while size and mtime hold. */
export async function fileSha256(path: string, onProgress?: (done: number, total: number) => void): Promise<string> {
  const abs = resolve(path);
  const st = statSync(abs);
  const cache = readCache();
  const hit = cache[abs];
  if (hit && hit.size === st.size && hit.mtimeMs === st.mtimeMs) return hit.sha256;
  const hash = createHash('sha256');
  let done = 0;
  await new Promise<void>((resolvePromise, reject) => {
    const stream = createReadStream(abs, { highWaterMark: 4 << 20 });
    stream.on('data', (chunk) => {
      hash.update(chunk);
      done += chunk.length;
      onProgress?.(done, st.size);
    });
    stream.on('end', () => resolvePromise());
    stream.on('error', reject);
  });
  const sha256 = hash.digest('hex');
  try {
    const fresh = readCache();
    fresh[abs] = { size: st.size, mtimeMs: st.mtimeMs, sha256 };
    mkdirSync(dirname(cachePath()), { recursive: true });
    writeFileSync(cachePath(), JSON.stringify(fresh));
  } catch {
    // A cache that cannot be written only costs a re-hash next time.
  }
  return sha256;
}

/**
 * Records a file's SHA-256 known by other means (a download verified as it was stored), so the
 * next fileSha256 of it does not read gigabytes again. Cached while its size and mtime hold.
 */
export function rememberFileSha256(path: string, sha256: string): void {
  try {
    const abs = resolve(path);
    const st = statSync(abs);
    const fresh = readCache();
    fresh[abs] = { size: st.size, mtimeMs: st.mtimeMs, sha256 };
    mkdirSync(dirname(cachePath()), { recursive: true });
    writeFileSync(cachePath(), JSON.stringify(fresh));
  } catch {
    // Only costs a hash later.
  }
}
