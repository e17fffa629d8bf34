/**
 * `cairn serve` as a real child process with stories260K, driven by the official `openai` client
 * and by plain HTTP: greedy output equals `cairn generate`, sampling parameters act, concurrent
 * streams equal serial runs, the prompt cache is hit, and every error has its status.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import OpenAI from 'openai';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { GgmlType } from '../src/gguf/ggml-types.js';
import { readGguf } from '../src/gguf/reader.js';
import { gv } from '../src/gguf/values.js';
import { writeGguf } from '../src/gguf/writer.js';
import { writeSyntheticModel } from '../src/model/synthetic.js';
import { fixture, missingFixture, ROOT, scratchDir } from './helpers/paths.js';
import { startServer, type ServerProcess } from './helpers/server.js';

const MODEL = fixture('models/stories260K.gguf');
const skip = MODEL ? false : missingFixture('models/stories260K.gguf');

async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = new RegExp(`^cairn_${name} (\\S+)$`, 'm').exec(text);
  if (!m) throw new Error(`metric ${name} missing`);
  return Number(m[1]);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function getJson(url: string): Promise<any> {
  return (await fetch(url)).json();
}

// Responses are checked field by field; a loose type keeps the assertions readable.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function post(url: string, path: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: any }> {
  const r = await fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: r.status, json: await r.json().catch(() => undefined) };
}

describe('cairn serve with stories260K', { skip }, () => {
  let server: ServerProcess;
  let client: OpenAI;
  const model = 'stories260K';

  before(async () => {
    server = await startServer(['-m', MODEL!, '--parallel', '4', '--ctx', '512', '--max-queue', '64']);
    await server.ready();
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  after(async () => {
    assert.equal(await server.stop(), 0, 'clean exit on SIGTERM');
  });

  test('GET /v1/models lists the model; /health is ok', async () => {
    const list = await client.models.list();
    assert.deepEqual(
      list.data.map((m) => m.id),
      [model],
    );
    assert.equal((await getJson(`${server.url}/health`)).status, 'ok');
  });

  test('completions: greedy text equals cairn generate, streaming and not', async () => {
    const cli = JSON.parse(
      execFileSync(process.execPath, [join(ROOT, 'bin/cairn.js'), 'generate', '-m', MODEL!, '-p', 'Once upon a time', '-n', '40', '--temperature', '0', '--json'], { encoding: 'utf8' }),
    );
    const r = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 40, temperature: 0 });
    assert.equal(r.choices[0].text, cli.text);
    assert.equal(r.choices[0].finish_reason, 'length');
    assert.equal(r.usage?.completion_tokens, 40);
    assert.equal(r.usage?.prompt_tokens, cli.prompt_tokens.length);
    let streamed = '';
    for await (const c of await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 40, temperature: 0, stream: true })) {
      streamed += c.choices[0]?.text ?? '';
    }
    assert.equal(streamed, cli.text);
  });

  test('chat: streaming and non-streaming give the same greedy text, with usage', async () => {
    const messages = [{ role: 'user' as const, content: 'Tell me a story about a cat.' }];
    const full = await client.chat.completions.create({ model, messages, max_tokens: 48, temperature: 0 });
    const text = full.choices[0].message.content ?? '';
    assert.ok(text.length > 0);
    let streamed = '';
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const c of await client.chat.completions.create({ model, messages, max_tokens: 48, temperature: 0, stream: true, stream_options: { include_usage: true } })) {
      streamed += c.choices[0]?.delta?.content ?? '';
      if (c.usage) usage = c.usage;
    }
    assert.equal(streamed, text);
    assert.equal(usage?.completion_tokens, full.usage?.completion_tokens);
    assert.equal(usage?.prompt_tokens, full.usage?.prompt_tokens);
  });

  test('stop strings (string or array) end the text before the stop', async () => {
    const r = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 60, temperature: 0, stop: ' Lily' });
    assert.equal(r.choices[0].finish_reason, 'stop');
    assert.ok(!r.choices[0].text.includes('Lily'));
    assert.ok(r.choices[0].text.endsWith('named'), JSON.stringify(r.choices[0].text));
    const c = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Once upon a time' }], max_tokens: 60, temperature: 0, stop: ['.', '!'] });
    assert.ok(!/[.!]/.test(c.choices[0].message.content ?? ''));
  });

  test('max_tokens and max_completion_tokens bound the reply', async () => {
    const a = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 5, temperature: 0 });
    assert.equal(a.usage?.completion_tokens, 5);
    assert.equal(a.choices[0].finish_reason, 'length');
    const b = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Hi' }], max_completion_tokens: 3, temperature: 0 });
    assert.equal(b.usage?.completion_tokens, 3);
  });

  test('the same seed gives the same sampled text; another seed another text', async () => {
    const ask = (seed: number) =>
      client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 40, temperature: 1.2, top_p: 1, seed }).then((r) => r.choices[0].text);
    const [a, b, c] = await Promise.all([ask(42), ask(42), ask(7)]);
    assert.equal(a, b);
    assert.notEqual(a, c);
  });

  test('logprobs: chosen token, its logprob and top alternatives for every token', async () => {
    const r = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Once upon a time' }], max_tokens: 8, temperature: 0, logprobs: true, top_logprobs: 3 });
    const content = r.choices[0].logprobs?.content ?? [];
    assert.equal(content.length, 8);
    for (const t of content) {
      assert.ok(t.logprob <= 0);
      assert.equal(t.top_logprobs.length, 3);
      assert.equal(t.top_logprobs[0].token, t.token, 'greedy picks the most likely token');
      assert.ok(t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob);
    }
    assert.equal(content.map((t) => t.token).join(''), r.choices[0].message.content);
  });

  test('chat n choices: greedy ones agree, sampled ones follow seed + i, each holds its own JSON constraint, streamed chunks come tagged by index', async () => {
    const messages = [{ role: 'user' as const, content: 'Tell me about a cat named Tom.' }];
    const one = await client.chat.completions.create({ model, messages, max_tokens: 12, temperature: 0 });
    const three = await client.chat.completions.create({ model, messages, max_tokens: 12, temperature: 0, n: 3 });
    assert.deepEqual(three.choices.map((c) => c.index), [0, 1, 2]);
    for (const c of three.choices) assert.equal(c.message.content, one.choices[0].message.content);
    assert.equal(three.usage!.prompt_tokens, one.usage!.prompt_tokens, 'the prompt is counted once');
    assert.equal(three.usage!.completion_tokens, 3 * one.usage!.completion_tokens);
    const sampled = { model, messages, max_tokens: 16, temperature: 1.5 };
    const n2 = await client.chat.completions.create({ ...sampled, n: 2, seed: 40 });
    const s40 = await client.chat.completions.create({ ...sampled, seed: 40 });
    const s41 = await client.chat.completions.create({ ...sampled, seed: 41 });
    assert.equal(n2.choices[0].message.content, s40.choices[0].message.content);
    assert.equal(n2.choices[1].message.content, s41.choices[0].message.content);
    assert.notEqual(s40.choices[0].message.content, s41.choices[0].message.content, 'two seeds sampled the same 16 tokens');
    // A constraint follows one output: shared by two choices, the second would break the first's JSON.
    // (The request of the json_schema test below, its seeds 1, 2 and 3 as one request's choices.)
    const schema = {
      type: 'object',
      properties: { name: { type: 'string', maxLength: 12 }, age: { type: 'integer' }, happy: { type: 'boolean' } },
      required: ['name', 'age', 'happy'],
      additionalProperties: false,
    };
    const json = await client.chat.completions.create({
      model,
      messages: [{ role: 'user', content: 'Describe Lily as JSON.' }],
      max_tokens: 400,
      temperature: 1,
      seed: 1,
      n: 3,
      response_format: { type: 'json_schema', json_schema: { name: 'person', schema, strict: true } },
    });
    for (const c of json.choices) {
      assert.equal(c.finish_reason, 'stop', 'the document was completed');
      assert.deepEqual(Object.keys(JSON.parse(c.message.content ?? '')).sort(), ['age', 'happy', 'name']);
    }
    // Streamed: every chunk names its choice, each choice starts and finishes once, texts equal the whole answer's.
    const stream = await client.chat.completions.create({ ...sampled, n: 2, seed: 40, stream: true, stream_options: { include_usage: true } });
    const texts = ['', ''];
    const roles = [0, 0];
    const finished = [0, 0];
    let streamedUsage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      if (chunk.usage) streamedUsage = chunk.usage;
      for (const c of chunk.choices) {
        if (c.delta.role) roles[c.index]++;
        texts[c.index] += c.delta.content ?? '';
        if (c.finish_reason) finished[c.index]++;
      }
    }
    assert.deepEqual(roles, [1, 1]);
    assert.deepEqual(finished, [1, 1]);
    assert.deepEqual(texts, n2.choices.map((c) => c.message.content));
    assert.equal(streamedUsage?.completion_tokens, n2.usage!.completion_tokens);
    // More choices than a request may ask for is a clear error.
    await assert.rejects(client.chat.completions.create({ model, messages, max_tokens: 2, n: 65 }), (err: { status?: number }) => err.status === 400);
  });

  test('response_format json_schema: the reply parses and matches the schema', async () => {
    const schema = {
      type: 'object',
      properties: { name: { type: 'string', maxLength: 12 }, age: { type: 'integer' }, happy: { type: 'boolean' } },
      required: ['name', 'age', 'happy'],
      additionalProperties: false,
    };
    for (const seed of [1, 2, 3]) {
      const r = await client.chat.completions.create({
        model,
        messages: [{ role: 'user', content: 'Describe Lily as JSON.' }],
        max_tokens: 400,
        temperature: 1,
        seed,
        response_format: { type: 'json_schema', json_schema: { name: 'person', schema, strict: true } },
      });
      assert.equal(r.choices[0].finish_reason, 'stop', 'the document was completed');
      const value = JSON.parse(r.choices[0].message.content ?? '');
      assert.deepEqual(Object.keys(value).sort(), ['age', 'happy', 'name']);
      assert.equal(typeof value.name, 'string');
      assert.ok(Number.isInteger(value.age));
      assert.equal(typeof value.happy, 'boolean');
    }
    // Any JSON object: this tiny story model writes keys and values until max_tokens runs out, so
    // the reply is checked as a prefix of a JSON object: it starts an object, and JSON.parse finds
    // nothing wrong before the end of the text.
    for (const seed of [5, 6]) {
      const obj = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'JSON please' }], max_tokens: 120, temperature: 0.8, seed, response_format: { type: 'json_object' } });
      const content = obj.choices[0].message.content ?? '';
      assert.match(content, /^\s*\{/);
      if (obj.choices[0].finish_reason === 'stop') {
        assert.equal(typeof JSON.parse(content), 'object');
        continue;
      }
      try {
        JSON.parse(content);
        assert.fail('a truncated reply should not parse');
      } catch (err) {
        const m = /at position (\d+)/.exec((err as Error).message);
        const at = m ? Number(m[1]) : content.length; // "Unexpected end of JSON input"
        assert.ok(at >= content.length, `invalid JSON at ${at} of ${content.length}: ${JSON.stringify(content.slice(Math.max(0, at - 20), at + 5))}`);
      }
    }
  });

  test('tools: tool_choice required or a named function returns a call whose arguments match the schema', async () => {
    const tools: OpenAI.ChatCompletionTool[] = [
      {
        type: 'function',
        function: {
          name: 'get_weather',
          description: 'Weather in a city',
          parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 16 }, unit: { type: 'string', enum: ['c', 'f'] } }, required: ['city', 'unit'] },
        },
      },
      { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: { zone: { type: 'string', maxLength: 8 } }, required: ['zone'] } } },
    ];
    const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: 'user', content: 'What is the weather in Paris?' }];
    const r = await client.chat.completions.create({ model, messages, tools, tool_choice: 'required', max_tokens: 200, temperature: 0.7, seed: 3 });
    assert.equal(r.choices[0].finish_reason, 'tool_calls');
    const call = r.choices[0].message.tool_calls![0] as OpenAI.ChatCompletionMessageFunctionToolCall;
    assert.ok(['get_weather', 'get_time'].includes(call.function.name));
    assert.match(call.id, /^call_/);
    const args = JSON.parse(call.function.arguments);
    if (call.function.name === 'get_weather') {
      assert.equal(typeof args.city, 'string');
      assert.ok(['c', 'f'].includes(args.unit));
    } else {
      assert.equal(typeof args.zone, 'string');
    }
    const named = await client.chat.completions.create({ model, messages, tools, tool_choice: { type: 'function', function: { name: 'get_time' } }, max_tokens: 200, temperature: 0.7, seed: 4, stream: true });
    let streamedCall: { name?: string; arguments?: string } | undefined;
    let finish: string | null = null;
    for await (const c of named) {
      const tc = c.choices[0]?.delta?.tool_calls?.[0];
      if (tc) streamedCall = { name: tc.function?.name, arguments: tc.function?.arguments };
      finish = c.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(finish, 'tool_calls');
    assert.equal(streamedCall?.name, 'get_time');
    assert.equal(typeof JSON.parse(streamedCall!.arguments!).zone, 'string');
    // The call and its result go back into the conversation.
    const followUp = await client.chat.completions.create({
      model,
      messages: [...messages, { role: 'assistant', content: null, tool_calls: [call] }, { role: 'tool', tool_call_id: call.id, content: '{"temp": 21}' }],
      tools,
      max_tokens: 10,
      temperature: 0,
    });
    assert.equal(followUp.choices.length, 1);
    const bad = await post(server.url, '/v1/chat/completions', { model, messages, tools, tool_choice: { type: 'function', function: { name: 'nope' } } });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.param, 'tool_choice');
  });

  test('16 parallel streaming requests all complete with outputs identical to serial runs', async () => {
    const prompts = Array.from({ length: 16 }, (_, i) => `Once upon a time there was a ${['cat', 'dog', 'bird', 'girl'][i % 4]} number ${i}`);
    const run = async (prompt: string) => {
      let text = '';
      for await (const c of await client.completions.create({ model, prompt, max_tokens: 24, temperature: 0, stream: true })) text += c.choices[0]?.text ?? '';
      return text;
    };
    const serial: string[] = [];
    for (const p of prompts) serial.push(await run(p));
    const parallel = await Promise.all(prompts.map(run));
    assert.deepEqual(parallel, serial);
  });

  test('a second chat turn reuses the prompt cache: fewer tokens are prefilled', async () => {
    const first = [{ role: 'user' as const, content: 'Tell me about a little girl named Lily who lived near a big park.' }];
    const r1 = await client.chat.completions.create({ model, messages: first, max_tokens: 20, temperature: 0 });
    const hitsBefore = await metric(server.url, 'prompt_cache_hits_total');
    const second = [...first, { role: 'assistant' as const, content: r1.choices[0].message.content ?? '' }, { role: 'user' as const, content: 'What happened next?' }];
    const r2 = await client.chat.completions.create({ model, messages: second, max_tokens: 20, temperature: 0 });
    const cached = (r2.usage as { prompt_tokens_details?: { cached_tokens?: number } }).prompt_tokens_details?.cached_tokens ?? 0;
    // The whole first turn came from the cache; only the new turn was prefilled.
    const p1 = r1.usage?.prompt_tokens ?? 0;
    assert.ok(cached >= p1 - 1, `cached ${cached} of ${r2.usage?.prompt_tokens}, first turn ${p1}`);
    assert.equal(await metric(server.url, 'prompt_cache_hits_total'), hitsBefore + 1);
  });

  test('errors: 400 names the field, 404 for an unknown route, 415/400 for bad bodies', async () => {
    const bad = await post(server.url, '/v1/chat/completions', { model, messages: [{ role: 'user', content: 'x' }], temperature: 7 });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.param, 'temperature');
    const noMessages = await post(server.url, '/v1/chat/completions', { model });
    assert.equal(noMessages.status, 400);
    assert.match(noMessages.json.error.message, /messages/);
    const route = await fetch(`${server.url}/v1/nothing`);
    assert.equal(route.status, 404);
    assert.equal(((await route.json()) as { error: { code: string } }).error.code, 'not_found');
    const notJson = await post(server.url, '/v1/chat/completions', '{"model": ');
    assert.equal(notJson.status, 400);
    assert.match(notJson.json.error.message, /JSON/);
    const schema = await post(server.url, '/v1/chat/completions', {
      model,
      messages: [{ role: 'user', content: 'x' }],
      response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'string', pattern: '(?<=a)b' } } },
    });
    assert.equal(schema.status, 400);
    // The server is still serving.
    assert.equal((await client.completions.create({ model, prompt: 'Lily', max_tokens: 2, temperature: 0 })).choices.length, 1);
  });

  test('Ollama routes: /api/tags, /api/chat (NDJSON stream and single object), /api/generate', async () => {
    const tags = await getJson(`${server.url}/api/tags`);
    assert.equal(tags.models[0].name, model);
    assert.equal(tags.models[0].details.format, 'gguf');
    const one = await post(server.url, '/api/chat', { model, messages: [{ role: 'user', content: 'Hi' }], stream: false, options: { temperature: 0, num_predict: 6 } });
    assert.equal(one.status, 200);
    assert.equal(one.json.done, true);
    assert.equal(one.json.eval_count, 6);
    const r = await fetch(`${server.url}/api/chat`, { method: 'POST', body: JSON.stringify({ model, messages: [{ role: 'user', content: 'Hi' }], options: { temperature: 0, num_predict: 6 } }) });
    const lines = (await r.text()).trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(lines.at(-1).done, true);
    assert.equal(lines.slice(0, -1).map((l) => l.message.content).join(''), one.json.message.content);
    const gen = await post(server.url, '/api/generate', { model, prompt: 'Once upon a time', raw: true, stream: false, options: { temperature: 0, num_predict: 10 } });
    assert.equal(gen.json.done, true);
    const viaOpenAi = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 10, temperature: 0 });
    assert.equal(gen.json.response, viaOpenAi.choices[0].text);
  });

  test('/metrics reports requests, tokens, speeds, queue depth and memory in Prometheus text', async () => {
    const text = await (await fetch(`${server.url}/metrics`)).text();
    for (const name of ['requests_total', 'completion_tokens_total', 'prompt_tokens_total', 'decode_tokens_per_second', 'prefill_tokens_per_second', 'queue_depth', 'prompt_cache_hits_total', 'resident_memory_bytes']) {
      assert.match(text, new RegExp(`^# TYPE cairn_${name} `, 'm'), name);
    }
    assert.ok((await metric(server.url, 'completion_tokens_total')) > 0);
    assert.ok((await metric(server.url, 'resident_memory_bytes')) > 0);
  });
});

describe('streaming with tools, template with a tool-call syntax', { skip }, () => {
  let server: ServerProcess;
  let client: OpenAI;
  const dir = scratchDir('server-tools');
  before(async () => {
    // stories260K with a Hermes-style template: the server parses <tool_call> blocks out of replies.
    const file = readGguf(MODEL!);
    const bytes = readFileSync(MODEL!);
    const metadata = new Map(file.metadata);
    metadata.set(
      'tokenizer.chat_template',
      gv.str(
        '{%- if tools %}System: call tools inside <tool_call></tool_call> tags.\n{%- endif %}' +
          '{%- for m in messages %}{{ m.role }}: {{ m.content }}\n{%- endfor %}{%- if add_generation_prompt %}assistant:{%- endif %}',
      ),
    );
    mkdirSync(dir, { recursive: true });
    const path = join(dir, 'stories-tools.gguf');
    writeGguf(path, {
      metadata,
      tensors: file.tensors.map((t) => ({ name: t.name, type: t.type, dims: t.dims, data: bytes.subarray(t.offset, t.offset + t.byteLength) })),
    });
    server = await startServer(['-m', path, '--ctx', '256']);
    await server.ready();
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  after(async () => {
    assert.equal(await server.stop(), 0);
    rmSync(dir, { recursive: true, force: true });
  });

  test('prose is streamed as it is generated, not held to the end, and matches the whole reply', async () => {
    const tools: OpenAI.ChatCompletionTool[] = [{ type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: {} } } }];
    const request = { model: 'stories-tools', messages: [{ role: 'user' as const, content: 'Tell me a story' }], tools, max_tokens: 24, temperature: 0 };
    const whole = await client.chat.completions.create(request);
    assert.equal(whole.choices[0].message.tool_calls, undefined);
    const chunks: string[] = [];
    let finish: string | null = null;
    for await (const c of await client.chat.completions.create({ ...request, stream: true })) {
      const content = c.choices[0]?.delta?.content;
      if (content) chunks.push(content);
      finish = c.choices[0]?.finish_reason ?? finish;
    }
    assert.ok(chunks.length > 5, `content came in ${chunks.length} chunks`);
    assert.equal(chunks.join(''), whole.choices[0].message.content);
    assert.equal(finish, whole.choices[0].finish_reason);
  });
});

describe('cairn serve limits and failures', () => {
  // A model slow enough (about 200 MB of f32 weights) that a long generation is still running
  // when the test acts on it, and that loading takes a moment.
  const dir = scratchDir('server-limits');
  const slow = join(dir, 'slow.gguf');
  before(() => {
    mkdirSync(dir, { recursive: true });
    writeSyntheticModel(slow, { arch: 'llama', nEmbd: 1024, nLayer: 4, nHead: 8, nKvHead: 4, nFf: 2816, nVocab: 1000, quant: GgmlType.F32, seed: 5 }, () => {
      throw new Error('F32 needs no quantizer');
    });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const name = 'slow';
  const long = { model: name, prompt: 'a', max_tokens: 480, temperature: 0, ignore_eos: true };

  test('503 while the model loads, then ready', async () => {
    const s = await startServer(['-m', slow, '--ctx', '512'], { CAIRN_LOAD_DELAY_MS: '1500' });
    try {
      const first = await fetch(`${s.url}/health`);
      assert.equal(first.status, 503);
      assert.equal(((await first.json()) as { status: string }).status, 'loading');
      const early = await post(s.url, '/v1/completions', { model: name, prompt: 'a' });
      assert.equal(early.status, 503);
      assert.match(early.json.error.message, /loading/);
      await s.ready();
      assert.equal((await post(s.url, '/v1/completions', { model: name, prompt: 'a', max_tokens: 2 })).status, 200);
    } finally {
      await s.stop();
    }
  });

  test('401 without the right API key; /health stays open', { skip }, async () => {
    const s = await startServer(['-m', MODEL!, '--api-key', 'sekret', '--ctx', '256']);
    try {
      await s.ready();
      const none = await post(s.url, '/v1/completions', { model: 'stories260K', prompt: 'x' });
      assert.equal(none.status, 401);
      assert.equal(none.json.error.code, 'invalid_api_key');
      const wrong = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'nope', maxRetries: 0 });
      await assert.rejects(wrong.models.list(), (e: unknown) => e instanceof OpenAI.AuthenticationError);
      const right = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'sekret', maxRetries: 0 });
      assert.equal((await right.models.list()).data.length, 1);
    } finally {
      await s.stop();
    }
  });

  test('413 for a body over --body-limit; 429 when the slot and the queue are full', async () => {
    const s = await startServer(['-m', slow, '--parallel', '1', '--max-queue', '0', '--body-limit', '2048', '--ctx', '512']);
    try {
      await s.ready();
      const big = await post(s.url, '/v1/completions', { model: name, prompt: 'x'.repeat(5000) });
      assert.equal(big.status, 413);
      assert.equal(big.json.error.code, 'request_too_large');
      const running = post(s.url, '/v1/completions', long);
      while ((await metric(s.url, 'slots_busy')) === 0) await new Promise((r) => setTimeout(r, 5));
      const busy = await post(s.url, '/v1/completions', { model: name, prompt: 'b', max_tokens: 5 });
      assert.equal(busy.status, 429);
      assert.equal(busy.json.error.code, 'queue_full');
      // Streamed requests too: a 429 before any stream starts (a client retries a 429, never an error event in a 200).
      const chat = { model: name, messages: [{ role: 'user', content: 'b' }], max_tokens: 5 };
      for (const [path, body] of [['/v1/completions', { model: name, prompt: 'b', max_tokens: 5, stream: true }], ['/v1/chat/completions', { ...chat, stream: true }], ['/v1/chat/completions', chat]] as const) {
        const r = await post(s.url, path, body);
        assert.equal(r.status, 429, `${path} ${JSON.stringify(body)}`);
        assert.equal(r.json.error.code, 'queue_full');
      }
      assert.equal((await running).status, 200);
      // None of the refused requests stays counted as in flight.
      assert.equal(await metric(s.url, 'requests_in_flight'), 0);
    } finally {
      await s.stop();
    }
  });

  test('a client that disconnects mid-stream frees its slot at once', async () => {
    const s = await startServer(['-m', slow, '--parallel', '1', '--max-queue', '0', '--ctx', '512']);
    try {
      await s.ready();
      const client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'x', maxRetries: 0 });
      const abort = new AbortController();
      const stream = await client.completions.create({ ...long, stream: true } as never, { signal: abort.signal });
      let chunks = 0;
      try {
        for await (const _ of stream as unknown as AsyncIterable<unknown>) if (++chunks === 3) abort.abort();
      } catch {
        // the client's own abort
      }
      while ((await metric(s.url, 'slots_busy')) !== 0) await new Promise((r) => setTimeout(r, 5));
      // With one slot and no queue, this is admitted only because the first request's slot was
      // freed: that request alone would have run for hundreds more tokens.
      const next = await client.completions.create({ model: name, prompt: 'b', max_tokens: 4, temperature: 0 });
      assert.equal(next.usage?.completion_tokens, 4);
      assert.ok((await metric(s.url, 'completion_tokens_total')) < 100, 'the abandoned generation stopped early');
    } finally {
      await s.stop();
    }
  });

  test('SIGTERM ends in-flight streams with an error event and exits cleanly', async () => {
    const s = await startServer(['-m', slow, '--ctx', '512']);
    await s.ready();
    const r = await fetch(`${s.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...long, stream: true }) });
    const reader = r.body!.getReader();
    await reader.read();
    s.proc.kill('SIGTERM');
    let text = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    assert.match(text, /"error":\{"message":"[^"]*shutting down/);
    assert.doesNotMatch(text, /\[DONE\]/);
    assert.equal(await s.stop(), 0);
  });
});
