/**
 * A cluster peer written by hand on a raw socket, for tests that need to misbehave on purpose: it
 * runs the handshake step by step (hello, keys, identity, ready) with the same primitives as
 * PeerConnection, then lets the test write sealed frames, raw bytes or anything else.
 */

import type { Socket } from 'node:net';
import type { ClusterSecret } from '../cluster-key.js';
import { ControlFrame } from '../control-frames.js';
import { FrameDecoder } from '../frame-decoder.js';
import { type Frame, type FrameMeta, DType, FRAME_HEADER_BYTES, encodeFrame, jsonPayload, readFrameHeader } from '../frame.js';
import { type HelloMessage, type IdentityMessage, type PeerRole, createHello, deriveSessionKeys, handshakeTranscript } from '../handshake.js';
import { RecordOpener, RecordSealer } from '../record-layer.js';

/** Options of a raw peer. */
export interface RawPeerOptions {
  readonly role: PeerRole;
  readonly secret: ClusterSecret;
  readonly identity?: Partial<IdentityMessage>;
  /** Overrides fields of the HELLO as sent. */
  readonly hello?: Partial<HelloMessage> & Record<string, unknown>;
  /** Stop after the keys exist: do not send IDENTITY or READY (default false). */
  readonly stopAfterKeys?: boolean;
  /** Sealed records to write in the same write as this side's READY (frames right behind it). */
  readonly behindReady?: (peer: RawPeer) => Buffer[];
}

/** A hand-driven peer on a socket. */
export class RawPeer {
  /** Frames the other side sent, cleartext and decrypted alike, in order. */
  readonly frames: Frame[] = [];
  /** Every byte received, as it arrived (what a relay would see). */
  readonly received: Buffer[] = [];
  sealer: RecordSealer | undefined;
  opener: RecordOpener | undefined;
  /** Set once the peer's identity arrived and both sides sent READY. */
  open = false;
  /** Why the stream became unreadable, if it did. */
  failure: string | undefined;
  private clear: Buffer = Buffer.alloc(0);
  private readonly decoder = new FrameDecoder({ onFrame: (f) => this.onFrame(f), maxPayloadBytes: 256 << 20 });
  private readonly ownHelloBytes: Buffer;
  private readonly privateKey;
  private sentReady = false;
  private gotReady = false;

  constructor(
    readonly socket: Socket,
    private readonly options: RawPeerOptions,
  ) {
    const own = createHello(options.role, options.secret.kind);
    this.privateKey = own.privateKey;
    this.ownHelloBytes = jsonPayload({ ...own.hello, ...options.hello }).payload;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => {});
    socket.write(Buffer.concat(encodeFrame(ControlFrame.hello, { dtype: DType.json }, this.ownHelloBytes)));
  }

  /** Seals and writes a frame (after the keys exist). */
  sendFrame(type: number, meta?: FrameMeta, payload?: Buffer, flags = 0, requestId = 0): void {
    this.socket.write(Buffer.concat(this.sealFrame(type, meta, payload, flags, requestId)));
  }

  /** The sealed records of a frame, not written (for tests that replay, reorder or corrupt them). */
  sealFrame(type: number, meta?: FrameMeta, payload?: Buffer, flags = 0, requestId = 0): Buffer[] {
    return this.sealer!.sealAll(encodeFrame(type, meta, payload, flags, requestId));
  }

  private onData(chunk: Buffer): void {
    this.received.push(Buffer.from(chunk));
    if (!this.opener) {
      this.clear = Buffer.concat([this.clear, chunk]);
      if (this.clear.length < FRAME_HEADER_BYTES) return;
      const header = readFrameHeader(this.clear, 0, 1 << 20);
      if (!('type' in header)) {
        this.failure = header.message;
        return;
      }
      const end = FRAME_HEADER_BYTES + header.payloadLength;
      if (this.clear.length < end) return;
      const frame: Frame = { ...header, payload: Buffer.from(this.clear.subarray(FRAME_HEADER_BYTES, end)) };
      const rest = this.clear.subarray(end);
      this.frames.push(frame);
      if (frame.type !== ControlFrame.hello) return;
      this.derive(frame.payload);
      if (rest.length > 0) this.onData(rest);
      return;
    }
    const result = this.opener.push(chunk);
    if (result.kind === 'error') this.failure = result.error.message;
    if (result.kind === 'cleartext') this.failure = 'cleartext after the keys';
  }

  private derive(peerHello: Buffer): void {
    const hello = JSON.parse(peerHello.toString('utf8')) as HelloMessage;
    const transcript =
      this.options.role === 'client' ? handshakeTranscript(this.ownHelloBytes, peerHello) : handshakeTranscript(peerHello, this.ownHelloBytes);
    const keys = deriveSessionKeys(this.options.secret.psk, this.options.role, this.privateKey, hello.publicKey, transcript);
    this.sealer = new RecordSealer(keys.send);
    this.opener = new RecordOpener(keys.receive, (plaintext) => {
      const failure = this.decoder.push(plaintext);
      if (failure) this.failure = failure.message;
    });
    if (this.options.stopAfterKeys) return;
    const identity = { nodeId: `raw-${this.options.role}`, name: 'raw', compatibility: '', ...this.options.identity };
    this.sendFrame(ControlFrame.identity, { dtype: DType.json }, jsonPayload(identity).payload);
  }

  private onFrame(frame: Frame): void {
    this.frames.push({ ...frame, payload: Buffer.from(frame.payload) });
    if (this.options.stopAfterKeys) return;
    if (frame.type === ControlFrame.identity && !this.sentReady) {
      this.sentReady = true;
      const records = this.sealFrame(ControlFrame.ready);
      this.socket.write(Buffer.concat([...records, ...(this.options.behindReady?.(this) ?? [])]));
    } else if (frame.type === ControlFrame.ready) {
      this.gotReady = true;
    }
    this.open = this.sentReady && this.gotReady;
  }
}
