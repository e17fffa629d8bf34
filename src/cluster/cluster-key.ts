/**
 * Cluster keys: what a user types or stores, and the 32-byte pre-shared secret the handshake uses.
 *
 * Two forms are accepted. A generated key (`cairn cluster key`) is `ck1_` followed by 32 random
 * bytes in base64url; it already has full strength, so HKDF turns it into the secret. Anything
 * else is a passphrase: it goes through scrypt (about half a second and 128 MiB), so that each
 * guess of an attacker who captured an exchange costs the same, and passphrases shorter than
 * MIN_PASSPHRASE_CHARS are refused unless the user insists.
 */

import { hkdfSync, randomBytes, scrypt, scryptSync } from 'node:crypto';
import { CairnError } from '../util/errors.js';

/** Where a secret came from: a key shared by the cluster, or this machine's local key (loopback only). */
export type ClusterKeyKind = 'cluster' | 'local';

/** The derived secret of a cluster key, ready for handshakes. */
export interface ClusterSecret {
  /** 32 bytes mixed into every session's key derivation; never sent. */
  readonly psk: Buffer;
  readonly kind: ClusterKeyKind;
}

/** Prefix of generated keys. */
export const GENERATED_KEY_PREFIX = 'ck1_';
/** Passphrases shorter than this are refused unless explicitly allowed. */
export const MIN_PASSPHRASE_CHARS = 16;
/** Longest key text accepted (a passphrase is not a document). */
const MAX_KEY_CHARS = 1024;

/**
 * scrypt cost: N = 2^17, r = 8 (128 MiB, ~0.3-0.7 s on a desktop core). The salt is fixed: the
 * passphrase is the only thing nodes share, and a per-cluster salt would have to travel with it.
 */
const SCRYPT = { N: 1 << 17, r: 8, p: 1, maxmem: 256 << 20 } as const;
const SCRYPT_SALT = Buffer.from('cairn-cluster-key/1 scrypt', 'utf8');
const HKDF_SALT = Buffer.from('cairn-cluster-key/1', 'utf8');
const GENERATED_PATTERN = /^ck1_[A-Za-z0-9_-]{43}$/;

/** A fresh random 256-bit key in the generated form. */
export function generateClusterKey(): string {
  return GENERATED_KEY_PREFIX + randomBytes(32).toString('base64url');
}

/** True when `text` has the form of a generated key. */
export function isGeneratedKey(text: string): boolean {
  return GENERATED_PATTERN.test(text);
}

/**
 * Checks a key's text before deriving it; throws CLUSTER_AUTH saying what to do when it is empty,
 * too long, or a passphrase shorter than MIN_PASSPHRASE_CHARS (unless `allowWeak`).
 */
export function checkKeyStrength(text: string, allowWeak = false): void {
  if (text.length === 0) throw new CairnError('CLUSTER_AUTH', 'the cluster key is empty; run `cairn cluster key` to make one');
  if (text.length > MAX_KEY_CHARS) throw new CairnError('CLUSTER_AUTH', `the cluster key is longer than ${MAX_KEY_CHARS} characters`);
  if (isGeneratedKey(text) || allowWeak) return;
  if (text.startsWith(GENERATED_KEY_PREFIX))
    throw new CairnError('CLUSTER_AUTH', `the cluster key starts with ${GENERATED_KEY_PREFIX} but is not a whole generated key; copy all of it`);
  if ([...text].length < MIN_PASSPHRASE_CHARS) {
    throw new CairnError(
      'CLUSTER_AUTH',
      `the cluster key is a passphrase of fewer than ${MIN_PASSPHRASE_CHARS} characters, which an attacker who records one connection can guess offline. ` +
        'Use a key from `cairn cluster key` (or a longer passphrase), or pass --allow-weak-key to accept it anyway',
    );
  }
}

/** Derives the secret of a key without blocking the event loop (scrypt runs in the thread pool). */
export async function deriveClusterSecret(text: string, kind: ClusterKeyKind = 'cluster'): Promise<ClusterSecret> {
  const cached = derived.get(cacheKey(text, kind));
  if (cached) return cached;
  let psk: Buffer;
  if (isGeneratedKey(text)) {
    psk = fromGenerated(text);
  } else {
    psk = await new Promise<Buffer>((resolve, reject) =>
      scrypt(passphraseBytes(text), SCRYPT_SALT, 32, SCRYPT, (err, key) => (err ? reject(err) : resolve(key))),
    );
  }
  return remember(text, kind, psk);
}

/**
 * The same, synchronously (a passphrase blocks the caller for the scrypt time, once per process:
 * results are kept). For library use with a string key; the CLI derives ahead with deriveClusterSecret.
 */
export function deriveClusterSecretSync(text: string, kind: ClusterKeyKind = 'cluster'): ClusterSecret {
  const cached = derived.get(cacheKey(text, kind));
  if (cached) return cached;
  const psk = isGeneratedKey(text) ? fromGenerated(text) : scryptSync(passphraseBytes(text), SCRYPT_SALT, 32, SCRYPT);
  return remember(text, kind, psk);
}

const derived = new Map<string, ClusterSecret>();

function cacheKey(text: string, kind: ClusterKeyKind): string {
  return `${kind}\0${text}`;
}

function remember(text: string, kind: ClusterKeyKind, psk: Buffer): ClusterSecret {
  const secret = Object.freeze({ psk, kind });
  derived.set(cacheKey(text, kind), secret);
  return secret;
}

function fromGenerated(text: string): Buffer {
  const raw = Buffer.from(text.slice(GENERATED_KEY_PREFIX.length), 'base64url');
  return Buffer.from(hkdfSync('sha256', raw, HKDF_SALT, 'psk', 32));
}

/** The same passphrase typed on different systems must give the same bytes. */
function passphraseBytes(text: string): Buffer {
  return Buffer.from(text.normalize('NFKC'), 'utf8');
}
