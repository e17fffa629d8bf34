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
