/**
 * The listening side of the cluster transport. Every accepted socket goes through the handshake;
 * only authenticated connections are announced. Without a cluster key the server serves only
 * loopback peers (who must still prove this machine's local key), and tells anyone else why it
 * refuses them. Connections are capped, and handshakes in progress more tightly, so that nobody
 * can make a node hold an unbounded number of sockets; handshakes are also capped per remote
 * address, so one address that keeps reconnecting cannot hold every place and lock others out.
 */

import { EventEmitter } from 'node:events';
import { type Server, type Socket, createServer } from 'node:net';
import { CairnError } from '../util/errors.js';
import { addressGroup, isLoopbackAddress } from './address.js';
import type { ClusterSecret } from './cluster-key.js';
import { type ConnectionOptions, PeerConnection, resolveSecret } from './connection.js';
import { ControlFrame } from './control-frames.js';
import { encodeFrame, jsonPayload } from './frame.js';
import type { Refusal } from './handshake.js';

/** Options of a ClusterServer. */
export interface ClusterServerOptions extends ConnectionOptions {
  /** Address to bind. Default: 127.0.0.1 without a cluster key, all interfaces (::, or 0.0.0.0 without IPv6) with one. */
  readonly host?: string;
  /** Port to bind; 0 (the default) picks a free one. */
  readonly port?: number;
  /** Open connections at most; further peers are refused as busy. Default 64. */
  readonly maxConnections?: number;
  /** Connections still in their handshake at most (unauthenticated peers). Default 16. */
  readonly maxHandshakes?: number;
  /** Handshakes in progress from one remote address (an IPv6 /64 counts as one) at most. Default 4. */
  readonly maxHandshakesPerAddress?: number;
}

/** Events of a ClusterServer. */
export interface ClusterServerEvents {
  /** A peer completed the handshake. */
  connection: [connection: PeerConnection];
  /** A peer was refused or failed its handshake (wrong key, versions, not loopback, timeout...). */
  refused: [error: CairnError, remoteAddress: string];
}

/** Where a server listens. */
export interface ListenAddress {
  readonly host: string;
  readonly port: number;
  /** True when the server has no cluster key and so accepts only peers on this machine. */
  readonly loopbackOnly: boolean;
}

/** Accepts authenticated cluster connections. */
export class ClusterServer extends EventEmitter<ClusterServerEvents> {
  private readonly options: ClusterServerOptions;
  private readonly server: Server;
  private readonly open = new Set<PeerConnection>();
  private readonly handshaking = new Set<PeerConnection>();
  /** Handshakes in progress by remote address group (addressGroup). */
  private readonly handshakingFrom = new Map<string, number>();
  private readonly rawSockets = new Set<Socket>();
  private bound: ListenAddress | undefined;
  private readonly secret: ClusterSecret;

  /** Throws CLUSTER_AUTH when the key cannot be had (the local key file unreadable, say). */
  constructor(options: ClusterServerOptions) {
    super();
    this.secret = resolveSecret(options.clusterKey);
    this.options = { ...options, clusterKey: this.secret };
    this.server = createServer({ noDelay: true }, (socket) => this.onSocket(socket));
  }

  /** True when this server has no cluster key and therefore refuses every non-loopback peer. */
  get loopbackOnly(): boolean {
    return this.secret.kind === 'local';
  }

  /** The bound address, once listening. */
  get address(): ListenAddress {
    if (!this.bound) throw new CairnError('BAD_ARGUMENT', 'the cluster server is not listening');
    return this.bound;
  }

  /** True once listen() has bound an address. */
  get listening(): boolean {
    return this.bound !== undefined;
  }

  /** Authenticated connections currently open. */
  get connections(): ReadonlySet<PeerConnection> {
    return this.open;
  }

