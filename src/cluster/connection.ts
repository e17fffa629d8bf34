/**
 * An authenticated connection to one peer: runs the handshake, then sends and delivers frames,
 * correlates requests with responses, answers the transport's own pings, and reports how and why
 * it closed. Nothing a peer sends can throw out of here: a malformed frame closes this connection
 * (telling the peer why) and leaves every other connection alone.
 */

import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { CairnError } from '../util/errors.js';
import { ControlFrame } from './control-frames.js';
import { DEFAULT_MAX_PAYLOAD_BYTES, FrameDecoder } from './frame-decoder.js';
import { FrameEncoder } from './frame-encoder.js';
import {
  type Frame,
  type FrameMeta,
  FIRST_APP_FRAME_TYPE,
  FrameFlags,
  frameJson,
  jsonPayload,
  payloadBytes,
  resolveFrameHeader,
} from './frame.js';
import {
  type HelloMessage,
  type PeerRole,
  type Refusal,
  checkPeerHello,
  createHello,
  handshakeProof,
  handshakeTranscript,
  normalizeClusterKey,
  refusalError,
  validateHello,
  validateRefusal,
  verifyProof,
} from './handshake.js';

/** What every connection needs to know about this node and the cluster. */
export interface ConnectionOptions {
  /** This node's id (see identity.ts). */
  readonly nodeId: string;
  /** This node's human-readable name. */
  readonly name?: string;
  /** Shared secret of the cluster. Without one, only loopback connections are possible. */
  readonly clusterKey?: string | Uint8Array;
  /** Must equal the peer's exactly (the mesh puts model hash and version here). Default "". */
  readonly compatibility?: string;
  /** Sent to the peer in the handshake (e.g. the node's info record). */
  readonly info?: Record<string, unknown>;
  /** A peer that has not completed the handshake by then is dropped. Default 5000 ms. */
  readonly handshakeTimeoutMs?: number;
  /** Default timeout of request(). Default 30000 ms. */
  readonly requestTimeoutMs?: number;
  /** Largest payload accepted once authenticated. Default 1 GiB. */
  readonly maxPayloadBytes?: number;
}

/** Who is on the other end, as learned in the handshake. */
export interface PeerIdentity {
  readonly nodeId: string;
  readonly name: string;
  readonly info: Record<string, unknown> | undefined;
  /** The peer's address and port as seen by this socket. */
  readonly address: string;
  readonly port: number;
}

/** How a connection ended. */
export interface CloseInfo {
  readonly reason: string;
  /** Set when the connection ended because something went wrong (peer's fault or the network's). */
  readonly error?: CairnError;
  /** True when the peer ended it (goodbye, refusal or its socket closing). */
  readonly byPeer: boolean;
}

/** Options of a single request. */
export interface RequestOptions {
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

/** Events of a PeerConnection. */
export interface PeerConnectionEvents {
  /** An application frame that is not part of a request (type >= FIRST_APP_FRAME_TYPE). */
  frame: [frame: Frame];
  /** An application request; answer it with reply() or replyError(). */
  request: [frame: Frame];
  /** Emitted once, after an open connection closed. */
  close: [info: CloseInfo];
}

/** Before authentication a peer may send only small frames. */
const HANDSHAKE_MAX_PAYLOAD_BYTES = 64 * 1024;
/** How long an orderly close waits for the peer to close its side. */
const CLOSE_GRACE_MS = 2000;

interface PendingRequest {
  readonly resolve: (frame: Frame) => void;
  readonly reject: (err: Error) => void;
  readonly timer: NodeJS.Timeout;
  readonly cleanup?: () => void;
}

type State = 'handshake' | 'open' | 'closing' | 'closed';

/** An authenticated, framed connection to one peer. Create with connectPeer() or ClusterServer. */
export class PeerConnection extends EventEmitter<PeerConnectionEvents> {
  /** Which end of the TCP connection this side is. */
  readonly role: PeerRole;
  /** Resolves once the handshake succeeded; rejects with the reason it failed. */
  readonly ready: Promise<void>;

