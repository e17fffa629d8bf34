/**
 * The cluster wire frame: a fixed 40-byte little-endian header followed by the payload.
 *
 * ```
 * offset size field
 *  0     1    magic 0xCA
 *  1     1    frame format version
 *  2     2    frame type (below 256: the transport's own; 256 and up: the application's)
 *  4     4    request id (0 = not part of a request/response exchange)
 *  8     4    sequence (the application's counter; the transport does not interpret it)
 * 12     1    dtype (see dtype.ts)
 * 13     1    number of dims (0..4)
 * 14     2    flags (request / response / error response)
 * 16    16    dims, u32 each, outermost first; unused ones are 0
 * 32     8    payload length (u64)
 * 40          payload
 * ```
 *
 * The header is a multiple of 8 bytes so that, where a stream chunk starts aligned, a payload that
 * follows it directly can be viewed as f32/i32 without copying.
 */

import { CairnError } from '../util/errors.js';
import { type DTypeCode, DType, dtypeName, isKnownDType, isTypedDType, typedPayloadBytes } from './dtype.js';

/** Bytes in every frame header. */
export const FRAME_HEADER_BYTES = 40;
/** First byte of every frame: tells a cairn stream from anything else. */
export const FRAME_MAGIC = 0xca;
/** Version of the frame layout this build reads and writes. */
export const FRAME_VERSION = 1;
/** Most dimensions a frame can describe. */
export const MAX_FRAME_DIMS = 4;
/** Frame types from this value up belong to the application; lower ones are the transport's own. */
export const FIRST_APP_FRAME_TYPE = 256;

/** Bits of the header's flags field. */
export const FrameFlags = {
  /** The sender waits for a frame with the RESPONSE flag and the same request id. */
  request: 1,
  /** Answers the request with the same request id. */
  response: 2,
  /** A response whose JSON payload `{ message }` says why the request failed. */
  error: 4,
} as const;

const KNOWN_FLAGS = FrameFlags.request | FrameFlags.response | FrameFlags.error;

/** Everything in a frame header except the magic and version. */
export interface FrameHeader {
  readonly type: number;
  readonly flags: number;
  readonly requestId: number;
  readonly sequence: number;
  readonly dtype: DTypeCode;
  readonly dims: readonly number[];
  readonly payloadLength: number;
}

/** A received frame. `payload` may be a view into a socket chunk: copy it to keep it past a reuse of that memory you do yourself. */
export interface Frame extends FrameHeader {
  readonly payload: Buffer;
}

/** What a sender chooses about a frame besides its type and payload. */
export interface FrameMeta {
  readonly dtype?: DTypeCode;
  /** Shape, outermost first. For typed dtypes it defaults to one dimension covering the payload. */
  readonly dims?: readonly number[];
  readonly sequence?: number;
}

const NO_DIMS: readonly number[] = Object.freeze([]);
const U32_MAX = 0xffffffff;

/** Writes a frame header at `offset` of `target`. The fields are assumed valid (see `resolveFrameHeader`). */
export function writeFrameHeader(target: Buffer, offset: number, h: FrameHeader): void {
  target[offset] = FRAME_MAGIC;
  target[offset + 1] = FRAME_VERSION;
  target.writeUInt16LE(h.type, offset + 2);
  target.writeUInt32LE(h.requestId, offset + 4);
  target.writeUInt32LE(h.sequence, offset + 8);
  target[offset + 12] = h.dtype;
  target[offset + 13] = h.dims.length;
  target.writeUInt16LE(h.flags, offset + 14);
  for (let i = 0; i < MAX_FRAME_DIMS; i++) target.writeUInt32LE(i < h.dims.length ? h.dims[i] : 0, offset + 16 + 4 * i);
  target.writeUInt32LE(h.payloadLength % 0x100000000, offset + 32);
  target.writeUInt32LE(Math.floor(h.payloadLength / 0x100000000), offset + 36);
}

/**
 * Reads and checks a header at `offset` of `source` (which must hold FRAME_HEADER_BYTES from there).
 * Returns the header, or a CairnError (code CLUSTER_PROTOCOL) saying what is wrong; never throws.
 */
