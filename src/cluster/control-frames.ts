/**
 * Frame types below FIRST_APP_FRAME_TYPE that the transport itself sends and answers. The
 * application never sees them.
 */

/** Transport-level frame types. */
export const ControlFrame = {
  /** Handshake step 1, both directions: json HelloMessage. */
  hello: 1,
  /** Handshake step 2: raw 32-byte HMAC proving knowledge of the cluster key. */
  proof: 2,
  /** Handshake step 3: "your proof checks out"; no payload. */
  ready: 3,
  /** The connection is refused: json `{ code, reason }`, then the sender closes. */
  refuse: 4,
  /** Orderly close with a reason: json `{ reason }`. */
  goodbye: 5,
  /** Request answered by `pong` echoing the payload (latency, heartbeat). */
  ping: 6,
  pong: 7,
  /** Request whose payload is discarded and answered by `sinkAck` (bandwidth probe). */
  sink: 8,
  sinkAck: 9,
} as const;
