/**
 * A secure connection to one peer: runs the handshake (handshake.ts), then sends and delivers
 * frames inside encrypted, authenticated records (record-layer.ts), correlates requests with
 * responses, answers the transport's own pings, keeps quiet connections alive and drops dead ones,
 * and reports how and why it closed. Nothing a peer sends can throw out of here: a malformed or
 * forged frame closes this connection (telling the peer why where it can) and leaves every other
 * connection alone.
 */

import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { CairnError } from '../util/errors.js';
import { type ClusterKeyKind, type ClusterSecret, deriveClusterSecretSync } from './cluster-key.js';
import { CONTROL_PAYLOAD_LIMITS, ControlFrame } from './control-frames.js';
import { DEFAULT_MAX_PAYLOAD_BYTES, FrameDecoder } from './frame-decoder.js';
import { FrameEncoder } from './frame-encoder.js';
import {
  type Frame,
  type FrameMeta,
  DType,
  FIRST_APP_FRAME_TYPE,
  FRAME_HEADER_BYTES,
  FrameFlags,
  frameJson,
  jsonPayload,
  payloadBytes,
  readFrameHeader,
  resolveFrameHeader,
} from './frame.js';
import {
  type HelloMessage,
  type HelloState,
  type IdentityMessage,
  type PeerRole,
  type Refusal,
  checkCompatibility,
  checkHelloVersion,
  checkPeerHello,
  createHello,
  deriveSessionKeys,
  handshakeTranscript,
  refusalError,
  validateHello,
  validateIdentity,
  validateRefusal,
} from './handshake.js';
import { localClusterSecret } from './local-key.js';
import { RecordOpener, RecordSealer } from './record-layer.js';

/** What every connection needs to know about this node and the cluster. */
export interface ConnectionOptions {
  /** This node's id (see identity.ts). */
  readonly nodeId: string;
  /** This node's human-readable name. */
  readonly name?: string;
  /**
   * The cluster's key: its derived secret (deriveClusterSecret, the CLI's way), or the key's text
   * (derived here, synchronously, once per process). Without one, the connection uses this
   * machine's local key (local-key.ts), which only processes of the same user can read.
   */
  readonly clusterKey?: string | ClusterSecret;
  /** Must equal the peer's exactly (the mesh puts its version here). Default "". */
  readonly compatibility?: string;
  /** Sent to the peer, encrypted, in the handshake (e.g. the node's info record). */
  readonly info?: Record<string, unknown>;
  /** A peer that has not completed the handshake by then is dropped. Default 5000 ms. */
  readonly handshakeTimeoutMs?: number;
  /** Default timeout of request(). Default 30000 ms. */
  readonly requestTimeoutMs?: number;
  /** Largest payload accepted once open, for application frames without a limit of their own. Default 64 MiB. */
  readonly maxPayloadBytes?: number;
  /**
   * Largest payload of an application frame of this type and flags (checked before anything is
   * allocated); undefined falls back to maxPayloadBytes. Transport frames have fixed limits.
   */
  readonly payloadLimit?: (type: number, flags: number) => number | undefined;
  /** An open connection that receives nothing for this long is dropped (0: never). Default 60000 ms. */
  readonly idleTimeoutMs?: number;
  /** An open connection that has sent nothing for this long sends a keepalive. Default 10000 ms. */
  readonly keepAliveMs?: number;
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

const JSON_META: FrameMeta = { dtype: DType.json };
/** How long an orderly close waits for the peer to close its side. */
const CLOSE_GRACE_MS = 2000;

interface PendingRequest {
  readonly resolve: (frame: Frame) => void;
  readonly reject: (err: Error) => void;
  readonly timer: NodeJS.Timeout;
  readonly cleanup?: () => void;
}

/**
 * hello: clear frames, waiting for the peer's HELLO; keyed: encrypted, exchanging identities;
 * open: application traffic; closing: our side has ended.
 */
type State = 'hello' | 'keyed' | 'open' | 'closing' | 'closed';

/** The secret a connection uses for `clusterKey` as given. */
export function resolveSecret(clusterKey: string | ClusterSecret | undefined): ClusterSecret {
  if (clusterKey === undefined) return localClusterSecret();
  if (typeof clusterKey === 'string') return deriveClusterSecretSync(clusterKey);
  return clusterKey;
}

/** An authenticated, encrypted, framed connection to one peer. Create with connectPeer() or ClusterServer. */
export class PeerConnection extends EventEmitter<PeerConnectionEvents> {
  /** Which end of the TCP connection this side is. */
  readonly role: PeerRole;
  /** Resolves once the handshake succeeded; rejects with the reason it failed. */
  readonly ready: Promise<void>;

