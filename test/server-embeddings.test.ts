/**
 * The embedding routes against a real `cairn serve`, through the clients RAG tools use: the
 * official `openai` client, the `ollama` client and LangChain's OpenAIEmbeddings. A random-weight
 * BERT model serves embeddings only (generation routes answer 400); a tiny decoder serves both,
 * and its embeddings leave a concurrent chat's tokens as they are alone. Vectors are unit length
 * (Ollama's legacy route aside), deterministic, the same from every route and client, the same in
 * a batch as alone; base64 decodes to the same floats; bad requests are 400s that say why.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { Ollama } from 'ollama';
import { OpenAIEmbeddings } from '@langchain/openai';
import { GgmlType } from '../src/gguf/ggml-types.js';
import { writeSyntheticModel } from '../src/model/synthetic.js';
import { scratchDir } from './helpers/paths.js';
import { startServer, type ServerProcess } from './helpers/server.js';
import { writeTinyModel } from './helpers/tiny-model.js';

const dir = scratchDir('server-embeddings');
const bertPath = join(dir, 'bert.gguf');
const tinyPath = join(dir, 'tiny.gguf');
/** The BERT model's context: its learned positions. */
const CTX = 64;
const DIM = 96;
let bert: ServerProcess;
let tiny: ServerProcess;
let client: OpenAI;

