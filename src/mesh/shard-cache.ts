/**
 * A node's shard cache: shard files received from coordinators, kept for the next start.
 *
 * Names. A shard is stored as `<digest>.gguf`, where the digest is the SHA-256 of its validated
 * manifest (shard-manifest.ts), so every name that reaches the file system is 64 hex digits this
 * node computed, never a string a peer sent, and every path is checked to lie directly inside the
 * cache folder. A file written for one manifest can never be found under another's name.
 *
 * Trust. A shard is checked against its manifest as it arrives (shard-receiver.ts). Checking it
 * again on every load would read and hash the whole shard each time (about 1.4 GB/s with SHA-NI:
 * seconds for a large shard, on the path of every re-plan), so the cache keeps a verified index
 * instead: beside each shard, `<digest>.verified` holds the file's identity when it was checked
 * (device, inode, size, modification and change times, in nanoseconds) and an HMAC-SHA256 of them
 * and the digest under a random key of this cache (`index.key`, readable by its user only). A
 * load trusts a shard only when its entry's MAC is right and the file's identity is unchanged;
 * otherwise the whole file is hashed again (asynchronously, with progress) and, when anything
 * differs, deleted with a message naming the tensor. Any write to the file changes its change
 * time (ctime), which a process cannot set back, so even an edit that restores the size and
 * modification time is caught; an index entry not made by this cache (copied from elsewhere,
 * written by another program or an older version) fails its MAC. Whoever can write this user's
 * files could also read the key; against that user the cache does not defend, and need not.
 *
 * Space. The cache holds at most --cache-max-bytes (default: what its disk holds free, less 10%).
 * Before a transfer, the least recently used shards are deleted until the new one fits; the
 * shard in use is never deleted, and a shard that cannot fit is refused with a clear error.
 * Unfinished transfers are `.<digest>.<pid>.<n>.part` files: a transfer that stops removes its
 * own, and a cache opening removes those of processes that no longer run (a crash or kill -9).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import {
  closeSync,
  constants as fsConstants,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statfsSync,
  utimesSync,
  writeFileSync,
  type BigIntStats,
} from 'node:fs';
import { dirname, resolve } from 'node:path';
import { CairnError } from '../util/errors.js';
import type { ShardManifest } from './protocol.js';
import { describeLayers, isSha256Hex, manifestDigest } from './shard-manifest.js';
import { verifyShardFile } from './shard-verify.js';
import { processAlive } from '../util/process-alive.js';

/** Settings of a shard cache. */
export interface ShardCacheOptions {
  /** The cache folder (created, readable by its user only). */
  readonly dir: string;
  /** Most bytes the cache may hold; default: its disk's free space (plus what it holds) less 10%. */
  readonly maxBytes?: number;
  /** Status lines (evictions, damaged shards). */
  readonly log?: (line: string) => void;
}

/** A shard found in the cache and checked against its manifest. */
export interface CachedShard {
  readonly path: string;
  readonly digest: string;
}

/** What a cache lookup found when it could not use the file. */
export interface CacheMiss {
  readonly path?: undefined;
  /** Why a file that was there was deleted (e.g. which tensor did not match), if one was. */
  readonly damaged?: string;
}

const SHARD_FILE = /^([0-9a-f]{64})\.gguf$/;
const INDEX_FILE = /^([0-9a-f]{64})\.verified$/;
/** Partial files of this version (`.<digest>.<pid>.<n>.part`) and of older ones (`.<name>.<pid>.part`). */
const PART_FILE = /\.(\d+)(?:\.\d+)?\.part$/;
/** Shards of the older cache format, named by the sender's claims and never verified: removed. */
const UNVERIFIED_OLD_SHARD = /^[0-9a-f]{64}-\d+-\d+\.gguf$/;
const KEY_FILE = 'index.key';
const KEY_BYTES = 32;
const MAX_INDEX_BYTES = 4096;

function mib(n: number): string {
  return `${(n / 2 ** 20).toFixed(1)} MiB`;
}


interface IndexEntry {
  readonly v: 1;
  readonly digest: string;
  readonly dev: string;
  readonly ino: string;
  readonly size: string;
  readonly mtimeNs: string;
  readonly ctimeNs: string;
  readonly mac: string;
}

/** The shard cache of a node. */
export class ShardCache {
  /** The cache folder, resolved. */
  readonly dir: string;
  private readonly key: Buffer;
  private readonly maxBytes: number | undefined;
  private readonly log: (line: string) => void;
  private tempCount = 0;