  private readonly socket: Socket;
  private readonly secret: ClusterSecret;
  private readonly options: ConnectionOptions;
  private readonly decoder: FrameDecoder;
  private readonly encoder = new FrameEncoder();
  private readonly pending = new Map<number, PendingRequest>();
  private state: State = 'hello';
  private nextRequestId = 1;
  private lastReceived = performance.now();
  private lastSent = performance.now();
  private closeReason: CloseInfo | undefined;
  private socketError: Error | undefined;
  private closeTimer: NodeJS.Timeout | undefined;
  private livenessTimer: NodeJS.Timeout | undefined;

  private readonly own: HelloState;
  private readonly ownHelloBytes: Buffer;
  /** Bytes of the peer's HELLO frame gathered so far (the only cleartext a peer may send). */
  private clearBytes: Buffer = Buffer.alloc(0);
  private sealer: RecordSealer | undefined;
  private opener: RecordOpener | undefined;
  private peerIdentity: IdentityMessage | undefined;
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
    this.ready = new Promise<void>((resolve, reject) => {
      this.settleReady = (err) => (err ? reject(err) : resolve());
    });
    // A failed handshake is reported through `ready`; keep an unobserved rejection from crashing.
    this.ready.catch(() => {});
    this.decoder = new FrameDecoder({
      onFrame: (f) => this.onFrame(f),
      // Every frame type has its limit (payloadLimitFor); this is only the outer bound.
      maxPayloadBytes: Number.MAX_SAFE_INTEGER,
      limitFor: (type, flags) => this.payloadLimitFor(type, flags),
    });

    socket.setNoDelay(true);
    socket.setKeepAlive(true, 10_000);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => {
      this.socketError ??= err;
    });
    socket.on('close', () => this.onSocketClose());

    let secret: ClusterSecret | undefined;
    let keyError: CairnError | undefined;
    try {
      secret = resolveSecret(options.clusterKey);
    } catch (err) {
      keyError = err instanceof CairnError ? err : new CairnError('CLUSTER_AUTH', (err as Error).message);
    }
    this.secret = secret ?? { psk: Buffer.alloc(32), kind: 'local' };
    this.own = createHello(role, this.secret.kind);
    this.ownHelloBytes = jsonPayload(this.own.hello).payload;
    const timeoutMs = options.handshakeTimeoutMs ?? 5000;
    this.handshakeTimer = setTimeout(() => this.refuse({ code: 'timeout', reason: `handshake not completed within ${timeoutMs} ms` }), timeoutMs);
    if (keyError) {
      // No usable key: say so locally and tell the peer only that we are leaving.
      this.failHandshake(keyError, keyError.message, false);
      return;
    }
    this.writeClear(ControlFrame.hello, this.ownHelloBytes);
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

