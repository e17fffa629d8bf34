/**
 * The external oracle: llama.cpp through node-llama-cpp (a devDependency, pinned). Given a GGUF
 * file and prompt token ids, it returns llama.cpp's greedy continuation on the CPU with flash
 * attention off, and for each step the probabilities it saw (to tell a genuine near-tie apart).
 *
 * On a CPU with AMX, node-llama-cpp 3.21.1 takes llama.cpp's AMX kernels and aborts the process on
 * some models (DeepSeek's 3-D attention weights in Q8_0: GGML_ASSERT(*cur_backend_id != -1)). There
 * the oracle runs in a child process to which Linux refuses the tile state (no-amx.py), so
 * llama.cpp takes its AVX-512 kernels as on any other CPU.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Llama } from 'node-llama-cpp';
import { ROOT } from './paths.js';

let llamaPromise: Promise<Llama> | undefined;

async function llama(): Promise<Llama> {
  const { getLlama } = await import('node-llama-cpp');
  llamaPromise ??= getLlama({ gpu: false, build: 'never', logLevel: 'error' as never, progressLogs: false });
  return llamaPromise;
}

/** One greedy step of llama.cpp: the chosen token and the next-token probabilities. */
export interface OracleStep {
  readonly token: number;
  readonly probabilities: ReadonlyMap<number, number>;
}

/** Options of an oracle run. */
export interface OracleOptions {
  readonly threads?: number;
  readonly kvType?: 'F16' | 'F32' | 'Q8_0';
  /** llama.cpp's flash attention (off unless asked: a quantized V cache needs it). */
  readonly flashAttention?: boolean;
}

/** Whether llama.cpp would take its AMX kernels here (Linux on a CPU with AMX-INT8). */
function cpuHasAmx(): boolean {
  if (process.platform !== 'linux' || process.arch !== 'x64') return false;
  try {
    return /\bamx_int8\b/.test(readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    return false;
  }
}

const runInChild = cpuHasAmx();

/** llama.cpp's greedy steps after `prompt` (ids, BOS included by the caller). */
export async function llamaCppGreedy(path: string, prompt: readonly number[], steps: number, opts: OracleOptions = {}): Promise<OracleStep[]> {
  return runInChild ? greedyInChild(path, prompt, steps, opts) : llamaCppGreedyHere(path, prompt, steps, opts);
}

/** What the child prints: per step the token and the probabilities as parallel arrays. */
export type OracleWireStep = { token: number; ids: number[]; probabilities: number[] };

async function greedyInChild(path: string, prompt: readonly number[], steps: number, opts: OracleOptions): Promise<OracleStep[]> {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-oracle-'));
  try {
    const request = join(dir, 'request.json');
    writeFileSync(request, JSON.stringify({ path, prompt, steps, opts }));
    const child = spawn('python3', [join(ROOT, 'test/helpers/no-amx.py'), process.execPath, join(ROOT, 'dist/test/helpers/llama-cpp-child.js'), request], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    if (code !== 0) throw new Error(`llama.cpp oracle (child process without AMX) exited with ${code}: ${err.slice(-2000)}`);
    return (JSON.parse(out) as OracleWireStep[]).map((s) => ({ token: s.token, probabilities: new Map(s.ids.map((id, i) => [id, s.probabilities[i]])) }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** llamaCppGreedy in this process. */
export async function llamaCppGreedyHere(path: string, prompt: readonly number[], steps: number, opts: OracleOptions = {}): Promise<OracleStep[]> {
  const l = await llama();
  const model = await l.loadModel({ modelPath: path, gpuLayers: 0 });
  try {
    const ctx = await model.createContext({
      contextSize: Math.max(256, prompt.length + steps + 8),
      threads: opts.threads ?? 2,
      batchSize: 512,
      flashAttention: opts.flashAttention ?? false,
      experimentalKvCacheKeyType: opts.kvType ?? 'F16',
      experimentalKvCacheValueType: opts.kvType ?? 'F16',
    });
    try {
      const seq = ctx.getSequence();
      const out: OracleStep[] = [];
      for await (const r of seq.evaluateWithMetadata(prompt as never, { probabilities: true }, { temperature: 0, yieldEogToken: true })) {
        out.push({ token: r.token as number, probabilities: r.probabilities as ReadonlyMap<number, number> });
        if (out.length >= steps) break;
      }
      return out;
    } finally {
      await ctx.dispose();
    }
  } finally {
    await model.dispose();
  }
}
