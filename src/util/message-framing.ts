/**
 * The one length-prefixed framing of cairn's multi-part messages: a list of byte strings in one
 * buffer (all integers little-endian u32):
 *
 * ```
 * count, then per part: length, the part's bytes
 * ```
 *
 * A message (packMessage) is such a list whose first part is a JSON head and whose other parts are
 * binary bodies: a mesh step's head and its token ids or hidden states, a KV operation and its
 * bytes, a saved prefix's layout and its layers. Lists of plain parts (packParts) carry, say, one
 * saved prefix per stage.
 *
 * Unpacking hands out views into the buffer (nothing is copied) and checks every count and length
 * against the bytes that are left before using it, so a hostile or damaged buffer gives a
 * CairnError saying what is wrong: never a read past the end, never an allocation sized by the
 * input, never trailing bytes taken for something. A list holds at most MAX_PARTS parts: every
 * part is an object of its own, so a count bounded only by the buffer's size (a quarter of its
 * bytes, all of them empty parts) would let a few hundred MB of input fill the heap.
 */
import { type CairnErrorCode, CairnError } from './errors.js';

/** Longest part a list can carry (its length is a u32). */
export const MAX_PART_BYTES = 0xffffffff;
/** Most parts in one list: far above any list cairn packs (a head and a few bodies; one part per layer of a saved prefix). */
export const MAX_PARTS = 1 << 16;

/** How malformed input is reported. */
export interface UnpackOptions {
  /** What the buffer is, for messages (default "message"). */
  readonly what?: string;
  /** Code of the error (default CLUSTER_PROTOCOL: most buffers come from peers). */
  readonly code?: CairnErrorCode;
}

/** Packs byte strings into one buffer: u32 count, then u32 length and bytes per part. */
export function packParts(parts: readonly ArrayBufferView[]): Buffer {
  if (parts.length > MAX_PARTS) throw new CairnError('BAD_ARGUMENT', `cannot pack ${parts.length} parts (at most ${MAX_PARTS})`);
  let size = 4;
  for (const p of parts) {
    if (p.byteLength > MAX_PART_BYTES)
      throw new CairnError('BAD_ARGUMENT', `cannot pack a part of ${p.byteLength} bytes (at most ${MAX_PART_BYTES})`);
    size += 4 + p.byteLength;
  }
  const out = Buffer.allocUnsafe(size);
  let o = out.writeUInt32LE(parts.length, 0);
  for (const p of parts) {
    o = out.writeUInt32LE(p.byteLength, o);
    out.set(bytesOf(p), o);
    o += p.byteLength;
  }
  return out;
}

/**
 * Splits a buffer made by packParts into views of its parts. With `count`, a list of another
 * length is malformed. Throws CairnError (options.code) naming the problem.
 */
export function unpackParts(buf: Uint8Array, options: UnpackOptions & { readonly count?: number } = {}): Buffer[] {
  const bytes = bytesOf(buf);
  const fail = (why: string): CairnError => malformed(options, why);
  if (bytes.length < 4) throw fail(`${bytes.length} bytes, too short for its part count`);
  const count = bytes.readUInt32LE(0);
  // Every part takes at least its 4-byte length: a larger count cannot be true (checked before the list is made).
  if (count > (bytes.length - 4) / 4) throw fail(`${count} parts announced in ${bytes.length} bytes`);
  if (options.count !== undefined && count !== options.count) throw fail(`${count} parts where ${options.count} were expected`);
  if (count > MAX_PARTS) throw fail(`${count} parts announced, at most ${MAX_PARTS} allowed`);
  const parts: Buffer[] = [];
  let o = 4;
  for (let i = 0; i < count; i++) {
    if (bytes.length - o < 4) throw fail(`part ${i} has no length (the buffer ends at byte ${bytes.length})`);
    const n = bytes.readUInt32LE(o);
    o += 4;
    if (n > bytes.length - o) throw fail(`part ${i} claims ${n} bytes, ${bytes.length - o} are left`);
    parts.push(bytes.subarray(o, o + n));
    o += n;
  }
  if (o !== bytes.length) throw fail(`${bytes.length - o} bytes after the last part`);
  return parts;
}

/** Packs a JSON head and binary bodies into one buffer (part 0: the head's JSON text; then the bodies). */
export function packMessage(head: unknown, ...bodies: readonly ArrayBufferView[]): Buffer {
  return packParts([Buffer.from(JSON.stringify(head) ?? 'null', 'utf8'), ...bodies]);
}

/**
 * Splits a buffer made by packMessage into its parsed head (not validated: the caller checks its
 * fields) and views of its bodies. With `bodies`, a message with another number of bodies is
 * malformed. Throws CairnError (options.code) naming the problem.
 */
export function unpackMessage<T = unknown>(
  buf: Uint8Array,
  options: UnpackOptions & { readonly bodies?: number } = {},
): { head: T; bodies: Buffer[] } {
  const fail = (why: string): CairnError => malformed(options, why);
  // With the number of bodies known, a list of another length fails from its count, before any list is made.
  const bytes = bytesOf(buf);
  const count = bytes.length >= 4 ? bytes.readUInt32LE(0) : 0;
  if (options.bodies !== undefined && count > 0 && count !== options.bodies + 1) throw fail(`${count - 1} bodies where ${options.bodies} were expected`);
  const parts = unpackParts(bytes, { what: options.what, code: options.code });
  if (parts.length === 0) throw fail('no head');
  if (options.bodies !== undefined && parts.length - 1 !== options.bodies)
    throw fail(`${parts.length - 1} bodies where ${options.bodies} were expected`);
  let head: T;
  try {
    head = JSON.parse(parts[0].toString('utf8')) as T;
  } catch {
    throw fail('its head is not JSON');
  }
  return { head, bodies: parts.slice(1) };
}

function malformed(options: UnpackOptions, why: string): CairnError {
  return new CairnError(options.code ?? 'CLUSTER_PROTOCOL', `malformed ${options.what ?? 'message'}: ${why}`);
}

/** A Buffer view of any typed array or DataView, sharing its memory. */
function bytesOf(view: ArrayBufferView): Buffer {
  return Buffer.isBuffer(view) ? view : Buffer.from(view.buffer, view.byteOffset, view.byteLength);
}
