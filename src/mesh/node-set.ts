/**
 * The nodes a coordinator knows: every address it was given or found over mDNS, the live
 * connection to each node that is up (with what it offers and how fast the link to it is), and
 * the watch over them. A node whose connection closes is down at once; one that goes silent (a
 * hung process, a pulled cable) is down once it has said nothing for SILENCE_MS, pinged meanwhile.
 * Addresses whose node is down are dialed again every few seconds, so a node that comes back is
 * found and reported, to be taken into the next plan. A node that misbehaved waits much longer.
 */
import { performance } from 'node:perf_hooks';
import { connectPeer, frameJson, jsonPayload, measureLink, type ClusterSecret, type PeerConnection } from '../cluster/index.js';
import type { LinkInfo } from '../planner/types.js';
import { MESH_COMPATIBILITY } from './node.js';
import { MeshFrame, type NodeCapabilities } from './protocol.js';

/** A connected node: one life of the process at a known address. */
export interface RemoteNode {
  readonly conn: PeerConnection;
  readonly caps: NodeCapabilities;
  /** Where the coordinator reached it (other stages reach it there too). */
  readonly host: string;
  readonly port: number;
  readonly link: LinkInfo;
  /** False once its connection closed or it went silent; a node never comes back up (a redial makes a new one). */
  up: boolean;
  /** Why it went down. */
  downReason?: string;
}

interface KnownAddress {
  readonly host: string;
  readonly port: number;
  node?: RemoteNode;
  dialing: boolean;
  /** performance.now() before which it is not dialed again. */
  nextDialAt: number;
  /** The last dial error, logged once rather than every round. */
  lastError?: string;
  /** Times its node misbehaved: each doubles the wait before the next dial. */
  strikes: number;
}

/** What the coordinator hears from its nodes. */
export interface NodeSetEvents {
  /** A node connected (again, or for the first time after start-up). */
  joined(node: RemoteNode): void;
  /** A node went down. */
  left(node: RemoteNode, reason: string): void;
}

/** Settings of a NodeSet. */
export interface NodeSetOptions {
  readonly localId: string;
  readonly clusterKey?: string | ClusterSecret;
  /** The largest payload of each frame type a node may send (limits.ts). */
  readonly payloadLimit: (type: number, flags: number) => number | undefined;
  readonly log: (line: string) => void;
  readonly events: NodeSetEvents;
}

/** How often nodes are watched and down addresses considered for a redial. */
const TICK_MS = 500;
/** A node silent this long gets a ping. */
const PING_AFTER_MS = 1000;
/**
 * A node silent this long is down. Generous, because a node busy with a long step (a big prompt
 * chunk on a slow machine) does not answer pings until the step ends; a killed node is found at
 * once anyway, by its connection closing.
 */
const SILENCE_MS = 8000;
/** Wait between dials of an address whose node is down. */
const REDIAL_MS = 2000;
/** Wait before dialing again a node that sent what it should not have (doubled each time). */
const MISBEHAVED_REDIAL_MS = 60_000;
const MAX_REDIAL_MS = 3_600_000;
/** Wait before dialing again an address that led to a node already connected under another. */
const DUPLICATE_REDIAL_MS = 60_000;

/** Known node addresses and the live nodes behind them. */
export class NodeSet {
  private readonly addresses: KnownAddress[] = [];
  private readonly live = new Map<string, RemoteNode>();
  private timer: NodeJS.Timeout | undefined;
  private lastTick = performance.now();
  private readonly pinging = new WeakSet<RemoteNode>();
  private closed = false;
  private announce = false;

  constructor(private readonly opts: NodeSetOptions) {}

  /** Nodes that are up. */
  up(): RemoteNode[] {
    return [...this.live.values()].filter((n) => this.usable(n));
  }

  /** Every node known since start, up or down (the latest life of each address). */
  all(): RemoteNode[] {
    return [...this.live.values()];
  }

  /** The node with this id, up or down. */
  get(nodeId: string): RemoteNode | undefined {
    return this.live.get(nodeId);
  }