  /** Which kind of key this connection authenticates with. */
  get keyKind(): ClusterKeyKind {
    return this.secret.kind;
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

  /** Largest payload accepted from the peer for application frames without a limit of their own. */
  get maxPayloadBytes(): number {
    return this.options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
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
    const body = jsonPayload({ message: message.slice(0, 2000) });
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
    if (this.state !== 'open') {
      this.refuse({ code: 'shutting-down', reason });
      return;
    }
    this.writeControl(ControlFrame.goodbye, jsonPayload({ reason }).payload);
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
    if (this.state === 'closed') return;
    try {
      if (this.state === 'hello') {
        this.onClearBytes(chunk);
        return;
      }
      this.onRecordBytes(chunk);
    } catch (err) {
      // An application handler threw while handling a frame: that frame's stream position is lost.
      const error = new CairnError('CLUSTER_PROTOCOL', `frame handler failed: ${(err as Error).message}`, { cause: err });
      this.failWith(error, error.message);
    }
  }

  /** Before the keys exist: gathers the peer's one cleartext frame (HELLO or REFUSE). */
  private onClearBytes(chunk: Buffer): void {
    this.clearBytes = this.clearBytes.length === 0 ? chunk : Buffer.concat([this.clearBytes, chunk]);
    if (this.clearBytes.length < FRAME_HEADER_BYTES) return;
    const header = readFrameHeader(this.clearBytes, 0, CONTROL_PAYLOAD_LIMITS[ControlFrame.hello]);
    if (!('type' in header)) {
      this.refuse({ code: 'protocol', reason: header.message });
      return;
    }
    const end = FRAME_HEADER_BYTES + header.payloadLength;
    if (this.clearBytes.length < end) return;
    const payload = this.clearBytes.subarray(FRAME_HEADER_BYTES, end);
    const rest = this.clearBytes.subarray(end);
    this.clearBytes = Buffer.alloc(0);
    const frame: Frame = { ...header, payload };
    if (frame.type === ControlFrame.refuse) {
      this.onClearRefusal(frame);
      return;
    }
    if (frame.type !== ControlFrame.hello) {
      this.refuse({ code: 'protocol', reason: `expected a hello, got frame type ${frame.type}` });
      return;
    }
    this.onHello(frame);
    if (this.state === 'keyed' && rest.length > 0) this.onRecordBytes(rest);
  }

  /** Once keyed: every byte is a record; a cleartext frame at a record boundary can only be a refusal. */
  private onRecordBytes(chunk: Buffer): void {
    const result = this.opener!.push(chunk);
    if (result.kind === 'ok') return;
    if (result.kind === 'cleartext') {
      if (this.state === 'keyed') {
        // The peer refused our HELLO before deriving keys (it has its reasons in the clear).
        this.clearBytes = Buffer.alloc(0);
        this.state = 'hello';
        this.onClearBytes(result.rest);
        return;
      }
      this.failWith(new CairnError('CLUSTER_PROTOCOL', 'the peer sent an unencrypted frame'), 'unencrypted frame on an encrypted connection');
      return;
    }
    if (this.state === 'keyed' && result.error.code === 'CLUSTER_AUTH') {
      this.failHandshake(
        new CairnError('CLUSTER_AUTH', 'connection refused: the cluster keys differ (the peer\'s first encrypted message did not authenticate with this node\'s key), or something on the path altered the connection; give every node the same key'),
        'the cluster keys differ',
        false,
      );
      return;
    }
    this.failWith(result.error, result.error.message);
  }

  private onPlaintext(plaintext: Buffer): void {
    const failure = this.decoder.push(plaintext);
    if (failure) this.failWith(failure, failure.message);
  }

  private onFrame(frame: Frame): void {
    if (this.state === 'closed') return;
    if (this.state === 'keyed') {
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
        const error = new CairnError('CLUSTER_PROTOCOL', `frame handler failed: ${(err as Error).message}`, { cause: err });
        this.failWith(error, error.message);
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
        if (typeof body?.message === 'string') message = body.message.slice(0, 2000);
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
    } else if (frame.type === ControlFrame.keepalive && !isRequest) {
      // Its arrival already counted as traffic.
    } else if (frame.type === ControlFrame.goodbye || frame.type === ControlFrame.refuse) {
      this.beginClose({ reason: `peer closed the connection: ${readReason(frame)}`, byPeer: true });
    } else {
      this.failWith(new CairnError('CLUSTER_PROTOCOL', `unexpected transport frame type ${frame.type}`), `unexpected transport frame type ${frame.type}`);
    }
  }

  /** The limit of each frame type; before the connection is open only handshake frames are small enough. */
  private payloadLimitFor(type: number, flags: number): number | undefined {
    if (type < FIRST_APP_FRAME_TYPE) return CONTROL_PAYLOAD_LIMITS[type] ?? 0;
    if (this.state !== 'open') return 0;
    const limit = this.options.payloadLimit?.(type, flags);
    return Math.min(limit ?? this.maxPayloadBytes, Number.MAX_SAFE_INTEGER);
  }

  // ---- handshake ----

  private onClearRefusal(frame: Frame): void {
    let body: unknown;
    try {
      body = frameJson(frame);
    } catch {
      body = undefined;
    }
    const refusal = validateRefusal(body);
    this.failHandshake(refusalError(refusal, true), `peer refused: ${refusal.reason}`, true);
  }

  private onHello(frame: Frame): void {
    let value: unknown;
    try {
      value = frameJson(frame);
    } catch (err) {
      this.refuse({ code: 'protocol', reason: (err as Error).message });
      return;
    }
    const versionRefusal = checkHelloVersion(this.role, value);
    if (versionRefusal) {
      this.refuse(versionRefusal);
      return;
    }
    const parsed: HelloMessage | string = validateHello(value);
    if (typeof parsed === 'string') {
      this.refuse({ code: 'protocol', reason: parsed });
      return;
    }
    const refusal = checkPeerHello(this.own.hello, parsed);
    if (refusal) {
      this.refuse(refusal);
      return;
    }
    const peerBytes = frame.payload;
    const transcript =
      this.role === 'client' ? handshakeTranscript(this.ownHelloBytes, peerBytes) : handshakeTranscript(peerBytes, this.ownHelloBytes);
    let keys;
    try {
      keys = deriveSessionKeys(this.secret.psk, this.role, this.own.privateKey, parsed.publicKey, transcript);
    } catch (err) {
      this.refuse({ code: 'protocol', reason: (err as Error).message });
      return;
    }
    this.sealer = new RecordSealer(keys.send);
    this.opener = new RecordOpener(keys.receive, (plaintext) => this.onPlaintext(plaintext));
    this.state = 'keyed';
    this.writeControl(ControlFrame.identity, jsonPayload(this.ownIdentity()).payload);
  }

  private ownIdentity(): IdentityMessage {
    return {
      nodeId: this.options.nodeId,
      name: this.options.name ?? this.options.nodeId,
      compatibility: this.options.compatibility ?? '',
      info: this.options.info,
    };
  }

  private onHandshakeFrame(frame: Frame): void {
    if (frame.type === ControlFrame.refuse) {
      const refusal = validateRefusal(safeJson(frame));
      this.failHandshake(refusalError(refusal, true), `peer refused: ${refusal.reason}`, true);
      return;
    }
    if (!this.peerIdentity) {
      if (frame.type !== ControlFrame.identity) {
        this.refuse({ code: 'protocol', reason: `expected an identity, got frame type ${frame.type}` });
        return;
      }
      const parsed = validateIdentity(safeJson(frame));
      if (typeof parsed === 'string') {
        this.refuse({ code: 'protocol', reason: parsed });
        return;
      }
      const refusal = checkCompatibility(this.role, this.ownIdentity(), parsed);
      if (refusal) {
        this.refuse(refusal);
        return;
      }
      this.peerIdentity = parsed;
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
    const peer = this.peerIdentity!;
    this.identity = {
      nodeId: peer.nodeId,
      name: peer.name,
      info: peer.info,
      address: this.socket.remoteAddress ?? '',
      port: this.socket.remotePort ?? 0,
    };
    this.startLiveness();
    // Frames behind the peer's READY (possibly in this very chunk) wait until whoever awaits
    // `ready` has attached its listeners: promise continuations run before setImmediate.
    this.held = [];
    setImmediate(() => this.releaseHeldFrames());
    this.settleReady();
  }

  /** Keepalives on a quiet connection, and the idle timeout for a peer that went silent. */
  private startLiveness(): void {
    const idleMs = this.options.idleTimeoutMs ?? 60_000;
    const keepAliveMs = this.options.keepAliveMs ?? 10_000;
    if (idleMs <= 0 && keepAliveMs <= 0) return;
    const period = Math.max(50, Math.min(keepAliveMs > 0 ? keepAliveMs : idleMs, idleMs > 0 ? idleMs / 2 : keepAliveMs));
    this.livenessTimer = setInterval(() => {
      if (this.state !== 'open') return;
      const now = performance.now();
      if (idleMs > 0 && now - this.lastReceived > idleMs) {
        const why = `no data from the peer for ${Math.round((now - this.lastReceived) / 1000)} s (idle timeout)`;
        this.destroy(why, new CairnError('CLUSTER_TIMEOUT', why));
        return;
      }
      if (keepAliveMs > 0 && now - this.lastSent >= keepAliveMs) this.writeControl(ControlFrame.keepalive);
    }, period);
    this.livenessTimer.unref();
  }

  /** Refuses the handshake: tells the peer why (encrypted once keys exist), then closes. */
  private refuse(refusal: Refusal): void {
    if (this.state !== 'hello' && this.state !== 'keyed') return;
    const body = jsonPayload(refusal).payload;
    if (this.state === 'hello') this.writeClear(ControlFrame.refuse, body);
    else this.writeControl(ControlFrame.refuse, body);
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
    if (this.state === 'hello' || this.state === 'keyed') {
      this.refuse({ code: 'protocol', reason });
      return;
    }
    if (this.state !== 'open') return;
    this.writeControl(ControlFrame.goodbye, jsonPayload({ reason }).payload);
    this.beginClose({ reason, error, byPeer: false });
  }

  private beginClose(info: CloseInfo): void {
    if (this.state === 'closed' || this.state === 'closing') return;
    this.closeReason ??= info;
    this.state = 'closing';
    clearInterval(this.livenessTimer);
    this.socket.end();
    this.closeTimer = setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS);
    this.closeTimer.unref();
  }

  private onSocketClose(): void {
    const wasOpen = this.identity !== undefined;
    clearTimeout(this.closeTimer);
    clearTimeout(this.handshakeTimer);
    clearInterval(this.livenessTimer);
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

  /** A transport frame inside the encrypted channel (json payloads only). */
  private writeControl(type: number, payload?: Buffer): void {
    if (this.socket.destroyed || this.socket.writableEnded || !this.sealer) return;
    this.writeFrame(type, 0, 0, payload ? JSON_META : undefined, payload);
  }

  /** A handshake frame in the clear (HELLO or a refusal before keys exist). */
  private writeClear(type: number, payload: Buffer): void {
    if (this.socket.destroyed || this.socket.writableEnded) return;
    const header = resolveFrameHeader(type, 0, 0, JSON_META, payload.length);
    const encoded = this.encoder.encode(header, payload);
    this.socket.write(Buffer.isBuffer(encoded) ? encoded : Buffer.concat(encoded));
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
    this.lastSent = performance.now();
    let ok = true;
    // One writev per record, sent as soon as it is sealed: the peer opens the first records of a
    // large frame while the rest is still being sealed. The buffers are ours; nothing the caller
    // owns is kept.
    this.sealer!.seal(Buffer.isBuffer(encoded) ? [encoded] : encoded, (record) => {
      this.socket.cork();
      for (const b of record) ok = this.socket.write(b);
      this.socket.uncork();
    });
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
    if (this.state === 'hello' || this.state === 'keyed') return new CairnError('CLUSTER_CLOSED', 'the connection is still in its handshake');
    return new CairnError('CLUSTER_CLOSED', `the connection is closed: ${this.closeReason?.reason ?? 'closed'}`);
  }
}

function safeJson(frame: Frame): unknown {
  try {
    return frameJson(frame);
  } catch {
    return undefined;
  }
}

function readReason(frame: Frame): string {
  const body = safeJson(frame) as { reason?: unknown } | undefined;
  return typeof body?.reason === 'string' ? body.reason.slice(0, 1024) : 'no reason given';
}
