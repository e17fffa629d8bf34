/**
 * Read-only file mappings for weights: one mapping per file, one zero-copy view per tensor (or
 * region). Views keep the mapping alive on their own, so closing the mapping never invalidates a
 * view that is still reachable; the file is unmapped once the handle and every view are gone.
 */
import { readFileSync, statSync } from 'node:fs';
import { CairnError } from '../util/errors.js';
import { asCairnError, isNativeAvailable, loadNative, type NativeMapHandle } from './native.js';

/** An open, read-only mapping of a file. */
export interface FileMapping {
  readonly path: string;
  /** File size in bytes. */
  readonly size: number;
  /** True when the bytes are memory-mapped (false: read into memory, no native library). */
  readonly mapped: boolean;
  /** Bytes [offset, offset + length) of the file, without copying when mapped. */
  view(offset: number, length: number): Uint8Array;
  /**
   * Bytes of the mapping the OS maps with huge pages (2 MiB on x86-64), or undefined where that
   * cannot be known (not Linux, not mapped).
   */
  largePageBytes(): number | undefined;
  /**
   * Drops [offset, offset + length) of the file from this mapping and from the OS page cache, so
   * that the next read reads it from the file again; false where the OS declined or cannot.
   */
  dropPages(offset: number, length: number): boolean;
  /**
   * Stops this process holding the whole pages of `view` (one of this mapping's views, or a part
   * of one; the OS keeps them cached, and a later read maps them again): for bytes it no longer
   * reads. False where the OS declined or cannot, or for a view of other memory.
   */
  releasePages(view: Uint8Array): boolean;
  /** Drops this handle's hold on the file; existing views stay valid. Idempotent. */
  close(): void;
}

function checkRange(path: string, size: number, offset: number, length: number): void {
  const ok = Number.isSafeInteger(offset) && Number.isSafeInteger(length) && offset >= 0 && length >= 0 && offset + length <= size;
  if (!ok) throw new CairnError('BAD_ARGUMENT', `${path}: range [${offset}, ${offset}+${length}) is outside the ${size}-byte file`);
}

class NativeFileMapping implements FileMapping {
  readonly mapped = true;
  readonly size: number;
  private handle: NativeMapHandle | undefined;

  constructor(
    readonly path: string,
    handle: NativeMapHandle,
  ) {
    this.handle = handle;
    this.size = handle.size;
  }

  view(offset: number, length: number): Uint8Array {
    if (!this.handle) throw new CairnError('BAD_ARGUMENT', `${this.path}: the mapping was closed`);
    checkRange(this.path, this.size, offset, length);
    try {
      return new Uint8Array(loadNative().mapRange(this.handle, offset, length));
    } catch (err) {
      throw asCairnError(err);
    }
  }

  largePageBytes(): number | undefined {
    if (!this.handle) return undefined;
    const bytes = loadNative().mapLargeBytes(this.handle);
    return bytes >= 0 ? bytes : undefined;
  }

  dropPages(offset: number, length: number): boolean {
    if (!this.handle) return false;
    checkRange(this.path, this.size, offset, length);
    return loadNative().mapDropRange(this.handle, offset, length);
  }

  releasePages(view: Uint8Array): boolean {
    if (!this.handle) return false;
    return loadNative().mapUnmapView(this.handle, view);
  }

  close(): void {
    if (this.handle) loadNative().mapRelease(this.handle);
    this.handle = undefined;
  }
}

/** Without the native library: the file read into memory, so the reference backend still works. */
class ReadFileMapping implements FileMapping {
  readonly mapped = false;
  readonly size: number;
  private bytes: Uint8Array | undefined;

  constructor(
    readonly path: string,
    bytes: Uint8Array,
  ) {
    this.bytes = bytes;
    this.size = bytes.length;
  }

  view(offset: number, length: number): Uint8Array {
    if (!this.bytes) throw new CairnError('BAD_ARGUMENT', `${this.path}: the mapping was closed`);
    checkRange(this.path, this.size, offset, length);
    return this.bytes.subarray(offset, offset + length);
  }

  largePageBytes(): number | undefined {
    return undefined;
  }

  dropPages(): boolean {
    return false;
  }

  releasePages(): boolean {
    return false;
  }

  close(): void {
    this.bytes = undefined;
  }
}

/** The most fs.readFileSync returns in one buffer. */
const MAX_READ_BYTES = 2 ** 31 - 1;

function readWholeFile(path: string): Uint8Array {
  let size: number;
  try {
    const st = statSync(path);
    if (st.isDirectory()) throw new CairnError('BAD_ARGUMENT', `cannot map '${path}': it is a directory, not a file`);
    size = st.size;
  } catch (err) {
    if (err instanceof CairnError) throw err;
    throw new CairnError('FILE_NOT_FOUND', `cannot map '${path}': ${(err as Error).message}`, { cause: err });
  }
  if (size === 0) throw new CairnError('BAD_ARGUMENT', `cannot map '${path}': the file is empty`);
  if (size > MAX_READ_BYTES) {
    throw new CairnError(
      'NATIVE_UNAVAILABLE',
      `cannot read '${path}' (${size} bytes) into memory; mapping it needs the native library: run \`npm run build:native\``,
    );
  }
  const buf = readFileSync(path);
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** The fallback of openMapping without the native library: the whole file read into memory. */
export function readIntoMemory(path: string): FileMapping {
  return new ReadFileMapping(path, readWholeFile(path));
}

/**
 * Opens `path` read-only. Uses mmap through the native library; without it, reads the file into
 * memory. Errors (missing file, directory, empty file) are CairnErrors naming the path.
 */
export function openMapping(path: string): FileMapping {
  if (!isNativeAvailable()) return readIntoMemory(path);
  try {
    return new NativeFileMapping(path, loadNative().mapOpen(path));
  } catch (err) {
    throw asCairnError(err);
  }
}
