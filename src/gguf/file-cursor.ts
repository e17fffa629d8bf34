/**
 * A forward-only little-endian reader over a file descriptor (or the first bytes of a file held in
 * memory, such as a header fetched with a ranged read) that reads in chunks, checks every read
 * against the file's size, and so can never be made to allocate more than the file holds.
 */
import { readSync } from 'node:fs';

const CHUNK = 1 << 20;

/** Raised when a read would pass the end of the file; the GGUF reader turns it into a CairnError. */
export class TruncatedError extends Error {
  constructor(readonly wanted: number, readonly at: number) {
    super(`file ends at byte ${at} while ${wanted} more bytes were expected`);
  }
}

/** Reads bytes at a file position into a buffer; returns how many (0: none are there). */
export type ReadAt = (buf: Buffer, off: number, len: number, pos: number) => number;

/** Reads primitive values from a file, sequentially, with bounds checks. */
export class FileCursor {
  private buf: Buffer = Buffer.alloc(0);
  private bufStart = 0; // file offset of buf[0]
  private pos = 0; // absolute file offset
  private readonly decoder = new TextDecoder('utf-8', { fatal: false });

  private readonly readAt: ReadAt;

  /** `source`: a file descriptor, or a function that reads (the first bytes of) the file. */
  constructor(
    source: number | ReadAt,
    readonly fileSize: number,
  ) {
    this.readAt = typeof source === 'number' ? (buf, off, len, pos) => readSync(source, buf, off, len, pos) : source;
  }

  /** Absolute offset of the next byte to read. */
  get offset(): number {
    return this.pos;
  }

  /** Bytes between the cursor and the end of the file. */
  get remaining(): number {
    return this.fileSize - this.pos;
  }

  /** Makes n bytes from the current position available in buf; throws at end of file. */
  private ensure(n: number): number {
    if (n > this.remaining) throw new TruncatedError(n, this.fileSize);
    const rel = this.pos - this.bufStart;
    if (rel + n <= this.buf.length) return rel;
    const size = Math.min(Math.max(n, CHUNK), this.remaining);
    const next = Buffer.allocUnsafe(size);
    let got = 0;
    while (got < size) {
      const r = this.readAt(next, got, size - got, this.pos + got);
      if (r === 0) break;
      got += r;
    }
    // Fewer bytes than a chunk will do (a source that holds only the header); fewer than asked will not.
    if (got < n) throw new TruncatedError(n - got, this.pos + got);
    this.buf = got < size ? next.subarray(0, got) : next;
    this.bufStart = this.pos;
    return 0;
  }

  u8(): number {
    const r = this.ensure(1);
    this.pos += 1;
    return this.buf[r];
  }
  i8(): number {
    const r = this.ensure(1);
    this.pos += 1;
    return this.buf.readInt8(r);
  }
  u16(): number {
    const r = this.ensure(2);
    this.pos += 2;
    return this.buf.readUInt16LE(r);
  }
  i16(): number {
    const r = this.ensure(2);
    this.pos += 2;
    return this.buf.readInt16LE(r);
  }
  u32(): number {
    const r = this.ensure(4);
    this.pos += 4;
    return this.buf.readUInt32LE(r);
  }
  i32(): number {
    const r = this.ensure(4);
    this.pos += 4;
    return this.buf.readInt32LE(r);
  }
  f32(): number {
    const r = this.ensure(4);
    this.pos += 4;
    return this.buf.readFloatLE(r);
  }
  f64(): number {
    const r = this.ensure(8);
    this.pos += 8;
    return this.buf.readDoubleLE(r);
  }
  u64(): bigint {
    const r = this.ensure(8);
    this.pos += 8;
    return this.buf.readBigUInt64LE(r);
  }
  i64(): bigint {
    const r = this.ensure(8);
    this.pos += 8;
    return this.buf.readBigInt64LE(r);
  }

  /** n raw bytes, copied (callers use this for small fields and fixed-width arrays). */
  bytes(n: number): Uint8Array {
    if (n <= CHUNK) {
      const r = this.ensure(n);
      this.pos += n;
      return Uint8Array.prototype.slice.call(this.buf, r, r + n);
    }
    if (n > this.remaining) throw new TruncatedError(n, this.fileSize);
    const out = new Uint8Array(n);
    const view = Buffer.from(out.buffer, out.byteOffset, n);
    let got = 0;
    while (got < n) {
      const r = this.readAt(view, got, n - got, this.pos + got);
      if (r === 0) throw new TruncatedError(n - got, this.pos + got);
      got += r;
    }
    this.pos += n;
    return out;
  }

  /** A UTF-8 string of n bytes (invalid sequences become U+FFFD, as llama.cpp tolerates them). */
  string(n: number): string {
    if (n <= CHUNK) {
      const r = this.ensure(n);
      this.pos += n;
      return this.decoder.decode(this.buf.subarray(r, r + n));
    }
    return this.decoder.decode(this.bytes(n));
  }

  /** Moves the cursor forward to an absolute offset. */
  seek(offset: number): void {
    if (offset > this.fileSize) throw new TruncatedError(offset - this.pos, this.fileSize);
    this.pos = offset;
  }
}
