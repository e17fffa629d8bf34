/**
 * Runs `cairn serve` as a real child process for tests: waits for its listening line, can wait
 * for /health to say ready, and stops it (SIGTERM, then SIGKILL if it hangs).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { Worker } from 'node:worker_threads';
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
  // Cluster tests compare answers with one process bit for bit, which holds with hidden states sent
  // as f32. Left to choose, a coordinator on a busy machine may measure loopback slow enough to pick
  // f16 (and then its rounding at stage boundaries moves with every new plan); a test that wants
  // f16 says so.
  const wire = args.includes('--cluster') && !args.includes('--activations') ? ['--activations', 'f32'] : [];
  const argv = [...prefix, process.execPath, join(ROOT, 'bin/cairn.js'), 'serve', '--port', '0', ...args, ...wire];
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

/** The poll loop of watchHealth, run in a worker thread of its own. */
const HEALTH_POLLER = `
const { parentPort, workerData } = require('node:worker_threads');
const { url, everyMs, timeoutMs } = workerData;
let running = true;
let polls = 0;
let slowestMs = 0;
const failures = [];
parentPort.on('message', () => (running = false));
(async () => {
  while (running) {
    const t0 = performance.now();
    try {
      const r = await fetch(url + '/health', { signal: AbortSignal.timeout(timeoutMs) });
      await r.arrayBuffer();
      if (r.status !== 200) failures.push(String(r.status));
    } catch (err) {
      failures.push(err.message);
    }
    polls++;
    slowestMs = Math.max(slowestMs, performance.now() - t0);
    if (polls === 1) parentPort.postMessage('polling');
    await new Promise((r) => setTimeout(r, everyMs));
  }
  parentPort.postMessage({ polls, slowestMs, failures });
})();
`;

/**
 * Polls `${url}/health` one request after another (a pause of `everyMs` between them) until
 * stopped, timing each answer: how a test sees whether the server's event loop stayed free. The
 * polls run in a worker thread, so a test busy with its own load does not delay them.
 */
export function watchHealth(url: string, everyMs = 50, timeoutMs = 10_000): { started: Promise<void>; stop(): Promise<HealthWatch> } {
  const worker = new Worker(HEALTH_POLLER, { eval: true, workerData: { url, everyMs, timeoutMs } });
  let started!: () => void;
  const result = new Promise<HealthWatch>((resolve, reject) => {
    worker.on('message', (m: HealthWatch | 'polling') => (m === 'polling' ? started() : resolve(m)));
    worker.once('error', reject);
  });
  return {
    /** Settles once the first poll was answered. */
    started: new Promise<void>((resolve) => (started = resolve)),
    async stop() {
      worker.postMessage('stop');
      const seen = await result;
      await worker.terminate();
      return seen;
    },
  };
}