export function readFrameHeader(source: Buffer, offset: number, maxPayloadBytes: number): FrameHeader | CairnError {
  const fail = (why: string): CairnError => new CairnError('CLUSTER_PROTOCOL', `malformed frame: ${why}`);
  if (source[offset] !== FRAME_MAGIC) return fail(`bad magic byte 0x${source[offset].toString(16)} (not a cairn cluster stream)`);
  const version = source[offset + 1];
  if (version !== FRAME_VERSION) return fail(`unsupported frame version ${version} (this node speaks ${FRAME_VERSION})`);
  const type = source.readUInt16LE(offset + 2);
  const requestId = source.readUInt32LE(offset + 4);
  const sequence = source.readUInt32LE(offset + 8);
  const dtype = source[offset + 12];
  const ndims = source[offset + 13];
  const flags = source.readUInt16LE(offset + 14);
  const payloadLength = source.readUInt32LE(offset + 36) * 0x100000000 + source.readUInt32LE(offset + 32);
  if (!isKnownDType(dtype)) return fail(`unknown dtype ${dtype}`);
  if (ndims > MAX_FRAME_DIMS) return fail(`${ndims} dims (at most ${MAX_FRAME_DIMS})`);
  let dims = NO_DIMS;
  if (ndims > 0) {
    const list: number[] = [];
    for (let i = 0; i < ndims; i++) list.push(source.readUInt32LE(offset + 16 + 4 * i));
    dims = list;
  }
  for (let i = ndims; i < MAX_FRAME_DIMS; i++) {
    if (source.readUInt32LE(offset + 16 + 4 * i) !== 0) return fail(`unused dim ${i} is not zero`);
  }
  const headerProblem = checkHeaderFields(flags, requestId, dtype, dims, payloadLength, maxPayloadBytes);
  if (headerProblem) return fail(headerProblem);
  return { type, flags, requestId, sequence, dtype, dims, payloadLength };
}

/**
 * Builds the header for sending `payloadLength` bytes with `meta`, filling in defaults (typed
 * dtypes without dims get one dimension). Throws CairnError BAD_ARGUMENT for an inconsistent
 * choice, since that is a bug in the sender rather than something the wire did.
 */
export function resolveFrameHeader(
  type: number,
  flags: number,
  requestId: number,
  meta: FrameMeta | undefined,
  payloadLength: number,
): FrameHeader {
  const dtype = meta?.dtype ?? DType.raw;
  const sequence = meta?.sequence ?? 0;
  if (!Number.isInteger(type) || type < 0 || type > 0xffff) throw new CairnError('BAD_ARGUMENT', `frame type ${type} is not a u16`);
  if (!isU32(sequence)) throw new CairnError('BAD_ARGUMENT', `frame sequence ${sequence} is not a u32`);
  if (!isKnownDType(dtype)) throw new CairnError('BAD_ARGUMENT', `unknown dtype ${String(dtype)}`);
  let dims = meta?.dims ?? NO_DIMS;
  if (meta?.dims === undefined && isTypedDType(dtype)) {
    const length = defaultLength(dtype, payloadLength);
    if (!Number.isInteger(length))
      throw new CairnError('BAD_ARGUMENT', `${payloadLength} bytes are not a whole number of ${dtypeName(dtype)} values`);
    dims = [length];
  }
  if (dims.length > MAX_FRAME_DIMS) throw new CairnError('BAD_ARGUMENT', `${dims.length} dims (at most ${MAX_FRAME_DIMS})`);
  for (const d of dims) if (!isU32(d)) throw new CairnError('BAD_ARGUMENT', `dimension ${d} is not a u32`);
  const problem = checkHeaderFields(flags, requestId, dtype, dims, payloadLength, Number.MAX_SAFE_INTEGER);
  if (problem) throw new CairnError('BAD_ARGUMENT', `cannot send frame: ${problem}`);
  return { type, flags, requestId, sequence, dtype, dims, payloadLength };
}

/**
 * Encodes a whole frame as buffers to write in order: a fresh header and the payload itself,
 * never copied. (Connections use FrameEncoder, which also avoids the header allocation.)
 */
export function encodeFrame(type: number, meta?: FrameMeta, payload?: ArrayBufferView, flags = 0, requestId = 0): Buffer[] {
  const body = payloadBytes(payload);
  const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  writeFrameHeader(header, 0, resolveFrameHeader(type, flags, requestId, meta, body.length));
  return body.length > 0 ? [header, body] : [header];
}

/** A byte view of any typed array or DataView, sharing its memory. */
export function payloadBytes(payload: ArrayBufferView | undefined): Buffer {
  if (payload === undefined) return EMPTY;
  if (Buffer.isBuffer(payload)) return payload;
  return Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
}

