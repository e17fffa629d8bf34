/**
 * The local model store: GGUF files kept under one folder by their SHA-256 (blobs/sha256-HEX), so a
 * file pulled twice, or under two names, is stored once; and one small JSON record per model name
 * (models/HASH.json) saying which blob it is, where it came from and what it is. Records are read
 * as hostile input (a hand-edited or half-written file): one that does not check out is skipped,
 * never followed to a path outside the store.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CairnError } from '../util/errors.js';

const HEX64 = /^[0-9a-f]{64}$/;
const MAX_RECORD_BYTES = 1 << 20;

/** A file of the hub repository a stored model was made of. */
export interface SourceFile {
  readonly path: string;
  readonly size: number;
  readonly sha256: string;
  /** Bytes of its GGUF header (where its tensor data starts): a node fetching its shard reads exactly these first. */
  readonly headerBytes?: number;
}

/** Where a stored model came from. */
export interface ModelSource {
  /** `owner/name` on the hub. */
  readonly repo: string;
  /** The commit its files were read at. */
  readonly commit: string;
  /** The hub endpoint it was pulled from. */
  readonly endpoint: string;
  /** Its files in order: one, or the parts of a multi-part model (merged into one blob here). */
  readonly files: readonly SourceFile[];
}

/** One model in the store. */
export interface StoredModel {
  /** The name it is known by: `hf:owner/name:TAG` or `hf:owner/name/path.gguf`. */
  readonly name: string;
  /** SHA-256 of the model file (the blob). */
  readonly sha256: string;
  readonly size: number;
  readonly architecture: string;
  /** The quantization tag (Q4_K_M, F16, ...), or the type most of its weights have. */
  readonly quantization: string;
  /** Parameters of the model, where known. */
  readonly parameters?: number;
  /** The context length the model was trained for. */
  readonly contextLength?: number;
  /** When it was pulled (ISO 8601). */
  readonly pulledAt: string;
  readonly source: ModelSource;
}

