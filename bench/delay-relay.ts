/**
 * Builds and starts bench/delay-relay.c: the emulated clusters' slow links where the kernel has
 * no `tc netem` (see the C file for what it does and why it is C).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

const SOURCE = resolve(import.meta.dirname, '../../bench/delay-relay.c');

/** Compiles the relay into `dir` (once; again when the source is newer) and returns its path. */
export function buildDelayRelay(dir: string): string {
  const out = join(dir, 'delay-relay');
  if (existsSync(out) && statSync(out).mtimeMs >= statSync(SOURCE).mtimeMs) return out;
  mkdirSync(dir, { recursive: true });
  try {
    execFileSync('cc', ['-O2', '-o', out, SOURCE], { stdio: 'pipe' });
  } catch (e) {
    throw new Error(`cannot build ${SOURCE} (needs a C compiler, e.g. apt-get install gcc): ${(e as { stderr?: Buffer }).stderr ?? e}`);
  }
  return out;
}

/** One relayed address: connections to `listen` ("ip:port") are carried to `target` ("ip:port"). */
export interface RelayRoute {
  readonly listen: string;
  readonly target: string;
}

/** A running relay. */
export interface DelayRelay {
  readonly proc: ChildProcess;
  stop(): Promise<void>;
}

/** How a link is slowed: one-way delay and rate (0: no cap). */
export interface LinkShape {
  readonly delayMs: number;
  readonly rateBitsPerSecond: number;
}

/** Parses "0.1ms/10gbit" (as `tc` spells them: us/ms/s, bit/kbit/mbit/gbit). */
export function parseLinkShape(text: string): LinkShape {
  const m = /^([\d.]+)(us|ms|s)\/([\d.]+)(bit|kbit|mbit|gbit)$/i.exec(text.trim());
  if (!m) throw new Error(`link "${text}" is not DELAY/RATE such as 0.1ms/10gbit`);
  const delayMs = Number(m[1]) * { us: 1e-3, ms: 1, s: 1e3 }[m[2].toLowerCase() as 'us' | 'ms' | 's'];
  const rate = Number(m[3]) * { bit: 1, kbit: 1e3, mbit: 1e6, gbit: 1e9 }[m[4].toLowerCase() as 'bit' | 'kbit' | 'mbit' | 'gbit'];
  return { delayMs, rateBitsPerSecond: rate };
}

/** Starts the relay (optionally under a command prefix such as `ip netns exec NS`) and waits until it listens. */
export async function startDelayRelay(binary: string, shape: LinkShape, routes: RelayRoute[], prefix: string[] = []): Promise<DelayRelay> {
  const argv = [...prefix, binary, String(shape.delayMs * 1000), String(shape.rateBitsPerSecond), ...routes.map((r) => `${r.listen}=${r.target}`)];
  const proc = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  await new Promise<void>((resolveReady, reject) => {
    proc.stdout!.once('data', () => resolveReady());
    proc.once('exit', (code) => reject(new Error(`delay-relay exited with ${code}: ${err}`)));
  });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  return {
    proc,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGKILL');
      await exited;
    },
  };
}