  /** Opens (creating) a cache folder and removes what a crashed run or an older version left there. */
  constructor(opts: ShardCacheOptions) {
    if (opts.maxBytes !== undefined && !(Number.isSafeInteger(opts.maxBytes) && opts.maxBytes >= 0)) {
      throw new CairnError('BAD_ARGUMENT', `shard cache limit ${opts.maxBytes} is not a whole number of bytes`);
    }
    this.dir = resolve(opts.dir);
    this.maxBytes = opts.maxBytes;
    this.log = opts.log ?? (() => {});
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    this.key = this.loadKey();
    this.removeLeftovers();
  }

  /** Path of the shard with this digest (64 hex digits), checked to lie inside the cache folder. */
  shardPath(digest: string): string {
    if (!isSha256Hex(digest)) throw new CairnError('BAD_ARGUMENT', 'a shard digest is not 64 hex digits');
    return this.inside(`${digest}.gguf`);
  }

  /** A fresh path for the partial file of a transfer of this shard. */
  tempPath(digest: string): string {
    if (!isSha256Hex(digest)) throw new CairnError('BAD_ARGUMENT', 'a shard digest is not 64 hex digits');
    return this.inside(`.${digest}.${process.pid}.${++this.tempCount}.part`);
  }

  /**
   * Finds the shard a manifest describes: trusted at once when its verified-index entry holds,
   * else hashed again in full (`onCheck` is told first, `onProgress` as it goes). A file that
   * does not match is deleted and the miss says why.
   */
  async find(
    manifest: ShardManifest,
    hooks: { onCheck?: (bytes: number) => void; onProgress?: (done: number, total: number) => void } = {},
  ): Promise<CachedShard | CacheMiss> {
    const digest = manifestDigest(manifest);
    const path = this.shardPath(digest);
    let st: BigIntStats;
    try {
      st = lstatSync(path, { bigint: true });
    } catch {
      return {};
    }
    if (!st.isFile()) {
      this.remove(digest);
      return { damaged: 'the cached shard was not a regular file' };
    }
    if (this.indexHolds(digest, st)) {
      this.touch(digest);
      return { path, digest };
    }
    hooks.onCheck?.(Number(st.size));
    try {
      await verifyShardFile(path, manifest, hooks.onProgress);
    } catch (err) {
      this.remove(digest);
      const damaged = `the cached shard of ${describeLayers(manifest)} was deleted: ${(err as Error).message}`;
      this.log(damaged);
      return { damaged };
    }
    this.writeIndex(digest);
    return { path, digest };
  }

  /** Moves a fully checked partial file into place as the shard with this digest; returns its path. */
  commit(tempPath: string, digest: string): string {
    const path = this.shardPath(digest);
    if (dirname(resolve(tempPath)) !== this.dir) throw new CairnError('BAD_ARGUMENT', 'a partial shard file lies outside the cache');
    renameSync(tempPath, path);
    this.writeIndex(digest);
    return path;
  }

  /** Deletes a shard and its index entry. */
  remove(digest: string): void {
    rmSync(this.shardPath(digest), { force: true });
    rmSync(this.inside(`${digest}.verified`), { force: true });
  }

  /**
   * Makes room for a new shard of `bytes`: deletes least recently used shards (never those in
   * `pinned`) until it fits. Throws BAD_ARGUMENT, saying why, when it cannot fit.
   */
  makeRoom(bytes: number, pinned: ReadonlySet<string>): void {
    const { used, shards } = this.usage();
    const free = this.freeBytes();
    const limit = this.maxBytes ?? used + Math.floor(free * 0.9);
    const limitText = this.maxBytes === undefined ? `${mib(limit)} (the disk's free space less 10%)` : `${mib(limit)} (--cache-max-bytes)`;
    if (bytes > limit) throw new CairnError('BAD_ARGUMENT', `a shard of ${mib(bytes)} cannot fit in this node's shard cache of ${limitText}`);
    let total = used;
    let freed = 0;
    for (const s of shards.filter((x) => !pinned.has(x.digest)).sort((a, b) => a.lastUsedMs - b.lastUsedMs)) {
      if (total + bytes <= limit) break;
      this.remove(s.digest);
      total -= s.size;
      freed += s.size;
      this.log(`removed a cached shard of ${mib(s.size)} (least recently used) to make room`);
    }
    if (total + bytes > limit) {
      throw new CairnError(
        'BAD_ARGUMENT',
        `a shard of ${mib(bytes)} does not fit in this node's shard cache of ${limitText}: ${mib(total)} are held by the shard in use and transfers in progress`,
      );
    }
    if (bytes > free + freed) throw new CairnError('BAD_ARGUMENT', `a shard of ${mib(bytes)} does not fit on this node's disk (${mib(free + freed)} free)`);
  }

