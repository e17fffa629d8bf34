/**
 * The connection handshake, as pure functions over its messages.
 *
 * 1. Both sides send a HELLO in the clear: protocol version, role, a fresh 32-byte nonce, a fresh
 *    X25519 public key, and which kind of key they hold (a cluster key, or this machine's local
 *    key). Nothing else travels in the clear: names, ids and capabilities wait for encryption.
 * 2. Each side computes the X25519 shared secret and derives one key per direction with HKDF over
 *    (cluster secret || shared secret), salted with the digest of both HELLOs as sent. So the keys
 *    need the cluster secret (a relay without it cannot derive them), are fresh per connection,
 *    and a recording of the connection stays secret even if the cluster key leaks later (the
 *    ephemeral private keys are gone). A recording alone also gives no way to test guesses of the
 *    key offline: every key guess would also need an ephemeral private key.
 * 3. From then on every byte is an AEAD record (record-layer.ts). Each side's first record carries
 *    its IDENTITY (id, name, compatibility, info); that it authenticates at all proves the peer
 *    holds the same key. A side answers a valid IDENTITY with READY; a connection is open once a
 *    side has verified the peer's IDENTITY and received its READY.
 *
 * An attacker who runs a handshake himself (pretending to be a node) learns one record sealed
 * with a key derived from the cluster secret, which lets him test guesses offline: that is why
 * passphrases go through scrypt and weak ones are refused (cluster-key.ts).
 */

import { createHash, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, randomBytes, type KeyObject } from 'node:crypto';
import { CairnError } from '../util/errors.js';
import type { ClusterKeyKind } from './cluster-key.js';

/** Version of the handshake and control-frame protocol. */
export const PROTOCOL_VERSION = 2;

/** Which end of the TCP connection a node is. */
export type PeerRole = 'client' | 'server';

/** The first message each side sends, in the clear. */
export interface HelloMessage {
  readonly protocol: number;
  readonly role: PeerRole;
  /** 32 random bytes, hex. */
  readonly nonce: string;
  /** The sender's ephemeral X25519 public key, 32 bytes, hex. */
  readonly publicKey: string;
  /** Whether the sender holds a cluster key or only this machine's local key (lets a mismatch be explained). */
  readonly keyKind: ClusterKeyKind;
}

/** The second message each side sends, encrypted: who it is. */
export interface IdentityMessage {
  readonly nodeId: string;
  readonly name: string;
  /** Application-defined; both sides must match exactly (the mesh puts its version here). */
  readonly compatibility: string;
  /** Whatever the application wants its peers to know about this node (an opaque JSON object). */
  readonly info?: Record<string, unknown>;
}

/** Why a handshake was refused, as sent to the other side in a REFUSE frame. */
export interface Refusal {
  readonly code: 'version' | 'compatibility' | 'auth' | 'role' | 'loopback-only' | 'protocol' | 'timeout' | 'shutting-down' | 'busy';
  readonly reason: string;
}

/** A fresh ephemeral key pair and the HELLO that announces it. */
export interface HelloState {
  readonly hello: HelloMessage;
  readonly privateKey: KeyObject;
}

/** The two directions' record keys of one connection. */
export interface SessionKeys {
  /** Seals what this side sends. */
  readonly send: Buffer;
  /** Opens what the peer sends. */
  readonly receive: Buffer;
}

const MAX_TEXT = 1024;
/** C0 control characters and DEL. */
// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f]/;
const KEY_LABEL = 'cairn-channel/2 keys';

/** A HELLO for this side with a fresh nonce and ephemeral key. */
export function createHello(role: PeerRole, keyKind: ClusterKeyKind): HelloState {
  const { publicKey, privateKey } = generateKeyPairSync('x25519');
  const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url');
  return {
    hello: { protocol: PROTOCOL_VERSION, role, nonce: randomBytes(32).toString('hex'), publicKey: raw.toString('hex'), keyKind },
    privateKey,
  };
}

/** Checks the shape of a parsed HELLO; returns the message or a description of what is wrong. */
export function validateHello(value: unknown): HelloMessage | string {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'hello is not a JSON object';
  const v = value as Record<string, unknown>;
  if (v.protocol !== PROTOCOL_VERSION) return `hello protocol must be ${PROTOCOL_VERSION}`;
  if (v.role !== 'client' && v.role !== 'server') return 'hello role must be "client" or "server"';
  if (typeof v.nonce !== 'string' || !/^[0-9a-f]{64}$/.test(v.nonce)) return 'hello nonce must be 32 bytes of hex';
  if (typeof v.publicKey !== 'string' || !/^[0-9a-f]{64}$/.test(v.publicKey)) return 'hello publicKey must be 32 bytes of hex';
  if (v.keyKind !== 'cluster' && v.keyKind !== 'local') return 'hello keyKind must be "cluster" or "local"';
  return { protocol: v.protocol, role: v.role, nonce: v.nonce, publicKey: v.publicKey, keyKind: v.keyKind };
}

/**
 * The protocol version a parsed HELLO claims (read first: a peer of another version may shape the
 * rest differently), or a refusal: for a missing version, or one other than ours.
 */
export function checkHelloVersion(ownRole: PeerRole, value: unknown): Refusal | undefined {
  const protocol = typeof value === 'object' && value !== null ? (value as Record<string, unknown>).protocol : undefined;
  if (typeof protocol !== 'number' || !Number.isInteger(protocol)) return { code: 'protocol', reason: 'hello has no integer protocol version' };
  if (protocol === PROTOCOL_VERSION) return undefined;
  const [client, server] = ownRole === 'client' ? [PROTOCOL_VERSION, protocol] : [protocol, PROTOCOL_VERSION];
  return { code: 'version', reason: `protocol version mismatch: the client speaks ${client}, the server ${server}; run the same cairn version on every node` };
}

