/**
 * Server benchmark: aggregate decode tokens/s of 1, 4 and 16 concurrent streams (over the whole wall
 * time, prompts included, and while all of them decode); the time to first
 * token of a new request of ~250 tokens (a prompt no cache holds) alone and while 15 other streams decode (cairn); and the
 * time to first token of a second chat turn over a ~1000-token history, cached (the previous
 * turn's KV is reused) against uncached; the same measured for llama.cpp through node-llama-cpp (N sequences of
 * one context decoding together; a chat session's second prompt against a fresh session).
 *
 *   node dist/bench/server.js MODEL [--threads N] [--ttft-only] [--cairn-only] [--draft-max N]
 *   (--ttft-only: just cairn's new-request first token; --cairn-only: no llama.cpp figures;
 *   --draft-max N: the server's speculative decoding limit, 0 for plain decode steps)
 */
import { startServer, type ServerProcess } from '../test/helpers/server.js';
import { sseEvents } from './sse-events.js';

const args = process.argv.slice(2);
const model = args[0];
const threadsArg = args.indexOf('--threads');
const threads = threadsArg >= 0 ? Number(args[threadsArg + 1]) : 2;
const name = model.replace(/^.*\//, '').replace(/\.gguf$/, '');
const GEN = 48;
const ttftOnly = args.includes('--ttft-only');
const cairnOnly = args.includes('--cairn-only');
// Speculative decoding is on by default in the server; --draft-max 0 times plain decode steps
// (one stream's rate then comes from one pass over the weights per token, as 16 streams' does).
const draftArg = args.indexOf('--draft-max');
const draftMax = draftArg >= 0 ? ['--draft-max', String(Number(args[draftArg + 1]))] : [];

/** ~1000 tokens of filler text for the synthetic vocabularies (and real ones). */
function history(words: number, shift = 0): string {
  const w = ['river', 'stone', 'light', 'north', 'quiet', 'market', 'window', 'garden', 'paper', 'silver', 'engine', 'forest'];
  return Array.from({ length: words }, (_, i) => w[(i * 7 + shift) % w.length]).join(' ');
}

/** One streamed completion: its first token's delay, its token count and text, and when each token came. */
interface Streamed {
  ttftMs: number;
  tokens: number;
  text: string;
  /** performance.now() of each token's chunk. */
  times: number[];
}

async function streamChat(url: string, messages: unknown[], maxTokens: number, onFirstToken?: () => void): Promise<Streamed> {
  const t0 = performance.now();
  const times: number[] = [];
  const r = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: name, messages, max_tokens: maxTokens, temperature: 0, stream: true, ignore_eos: true, logprobs: true }) });
  let ttft = 0;
  let tokens = 0;
  let text = '';
  for await (const c of sseEvents<{ choices: { delta?: { content?: string }; logprobs?: { content?: unknown[] } | null }[] }>(r)) {
    // With logprobs every token comes as a chunk, even one whose text is not complete UTF-8 yet.
    if (c.choices[0]?.logprobs?.content?.length) {
      if (!ttft) {
        ttft = performance.now() - t0;
        onFirstToken?.();
      }
      tokens++;
      times.push(performance.now());
      text += c.choices[0]?.delta?.content ?? '';
    }
  }
  return { ttftMs: ttft, tokens, text, times };
}

/**
 * Decode tokens/s of streams while all of them decode: the tokens that arrived between the last
 * stream's first token and the first stream's last, over that time. Unlike tokens over the whole
 * wall time, this leaves out the prompts' prefill and the ramp at either end.
 */
function steadyDecodeRate(streams: Streamed[]): number {
  const start = Math.max(...streams.map((s) => s.times[0] ?? Infinity));
  const end = Math.min(...streams.map((s) => s.times[s.times.length - 1] ?? -Infinity));
  if (!(end > start)) return NaN;
  const tokens = streams.reduce((a, s) => a + s.times.filter((t) => t > start && t <= end).length, 0);
  return tokens / ((end - start) / 1000);
}