  /** Bytes the cache's files take, and its shards with their last use. */
  usage(): { used: number; shards: { digest: string; size: number; lastUsedMs: number }[] } {
    let used = 0;
    const shards: { digest: string; size: number; lastUsedMs: number }[] = [];
    for (const name of this.list()) {
      let st;
      try {
        st = lstatSync(this.inside(name));
      } catch {
        continue; // removed meanwhile (another node sharing the folder)
      }
      if (!st.isFile()) continue;
      used += st.size;
      const m = SHARD_FILE.exec(name);
      if (m) shards.push({ digest: m[1], size: st.size, lastUsedMs: this.lastUsed(m[1], st.mtimeMs) });
    }
    return { used, shards };
  }

  private inside(name: string): string {
    const p = resolve(this.dir, name);
    if (dirname(p) !== this.dir) throw new CairnError('BAD_ARGUMENT', `shard cache path "${name}" leaves its folder`);
    return p;
  }

  private list(): string[] {
    try {
      return readdirSync(this.dir);
    } catch {
      return [];
    }
  }

  private freeBytes(): number {
    const s = statfsSync(this.dir);
    return Number(s.bavail) * Number(s.bsize);
  }

  private loadKey(): Buffer {
    const path = this.inside(KEY_FILE);
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const fd = openSync(path, fsConstants.O_RDONLY | (fsConstants.O_NOFOLLOW ?? 0));
        try {
          const key = readFileSync(fd);
          if (key.length === KEY_BYTES) return key;
        } finally {
          closeSync(fd);
        }
        rmSync(path, { force: true }); // damaged: a new key only costs re-checking the shards
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT' && code !== 'ELOOP') throw err;
        if (code === 'ELOOP') rmSync(path, { force: true });
      }
      const key = randomBytes(KEY_BYTES);
      try {
        writeFileSync(path, key, { flag: 'wx', mode: 0o600 });
        return key;
      } catch (err) {
        // Another node sharing the folder wrote it first: read theirs.
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    }
    throw new CairnError('FILE_NOT_FOUND', `cannot set up the shard cache key in ${this.dir}`);
  }

  private removeLeftovers(): void {
    let old = 0;
    const names = this.list();
    for (const name of names) {
      const part = PART_FILE.exec(name);
      if (name.endsWith('.part') && (!part || !processAlive(Number(part[1])))) {
        rmSync(this.inside(name), { force: true });
        this.log(`removed ${name}, left by a transfer that did not finish`);
      } else if (UNVERIFIED_OLD_SHARD.test(name)) {
        rmSync(this.inside(name), { force: true });
        old++;
      } else {
        const idx = INDEX_FILE.exec(name);
        if (idx && !names.includes(`${idx[1]}.gguf`)) rmSync(this.inside(name), { force: true });
      }
    }
    if (old) this.log(`removed ${old} shard file(s) of an older cache format, which were never checked against the model`);
  }

  private mac(digest: string, st: BigIntStats): string {
    const fields = [digest, st.dev, st.ino, st.size, st.mtimeNs, st.ctimeNs].map(String).join(':');
    return createHmac('sha256', this.key).update(fields).digest('hex');
  }

  private indexHolds(digest: string, st: BigIntStats): boolean {
    let entry: Partial<IndexEntry>;
    try {
      const path = this.inside(`${digest}.verified`);
      const ist = lstatSync(path);
      if (!ist.isFile() || ist.size > MAX_INDEX_BYTES) return false;
      entry = JSON.parse(readFileSync(path, 'utf8')) as Partial<IndexEntry>;
    } catch {
      return false;
    }
    if (typeof entry !== 'object' || entry === null || typeof entry.mac !== 'string' || !/^[0-9a-f]{64}$/.test(entry.mac)) return false;
    const want = Buffer.from(this.mac(digest, st), 'hex');
    return timingSafeEqual(want, Buffer.from(entry.mac, 'hex'));
  }

  private writeIndex(digest: string): void {
    const st = lstatSync(this.shardPath(digest), { bigint: true });
    const entry: IndexEntry = {
      v: 1,
      digest,
      dev: String(st.dev),
      ino: String(st.ino),
      size: String(st.size),
      mtimeNs: String(st.mtimeNs),
      ctimeNs: String(st.ctimeNs),
      mac: this.mac(digest, st),
    };
    const temp = this.tempPath(digest);
    writeFileSync(temp, JSON.stringify(entry), { flag: 'wx', mode: 0o600 });
    renameSync(temp, this.inside(`${digest}.verified`));
  }

  /** Marks a shard as just used: the index entry's modification time is the shard's last use. */
  private touch(digest: string): void {
    const now = new Date();
    try {
      utimesSync(this.inside(`${digest}.verified`), now, now);
    } catch {
      // Only the eviction order suffers.
    }
  }

  private lastUsed(digest: string, fallbackMs: number): number {
    try {
      return lstatSync(this.inside(`${digest}.verified`)).mtimeMs;
    } catch {
      return fallbackMs;
    }
  }
}
