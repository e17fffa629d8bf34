/**
 * A soak of `cairn serve` (a real child process, a tiny random-weight model): 64 clients for a
 * warm-up of 14,000 requests and then 48 s, mixing streaming and non-streaming chat and
 * completions (OpenAI and Ollama shapes), constrained JSON, clients that hang up mid-stream, and bad requests (malformed JSON, unknown
 * and out-of-range fields, prompts far over the context, schemas thousands of levels deep, token
 * ids past the vocabulary, bodies over the limit). Every response must be a success or the 4xx
 * its request deserves, /health must answer within a second all along, and the server's resident
 * memory must stay flat: sampled every second, its typical level over the last quarter of the load
 * is within 15% of the highest it reached during the warm-up and the first half. Peaks, not single
 * readings, are the reference: the process's RSS swings by tens of MiB with garbage collection and
 * allocator growth (its live JS heap stays ~20 MiB), while a leak keeps climbing past them.
 *
 * The warm-up is counted in requests, not seconds: the heaps grow to their working size over the
 * first ~12,000 requests (a five-minute soak rose from ~200 MiB to a plateau of 215-280 MiB by
 * then and stayed there), and a slower machine gets through fewer of them in the same time, so a
 * fixed warm-up left it measuring that rise as a leak.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { Prng } from '../src/util/prng.js';
import { scratchDir } from './helpers/paths.js';
import { startServer, watchHealth, type ServerProcess } from './helpers/server.js';
import { writeTinyModel } from './helpers/tiny-model.js';

const CLIENTS = 64;
/** Requests before the measured load (caches fill, heaps reach their working size). */
const WARMUP_REQUESTS = 14_000;
/** The warm-up's longest time, should a machine be too slow to make that many. */
const WARMUP_CAP_MS = 150_000;
/** The measured load. */
const LOAD_MS = 48_000;
/** How often resident memory is read. */
const SAMPLE_MS = 1000;
const BODY_LIMIT = 1024 * 1024;
/** Longest pause of a client between two requests. */
const PAUSE_MS = 100;

const dir = scratchDir('server-soak');
const modelPath = join(dir, 'tiny.gguf');
const model = 'tiny';
let server: ServerProcess;

before(async () => {
  mkdirSync(dir, { recursive: true });
  writeTinyModel(modelPath);
  server = await startServer(['-m', modelPath, '--ctx', '512', '--parallel', '8', '--max-queue', '128', '--body-limit', String(BODY_LIMIT), '--cache-ram', String(1024 * 1024)]);
  await server.ready();
});
after(async () => {
  const code = await server.stop();
  rmSync(dir, { recursive: true, force: true });
  assert.equal(code, 0, 'clean exit on SIGTERM');
});

/** Resident memory of a process, from /proc (bytes). */
function rss(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

/** A request that did not end as it should. */
interface Unexpected {
  readonly kind: string;
  readonly detail: string;
}

type Post = { status: number; json: unknown };

async function post(path: string, body: string | unknown, signal?: AbortSignal): Promise<Post> {
  const r = await fetch(server.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body), signal });
  const text = await r.text();
  let json: unknown = text;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON: kept as text for the report
  }
  return { status: r.status, json };
}

const WORDS = ['Once', 'upon', 'a', 'time', 'there', 'was', 'a', 'little', 'cat', 'who', 'liked', 'to', 'play', 'in', 'the', 'park'];
const deepSchema = '{"type":"object","properties":{"a":'.repeat(3000) + '{"type":"string"}' + '},"required":["a"]}'.repeat(3000);

