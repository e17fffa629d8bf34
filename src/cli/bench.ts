/**
 * `cairn bench`: prefill and decode speed, load time and memory of a model, optionally side by side
 * with llama.cpp (node-llama-cpp, and/or a llama-bench binary built for the machine) on the same
 * file, threads, context and batch, measured runs alternating between the engines. `--make-model` writes random-weight models of real shapes to benchmark with.
 */
import { resolveModelArg } from './model-arg.js';
import { Command, InvalidArgumentError, Option } from 'commander';
import { fork, type ChildProcess } from 'node:child_process';
import { statSync } from 'node:fs';
import { totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { GgmlType, ggmlRowBytes } from '../gguf/ggml-types.js';
import { readGguf } from '../gguf/reader.js';
import { adviseWillNeed, createKernels, cpuInfo, evictFile, openMapping, readBandwidth } from '../kernels/index.js';
import { readModelConfig } from '../model/config.js';
import { modelBytes } from '../model/model-bytes.js';
import { SYNTHETIC_SHAPES, writeSyntheticModel, type SyntheticQuant, type SyntheticShape } from '../model/synthetic.js';
import { CairnError } from '../util/errors.js';
import { formatBytes } from '../util/format.js';
import { intArg } from './options.js';
import { checkOutputFile } from './user-errors.js';
import type { BenchCommand, BenchReply, WorkerSpec } from '../../bench/protocol.js';
import { LlamaBench } from './bench-llama-bench.js';
import { ProgressReporter } from '../util/progress.js';

const QUANTS: Record<string, SyntheticQuant> = {
  F32: GgmlType.F32,
  F16: GgmlType.F16,
  BF16: GgmlType.BF16,
  Q8_0: GgmlType.Q8_0,
  Q4_0: GgmlType.Q4_0,
  Q4_1: GgmlType.Q4_1,
  Q5_0: GgmlType.Q5_0,
  Q5_1: GgmlType.Q5_1,
  Q2_K: GgmlType.Q2_K,
  Q3_K: GgmlType.Q3_K,
  Q4_K: GgmlType.Q4_K,
  Q5_K: GgmlType.Q5_K,
  Q6_K: GgmlType.Q6_K,
  IQ4_XS: GgmlType.IQ4_XS,
  IQ4_NL: GgmlType.IQ4_NL,
  IQ1_S: GgmlType.IQ1_S,
  IQ1_M: GgmlType.IQ1_M,
  IQ2_XXS: GgmlType.IQ2_XXS,
  IQ2_XS: GgmlType.IQ2_XS,
  IQ2_S: GgmlType.IQ2_S,
  IQ3_XXS: GgmlType.IQ3_XXS,
  IQ3_S: GgmlType.IQ3_S,
  Q3_K_M: 'Q3_K_M',
  Q4_K_M: 'Q4_K_M',
  Q5_K_M: 'Q5_K_M',
};

interface BenchFlags {
  model?: string;
  threads?: number;
  promptTokens: number;
  genTokens: number;
  repetitions: number;
  ctx: number;
  vsLlamaCpp?: boolean;
  llamaBench?: string;
  vsLlamaBench?: string;
  json?: boolean;
  oneAtATime?: boolean;
  makeModel?: string;
  copyPeriod?: number;
  layers?: number;
  cold?: boolean;
  quant: string;
  out?: string;
  seed: number;
  depth: number[];
  flashAttention: 'on' | 'off' | 'auto';
  kvType: 'f16' | 'f32' | 'q8_0';
  backend: 'cpu' | 'gpu';
}

/** Parses `--depth`: comma-separated token counts, `k` for 1024 (`0,4k,16k`). */
export function parseDepths(v: string): number[] {
  const out = v.split(',').map((x) => {
    const m = /^\s*(\d+)(k?)\s*$/i.exec(x);
    const n = m ? Number(m[1]) * (m[2] ? 1024 : 1) : NaN;
    if (!Number.isSafeInteger(n) || n < 0 || n > 1 << 22) throw new InvalidArgumentError(`expected token counts such as 0,4k,16k, got "${v}"`);
    return n;
  });
  return [...new Set(out)].sort((a, b) => a - b);
}

/** One engine's figures. */
export interface EngineFigures {
  engine: string;
  detail: string;
  loadMs: number;
  firstTokenMs: number;
  rssAfterLoadBytes: number;
  peakRssBytes: number;
  prefillTokensPerS: number;
  decodeTokensPerS: number;
  prefillRuns: number[];
  decodeRuns: number[];
  /** Why a peer stopped (it failed to load, or a run of it failed): its figures here are incomplete and get no ratios. */
  failed?: string;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Why a bench worker ended before replying, and what to do where that is known. */
function workerEndMessage(engine: string, code: number | null, signal: NodeJS.Signals | null): string {
  const how = signal ? `was ended by ${signal}` : `exited with code ${code}`;
  if (engine !== 'cairn' && signal === 'SIGABRT') {
    return (
      `the llama.cpp worker ${how} (llama.cpp's own message is above). On CPUs with AMX tiles, node-llama-cpp's prebuilt ` +
      `llama.cpp aborts on some models (its AMX buffer takes DeepSeek's 3-D attention weights in Q8_0); compare with ` +
      `--vs-llama-bench and a llama-bench built for this CPU (bench/build-llama-bench.sh) instead`
    );
  }
  return `the ${engine} worker ${how}`;
}

class Worker {
  private pending: ((r: BenchReply) => void) | undefined;
  readonly loaded: Promise<Extract<BenchReply, { type: 'loaded' }>>;
  private readonly proc: ChildProcess;

  constructor(spec: WorkerSpec) {
    const script = fileURLToPath(new URL('../../bench/worker.js', import.meta.url));
    this.proc = fork(script, [JSON.stringify(spec)], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    this.loaded = new Promise((resolve, reject) => {
      this.pending = (r) => (r.type === 'loaded' ? resolve(r) : reject(new CairnError('BAD_ARGUMENT', `${spec.engine === 'cairn' ? '' : `${spec.engine}: `}${r.type === 'error' ? r.message : 'unexpected reply'}`)));
    });
    this.proc.on('message', (m: BenchReply) => {
      const p = this.pending;
      this.pending = undefined;
      p?.(m);
    });
    this.proc.on('exit', (code, signal) => {
      const p = this.pending;
      this.pending = undefined;
      p?.({ type: 'error', message: workerEndMessage(spec.engine, code, signal) });
    });
  }

  run(cmd: BenchCommand): Promise<Extract<BenchReply, { type: 'result' }>> {
    return new Promise((resolve, reject) => {
      this.pending = (r) => (r.type === 'result' ? resolve(r) : reject(new CairnError('BAD_ARGUMENT', r.type === 'error' ? r.message : 'unexpected reply')));
      this.proc.send(cmd);
    });
  }

  /** Asks the worker to exit; resolves once it has (its memory is free again). */
  close(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return Promise.resolve();
    const exited = new Promise<void>((resolve) => this.proc.once('exit', () => resolve()));
    if (this.proc.connected) this.proc.send({ type: 'exit' } satisfies BenchCommand);
    else this.proc.kill();
    return exited;
  }
}

/** An engine as the measured rounds see it. */
interface Participant {
  readonly engine: string;
  /** Its figures at one depth. */
  figuresAt(depth: number): EngineFigures;
  /** One measured run after `depth` tokens in the cache: tokens per second. */
  run(kind: 'prefill' | 'decode', tokens: number, depth: number): Promise<number>;
  close(): Promise<void>;
  /** It fills the cache anew for every run and warms up inside it (llama-bench): no warm-up round at depth. */
  readonly warmsItself?: boolean;
  /**
   * A peer compared against (llama.cpp, llama-bench): when it fails, the bench goes on without it,
   * so that hours of cairn's own runs are not lost with it. cairn's own failures end the bench.
   */
  readonly peer?: boolean;
  /** Set when a peer failed: the depth of the failed run (-1: it never loaded) and why. */
  failure?: { depth: number; message: string };
}

/** Marks a peer failed at `depth` and says so (`warn`: a line that stays); later runs skip it. */
function failPeer(p: Participant, depth: number, e: unknown, warn: (line: string) => void): void {
  const message = e instanceof Error ? e.message : String(e);
  p.failure = { depth, message };
  warn(`${p.engine} failed${depth > 0 ? ` at depth ${depth}` : ''}: ${message}; the bench goes on without it`);
}

/** Figures of one engine at several depths, each made on first use from the load's figures. */
function figuresByDepth(base: () => EngineFigures): (depth: number) => EngineFigures {
  const at = new Map<number, EngineFigures>();
  return (depth) => {
    let f = at.get(depth);
    if (!f) at.set(depth, (f = { ...base(), prefillRuns: [], decodeRuns: [] }));
    return f;
  };
}

/**
 * A warm-up round and `repetitions` measured rounds, each a prefill run then a decode run of every
 * participant in turn (so a drift of the machine's speed touches them alike); the memory
 * bandwidth is measured before every decode run.
 */
async function rounds(
  parts: readonly Participant[],
  o: BenchFlags,
  depth: number,
  bandwidths: number[],
  progress: (line: string) => void,
  warn: (line: string) => void,
): Promise<void> {
  const phases = (o.promptTokens > 0 ? 1 : 0) + (o.genTokens > 0 ? 1 : 0);
  const skipped = depth > 0 ? parts.filter((p) => p.warmsItself).length : 0;
  const total = ((o.repetitions + 1) * parts.length - skipped) * phases;
  let step = 0;
  for (let rep = 0; rep <= o.repetitions; rep++) {
    for (const kind of ['prefill', 'decode'] as const) {
      const n = kind === 'prefill' ? o.promptTokens : o.genTokens;
      if (n === 0) continue;
      if (kind === 'decode') {
        // On a shared machine the bandwidth moves from minute to minute: measure it next to every
        // decode run, and take the best as the limit no decode run can pass.
        progress('measuring memory bandwidth');
        bandwidths.push(readBandwidth());
      }
      for (const p of parts) {
        if (rep === 0 && depth > 0 && p.warmsItself) continue;
        ++step;
        if (p.failure) continue;
        progress(`${rep === 0 ? 'warm-up' : `run ${rep}/${o.repetitions}`}: ${kind} ${n} tokens${depth ? ` at depth ${depth}` : ''} on ${p.engine} (${step}/${total})`);
        let tps: number;
        try {
          tps = await p.run(kind, n, depth);
        } catch (e) {
          if (!p.peer) throw e;
          failPeer(p, depth, e, warn);
          continue;
        }
        const f = p.figuresAt(depth);
        if (rep > 0) (kind === 'prefill' ? f.prefillRuns : f.decodeRuns).push(tps);
      }
    }
  }
}

/**
 * Whether the engines would not fit in memory together: cairn maps the file (its page cache),
 * llama.cpp and llama-bench each hold up to ~1.8x the file in repacked copies of the weights.
 */
export function enginesFitTogether(fileBytes: number, llamaCpp: boolean, llamaBench: boolean, memoryBytes: number): boolean {
  const need = fileBytes * (1 + (llamaCpp ? 1.8 : 0) + (llamaBench ? 1.8 : 0));
  return need <= 0.85 * memoryBytes;
}

/** Runs the benchmark and returns every figure. */
export async function runBench(o: BenchFlags, progress: (line: string) => void, warn: (line: string) => void = progress): Promise<Record<string, unknown>> {
  const model = o.model!;
  const file = readGguf(model);
  const threads = o.threads ?? cpuInfo().physicalCores;
  const batch = Math.max(o.promptTokens, 1);
  const depths = o.depth?.length ? o.depth : [0];
  const deepest = Math.max(...depths);
  // Room for the deepest fill and the measured tokens after it.
  const ctx = Math.max(o.ctx, deepest + Math.max(o.promptTokens, o.genTokens + 1) + 1);
  // llama.cpp's best settings for the run: flash attention pays off with a full cache.
  // llama.cpp quantizes a V cache only with flash attention.
  const flash = o.flashAttention === 'on' || (o.flashAttention === 'auto' && (deepest > 0 || o.kvType === 'q8_0'));
  if (o.kvType === 'q8_0' && o.flashAttention === 'off' && (o.vsLlamaCpp || o.llamaBench)) {
    throw new CairnError('BAD_ARGUMENT', "llama.cpp needs flash attention for a q8_0 KV cache: leave --flash-attention at auto or on");
  }
  const engines: WorkerSpec['engine'][] = o.vsLlamaCpp ? ['cairn', 'llama.cpp'] : ['cairn'];
  const llamaBench = o.llamaBench ? new LlamaBench(o.llamaBench, model, threads, batch, flash, o.kvType, o.backend === 'gpu') : undefined;
  const participants: Participant[] = [];
  const benchBase: EngineFigures = { engine: 'llama-bench', detail: '', loadMs: 0, firstTokenMs: 0, rssAfterLoadBytes: 0, peakRssBytes: 0, prefillTokensPerS: 0, decodeTokensPerS: 0, prefillRuns: [], decodeRuns: [] };
  const workers: Worker[] = [];
  const bandwidths: number[] = [];
  const oneAtATime = o.oneAtATime ?? !enginesFitTogether(statSync(model).size, engines.includes('llama.cpp'), llamaBench !== undefined, totalmem());
  try {
    if (!o.cold) {
      // Warm means warm for every engine: otherwise the first to load pays for whatever of the
      // file the page cache had dropped, and the second finds it cached.
      progress('reading the model into the page cache');
      const mapping = openMapping(model);
      // In pieces: one view may not pass 4 GiB (a Node.js Buffer limit), and models do.
      const piece = 1 << 30;
      if (mapping.mapped) for (let at = 0; at < mapping.size; at += piece) adviseWillNeed(mapping.view(at, Math.min(piece, mapping.size - at)), true);
      mapping.close();
    }
    // Load one at a time, so load times do not compete.
    const load = async (engine: WorkerSpec['engine']): Promise<Participant> => {
      if (o.cold) evictFile(model);
      progress(`loading ${engine}${o.cold ? ' from a cold page cache' : ''}`);
      const w = new Worker({ engine, model, threads, ctx, batch, flashAttention: flash, kvType: o.kvType, backend: o.backend });
      workers.push(w);
      const peer = engine !== 'cairn';
      let base: EngineFigures = { ...benchBase, engine };
      let loadFailure: unknown;
      try {
        const l = await w.loaded;
        base = { engine, detail: l.detail, loadMs: l.loadMs, firstTokenMs: l.firstTokenMs, rssAfterLoadBytes: l.rssBytes, peakRssBytes: l.rssBytes, prefillTokensPerS: 0, decodeTokensPerS: 0, prefillRuns: [], decodeRuns: [] };
      } catch (e) {
        if (!peer) throw e;
        loadFailure = e;
      }
      const figuresAt = figuresByDepth(() => base);
      const p: Participant = {
        engine,
        peer,
        figuresAt,
        run: async (kind, n, depth) => {
          const r = await w.run({ type: kind, tokens: n, depth });
          const f = figuresAt(depth);
          f.peakRssBytes = Math.max(f.peakRssBytes, r.rssBytes);
          return n / r.seconds;
        },
        close: () => w.close(),
      };
      if (loadFailure !== undefined) failPeer(p, -1, loadFailure, warn);
      participants.push(p);
      return p;
    };
    const benchParticipant = (lb: LlamaBench): Participant => {
      const figuresAt = figuresByDepth(() => ({ ...benchBase, detail: lb.detail }));
      const p: Participant = {
        engine: 'llama-bench',
        figuresAt,
        warmsItself: true,
        peer: true,
        run: async (kind, n, depth) => {
          // At depth, the prefill run measures this round's decode too: one fill serves both.
          const both = kind === 'prefill' && depth > 0 && o.genTokens > 0;
          const tps = both ? await lb.runBoth(n, o.genTokens, depth) : await lb.run(kind, n, depth);
          figuresAt(depth).detail = lb.detail;
          return tps;
        },
        close: async () => {},
      };
      participants.push(p);
      return p;
    };
    if (oneAtATime) {
      // Engines that would not fit in memory together run one after another, each alone in memory:
      // side by side, the page cache of a mapped file is what the others' copies push out.
      progress('the engines do not fit in memory together: one at a time');
      for (const engine of engines) {
        const p = await load(engine);
        for (const depth of depths) await rounds([p], o, depth, bandwidths, progress, warn);
        await p.close();
      }
      if (llamaBench) {
        const p = benchParticipant(llamaBench);
        for (const depth of depths) await rounds([p], o, depth, bandwidths, progress, warn);
      }
    } else {
      const parts: Participant[] = [];
      for (const engine of engines) parts.push(await load(engine));
      if (llamaBench) parts.push(benchParticipant(llamaBench));
      for (const depth of depths) await rounds(parts, o, depth, bandwidths, progress, warn);
    }
  } finally {
    await Promise.all(workers.map((w) => w.close()));
  }
  const figuresAt = (depth: number): EngineFigures[] =>
    participants.map((p) => {
      const f = p.figuresAt(depth);
      // Depths run in ascending order: a peer that failed at one has nothing at the deeper ones.
      if (p.failure && depth >= p.failure.depth) f.failed = p.failure.message;
      f.prefillTokensPerS = f.prefillRuns.length ? median(f.prefillRuns) : 0;
      f.decodeTokensPerS = f.decodeRuns.length ? median(f.decodeRuns) : 0;
      return f;
    });
  const figures = figuresAt(depths[0]);
  const weightBytes = file.tensors.reduce((a, t) => a + t.byteLength, 0);
  // What a decode step reads per token, as the model's family accounts for it (one embedding row, every layer, the head).
  const bytesPerToken = modelBytes(file, readModelConfig(file)).activePerToken;
  if (bandwidths.length === 0) {
    progress('measuring memory bandwidth');
    bandwidths.push(readBandwidth());
  }
  const bandwidth = Math.max(...bandwidths);
  const result: Record<string, unknown> = {
    model,
    threads,
    ctx,
    flashAttention: flash,
    backend: o.backend,
    cold: o.cold ?? false,
    oneAtATime,
    promptTokens: o.promptTokens,
    genTokens: o.genTokens,
    repetitions: o.repetitions,
    weightBytes,
    bytesPerToken,
    bandwidthBytesPerSecond: bandwidth,
    cpu: cpuInfo(),
    engines: figures,
  };
  // A phase skipped with -p 0 or -n 0, or a figure an engine does not report, has no ratio (null), not NaN.
  const ratio = (a: number, b: number): number | null => (a > 0 && b > 0 ? a / b : null);
  const ratiosTo = (c: EngineFigures, l: EngineFigures) => ({
    prefill: ratio(c.prefillTokensPerS, l.prefillTokensPerS),
    decode: ratio(c.decodeTokensPerS, l.decodeTokensPerS),
    firstToken: ratio(c.firstTokenMs, l.firstTokenMs),
    rssAfterLoad: ratio(c.rssAfterLoadBytes, l.rssAfterLoadBytes),
  });
  const ratiosOf = (fs: EngineFigures[]) => {
    const out: Record<string, unknown> = {};
    // A peer that failed here has incomplete figures: no ratios to them.
    const nodeLlama = fs.find((f) => f.engine === 'llama.cpp' && !f.failed);
    const bench = fs.find((f) => f.engine === 'llama-bench' && !f.failed);
    if (nodeLlama) out.ratios = ratiosTo(fs[0], nodeLlama);
    if (bench) out.ratiosToLlamaBench = ratiosTo(fs[0], bench);
    return out;
  };
  Object.assign(result, ratiosOf(figures));
  // Every depth asked for (`--depth`), each with its own figures and ratios.
  if (depths.length > 1 || depths[0] > 0) {
    result.depths = depths.map((depth) => {
      const fs = figuresAt(depth);
      return { depth, engines: fs, ...ratiosOf(fs) };
    });
  }
  return result;
}

function render(r: Record<string, unknown>): string {
  const bw = r.bandwidthBytesPerSecond as number;
  const limit = bw / (r.bytesPerToken as number);
  const lines = [
    `model ${r.model}: ${formatBytes(r.weightBytes as number)} of weights, ${r.threads} threads, context ${r.ctx}`,
    `memory read bandwidth ${(bw / 1e9).toFixed(1)} GB/s: decode can reach at most ${limit.toFixed(1)} tok/s (${formatBytes(r.bytesPerToken as number)} read per token, the KV cache not counted)`,
  ];
  const engines = r.engines as EngineFigures[];
  if (r.oneAtATime && engines.length > 1) lines.push('engines run one after another, each alone in memory (together they would not fit)');
  const depths = r.depths as { depth: number; engines: EngineFigures[]; ratios?: Record<string, number | null>; ratiosToLlamaBench?: Record<string, number | null> }[] | undefined;
  for (const d of depths ?? [{ depth: 0, engines, ratios: r.ratios as Record<string, number | null>, ratiosToLlamaBench: r.ratiosToLlamaBench as Record<string, number | null> }]) {
    if (depths) lines.push('', `after ${d.depth} tokens in the KV cache:`);
    lines.push(`${'engine'.padEnd(11)} ${'prefill tok/s'.padStart(14)} ${'decode tok/s'.padStart(13)} ${'load ms'.padStart(8)} ${'1st token ms'.padStart(13)} ${'RSS'.padStart(10)}`);
    // llama-bench reports speeds only: its load, first token and RSS are shown as n/a.
    const known = (v: number, text: string) => (v > 0 ? text : 'n/a');
    for (const f of d.engines) {
      if (f.failed) {
        lines.push(`${f.engine.padEnd(11)} failed: ${f.failed}`);
        continue;
      }
      lines.push(
        `${f.engine.padEnd(11)} ${f.prefillTokensPerS.toFixed(1).padStart(14)} ${f.decodeTokensPerS.toFixed(2).padStart(13)} ${known(f.loadMs, f.loadMs.toFixed(0)).padStart(8)} ${known(f.firstTokenMs, f.firstTokenMs.toFixed(0)).padStart(13)} ${known(f.rssAfterLoadBytes, formatBytes(f.rssAfterLoadBytes)).padStart(10)}  (${f.detail}; decode at ${((100 * f.decodeTokensPerS) / limit).toFixed(0)}% of the bandwidth limit)`,
      );
    }
    const x = (v: number | null): string => (v === null ? 'n/a' : `${v.toFixed(2)}x`);
    for (const [ratios, peer] of [[d.ratios, 'llama.cpp'], [d.ratiosToLlamaBench, 'llama-bench']] as const) {
      if (ratios) lines.push(`cairn / ${peer}: prefill ${x(ratios.prefill)}, decode ${x(ratios.decode)}, first token ${x(ratios.firstToken)} the time, RSS ${x(ratios.rssAfterLoad)}`);
    }
  }
  return lines.join('\n') + '\n';
}

/** The bench command. */
export function benchCommand(): Command {
  return new Command('bench')
    .description('Measure prefill and decode speed, load time and memory (optionally side by side with llama.cpp); or write a benchmark model')
    .option('-m, --model <model>', 'GGUF model to benchmark: a file, a stored model, or hf:OWNER/REPO:TAG')
    .option('-t, --threads <n>', 'threads (default: physical cores)', intArg(1))
    .option('-p, --prompt-tokens <n>', 'prefill batch size in tokens', intArg(0), 512)
    .option('-n, --gen-tokens <n>', 'tokens to decode', intArg(0), 128)
    .option('-r, --repetitions <n>', 'measured runs (after one warm-up); the median is reported', intArg(1), 3)
    .option('-c, --ctx <n>', 'context size', intArg(16), 2048)
    .option('--vs-llama-cpp', 'also run llama.cpp (node-llama-cpp) on the same file and report ratios')
    .option('--vs-llama-bench <path>', 'also run this llama-bench binary (llama.cpp built for the machine: bash bench/build-llama-bench.sh) in alternating rounds and report ratios; with --backend gpu, a GPU build of it with every layer offloaded')
    .addOption(new Option('--llama-bench <path>', 'the same as --vs-llama-bench').hideHelp())
    .option('-d, --depth <tokens>', 'tokens already in the KV cache before the measured ones, as llama-bench -d (comma-separated, k = 1024: 0,4k,16k)', parseDepths, [0])
    .addOption(new Option('--kv-type <type>', 'KV cache type of every engine').choices(['f16', 'f32', 'q8_0']).default('f16'))
    .addOption(new Option('--backend <name>', "where every engine runs the layers: cpu, or gpu (cairn through WebGPU, llama.cpp's GPU build with every layer offloaded)").choices(['cpu', 'gpu']).default('cpu'))
    .addOption(new Option('--flash-attention <mode>', "llama.cpp's flash attention in the runs (auto: on when --depth goes past 0, where it helps, and for a q8_0 KV cache, which needs it)").choices(['on', 'off', 'auto']).default('auto'))
    .option('--json', 'print one JSON object')
    .option('--one-at-a-time', 'run the engines one after another, each alone in memory (the default when they would not fit together)')
    .option('--cold', 'drop the model file from the page cache before each engine loads it (cold-start load and first-token times)')
    .option('--make-model <shape>', `write a random-weight model instead (${Object.keys(SYNTHETIC_SHAPES).join(', ')})`)
    .addOption(new Option('--quant <type>', 'quantization of --make-model').choices(Object.keys(QUANTS)).default('Q8_0'))
    .option('--out <file>', 'output file of --make-model')
    .option('--seed <n>', 'random seed of --make-model', intArg(0), 1)
    .option('--layers <n>', 'with --make-model: only the shape\'s first N layers (a model too big for this machine beside llama.cpp, at its real width)', intArg(1))
    .option('--copy-period <n>', 'with --make-model (a llama shape): weights that repeat the context every N tokens instead of random ones (text that quotes its input, for speculative decoding)', intArg(2))
    .action(async (o: BenchFlags) => {
      if (o.makeModel !== undefined) {
        const shape = SYNTHETIC_SHAPES[o.makeModel];
        if (!shape) throw new CairnError('BAD_ARGUMENT', `--make-model: unknown shape "${o.makeModel}" (known: ${Object.keys(SYNTHETIC_SHAPES).join(', ')})`);
        if (!o.out) throw new CairnError('BAD_ARGUMENT', '--make-model needs --out FILE');
        if (o.copyPeriod !== undefined && (shape.arch !== 'llama' || shape.moe)) {
          throw new CairnError('BAD_ARGUMENT', `--copy-period needs a dense llama shape (${Object.keys(SYNTHETIC_SHAPES).filter((k) => SYNTHETIC_SHAPES[k].arch === 'llama' && !SYNTHETIC_SHAPES[k].moe).join(', ')})`);
        }
        const nLayer = makeModelLayers(o.makeModel, shape, o.layers);
        checkOutputFile(o.out);
        const kernels = createKernels();
        process.stderr.write(`writing ${o.makeModel} ${o.quant} to ${o.out}\n`);
        // Rows from a pool of 1024 per tensor: the same bytes per token, written in minutes rather than hours.
        let bar: ProgressReporter | undefined;
        const quantize = (type: GgmlType, src: Float32Array) => {
          const out = new Uint8Array(ggmlRowBytes(type, src.length));
          kernels.quantize(type, src, out, src.length);
          return out;
        };
        writeSyntheticModel(o.out, { ...shape, nLayer, quant: QUANTS[o.quant], seed: o.seed, name: `${o.makeModel}-${o.quant}`, pooledRows: 1024, copyPeriod: o.copyPeriod }, quantize, (done, total) => {
          bar ??= new ProgressReporter(process.stderr.isTTY ? `writing ${o.out}` : undefined, total);
          bar.update(done);
        });
        bar?.stop();
        return;
      }
      if (!o.model) throw new CairnError('BAD_ARGUMENT', 'give a model with -m FILE (or --make-model SHAPE --out FILE to write one)');
      o.llamaBench ??= o.vsLlamaBench;
      o.model = (await resolveModelArg(o.model)).path;
      const tty = process.stderr.isTTY;
      const result = await runBench(
        o,
        (line) => {
          if (tty) process.stderr.write(`\r\x1b[K${line}`);
        },
        (line) => process.stderr.write(`${tty ? '\r\x1b[K' : ''}warning: ${line}\n`),
      );
      if (tty) process.stderr.write('\r\x1b[K');
      process.stdout.write(o.json ? JSON.stringify(result, null, 2) + '\n' : render(result));
    });
}

/**
 * The layer count `--make-model` writes: the shape's own, or `--layers N` of them, which must
 * leave a Mixture-of-Experts shape at least one layer with experts after its leading dense ones.
 */
function makeModelLayers(name: string, shape: SyntheticShape, layers: number | undefined): number {
  if (layers === undefined) return shape.nLayer;
  const dense = shape.moe?.leadingDense ?? 0;
  if (layers > shape.nLayer || layers <= dense) {
    const least = dense + 1;
    throw new CairnError('BAD_ARGUMENT', `--layers: ${name} has ${shape.nLayer} layers${dense ? ` (the first ${dense} without experts)` : ''}; give ${least === shape.nLayer ? least : `${least} to ${shape.nLayer}`}`);
  }
  return layers;
}
