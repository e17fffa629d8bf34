/**
 * /v1/completions in full, through the official `openai` client against a real `cairn serve`:
 * array prompts (one choice each), `n` choices, `echo` with prompt logprobs (`max_tokens: 0`
 * scoring, as evaluation harnesses do), fill-in-the-middle with `suffix` in the model's FIM tokens,
 * and `best_of` refused clearly.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { gv } from '../src/gguf/values.js';
import { scratchDir } from './helpers/paths.js';
import { rewriteGguf } from './helpers/rewrite-gguf.js';
import { startServer, type ServerProcess } from './helpers/server.js';
import { writeTinyModel } from './helpers/tiny-model.js';

const dir = scratchDir('server-completions');
const plainPath = join(dir, 'tiny.gguf');
const fimPath = join(dir, 'tiny-fim.gguf');
// Three of the tiny model's word tokens stand in for a code model's FIM tokens.
const FIM = { pre: 900, suf: 901, mid: 902 };
let server: ServerProcess;
let fimServer: ServerProcess;
let client: OpenAI;
let fimClient: OpenAI;

before(async () => {
  mkdirSync(dir, { recursive: true });
  writeTinyModel(plainPath);
  rewriteGguf(plainPath, fimPath, {
    metadata: {
      'tokenizer.ggml.fim_pre_token_id': gv.u32(FIM.pre),
      'tokenizer.ggml.fim_suf_token_id': gv.u32(FIM.suf),
      'tokenizer.ggml.fim_mid_token_id': gv.u32(FIM.mid),
    },
  });
  [server, fimServer] = await Promise.all([startServer(['-m', plainPath, '--ctx', '1024']), startServer(['-m', fimPath, '--ctx', '512'])]);
  await Promise.all([server.ready(), fimServer.ready()]);
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  fimClient = new OpenAI({ baseURL: `${fimServer.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
after(async () => {
  await Promise.all([server.stop(), fimServer.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function post(url: string, path: string, body: unknown): Promise<{ status: number; json: any }> {
  const r = await fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.status, json: await r.json().catch(() => undefined) };
}

async function plainTokens(url: string, text: string): Promise<number[]> {
  const r = await post(url, '/tokenize', { content: text });
  return r.json.tokens as number[];
}

async function cachedTokens(): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  return Number(/^cairn_prompt_cached_tokens_total (\d+)/m.exec(text)![1]);
}

async function promptTokens(): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  return Number(/^cairn_prompt_tokens_total (\d+)/m.exec(text)![1]);
}

const greedy = { model: 'tiny', temperature: 0, ignore_eos: true } as const;

test('an array prompt gets one choice per prompt, each as its prompt alone would; usage adds them up', async () => {
  const prompts = ['hello world', 'abc', 'one two three four'];
  const singles = await Promise.all(prompts.map((prompt) => client.completions.create({ ...greedy, prompt, max_tokens: 6 } as never)));
  const all = await client.completions.create({ ...greedy, prompt: prompts, max_tokens: 6 } as never);
  assert.deepEqual(all.choices.map((c) => c.index), [0, 1, 2]);
  assert.deepEqual(all.choices.map((c) => c.text), singles.map((s) => s.choices[0].text));
  assert.equal(all.usage!.prompt_tokens, singles.reduce((a, s) => a + s.usage!.prompt_tokens, 0));
  assert.equal(all.usage!.completion_tokens, 18);
  // Token-id prompts, one list each, the same.
  const ids = await Promise.all(prompts.map(async (p) => [1, ...(await plainTokens(server.url, p))]));
  const byIds = await client.completions.create({ ...greedy, prompt: ids, max_tokens: 6 } as never);
  assert.deepEqual(byIds.choices.map((c) => c.text), singles.map((s) => s.choices[0].text));
});

test('n choices: greedy ones agree, sampled ones follow seed + i, and streamed choices come tagged by index', async () => {
  // A prompt no request had before: the second and third choice copy its KV from the first's slot
  // rather than reading it again (all but its last token).
  const prompt = 'the quick brown fox jumps over';
  const cachedBefore = await cachedTokens();
  const promptBefore = await promptTokens();
  const three = await client.completions.create({ ...greedy, prompt, max_tokens: 8, n: 3 } as never);
  assert.ok((await cachedTokens()) - cachedBefore >= 2 * (three.usage!.prompt_tokens / 3 - 1), 'choices 2 and 3 read the prompt again');
  // The prompt counter counts the prompt once, as usage does (each choice's cache use counts above).
  assert.equal((await promptTokens()) - promptBefore, three.usage!.prompt_tokens);
  const one = await client.completions.create({ ...greedy, prompt, max_tokens: 8 } as never);
  assert.deepEqual(three.choices.map((c) => c.index), [0, 1, 2]);
  for (const c of three.choices) assert.equal(c.text, one.choices[0].text);
  assert.equal(three.usage!.completion_tokens, 24);
  const sampled = { model: 'tiny', prompt, max_tokens: 12, temperature: 1.5, ignore_eos: true };
  const n2 = await client.completions.create({ ...sampled, n: 2, seed: 40 } as never);
  const s40 = await client.completions.create({ ...sampled, seed: 40 } as never);
  const s41 = await client.completions.create({ ...sampled, seed: 41 } as never);
  assert.equal(n2.choices[0].text, s40.choices[0].text);
  assert.equal(n2.choices[1].text, s41.choices[0].text);
  assert.notEqual(s40.choices[0].text, s41.choices[0].text, 'two seeds sampled the same 12 tokens');
  // Streamed: every chunk names its choice, each choice finishes once, texts equal the whole answer's.
  const stream = await client.completions.create({ ...greedy, prompt: ['hello world', 'abc'], max_tokens: 5, n: 2, stream: true } as never);
  const texts = ['', '', '', ''];
  const finished = [0, 0, 0, 0];
  for await (const chunk of stream as unknown as AsyncIterable<OpenAI.Completion>) {
    for (const c of chunk.choices) {
      texts[c.index] += c.text;
      if (c.finish_reason) finished[c.index]++;
    }
  }
  assert.deepEqual(finished, [1, 1, 1, 1]);
  const beforeWhole = await promptTokens();
  const whole = await client.completions.create({ ...greedy, prompt: ['hello world', 'abc'], max_tokens: 5, n: 2 } as never);
  assert.deepEqual(texts, whole.choices.map((c) => c.text));
  assert.equal((await promptTokens()) - beforeWhole, whole.usage!.prompt_tokens, 'two prompts of two choices: each prompt once');
});

test("echo with logprobs scores the prompt: max_tokens 0 gives every prompt token's logprob, as generation saw them", async () => {
  const ids = [1, ...(await plainTokens(server.url, 'once upon a time there was'))];
  const scored = await client.completions.create({ model: 'tiny', prompt: ids, max_tokens: 0, echo: true, logprobs: 3 } as never);
  const lp = scored.choices[0].logprobs!;
  assert.equal(lp.tokens!.length, ids.length);
  assert.equal(lp.token_logprobs![0], null, 'nothing predicts the first token');
  assert.equal(lp.top_logprobs![0], null);
  assert.equal(scored.usage!.completion_tokens, 0);
  assert.equal(scored.choices[0].finish_reason, 'length');
  assert.ok(scored.choices[0].text.startsWith('once upon a'), scored.choices[0].text);
  assert.ok(lp.text_offset!.every((o, i) => i === 0 || o >= lp.text_offset![i - 1]));
  // Position i's alternatives are what a generation after the first i tokens sees for its first token.
  for (const i of [1, 2, ids.length - 1]) {
    const next = await client.completions.create({ ...greedy, prompt: ids.slice(0, i), max_tokens: 1, logprobs: 3 } as never);
    const want = next.choices[0].logprobs!.top_logprobs![0];
    const got = lp.top_logprobs![i]!;
    assert.deepEqual(Object.keys(got).sort(), Object.keys(want).sort(), `position ${i}`);
    for (const k of Object.keys(want)) assert.ok(Math.abs(got[k] - want[k]) < 1e-3, `position ${i}, ${k}: ${got[k]} vs ${want[k]}`);
    // The token's own logprob is at most the best alternative's.
    assert.ok(lp.token_logprobs![i]! <= Math.max(...Object.values(want)) + 1e-6);
  }
  // Streamed, the prompt's logprobs come with the echo, the same numbers.
  const stream = await client.completions.create({ model: 'tiny', prompt: ids, max_tokens: 2, echo: true, logprobs: 3, temperature: 0, stream: true } as never);
  let first: OpenAI.Completion | undefined;
  for await (const chunk of stream as unknown as AsyncIterable<OpenAI.Completion>) first ??= chunk;
  assert.deepEqual(first!.choices[0].logprobs!.token_logprobs, lp.token_logprobs);
  // Echo with generation: the text is the prompt followed by what was generated.
  const echoed = await client.completions.create({ ...greedy, prompt: 'once upon a time', max_tokens: 4, echo: true } as never);
  const bare = await client.completions.create({ ...greedy, prompt: 'once upon a time', max_tokens: 4 } as never);
  assert.equal(echoed.choices[0].text, 'once upon a time' + bare.choices[0].text);
});

test("suffix fills in the middle with the model's FIM tokens; a model without them is told so", async () => {
  const prefix = 'def add a b';
  const suffix = 'return c';
  const fim = await fimClient.completions.create({ ...greedy, prompt: prefix, suffix, max_tokens: 6 } as never);
  const [pre, suf] = await Promise.all([plainTokens(fimServer.url, prefix), plainTokens(fimServer.url, suffix)]);
  const assembled = [1, FIM.pre, ...pre, FIM.suf, ...suf, FIM.mid];
  const byHand = await fimClient.completions.create({ ...greedy, prompt: assembled, max_tokens: 6 } as never);
  assert.equal(fim.usage!.prompt_tokens, assembled.length);
  assert.equal(fim.choices[0].text, byHand.choices[0].text);
  const plain = await fimClient.completions.create({ ...greedy, prompt: prefix, max_tokens: 6 } as never);
  assert.notEqual(fim.usage!.prompt_tokens, plain.usage!.prompt_tokens);
  const refused = await post(server.url, '/v1/completions', { model: 'tiny', prompt: prefix, suffix, max_tokens: 4 });
  assert.equal(refused.status, 400);
  assert.equal(refused.json.error.param, 'suffix');
  assert.match(refused.json.error.message, /fill-in-the-middle/);
});

test("Ollama's /api/generate honours suffix (the same middle as /v1/completions) and context (the conversation so far); images are refused", async () => {
  const opts = { temperature: 0, num_predict: 6 };
  const prefix = 'def add a b';
  const suffix = 'return c';
  const viaOpenAi = await fimClient.completions.create({ ...greedy, prompt: prefix, suffix, max_tokens: 6, ignore_eos: false } as never);
  const fim = await post(fimServer.url, '/api/generate', { model: 'tiny', prompt: prefix, suffix, stream: false, options: opts });
  assert.equal(fim.status, 200, JSON.stringify(fim.json));
  assert.equal(fim.json.response, viaOpenAi.choices[0].text);
  const refused = await post(server.url, '/api/generate', { model: 'tiny', prompt: prefix, suffix, stream: false, options: opts });
  assert.equal(refused.status, 400);
  assert.match(refused.json.error, /fill-in-the-middle/);
  // A second turn with the first's context reads both: its prompt is the first's whole context
  // (prompt and answer) followed by its own prompt without a second BOS.
  const first = await post(server.url, '/api/generate', { model: 'tiny', prompt: 'Once upon', raw: true, stream: false, options: opts });
  const second = await post(server.url, '/api/generate', { model: 'tiny', prompt: ' a time', raw: true, context: first.json.context, stream: false, options: opts });
  assert.equal(second.status, 200, JSON.stringify(second.json));
  const own = await plainTokens(server.url, ' a time');
  assert.deepEqual(second.json.context.slice(0, first.json.context.length + own.length), [...first.json.context, ...own]);
  const badContext = await post(server.url, '/api/generate', { model: 'tiny', prompt: 'x', context: [1, 5000], stream: false });
  assert.equal(badContext.status, 400);
  // A conversation longer than the context (1024) loses its oldest tokens, as Ollama's does, and
  // keeps its start token and its latest ones, with room left for the answer.
  const long = [first.json.context[0], ...Array.from({ length: 2000 }, (_, i) => first.json.context[1 + (i % (first.json.context.length - 1))])];
  const truncated = await post(server.url, '/api/generate', { model: 'tiny', prompt: ' a time', raw: true, context: long, stream: false, options: opts });
  assert.equal(truncated.status, 200, JSON.stringify(truncated.json));
  const kept = truncated.json.context;
  assert.ok(kept.length - own.length - 6 <= 1024 * 0.75, `${kept.length} tokens kept`);
  assert.equal(kept[0], long[0]);
  const sent = kept.slice(0, kept.length - truncated.json.eval_count);
  assert.deepEqual(sent.slice(1, sent.length - own.length), long.slice(long.length - (sent.length - own.length - 1)));
  for (const [path, body] of [
    ['/api/generate', { model: 'tiny', prompt: 'what is this', images: ['iVBORw0KGgo='], stream: false }],
    ['/api/chat', { model: 'tiny', messages: [{ role: 'user', content: 'what is this', images: ['iVBORw0KGgo='] }], stream: false }],
  ] as const) {
    const r = await post(server.url, path, body);
    assert.equal(r.status, 400, `${path}: ${JSON.stringify(r.json)}`);
    assert.match(r.json.error, /Images are not supported/);
  }
  // Empty image lists, as some clients always send, are no images.
  assert.equal((await post(server.url, '/api/chat', { model: 'tiny', messages: [{ role: 'user', content: 'x', images: [] }], stream: false, options: opts })).status, 200);
});

test('best_of beyond n is refused by name; best_of equal to n is served; too many choices are refused', async () => {
  const bad = await post(server.url, '/v1/completions', { model: 'tiny', prompt: 'a', max_tokens: 2, best_of: 3 });
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.param, 'best_of');
  assert.match(bad.json.error.message, /best_of/);
  const ok = await post(server.url, '/v1/completions', { model: 'tiny', prompt: 'a', max_tokens: 2, best_of: 2, n: 2 });
  assert.equal(ok.status, 200);
  assert.equal(ok.json.choices.length, 2);
  const many = await post(server.url, '/v1/completions', { model: 'tiny', prompt: Array.from({ length: 20 }, () => 'a'), max_tokens: 2, n: 4 });
  assert.equal(many.status, 400);
  assert.equal(many.json.error.param, 'n');
  // The server goes on serving.
  assert.equal((await post(server.url, '/v1/completions', { model: 'tiny', prompt: 'a', max_tokens: 2 })).status, 200);
});

test("constrained text completions: response_format and llama-server's json_schema give each choice JSON of the schema; a GBNF grammar and Ollama's own template are refused by name", async () => {
  const schema = { type: 'object', properties: { n: { type: 'integer', minimum: 0, maximum: 99 }, pet: { enum: ['cat', 'dog'] } }, required: ['n', 'pet'], additionalProperties: false };
  const check = (text: string) => {
    const v = JSON.parse(text);
    assert.deepEqual(Object.keys(v).sort(), ['n', 'pet']);
    assert.ok(Number.isInteger(v.n) && v.n >= 0 && v.n <= 99, text);
    assert.ok(['cat', 'dog'].includes(v.pet), text);
  };
  const viaField = await post(server.url, '/v1/completions', { model: 'tiny', prompt: ['a pet', 'another'], n: 2, temperature: 1, seed: 3, max_tokens: 60, json_schema: schema });
  assert.equal(viaField.status, 200, JSON.stringify(viaField.json));
  assert.equal(viaField.json.choices.length, 4);
  for (const c of viaField.json.choices) {
    assert.equal(c.finish_reason, 'stop');
    check(c.text);
  }
  const viaFormat = await client.completions.create({ model: 'tiny', prompt: 'x', max_tokens: 60, temperature: 0, response_format: { type: 'json_schema', json_schema: { name: 'p', schema } } } as never);
  check(viaFormat.choices[0].text);
  const both = await post(server.url, '/v1/completions', { model: 'tiny', prompt: 'x', json_schema: schema, response_format: { type: 'json_object' } });
  assert.equal(both.status, 400);
  assert.equal(both.json.error.param, 'json_schema');
  const badSchema = await post(server.url, '/v1/completions', { model: 'tiny', prompt: 'x', json_schema: { type: 'string', pattern: '(?<=a)b' } });
  assert.equal(badSchema.status, 400);
  assert.equal(badSchema.json.error.param, 'json_schema');
  for (const path of ['/v1/completions', '/v1/chat/completions']) {
    const grammar = await post(server.url, path, { model: 'tiny', prompt: 'x', messages: [{ role: 'user', content: 'x' }], grammar: 'root ::= "a"' });
    assert.equal(grammar.status, 400);
    assert.equal(grammar.json.error.param, 'grammar');
  }
  const chat = await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'x' }], max_tokens: 60, temperature: 0, json_schema: schema } as never);
  check(chat.choices[0].message.content!);
  const template = await post(server.url, '/api/generate', { model: 'tiny', prompt: 'x', template: '{{ .Prompt }}', stream: false });
  assert.equal(template.status, 400);
  assert.match(template.json.error, /template/);
});
