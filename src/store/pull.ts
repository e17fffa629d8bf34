/**
 * `cairn pull`: fetches a GGUF model from the Hugging Face hub into the store. The repository is
 * read at one commit (so the parts of a model never mix revisions), every file is verified against
 * the hub's SHA-256 before the store keeps it, a file the store already holds is not fetched again,
 * and the parts of a multi-part model are joined into one model file. Progress is told as Ollama's
 * /api/pull tells it, so the CLI's bar and the Ollama route share one source.
 */
import { createHash, randomBytes } from 'node:crypto';
import { rmSync, statSync } from 'node:fs';
import { mkdir, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { CairnError } from '../util/errors.js';
import { rememberFileSha256 } from '../util/file-hash.js';
import { ggmlTypeName } from '../gguf/ggml-types.js';
import { Metadata } from '../gguf/metadata.js';
import { readGguf, type GgufFile } from '../gguf/reader.js';
import { readRemoteGgufHeader } from '../gguf/remote-header.js';
import { joinSplitParts } from '../gguf/split-parts.js';
import { downloadFile } from './download.js';
import { chooseGguf, type GgufChoice } from './gguf-choice.js';
import type { HubClient } from './hub-client.js';
import { formatHubRef, type HubRef } from './hub-ref.js';
import { mergeSplitParts } from './merge-parts.js';
import { withPullLock } from './pull-lock.js';
import { isRecordText, MAX_SOURCE_FILES, type ModelStore, type StoredModel, type StoredModelFile } from './model-store.js';

/** One step of a pull, in the shape of Ollama's /api/pull progress lines. */
export interface PullEvent {
  readonly status: string;
  /** `sha256:HEX` of the file being fetched. */
  readonly digest?: string;
  readonly total?: number;
  readonly completed?: number;
}

/** What a pull needs. */
export interface PullOptions {
  readonly store: ModelStore;
  readonly client: HubClient;
  /** Parallel connections per file (default 4). */
  readonly connections?: number;
  readonly onEvent?: (e: PullEvent) => void;
  readonly signal?: AbortSignal;
  /**
   * Checks the model from its header before anything is downloaded (read from the hub by byte
   * ranges; a multi-part model as its parts join): throws to refuse it, e.g. a model cairn cannot
   * run, so that a pull does not fetch gigabytes only to fail at load.
   */
  readonly check?: (header: GgufFile) => void;
}

/** The name a pulled model is stored under: `hf:owner/repo:TAG`, or its path where the file has no tag or was named by path. */
export function storedName(ref: HubRef, choice: GgufChoice): string {
  if (!ref.file && choice.tag) return formatHubRef({ repo: ref.repo, revision: ref.revision, tag: choice.tag });
  return formatHubRef({ repo: ref.repo, revision: ref.revision, file: choice.parts[0].path });
}

/** The type most of a model's weight bytes have (its quantization where the file name gives none). */
export function dominantType(file: GgufFile): string {
  const bytes = new Map<number, number>();
  for (const t of file.tensors) if (t.dims.length >= 2) bytes.set(t.type, (bytes.get(t.type) ?? 0) + t.byteLength);
  const best = [...bytes.entries()].sort((a, b) => b[1] - a[1])[0];
  return best ? ggmlTypeName(best[0]) : 'unknown';
}

/** What the store records of a model file it now holds. */
export function describeModel(
  path: string,
  name: string,
  tag: string | undefined,
  sha256: string,
  size: number,
  source: StoredModel['source'],
): StoredModel {
  const file = readGguf(path);
  const meta = new Metadata(file);
  const arch = meta.string('general.architecture');
  // The header is the hub's: a name the record cannot hold (too long, control characters) would
  // make the store refuse the model after the whole download.
  const architecture = isRecordText(arch, 128) ? arch : 'unknown';
  const ctx = meta.number(`${architecture}.context_length`);
  let parameters = 0;
  for (const t of file.tensors) parameters += t.elements;
  return {
    name,
    sha256,
    size,
    architecture,
    quantization: tag ?? dominantType(file),
    parameters,
    contextLength: ctx !== undefined && Number.isSafeInteger(ctx) && ctx > 0 ? ctx : undefined,
    pulledAt: new Date().toISOString(),
    source,
  };
}

/** Pulls the model `ref` names into the store (or finds it there) and returns it. */
export async function pullModel(ref: HubRef, opts: PullOptions): Promise<StoredModelFile> {
  const { store, client } = opts;
  const tell = (e: PullEvent) => opts.onEvent?.(e);
  tell({ status: 'pulling manifest' });
  const listing = await client.listRepo(ref.repo, ref.revision, opts.signal);
  const choice = chooseGguf(listing, ref);
  const missing = choice.parts.find((p) => !p.sha256);
  if (missing) {
    throw new CairnError(
      'BAD_ARGUMENT',
      `${ref.repo}: the hub states no SHA-256 for ${missing.path}, so it cannot be verified; cairn pulls only files stored with Git LFS`,
    );
  }
  // Refused before any download: the store's record could not hold the model afterwards.
  if (choice.parts.length > MAX_SOURCE_FILES) {
    throw new CairnError('BAD_ARGUMENT', `${ref.repo}: ${choice.parts[0].path} is split into ${choice.parts.length} parts, more than the ${MAX_SOURCE_FILES} cairn stores`);
  }
  const files = choice.parts.map((p) => ({ path: p.path, size: p.size, sha256: p.sha256! }));
  const name = storedName(ref, choice);
  const source = { repo: ref.repo, commit: listing.commit, endpoint: client.endpoint, files };
  // Stored before (maybe under another name): nothing to fetch.
  const stored = (): StoredModelFile | undefined => {
    const already = store.bySourceFiles(files.map((f) => f.sha256));
    if (!already) return undefined;
    const model = already.name === name ? already : store.add({ ...already, name, pulledAt: new Date().toISOString() });
    tell({ status: 'success' });
    return model;
  };
  const before = stored();
  if (before) return before;
  if (opts.check) {
    tell({ status: 'reading the model header' });
    const headers: GgufFile[] = [];
    for (const f of files) {
      const url = client.fileUrl(ref.repo, listing.commit, f.path);
      headers.push(await readRemoteGgufHeader(`${ref.repo}/${f.path}`, f.size, (start, length) => client.readRange(url, start, length, opts.signal)));
    }
    opts.check(headers.length === 1 ? headers[0] : joinSplitParts(`${ref.repo}/${files[0].path}`, headers).file);
  }
  await mkdir(store.blobsDir, { recursive: true });
  // One pull of a model at a time (two /api/pull requests for it): the second finds what the first
  // stored, instead of joining the same parts at once or reading parts the first has removed.
  const modelKey = createHash('sha256').update(files.map((f) => f.sha256).join(',')).digest('hex');
  return withPullLock(
    join(store.blobsDir, `model-${modelKey}.lock`),
    async () => stored() ?? (await fetchModel(ref, opts, files, name, choice.tag, source)),
    () => tell({ status: 'waiting for another pull of this model' }),
  );
}

/** Downloads, joins and records a model the store lacks (pullModel, under the model's lock). */
async function fetchModel(
  ref: HubRef,
  opts: PullOptions,
  files: readonly { path: string; size: number; sha256: string }[],
  name: string,
  tag: string | undefined,
  source: StoredModel['source'],
): Promise<StoredModelFile> {
  const { store, client } = opts;
  const tell = (e: PullEvent) => opts.onEvent?.(e);
  const commit = source.commit;
  for (const f of files) {
    const digest = `sha256:${f.sha256}`;
    if (store.hasBlob(f.sha256, f.size)) {
      tell({ status: `pulling ${f.sha256.slice(0, 12)}`, digest, total: f.size, completed: f.size });
      continue;
    }
    tell({ status: `pulling ${f.sha256.slice(0, 12)}`, digest, total: f.size, completed: 0 });
    await withPullLock(`${store.blobPath(f.sha256)}.lock`, async () => {
      // Another pull may have finished it while this one waited.
      if (store.hasBlob(f.sha256, f.size)) return;
      await downloadFile({
        client,
        url: client.fileUrl(ref.repo, commit, f.path),
        dest: store.blobPath(f.sha256),
        size: f.size,
        sha256: f.sha256,
        connections: opts.connections,
        signal: opts.signal,
        onProgress: (completed, total) => tell({ status: `pulling ${f.sha256.slice(0, 12)}`, digest, total, completed }),
      });
    });
    tell({ status: `pulling ${f.sha256.slice(0, 12)}`, digest, total: f.size, completed: f.size });
  }
  tell({ status: 'verifying sha256 digest' });
  // Where each file's tensor data starts, for nodes that fetch only their shard from the hub.
  const withHeaders = files.map((f) => ({ ...f, headerBytes: readGguf(store.blobPath(f.sha256)).dataOffset }));
  let sha256 = files[0].sha256;
  let size = files[0].size;
  if (files.length > 1) {
    tell({ status: `joining ${files.length} parts` });
    // Unique per join: two pulls of different models may join in the same millisecond.
    const temp = join(store.blobsDir, `joining-${process.pid}-${randomBytes(8).toString('hex')}.tmp`);
    try {
      sha256 = await mergeSplitParts(
        files.map((f) => store.blobPath(f.sha256)),
        temp,
      );
      await rename(temp, store.blobPath(sha256));
    } finally {
      rmSync(temp, { force: true });
    }
    size = statSync(store.blobPath(sha256)).size;
  }
  tell({ status: 'writing manifest' });
  const model = store.add(describeModel(store.blobPath(sha256), name, tag, sha256, size, { ...source, files: withHeaders }));
  // The parts are not kept: the joined file holds all of them, and a later pull of the same parts
  // finds it by its source (bySourceFiles). Only now: had the record failed, the parts would be
  // all there is to try again with.
  if (files.length > 1) for (const f of files) if (f.sha256 !== sha256 && !store.byBlob(f.sha256)) rmSync(store.blobPath(f.sha256), { force: true });
  rememberFileSha256(model.path, sha256);
  tell({ status: 'success' });
  return model;
}
