/**
 * Finding peers: a static list the user gives, plus mDNS on the local network (service type
 * `_cairn._tcp`, TXT records with node id, name and protocol version). mDNS is optional and fails
 * soft: where multicast is unavailable (containers, sandboxes, some Wi-Fi) there are simply no
 * discoveries, reported once as a 'warning', and static peers keep working.
 *
 * Anyone on the network can announce: the peers found over mDNS are capped, and announced at a
 * bounded rate (a burst, then a few a second), since each one announced is dialed.
 */

import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { Bonjour, Browser, Service } from 'bonjour-service';
import { type PeerAddress, parsePeerList } from './peer-address.js';
import { PROTOCOL_VERSION } from './handshake.js';
import type { NodeIdentity } from './identity.js';

/** mDNS service type (without the leading underscore and protocol). */
export const MDNS_SERVICE_TYPE = 'cairn';
/** Peers found over mDNS kept at once, by default; a cluster is a few machines, not hundreds. */
export const MAX_MDNS_PEERS = 256;
/** mDNS peers announced at once before the rate applies, by default (a whole cluster coming up). */
export const MDNS_UP_BURST = 32;
/** Then one mDNS peer announced per this many milliseconds, by default. */
export const MDNS_UP_INTERVAL_MS = 250;

/** A peer that discovery knows of. */
export interface DiscoveredPeer extends PeerAddress {
  /** Stable key: "id:<node id>" for mDNS peers, "addr:<host>:<port>" for static ones (their id is learned on connect). */
  readonly key: string;
  readonly id?: string;
  readonly name?: string;
  readonly protocolVersion?: number;
  readonly source: 'static' | 'mdns';
}

/** Options of a Discovery. */
export interface DiscoveryOptions {
  readonly identity: NodeIdentity;
  /** The port this node's ClusterServer listens on (advertised over mDNS). */
  readonly port: number;
  /** "host:port" entries, or one comma-separated string. */
  readonly staticPeers?: string | readonly string[];
  /** Advertise and browse over mDNS. Default true. */
  readonly mdns?: boolean;
  /** Announce this node (default true); a coordinator that only looks for nodes says false. */
  readonly advertise?: boolean;
  /** Service type; tests use their own so they never see real nodes. Default "cairn". */
  readonly serviceType?: string;
  /**
   * Address of the one interface to announce and browse on (multicast goes out there only);
   * default: the system's choice. Tests keep mDNS inside their own network namespace this way.
   */
  readonly interface?: string;
  /** Peers found over mDNS kept at most; later ones are ignored until some go down. Default MAX_MDNS_PEERS. */
  readonly maxPeers?: number;
  /** mDNS peers announced at once before announcements are paced. Default MDNS_UP_BURST. */
  readonly upBurst?: number;
  /** Milliseconds between paced announcements of mDNS peers. Default MDNS_UP_INTERVAL_MS. */
  readonly upIntervalMs?: number;
}

/** Events of a Discovery. */
export interface DiscoveryEvents {
  up: [peer: DiscoveredPeer];
  down: [peer: DiscoveredPeer];
  /** mDNS trouble; discovery goes on without it. */
  warning: [error: Error];
}

/** Static peers plus mDNS advertisement and browsing. */
export class Discovery extends EventEmitter<DiscoveryEvents> {
  private readonly options: DiscoveryOptions;
  private readonly known = new Map<string, DiscoveredPeer>();
  private bonjour: Bonjour | undefined;
  private browser: Browser | undefined;
  private warned = false;
  private warnedFull = false;
  private stopped = false;
  /** mDNS peers found and not yet announced ('up'), oldest first, by key. */
  private readonly waiting = new Map<string, DiscoveredPeer>();
  /** Announcements that may go out now (refilled one per upIntervalMs, up to upBurst). */
  private upTokens: number;
  private lastRefill = performance.now();
  private paceTimer: NodeJS.Timeout | undefined;

  /** Parses the static peer list at once, so a typo is reported before anything starts. */
  constructor(options: DiscoveryOptions) {
    super();
    this.options = options;
    this.upTokens = options.upBurst ?? MDNS_UP_BURST;
    for (const address of parsePeerList(options.staticPeers ?? [])) {
      const peer: DiscoveredPeer = { ...address, key: `addr:${address.host}:${address.port}`, source: 'static' };
      this.known.set(peer.key, peer);
    }
  }

  /** Peers currently known. */
  peers(): DiscoveredPeer[] {
    return [...this.known.values()];
  }

  /** True while mDNS is advertising and browsing. */
  get mdnsActive(): boolean {
    return this.bonjour !== undefined;
  }

  /** Announces the static peers and starts mDNS (unless disabled). Never throws for mDNS trouble. */
  async start(): Promise<void> {
    for (const peer of this.known.values()) this.emit('up', peer);
    if (this.options.mdns === false) return;
    try {
      const { Bonjour } = await import('bonjour-service');
      if (this.stopped) return;
      // bonjour-service hands its options to multicast-dns, which takes the interface address.
      // multicast-dns binds to the interface address when given one, and a socket bound to a unicast
      // address receives no multicast: bind to all addresses and send on the chosen interface.
      this.bonjour = new Bonjour(
        (this.options.interface ? { interface: this.options.interface, bind: '0.0.0.0' } : {}) as ConstructorParameters<typeof Bonjour>[0],
        (err: Error) => this.warn(err),
      );
      this.guardMulticastSocket(this.bonjour);
      const type = this.options.serviceType ?? MDNS_SERVICE_TYPE;
      const { id, name } = this.options.identity;
      if (this.options.advertise !== false) {
        this.bonjour.publish({
          // Instance names must be unique on the network; the id prefix keeps same-named hosts apart.
          name: `${name}-${id.slice(0, 8)}`,
          type,
          port: this.options.port,
          txt: { id, name, proto: String(PROTOCOL_VERSION) },
        });
      }
      this.browser = this.bonjour.find({ type });
      this.browser.on('up', (service) => this.onServiceUp(service));
      this.browser.on('down', (service) => this.onServiceDown(service));
    } catch (err) {
      this.warn(err as Error);
      this.shutdownMdns();
    }
  }

