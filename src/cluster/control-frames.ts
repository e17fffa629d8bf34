/**
 * Frame types below FIRST_APP_FRAME_TYPE that the transport itself sends and answers. The
 * application never sees them.
 */

/** Transport-level frame types. */
export const ControlFrame = {
  /** Handshake step 1, both directions, in the clear: json HelloMessage. */
  hello: 1,
  /** Handshake step 2, the first encrypted frame: json IdentityMessage. */
  identity: 2,
  /** Handshake step 3: "your identity checks out"; no payload. */
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
  /** One-way, no payload: sent on a connection that has been quiet, so the peer knows it is alive. */
  keepalive: 10,
} as const;

/** Largest payload of each transport frame type (a peer that sends more is dropped before anything is allocated). */
export const CONTROL_PAYLOAD_LIMITS: Readonly<Record<number, number>> = {
  [ControlFrame.hello]: 4096,
  [ControlFrame.identity]: 64 * 1024,
  [ControlFrame.ready]: 0,
  [ControlFrame.refuse]: 4096,
  [ControlFrame.goodbye]: 4096,
  [ControlFrame.ping]: 1024 * 1024,
  [ControlFrame.pong]: 1024 * 1024,
  [ControlFrame.sink]: 32 * 1024 * 1024,
  [ControlFrame.sinkAck]: 0,
  [ControlFrame.keepalive]: 0,
};
