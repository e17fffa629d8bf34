/** Dialing a peer: TCP connect, then the handshake, with clear errors for each way it can fail. */

import { connect as netConnect } from 'node:net';
import { CairnError } from '../util/errors.js';
import { type ConnectionOptions, PeerConnection } from './connection.js';

/** Options of connectPeer. */
export interface ConnectOptions extends ConnectionOptions {
  /** Give up on the TCP connect after this long. Default 5000 ms. */
  readonly connectTimeoutMs?: number;
}

/**
 * Connects to a cluster node and completes the handshake. Rejects with CLUSTER_UNREACHABLE (no
 * TCP connection), CLUSTER_AUTH (cluster keys differ), CLUSTER_REFUSED (version, compatibility,
 * or a keyless node refusing a non-loopback peer), CLUSTER_TIMEOUT or CLUSTER_CLOSED.
 */
export async function connectPeer(host: string, port: number, options: ConnectOptions): Promise<PeerConnection> {
  if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new CairnError('BAD_ARGUMENT', `port ${port} is not a TCP port`);
  const timeoutMs = options.connectTimeoutMs ?? 5000;
  const socket = netConnect({ host, port, noDelay: true });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new CairnError('CLUSTER_UNREACHABLE', `cannot reach ${host}:${port}: no connection within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      resolve();
    });
    const onError = (err: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(new CairnError('CLUSTER_UNREACHABLE', `cannot reach ${host}:${port}: ${err.message}`, { cause: err }));
    };
    socket.once('error', onError);
  });
  const connection = new PeerConnection(socket, 'client', options);
  await connection.ready;
  return connection;
}