  /** Stops advertising and browsing. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.paceTimer);
    this.paceTimer = undefined;
    this.waiting.clear();
    const bonjour = this.bonjour;
    if (!bonjour) return;
    this.browser?.stop();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 1000);
      try {
        bonjour.unpublishAll(() => {
          clearTimeout(timer);
          resolve();
        });
      } catch {
        clearTimeout(timer);
        resolve();
      }
    });
    this.shutdownMdns();
  }

  private onServiceUp(service: Service): void {
    if (this.stopped) return;
    const peer = this.peerFromService(service);
    if (!peer || peer.id === this.options.identity.id) return;
    const previous = this.known.get(peer.key);
    if (previous && previous.host === peer.host && previous.port === peer.port) return;
    const maxPeers = this.options.maxPeers ?? MAX_MDNS_PEERS;
    if (!previous && this.mdnsPeerCount() >= maxPeers) {
      if (!this.warnedFull) {
        this.warnedFull = true;
        this.emit('warning', new Error(`mDNS: more than ${maxPeers} peers announced; ignoring further ones until some go away`));
      }
      return;
    }
    this.known.set(peer.key, peer);
    // A peer whose address changed before it was announced is announced once, at its new address.
    this.waiting.delete(peer.key);
    this.waiting.set(peer.key, peer);
    this.announceWaiting();
  }

  private onServiceDown(service: Service): void {
    const peer = this.peerFromService(service);
    if (!peer) return;
    const previous = this.known.get(peer.key);
    if (!previous || previous.source !== 'mdns') return;
    this.known.delete(peer.key);
    // Never announced: nobody needs to hear that it left.
    if (this.waiting.delete(peer.key)) return;
    this.emit('down', previous);
  }

  private mdnsPeerCount(): number {
    let n = 0;
    for (const p of this.known.values()) if (p.source === 'mdns') n++;
    return n;
  }

  /** Announces waiting peers as far as the pace allows; the rest when it allows again. */
  private announceWaiting(): void {
    const burst = this.options.upBurst ?? MDNS_UP_BURST;
    const interval = this.options.upIntervalMs ?? MDNS_UP_INTERVAL_MS;
    const now = performance.now();
    this.upTokens = Math.min(burst, this.upTokens + (now - this.lastRefill) / interval);
    this.lastRefill = now;
    for (const [key, peer] of this.waiting) {
      if (this.upTokens < 1) break;
      this.upTokens--;
      this.waiting.delete(key);
      this.emit('up', peer);
    }
    if (this.waiting.size > 0 && !this.paceTimer && !this.stopped) {
      this.paceTimer = setTimeout(() => {
        this.paceTimer = undefined;
        this.announceWaiting();
      }, interval);
      this.paceTimer.unref();
    }
  }

  private peerFromService(service: Service): DiscoveredPeer | undefined {
    const txt = (service.txt ?? {}) as Record<string, unknown>;
    const id = typeof txt.id === 'string' ? txt.id : undefined;
    if (!id) return undefined;
    const addresses = service.addresses ?? [];
    // Prefer IPv4: link-local IPv6 needs a zone the advertisement does not carry.
    const host = addresses.find((a) => !a.includes(':')) ?? addresses[0] ?? service.referer?.address ?? service.host;
    if (!host || !service.port) return undefined;
    const protocolVersion = typeof txt.proto === 'string' ? Number(txt.proto) : undefined;
    const name = typeof txt.name === 'string' ? txt.name : service.name;
    return { key: `id:${id}`, id, name, host, port: service.port, protocolVersion, source: 'mdns' };
  }

  /**
   * multicast-dns emits 'error' on its socket wrapper when it cannot bind (EACCES, EADDRINUSE),
   * and bonjour-service does not listen for it, which would crash the process: listen ourselves.
   */
  private guardMulticastSocket(bonjour: Bonjour): void {
    const server = Reflect.get(bonjour, 'server') as { mdns?: EventEmitter } | undefined;
    server?.mdns?.on('error', (err: Error) => {
      this.warn(err);
      this.shutdownMdns();
    });
    server?.mdns?.on('warning', (err: Error) => this.warn(err));
  }

  private warn(err: Error): void {
    // One warning is enough: a machine without multicast would otherwise repeat it every few seconds.
    if (this.warned) return;
    this.warned = true;
    this.emit('warning', new Error(`mDNS discovery unavailable, using static peers only: ${err.message}`, { cause: err }));
  }

  private shutdownMdns(): void {
    const bonjour = this.bonjour;
    this.bonjour = undefined;
    this.browser = undefined;
    try {
      bonjour?.destroy();
    } catch {
      // Already torn down by its own error.
    }
  }
}