async function cairnFigures(): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  let s: ServerProcess = await startServer(['-m', model, '--threads', String(threads), '--parallel', '16', '--ctx', '1600', '--max-queue', '64', ...draftMax]);
  try {
    await s.ready(600_000);
    await streamChat(s.url, [{ role: 'user', content: 'warm up' }], 4);
    const agg: Record<number, number> = {};
    const steady: Record<number, number> = {};
    for (const n of ttftOnly ? [] : [1, 4, 16]) {
      const t0 = performance.now();
      const all = await Promise.all(Array.from({ length: n }, (_, i) => streamChat(s.url, [{ role: 'user', content: `Story ${i}` }], GEN)));
      agg[n] = all.reduce((a, x) => a + x.tokens, 0) / ((performance.now() - t0) / 1000);
      steady[n] = steadyDecodeRate(all);
    }
    if (!ttftOnly) {
      out.aggregateDecodeTokensPerSecond = agg;
      out.steadyDecodeTokensPerSecond = steady;
      out.sixteenStreamsOverOne = { aggregate: agg[16] / agg[1], steady: steady[16] / steady[1] };
    }
    // A new request's first token alone, then while 15 streams decode (they all started first);
    // the two prompts differ from their first word, so neither reuses the other's KV.
    const alone = await streamChat(s.url, [{ role: 'user', content: history(60, 1) }], 1);
    const firstTokens: Promise<void>[] = [];
    const others = Array.from({ length: 15 }, (_, i) => {
      let seen!: () => void;
      firstTokens.push(new Promise<void>((r) => (seen = r)));
      return streamChat(s.url, [{ role: 'user', content: `Tale ${i}` }], 4 * GEN, seen);
    });
    await Promise.all(firstTokens);
    const loaded = await streamChat(s.url, [{ role: 'user', content: history(60, 2) }], 1);
    await Promise.all(others);
    out.newRequestTtftMs = { alone: alone.ttftMs, while15Decode: loaded.ttftMs, ratio: loaded.ttftMs / alone.ttftMs };
  } finally {
    await s.stop();
  }
  if (ttftOnly) return out;
  // Second turn over a long history: cached right after the first turn; uncached on a server
  // whose one slot was just taken by another conversation and that keeps no prompt cache.
  s = await startServer(['-m', model, '--threads', String(threads), '--parallel', '1', '--ctx', '1600', '--cache-ram', '0']);
  try {
    await s.ready(600_000);
    // Size the history to about 1000 tokens of this model's vocabulary.
    const count = async (words: number) => {
      const r = await fetch(`${s.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: name, messages: [{ role: 'user', content: history(words) }], max_tokens: 1 }) });
      return ((await r.json()) as { usage: { prompt_tokens: number } }).usage.prompt_tokens;
    };
    const words = Math.round((100 * 1000) / (await count(100)));
    const turn1 = [{ role: 'user', content: history(words) }];
    out.historyTokens = await count(words);
    out.historyWords = words;
    const r1 = await streamChat(s.url, turn1, 16);
    const turn2 = [...turn1, { role: 'assistant', content: r1.text }, { role: 'user', content: 'And then?' }];
    const cached = await streamChat(s.url, turn2, 4);
    await streamChat(s.url, [{ role: 'user', content: 'something else entirely' }], 4);
    const uncached = await streamChat(s.url, turn2, 4);
    out.secondTurnTtftMs = { cached: cached.ttftMs, uncached: uncached.ttftMs, speedup: uncached.ttftMs / cached.ttftMs };
  } finally {
    await s.stop();
  }
  return out;
}

async function llamaCppFigures(words: number): Promise<Record<string, unknown>> {
  const { getLlama, LlamaChatSession } = await import('node-llama-cpp');
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' as never, progressLogs: false });
  const m = await llama.loadModel({ modelPath: model, gpuLayers: 0 });
  const out: Record<string, unknown> = {};
  const agg: Record<number, number> = {};
  for (const n of [1, 4, 16]) {
    const ctx = await m.createContext({ sequences: n, contextSize: 1600 * n, threads, flashAttention: false });
    const t0 = performance.now();
    const counts = await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const seq = ctx.getSequence();
        let c = 0;
        for await (const _t of seq.evaluate(m.tokenize(`Story ${i}`) as never, { temperature: 0, yieldEogToken: true })) if (++c >= GEN) break;
        return c;
      }),
    );
    agg[n] = counts.reduce((a, b) => a + b, 0) / ((performance.now() - t0) / 1000);
    await ctx.dispose();
  }
  out.aggregateDecodeTokensPerSecond = agg;
  const ttft = async (session: InstanceType<typeof LlamaChatSession>, text: string) => {
    const t0 = performance.now();
    let first = 0;
    await session.prompt(text, { maxTokens: 4, temperature: 0, onTextChunk: () => (first ||= performance.now() - t0) });
    return first;
  };
  const ctx = await m.createContext({ contextSize: 1600, threads, flashAttention: false });
  const session = new LlamaChatSession({ contextSequence: ctx.getSequence() });
  await session.prompt(history(words), { maxTokens: 16, temperature: 0 });
  out.historyTokens = m.tokenize(history(words)).length;
  const cached = await ttft(session, 'And then?');
  const history2 = session.getChatHistory();
  await ctx.dispose();
  const ctx2 = await m.createContext({ contextSize: 1600, threads, flashAttention: false });
  const fresh = new LlamaChatSession({ contextSequence: ctx2.getSequence() });
  fresh.setChatHistory(history2.slice(0, -2));
  const uncached = await ttft(fresh, 'And then?');
  await ctx2.dispose();
  out.secondTurnTtftMs = { cached, uncached, speedup: uncached / cached };
  await m.dispose();
  return out;
}

async function main(): Promise<void> {
  const cairn = await cairnFigures();
  process.stderr.write(`cairn: ${JSON.stringify(cairn)}\n`);
  const llamaCpp = ttftOnly || cairnOnly ? undefined : await llamaCppFigures(cairn.historyWords as number);
  process.stdout.write(JSON.stringify({ model, threads, cairn, llamaCpp }, null, 2) + '\n');
  process.exit(0);
}

void main();
