/**
 * Errors a user causes that reach the command line as Node's own (a port in use, an address the
 * machine lacks, a directory where a file belongs, a full disk): each becomes one line saying what
 * to do, never a stack trace. Checks that catch such mistakes before work starts are here too.
 */
import { existsSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { CairnError } from '../util/errors.js';

/** Node's system error fields. */
interface SystemError {
  readonly code?: unknown;
  readonly syscall?: unknown;
  readonly address?: unknown;
  readonly port?: unknown;
  readonly path?: unknown;
  readonly dest?: unknown;
  readonly message?: unknown;
}

/** The one line to print for a system error a user caused, or undefined for anything else (a bug). */
export function userErrorLine(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as SystemError;
  const code = typeof e.code === 'string' ? e.code : undefined;
  if (!code) return undefined;
  const where = e.address !== undefined ? `${String(e.address)}${e.port !== undefined ? `:${String(e.port)}` : ''}` : '';
  const path = typeof e.path === 'string' ? e.path : undefined;
  const listening = e.syscall === 'listen' || e.syscall === 'bind';
  switch (code) {
    case 'EADDRINUSE':
      return `${where || 'the port'} is already in use: stop what holds it, or choose another port with --port (0 picks a free one)`;
    case 'EADDRNOTAVAIL':
      return `this machine has no address ${String(e.address ?? '')}: listen on one of its own with --host (127.0.0.1 for this machine only, 0.0.0.0 for every interface)`;
    case 'ERR_SOCKET_BAD_PORT':
      return 'the port must be a whole number from 0 to 65535 (0 picks a free one)';
    case 'EACCES':
    case 'EPERM':
      if (listening) return `not allowed to listen on ${where}: ports below 1024 need privileges; choose another with --port`;
      return `${path ?? 'a file'}: permission denied`;
    case 'EISDIR':
      return `${path ?? 'the path'} is a directory: name a file (e.g. ${path ? `${path.replace(/\/$/, '')}/model.gguf` : 'dir/model.gguf'})`;
    case 'ENOENT':
      return `${path ?? 'a file'}: no such file or directory`;
    case 'ENOTDIR':
      return `${path ?? 'a path'}: a part of the path is not a directory`;
    case 'ENOSPC':
      return `no space left on the device${path ? ` (writing ${path})` : ''}: free some, or write elsewhere`;
    case 'EMFILE':
    case 'ENFILE':
      return 'too many open files: raise the limit (ulimit -n)';
    default:
      // Another system call failure (it has a syscall) is still the machine's answer, not a bug.
      return typeof e.syscall === 'string' && typeof e.message === 'string' ? e.message : undefined;
  }
}

/** Fails clearly, before any work, when `path` cannot be a file to write (a directory, or in a missing one). */
export function checkOutputFile(path: string, option = '--out'): void {
  if (existsSync(path) && statSync(path).isDirectory()) {
    throw new CairnError('BAD_ARGUMENT', `${option} ${path} is a directory: name a file in it (e.g. ${path.replace(/\/$/, '')}/model.gguf)`);
  }
  const dir = dirname(path);
  if (!existsSync(dir)) throw new CairnError('BAD_ARGUMENT', `${option} ${path}: the directory ${dir} does not exist; create it first`);
  if (!statSync(dir).isDirectory()) throw new CairnError('BAD_ARGUMENT', `${option} ${path}: ${dir} is not a directory`);
}

/** Fails clearly when `path` is not a model file that exists (before a server listens or a cluster forms). */
export function checkModelFile(path: string, option = '-m'): void {
  if (!existsSync(path)) throw new CairnError('BAD_ARGUMENT', `${path}: no such file; give the path of a .gguf model file with ${option}`);
  if (statSync(path).isDirectory()) throw new CairnError('BAD_ARGUMENT', `${path} is a directory; give the path of a .gguf model file with ${option}`);
}
