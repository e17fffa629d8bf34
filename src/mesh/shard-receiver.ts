/**
 * Node side of a shard transfer: a coordinator announces the shard's manifest, streams the file in
 * chunks, and ends it. Every byte is checked against the manifest as it arrives (a wrong tensor
 * fails the transfer at once, naming it); the file is written to a partial file in the cache and
 * moved into place only when complete and correct. A transfer that stops for any reason (a bad
 * or out-of-order chunk, a write error such as a full disk, a newer transfer, the coordinator
 * disconnecting, the node stopping) deletes its partial file.
 *
 * Chunks are written with synchronous writes: one chunk (8 MiB at most from cairn's sender) costs
 * the event loop milliseconds, even when the kernel throttles a writer to the disk's speed, and
 * a loop that waits for the disk stops reading the socket, which slows the sender to the disk's
 * pace without buffering the transfer in memory. The final flush to disk, which may take seconds
 * for a large shard, runs off the event loop.
 */
import { closeSync, fsync, openSync, rmSync, writeSync } from 'node:fs';
import { promisify } from 'node:util';
import { CairnError } from '../util/errors.js';
import type { ShardManifest } from './protocol.js';
import type { ShardCache } from './shard-cache.js';
import { manifestDigest, validateShardManifest } from './shard-manifest.js';
import { checkShardHeader, ShardVerifier } from './shard-verify.js';

interface Transfer {
  readonly owner: object;
  readonly manifest: ShardManifest;
  readonly digest: string;
  readonly temp: string;
  fd: number | undefined;
  readonly verifier: ShardVerifier;
  nextSeq: number;
  written: number;
}

/** Receives one shard at a time into a shard cache. */
export class ShardReceiver {
  private transfer: Transfer | undefined;
  /** Why the last transfer of an owner failed, told at its end request. */
  private failure: { owner: object; reason: string } | undefined;

  constructor(private readonly cache: ShardCache) {}

  /** True while a transfer is under way. */
  get busy(): boolean {
    return this.transfer !== undefined;
  }

  /**
   * Starts a transfer from `owner` (dropping any unfinished one): validates the announced
   * manifest, makes room in the cache (never evicting `pinned`), and opens the partial file.
   * Throws BAD_ARGUMENT for a bad manifest or a shard that cannot fit.
   */
  start(owner: object, begin: unknown, pinned: ReadonlySet<string>): ShardManifest {
    this.abort();
    this.failure = undefined;
    const manifest = validateShardManifest(begin, 'shard transfer');
    const digest = manifestDigest(manifest);
    this.cache.makeRoom(manifest.fileSize, pinned);
    const temp = this.cache.tempPath(digest);
    const fd = openSync(temp, 'wx', 0o600);
    this.transfer = { owner, manifest, digest, temp, fd, verifier: new ShardVerifier(manifest), nextSeq: 0, written: 0 };
    return manifest;
  }

  /**
   * Writes and checks the next chunk of `owner`'s transfer. Returns false for a chunk that
   * belongs to no transfer (one that already failed, or another connection's), which is dropped.
   * Throws, after deleting the partial file, when the chunk fails the transfer.
   */
  chunk(owner: object, sequence: number, bytes: Uint8Array): boolean {
    const t = this.transfer;
    if (!t || t.owner !== owner) return false;
    try {
      if (sequence !== t.nextSeq) throw new CairnError('BAD_ARGUMENT', `shard chunk ${sequence} arrived where ${t.nextSeq} was due`);
      if (t.written + bytes.length > t.manifest.fileSize) throw new CairnError('BAD_ARGUMENT', `the shard transfer runs past its size of ${t.manifest.fileSize} bytes`);
      t.verifier.feed(bytes);
      writeAll(t.fd!, bytes, t.written);
      t.nextSeq++;
      t.written += bytes.length;
    } catch (err) {
      this.fail(t, err);
    }
    return true;
  }

  /** Ends `owner`'s transfer: checks it is complete, flushes it to disk, and moves it into the cache. Resolves with its path. */
  async finish(owner: object): Promise<string> {
    const t = this.transfer;
    if (!t || t.owner !== owner) {
      const failed = this.failure?.owner === owner ? this.failure.reason : undefined;
      this.failure = undefined;
      throw new CairnError('BAD_ARGUMENT', failed ? `the shard transfer failed: ${failed}` : 'shard end without a transfer');
    }
    try {
      t.verifier.finish();
      await fsyncAsync(t.fd!);
      if (this.transfer !== t) throw new CairnError('BAD_ARGUMENT', 'the shard transfer was dropped while it was being saved');
      closeSync(t.fd!);
      t.fd = undefined;
      checkShardHeader(t.temp, t.manifest);
      const path = this.cache.commit(t.temp, t.digest);
      this.transfer = undefined;
      return path;
    } catch (err) {
      try {
        this.fail(t, err);
      } finally {
        this.failure = undefined; // told in this reply, not again
      }
    }
  }

  /** Drops the transfer of `owner` (its connection closed); true when there was one. */
  abortFrom(owner: object): boolean {
    if (this.failure?.owner === owner) this.failure = undefined;
    if (this.transfer?.owner !== owner) return false;
    this.abort();
    return true;
  }

  /** Drops any unfinished transfer and deletes its partial file. */
  abort(): void {
    if (this.transfer) this.drop(this.transfer);
  }

  private drop(t: Transfer): void {
    if (this.transfer === t) this.transfer = undefined;
    if (t.fd !== undefined) {
      try {
        closeSync(t.fd);
      } catch {
        // already closed by the system; the file goes below either way
      }
      t.fd = undefined;
    }
    rmSync(t.temp, { force: true });
  }

  private fail(t: Transfer, err: unknown): never {
    this.drop(t);
    const code = (err as NodeJS.ErrnoException).code;
    const reason =
      code === 'ENOSPC' || code === 'EDQUOT'
        ? `this node's disk is full (${code}); the partial shard was deleted`
        : err instanceof CairnError
          ? err.message
          : `cannot write the shard: ${(err as Error).message}`;
    this.failure = { owner: t.owner, reason };
    throw new CairnError('BAD_ARGUMENT', reason, { cause: err });
  }
}

const fsyncAsync = promisify(fsync);

function writeAll(fd: number, bytes: Uint8Array, position: number): void {
  let done = 0;
  while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done, position + done);
}
