/**
 * SHA-256 of a model's tensors, as the coordinator states them in a shard manifest. Hashing reads
 * the model file in pieces with asynchronous reads, so the event loop stays free for heartbeats
 * and the API while gigabytes go by. The results are kept per model, keyed by the SHA-256 of the
 * whole file (which the coordinator computes anyway), in memory and in the cache folder, so a
 * model's tensors are hashed once, not at every start or re-plan.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { CairnError } from '../util/errors.js';
import { cacheDir } from '../util/file-hash.js';
import { isSha256Hex } from './shard-manifest.js';

const READ_PIECE = 4 << 20;
const known = new Map<string, Map<string, string>>();

function storePath(modelSha256: string): string {
  return join(cacheDir(), 'tensor-hashes', `${modelSha256}.json`);
}

function readStore(modelSha256: string): Map<string, string> {
  const out = new Map<string, string>();
  try {
    const data = JSON.parse(readFileSync(storePath(modelSha256), 'utf8')) as unknown;
    if (typeof data === 'object' && data !== null && !Array.isArray(data)) {
      for (const [name, sha] of Object.entries(data)) if (isSha256Hex(sha)) out.set(name, sha);
    }
  } catch {
    // none yet, or unreadable: hash again
  }
  return out;
}

function writeStore(modelSha256: string, hashes: Map<string, string>): void {
  const path = storePath(modelSha256);
  try {
    mkdirSync(join(cacheDir(), 'tensor-hashes'), { recursive: true });
    const temp = `${path}.${process.pid}.tmp`;
    writeFileSync(temp, JSON.stringify(Object.fromEntries(hashes)));
    renameSync(temp, path);
  } catch {
    // A store that cannot be written only costs hashing again next start.
  }
}

/**
 * Bytes of the model file to hash as one: a tensor (`offset`, `byteLength`), a contiguous slice of
 * one, or (`columns`) the same bytes of each of `rows` rows of `rowBytes` from `offset`, gathered.
 * `name` keys the result in the store, so a slice is named apart from its tensor.
 */
export interface HashedBytes {
  readonly name: string;
  readonly offset: number;
  readonly byteLength: number;
  readonly columns?: { readonly rows: number; readonly rowBytes: number; readonly from: number; readonly width: number };
}

/**
 * SHA-256 (hex) of each tensor's (or slice's) bytes in the model file at `path`, whose whole-file
 * SHA-256 is `modelSha256`. `onProgress` gets bytes read so far out of the bytes that needed hashing.
 */
export async function tensorSha256s(
  path: string,
  modelSha256: string,
  tensors: readonly HashedBytes[],
  onProgress?: (done: number, total: number) => void,
): Promise<string[]> {
  if (!isSha256Hex(modelSha256)) throw new CairnError('BAD_ARGUMENT', 'model hash is not 64 hex digits');
  let hashes = known.get(modelSha256);
  if (!hashes) {
    hashes = readStore(modelSha256);
    known.set(modelSha256, hashes);
  }
  const missing = tensors.filter((t) => !hashes.has(t.name));
  if (missing.length) {
    const total = missing.reduce((a, t) => a + t.byteLength, 0);
    let done = 0;
    const handle = await open(path, 'r');
    try {
      const buf = Buffer.allocUnsafe(Math.min(READ_PIECE, Math.max(1, total)));
      for (const t of missing) {
        const hash = createHash('sha256');
        const c = t.columns;
        // Gathered columns: whole rows are read (as many as fit the buffer), their columns hashed.
        const rowsPerRead = c ? Math.max(1, Math.floor(buf.length / c.rowBytes)) : 0;
        const big = c && c.rowBytes > buf.length ? Buffer.allocUnsafe(c.rowBytes) : buf;
        for (let r = 0; c && r < c.rows; r += rowsPerRead) {
          const n = Math.min(rowsPerRead, c.rows - r);
          const want = n * c.rowBytes;
          for (let got = 0; got < want; ) {
            const { bytesRead } = await handle.read(big, got, want - got, t.offset + r * c.rowBytes + got);
            if (bytesRead === 0) throw new CairnError('GGUF_MALFORMED', `${path}: tensor "${t.name}" runs past the end of the file`);
            got += bytesRead;
          }
          for (let i = 0; i < n; i++) hash.update(big.subarray(i * c.rowBytes + c.from, i * c.rowBytes + c.from + c.width));
          done += want;
          onProgress?.(done, total);
        }
        for (let at = 0; !c && at < t.byteLength; ) {
          const { bytesRead } = await handle.read(buf, 0, Math.min(buf.length, t.byteLength - at), t.offset + at);
          if (bytesRead === 0) throw new CairnError('GGUF_MALFORMED', `${path}: tensor "${t.name}" runs past the end of the file`);
          hash.update(buf.subarray(0, bytesRead));
          at += bytesRead;
          done += bytesRead;
          onProgress?.(done, total);
        }
        hashes.set(t.name, hash.digest('hex'));
      }
    } finally {
      await handle.close();
    }
    writeStore(modelSha256, hashes);
  }
  return tensors.map((t) => hashes.get(t.name)!);
}
