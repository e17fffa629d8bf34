/**
 * Who a node is: a stable random id and a name. The id survives restarts when a state directory
 * is given, so the cluster recognizes a node that comes back instead of counting it twice.
 */

import { randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { CairnError } from '../util/errors.js';

/** A node's stable identity. */
export interface NodeIdentity {
  /** Random UUID, stable across restarts when persisted. */
  readonly id: string;
  /** Human-readable; defaults to the host name. */
  readonly name: string;
}

/** File name of the persisted identity inside the state directory. */
export const IDENTITY_FILE = 'node-identity.json';

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Loads the node identity from `dir`, creating and saving a new one when none exists there.
 * Without `dir` the identity is fresh for this process. `name` overrides the stored name.
 * A corrupt identity file is a BAD_ARGUMENT error naming the file (deleting it makes a new node).
 */
export async function loadNodeIdentity(options: { dir?: string; name?: string } = {}): Promise<NodeIdentity> {
  const name = options.name ?? hostname();
  if (options.dir === undefined) return { id: randomUUID(), name };
  const path = join(options.dir, IDENTITY_FILE);
  let text: string | undefined;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
      throw new CairnError('BAD_ARGUMENT', `cannot read ${path}: ${(err as Error).message}`);
  }
  if (text !== undefined) {
    const stored = parseIdentity(text);
    if (!stored) throw new CairnError('BAD_ARGUMENT', `${path} is not a valid node identity; delete it to give this node a new id`);
    const identity = { id: stored.id, name: options.name ?? stored.name };
    if (identity.name !== stored.name) await saveIdentity(options.dir, path, identity);
    return identity;
  }
  const identity = { id: randomUUID(), name };
  await saveIdentity(options.dir, path, identity);
  return identity;
}

function parseIdentity(text: string): NodeIdentity | undefined {
  try {
    const v = JSON.parse(text) as Record<string, unknown>;
    if (typeof v?.id === 'string' && UUID_PATTERN.test(v.id) && typeof v.name === 'string') return { id: v.id, name: v.name };
  } catch {
    // Not JSON: reported by the caller with the file's path.
  }
  return undefined;
}

async function saveIdentity(dir: string, path: string, identity: NodeIdentity): Promise<void> {
  await mkdir(dir, { recursive: true });
  // Write then rename, so a crash never leaves a half-written identity behind.
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, `${JSON.stringify(identity, null, 2)}\n`, 'utf8');
  await rename(temporary, path);
}