  /** True while the node can be used: up, and its connection open. */
  usable(node: RemoteNode): boolean {
    return node.up && node.conn.isOpen;
  }

  /** Adds an address to watch; dials it at once. Returns the dial (never rejects). */
  add(host: string, port: number): Promise<void> {
    if (this.closed || this.addresses.some((a) => a.host === host && a.port === port)) return Promise.resolve();
    const a: KnownAddress = { host, port, dialing: false, nextDialAt: 0, strikes: 0 };
    this.addresses.push(a);
    return this.dial(a);
  }

  /** Starts watching (heartbeats, redials); from now on a node that connects is announced as joined. */
  start(): void {
    this.announce = true;
    this.timer ??= setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
  }

  /** Starts the watch without announcing joins yet (while the first plan loads). */
  watch(): void {
    this.timer ??= setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
  }

  /** Pings the given nodes and drops those that do not answer; resolves with the ones that are down. */
  async confirm(nodes: readonly RemoteNode[], timeoutMs = 2000): Promise<RemoteNode[]> {
    await Promise.all(
      nodes.map(async (n) => {
        if (!this.usable(n)) return;
        try {
          await n.conn.ping(0, { timeoutMs });
        } catch {
          n.conn.destroy('no answer to a ping');
          this.markDown(n, 'no answer to a ping');
        }
      }),
    );
    return nodes.filter((n) => !this.usable(n));
  }

  /** Drops a node that sent what it should not have; its address is dialed again only much later. */
  misbehaved(nodeId: string, detail: string): void {
    const n = this.live.get(nodeId);
    if (!n) return;
    const a = this.addresses.find((x) => x.node === n);
    if (a) a.nextDialAt = performance.now() + Math.min(MISBEHAVED_REDIAL_MS * 2 ** a.strikes++, MAX_REDIAL_MS);
    this.markDown(n, `it sent a bad frame (${detail})`);
    n.conn.destroy(`sent a bad frame: ${detail}`);
  }

