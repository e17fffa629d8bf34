/**
 * A node that lacks a model fetches only its shard's bytes from where the model is published (the
 * Hugging Face hub), instead of having the coordinator stream them: the files' GGUF headers first,
 * then ranged reads of exactly the tensors (or the rows of the tensor slices) the shard holds. The
 * node lays the shard file out itself from the published header, which must give the very header
 * the coordinator's manifest states, and every byte then passes the same checks as a transfer
 * from the coordinator (shard-receiver.ts): the coordinator's hash of each tensor, taken from its
 * own copy. Anything that fails (no route to the hub, a file that differs) leaves the coordinator
 * to send the shard as before.
 *
 * The coordinator names the files (repository, commit, paths); the node reads them through its own
 * hub client (its own endpoint, token and proxies), so a peer can make it read only that hub.
 */
import { createHash } from 'node:crypto';
import { CairnError } from '../util/errors.js';
import type { GgufFile } from '../gguf/reader.js';
import { MAX_REMOTE_HEADER_BYTES, readRemoteGgufHeader } from '../gguf/remote-header.js';
import { joinSplitParts } from '../gguf/split-parts.js';
import { readModelConfig } from '../model/config.js';
import type { ShardSpec } from '../model/shard.js';
import type { ShardManifest } from './protocol.js';
import type { ShardReceiver } from './shard-receiver.js';
import { layoutShard } from './shard-files.js';

/** Where a model is published, as a coordinator tells a node. */
export interface HubShardSource {
  /** `owner/name`. */
  readonly repo: string;
  /** The commit (40 hex digits) the files are read at. */
  readonly commit: string;
  /** The model's files: one, or the parts of a multi-part model, in order. */
  readonly files: readonly { readonly path: string; readonly size: number; readonly headerBytes?: number }[];
}

/** Reads published model files by byte range (the hub client, given to a node by `cairn node`). */
export interface PublishedFiles {
  /** What it reads from, for messages (the hub's address). */
  readonly where: string;
  /** Bytes [start, start + length) of a file. */
  read(repo: string, commit: string, path: string, start: number, length: number, signal?: AbortSignal): Promise<Uint8Array>;
  /** Bytes [start, end) of a file, as they arrive. */
  stream(repo: string, commit: string, path: string, start: number, end: number, signal?: AbortSignal): Promise<AsyncIterable<Uint8Array>>;
}

const REPO = /^[A-Za-z0-9][A-Za-z0-9._-]{0,95}\/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$/;
const COMMIT = /^[0-9a-f]{40}$/;
const SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9._+-]{0,254}$/;
const MAX_FILES = 256;
const MAX_FILE_BYTES = 2 ** 48;
/** Bytes handed to the receiver at once (the hub's body arrives in small pieces). */
const BATCH = 4 << 20;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Checks a hub source from a peer field by field; returns a clean copy. Throws BAD_ARGUMENT. */
export function validateHubSource(v: unknown): HubShardSource {
  const bad = (why: string) => new CairnError('BAD_ARGUMENT', `load request: hub: ${why}`);
  if (!isRecord(v)) throw bad('not an object');
  if (typeof v.repo !== 'string' || !REPO.test(v.repo) || v.repo.includes('..')) throw bad('repo is not owner/name');
  if (typeof v.commit !== 'string' || !COMMIT.test(v.commit)) throw bad('commit is not 40 hex digits');
  if (!Array.isArray(v.files) || v.files.length < 1 || v.files.length > MAX_FILES) throw bad(`files must list 1 to ${MAX_FILES} files`);
  const files = v.files.map((f: unknown, i: number) => {
    if (!isRecord(f)) throw bad(`files[${i}] is not an object`);
    const path = f.path;
    if (typeof path !== 'string' || path.length > 1024 || !path.split('/').every((s) => SEGMENT.test(s) && s !== '..' && s !== '.') || !path.toLowerCase().endsWith('.gguf')) {
      throw bad(`files[${i}].path is not a path to a .gguf file in the repository`);
    }
    if (typeof f.size !== 'number' || !Number.isSafeInteger(f.size) || f.size < 8 || f.size > MAX_FILE_BYTES) throw bad(`files[${i}].size is not a file size`);
    const hb = f.headerBytes;
    if (hb !== undefined && (typeof hb !== 'number' || !Number.isSafeInteger(hb) || hb < 8 || hb > Math.min(f.size, MAX_REMOTE_HEADER_BYTES))) throw bad(`files[${i}].headerBytes is out of range`);
    return { path, size: f.size, ...(hb !== undefined ? { headerBytes: hb as number } : {}) };
  });
  return { repo: v.repo, commit: v.commit, files };
}

