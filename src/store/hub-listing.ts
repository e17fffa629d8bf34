/**
 * Reading the hub's JSON about a repo's files: the model-info answer (`sha` and `siblings`) and the
 * tree answer (`[{type, path, size, lfs}]`). The JSON comes from the network, so every field is
 * checked: entries with unsafe paths, sizes that are not safe integers or hashes that are not 64
 * hex digits are dropped, never passed on.
 */
import { isSafeRepoPath } from './repo-names.js';

/** One file of a repo as the hub lists it. */
export interface HubFile {
  /** Path inside the repo, `/`-separated, checked by isSafeRepoPath. */
  readonly path: string;
  /** Size in bytes. */
  readonly size: number;
  /** The LFS object id: SHA-256 of the content, lowercase hex. Absent for files not in LFS. */
  readonly sha256?: string;
}

/** A file entry as read, before it is known to have a size. */
export interface PartialHubFile {
  readonly path: string;
  readonly size?: number;
  readonly sha256?: string;
}

const SHA256 = /^[0-9a-fA-F]{64}$/;
const COMMIT = /^[0-9a-f]{40}$/;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function size(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : undefined;
}

function sha256(v: unknown): string | undefined {
  return typeof v === 'string' && SHA256.test(v) ? v.toLowerCase() : undefined;
}

/** An LFS block's size and hash (`sha256` in model info, `oid` in the tree), or nothing if malformed. */
function lfsInfo(v: unknown, hashKey: 'sha256' | 'oid'): { size: number; sha256: string } | undefined {
  if (!isRecord(v)) return undefined;
  const s = size(v.size);
  const h = sha256(v[hashKey]);
  return s !== undefined && h !== undefined ? { size: s, sha256: h } : undefined;
}

/** True for a 40-hex-digit commit sha (lowercase, as the hub writes it). */
export function isCommitSha(v: unknown): v is string {
  return typeof v === 'string' && COMMIT.test(v);
}

/**
 * The commit and files of a model-info answer. Returns undefined when the answer is not an object
 * with a commit sha; entries with bad paths are dropped, sizes and hashes kept only when valid.
 * `lfsMissing` says whether some entry lacked a size or some `.gguf` an LFS hash (then the tree
 * is worth asking).
 */
export function parseModelInfo(
  json: unknown,
  maxFiles: number,
): { commit: string; files: PartialHubFile[]; incomplete: boolean } | undefined {
  if (!isRecord(json) || !isCommitSha(json.sha)) return undefined;
  const siblings = Array.isArray(json.siblings) ? json.siblings : [];
  const files: PartialHubFile[] = [];
  const seen = new Set<string>();
  let incomplete = false;
  for (const entry of siblings.slice(0, maxFiles)) {
    if (!isRecord(entry) || typeof entry.rfilename !== 'string' || !isSafeRepoPath(entry.rfilename)) continue;
    const path = entry.rfilename;
    if (seen.has(path)) continue;
    seen.add(path);
    const lfs = lfsInfo(entry.lfs, 'sha256');
    const s = lfs?.size ?? size(entry.size);
    if (s === undefined || (lfs === undefined && path.toLowerCase().endsWith('.gguf'))) incomplete = true;
    files.push({ path, ...(s !== undefined ? { size: s } : {}), ...(lfs ? { sha256: lfs.sha256 } : {}) });
  }
  if (siblings.length > maxFiles) incomplete = true;
  return { commit: json.sha, files, incomplete };
}

/** The files of one page of a tree answer; undefined when the page is not an array. Folders are skipped. */
export function parseTreePage(json: unknown): HubFile[] | undefined {
  if (!Array.isArray(json)) return undefined;
  const files: HubFile[] = [];
  for (const entry of json) {
    if (!isRecord(entry) || entry.type !== 'file') continue;
    if (typeof entry.path !== 'string' || !isSafeRepoPath(entry.path)) continue;
    const lfs = lfsInfo(entry.lfs, 'oid');
    const s = lfs?.size ?? size(entry.size);
    if (s === undefined) continue;
    files.push({ path: entry.path, size: s, ...(lfs ? { sha256: lfs.sha256 } : {}) });
  }
  return files;
}

/** The `rel="next"` URL of a Link header, if any. */
export function nextLink(link: string | undefined): string | undefined {
  if (link === undefined) return undefined;
  for (const part of link.split(',')) {
    const m = /^\s*<([^>]*)>\s*;(.*)$/.exec(part);
    if (m && /(?:^|;)\s*rel\s*=\s*"?next"?\s*(?:;|$)/i.test(m[2])) return m[1];
  }
  return undefined;
}