  /** Stops watching and closes every connection. */
  close(reason: string): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    for (const n of this.live.values()) n.conn.close(reason);
  }

  private async dial(a: KnownAddress): Promise<void> {
    if (this.closed || a.dialing) return;
    a.dialing = true;
    let conn: PeerConnection | undefined;
    let used = false;
    try {
      conn = await connectPeer(a.host, a.port, {
        nodeId: this.opts.localId,
        name: 'coordinator',
        clusterKey: this.opts.clusterKey,
        compatibility: MESH_COMPATIBILITY,
        payloadLimit: this.opts.payloadLimit,
      });
      const p = jsonPayload({});
      const caps = checkCapabilities(frameJson(await conn.request(MeshFrame.info, p.meta, p.payload, { timeoutMs: 10_000 })));
      const m = await measureLink(conn);
      if (this.closed) return conn.close('the coordinator is stopping');
      const same = this.live.get(caps.nodeId);
      if (same && this.usable(same)) {
        // The same node under a second address (a static peer also found over mDNS).
        conn.close('already connected to this node');
        a.nextDialAt = performance.now() + DUPLICATE_REDIAL_MS;
        return;
      }
      const link: LinkInfo = {
        from: this.opts.localId,
        to: caps.nodeId,
        latencySeconds: m.latency.medianMs / 2000,
        bytesPerSecond: m.bandwidth.bytesPerSecond,
      };
      const node: RemoteNode = { conn, caps, host: a.host, port: a.port, link, up: true };
      if (a.node && a.node.caps.nodeId !== caps.nodeId) this.live.delete(a.node.caps.nodeId);
      a.node = node;
      a.lastError = undefined;
      this.live.set(caps.nodeId, node);
      used = true;
      conn.on('close', (info) => this.markDown(node, info.reason));
      if (!conn.isOpen) return this.markDown(node, 'connection closed');
      this.opts.log(
        `cairn: node ${caps.name} at ${a.host}:${a.port}: ${(caps.memoryBytes / 2 ** 30).toFixed(1)} GiB, ${(caps.bytesPerSecond / 1e9).toFixed(1)} GB/s, link ${(m.latency.medianMs * 1000).toFixed(0)} us round trip`,
      );
      if (this.announce) this.opts.events.joined(node);
    } catch (err) {
      if (conn && !used) conn.destroy('not used');
      a.nextDialAt = performance.now() + REDIAL_MS;
      const message = (err as Error).message;
      if (message !== a.lastError)
        this.opts.log(`cairn: node ${a.host}:${a.port} not used: ${message}${this.announce ? '; trying again every few seconds' : ''}`);
      a.lastError = message;
    } finally {
      a.dialing = false;
    }
  }

  private markDown(node: RemoteNode, reason: string): void {
    if (!node.up) return;
    node.up = false;
    node.downReason = reason;
    const a = this.addresses.find((x) => x.node === node);
    if (a) a.nextDialAt = Math.max(a.nextDialAt, performance.now() + REDIAL_MS);
    if (this.closed) return;
    this.opts.log(`cairn: node ${node.caps.name} (${node.host}:${node.port}) left: ${reason}`);
    this.opts.events.left(node, reason);
  }

  private tick(): void {
    const now = performance.now();
    // Ticks that come late mean this process was busy: the silence is ours, not the nodes'.
    const late = now - this.lastTick > 3 * TICK_MS;
    this.lastTick = now;
    for (const n of this.live.values()) {
      if (!n.up) continue;
      if (!n.conn.isOpen) {
        this.markDown(n, n.conn.closeInfo?.reason ?? 'connection closed');
        continue;
      }
      const silent = now - n.conn.lastReceivedAt;
      if (!late && silent > SILENCE_MS) {
        const reason = `no heartbeat for ${(silent / 1000).toFixed(1)} s`;
        this.markDown(n, reason);
        n.conn.destroy(reason);
      } else if (silent > PING_AFTER_MS && !this.pinging.has(n)) {
        // A lost ping shows up as silence, which the check above acts on.
        this.pinging.add(n);
        n.conn
          .ping(0, { timeoutMs: SILENCE_MS })
          .catch(() => {})
          .finally(() => this.pinging.delete(n));
      }
    }
    for (const a of this.addresses) {
      if (!a.dialing && !(a.node && this.usable(a.node)) && now >= a.nextDialAt) void this.dial(a);
    }
  }
}

/** A node's description, range-checked: it feeds the planner, the logs and the dashboard. */
export function checkCapabilities(x: unknown): NodeCapabilities {
  const c = x as Partial<NodeCapabilities> | null;
  const text = (v: unknown) => typeof v === 'string' && v.length > 0 && v.length <= 200;
  const amount = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v >= 0;
  if (
    typeof c !== 'object' ||
    c === null ||
    !text(c.nodeId) ||
    !text(c.name) ||
    !amount(c.memoryBytes) ||
    !amount(c.bytesPerSecond) ||
    !(Number.isSafeInteger(c.threads) && (c.threads as number) >= 0) ||
    // Every text goes to the planner, the logs and each dashboard snapshot: bounded.
    !(typeof c.isa === 'string' && c.isa.length <= 200) ||
    !(c.machine === undefined || (typeof c.machine === 'string' && /^[0-9a-f]{1,64}$/.test(c.machine))) ||
    !(c.machineBytesPerSecond === undefined || amount(c.machineBytesPerSecond)) ||
    !(c.backend === undefined || c.backend === 'cpu' || c.backend === 'gpu') ||
    !(c.adapter === undefined || text(c.adapter)) ||
    // The SHA-256s of the files it holds, looked up on every plan.
    !(Array.isArray(c.models) && c.models.length <= 4096 && c.models.every((m) => typeof m === 'string' && /^[0-9a-f]{64}$/.test(m)))
  ) {
    throw new Error('its description of itself is malformed');
  }
  return c as NodeCapabilities;
}
