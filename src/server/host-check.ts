/**
 * Which Host names a server answers. A server listening on a loopback address trusts that only
 * this machine reaches it; a web page can break that by DNS rebinding: its own name, once the page
 * has loaded, re-resolved to 127.0.0.1, so the browser sends the page's requests (and lets the
 * page read the answers) to the local server under the page's own Host name. Requests naming a
 * host other than this machine are therefore refused on loopback, as Ollama does: IP addresses,
 * localhost and its subdomains, .local/.internal names and this machine's name are answered, and
 * so are the names given (a reverse proxy that keeps the original Host). A server listening on
 * other addresses is reached by names of its operator's choosing and checks none.
 */
import { hostname } from 'node:os';
import { isIP } from 'node:net';
import { isLoopbackAddress as isLoopbackIp } from '../cluster/address.js';

/** Where the server listens, and the extra names it answers ('*': any). */
export interface HostPolicy {
  readonly bindAddress?: string;
  readonly allowedHosts?: readonly string[] | '*';
}

/** True for a listen address only this machine reaches: `localhost`, or a numeric loopback address (bracketed or not). */
export function isLoopbackAddress(address: string): boolean {
  const a = address.toLowerCase().replace(/^\[|\]$/g, '');
  return a === 'localhost' || isLoopbackIp(a);
}

/** The host name of a Host header (no port, no IPv6 brackets), lower case. */
function hostName(header: string): string {
  const h = header.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']') >= 0 ? h.indexOf(']') : undefined);
  const colon = h.lastIndexOf(':');
  return colon >= 0 ? h.slice(0, colon) : h;
}

/** Whether a request with this Host header is answered under `policy`. */
export function hostAllowed(header: string | undefined, policy: HostPolicy): boolean {
  if (!policy.bindAddress || !isLoopbackAddress(policy.bindAddress) || policy.allowedHosts === '*') return true;
  if (header === undefined || header.trim() === '') return true; // HTTP/1.0 clients send none; a browser always does
  const name = hostName(header).replace(/\.$/, '');
  if (isIP(name) !== 0 || name === 'localhost' || /\.(localhost|local|internal)$/.test(name)) return true;
  if (name === hostname().toLowerCase()) return true;
  return (policy.allowedHosts ?? []).some((h) => hostName(h).replace(/\.$/, '') === name);
}
