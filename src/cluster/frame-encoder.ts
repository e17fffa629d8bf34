/**
 * Per-connection frame encoding without per-frame allocation. Headers (and small payloads, which
 * are cheaper to copy than to hand to the kernel as a second buffer) are carved from a slab that
 * only moves forward: a slice handed to socket.write may sit in the write queue for a while, so it
 * is never overwritten; a fresh slab replaces an exhausted one and the old one is freed once the
 * queue lets go of it. Large payloads are never copied.
 */

import { type FrameHeader, FRAME_HEADER_BYTES, writeFrameHeader } from './frame.js';

/** Payloads up to this size travel in the same buffer as their header (one write, one syscall). */
export const INLINE_PAYLOAD_BYTES = 16 * 1024;
const SLAB_BYTES = 256 * 1024;

/** Encodes frames into buffers ready for socket writes. */
export class FrameEncoder {
  private slab = Buffer.allocUnsafe(SLAB_BYTES);
  private used = 0;

  /**
   * Returns the frame as one buffer (header plus a copied small payload) or two (header, then the
   * caller's payload itself). The caller must not modify a large payload until it has been written.
   */
  encode(header: FrameHeader, payload: Buffer): Buffer | [Buffer, Buffer] {
    const inline = payload.length <= INLINE_PAYLOAD_BYTES;
    const size = FRAME_HEADER_BYTES + (inline ? payload.length : 0);
    // Keep slices 8-byte aligned so an inline f32/i32 payload stays viewable after a local copy.
    const start = (this.used + 7) & ~7;
    if (start + size > SLAB_BYTES) {
      this.slab = Buffer.allocUnsafe(SLAB_BYTES);
      this.used = 0;
      return this.encode(header, payload);
    }
    const out = this.slab.subarray(start, start + size);
    this.used = start + size;
    writeFrameHeader(out, 0, header);
    if (!inline) return [out, payload];
    payload.copy(out, FRAME_HEADER_BYTES);
    return out;
  }
}
