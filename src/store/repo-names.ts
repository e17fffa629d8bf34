/**
 * What a Hugging Face repository id, revision and file path may look like. Everything here checks
 * text that came from a user or from a server we do not control, before it becomes part of a URL
 * or, later, of a local file name; so the rules are strict and the same for both sources.
 */

/** One part of a repo id ("owner" or "name"): the hub's own character set and length limit. */
const REPO_PART = /^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$/;

/** A branch, tag or commit; slashes allowed for names like `refs/pr/1`. */
const REVISION = /^[A-Za-z0-9._/-]{1,128}$/;

/** Characters no path segment may hold: controls, backslash, and what Windows or URLs trip on. */
// eslint-disable-next-line no-control-regex
const BAD_SEGMENT_CHAR = /[\u0000-\u001f\u007f-\u009f\\:*?"<>|#%]/;

/** Longest repository file path accepted (the hub's own limit is far beyond any real GGUF path). */
export const MAX_REPO_PATH = 1024;

/** True for `owner/name` with both parts in the hub's character set and no `..` anywhere. */
export function isValidRepoId(repo: string): boolean {
  const parts = repo.split('/');
  return parts.length === 2 && parts.every((p) => REPO_PART.test(p) && !p.includes('..'));
}

/** True for a revision the hub could have: branch, tag, `refs/pr/N` or a commit sha. */
export function isValidRevision(rev: string): boolean {
  if (!REVISION.test(rev) || rev.includes('..')) return false;
  return rev.split('/').every((s) => s.length > 0 && s !== '.');
}

/**
 * True for a relative file path inside a repository that is safe to put in a URL and under a local
 * folder: `/`-separated, no empty, `.` or `..` segments, no leading slash, no backslashes or control
 * characters, bounded length.
 */
export function isSafeRepoPath(path: string): boolean {
  if (path.length === 0 || path.length > MAX_REPO_PATH) return false;
  const segments = path.split('/');
  return segments.every(
    (s) => s.length > 0 && s.length <= 255 && s !== '.' && s !== '..' && !BAD_SEGMENT_CHAR.test(s) && s.trim() === s && !s.endsWith('.'),
  );
}

/** True when `path` names a GGUF file (the extension checked without regard to case). */
export function isGgufPath(path: string): boolean {
  return path.toLowerCase().endsWith('.gguf');
}
