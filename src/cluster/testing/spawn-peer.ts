/** Starts peer-process.ts as a child process and waits until it listens. */

import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { PeerProcessSettings } from './peer-process.js';

/** A running child node. */
export interface SpawnedPeer {
  readonly child: ChildProcess;
  readonly port: number;
  readonly pid: number;
}

/** Spawns a child node with `settings` and resolves once it prints its port (rejects after 10 s). */
export function spawnPeer(settings: PeerProcessSettings): Promise<SpawnedPeer> {
  const script = fileURLToPath(new URL('./peer-process.js', import.meta.url));
  const child = spawn(process.execPath, [script, JSON.stringify(settings)], { stdio: ['pipe', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`peer process did not start within 10 s: ${err}`));
    }, 10_000);
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n')) {
        clearTimeout(timer);
        const parsed = JSON.parse(line) as { port: number; pid: number };
        resolve({ child, port: parsed.port, pid: parsed.pid });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`peer process exited with ${code} before listening: ${err}`));
    });
  });
}
