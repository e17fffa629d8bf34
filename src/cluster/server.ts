/**
 * The listening side of the cluster transport. Every accepted socket goes through the handshake;
 * only authenticated connections are announced. Without a cluster key the server serves only
 * loopback peers, and tells anyone else why it refuses them.
 */

import { EventEmitter } from 'node:events';
import { type Server, type Socket, createServer } from 'node:net';
import { CairnError } from '../util/errors.js';
import { isLoopbackAddress } from './address.js';
import { type ConnectionOptions, PeerConnection } from './connection.js';
import { ControlFrame } from './control-frames.js';
import { encodeFrame, jsonPayload } from './frame.js';
import { type Refusal, normalizeClusterKey } from './handshake.js';

/** Options of a ClusterServer. */
export interface ClusterServerOptions extends ConnectionOptions {
  /** Address to bind. Default: 127.0.0.1 without a cluster key, all interfaces (::, or 0.0.0.0 without IPv6) with one. */
  readonly host?: string;
  /** Port to bind; 0 (the default) picks a free one. */
  readonly port?: number;
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
  private readonly rawSockets = new Set<Socket>();
  private bound: ListenAddress | undefined;

  constructor(options: ClusterServerOptions) {
    super();
    this.options = options;
    this.server = createServer({ noDelay: true }, (socket) => this.onSocket(socket));
  }

  /** True when this server has no cluster key and therefore refuses every non-loopback peer. */
  get loopbackOnly(): boolean {
    return normalizeClusterKey(this.options.clusterKey) === undefined;
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
    const connection = new PeerConnection(socket, 'server', this.options);
    this.handshaking.add(connection);
    connection.ready.then(
      () => {
        this.handshaking.delete(connection);
        this.open.add(connection);
        connection.once('close', () => this.open.delete(connection));
        this.emit('connection', connection);
      },
      (err: CairnError) => {
        this.handshaking.delete(connection);
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
