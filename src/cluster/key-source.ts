/**
 * Where a process gets its cluster key: `--cluster-key-file` (kept out of `ps`), the
 * CAIRN_CLUSTER_KEY environment variable, or `--cluster-key` on the command line (visible to other
 * local users in `ps`, so it comes with a warning). Without any of them the process uses this
 * machine's local key and talks only to processes of the same user on this machine.
 */

import { readFileSync, statSync } from 'node:fs';
import { CairnError } from '../util/errors.js';
import { type ClusterSecret, checkKeyStrength, deriveClusterSecret } from './cluster-key.js';

/** What the user gave. */
export interface KeySourceOptions {
  /** --cluster-key */
  readonly key?: string;
  /** --cluster-key-file */
  readonly keyFile?: string;
  /** --allow-weak-key */
  readonly allowWeak?: boolean;
  /** The environment to read CAIRN_CLUSTER_KEY from (default process.env). */
  readonly env?: NodeJS.ProcessEnv;
}

/** The resolved key: its secret (undefined: use the local key), where it came from, and warnings to print. */
export interface ResolvedKey {
  readonly secret: ClusterSecret | undefined;
  readonly source: 'file' | 'environment' | 'command line' | 'local';
  readonly warnings: readonly string[];
}

const MAX_KEY_FILE_BYTES = 4096;

/** Resolves and derives the cluster key; throws CLUSTER_AUTH or BAD_ARGUMENT saying what to do. */
export async function resolveClusterKey(options: KeySourceOptions): Promise<ResolvedKey> {
  const env = options.env ?? process.env;
  const given = [options.key !== undefined, options.keyFile !== undefined].filter(Boolean).length;
  if (given > 1) throw new CairnError('BAD_ARGUMENT', 'give the cluster key one way: --cluster-key or --cluster-key-file, not both');
  const warnings: string[] = [];
  let text: string;
  let source: ResolvedKey['source'];
  if (options.keyFile !== undefined) {
    text = readKeyFile(options.keyFile);
    source = 'file';
  } else if (options.key !== undefined) {
    text = options.key;
    source = 'command line';
    warnings.push('a key given with --cluster-key is visible to other users of this machine (ps); prefer --cluster-key-file or CAIRN_CLUSTER_KEY');
  } else if (env.CAIRN_CLUSTER_KEY !== undefined && env.CAIRN_CLUSTER_KEY !== '') {
    text = env.CAIRN_CLUSTER_KEY;
    source = 'environment';
  } else {
    return { secret: undefined, source: 'local', warnings };
  }
  checkKeyStrength(text, options.allowWeak);
  return { secret: await deriveClusterSecret(text), source, warnings };
}

function readKeyFile(path: string): string {
  let st;
  try {
    st = statSync(path);
  } catch (err) {
    throw new CairnError('BAD_ARGUMENT', `cannot read the cluster key file ${path}: ${(err as Error).message}`);
  }
  if (!st.isFile()) throw new CairnError('BAD_ARGUMENT', `the cluster key file ${path} is not a file`);
  if (st.size > MAX_KEY_FILE_BYTES) throw new CairnError('BAD_ARGUMENT', `the cluster key file ${path} is larger than ${MAX_KEY_FILE_BYTES} bytes; it should hold one key`);
  if (process.platform !== 'win32' && (st.mode & 0o077) !== 0) {
    throw new CairnError('CLUSTER_AUTH', `the cluster key file ${path} can be read by other users; run \`chmod 600 ${path}\``);
  }
  const text = readFileSync(path, 'utf8').trim();
  if (text.includes('\n')) throw new CairnError('BAD_ARGUMENT', `the cluster key file ${path} has more than one line; it should hold one key`);
  return text;
}
