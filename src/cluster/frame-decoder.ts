/**
 * Incremental frame decoding from a byte stream cut anywhere (TCP delivers chunks of any size).
 * A payload that lies whole inside one chunk is handed out as a view of that chunk; one split
 * across chunks is gathered into a single buffer of exactly the declared size, allocated only after
 * the header has passed every check, so a hostile length can never make us allocate beyond the limit.
 */

import { CairnError } from '../util/errors.js';
import { type Frame, type FrameHeader, FRAME_HEADER_BYTES, readFrameHeader } from './frame.js';

/**
 * Default payload limit of a frame type nobody sized: room for a large message, far from what a
 * hostile peer could make a node hold per connection. Types that carry more (a slot's KV cache)
 * get their own limit (FrameDecoderOptions.limitFor).
 */
export const DEFAULT_MAX_PAYLOAD_BYTES = 64 * 1024 * 1024;

/** How a FrameDecoder is set up. */
export interface FrameDecoderOptions {
  /** Called for every complete frame, in stream order. */
  readonly onFrame: (frame: Frame) => void;
  /** Frames announcing a longer payload are rejected before anything is allocated. */
  readonly maxPayloadBytes?: number;
  /**
   * The largest payload accepted for a frame of this type and flags (checked before anything is
   * allocated); undefined means maxPayloadBytes. It never raises the limit above maxPayloadBytes.
   */
  readonly limitFor?: (type: number, flags: number) => number | undefined;
  /** Allocates the buffer for a payload split across chunks (tests substitute a spy). */
  readonly allocate?: (bytes: number) => Buffer;
}

/** Turns stream chunks into frames; after a malformed frame it stays failed and reports the same error. */
export class FrameDecoder {
  private readonly onFrame: (frame: Frame) => void;
  private readonly allocate: (bytes: number) => Buffer;
  private readonly limitFor: ((type: number, flags: number) => number | undefined) | undefined;
  private maxPayload: number;
  /** Holds a header that arrived in pieces. */
  private readonly headerScratch = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  private headerFill = 0;
  /** The header whose payload is being gathered, if any. */
  private pending: FrameHeader | undefined;
  private payload: Buffer | undefined;
  private payloadFill = 0;
  private failure: CairnError | undefined;

  constructor(options: FrameDecoderOptions) {
    this.onFrame = options.onFrame;
    this.allocate = options.allocate ?? ((n) => Buffer.allocUnsafe(n));
    this.maxPayload = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
    this.limitFor = options.limitFor;
  }

  /** The current payload limit in bytes. */
  get maxPayloadBytes(): number {
    return this.maxPayload;
  }

  /** Changes the payload limit for frames whose header has not been read yet. */
  set maxPayloadBytes(bytes: number) {
    this.maxPayload = bytes;
  }

  /** The error that stopped decoding, if any. */
  get error(): CairnError | undefined {
    return this.failure;
  }

  /** Bytes of an unfinished frame held so far (0 between frames). */
  get bufferedBytes(): number {
    return this.headerFill + this.payloadFill;
  }

  /**
   * Consumes a chunk, calling onFrame for each frame it completes. Returns the error that made the
   * stream unreadable (and ignores all later input), or undefined. Exceptions thrown by onFrame
   * propagate to the caller and leave the rest of that chunk unread, so the stream must then be
   * abandoned; decoding itself never throws.
   */
  push(chunk: Buffer): CairnError | undefined {
    if (this.failure) return this.failure;
    let pos = 0;
    const end = chunk.length;
    while (pos < end) {
      if (this.pending) {
        pos = this.gatherPayload(chunk, pos);
        continue;
      }
      let header: FrameHeader | CairnError;
      if (this.headerFill === 0 && end - pos >= FRAME_HEADER_BYTES) {
        header = readFrameHeader(chunk, pos, this.maxPayload);
        pos += FRAME_HEADER_BYTES;
      } else {
        const take = Math.min(FRAME_HEADER_BYTES - this.headerFill, end - pos);
        chunk.copy(this.headerScratch, this.headerFill, pos, pos + take);
        this.headerFill += take;
        pos += take;
        if (this.headerFill < FRAME_HEADER_BYTES) break;
        this.headerFill = 0;
        header = readFrameHeader(this.headerScratch, 0, this.maxPayload);
      }
      if ('type' in header && this.limitFor) {
        const limit = this.limitFor(header.type, header.flags);
        if (limit !== undefined && header.payloadLength > limit) {
          header = new CairnError(
            'CLUSTER_PROTOCOL',
            `malformed frame: a payload of ${header.payloadLength} bytes exceeds the limit of ${limit} for frame type ${header.type}`,
          );
        }
      }
      if (!('type' in header)) {
        this.failure = header;
        return header;
      }
      const length = header.payloadLength;
      if (end - pos >= length) {
        // Whole payload in this chunk: hand out a view, no copy.
        const payload = chunk.subarray(pos, pos + length);
        pos += length;
        this.onFrame(withPayload(header, payload));
      } else {
        this.pending = header;
        this.payload = this.allocate(length);
        this.payloadFill = 0;
      }
    }
    return undefined;
  }

  private gatherPayload(chunk: Buffer, pos: number): number {
    const header = this.pending!;
    const target = this.payload!;
    const take = Math.min(header.payloadLength - this.payloadFill, chunk.length - pos);
    chunk.copy(target, this.payloadFill, pos, pos + take);
    this.payloadFill += take;
    if (this.payloadFill === header.payloadLength) {
      this.pending = undefined;
      this.payload = undefined;
      this.payloadFill = 0;
      this.onFrame(withPayload(header, target));
    }
    return pos + take;
  }
}

/** A frame object of one fixed shape (cheaper for the engine than a spread). */
function withPayload(h: FrameHeader, payload: Buffer): Frame {
  return {
    type: h.type,
    flags: h.flags,
    requestId: h.requestId,
    sequence: h.sequence,
    dtype: h.dtype,
    payloadLength: h.payloadLength,
    payload,
  };
}
