/**
 * The prompt cache beyond the KV slots: when a slot is about to be overwritten, its cached prefix
 * is copied aside (by the runner, which holds the bytes where the KV lives) and indexed here by
 * its tokens. Entries are evicted least-recently-used to stay within a byte budget. With a
 * directory, entries are also written to disk on shutdown and found again after a restart.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import type { ForwardRunner } from './runner.js';
import { isCairnError } from '../util/errors.js';

/** One saved prefix. */
interface Entry {
  readonly key: number;
  readonly tokens: readonly number[];
  /** Bytes held in memory, or 0 while the entry is only on disk. */
  bytes: number;
  lastUsed: number;
  /** File of the entry in the cache directory, once written or found there. */
  file?: string;
}

/** Prompt-cache settings. */
export interface PrefixCacheOptions {
  /** Most bytes of saved prefixes held in memory. */
  readonly budgetBytes: number;
  /** Prefixes shorter than this are not worth saving. */
  readonly minTokens?: number;
  /** Directory for entries that outlive the process. */
  readonly dir?: string;
  /** Identifies the model and cache layout; entries from another model are ignored. */
  readonly fingerprint?: string;
}

const MAGIC = 'cairn-kv2';

/** Finds, saves and evicts prompt prefixes. */
export class PrefixCache {
  private readonly entries = new Map<number, Entry>();
  private nextKey = 1;
  private clock = 0;
  private heldBytes = 0;
  readonly minTokens: number;

  constructor(
    private readonly runner: ForwardRunner,
    private readonly opts: PrefixCacheOptions,
  ) {
    this.minTokens = opts.minTokens ?? 16;
    if (opts.dir) this.scanDir(opts.dir);
  }

  /** Bytes of saved prefixes in memory. */
  get bytes(): number {
    return this.heldBytes;
  }

  /** Whether entries are written to a directory (persist() keeps them past the process). */
  get persistent(): boolean {
    return this.opts.dir !== undefined;
  }

  /** Entries known (in memory or on disk). */
  get size(): number {
    return this.entries.size;
  }

  /** The entry sharing the longest prefix with `prompt`, and that length. */
  best(prompt: readonly number[]): { key: number; length: number } | undefined {
    let best: Entry | undefined;
    let bestLen = 0;
    for (const e of this.entries.values()) {
      const n = commonPrefix(e.tokens, prompt);
      if (n > bestLen) {
        best = e;
        bestLen = n;
      }
    }
    return best ? { key: best.key, length: bestLen } : undefined;
  }

  /** Copies a saved entry into a slot (reading it from disk first when needed). */
  async load(key: number, slot: number): Promise<void> {
    const e = this.entries.get(key);
    if (!e) throw new Error(`prefix ${key} is gone`);
    if (e.bytes === 0 && e.file) {
      e.bytes = await this.runner.importSaved(key, readEntryFile(e.file).kv);
      this.heldBytes += e.bytes;
    }
    e.lastUsed = ++this.clock;
    await this.runner.loadSlot(key, slot);
    await this.evict(key);
  }

  /**
   * Saves a slot's first tokens unless they are short or already covered by an entry. A prefix
   * larger than the whole budget is saved as far as the budget reaches, where the runner can say
   * how far that is before copying (a long conversation's first part is still worth finding).
   * `protect` names an entry about to be loaded into the slot: it is not evicted to make room (the
   * new entry goes instead, where nothing else can).
   */
  async save(slot: number, all: readonly number[], protect?: number): Promise<void> {
    const room = this.opts.budgetBytes - (protect === undefined ? 0 : (this.entries.get(protect)?.bytes ?? 0));
    const tokens = all.slice(0, this.fitting(all.length, room));
    if (tokens.length < this.minTokens) return;
    for (const e of this.entries.values()) {
      if (e.tokens.length >= tokens.length && commonPrefix(e.tokens, tokens) === tokens.length) {
        e.lastUsed = ++this.clock;
        return;
      }
    }
    const key = this.nextKey++;
    let bytes: number;
    try {
      bytes = await this.runner.saveSlot(slot, tokens.length, key);
    } catch (err) {
      // A cluster stage refuses to keep more than the memory it offers: the prefix is then not
      // cached, and the request that made room for it goes on without it.
      if (!isCairnError(err, 'BAD_ARGUMENT')) throw err;
      // Whatever part of it was kept (another stage's share) goes too.
      await this.runner.dropSaved(key).catch(() => {});
      return;
    }
    if (bytes > this.opts.budgetBytes) {
      await this.runner.dropSaved(key);
      return;
    }
    // An entry that is a prefix of the new one is now redundant.
    for (const e of [...this.entries.values()]) {
      if (e.key !== protect && e.tokens.length < tokens.length && commonPrefix(e.tokens, tokens) === e.tokens.length) await this.remove(e);
    }
    this.entries.set(key, { key, tokens: [...tokens], bytes, lastUsed: ++this.clock });
    this.heldBytes += bytes;
    await this.evict(key, protect);
    // (Only where the runner could not tell the size beforehand.)
    if (this.heldBytes > this.opts.budgetBytes) await this.remove(this.entries.get(key)!);
  }

