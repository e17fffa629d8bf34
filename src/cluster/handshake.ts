/**
 * The connection handshake, as pure functions over its messages.
 *
 * Both sides send a HELLO (protocol version, role, node id and name, a fresh 32-byte nonce, the
 * application's compatibility string, whether they hold a cluster key). Each then proves it knows
 * the key with HMAC-SHA256(key, label || own role || SHA-256 of both HELLOs), which covers both
 * nonces, both roles and both ids, so a proof cannot be replayed on another connection nor
 * reflected back at its sender, and the key itself never travels. Each side answers a valid proof
 * with READY; a connection is open once a side has verified the peer's proof and received its READY.
 */

import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { CairnError } from '../util/errors.js';

/** Version of the handshake and control-frame protocol. */
export const PROTOCOL_VERSION = 1;

/** Which end of the TCP connection a node is. */
export type PeerRole = 'client' | 'server';

/** The first message each side sends. */
export interface HelloMessage {
  readonly protocol: number;
  readonly role: PeerRole;
  readonly nodeId: string;
  readonly name: string;
  /** 32 random bytes, hex. */
  readonly nonce: string;
  /** Application-defined; both sides must match exactly (the mesh puts model hash and version here). */
  readonly compatibility: string;
  /** Whether the sender has a cluster key (lets a mismatch be explained). */
  readonly keyed: boolean;
  /** Whatever the application wants its peers to know about this node (an opaque JSON object). */
  readonly info?: Record<string, unknown>;
}

/** Why a handshake was refused, as sent to the other side in a REFUSE frame. */
export interface Refusal {
  readonly code: 'version' | 'compatibility' | 'auth' | 'role' | 'loopback-only' | 'protocol' | 'timeout' | 'shutting-down';
  readonly reason: string;
}

const PROOF_LABEL = Buffer.from('cairn-cluster-proof/1\0', 'utf8');
const MAX_TEXT = 1024;

/** The key as bytes; an empty or absent key means "no key" (loopback-only operation). */
export function normalizeClusterKey(key: string | Uint8Array | undefined): Buffer | undefined {
  if (key === undefined) return undefined;
  const bytes = typeof key === 'string' ? Buffer.from(key, 'utf8') : Buffer.from(key);
  return bytes.length === 0 ? undefined : bytes;
}

/** A HELLO for this side with a fresh nonce. */
export function createHello(
  role: PeerRole,
  nodeId: string,
  name: string,
  compatibility: string,
  keyed: boolean,
  info?: Record<string, unknown>,
): HelloMessage {
  return { protocol: PROTOCOL_VERSION, role, nodeId, name, nonce: randomBytes(32).toString('hex'), compatibility, keyed, info };
}

/** Checks the shape of a parsed HELLO; returns the message or a description of what is wrong. */
export function validateHello(value: unknown): HelloMessage | string {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'hello is not a JSON object';
  const v = value as Record<string, unknown>;
  if (typeof v.protocol !== 'number' || !Number.isInteger(v.protocol)) return 'hello has no integer protocol version';
  if (v.role !== 'client' && v.role !== 'server') return 'hello role must be "client" or "server"';
  for (const field of ['nodeId', 'name', 'compatibility'] as const) {
    if (typeof v[field] !== 'string' || (v[field] as string).length > MAX_TEXT)
      return `hello ${field} must be a string of at most ${MAX_TEXT} characters`;
  }
  if (typeof v.nonce !== 'string' || !/^[0-9a-f]{64}$/.test(v.nonce)) return 'hello nonce must be 32 bytes of hex';
  if (typeof v.keyed !== 'boolean') return 'hello keyed must be a boolean';
  if (v.info !== undefined && (typeof v.info !== 'object' || v.info === null || Array.isArray(v.info)))
    return 'hello info must be an object';
  return v as unknown as HelloMessage;
}

/**
 * Compares the peer's HELLO with ours; returns the refusal to send, or undefined when compatible.
 * Reasons name the client and the server rather than "this node", since either side may be the
 * one that reports them.
 */
export function checkPeerHello(own: HelloMessage, peer: HelloMessage): Refusal | undefined {
  if (peer.role === own.role) return { code: 'role', reason: `both ends claim the ${own.role} role` };
  const client = own.role === 'client' ? own : peer;
  const server = own.role === 'client' ? peer : own;
  if (peer.protocol !== own.protocol) {
    return { code: 'version', reason: `protocol version mismatch: the client speaks ${client.protocol}, the server ${server.protocol}` };
  }
  if (peer.compatibility !== own.compatibility) {
    return {
      code: 'compatibility',
      reason: `incompatible nodes: the client runs "${client.compatibility}", the server "${server.compatibility}"`,
    };
  }
  if (peer.keyed !== own.keyed) {
    const [withKey, without] = client.keyed ? ['client', 'server'] : ['server', 'client'];
    return { code: 'auth', reason: `the ${withKey} requires a cluster key and the ${without} has none; give both the same key` };
  }
  return undefined;
}

/** A digest binding both HELLOs (as sent, byte for byte), client first. */
export function handshakeTranscript(clientHello: Buffer, serverHello: Buffer): Buffer {
  const lengths = Buffer.alloc(8);
  lengths.writeUInt32LE(clientHello.length, 0);
  lengths.writeUInt32LE(serverHello.length, 4);
  return createHash('sha256').update(lengths).update(clientHello).update(serverHello).digest();
}

/** The proof that the side with `role` knows `key` (an absent key proves nothing but keeps one code path). */
export function handshakeProof(key: Buffer | undefined, role: PeerRole, transcript: Buffer): Buffer {
  return createHmac('sha256', key ?? Buffer.alloc(0))
    .update(PROOF_LABEL)
    .update(role)
    .update(transcript)
    .digest();
}

/** True when `proof` is the valid proof of `role`, compared in constant time. */
export function verifyProof(key: Buffer | undefined, role: PeerRole, transcript: Buffer, proof: Buffer): boolean {
  const expected = handshakeProof(key, role, transcript);
  return proof.length === expected.length && timingSafeEqual(proof, expected);
}

/** The error for a refused handshake; `byPeer` tells whether the other side refused or we did. */
export function refusalError(refusal: Refusal, byPeer: boolean): CairnError {
  const code = refusal.code === 'auth' ? 'CLUSTER_AUTH' : refusal.code === 'timeout' ? 'CLUSTER_TIMEOUT' : 'CLUSTER_REFUSED';
  const who = byPeer ? 'peer refused the connection' : 'connection refused';
  return new CairnError(code, `${who}: ${refusal.reason}`);
}

/** Checks a REFUSE payload from the wire; anything odd becomes a generic protocol refusal. */
export function validateRefusal(value: unknown): Refusal {
  const codes: readonly string[] = ['version', 'compatibility', 'auth', 'role', 'loopback-only', 'protocol', 'timeout', 'shutting-down'];
  if (typeof value === 'object' && value !== null) {
    const v = value as Record<string, unknown>;
    if (typeof v.code === 'string' && codes.includes(v.code) && typeof v.reason === 'string') {
      return { code: v.code as Refusal['code'], reason: v.reason.slice(0, MAX_TEXT) };
    }
  }
  return { code: 'protocol', reason: 'the peer refused the connection without a readable reason' };
}