/**
 * Compares the peer's HELLO with ours; returns the refusal to send, or undefined when the two can
 * go on. Both sides reach the same verdict. Reasons name the client and the server rather than
 * "this node", since either side may be the one that reports them.
 */
export function checkPeerHello(own: HelloMessage, peer: HelloMessage): Refusal | undefined {
  if (peer.role === own.role) return { code: 'role', reason: `both ends claim the ${own.role} role` };
  if (peer.keyKind !== own.keyKind) {
    const client = own.role === 'client' ? own : peer;
    const [withKey, without] = client.keyKind === 'cluster' ? ['client', 'server'] : ['server', 'client'];
    return {
      code: 'auth',
      reason:
        `the ${withKey} requires a cluster key and the ${without} has none ` +
        '(without --cluster-key a node uses only this machine\'s local key and accepts only local connections); give both the same key',
    };
  }
  return undefined;
}

/** Checks the shape of a parsed IDENTITY; returns it or what is wrong. */
export function validateIdentity(value: unknown): IdentityMessage | string {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'identity is not a JSON object';
  const v = value as Record<string, unknown>;
  for (const field of ['nodeId', 'name', 'compatibility'] as const) {
    if (typeof v[field] !== 'string' || (v[field] as string).length > MAX_TEXT)
      return `identity ${field} must be a string of at most ${MAX_TEXT} characters`;
    // These reach log lines and refusal reasons: a line break or escape sequence could forge them.
    if (CONTROL_CHARACTER.test(v[field] as string)) return `identity ${field} must not hold control characters`;
  }
  if (v.info !== undefined && (typeof v.info !== 'object' || v.info === null || Array.isArray(v.info))) return 'identity info must be an object';
  return { nodeId: v.nodeId as string, name: v.name as string, compatibility: v.compatibility as string, info: v.info as Record<string, unknown> | undefined };
}

/** The refusal for differing compatibility strings, or undefined when they match. */
export function checkCompatibility(role: PeerRole, own: IdentityMessage, peer: IdentityMessage): Refusal | undefined {
  if (own.compatibility === peer.compatibility) return undefined;
  const [client, server] = role === 'client' ? [own, peer] : [peer, own];
  return { code: 'compatibility', reason: `incompatible nodes: the client runs "${client.compatibility}", the server "${server.compatibility}"` };
}

/** A digest binding both HELLOs (as sent, byte for byte), client first. */
export function handshakeTranscript(clientHello: Buffer, serverHello: Buffer): Buffer {
  const lengths = Buffer.alloc(8);
  lengths.writeUInt32LE(clientHello.length, 0);
  lengths.writeUInt32LE(serverHello.length, 4);
  return createHash('sha256').update(lengths).update(clientHello).update(serverHello).digest();
}

/**
 * The record keys of this side from the cluster secret, its ephemeral private key, the peer's
 * public key and the transcript. Throws CLUSTER_PROTOCOL for a peer key that gives no secret
 * (a low-order point, which would make the keys depend on the cluster secret alone).
 */
export function deriveSessionKeys(psk: Buffer, role: PeerRole, privateKey: KeyObject, peerPublicKeyHex: string, transcript: Buffer): SessionKeys {
  let shared: Buffer;
  try {
    const publicKey = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: Buffer.from(peerPublicKeyHex, 'hex').toString('base64url') }, format: 'jwk' });
    shared = diffieHellman({ privateKey, publicKey });
  } catch (err) {
    throw new CairnError('CLUSTER_PROTOCOL', `the peer's handshake key is not usable: ${(err as Error).message}`);
  }
  if (shared.every((b) => b === 0)) throw new CairnError('CLUSTER_PROTOCOL', "the peer's handshake key is a low-order point");
  const okm = Buffer.from(hkdfSync('sha256', Buffer.concat([psk, shared]), transcript, KEY_LABEL, 64));
  const clientToServer = okm.subarray(0, 32);
  const serverToClient = okm.subarray(32, 64);
  return role === 'client' ? { send: clientToServer, receive: serverToClient } : { send: serverToClient, receive: clientToServer };
}

/** The error for a refused handshake; `byPeer` tells whether the other side refused or we did. */
export function refusalError(refusal: Refusal, byPeer: boolean): CairnError {
  const code = refusal.code === 'auth' ? 'CLUSTER_AUTH' : refusal.code === 'timeout' ? 'CLUSTER_TIMEOUT' : 'CLUSTER_REFUSED';
  const who = byPeer ? 'peer refused the connection' : 'connection refused';
  return new CairnError(code, `${who}: ${refusal.reason}`);
}

/** Checks a REFUSE payload from the wire; anything odd becomes a generic protocol refusal. */
export function validateRefusal(value: unknown): Refusal {
  const codes: readonly string[] = ['version', 'compatibility', 'auth', 'role', 'loopback-only', 'protocol', 'timeout', 'shutting-down', 'busy'];
  if (typeof value === 'object' && value !== null) {
    const v = value as Record<string, unknown>;
    if (typeof v.code === 'string' && codes.includes(v.code) && typeof v.reason === 'string') {
      return { code: v.code as Refusal['code'], reason: v.reason.slice(0, MAX_TEXT) };
    }
  }
  return { code: 'protocol', reason: 'the peer refused the connection without a readable reason' };
}
