/**
 * The coordinator's view of the cluster: every known node, whether it is up, when it was last
 * heard from, and its round-trip time. Nodes come from discovery (dialed here) or from connections
 * they opened themselves (adopted). Each up node is pinged every heartbeat interval; any bytes from
 * it count as a heartbeat. A node is marked down at once when its socket closes, and within
 * downAfterMs + heartbeatIntervalMs when it goes silent (a hung process, a pulled cable). Down
 * nodes with a known address are redialed; 'up' and 'down' events let the mesh re-plan.
 */

import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { CloseInfo, PeerConnection } from './connection.js';
import type { DiscoveredPeer, Discovery } from './discovery.js';
import type { PeerAddress } from './peer-address.js';

/** Where a member stands. */
export type MemberState = 'connecting' | 'up' | 'down';

/** A snapshot of one member. */
export interface Member {
  /** "id:<node id>" once the node's id is known, before that "addr:<host>:<port>". */
  readonly key: string;
  readonly id?: string;
  readonly name?: string;
  /** Where it can be dialed, when known. */
  readonly address?: PeerAddress;
  readonly state: MemberState;
  /** Date.now() of the last bytes received from it. */
  readonly lastHeartbeatAt?: number;
  /** Last measured ping round trip, in milliseconds. */
  readonly rttMs?: number;
  /** What the node sent about itself in the handshake (its NodeInfo, usually). */
  readonly info?: Record<string, unknown>;
  /** Why it is down or could not be reached. */
  readonly downReason?: string;
  /** The live connection while up. */
  readonly connection?: PeerConnection;
}

/** Options of a Membership. */
export interface MembershipOptions {
  /** This node's id (a peer list that includes this node is harmless). */
  readonly selfId: string;
  /** Dials a peer (normally connectPeer with this node's credentials). */
  readonly connect: (address: PeerAddress) => Promise<PeerConnection>;
  /** Ping period. Default 250 ms. */
  readonly heartbeatIntervalMs?: number;
  /** Silence after which a node is down. Default 1000 ms. */
  readonly downAfterMs?: number;
  /** Wait between redials of an unreachable or down node. Default 2000 ms. */
  readonly reconnectIntervalMs?: number;
}

/** Events of a Membership. */
export interface MembershipEvents {
  up: [member: Member];
  down: [member: Member, reason: string];
}

interface Entry {
  key: string;
  id?: string;
  name?: string;
  address?: PeerAddress;
  state: MemberState;
  connection?: PeerConnection;
  onClose?: (info: CloseInfo) => void;
  lastPingAt: number;
  rttMs?: number;
  info?: Record<string, unknown>;
  downReason?: string;
  /** Date.now() of the last bytes from the last connection, kept after it is gone. */
  lastHeartbeatAt?: number;
  dialing: boolean;
  nextDialAt: number;
}

/** Tracks which cluster nodes are up. */
export class Membership extends EventEmitter<MembershipEvents> {
  private readonly options: MembershipOptions;
  private readonly entries = new Map<string, Entry>();
  private readonly heartbeatMs: number;
  private readonly downAfterMs: number;
  private readonly reconnectMs: number;
  private readonly timer: NodeJS.Timeout;
  private stopped = false;

  constructor(options: MembershipOptions) {
    super();
    this.options = options;
    this.heartbeatMs = options.heartbeatIntervalMs ?? 250;
    this.downAfterMs = options.downAfterMs ?? 1000;
    this.reconnectMs = options.reconnectIntervalMs ?? 2000;
    this.timer = setInterval(() => this.tick(), this.heartbeatMs);
  }

  /** Snapshots of all members. */
  members(): Member[] {
    return [...this.entries.values()].map((e) => this.view(e));
  }

  /** The member with this node id, if known. */
  get(id: string): Member | undefined {
    const entry = this.entries.get(`id:${id}`);
    return entry && this.view(entry);
  }

  /** Members currently up. */
  upMembers(): Member[] {
    return this.members().filter((m) => m.state === 'up');
  }

  /** Adds a node to dial (a static peer or a discovery result) and dials it at once. */
  addPeer(peer: PeerAddress & { id?: string; name?: string }): void {
    if (this.stopped || peer.id === this.options.selfId) return;
    const address = { host: peer.host, port: peer.port };
    const key = peer.id ? `id:${peer.id}` : `addr:${peer.host}:${peer.port}`;
    const existing = this.entries.get(key);
    if (existing) {
      // A node that moved (new mDNS address) is dialed at its new address next time.
      if (existing.state !== 'up') existing.address = address;
      return;
    }
    const entry: Entry = { key, id: peer.id, name: peer.name, address, state: 'connecting', lastPingAt: 0, dialing: false, nextDialAt: 0 };
    this.entries.set(key, entry);
    this.dial(entry);
  }

  /** Tracks a connection the peer opened to us (from ClusterServer's 'connection' event). */
  adopt(connection: PeerConnection): void {
    if (this.stopped || !connection.isOpen) return;
    const peer = connection.peer;
    if (peer.nodeId === this.options.selfId) return;
    const key = `id:${peer.nodeId}`;
    let entry = this.entries.get(key);
    if (!entry) {
      entry = { key, id: peer.nodeId, state: 'connecting', lastPingAt: 0, dialing: false, nextDialAt: 0 };
      this.entries.set(key, entry);
    }
    // A node that advertises its listening port can be redialed after a failure.
    const port = peer.info?.port;
    if (!entry.address && typeof port === 'number' && Number.isInteger(port) && port > 0 && port < 65536) {
      entry.address = { host: peer.address, port };
    }
    this.attach(entry, connection);
  }

