/**
 * The cluster wire frame: a fixed 24-byte little-endian header followed by the payload.
 *
 * ```
 * offset size field
 *  0     1    magic 0xCA
 *  1     1    frame format version
 *  2     2    frame type (below 256: the transport's own; 256 and up: the application's)
 *  4     4    request id (0 = not part of a request/response exchange)
 *  8     4    sequence (the application's counter; the transport does not interpret it)
 * 12     1    payload type (DType: raw bytes or UTF-8 JSON)
 * 13     1    zero (reserved)
 * 14     2    flags (request / response / error response)
 * 16     8    payload length (u64)
 * 24          payload
 * ```
 *
 * The header is a multiple of 8 bytes so that, where a stream chunk starts aligned, a payload that
 * follows it directly can be viewed as f32/i32 without copying. What a raw payload holds is the
 * application's business (the mesh packs its messages with util/message-framing.ts).
 */

import { CairnError } from '../util/errors.js';

/** Bytes in every frame header. */
export const FRAME_HEADER_BYTES = 24;
/** First byte of every frame: tells a cairn stream from anything else. */
export const FRAME_MAGIC = 0xca;
/** Version of the frame layout this build reads and writes. */
export const FRAME_VERSION = 2;
/** Frame types from this value up belong to the application; lower ones are the transport's own. */
export const FIRST_APP_FRAME_TYPE = 256;

/** What a payload is, as the header's payload type byte says. */
export const DType = {
  /** Raw bytes, laid out by the application. */
  raw: 0,
  /** UTF-8 JSON text (read with frameJson). */
  json: 1,
} as const;

/** One of the payload type codes. */
export type DTypeCode = (typeof DType)[keyof typeof DType];

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
  readonly payloadLength: number;
}

/** A received frame. `payload` may be a view into a socket chunk: copy it to keep it past a reuse of that memory you do yourself. */
export interface Frame extends FrameHeader {
  readonly payload: Buffer;
}

/** What a sender chooses about a frame besides its type and payload. */
export interface FrameMeta {
  /** Default raw. */
  readonly dtype?: DTypeCode;
  readonly sequence?: number;
}

const U32_MAX = 0xffffffff;

/** True when `code` is a payload type this frame version knows. */
export function isKnownDType(code: number): code is DTypeCode {
  return code === DType.raw || code === DType.json;
}

/** The payload type's name, for messages. */
export function dtypeName(code: number): string {
  const entry = Object.entries(DType).find(([, v]) => v === code);
  return entry ? entry[0] : `unknown(${code})`;
}

/** Writes a frame header at `offset` of `target`. The fields are assumed valid (see `resolveFrameHeader`). */
export function writeFrameHeader(target: Buffer, offset: number, h: FrameHeader): void {
  target[offset] = FRAME_MAGIC;
  target[offset + 1] = FRAME_VERSION;
  target.writeUInt16LE(h.type, offset + 2);
  target.writeUInt32LE(h.requestId, offset + 4);
  target.writeUInt32LE(h.sequence, offset + 8);
  target[offset + 12] = h.dtype;
  target[offset + 13] = 0;
  target.writeUInt16LE(h.flags, offset + 14);
  target.writeUInt32LE(h.payloadLength % 0x100000000, offset + 16);
  target.writeUInt32LE(Math.floor(h.payloadLength / 0x100000000), offset + 20);
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
  const reserved = source[offset + 13];
  const flags = source.readUInt16LE(offset + 14);
  const payloadLength = source.readUInt32LE(offset + 20) * 0x100000000 + source.readUInt32LE(offset + 16);
  if (!isKnownDType(dtype)) return fail(`unknown payload type ${dtype}`);
  if (reserved !== 0) return fail('reserved header byte is not zero');
  const headerProblem = checkHeaderFields(flags, requestId, payloadLength, maxPayloadBytes);
  if (headerProblem) return fail(headerProblem);
  return { type, flags, requestId, sequence, dtype, payloadLength };
}

/**
 * Builds the header for sending `payloadLength` bytes with `meta`. Throws CairnError BAD_ARGUMENT
 * for an inconsistent choice, since that is a bug in the sender rather than something the wire did.
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
  if (!isKnownDType(dtype)) throw new CairnError('BAD_ARGUMENT', `unknown payload type ${String(dtype)}`);
  const problem = checkHeaderFields(flags, requestId, payloadLength, Number.MAX_SAFE_INTEGER);
  if (problem) throw new CairnError('BAD_ARGUMENT', `cannot send frame: ${problem}`);
  return { type, flags, requestId, sequence, dtype, payloadLength };
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
  if (frame.dtype !== DType.json)
    throw new CairnError('CLUSTER_PROTOCOL', `expected a json frame, got payload type ${dtypeName(frame.dtype)}`);
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

const EMPTY = Buffer.alloc(0);

function isU32(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= U32_MAX;
}

/** Shared checks of header fields for both sending and receiving; returns the problem or undefined. */
function checkHeaderFields(flags: number, requestId: number, payloadLength: number, maxPayloadBytes: number): string | undefined {
  if ((flags & ~KNOWN_FLAGS) !== 0) return `unknown flag bits 0x${(flags & ~KNOWN_FLAGS).toString(16)}`;
  const isRequest = (flags & FrameFlags.request) !== 0;
  const isResponse = (flags & FrameFlags.response) !== 0;
  if (isRequest && isResponse) return 'a frame cannot be both a request and a response';
  if ((flags & FrameFlags.error) !== 0 && !isResponse) return 'the error flag is only valid on a response';
  if ((isRequest || isResponse) && requestId === 0) return 'requests and responses need a non-zero request id';
  if (!isRequest && !isResponse && requestId !== 0) return 'a request id on a frame that is neither request nor response';
  if (!Number.isSafeInteger(payloadLength) || payloadLength < 0) return `payload length ${payloadLength} is not representable`;
  if (payloadLength > maxPayloadBytes) return `payload of ${payloadLength} bytes exceeds this connection's limit of ${maxPayloadBytes}`;
  return undefined;
}