/** The mix: each kind runs one request and returns what was unexpected about it, if anything. */
function kinds(client: OpenAI, rng: Prng): [weight: number, name: string, run: () => Promise<string | undefined>][] {
  const sentence = (n: number) => Array.from({ length: n }, () => WORDS[Math.floor(rng.next() * WORDS.length)]).join(' ');
  const expectStatus = async (req: Promise<Post>, status: number, code?: string): Promise<string | undefined> => {
    const r = await req;
    const got = (r.json as { error?: { code?: string } })?.error?.code;
    if (r.status !== status || (code !== undefined && got !== code)) return `expected ${status} ${code ?? ''}, got ${r.status}: ${JSON.stringify(r.json).slice(0, 200)}`;
    return undefined;
  };
  return [
    [
      18,
      'chat stream',
      async () => {
        let content = '';
        let finish: string | null = null;
        const stream = await client.chat.completions.create({ model, messages: [{ role: 'user', content: sentence(8) }], max_tokens: 8 + Math.floor(rng.next() * 40), temperature: 0.8, stream: true });
        for await (const c of stream) {
          content += c.choices[0]?.delta?.content ?? '';
          finish = c.choices[0]?.finish_reason ?? finish;
        }
        return finish === 'stop' || finish === 'length' ? undefined : `finish_reason ${finish} after ${JSON.stringify(content).slice(0, 80)}`;
      },
    ],
    [
      14,
      'completion',
      async () => {
        const max = 4 + Math.floor(rng.next() * 28);
        const r = await client.completions.create({ model, prompt: sentence(6), max_tokens: max, temperature: 0 });
        const used = r.usage?.completion_tokens ?? -1;
        return used >= 0 && used <= max && r.choices.length === 1 ? undefined : `usage ${used} of ${max}`;
      },
    ],
    [
      10,
      'aborted stream',
      async () => {
        const abort = new AbortController();
        const stream = await client.completions.create({ model, prompt: sentence(5), max_tokens: 200, temperature: 1, ignore_eos: true, stream: true } as OpenAI.CompletionCreateParamsStreaming, { signal: abort.signal });
        let chunks = 0;
        const stopAt = 1 + Math.floor(rng.next() * 5);
        try {
          for await (const _ of stream) if (++chunks === stopAt) abort.abort();
        } catch (err) {
          if (!abort.signal.aborted) throw err;
        }
        // The client may read what was already buffered before its hang-up shows.
        return abort.signal.aborted ? undefined : `the stream ended after ${chunks} chunks, before the client hung up`;
      },
    ],
    [
      8,
      'ollama chat stream',
      async () => {
        const r = await fetch(`${server.url}/api/chat`, { method: 'POST', body: JSON.stringify({ model, messages: [{ role: 'user', content: sentence(6) }], options: { num_predict: 12, temperature: 0.5 } }) });
        const lines = (await r.text()).trim().split('\n');
        const last = JSON.parse(lines.at(-1)!) as { done?: boolean };
        return r.status === 200 && last.done === true ? undefined : `status ${r.status}, last line ${lines.at(-1)?.slice(0, 100)}`;
      },
    ],
    [
      5,
      'json schema',
      async () => {
        const schema = { type: 'object', properties: { name: { type: 'string', maxLength: 8 }, n: { type: 'integer' } }, required: ['name', 'n'], additionalProperties: false };
        const r = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'json' }], max_tokens: 64, temperature: 1, response_format: { type: 'json_schema', json_schema: { name: 'x', schema } } });
        const c = r.choices[0];
        if (c.finish_reason !== 'stop') return undefined; // cut off by max_tokens: a prefix of a document
        const v = JSON.parse(c.message.content ?? '') as { name?: unknown; n?: unknown };
        return typeof v.name === 'string' && Number.isInteger(v.n) ? undefined : `reply ${c.message.content}`;
      },
    ],
    [4, 'malformed JSON', () => expectStatus(post('/v1/chat/completions', '{"model": "tiny", "messages": ['), 400)],
    [4, 'unsupported field', () => expectStatus(post('/v1/chat/completions', { model, messages: [{ role: 'user', content: 'a' }], functions: [{ name: 'f' }] }), 400)],
    [4, 'out-of-range field', () => expectStatus(post('/v1/chat/completions', { model, messages: [{ role: 'user', content: 'a' }], temperature: 7 }), 400)],
    [4, 'huge prompt', () => expectStatus(post('/v1/completions', { model, prompt: sentence(60_000), max_tokens: 1 }), 400, 'context_length_exceeded')],
    [3, 'huge chat', () => expectStatus(post('/v1/chat/completions', { model, messages: [{ role: 'user', content: sentence(60_000) }], max_tokens: 1 }), 400, 'context_length_exceeded')],
    [4, 'deep schema', () => expectStatus(post('/v1/chat/completions', `{"model":"tiny","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"d","schema":${deepSchema}}}}`), 400)],
    [3, 'deep tool', () => expectStatus(post('/v1/chat/completions', `{"model":"tiny","messages":[{"role":"user","content":"x"}],"tool_choice":"required","tools":[{"type":"function","function":{"name":"f","parameters":${deepSchema}}}]}`), 400)],
    [3, 'bad logit_bias', () => expectStatus(post('/v1/completions', { model, prompt: 'a', max_tokens: 2, logit_bias: { [String(2 ** 32 + 7)]: 50 } }), 400)],
    [3, 'unknown route', () => expectStatus(post('/v1/completionz', { model, prompt: 'a' }), 404, 'not_found')],
    [
      1,
      'body over the limit',
      async () => {
        try {
          return await expectStatus(post('/v1/completions', { model, prompt: 'x'.repeat(BODY_LIMIT + 1000) }), 413, 'request_too_large');
        } catch (err) {
          // The server answers 413 and closes the connection without reading the rest: the
          // client may see that as a reset while it still sends.
          const code = ((err as Error).cause as { code?: string } | undefined)?.code;
          if (code === 'ECONNRESET' || code === 'EPIPE' || code === 'UND_ERR_SOCKET') return undefined;
          throw err;
        }
      },
    ],
  ];
}

