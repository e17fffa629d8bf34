/**
 * Which GGUF model a repo offers and which one a reference means. GGUF repos hold one file per
 * quantization (`Model-Q4_K_M.gguf`), big ones split into parts (`Model-Q8_0-00001-of-00003.gguf`,
 * often in a folder per quant), next to projector files for vision (`mmproj-*.gguf`) that are not
 * models on their own. A choice is one model: a single file or a complete set of parts.
 */
import { CairnError } from '../util/errors.js';
import { formatBytes } from '../util/format.js';
import type { HubFile, RepoListing } from './hub-client.js';
import type { HubRef } from './hub-ref.js';

/** One model a repo offers. */
export interface GgufChoice {
  /** File name without folder, `-0000N-of-0000M` and `.gguf`. */
  readonly name: string;
  /** Canonical upper-case quant tag found in the name, e.g. `Q4_K_M`, `IQ4_XS`, `BF16`, `UD-Q4_K_XL`. */
  readonly tag?: string;
  /** The files, in part order; one for a single file. */
  readonly parts: readonly HubFile[];
  /** Bytes of all parts together. */
  readonly size: number;
}

/** `NAME-00001-of-00003.gguf` as llama.cpp's gguf-split writes it. */
const SPLIT = /^(.*)-(\d{5})-of-(\d{5})\.gguf$/i;

/** Longest quant tag: as long as one parseHubRef accepts. */
const MAX_TAG = 64;

/** Files that are not language models on their own: vision projectors, importance matrices. */
const NOT_A_MODEL = /mmproj|projector|imatrix/i;

/**
 * A quant tag: llama.cpp's type names (Q4_K_M, IQ2_XXS, Q4_0_4_4, TQ1_0, BF16, MXFP4...), with the
 * `UD-` prefix of Unsloth's dynamic quants. Delimited by start/`-`/`.`/`_` before and end/`-`/`.`
 * /`_` after; the alternation is greedy with backtracking so `Q4_K_M` is read whole, not as `Q4_K`.
 */
const TAG_IN_NAME =
  /(?<=^|[-._])((?:UD-)?(?:I?Q[1-8](?:_(?:K|NL|XXS|XS|S|M|L|XL|[0-9]))*|TQ[12]_0|BF16|F16|F32|FP16|FP32|MXFP4(?:_MOE)?))(?=$|[-._])/gi;

/** The canonical quant tag in a model name (the last one, where a name has several), if any. */
export function quantTag(name: string): string | undefined {
  let tag: string | undefined;
  // A file name is the hub's: `Q4_K_K_K...` of any length matches the pattern, but a tag longer
  // than one a reference may name (64 characters) is no tag, and would not fit the store's record.
  for (const m of name.matchAll(TAG_IN_NAME)) if (m[1].length <= MAX_TAG) tag = m[1].toUpperCase();
  return tag;
}

function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

function choiceOf(parts: HubFile[], name: string): GgufChoice {
  const tag = quantTag(name);
  return { name, ...(tag !== undefined ? { tag } : {}), parts, size: parts.reduce((s, p) => s + p.size, 0) };
}

/**
 * The models among `files`: every `*.gguf` that is not a projector or importance matrix, with the
 * parts of a split model grouped (only complete sets; a set missing a part is left out). Sorted by
 * size, smallest first, then by path.
 */
export function ggufChoices(files: readonly HubFile[]): GgufChoice[] {
  const choices: GgufChoice[] = [];
  const sets = new Map<string, { name: string; count: number; parts: Map<number, HubFile> }>();
  for (const f of files) {
    const base = baseName(f.path);
    if (!base.toLowerCase().endsWith('.gguf') || NOT_A_MODEL.test(base)) continue;
    const m = SPLIT.exec(base);
    if (!m) {
      choices.push(choiceOf([f], base.slice(0, -'.gguf'.length)));
      continue;
    }
    const index = Number(m[2]);
    const count = Number(m[3]);
    if (index < 1 || index > count) continue;
    const key = `${f.path.slice(0, f.path.length - base.length)}${m[1]}\u0000${count}`;
    let set = sets.get(key);
    if (!set) sets.set(key, (set = { name: m[1], count, parts: new Map() }));
    set.parts.set(index, f);
  }
  for (const set of sets.values()) {
    if (set.parts.size !== set.count) continue;
    const parts = [...set.parts.entries()].sort((a, b) => a[0] - b[0]).map(([, f]) => f);
    choices.push(choiceOf(parts, set.name));
  }
  return choices.sort((a, b) => a.size - b.size || (a.parts[0].path < b.parts[0].path ? -1 : 1));
}