  /** Starts listening; rejects with CLUSTER_UNREACHABLE when the address cannot be bound. */
  async listen(): Promise<ListenAddress> {
    const host = this.options.host ?? (this.loopbackOnly ? '127.0.0.1' : '::');
    const port = this.options.port ?? 0;
    try {
      await this.bind(host, port);
    } catch (err) {
      // Hosts without IPv6 cannot bind "::"; all IPv4 interfaces is the next best default.
      if (this.options.host !== undefined || (err as NodeJS.ErrnoException).code !== 'EAFNOSUPPORT') throw this.bindError(host, port, err);
      try {
        await this.bind('0.0.0.0', port);
      } catch (err2) {
        throw this.bindError('0.0.0.0', port, err2);
      }
    }
    const address = this.server.address();
    if (address === null || typeof address === 'string')
      throw new CairnError('CLUSTER_UNREACHABLE', 'the cluster server has no TCP address');
    this.bound = { host: address.address, port: address.port, loopbackOnly: this.loopbackOnly };
    return this.bound;
  }

  /** Stops listening and closes every connection with `reason`. */
  async close(reason = 'the node is shutting down'): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const connection of [...this.open, ...this.handshaking]) connection.close(reason);
    for (const socket of this.rawSockets) socket.destroy();
    await closed;
  }

  private bind(host: string, port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen({ host, port }, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
  }

  private bindError(host: string, port: number, err: unknown): CairnError {
    return new CairnError('CLUSTER_UNREACHABLE', `cannot listen on ${host}:${port}: ${(err as Error).message}`, { cause: err });
  }

  private onSocket(socket: Socket): void {
    const remote = socket.remoteAddress ?? 'unknown address';
    if (this.loopbackOnly && !isLoopbackAddress(socket.remoteAddress)) {
      this.refuseRaw(socket, {
        code: 'loopback-only',
        reason: `node has no cluster key and accepts only connections from this machine (loopback); ${remote} was refused. Give every node the same cluster key to connect across machines`,
      });
      this.emit(
        'refused',
        new CairnError('CLUSTER_REFUSED', `refused ${remote}: no cluster key, so only loopback peers are accepted`),
        remote,
      );
      return;
    }
    const maxHandshakes = this.options.maxHandshakes ?? 16;
    const maxConnections = this.options.maxConnections ?? 64;
    const maxPerAddress = this.options.maxHandshakesPerAddress ?? 4;
    const group = addressGroup(socket.remoteAddress);
    const fromGroup = this.handshakingFrom.get(group) ?? 0;
    const why =
      this.handshaking.size >= maxHandshakes
        ? `${maxHandshakes} handshakes already in progress`
        : this.open.size + this.handshaking.size >= maxConnections
          ? `${maxConnections} connections already open`
          : fromGroup >= maxPerAddress
            ? `${maxPerAddress} handshakes from ${remote} already in progress`
            : undefined;
    if (why !== undefined) {
      this.refuseRaw(socket, { code: 'busy', reason: `the node is busy (${why}); try again later` });
      this.emit('refused', new CairnError('CLUSTER_REFUSED', `refused ${remote}: ${why}`), remote);
      return;
    }
    const connection = new PeerConnection(socket, 'server', this.options);
    this.handshaking.add(connection);
    this.handshakingFrom.set(group, fromGroup + 1);
    const settled = () => {
      this.handshaking.delete(connection);
      const n = (this.handshakingFrom.get(group) ?? 1) - 1;
      if (n > 0) this.handshakingFrom.set(group, n);
      else this.handshakingFrom.delete(group);
    };
    connection.ready.then(
      () => {
        settled();
        this.open.add(connection);
        connection.once('close', () => this.open.delete(connection));
        this.emit('connection', connection);
      },
      (err: CairnError) => {
        settled();
        this.emit('refused', err, remote);
      },
    );
  }

  /** Refuses a socket before any handshake: one REFUSE frame, then close. */
  private refuseRaw(socket: Socket, refusal: Refusal): void {
    this.rawSockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => this.rawSockets.delete(socket));
    const body = jsonPayload(refusal);
    for (const part of encodeFrame(ControlFrame.refuse, body.meta, body.payload)) socket.write(part);
    socket.end();
    setTimeout(() => socket.destroy(), 1000).unref();
  }
}
