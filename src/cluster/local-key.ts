/**
 * This machine's local cluster key: what nodes and coordinators use when no cluster key is given.
 * Loopback connections authenticate like any other, so "no key" cannot mean "no check": the
 * first cairn process of a user makes up a random key and writes it to a file only that user can
 * read; every later process of the same user reads it there. Another local user cannot read the
 * file, so cannot talk to these nodes.
 */

import { closeSync, linkSync, mkdirSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { CairnError } from '../util/errors.js';
import { type ClusterSecret, deriveClusterSecretSync, generateClusterKey, isGeneratedKey } from './cluster-key.js';

/** File name of the local key inside the state folder. */
export const LOCAL_KEY_FILE = 'local-cluster.key';

/** Where cairn keeps per-user state: $CAIRN_STATE_DIR, else $XDG_STATE_HOME/cairn, else ~/.local/state/cairn. */
export function stateDir(): string {
  if (process.env.CAIRN_STATE_DIR) return process.env.CAIRN_STATE_DIR;
  return join(process.env.XDG_STATE_HOME ?? join(homedir(), '.local', 'state'), 'cairn');
}

/** Path of this user's local cluster key. */
export function localKeyPath(): string {
  return join(stateDir(), LOCAL_KEY_FILE);
}

/**
 * The local key's secret, creating the key file on first use. The file is read and checked on
 * every call (a connection is rare next to a stat), so a key made readable to others stops being
 * used at once. Throws CLUSTER_AUTH saying what to do.
 */
export function localClusterSecret(): ClusterSecret {
  return deriveClusterSecretSync(readOrCreate(localKeyPath()), 'local');
}

function readOrCreate(path: string): string {
  try {
    return readChecked(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const dir = stateDir();
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    // Write a private temporary file, then link it into place: linking fails if another process
    // won the race, and nobody ever reads a half-written key.
    const temporary = `${path}.${process.pid}.${Date.now()}.tmp`;
    const fd = openSync(temporary, 'wx', 0o600);
    try {
      writeSync(fd, `${generateClusterKey()}\n`);
    } finally {
      closeSync(fd);
    }
    try {
      linkSync(temporary, path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      unlinkSync(temporary);
    }
  } catch (err) {
    throw new CairnError(
      'CLUSTER_AUTH',
      `cannot create this machine's local cluster key at ${path}: ${(err as Error).message}. ` +
        'Set CAIRN_STATE_DIR to a writable folder, or give every node the same --cluster-key',
      { cause: err },
    );
  }
  return readChecked(path);
}

/** Reads the key file, refusing one that others could read or replace. */
function readChecked(path: string): string {
  const st = statSync(path);
  if (process.platform !== 'win32' && typeof process.getuid === 'function') {
    if (st.uid !== process.getuid())
      throw new CairnError('CLUSTER_AUTH', `the local cluster key ${path} belongs to another user; remove it, or set CAIRN_STATE_DIR`);
    if ((st.mode & 0o077) !== 0)
      throw new CairnError('CLUSTER_AUTH', `the local cluster key ${path} can be read by other users; run \`chmod 600 ${path}\` (or remove it to make a new one)`);
  }
  if (st.size > 4096) throw new CairnError('CLUSTER_AUTH', `the local cluster key ${path} is not a key (too large); remove it to make a new one`);
  const text = readFileSync(path, 'utf8').trim();
  if (!isGeneratedKey(text)) throw new CairnError('CLUSTER_AUTH', `the local cluster key ${path} is damaged; remove it to make a new one`);
  return text;
}
