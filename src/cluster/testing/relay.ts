/**
 * A TCP relay for tests: sits between two cluster peers on loopback, records every byte each way
 * (what an attacker on the path sees), and can alter the traffic (what an attacker on the path
 * does) through a hook that may rewrite or hold back each chunk.
 */

import { type AddressInfo, type Server, type Socket, connect, createServer } from 'node:net';

/** Which way a chunk travels. */
export type RelayDirection = 'toServer' | 'toClient';

/** Rewrites a chunk on its way; return the bytes to forward (an empty buffer drops them). */
export type RelayTamper = (direction: RelayDirection, chunk: Buffer, offset: number) => Buffer;

/** A running relay. */
export interface Relay {
  readonly port: number;
  /** Every byte seen, per direction, as it arrived. */
  readonly seen: Record<RelayDirection, Buffer[]>;
  /** Replaces the tamper hook (undefined forwards untouched). */
  tamper: RelayTamper | undefined;
  close(): Promise<void>;
}

/** Starts a relay on 127.0.0.1 that forwards every connection to host:port. */
export async function startRelay(host: string, port: number): Promise<Relay> {
  const sockets = new Set<Socket>();
  const relay: Relay = {
    port: 0,
    seen: { toServer: [], toClient: [] },
    tamper: undefined,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  const server: Server = createServer((inbound) => {
    const outbound = connect({ host, port });
    sockets.add(inbound).add(outbound);
    const offsets = { toServer: 0, toClient: 0 };
    const pipe = (from: Socket, to: Socket, direction: RelayDirection): void => {
      from.on('data', (chunk: Buffer) => {
        relay.seen[direction].push(Buffer.from(chunk));
        const out = relay.tamper ? relay.tamper(direction, chunk, offsets[direction]) : chunk;
        offsets[direction] += chunk.length;
        if (out.length > 0) to.write(out);
      });
      from.on('close', () => to.destroy());
      from.on('error', () => to.destroy());
    };
    pipe(inbound, outbound, 'toServer');
    pipe(outbound, inbound, 'toClient');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  (relay as { port: number }).port = (server.address() as AddressInfo).port;
  return relay;
}
