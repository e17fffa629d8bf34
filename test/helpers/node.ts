/** Runs `cairn node` as a real child process for cluster tests. */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './paths.js';

/** A running node. */
export interface NodeProcess {
  readonly host: string;
  readonly port: number;
  readonly proc: ChildProcess;
  /** "host:port" for --peers. */
  readonly peer: string;
  stderr(): string;
  stop(): Promise<void>;
}

/** Starts `cairn node` on a free port with extra arguments (and an optional command prefix, e.g. `ip netns exec X`). */
export async function startNode(args: string[] = [], opts: { prefix?: string[]; env?: NodeJS.ProcessEnv } = {}): Promise<NodeProcess> {
  const prefix = opts.prefix ?? [];
  const argv = [...prefix, process.execPath, join(ROOT, 'bin/cairn.js'), 'node', '--port', '0', '--no-mdns', ...args];
  const proc = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...opts.env } });
  let err = '';
  const { host, port } = await new Promise<{ host: string; port: number }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node did not start: ${err}`)), 30_000);
    proc.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /listening on ([^\s;]+):(\d+)/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve({ host: m[1], port: Number(m[2]) });
      }
    });
    proc.on('exit', (code) => reject(new Error(`node exited with ${code}: ${err}`)));
  });
  const exited = new Promise<void>((r) => proc.on('exit', () => r()));
  return {
    host,
    port,
    proc,
    peer: `${host === '::' || host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`,
    stderr: () => err,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGKILL');
      await exited;
    },
  };
}