/** True when `name` holds `tag` (any case) as a whole token: `Q4_K` is not found in `Q4_K_M`. */
function nameHasTag(name: string, tag: string): boolean {
  const n = name.toUpperCase();
  const t = tag.toUpperCase();
  for (let i = n.indexOf(t); i >= 0; i = n.indexOf(t, i + 1)) {
    const before = i === 0 ? '' : n[i - 1];
    const after = n.slice(i + t.length);
    if (
      (before === '' || '-._'.includes(before)) &&
      (after === '' || /^[-.]/.test(after) || /^_(?!(?:K|NL|XXS|XS|S|M|L|XL|[0-9])(?:$|[-._]))/.test(after))
    ) {
      return true;
    }
  }
  return false;
}

/**
 * The choice `ref` means in `listing`: the set holding `ref.file` (exact path; a projector file
 * asked for by path is given too), or the one whose quant tag is `ref.tag` (any case; exact tags
 * first, then the tag as a whole token of the name; among several the shortest path, a tie is an
 * error listing them); with neither, the only model of the repo. Throws CairnError BAD_ARGUMENT or
 * HUB_NOT_FOUND with the list of what the repo offers.
 */
export function chooseGguf(listing: RepoListing, ref: HubRef): GgufChoice {
  const choices = ggufChoices(listing.files);
  const repo = listing.repo;
  if (ref.file !== undefined) {
    const found = choices.find((c) => c.parts.some((p) => p.path === ref.file));
    if (found) return found;
    const file = listing.files.find((f) => f.path === ref.file);
    if (file && !SPLIT.test(baseName(file.path))) return choiceOf([file], baseName(file.path).slice(0, -'.gguf'.length));
    const why = file ? 'is one part of a split model whose other parts are missing' : 'is not in the repo';
    throw new CairnError('HUB_NOT_FOUND', `\`${ref.file}\` ${why} (\`${repo}\` at ${listing.commit.slice(0, 12)}).${offer(repo, choices)}`);
  }
  if (ref.tag !== undefined) {
    const want = ref.tag.toUpperCase();
    let matches = choices.filter((c) => c.tag === want);
    if (matches.length === 0) matches = choices.filter((c) => nameHasTag(c.name, want));
    if (matches.length === 1) return matches[0];
    if (matches.length === 0) throw new CairnError('HUB_NOT_FOUND', `\`${repo}\` has no GGUF file tagged ${want}.${offer(repo, choices)}`);
    const shortest = Math.min(...matches.map((c) => c.parts[0].path.length));
    const best = matches.filter((c) => c.parts[0].path.length === shortest);
    if (best.length === 1) return best[0];
    throw new CairnError(
      'BAD_ARGUMENT',
      `several GGUF files of \`${repo}\` are tagged ${want}; name one by path with cairn pull hf:${repo}/PATH.gguf:\n${describeSome(best)}`,
    );
  }
  if (choices.length === 1) return choices[0];
  if (choices.length === 0) {
    throw new CairnError(
      'HUB_NOT_FOUND',
      `\`${repo}\` has no GGUF model files: look for a repo with GGUF in its name (often OWNER/MODEL-GGUF)`,
    );
  }
  throw new CairnError('BAD_ARGUMENT', `\`${repo}\` offers ${choices.length} GGUF models.${offer(repo, choices)}`);
}

function offer(repo: string, choices: readonly GgufChoice[]): string {
  if (choices.length === 0) return ' It has no GGUF model files.';
  return ` Choose one with cairn pull hf:${repo}:TAG (or hf:${repo}/PATH.gguf):\n${describeSome(choices)}`;
}

/** Most models an error message lists. */
const MAX_LISTED = 50;

/**
 * describeChoices for an error message: a listing is the hub's, and one of a hundred thousand
 * models would make a message of megabytes (sent whole to an /api/pull client); the rest is counted.
 */
function describeSome(choices: readonly GgufChoice[]): string {
  if (choices.length <= MAX_LISTED) return describeChoices(choices);
  return `${describeChoices(choices.slice(0, MAX_LISTED))}\n  ... and ${choices.length - MAX_LISTED} more`;
}

/**
 * The choices as aligned lines, `  Q4_K_M   4.58 GiB  path/Model-Q4_K_M.gguf`, with the part
 * count of split models; what `cairn pull` shows for a repo with several models.
 */
export function describeChoices(choices: readonly GgufChoice[]): string {
  const rows = choices.map((c) => {
    const more = c.parts.length > 1 ? ` (${c.parts.length} parts)` : '';
    return [c.tag ?? '-', formatBytes(c.size), `${c.parts[0].path}${more}`];
  });
  const w0 = Math.max(0, ...rows.map((r) => r[0].length));
  const w1 = Math.max(0, ...rows.map((r) => r[1].length));
  return rows.map((r) => `  ${r[0].padEnd(w0)}  ${r[1].padStart(w1)}  ${r[2]}`).join('\n');
}