  /** The most of n positions whose saved copy fits in `room` bytes (n where the runner cannot tell). */
  private fitting(n: number, room: number): number {
    const bytes = this.runner.savedBytes?.bind(this.runner);
    if (!bytes || bytes(n) <= room) return n;
    // Bytes grow with positions (in steps, for a tiled cache): the largest count within budget.
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (bytes(mid) <= room) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Drops one entry (it could not be used). */
  async forget(key: number): Promise<void> {
    const e = this.entries.get(key);
    if (e) await this.remove(e);
  }

  /** Forgets every entry held in memory (the KV they came from was rebuilt); files stay. */
  clear(): void {
    for (const e of [...this.entries.values()]) {
      if (e.file) {
        e.bytes = 0;
      } else {
        this.entries.delete(e.key);
      }
    }
    this.heldBytes = 0;
  }

  /** Writes every in-memory entry to the cache directory. */
  async persist(): Promise<number> {
    const dir = this.opts.dir;
    if (!dir) return 0;
    mkdirSync(dir, { recursive: true });
    let written = 0;
    for (const e of this.entries.values()) {
      if (e.file || e.bytes === 0) continue;
      const kv = await this.runner.exportSaved(e.key);
      const name = createHash('sha256').update(`${this.opts.fingerprint}:${e.tokens.join(',')}`).digest('hex').slice(0, 32);
      e.file = join(dir, `${name}.kv`);
      writeEntryFile(e.file, { fingerprint: this.opts.fingerprint ?? '', tokens: e.tokens }, kv);
      written++;
    }
    return written;
  }

  private scanDir(dir: string): void {
    let names: string[];
    try {
      names = readdirSync(dir).filter((n) => n.endsWith('.kv'));
    } catch {
      return;
    }
    for (const n of names) {
      try {
        const { header } = readEntryFile(join(dir, n), true);
        if (header.fingerprint !== (this.opts.fingerprint ?? '')) continue;
        const key = this.nextKey++;
        this.entries.set(key, { key, tokens: header.tokens, bytes: 0, lastUsed: 0, file: join(dir, n) });
      } catch {
        // A damaged entry is skipped, never fatal.
      }
    }
  }

  private async remove(e: Entry): Promise<void> {
    this.entries.delete(e.key);
    if (e.bytes > 0) {
      this.heldBytes -= e.bytes;
      await this.runner.dropSaved(e.key);
    }
    if (e.file) rmSync(e.file, { force: true });
  }

  /** Frees memory until within budget, oldest first; on-disk copies survive eviction from memory. */
  private async evict(keep: number, protect?: number): Promise<void> {
    while (this.heldBytes > this.opts.budgetBytes) {
      let victim: Entry | undefined;
      for (const e of this.entries.values()) {
        if (e.bytes > 0 && e.key !== keep && e.key !== protect && (!victim || e.lastUsed < victim.lastUsed)) victim = e;
      }
      if (!victim) return;
      if (victim.file) {
        this.heldBytes -= victim.bytes;
        victim.bytes = 0;
        await this.runner.dropSaved(victim.key);
      } else {
        await this.remove(victim);
      }
    }
  }
}

/** File layout: magic line, JSON header line, then the runner's bytes. */
/** An entry file: the magic line, a JSON header line (with the SHA-256 of the KV bytes), the KV bytes. */
function writeEntryFile(path: string, header: { fingerprint: string; tokens: readonly number[] }, kv: Uint8Array): void {
  const sha256 = createHash('sha256').update(kv).digest('hex');
  const head = Buffer.from(`${MAGIC}\n${JSON.stringify({ ...header, sha256 })}\n`);
  writeFileSync(path, Buffer.concat([head, kv]));
}

/** Reads an entry file; the KV bytes (unless headerOnly) are checked against the header's hash. */
function readEntryFile(path: string, headerOnly = false): { header: { fingerprint: string; tokens: number[] }; kv: Uint8Array } {
  const buf = readFileSync(path);
  const first = buf.indexOf(10);
  const second = buf.indexOf(10, first + 1);
  if (first < 0 || second < 0 || buf.subarray(0, first).toString() !== MAGIC) throw new Error(`${path}: not a prompt-cache entry`);
  const header = JSON.parse(buf.subarray(first + 1, second).toString()) as { fingerprint: string; tokens: number[]; sha256: string };
  if (!Array.isArray(header.tokens) || !header.tokens.every((t) => Number.isInteger(t)) || typeof header.sha256 !== 'string') throw new Error(`${path}: bad header`);
  if (headerOnly) return { header, kv: new Uint8Array(0) };
  const kv = new Uint8Array(buf.buffer, buf.byteOffset + second + 1, buf.length - second - 1);
  // A bit flipped on disk would otherwise change answers silently: the entry is dropped instead.
  if (createHash('sha256').update(kv).digest('hex') !== header.sha256) throw new Error(`${path}: damaged (its bytes do not match their hash)`);
  return { header, kv };
}

/** Length of the common prefix of two token lists. */
export function commonPrefix(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}
