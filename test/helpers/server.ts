/**
 * Runs `cairn serve` as a real child process for tests: waits for its listening line, can wait
 * for /health to say ready, and stops it (SIGTERM, then SIGKILL if it hangs).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './paths.js';

/** A running server. */
export interface ServerProcess {
  readonly url: string;
  readonly proc: ChildProcess;
  /** Everything it printed on stderr so far. */
  stderr(): string;
  /** Polls /health until it answers 200. */
  ready(timeoutMs?: number): Promise<void>;
  /** Sends SIGTERM and resolves with the exit code. */
  stop(): Promise<number | null>;
}

/** Starts `cairn serve` with the given arguments on a free port. */
export async function startServer(args: string[], env: NodeJS.ProcessEnv = {}, prefix: string[] = []): Promise<ServerProcess> {
  const argv = [...prefix, process.execPath, join(ROOT, 'bin/cairn.js'), 'serve', '--port', '0', ...args];
  const proc = spawn(argv[0], argv.slice(1), {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${err}`)), 30_000);
    proc.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /listening on (http:\/\/[^\s]+)/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    proc.on('exit', (code) => reject(new Error(`server exited with ${code}: ${err}`)));
  });
  return {
    url,
    proc,
    stderr: () => err,
    async ready(timeoutMs = 60_000) {
      const end = Date.now() + timeoutMs;
      while (Date.now() < end) {
        const r = await fetch(`${url}/health`).catch(() => undefined);
        if (r?.status === 200) return;
        await new Promise((res) => setTimeout(res, 20));
      }
      throw new Error(`server not ready: ${err}`);
    },
    async stop() {
      if (proc.exitCode !== null) return proc.exitCode;
      // A second SIGTERM would force the exit; send one only if none was sent.
      if (!proc.killed) proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** What a health watch saw. */
export interface HealthWatch {
  /** Polls made. */
  readonly polls: number;
  /** The slowest answer, in ms (a poll that got no answer counts with the time it waited). */
  readonly slowestMs: number;
  /** Polls that did not answer 200, each as "status" or an error message. */
  readonly failures: readonly string[];
}

/**
 * Polls `${url}/health` one request after another (a pause of `everyMs` between them) until
 * stopped, timing each answer: how a test sees whether the server's event loop stayed free.
 */
export function watchHealth(url: string, everyMs = 50, timeoutMs = 10_000): { stop(): Promise<HealthWatch> } {
  let running = true;
  let polls = 0;
  let slowestMs = 0;
  const failures: string[] = [];
  const loop = (async () => {
    while (running) {
      const t0 = performance.now();
      try {
        const r = await fetch(`${url}/health`, { signal: AbortSignal.timeout(timeoutMs) });
        await r.arrayBuffer();
        if (r.status !== 200) failures.push(String(r.status));
      } catch (err) {
        failures.push((err as Error).message);
      }
      polls++;
      slowestMs = Math.max(slowestMs, performance.now() - t0);
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { polls, slowestMs, failures };
    },
  };
}
