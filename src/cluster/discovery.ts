/**
 * Finding peers: a static list the user gives, plus mDNS on the local network (service type
 * `_cairn._tcp`, TXT records with node id, name and protocol version). mDNS is optional and fails
 * soft: where multicast is unavailable (containers, sandboxes, some Wi-Fi) there are simply no
 * discoveries, reported once as a 'warning', and static peers keep working.
 */

import { EventEmitter } from 'node:events';
import type { Bonjour, Browser, Service } from 'bonjour-service';
import { type PeerAddress, parsePeerList } from './peer-address.js';
import { PROTOCOL_VERSION } from './handshake.js';
import type { NodeIdentity } from './identity.js';

/** mDNS service type (without the leading underscore and protocol). */
export const MDNS_SERVICE_TYPE = 'cairn';

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
  private stopped = false;

  /** Parses the static peer list at once, so a typo is reported before anything starts. */
  constructor(options: DiscoveryOptions) {
    super();
    this.options = options;
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
    const peer = this.peerFromService(service);
    if (!peer || peer.id === this.options.identity.id) return;
    const previous = this.known.get(peer.key);
    if (previous && previous.host === peer.host && previous.port === peer.port) return;
    this.known.set(peer.key, peer);
    this.emit('up', peer);
  }

  private onServiceDown(service: Service): void {
    const peer = this.peerFromService(service);
    if (!peer) return;
    const previous = this.known.get(peer.key);
    if (!previous || previous.source !== 'mdns') return;
    this.known.delete(peer.key);
    this.emit('down', previous);
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