  /** Follows a Discovery: its known and future peers are added; peers that leave mDNS and are not up are forgotten. */
  watch(discovery: Discovery): void {
    for (const peer of discovery.peers()) this.addPeer(peer);
    discovery.on('up', (peer: DiscoveredPeer) => this.addPeer(peer));
    discovery.on('down', (peer: DiscoveredPeer) => {
      const entry = this.entries.get(peer.key);
      if (entry && entry.state !== 'up') this.entries.delete(peer.key);
    });
  }

  /** Stops heartbeats and redials and closes every member connection. */
  stop(reason = 'membership stopped'): void {
    this.stopped = true;
    clearInterval(this.timer);
    for (const entry of this.entries.values()) {
      const connection = entry.connection;
      if (connection && entry.onClose) connection.off('close', entry.onClose);
      connection?.close(reason);
      entry.connection = undefined;
      entry.state = 'down';
      entry.downReason = reason;
    }
  }

  private dial(entry: Entry): void {
    if (this.stopped || entry.dialing || !entry.address) return;
    entry.dialing = true;
    this.options.connect(entry.address).then(
      (connection) => {
        entry.dialing = false;
        if (this.stopped) {
          connection.close('membership stopped');
          return;
        }
        this.onDialed(entry, connection);
      },
      (err: Error) => {
        entry.dialing = false;
        entry.nextDialAt = performance.now() + this.reconnectMs;
        if (entry.state === 'connecting') entry.state = 'down';
        entry.downReason = err.message;
      },
    );
  }

  private onDialed(entry: Entry, connection: PeerConnection): void {
    const id = connection.peer.nodeId;
    if (id === this.options.selfId) {
      // The peer list included this very node.
      connection.close('a node does not connect to itself');
      this.entries.delete(entry.key);
      return;
    }
    const key = `id:${id}`;
    if (entry.key !== key) {
      const known = this.entries.get(key);
      this.entries.delete(entry.key);
      if (known) {
        known.address ??= entry.address;
        if (known.state === 'up') {
          connection.close('already connected to this node');
          return;
        }
        entry = known;
      } else {
        entry.key = key;
        entry.id = id;
        this.entries.set(key, entry);
      }
    }
    this.attach(entry, connection);
  }

  private attach(entry: Entry, connection: PeerConnection): void {
    const previous = entry.connection;
    if (previous && entry.onClose) previous.off('close', entry.onClose);
    if (previous && previous !== connection) previous.close('superseded by a newer connection');
    const wasUp = entry.state === 'up';
    entry.connection = connection;
    entry.id = connection.peer.nodeId;
    entry.name = connection.peer.name;
    entry.info = connection.peer.info;
    entry.state = 'up';
    entry.downReason = undefined;
    entry.lastPingAt = performance.now();
    entry.onClose = (info) => {
      if (entry.connection === connection) this.markDown(entry, info.reason);
    };
    connection.once('close', entry.onClose);
    if (!connection.isOpen) {
      this.markDown(entry, connection.closeInfo?.reason ?? 'connection closed');
      return;
    }
    if (!wasUp) this.emit('up', this.view(entry));
  }

  private markDown(entry: Entry, reason: string): void {
    if (entry.state !== 'up') return;
    const connection = entry.connection;
    if (connection && entry.onClose) connection.off('close', entry.onClose);
    if (connection) entry.lastHeartbeatAt = wallClockOf(connection.lastReceivedAt);
    entry.connection = undefined;
    entry.state = 'down';
    entry.downReason = reason;
    entry.nextDialAt = performance.now() + this.reconnectMs;
    connection?.destroy(reason);
    this.emit('down', this.view(entry), reason);
  }

  private tick(): void {
    const now = performance.now();
    for (const entry of this.entries.values()) {
      const connection = entry.connection;
      if (entry.state === 'up' && connection) {
        const silentMs = now - connection.lastReceivedAt;
        if (silentMs > this.downAfterMs) {
          this.markDown(entry, `no heartbeat for ${Math.round(silentMs)} ms`);
        } else if (now - entry.lastPingAt >= this.heartbeatMs) {
          entry.lastPingAt = now;
          connection.ping(0, { timeoutMs: this.downAfterMs }).then(
            (rtt) => (entry.rttMs = rtt),
            // A lost ping shows up as silence, which the check above turns into "down".
            () => {},
          );
        }
      } else if (entry.state !== 'up' && !entry.dialing && entry.address && now >= entry.nextDialAt) {
        this.dial(entry);
      }
    }
  }

  private view(entry: Entry): Member {
    const connection = entry.connection;
    const lastHeartbeatAt = connection ? wallClockOf(connection.lastReceivedAt) : entry.lastHeartbeatAt;
    return {
      key: entry.key,
      id: entry.id,
      name: entry.name,
      address: entry.address,
      state: entry.state,
      lastHeartbeatAt,
      rttMs: entry.rttMs,
      info: entry.info,
      downReason: entry.downReason,
      connection,
    };
  }
}

/** Date.now() equivalent of a performance.now() timestamp. */
function wallClockOf(monotonicMs: number): number {
  return Math.round(Date.now() - (performance.now() - monotonicMs));
}
