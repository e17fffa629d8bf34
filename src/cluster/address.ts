/** Address checks for the rule "without a cluster key, only this machine may connect". */

import { isIPv4, isIPv6 } from 'node:net';

/**
 * True for loopback addresses: 127.0.0.0/8, ::1, and IPv4 loopback mapped into IPv6
 * (::ffff:127.x.y.z, which dual-stack sockets report). Host names are not resolved: a peer's
 * address as reported by its socket is always numeric.
 */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (!address) return false;
  if (isIPv4(address)) return address.startsWith('127.');
  if (!isIPv6(address)) return false;
  // Scoped (link-local, "%eth0") addresses are never loopback, and the URL parser rejects them.
  if (address.includes('%')) return false;
  // The URL parser writes IPv6 in canonical form: "::1", and mapped IPv4 as "::ffff:7fxx:xxxx".
  const canonical = new URL(`http://[${address}]/`).hostname.slice(1, -1);
  return canonical === '::1' || /^::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}$/.test(canonical);
}

/**
 * The key under which per-address limits count a peer: an IPv4 address (mapped IPv4 unmapped),
 * or the /64 prefix of a global IPv6 address, since one host commonly holds a whole /64 and could
 * otherwise count as as many peers as it has addresses (a LAN's link-local and unique-local
 * addresses count one by one).
 */
export function addressGroup(address: string | undefined): string {
  if (!address) return 'unknown';
  if (isIPv4(address)) return address;
  const bare = address.split('%')[0];
  if (!isIPv6(bare)) return address;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(bare);
  if (mapped) return mapped[1];
  const [head, tail] = bare.toLowerCase().split('::');
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail === undefined ? [] : tail ? tail.split(':') : [];
  const groups =
    tail === undefined
      ? headGroups
      : [...headGroups, ...new Array<string>(8 - headGroups.length - tailGroups.length).fill('0'), ...tailGroups];
  const words = groups.map((g) => Number.parseInt(g, 16));
  // Link-local (fe80::/10) and unique-local (fc00::/7) addresses are a LAN's: its /64 holds every
  // machine of the network, each with its own address, so those count one by one.
  if ((words[0] & 0xffc0) === 0xfe80 || (words[0] & 0xfe00) === 0xfc00) return words.map((w) => w.toString(16)).join(':');
  return (
    words
      .slice(0, 4)
      .map((w) => w.toString(16))
      .join(':') + '::/64'
  );
}
