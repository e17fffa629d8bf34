/**
 * Checking a shard file against its manifest: every byte is either the header, a tensor, or
 * padding; the header and each tensor must match their SHA-256 and padding must be zero. The
 * same check runs on bytes as they arrive over the network and on a cached file read back from
 * disk, where it reads in pieces with asynchronous reads so that hashing gigabytes never holds the
 * event loop (which answers the coordinator's heartbeats) for more than a few milliseconds.
 */
import { createHash, type Hash } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { open } from 'node:fs/promises';
import { readGguf } from '../gguf/reader.js';
import { CairnError } from '../util/errors.js';
import type { ShardManifest } from './protocol.js';
import { shardRegions, type ShardRegion } from './shard-manifest.js';

const ZEROS = new Uint8Array(1 << 16);
/** Bytes read per step when checking a file on disk. */
const READ_PIECE = 4 << 20;

function isZero(bytes: Uint8Array): boolean {
  for (let o = 0; o < bytes.length; o += ZEROS.length) {
    const n = Math.min(ZEROS.length, bytes.length - o);
    if (Buffer.compare(bytes.subarray(o, o + n), ZEROS.subarray(0, n)) !== 0) return false;
  }
  return true;
}

/** Checks a shard file's bytes, fed in order from offset 0; throws BAD_ARGUMENT at the first wrong byte range. */
export class ShardVerifier {
  private readonly regions: ShardRegion[];
  private index = 0;
  private pos = 0;
  private hash: Hash = createHash('sha256');

  constructor(private readonly manifest: ShardManifest) {
    this.regions = shardRegions(manifest);
  }

  /** Bytes checked so far. */
  get checked(): number {
    return this.pos;
  }

  /** Checks the next bytes of the file. */
  feed(bytes: Uint8Array): void {
    let p = 0;
    while (p < bytes.length) {
      const r = this.regions[this.index];
      if (!r) throw new CairnError('BAD_ARGUMENT', `the shard runs past its size of ${this.manifest.fileSize} bytes`);
      const take = Math.min(bytes.length - p, r.offset + r.length - this.pos);
      const piece = bytes.subarray(p, p + take);
      if (r.kind === 'padding') {
        if (!isZero(piece)) throw new CairnError('BAD_ARGUMENT', `the padding at bytes ${this.pos}-${this.pos + take - 1} of the shard is not zero`);
      } else {
        this.hash.update(piece);
      }
      p += take;
      this.pos += take;
      if (this.pos === r.offset + r.length) this.closeRegion(r);
    }
  }

  /** Checks that the whole file arrived. */
  finish(): void {
    if (this.pos !== this.manifest.fileSize) throw new CairnError('BAD_ARGUMENT', `the shard ended at ${this.pos} of ${this.manifest.fileSize} bytes`);
  }

  private closeRegion(r: ShardRegion): void {
    const got = this.hash.digest('hex');
    this.hash = createHash('sha256');
    this.index++;
    if (r.kind === 'header' && got !== this.manifest.headerSha256) {
      throw new CairnError('BAD_ARGUMENT', 'the GGUF header of the shard does not match its SHA-256');
    }
    if (r.kind === 'tensor' && got !== this.manifest.tensors[r.index].sha256) {
      throw new CairnError('BAD_ARGUMENT', `tensor "${this.manifest.tensors[r.index].name}" does not match its SHA-256`);
    }
  }
}

/**
 * Checks that the GGUF header of a shard file lists exactly the manifest's tensors at the
 * manifest's places, so the tensors a loader maps are the bytes that were hashed.
 */
export function checkShardHeader(path: string, manifest: ShardManifest): void {
  const file = readGguf(path);
  const same =
    file.tensors.length === manifest.tensors.length &&
    file.tensors.every((t, i) => {
      const want = manifest.tensors[i];
      return t.name === want.name && t.offset === want.offset && t.byteLength === want.byteLength;
    });
  if (!same) throw new CairnError('BAD_ARGUMENT', 'the GGUF header of the shard does not list the tensors its manifest states');
}

/**
 * Reads a file from disk and checks it against a manifest (size, every hash, padding, header
 * layout). Resolves when it matches; rejects with BAD_ARGUMENT naming what differs (which tensor).
 * Symbolic links are not followed.
 */
export async function verifyShardFile(path: string, manifest: ShardManifest, onProgress?: (done: number, total: number) => void): Promise<void> {
  const handle = await open(path, fsConstants.O_RDONLY | (fsConstants.O_NOFOLLOW ?? 0));
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new CairnError('BAD_ARGUMENT', 'the cached shard is not a regular file');
    if (st.size !== manifest.fileSize) throw new CairnError('BAD_ARGUMENT', `the cached shard has ${st.size} bytes, its manifest ${manifest.fileSize}`);
    const verifier = new ShardVerifier(manifest);
    const buf = Buffer.allocUnsafe(Math.min(READ_PIECE, manifest.fileSize));
    while (verifier.checked < manifest.fileSize) {
      const want = Math.min(buf.length, manifest.fileSize - verifier.checked);
      const { bytesRead } = await handle.read(buf, 0, want, verifier.checked);
      if (bytesRead === 0) break;
      verifier.feed(buf.subarray(0, bytesRead));
      onProgress?.(verifier.checked, manifest.fileSize);
    }
    verifier.finish();
  } finally {
    await handle.close();
  }
  checkShardHeader(path, manifest);
}
