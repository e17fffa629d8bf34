/** Parsing "host:port" peer addresses as users write them on command lines and in config files. */

import { isIPv6 } from 'node:net';
import { CairnError } from '../util/errors.js';

/** Port a node listens on when none is given (`cairn node`), and where a peer named without one is dialed. */
export const DEFAULT_CLUSTER_PORT = 7070;

/** Where to reach a peer. */
export interface PeerAddress {
  readonly host: string;
  readonly port: number;
}

/**
 * Parses "host:port", "host" (default port), "[v6addr]:port" or a bare IPv6 address. Throws
 * CairnError BAD_ARGUMENT with the offending text for anything else.
 */
export function parsePeerAddress(text: string, defaultPort = DEFAULT_CLUSTER_PORT): PeerAddress {
  const s = text.trim();
  const bad = (why: string): CairnError => new CairnError('BAD_ARGUMENT', `invalid peer address "${text}": ${why} (expected host:port)`);
  if (s.length === 0) throw bad('empty');
  let host: string;
  let portText: string | undefined;
  if (s.startsWith('[')) {
    const close = s.indexOf(']');
    if (close < 0) throw bad('unclosed [');
    host = s.slice(1, close);
    const rest = s.slice(close + 1);
    if (rest !== '' && !rest.startsWith(':')) throw bad('unexpected text after ]');
    portText = rest === '' ? undefined : rest.slice(1);
    if (!isIPv6(host)) throw bad('brackets must hold an IPv6 address');
  } else if (isIPv6(s)) {
    host = s;
  } else {
    const colon = s.lastIndexOf(':');
    host = colon < 0 ? s : s.slice(0, colon);
    portText = colon < 0 ? undefined : s.slice(colon + 1);
    if (host.includes(':')) throw bad('write IPv6 addresses with a port as [addr]:port');
  }
  if (host.length === 0) throw bad('no host');
  if (/[\s/@]/.test(host)) throw bad('host contains spaces, "/" or "@"');
  let port = defaultPort;
  if (portText !== undefined) {
    if (!/^\d{1,5}$/.test(portText)) throw bad(`port "${portText}" is not a number`);
    port = Number(portText);
  }
  if (port < 1 || port > 65535) throw bad(`port ${port} is out of range`);
  return { host, port };
}

/** Parses a list of peer addresses (e.g. a comma-separated --peers value), reporting the first bad one. */
export function parsePeerList(list: string | readonly string[], defaultPort = DEFAULT_CLUSTER_PORT): PeerAddress[] {
  const items = typeof list === 'string' ? list.split(',') : list;
  return items.filter((item) => item.trim() !== '').map((item) => parsePeerAddress(item, defaultPort));
}