/** A stored model with the path of its file. */
export interface StoredModelFile extends StoredModel {
  readonly path: string;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function count(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** True for text a record may hold: 1 to `max` characters, no control characters. */
export function isRecordText(v: unknown, max = 1024): v is string {
  // eslint-disable-next-line no-control-regex
  return typeof v === 'string' && v.length > 0 && v.length <= max && !/[\u0000-\u001f\u007f]/.test(v);
}
const text = isRecordText;

/**
 * Longest model name a record holds: `hf:` + a repo id (193) + `@` and a revision (128) + `/` and a
 * file path of up to MAX_REPO_PATH (1024) characters, which parseHubRef accepts, fits.
 */
export const MAX_MODEL_NAME = 2048;
/** Most hub files a stored model may be made of (the parts of a split model). */
export const MAX_SOURCE_FILES = 1024;

/** Checks a record read from disk; undefined when it is not one cairn wrote. */
export function checkStoredModel(v: unknown): StoredModel | undefined {
  if (!isRecord(v)) return undefined;
  const s = v.source;
  if (!text(v.name, MAX_MODEL_NAME) || typeof v.sha256 !== 'string' || !HEX64.test(v.sha256) || !count(v.size) || !text(v.architecture, 128) || !text(v.quantization, 64) || !text(v.pulledAt, 64)) return undefined;
  if (!isRecord(s) || !text(s.repo, 256) || !text(s.commit, 128) || !text(s.endpoint, 2048) || !Array.isArray(s.files) || s.files.length === 0 || s.files.length > MAX_SOURCE_FILES) return undefined;
  const files: SourceFile[] = [];
  for (const f of s.files as unknown[]) {
    if (!isRecord(f) || !text(f.path) || !count(f.size) || typeof f.sha256 !== 'string' || !HEX64.test(f.sha256)) return undefined;
    files.push({ path: f.path, size: f.size, sha256: f.sha256, ...(count(f.headerBytes) && f.headerBytes <= f.size ? { headerBytes: f.headerBytes } : {}) });
  }
  return {
    name: v.name,
    sha256: v.sha256,
    size: v.size,
    architecture: v.architecture,
    quantization: v.quantization,
    parameters: count(v.parameters) ? v.parameters : undefined,
    contextLength: count(v.contextLength) ? v.contextLength : undefined,
    pulledAt: v.pulledAt,
    source: { repo: s.repo, commit: s.commit, endpoint: s.endpoint, files },
  };
}

/** The models and blobs under one store folder. */
export class ModelStore {
  constructor(readonly root: string) {}

  private get modelsDir(): string {
    return join(this.root, 'models');
  }

  /** Folder of the blobs (and of downloads in progress, as `*.partial`). */
  get blobsDir(): string {
    return join(this.root, 'blobs');
  }

  /** Path of the blob with this SHA-256 (which may not exist yet). */
  blobPath(sha256: string): string {
    if (!HEX64.test(sha256)) throw new CairnError('BAD_ARGUMENT', `not a SHA-256: ${JSON.stringify(sha256).slice(0, 80)}`);
    return join(this.blobsDir, `sha256-${sha256}`);
  }

  /** True when the blob is stored whole (its size as expected, where one is given). */
  hasBlob(sha256: string, size?: number): boolean {
    try {
      const st = statSync(this.blobPath(sha256));
      return st.isFile() && (size === undefined || st.size === size);
    } catch {
      return false;
    }
  }

  private recordPath(name: string): string {
    return join(this.modelsDir, `${createHash('sha256').update(name).digest('hex').slice(0, 32)}.json`);
  }

  /** Every model stored whole (records whose blob is missing are left out), by name. */
  list(): StoredModelFile[] {
    let names: string[];
    try {
      names = readdirSync(this.modelsDir).filter((n) => /^[0-9a-f]{32}\.json$/.test(n));
    } catch {
      return [];
    }
    const out: StoredModelFile[] = [];
    for (const n of names) {
      const m = this.readRecord(join(this.modelsDir, n));
      if (m && this.hasBlob(m.sha256, m.size)) out.push({ ...m, path: this.blobPath(m.sha256) });
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  private readRecord(path: string): StoredModel | undefined {
    try {
      if (statSync(path).size > MAX_RECORD_BYTES) return undefined;
      return checkStoredModel(JSON.parse(readFileSync(path, 'utf8')));
    } catch {
      return undefined;
    }
  }

  /**
   * The stored model a user means by `name`: the exact name, the name without `hf:`, or the one
   * model whose name ends with `/name` (`Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M`); a quantization tag
   * matches in any case. Throws BAD_ARGUMENT when several match; undefined when none does.
   */
  find(name: string): StoredModelFile | undefined {
    const all = this.list();
    const want = normalName(name);
    const exact = all.filter((m) => normalName(m.name) === want);
    if (exact.length === 1) return exact[0];
    const tail = all.filter((m) => normalName(m.name).endsWith(`/${want}`));
    if (tail.length === 1) return tail[0];
    // A repository named without a tag: its one stored model.
    const repo = all.filter((m) => normalName(m.name).startsWith(`${want}:`) || normalName(m.name).startsWith(`${want}/`));
    if (repo.length === 1) return repo[0];
    const many = tail.length > 1 ? tail : repo;
    if (many.length > 1) {
      throw new CairnError('BAD_ARGUMENT', `"${name}" matches ${many.length} stored models: ${many.map((m) => m.name).join(', ')}; give one of these names`);
    }
    return undefined;
  }

  /** The stored model whose file is this blob, where there is one. */
  byBlob(sha256: string): StoredModelFile | undefined {
    return this.list().find((m) => m.sha256 === sha256);
  }

  /** The stored model made of exactly these hub files (by SHA-256), where there is one: a pull that needs nothing new. */
  bySourceFiles(sha256s: readonly string[]): StoredModelFile | undefined {
    return this.list().find((m) => m.source.files.length === sha256s.length && m.source.files.every((f, i) => f.sha256 === sha256s[i]));
  }

  /** Records a model (replacing the record of the same name). Its blob must be stored already. */
  add(model: StoredModel): StoredModelFile {
    if (!checkStoredModel(model)) throw new CairnError('BAD_ARGUMENT', `not a valid model record: ${model.name}`);
    if (!this.hasBlob(model.sha256, model.size)) throw new CairnError('FILE_NOT_FOUND', `${model.name}: its file sha256-${model.sha256} is not in the store`);
    mkdirSync(this.modelsDir, { recursive: true });
    const path = this.recordPath(model.name);
    const temp = `${path}.${process.pid}.tmp`;
    writeFileSync(temp, JSON.stringify(model, null, 2));
    renameSync(temp, path);
    return { ...model, path: this.blobPath(model.sha256) };
  }

  /**
   * Forgets a model by name (as find() reads it) and deletes its blob unless another name still
   * uses it. Returns what was removed and the bytes freed; throws FILE_NOT_FOUND when no model matches.
   */
  remove(name: string): { model: StoredModelFile; freedBytes: number } {
    const model = this.find(name);
    if (!model) throw new CairnError('FILE_NOT_FOUND', `no stored model is named "${name}"; \`cairn ls\` lists them`);
    rmSync(this.recordPath(model.name), { force: true });
    const stillUsed = this.list().some((m) => m.sha256 === model.sha256);
    if (stillUsed) return { model, freedBytes: 0 };
    rmSync(model.path, { force: true });
    return { model, freedBytes: model.size };
  }
}

/** A name as find() compares it: without `hf:`/`hf.co/` and with the tag after `:` in upper case. */
export function normalName(name: string): string {
  let n = name.trim().replace(/^(hf:|hf\.co\/|huggingface\.co\/|https:\/\/huggingface\.co\/)/i, '');
  const colon = n.lastIndexOf(':');
  if (colon > 0) n = `${n.slice(0, colon)}:${n.slice(colon + 1).toUpperCase()}`;
  return n;
}
