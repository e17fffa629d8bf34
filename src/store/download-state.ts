/**
 * The record beside a partial download (`FILE.partial.json`) saying which chunks of
 * `FILE.partial` hold their final bytes, so a later process continues instead of starting over.
 * It names the file by size and SHA-256 rather than by URL (download links change, the content
 * does not), and records the chunk size it counted in. It is replaced atomically (temp file, then
 * rename), and only after the chunks it lists were flushed to disk.
 */
import { readFile, rename, writeFile } from 'node:fs/promises';

/** What the record says, in memory. */
export interface PartialState {
  /** Size of the whole file. */
  readonly size: number;
  /** The expected SHA-256, when known. */
  readonly sha256?: string;
  /** Bytes per chunk; the last chunk may be shorter. */
  readonly chunkBytes: number;
  /** Indices of the chunks written and flushed. */
  readonly done: Set<number>;
}

/** Largest record read back: a few numbers per chunk, far below this for any real file. */
const MAX_STATE_BYTES = 16 * 1024 * 1024;
/** Largest chunk size a record may claim. */
const MAX_CHUNK_BYTES = 1 << 30;

/**
 * The record at `path` when it describes this file (same size and hash) and is well-formed;
 * undefined otherwise (absent, corrupt, or about another file), meaning: start over.
 */
export async function readPartialState(path: string, size: number, sha256: string | undefined): Promise<PartialState | undefined> {
  let text: string;
  try {
    const bytes = await readFile(path);
    if (bytes.length > MAX_STATE_BYTES) return undefined;
    text = bytes.toString('utf8');
  } catch {
    return undefined;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof json !== 'object' || json === null) return undefined;
  const j = json as Record<string, unknown>;
  if (j.version !== 1 || j.size !== size || (j.sha256 ?? undefined) !== sha256) return undefined;
  const chunkBytes = j.chunkBytes;
  if (typeof chunkBytes !== 'number' || !Number.isSafeInteger(chunkBytes) || chunkBytes < 1 || chunkBytes > MAX_CHUNK_BYTES)
    return undefined;
  const chunks = Math.ceil(size / chunkBytes);
  if (!Array.isArray(j.done)) return undefined;
  const done = new Set<number>();
  for (const i of j.done) {
    if (typeof i !== 'number' || !Number.isSafeInteger(i) || i < 0 || i >= chunks) return undefined;
    done.add(i);
  }
  return { size, ...(sha256 !== undefined ? { sha256 } : {}), chunkBytes, done };
}

/** Replaces the record at `path` atomically: a reader sees the old record or the new, never half. */
export async function writePartialState(path: string, state: PartialState): Promise<void> {
  const tmp = `${path}.tmp`;
  const json = {
    version: 1,
    size: state.size,
    sha256: state.sha256 ?? null,
    chunkBytes: state.chunkBytes,
    done: [...state.done].sort((a, b) => a - b),
  };
  await writeFile(tmp, `${JSON.stringify(json)}\n`);
  await rename(tmp, path);
}
