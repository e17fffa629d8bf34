/**
 * A llama.cpp build of the user's own (its `llama-bench` binary) as a peer of `cairn bench`: one
 * llama-bench run per measured round, alternating with the other engines, so that all of them see
 * the machine in the same state. llama-bench loads the model for every run and reports only speeds
 * (its own mean over `-r 1` run after its warm-up), so load time, first token and RSS stay empty.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { CairnError } from '../util/errors.js';

/** What one llama-bench run printed for one test (`-o json`). */
interface LlamaBenchRow {
  readonly n_prompt: number;
  readonly n_gen: number;
  /** Tokens in the cache before the measured ones (`-d`; absent from older builds: 0). */
  readonly n_depth?: number;
  readonly avg_ts: number;
  readonly build_commit?: string;
  readonly build_number?: number;
  readonly cpu_info?: string;
  readonly flash_attn?: unknown;
  /** The backends the build has ("CUDA", "Vulkan", "CPU"). */
  readonly backends?: string;
  readonly gpu_info?: string;
}

/**
 * Longest one llama-bench run may take: 30 minutes, and 2 more per 1024 tokens of depth, since its
 * fill of the cache grows with the depth (a 32k fill of a 0.6B model took it over 30 minutes on 2
 * cores).
 */
export function llamaBenchTimeoutMs(depth: number): number {
  return (30 + 2 * Math.ceil(depth / 1024)) * 60_000;
}

/** Runs a llama-bench binary on one model, thread count and batch. */
export class LlamaBench {
  /** Build and settings, for the report (known after the first run). */
  detail = 'llama-bench';

  constructor(
    private readonly binary: string,
    private readonly model: string,
    private readonly threads: number,
    private readonly batch: number,
    private readonly flashAttention = false,
    private readonly kvType: 'f16' | 'f32' | 'q8_0' = 'f16',
    /** Every layer on llama.cpp's GPU (a llama-bench built with CUDA, Vulkan or Metal), else none. */
    private readonly gpu = false,
  ) {
    if (!existsSync(binary)) throw new CairnError('BAD_ARGUMENT', `--llama-bench ${binary}: no such file (give the path of a llama-bench binary built from llama.cpp)`);
  }

  /** The decode figure a `runBoth` measured, for the decode call of the same round. */
  private measuredDecode: { tokens: number; depth: number; tps: number } | undefined;

  /** Seconds per token of a prefill of `tokens` (kind 'prefill') or a decode of `tokens` (kind 'decode'), as tokens per second. */
  async run(kind: 'prefill' | 'decode', tokens: number, depth = 0): Promise<number> {
    const m = this.measuredDecode;
    this.measuredDecode = undefined;
    if (kind === 'decode' && m && m.tokens === tokens && m.depth === depth) return m.tps;
    const rows = await this.invoke(kind === 'prefill' ? tokens : 0, kind === 'decode' ? tokens : 0, depth);
    return this.pick(rows, kind, tokens, depth);
  }

  /**
   * A prefill and a decode after `depth` tokens in one llama-bench run: it fills the cache once and
   * restores that state for its second test, where two runs would each fill it (minutes at 16k and
   * more). Returns the prefill figure; the next `run('decode', genTokens, depth)` returns the decode
   * figure of this run.
   */
  async runBoth(promptTokens: number, genTokens: number, depth: number): Promise<number> {
    const rows = await this.invoke(promptTokens, genTokens, depth);
    const prefill = this.pick(rows, 'prefill', promptTokens, depth);
    this.measuredDecode = { tokens: genTokens, depth, tps: this.pick(rows, 'decode', genTokens, depth) };
    return prefill;
  }

  private async invoke(prompt: number, gen: number, depth: number): Promise<LlamaBenchRow[]> {
    const args = ['-m', this.model, '-t', String(this.threads), '-r', '1', '-o', 'json', '-fa', this.flashAttention ? '1' : '0', '-b', String(Math.max(this.batch, 1)), '-ub', String(Math.max(this.batch, 1)), '-ngl', this.gpu ? '999' : '0'];
    // Both in one run: `-p P -n N` makes llama-bench's two tests, a prefill of P and a decode of N.
    args.push('-p', String(prompt), '-n', String(gen));
    if (depth > 0) args.push('-d', String(depth));
    if (this.kvType !== 'f16') args.push('-ctk', this.kvType, '-ctv', this.kvType);
    const stdout = await new Promise<string>((resolve, reject) => {
      const timeout = llamaBenchTimeoutMs(depth);
      execFile(this.binary, args, { maxBuffer: 16 << 20, timeout }, (err, out, errOut) => {
        if (err?.killed) reject(new CairnError('BAD_ARGUMENT', `llama-bench did not finish within ${timeout / 60_000} minutes (${args.join(' ')})`));
        else if (err) reject(new CairnError('BAD_ARGUMENT', `llama-bench failed: ${(errOut || err.message).trim().split('\n').slice(-3).join(' | ')}`));
        else resolve(out);
      });
    });
    return parseRows(stdout);
  }

  private pick(rows: readonly LlamaBenchRow[], kind: 'prefill' | 'decode', tokens: number, depth: number): number {
    const row = rows.find(
      (r) => (r.n_depth ?? 0) === depth && (kind === 'prefill' ? r.n_prompt === tokens && r.n_gen === 0 : r.n_gen === tokens && r.n_prompt === 0),
    );
    if (!row) throw new CairnError('BAD_ARGUMENT', `llama-bench printed no ${kind} result for ${tokens} tokens${depth ? ` at depth ${depth}` : ''}`);
    const backend = this.gpu ? `${row.backends ?? 'GPU'}${row.gpu_info ? ` on ${row.gpu_info}` : ''}, every layer offloaded` : 'CPU';
    this.detail = `llama-bench build ${row.build_number ?? '?'} (${row.build_commit ?? '?'}), ${backend}, flash attention ${this.flashAttention ? 'on' : 'off'}, KV ${this.kvType}`;
    return row.avg_ts;
  }
}

/** The rows of llama-bench's JSON output; anything else is an error naming what was wrong. */
export function parseRows(stdout: string): LlamaBenchRow[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout);
  } catch {
    throw new CairnError('BAD_ARGUMENT', `llama-bench did not print JSON: ${stdout.slice(0, 200)}`);
  }
  if (!Array.isArray(parsed)) throw new CairnError('BAD_ARGUMENT', 'llama-bench JSON is not an array of results');
  return parsed.filter(
    (r): r is LlamaBenchRow => typeof r === 'object' && r !== null && Number.isFinite((r as LlamaBenchRow).avg_ts) && Number.isInteger((r as LlamaBenchRow).n_prompt) && Number.isInteger((r as LlamaBenchRow).n_gen),
  );
}