before(async () => {
  mkdirSync(dir, { recursive: true });
  writeSyntheticModel(bertPath, { arch: 'bert', nEmbd: DIM, nLayer: 2, nHead: 4, nKvHead: 4, nFf: 192, nVocab: 500, ctx: CTX, quant: GgmlType.F32, seed: 9, pooling: 'mean' }, () => {
    throw new Error('F32 needs no quantizer');
  });
  writeTinyModel(tinyPath);
  [bert, tiny] = await Promise.all([startServer(['-m', bertPath]), startServer(['-m', tinyPath, '--ctx', '2048'])]);
  await Promise.all([bert.ready(), tiny.ready()]);
  client = new OpenAI({ baseURL: `${bert.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
after(async () => {
  await Promise.all([bert.stop(), tiny.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function post(url: string, path: string, body: unknown): Promise<{ status: number; json: any }> {
  const r = await fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.status, json: await r.json().catch(() => undefined) };
}

function norm(v: readonly number[]): number {
  return Math.sqrt(v.reduce((a, x) => a + x * x, 0));
}

function maxDiff(a: readonly number[], b: readonly number[]): number {
  assert.equal(a.length, b.length);
  return a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);
}

const TEXTS = ['the cat sat on the mat', 'embeddings for retrieval', 'a', 'zebra quartz jumps high over the fence'];

test('openai client: one unit vector per input, in order, deterministic, a batch as singles, usage counted', async () => {
  const r = await client.embeddings.create({ model: 'bert', input: TEXTS, encoding_format: 'float' });
  assert.equal(r.object, 'list');
  assert.equal(r.model, 'bert');
  assert.deepEqual(
    r.data.map((d) => [d.object, d.index]),
    TEXTS.map((_, i) => ['embedding', i]),
  );
  for (const d of r.data) {
    assert.equal(d.embedding.length, DIM);
    assert.ok(Math.abs(norm(d.embedding) - 1) < 1e-5, `norm ${norm(d.embedding)}`);
  }
  assert.ok(maxDiff(r.data[0].embedding, r.data[1].embedding) > 0.01, 'different texts, different vectors');
  const again = await client.embeddings.create({ model: 'bert', input: TEXTS, encoding_format: 'float' });
  assert.deepEqual(again.data, r.data);
  for (const [i, text] of TEXTS.entries()) {
    const one = await client.embeddings.create({ model: 'bert', input: text, encoding_format: 'float' });
    assert.ok(maxDiff(one.data[0].embedding, r.data[i].embedding) < 1e-5, `input ${i} alone`);
  }
  // [CLS] + words + [SEP], counted over all inputs.
  const tokens = await Promise.all(TEXTS.map(async (t) => (await post(bert.url, '/tokenize', { content: t, add_special: true })).json.tokens as number[]));
  assert.equal(r.usage.prompt_tokens, tokens.reduce((a, t) => a + t.length, 0));
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens);
  // Token ids embed as the text they spell.
  const byIds = await client.embeddings.create({ model: 'bert', input: tokens, encoding_format: 'float' });
  byIds.data.forEach((d, i) => assert.deepEqual(d.embedding, r.data[i].embedding));
  const single = await client.embeddings.create({ model: 'bert', input: tokens[0], encoding_format: 'float' });
  assert.deepEqual(single.data[0].embedding, r.data[0].embedding);
});

test("base64 is the vector's little-endian f32 bytes; the openai client's default (base64) decodes to the same floats", async () => {
  const floats = await post(bert.url, '/v1/embeddings', { input: TEXTS[0] });
  const b64 = await post(bert.url, '/v1/embeddings', { input: TEXTS[0], encoding_format: 'base64' });
  assert.equal(typeof b64.json.data[0].embedding, 'string');
  const bytes = Buffer.from(b64.json.data[0].embedding, 'base64');
  const decoded = Array.from(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4));
  assert.deepEqual(decoded, floats.json.data[0].embedding);
  const viaClient = await client.embeddings.create({ model: 'bert', input: TEXTS[0] });
  assert.deepEqual(viaClient.data[0].embedding, floats.json.data[0].embedding);
});

test('ollama client: /api/embed gives the same unit vectors; the legacy /api/embeddings is the unnormalized one', async () => {
  const ollama = new Ollama({ host: bert.url });
  const openai = await client.embeddings.create({ model: 'bert', input: TEXTS, encoding_format: 'float' });
  const r = await ollama.embed({ model: 'bert', input: TEXTS });
  assert.equal(r.model, 'bert');
  assert.deepEqual(r.embeddings, openai.data.map((d) => d.embedding));
  assert.ok(r.prompt_eval_count >= TEXTS.length * 3);
  assert.ok(r.total_duration > 0);
  const one = await ollama.embed({ model: 'bert', input: TEXTS[1] });
  assert.deepEqual(one.embeddings, [openai.data[1].embedding]);
  const legacy = await ollama.embeddings({ model: 'bert', prompt: TEXTS[1] });
  assert.equal(legacy.embedding.length, DIM);
  assert.ok(Math.abs(norm(legacy.embedding) - 1) > 0.01, `legacy vectors are not normalized (norm ${norm(legacy.embedding)})`);
  const scaled = legacy.embedding.map((x) => x / norm(legacy.embedding));
  assert.ok(maxDiff(scaled, openai.data[1].embedding) < 1e-6);
  // An empty input only loads the model, as Ollama answers it.
  assert.deepEqual((await ollama.embed({ model: 'bert', input: [] })).embeddings, []);
  assert.deepEqual((await ollama.embeddings({ model: 'bert', prompt: '' })).embedding, []);
});

test("LangChain's OpenAIEmbeddings: documents and queries as the openai client's vectors", async () => {
  const lc = new OpenAIEmbeddings({ model: 'bert', apiKey: 'unused', maxRetries: 0, configuration: { baseURL: `${bert.url}/v1` } });
  const docs = await lc.embedDocuments(TEXTS);
  const openai = await client.embeddings.create({ model: 'bert', input: TEXTS, encoding_format: 'float' });
  assert.equal(docs.length, TEXTS.length);
  docs.forEach((d, i) => assert.ok(maxDiff(d, openai.data[i].embedding) < 1e-6, `document ${i}`));
  const q = await lc.embedQuery(TEXTS[3]);
  assert.ok(maxDiff(q, openai.data[3].embedding) < 1e-6);
});

test('a text longer than the context: 400 on /v1/embeddings and with truncate false; cut to the context by /api/embed', async () => {
  const long = Array.from({ length: CTX + 20 }, (_, i) => `w${i % 7}`).join(' ');
  await assert.rejects(
    client.embeddings.create({ model: 'bert', input: ['short', long] }),
    (e: InstanceType<typeof OpenAI.APIError>) => e.status === 400 && /Input 1 has \d+ tokens, more than the 64/.test(e.message),
  );
  const refused = await post(bert.url, '/api/embed', { model: 'bert', input: long, truncate: false });
  assert.equal(refused.status, 400);
  assert.match(refused.json.error, /more than the 64/);
  const cut = await post(bert.url, '/api/embed', { model: 'bert', input: long });
  assert.equal(cut.status, 200);
  assert.equal(cut.json.prompt_eval_count, CTX);
  // Cut as the text's first tokens with [SEP] kept last: the same as embedding those ids.
  // WordPiece reads each word alone: the halves' tokens, [CLS] and [SEP] aside, are the text's.
  const words = long.split(' ');
  const half = async (w: string[]) => ((await post(bert.url, '/tokenize', { content: w.join(' '), add_special: true })).json.tokens as number[]).slice(1, -1);
  const ids = [101, ...(await half(words.slice(0, 40))), ...(await half(words.slice(40))), 102];
  assert.ok(ids.length > CTX);
  const kept = [...ids.slice(0, CTX - 1), ids.at(-1)!];
  const direct = await client.embeddings.create({ model: 'bert', input: kept, encoding_format: 'float' });
  assert.deepEqual(cut.json.embeddings[0], direct.data[0].embedding);
  assert.equal((await post(bert.url, '/api/embeddings', { model: 'bert', prompt: long })).status, 400);
});

test('bad requests are 400s that say why', async () => {
  const cases: [unknown, RegExp][] = [
    [{ input: '' }, /empty string/],
    [{ input: [] }, /input is empty/],
    [{ input: ['ok', ''] }, /Input 1 is an empty string/],
    [{ input: [[]] }, /input 0 is empty/i],
    [{ input: [[101, 500, 102]] }, /token 500, outside the vocabulary/],
    [{ input: 'x', dimensions: 32 }, /have 96 dimensions/],
    [{ input: 'x', encoding_format: 'hex' }, /encoding_format/],
    [{ input: 42 }, /input/],
    [{ input: Array.from({ length: 2049 }, () => 'a') }, /at most 2048/],
  ];
  for (const [body, message] of cases) {
    const r = await post(bert.url, '/v1/embeddings', body);
    assert.equal(r.status, 400, JSON.stringify(body).slice(0, 80));
    assert.match(r.json.error.message, message, JSON.stringify(body).slice(0, 80));
  }
  const ok = await client.embeddings.create({ model: 'bert', input: 'x', dimensions: DIM, encoding_format: 'float' });
  assert.equal(ok.data[0].embedding.length, DIM);
});

test('an embedding model answers generation routes with 400: it only makes embeddings', async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'bert', messages: [{ role: 'user', content: 'hi' }] }),
    (e: InstanceType<typeof OpenAI.APIError>) => e.status === 400 && /only makes embeddings/.test(e.message),
  );
  const r = await post(bert.url, '/v1/completions', { model: 'bert', prompt: 'hi' });
  assert.equal(r.status, 400);
  assert.match(r.json.error.message, /only makes embeddings/);
  const o = await post(bert.url, '/api/generate', { model: 'bert', prompt: 'hi', stream: false });
  assert.equal(o.status, 400);
  assert.match(o.json.error, /only makes embeddings/);
  // Ollama's clients (Open WebUI) tell embedding models by their capabilities.
  const show = await post(bert.url, '/api/show', { model: 'bert' });
  assert.deepEqual(show.json.capabilities, ['embedding']);
  assert.ok((await post(tiny.url, '/api/show', { model: 'tiny' })).json.capabilities.includes('completion'));
});

test('a decoder model: unit vectors from its final norm, while a chat generates exactly as it does alone', async () => {
  const tinyClient = new OpenAI({ baseURL: `${tiny.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  const chat = () => tinyClient.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'tell me a story' }], max_tokens: 40, temperature: 0 });
  const alone = await chat();
  const long = Array.from({ length: 150 }, (_, i) => ['river', 'stone', 'cloud', 'maple', 'ember'][i % 5]).join(' ');
  const [withEmbeddings, e1, e2] = await Promise.all([
    chat(),
    tinyClient.embeddings.create({ model: 'tiny', input: [long, 'short text', long], encoding_format: 'float' }),
    tinyClient.embeddings.create({ model: 'tiny', input: 'short text', encoding_format: 'float' }),
  ]);
  assert.equal(withEmbeddings.choices[0].message.content, alone.choices[0].message.content);
  for (const d of e1.data) assert.ok(Math.abs(norm(d.embedding) - 1) < 1e-5);
  assert.deepEqual(e1.data[0].embedding, e1.data[2].embedding);
  assert.ok(maxDiff(e1.data[1].embedding, e2.data[0].embedding) < 1e-6);
  assert.ok(maxDiff(e1.data[0].embedding, e1.data[1].embedding) > 0.01);
  const viaOllama = await new Ollama({ host: tiny.url }).embed({ model: 'tiny', input: 'short text' });
  assert.ok(maxDiff(viaOllama.embeddings[0], e2.data[0].embedding) < 1e-6);
});

test("keep_alive 0 on /api/embed: the texts are embedded, then the model unloads; the next such request loads it again", async () => {
  const first = await post(bert.url, '/api/embed', { model: 'bert', input: TEXTS[0], keep_alive: 0 });
  assert.equal(first.status, 200);
  const unloaded = async () => ((await (await fetch(`${bert.url}/health`)).json()) as { loaded?: boolean }).loaded === false;
  for (let i = 0; i < 200 && !(await unloaded()); i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(await unloaded(), 'unloaded once idle');
  const again = await post(bert.url, '/api/embed', { model: 'bert', input: TEXTS[0], keep_alive: 0 });
  assert.equal(again.status, 200, JSON.stringify(again.json));
  assert.deepEqual(again.json.embeddings, first.json.embeddings);
});