/** Reads a published file's GGUF header: `headerBytes` when known, else growing reads until it parses. */
function readHeader(files: PublishedFiles, src: HubShardSource, f: HubShardSource['files'][number], signal?: AbortSignal): Promise<GgufFile> {
  return readRemoteGgufHeader(`${src.repo}/${f.path}`, f.size, (start, length) => files.read(src.repo, src.commit, f.path, start, length, signal), f.headerBytes);
}

/** What a node-side hub fetch needs. */
export interface HubFetch {
  readonly files: PublishedFiles;
  readonly source: HubShardSource;
  readonly manifest: ShardManifest;
  /** The shard's layers and split, as the load request states them. */
  readonly spec: ShardSpec;
  readonly receiver: ShardReceiver;
  /** Cached shards the cache must not evict to make room. */
  readonly pinned: ReadonlySet<string>;
  readonly onProgress?: (done: number, total: number) => void;
  readonly signal?: AbortSignal;
}

/**
 * Fetches the shard the manifest describes from the published files into the shard cache (through
 * the receiver, which checks every byte). Resolves with the cached file's path; throws, leaving
 * nothing behind, when the hub cannot be read or its bytes are not the coordinator's.
 */
export async function fetchShardFromHub(o: HubFetch): Promise<string> {
  const { files, source, manifest } = o;
  const headers: GgufFile[] = [];
  for (const f of source.files) headers.push(await readHeader(files, source, f, o.signal));
  const name = `${source.repo}/${source.files[0].path}`;
  // A multi-part model is the file its parts join into (gguf/split-parts.ts), as in the store.
  const joined =
    headers.length === 1
      ? { file: headers[0], sources: headers[0].tensors.map((tensor) => ({ part: 0, tensor })) }
      : joinSplitParts(name, headers);
  const layout = layoutShard(joined.file, readModelConfig(joined.file).nLayer, o.spec);
  const headerSha = createHash('sha256').update(layout.header).digest('hex');
  if (headerSha !== manifest.headerSha256 || layout.fileSize !== manifest.fileSize || layout.pieces.length !== manifest.tensors.length) {
    throw new CairnError('BAD_ARGUMENT', `${name} at ${source.commit.slice(0, 12)} is not the coordinator's model (the shard it gives differs)`);
  }
  const index = new Map(joined.file.tensors.map((t, i) => [t.name, i]));
  const owner = {};
  o.receiver.start(owner, manifest, o.pinned);
  let seq = 0;
  let done = 0;
  let batch: Uint8Array[] = [];
  let batched = 0;
  const flush = () => {
    if (batched === 0) return;
    const bytes = batch.length === 1 ? batch[0] : Buffer.concat(batch);
    batch = [];
    batched = 0;
    if (!o.receiver.chunk(owner, seq++, bytes)) throw new CairnError('BAD_ARGUMENT', 'the shard fetch was dropped');
    done += bytes.length;
    o.onProgress?.(done, manifest.fileSize);
  };
  const push = (bytes: Uint8Array) => {
    batch.push(bytes);
    batched += bytes.length;
    if (batched >= BATCH) flush();
  };
  try {
    push(layout.header);
    let at = layout.header.length;
    for (let i = 0; i < layout.pieces.length; i++) {
      const want = layout.offsets[i];
      if (want > at) push(new Uint8Array(want - at));
      const piece = layout.pieces[i];
      const h = piece.hashed;
      const j = index.get(piece.source.name)!;
      const { part, tensor } = joined.sources[j];
      // Where the bytes lie in the published file: the joined file's offset moved to its part's.
      const start = tensor.offset + (h.offset - joined.file.tensors[j].offset);
      const path = source.files[part].path;
      const body = await files.stream(source.repo, source.commit, path, start, start + h.byteLength, o.signal);
      const cols = h.columns;
      if (!cols) {
        for await (const bytes of body) push(bytes);
      } else {
        // A slice of columns: whole rows come, the slice's part of each row is kept.
        const row = new Uint8Array(cols.rowBytes);
        let filled = 0;
        for await (const bytes of body) {
          let k = 0;
          while (k < bytes.length) {
            const n = Math.min(cols.rowBytes - filled, bytes.length - k);
            row.set(bytes.subarray(k, k + n), filled);
            filled += n;
            k += n;
            if (filled === cols.rowBytes) {
              push(row.slice(cols.from, cols.from + cols.width));
              filled = 0;
            }
          }
        }
      }
      at = want + piece.byteLength;
    }
    if (manifest.fileSize > at) push(new Uint8Array(manifest.fileSize - at));
    flush();
    return await o.receiver.finish(owner);
  } catch (err) {
    o.receiver.abortFrom(owner);
    throw err;
  }
}