  private readonly socket: Socket;
  private readonly key: Buffer | undefined;
  private readonly options: ConnectionOptions;
  private readonly decoder: FrameDecoder;
  private readonly encoder = new FrameEncoder();
  private readonly pending = new Map<number, PendingRequest>();
  private state: State = 'handshake';
  private nextRequestId = 1;
  private lastReceived = performance.now();
  private closeReason: CloseInfo | undefined;
  private socketError: Error | undefined;
  private closeTimer: NodeJS.Timeout | undefined;

  private readonly ownHello: HelloMessage;
  private readonly ownHelloBytes: Buffer;
  private peerHello: HelloMessage | undefined;
  private transcript: Buffer | undefined;
  private peerVerified = false;
  private handshakeTimer: NodeJS.Timeout | undefined;
  private settleReady!: (err?: Error) => void;
  private identity: PeerIdentity | undefined;
  private held: Frame[] | undefined;

  /** Takes over a connected socket and starts the handshake (internal: use connectPeer or ClusterServer). */
  constructor(socket: Socket, role: PeerRole, options: ConnectionOptions) {
    super();
    this.socket = socket;
    this.role = role;
    this.options = options;
    this.key = normalizeClusterKey(options.clusterKey);
    this.ready = new Promise<void>((resolve, reject) => {
      this.settleReady = (err) => (err ? reject(err) : resolve());
    });
    // A failed handshake is reported through `ready`; keep an unobserved rejection from crashing.
    this.ready.catch(() => {});
    this.decoder = new FrameDecoder({ onFrame: (f) => this.onFrame(f), maxPayloadBytes: HANDSHAKE_MAX_PAYLOAD_BYTES });

    socket.setNoDelay(true);
    socket.setKeepAlive(true, 10_000);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => {
      this.socketError ??= err;
    });
    socket.on('close', () => this.onSocketClose());

    this.ownHello = createHello(
      role,
      options.nodeId,
      options.name ?? options.nodeId,
      options.compatibility ?? '',
      this.key !== undefined,
      options.info,
    );
    const hello = jsonPayload(this.ownHello);
    this.ownHelloBytes = hello.payload;
    this.handshakeTimer = setTimeout(
      () => this.refuse({ code: 'timeout', reason: `handshake not completed within ${this.options.handshakeTimeoutMs ?? 5000} ms` }),
      options.handshakeTimeoutMs ?? 5000,
    );
    this.writeControl(ControlFrame.hello, hello.meta, hello.payload);
  }

  /** The peer, once the handshake has succeeded. */
  get peer(): PeerIdentity {
    if (!this.identity) throw new CairnError('CLUSTER_CLOSED', 'the handshake has not completed');
    return this.identity;
  }

  /** True while frames can be sent. */
  get isOpen(): boolean {
    return this.state === 'open';
  }

  /** performance.now() of the last bytes received from the peer (liveness for heartbeats). */
  get lastReceivedAt(): number {
    return this.lastReceived;
  }

  /** How the connection ended, once it has. */
  get closeInfo(): CloseInfo | undefined {
    return this.state === 'closed' ? this.closeReason : undefined;
  }

  /** Requests sent and not yet answered. */
  get pendingRequests(): number {
    return this.pending.size;
  }

  /** Largest payload accepted from the peer. */
  get maxPayloadBytes(): number {
    return this.decoder.maxPayloadBytes;
  }

  /** Changes the largest payload accepted from the peer (applies from the next frame header). */
  set maxPayloadBytes(bytes: number) {
    if (!Number.isSafeInteger(bytes) || bytes < 0) throw new CairnError('BAD_ARGUMENT', `payload limit ${bytes} is not a byte count`);
    this.decoder.maxPayloadBytes = bytes;
  }

  /**
   * Sends an application frame. Returns false when the socket's buffer is full: the frame is still
   * queued, but a sender of many or large frames should then wait for drained() (or use write()).
   */
  send(type: number, meta?: FrameMeta, payload?: ArrayBufferView): boolean {
    this.assertAppType(type);
    this.assertOpen();
    return this.writeFrame(type, 0, 0, meta, payload);
  }