/** The payload of a json frame, parsed. Throws CairnError CLUSTER_PROTOCOL when it is not JSON. */
export function frameJson(frame: Frame): unknown {
  if (frame.dtype !== DType.json) throw new CairnError('CLUSTER_PROTOCOL', `expected a json frame, got dtype ${dtypeName(frame.dtype)}`);
  try {
    return JSON.parse(frame.payload.toString('utf8'));
  } catch (err) {
    throw new CairnError('CLUSTER_PROTOCOL', `frame payload is not valid JSON: ${(err as Error).message}`);
  }
}

/** JSON-encodes `value` as a payload with the meta of a json frame. */
export function jsonPayload(value: unknown): { meta: FrameMeta; payload: Buffer } {
  return { meta: { dtype: DType.json }, payload: Buffer.from(JSON.stringify(value), 'utf8') };
}

/**
 * The payload as a Float32Array (dtype f32). A view when the payload is 4-byte aligned in memory,
 * otherwise a copy (typed arrays cannot view unaligned memory).
 */
export function frameFloat32(frame: Frame): Float32Array {
  expectDType(frame, DType.f32);
  const p = frame.payload;
  if (p.byteOffset % 4 === 0) return new Float32Array(p.buffer, p.byteOffset, p.length / 4);
  return new Float32Array(Uint8Array.prototype.slice.call(p).buffer);
}

/** The payload as an Int32Array (dtype i32); a view when aligned, otherwise a copy. */
export function frameInt32(frame: Frame): Int32Array {
  expectDType(frame, DType.i32);
  const p = frame.payload;
  if (p.byteOffset % 4 === 0) return new Int32Array(p.buffer, p.byteOffset, p.length / 4);
  return new Int32Array(Uint8Array.prototype.slice.call(p).buffer);
}

/** The payload as f16 bit patterns in a Uint16Array (dtype f16); a view when aligned, otherwise a copy. */
export function frameFloat16Bits(frame: Frame): Uint16Array {
  expectDType(frame, DType.f16);
  const p = frame.payload;
  if (p.byteOffset % 2 === 0) return new Uint16Array(p.buffer, p.byteOffset, p.length / 2);
  return new Uint16Array(Uint8Array.prototype.slice.call(p).buffer);
}

const EMPTY = Buffer.alloc(0);

function expectDType(frame: Frame, dtype: DTypeCode): void {
  if (frame.dtype !== dtype)
    throw new CairnError('CLUSTER_PROTOCOL', `expected a ${dtypeName(dtype)} frame, got ${dtypeName(frame.dtype)}`);
}

function isU32(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= U32_MAX;
}

function defaultLength(dtype: DTypeCode, payloadLength: number): number {
  const perValue = typedPayloadBytes(dtype, [1]);
  if (typeof perValue === 'number') return payloadLength / perValue;
  // Q8_0: whole blocks of 32 values.
  return (payloadLength / (typedPayloadBytes(dtype, [32]) as number)) * 32;
}

/** Shared checks of header fields for both sending and receiving; returns the problem or undefined. */
function checkHeaderFields(
  flags: number,
  requestId: number,
  dtype: DTypeCode,
  dims: readonly number[],
  payloadLength: number,
  maxPayloadBytes: number,
): string | undefined {
  if ((flags & ~KNOWN_FLAGS) !== 0) return `unknown flag bits 0x${(flags & ~KNOWN_FLAGS).toString(16)}`;
  const isRequest = (flags & FrameFlags.request) !== 0;
  const isResponse = (flags & FrameFlags.response) !== 0;
  if (isRequest && isResponse) return 'a frame cannot be both a request and a response';
  if ((flags & FrameFlags.error) !== 0 && !isResponse) return 'the error flag is only valid on a response';
  if ((isRequest || isResponse) && requestId === 0) return 'requests and responses need a non-zero request id';
  if (!isRequest && !isResponse && requestId !== 0) return 'a request id on a frame that is neither request nor response';
  if (!Number.isSafeInteger(payloadLength) || payloadLength < 0) return `payload length ${payloadLength} is not representable`;
  if (payloadLength > maxPayloadBytes) return `payload of ${payloadLength} bytes exceeds this connection's limit of ${maxPayloadBytes}`;
  if (isTypedDType(dtype)) {
    const expected = typedPayloadBytes(dtype, dims);
    if (typeof expected === 'string') return expected;
    if (expected !== payloadLength) {
      return `${dtypeName(dtype)} shape [${dims.join(', ')}] needs ${expected} payload bytes, the frame has ${payloadLength}`;
    }
  }
  return undefined;
}
