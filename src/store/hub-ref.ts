/**
 * Model references on the Hugging Face hub as users type them: `hf:owner/repo:Q4_K_M`,
 * `hf:owner/repo/path/model.gguf`, Ollama's `hf.co/owner/repo:TAG`, or a pasted browser URL. The
 * text is untrusted (it may come from an API request), so parsing is strict: whatever passes is
 * safe to place in a hub URL.
 */
import { CairnError } from '../util/errors.js';
import { isGgufPath, isSafeRepoPath, isValidRepoId, isValidRevision } from './repo-names.js';

/** A parsed model reference on the hub. */
export interface HubRef {
  /** `owner/name`. */
  readonly repo: string;
  /** Branch, tag or commit; `main` unless given. */
  readonly revision: string;
  /** Quant tag as typed, e.g. `q4_k_m`; compared without regard to case. */
  readonly tag?: string;
  /** A file path inside the repo ending `.gguf`; excludes `tag`. */
  readonly file?: string;
}

/** Longest reference accepted; real ones are well under 300 characters. */
const MAX_SPEC = 2048;

/** A quant tag: `Q4_K_M`, `IQ4_XS`, `UD-Q4_K_XL`, `BF16`... */
const TAG = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Prefixes of the URL forms (matched lower-cased), longest first. */
const URL_PREFIXES = ['https://huggingface.co/', 'https://hf.co/', 'huggingface.co/', 'hf.co/'];

const EXAMPLE = 'write it as hf:OWNER/REPO[:TAG] or hf:OWNER/REPO/PATH/FILE.gguf, e.g. hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M';

function bad(spec: string, why: string): CairnError {
  const shown = spec.length > 120 ? `${spec.slice(0, 120)}...` : spec;
  return new CairnError('BAD_ARGUMENT', `${JSON.stringify(shown)} is not a Hugging Face model reference (${why}): ${EXAMPLE}`);
}

/** True when `spec` is meant as a hub reference (`hf:`, `hf.co/`, `huggingface.co/`, hub URL). */
export function isHubRef(spec: string): boolean {
  const s = spec.toLowerCase();
  return s.startsWith('hf:') || URL_PREFIXES.some((p) => s.startsWith(p));
}

/**
 * Parses `hf:OWNER/REPO[@REVISION][:TAG | /PATH/TO/FILE.gguf]` (also after `hf.co/`,
 * `huggingface.co/` or `https://huggingface.co/`; browser URLs with `/blob/REV/PATH` or
 * `/resolve/REV/PATH` too). A revision may hold slashes (`refs/pr/1`); followed by a file path,
 * only `refs/pr/N` keeps its slashes, other revisions end at the first `/`. The tag `latest`
 * (what Ollama adds) means no tag. Throws CairnError BAD_ARGUMENT on anything else.
 */
export function parseHubRef(spec: string): HubRef {
  if (spec.length > MAX_SPEC) throw bad(spec, 'too long');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f\\]/.test(spec)) throw bad(spec, 'control characters or backslashes');
  const lower = spec.toLowerCase();
  let rest: string;
  let isUrl = false;
  if (lower.startsWith('hf:')) {
    rest = spec.slice(3);
    if (rest.startsWith('//')) throw bad(spec, 'hf: is followed by the repo, not //');
  } else {
    const prefix = URL_PREFIXES.find((p) => lower.startsWith(p));
    if (prefix === undefined) throw bad(spec, 'it must start with hf:');
    rest = spec.slice(prefix.length);
    isUrl = true;
    // A pasted browser URL may carry ?download=true or a #fragment.
    rest = rest.replace(/[?#].*$/, '');
  }
  const [owner, afterOwner] = splitOnce(rest, '/');
  if (afterOwner === undefined) throw bad(spec, 'no repo name after the owner');
  const nameEnd = afterOwner.search(/[@:/]/);
  const name = nameEnd < 0 ? afterOwner : afterOwner.slice(0, nameEnd);
  const repo = `${owner}/${name}`;
  if (!isValidRepoId(repo)) throw bad(spec, `${JSON.stringify(repo)} is not a valid owner/repo`);
  let tail = nameEnd < 0 ? '' : afterOwner.slice(nameEnd);

  if (isUrl) {
    const web = /^\/(?:blob|resolve|tree)\/([^/]+)(?:\/(.*))?$/.exec(tail);
    if (web) {
      // Browser URLs percent-encode; the decoded text is validated like any other.
      const revision = decode(spec, web[1]);
      const file = decode(spec, web[2] ?? '');
      return finish(spec, repo, revision, undefined, file === '' ? undefined : file);
    }
    if (tail === '/') tail = '';
  }

  let revision = 'main';
  let tag: string | undefined;
  let file: string | undefined;
  if (tail.startsWith('@')) {
    const r = tail.slice(1);
    const colon = r.indexOf(':');
    if (colon >= 0) {
      revision = r.slice(0, colon);
      tag = r.slice(colon + 1);
    } else if (isGgufPath(r)) {
      const pr = /^refs\/pr\/\d+(?=\/)/.exec(r);
      const end = pr ? pr[0].length : r.indexOf('/');
      if (end < 0) throw bad(spec, 'a revision and no file path');
      revision = r.slice(0, end);
      file = r.slice(end + 1);
    } else {
      revision = r;
    }
  } else if (tail.startsWith(':')) {
    tag = tail.slice(1);
  } else if (tail.startsWith('/')) {
    file = tail.slice(1);
  } else if (tail !== '') {
    throw bad(spec, 'unexpected text after the repo');
  }
  return finish(spec, repo, revision, tag, file);
}

function finish(spec: string, repo: string, revision: string, tag: string | undefined, file: string | undefined): HubRef {
  if (!isValidRevision(revision)) throw bad(spec, `${JSON.stringify(revision)} is not a valid revision`);
  if (tag !== undefined) {
    if (!TAG.test(tag) || tag.includes('..')) throw bad(spec, `${JSON.stringify(tag)} is not a valid quant tag`);
    if (tag.toLowerCase() === 'latest') tag = undefined;
  }
  if (file !== undefined) {
    if (!isSafeRepoPath(file)) throw bad(spec, `${JSON.stringify(file)} is not a valid file path in a repo`);
    if (!isGgufPath(file)) throw bad(spec, `${JSON.stringify(file)} is not a .gguf file`);
  }
  return {
    repo,
    revision,
    ...(tag !== undefined ? { tag } : {}),
    ...(file !== undefined ? { file } : {}),
  };
}

function decode(spec: string, s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw bad(spec, 'bad percent-encoding');
  }
}

function splitOnce(s: string, sep: string): [string, string | undefined] {
  const i = s.indexOf(sep);
  return i < 0 ? [s, undefined] : [s.slice(0, i), s.slice(i + 1)];
}

/**
 * The canonical text of a reference: `hf:owner/repo[@rev][:TAG]` with the tag upper-cased, or
 * `hf:owner/repo[@rev]/path.gguf`; `@main` is left out. Parses back to the same reference (but for
 * a file in a revision with slashes other than `refs/pr/N`, which this grammar cannot express).
 */
export function formatHubRef(ref: HubRef): string {
  const rev = ref.revision === 'main' ? '' : `@${ref.revision}`;
  if (ref.file !== undefined) return `hf:${ref.repo}${rev}/${ref.file}`;
  if (ref.tag !== undefined) return `hf:${ref.repo}${rev}:${ref.tag.toUpperCase()}`;
  return `hf:${ref.repo}${rev}`;
}