  /** Sends an application frame and resolves once the socket can take more (backpressure). */
  async write(type: number, meta?: FrameMeta, payload?: ArrayBufferView): Promise<void> {
    if (!this.send(type, meta, payload)) await this.drained();
  }

  /** Resolves when the socket's write buffer has drained (at once if it is not full). */
  drained(): Promise<void> {
    if (!this.socket.writableNeedDrain || this.state === 'closed') return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        resolve();
      };
      this.socket.on('drain', done);
      this.socket.on('close', done);
    });
  }

  /**
   * Sends a request and resolves with the peer's response frame. Rejects with CLUSTER_TIMEOUT,
   * CLUSTER_CLOSED, ABORTED, or CLUSTER_REMOTE when the peer answered with an error.
   */
  request(type: number, meta?: FrameMeta, payload?: ArrayBufferView, options?: RequestOptions): Promise<Frame> {
    this.assertAppType(type);
    return this.sendRequest(type, meta, payload, options);
  }

  /** Answers a request frame received in a 'request' event. */
  reply(to: Frame, type: number, meta?: FrameMeta, payload?: ArrayBufferView): boolean {
    this.assertAppType(type);
    return this.sendResponse(to, type, FrameFlags.response, meta, payload);
  }

  /** Answers a request with an error; the requester's promise rejects with CLUSTER_REMOTE and this message. */
  replyError(to: Frame, message: string): boolean {
    const body = jsonPayload({ message });
    return this.sendResponse(to, to.type, FrameFlags.response | FrameFlags.error, body.meta, body.payload);
  }

  /** Round trip of a transport ping carrying `payloadBytes` bytes, in milliseconds. */
  async ping(payloadBytes = 0, options?: RequestOptions): Promise<number> {
    const start = performance.now();
    await this.sendRequest(ControlFrame.ping, undefined, payloadBytes > 0 ? Buffer.alloc(payloadBytes) : undefined, options);
    return performance.now() - start;
  }

  /** Sends `payload` to be discarded by the peer and resolves when it has all arrived (bandwidth probes). */
  async sink(payload: ArrayBufferView, options?: RequestOptions): Promise<void> {
    await this.sendRequest(ControlFrame.sink, undefined, payload, options);
  }

  /** Closes in an orderly way: the peer is told `reason`, pending requests fail with CLUSTER_CLOSED. */
  close(reason = 'closed by this node'): void {
    if (this.state === 'closed' || this.state === 'closing') return;
    if (this.state === 'handshake') {
      this.refuse({ code: 'shutting-down', reason });
      return;
    }
    const goodbye = jsonPayload({ reason });
    this.writeControl(ControlFrame.goodbye, goodbye.meta, goodbye.payload);
    this.beginClose({ reason, byPeer: false });
  }

  /** Drops the connection at once, without telling the peer. */
  destroy(reason = 'destroyed by this node', error?: CairnError): void {
    if (this.state === 'closed') return;
    this.closeReason ??= { reason, error, byPeer: false };
    this.socket.destroy();
  }

  // ---- receiving ----

  private onData(chunk: Buffer): void {
    this.lastReceived = performance.now();
    let failure: CairnError | undefined;
    try {
      failure = this.decoder.push(chunk);
    } catch (err) {
      // An application handler threw while handling a frame: that frame's stream position is lost.
      const error = new CairnError('CLUSTER_PROTOCOL', `frame handler failed: ${(err as Error).message}`, { cause: err });
      this.failWith(error, `frame handler failed: ${(err as Error).message}`);
      return;
    }
    if (failure) this.failWith(failure, failure.message);
  }

  private onFrame(frame: Frame): void {
    if (this.state === 'closed') return;
    if (this.state === 'handshake') {
      this.onHandshakeFrame(frame);
      return;
    }
    if (this.held) {
      this.held.push(frame);
      return;
    }
    this.dispatch(frame);
  }

  /** Delivers frames that arrived right behind the handshake, once the owner had a chance to listen. */
  private releaseHeldFrames(): void {
    const frames = this.held ?? [];
    this.held = undefined;
    for (const frame of frames) {
      if (this.state === 'closed') return;
      try {
        this.dispatch(frame);
      } catch (err) {
        this.failWith(
          new CairnError('CLUSTER_PROTOCOL', `frame handler failed: ${(err as Error).message}`, { cause: err }),
          `frame handler failed: ${(err as Error).message}`,
        );
        return;
      }
    }
  }

  private dispatch(frame: Frame): void {
    if ((frame.flags & FrameFlags.response) !== 0) {
      this.onResponse(frame);
      return;
    }
    if (frame.type < FIRST_APP_FRAME_TYPE) {
      this.onControlFrame(frame);
      return;
    }
    if ((frame.flags & FrameFlags.request) !== 0) {
      this.onRequest(frame);
      return;
    }
    this.emit('frame', frame);
  }

  private onRequest(frame: Frame): void {
    if (this.listenerCount('request') === 0) {
      this.replyError(frame, `no handler for requests of frame type ${frame.type}`);
      return;
    }
    try {
      this.emit('request', frame);
    } catch (err) {
      // A throwing handler fails its request, not the connection.
      if (this.state === 'open') this.replyError(frame, (err as Error).message);
    }
  }

  private onResponse(frame: Frame): void {
    const entry = this.pending.get(frame.requestId);
    // A response to a request that timed out or was aborted: nothing waits for it any more.
    if (!entry) return;
    this.pending.delete(frame.requestId);
    clearTimeout(entry.timer);
    entry.cleanup?.();
    if ((frame.flags & FrameFlags.error) !== 0) {
      let message = 'the peer failed the request';
      try {
        const body = frameJson(frame) as { message?: unknown };
        if (typeof body?.message === 'string') message = body.message;
      } catch {
        // Keep the generic message: the error body itself was unreadable.
      }
      entry.reject(new CairnError('CLUSTER_REMOTE', `peer ${this.identity?.name ?? ''} answered with an error: ${message}`));
      return;
    }
    entry.resolve(frame);
  }

  private onControlFrame(frame: Frame): void {
    const isRequest = (frame.flags & FrameFlags.request) !== 0;
    if (frame.type === ControlFrame.ping && isRequest) {
      this.sendResponse(frame, ControlFrame.pong, FrameFlags.response, undefined, frame.payload);
    } else if (frame.type === ControlFrame.sink && isRequest) {
      this.sendResponse(frame, ControlFrame.sinkAck, FrameFlags.response, undefined, undefined);
    } else if (frame.type === ControlFrame.goodbye || frame.type === ControlFrame.refuse) {
      let reason = 'no reason given';
      try {
        const body = frameJson(frame) as { reason?: unknown };
        if (typeof body?.reason === 'string') reason = body.reason;
      } catch {
        // An unreadable goodbye still means goodbye.
      }
      this.beginClose({ reason: `peer closed the connection: ${reason}`, byPeer: true });
    } else {
      this.failWith(
        new CairnError('CLUSTER_PROTOCOL', `unexpected transport frame type ${frame.type}`),
        `unexpected transport frame type ${frame.type}`,
      );
    }
  }

  // ---- handshake ----

  private onHandshakeFrame(frame: Frame): void {
    if (frame.type === ControlFrame.refuse) {
      let body: unknown;
      try {
        body = frameJson(frame);
      } catch {
        body = undefined;
      }
      const refusal = validateRefusal(body);
      this.failHandshake(refusalError(refusal, true), `peer refused: ${refusal.reason}`, true);
      return;
    }
    if (!this.peerHello) {
      if (frame.type !== ControlFrame.hello) {
        this.refuse({ code: 'protocol', reason: `expected a hello, got frame type ${frame.type}` });
        return;
      }
      let parsed: HelloMessage | string;
      try {
        parsed = validateHello(frameJson(frame));
      } catch (err) {
        parsed = (err as Error).message;
      }
      if (typeof parsed === 'string') {
        this.refuse({ code: 'protocol', reason: parsed });
        return;
      }
      const refusal = checkPeerHello(this.ownHello, parsed);
      if (refusal) {
        this.refuse(refusal);
        return;
      }
      this.peerHello = parsed;
      const peerBytes = Buffer.from(frame.payload);
      this.transcript =
        this.role === 'client' ? handshakeTranscript(this.ownHelloBytes, peerBytes) : handshakeTranscript(peerBytes, this.ownHelloBytes);
      this.writeControl(ControlFrame.proof, undefined, handshakeProof(this.key, this.role, this.transcript));
      return;
    }
    if (!this.peerVerified) {
      if (frame.type !== ControlFrame.proof) {
        this.refuse({ code: 'protocol', reason: `expected a proof, got frame type ${frame.type}` });
        return;
      }
      if (!verifyProof(this.key, this.peerHello.role, this.transcript!, frame.payload)) {
        this.refuse({
          code: 'auth',
          reason: 'the cluster keys differ (the proof of the key did not verify); give both nodes the same key',
        });
        return;
      }
      this.peerVerified = true;
      this.writeControl(ControlFrame.ready);
      return;
    }
    if (frame.type !== ControlFrame.ready) {
      this.refuse({ code: 'protocol', reason: `expected ready, got frame type ${frame.type}` });
      return;
    }
    this.open();
  }

  private open(): void {
    clearTimeout(this.handshakeTimer);
    this.handshakeTimer = undefined;
    this.state = 'open';
    this.decoder.maxPayloadBytes = this.options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
    const hello = this.peerHello!;
    this.identity = {
      nodeId: hello.nodeId,
      name: hello.name,
      info: hello.info,
      address: this.socket.remoteAddress ?? '',
      port: this.socket.remotePort ?? 0,
    };
    // Frames behind the peer's READY (possibly in this very chunk) wait until whoever awaits
    // `ready` has attached its listeners: promise continuations run before setImmediate.
    this.held = [];
    setImmediate(() => this.releaseHeldFrames());
    this.settleReady();
  }

  /** Refuses the handshake: tells the peer why, then closes. */
  private refuse(refusal: Refusal): void {
    if (this.state !== 'handshake') return;
    const body = jsonPayload(refusal);
    this.writeControl(ControlFrame.refuse, body.meta, body.payload);
    this.failHandshake(refusalError(refusal, false), refusal.reason, false);
  }

  private failHandshake(error: CairnError, reason: string, byPeer: boolean): void {
    clearTimeout(this.handshakeTimer);
    this.handshakeTimer = undefined;
    this.closeReason ??= { reason, error, byPeer };
    this.settleReady(error);
    this.beginClose(this.closeReason);
  }

  // ---- closing ----

  /** Closes after a protocol violation, telling the peer why when the stream still allows it. */
  private failWith(error: CairnError, reason: string): void {
    if (this.state === 'handshake') {
      this.refuse({ code: 'protocol', reason });
      return;
    }
    if (this.state !== 'open') return;
    const goodbye = jsonPayload({ reason });
    this.writeControl(ControlFrame.goodbye, goodbye.meta, goodbye.payload);
    this.beginClose({ reason, error, byPeer: false });
  }

  private beginClose(info: CloseInfo): void {
    if (this.state === 'closed' || this.state === 'closing') return;
    this.closeReason ??= info;
    this.state = 'closing';
    this.socket.end();
    this.closeTimer = setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS);
    this.closeTimer.unref();
  }

  private onSocketClose(): void {
    const wasOpen = this.identity !== undefined;
    clearTimeout(this.closeTimer);
    clearTimeout(this.handshakeTimer);
    if (!this.closeReason) {
      const why = this.socketError ? `connection lost: ${this.socketError.message}` : 'the peer closed the connection';
      this.closeReason = { reason: why, error: new CairnError('CLUSTER_CLOSED', why, { cause: this.socketError }), byPeer: true };
    }
    this.state = 'closed';
    if (!wasOpen) {
      this.settleReady(
        this.closeReason.error ?? new CairnError('CLUSTER_CLOSED', `connection closed during the handshake: ${this.closeReason.reason}`),
      );
    }
    const pendingError = new CairnError('CLUSTER_CLOSED', `connection closed before the response arrived: ${this.closeReason.reason}`);
    for (const entry of this.pending.values()) {
      clearTimeout(entry.timer);
      entry.cleanup?.();
      entry.reject(pendingError);
    }
    this.pending.clear();
    if (wasOpen) this.emit('close', this.closeReason);
  }

  // ---- sending ----

  private sendRequest(
    type: number,
    meta: FrameMeta | undefined,
    payload: ArrayBufferView | undefined,
    options?: RequestOptions,
  ): Promise<Frame> {
    if (this.state !== 'open') return Promise.reject(this.closedError());
    if (options?.signal?.aborted) return Promise.reject(new CairnError('ABORTED', 'request aborted before it was sent'));
    const requestId = this.allocateRequestId();
    const timeoutMs = options?.timeoutMs ?? this.options.requestTimeoutMs ?? 30_000;
    return new Promise<Frame>((resolve, reject) => {
      let cleanup: (() => void) | undefined;
      const timer = setTimeout(() => {
        this.pending.delete(requestId);
        cleanup?.();
        reject(new CairnError('CLUSTER_TIMEOUT', `no response to request ${requestId} (frame type ${type}) within ${timeoutMs} ms`));
      }, timeoutMs);
      const signal = options?.signal;
      if (signal) {
        const onAbort = (): void => {
          this.pending.delete(requestId);
          clearTimeout(timer);
          reject(new CairnError('ABORTED', `request ${requestId} aborted`));
        };
        signal.addEventListener('abort', onAbort, { once: true });
        cleanup = () => signal.removeEventListener('abort', onAbort);
      }
      this.pending.set(requestId, { resolve, reject, timer, cleanup });
      try {
        this.writeFrame(type, FrameFlags.request, requestId, meta, payload);
      } catch (err) {
        this.pending.delete(requestId);
        clearTimeout(timer);
        cleanup?.();
        reject(err as Error);
      }
    });
  }

  private sendResponse(to: Frame, type: number, flags: number, meta: FrameMeta | undefined, payload: ArrayBufferView | undefined): boolean {
    if ((to.flags & FrameFlags.request) === 0) throw new CairnError('BAD_ARGUMENT', 'reply() needs a request frame');
    // The requester may be gone; a reply to a closed connection has nobody to reach.
    if (this.state !== 'open') return false;
    return this.writeFrame(type, flags, to.requestId, meta, payload);
  }

  private writeControl(type: number, meta?: FrameMeta, payload?: Buffer): void {
    if (this.socket.destroyed || this.socket.writableEnded) return;
    this.writeFrame(type, 0, 0, meta, payload);
  }

  private writeFrame(
    type: number,
    flags: number,
    requestId: number,
    meta: FrameMeta | undefined,
    payload: ArrayBufferView | undefined,
  ): boolean {
    const body = payloadBytes(payload);
    const header = resolveFrameHeader(type, flags, requestId, meta, body.length);
    const encoded = this.encoder.encode(header, body);
    if (Buffer.isBuffer(encoded)) return this.socket.write(encoded);
    // Header and payload leave in one writev without copying the payload.
    this.socket.cork();
    this.socket.write(encoded[0]);
    const ok = this.socket.write(encoded[1]);
    this.socket.uncork();
    return ok;
  }

  private allocateRequestId(): number {
    let id = this.nextRequestId;
    while (this.pending.has(id)) id = id === 0xffffffff ? 1 : id + 1;
    this.nextRequestId = id === 0xffffffff ? 1 : id + 1;
    return id;
  }

  private assertAppType(type: number): void {
    if (!Number.isInteger(type) || type < FIRST_APP_FRAME_TYPE || type > 0xffff) {
      throw new CairnError('BAD_ARGUMENT', `application frame types are ${FIRST_APP_FRAME_TYPE}..65535, got ${type}`);
    }
  }

  private assertOpen(): void {
    if (this.state !== 'open') throw this.closedError();
  }

  private closedError(): CairnError {
    if (this.state === 'handshake') return new CairnError('CLUSTER_CLOSED', 'the connection is still in its handshake');
    return new CairnError('CLUSTER_CLOSED', `the connection is closed: ${this.closeReason?.reason ?? 'closed'}`);
  }
}