/**
 * One client: requests until `until`, each of a kind drawn by weight (seeded), with a pause of up
 * to PAUSE_MS between them, as people and programs make them.
 */
async function client(seed: number, more: () => boolean, unexpected: Unexpected[], counts: Map<string, number>): Promise<void> {
  const rng = new Prng(seed);
  const openai = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 30_000 });
  const mix = kinds(openai, rng);
  const total = mix.reduce((a, [w]) => a + w, 0);
  while (more()) {
    let pick = rng.next() * total;
    const [, name, run] = mix.find(([w]) => (pick -= w) < 0) ?? mix[0];
    counts.set(name, (counts.get(name) ?? 0) + 1);
    for (const [, other] of mix) if (!counts.has(other)) counts.set(other, 0);
    try {
      const problem = await run();
      if (problem) unexpected.push({ kind: name, detail: problem });
    } catch (err) {
      unexpected.push({ kind: name, detail: `${(err as Error).name}: ${(err as Error).message}` });
    }
    await new Promise((r) => setTimeout(r, rng.next() * PAUSE_MS));
  }
}

/** All clients at once, each requesting while `more()` says so. */
async function load(more: () => boolean, seed: number, unexpected: Unexpected[], counts: Map<string, number>): Promise<void> {
  await Promise.all(Array.from({ length: CLIENTS }, (_, i) => client(seed + i, more, unexpected, counts)));
}

/** Requests made so far, of every kind. */
const made = (counts: Map<string, number>) => [...counts.values()].reduce((a, b) => a + b, 0);

test('64 clients for 14,000 requests and 48 s more: no unexpected answer, /health always within a second, memory flat', async (t) => {
  const health = watchHealth(server.url, 100, 10_000);
  await health.started;
  const unexpected: Unexpected[] = [];
  const counts = new Map<string, number>();
  const pid = server.proc.pid!;

  const samples: { at: number; rss: number }[] = [];
  const sampler = setInterval(() => samples.push({ at: Date.now(), rss: rss(pid) }), SAMPLE_MS);
  const start = Date.now();
  await load(() => made(counts) < WARMUP_REQUESTS && Date.now() < start + WARMUP_CAP_MS, 1000, unexpected, counts);
  const warmup = { requests: made(counts), ms: Date.now() - start };
  const loadStart = Date.now();
  await load(() => Date.now() < loadStart + LOAD_MS, 2000, unexpected, counts);
  clearInterval(sampler);
  const early = samples.filter((s) => s.at >= start && s.at <= loadStart + LOAD_MS / 2).map((s) => s.rss);
  const late = samples.filter((s) => s.at >= loadStart + (LOAD_MS * 3) / 4).map((s) => s.rss);
  assert.ok(early.length > 10 && late.length > 5, `too few memory samples (${early.length}, ${late.length})`);
  const rssStart = Math.max(...early);
  const rssEnd = late.sort((a, b) => a - b)[late.length >> 1];
  const seen = await health.stop();

  const mb = (b: number) => (b / 2 ** 20).toFixed(1);
  t.diagnostic(`requests: ${[...counts].map(([k, v]) => `${k} ${v}`).join(', ')}`);
  t.diagnostic(`warm-up: ${warmup.requests} requests in ${(warmup.ms / 1000).toFixed(1)} s`);
  t.diagnostic(`/health: ${seen.polls} polls, slowest ${seen.slowestMs.toFixed(0)} ms; RSS peak ${mb(rssStart)} MiB over warm-up and first half, median ${mb(rssEnd)} MiB over the last quarter`);
  assert.deepEqual(unexpected.slice(0, 10), [], `${unexpected.length} unexpected outcomes`);
  for (const [name, n] of counts) assert.ok(n > 0, `no ${name} request was made`);
  assert.deepEqual(seen.failures, []);
  assert.ok(seen.polls > 300, `only ${seen.polls} health polls`);
  assert.ok(seen.slowestMs < 1000, `/health took ${seen.slowestMs.toFixed(0)} ms`);
  assert.ok(rssEnd <= 1.15 * rssStart, `RSS went from a peak of ${mb(rssStart)} to ${mb(rssEnd)} MiB`);
  // Still serving, and nothing is left running.
  const after = await post('/v1/completions', { model, prompt: 'Once upon a time', max_tokens: 4, temperature: 0 });
  assert.equal(after.status, 200);
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  assert.match(metrics, /^cairn_slots_busy 0$/m);
});
