/**
 * What clients send as they are: the official `openai` client sending an assistant message back as
 * it returned it, front ends and proxies adding fields of their own (`reasoning_effort`,
 * `cache_control`, anything), a client configured with another model's name. All of it is served;
 * the fields cairn ignores are told once each at `--log-level debug`; fields that would change
 * what the answer means and that cairn cannot honour get 400 naming them; and
 * `--strict-model-names` brings back 404 for other names.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import OpenAI from 'openai';
import { scratchDir } from './helpers/paths.js';
import { startServer, type ServerProcess } from './helpers/server.js';
import { writeTinyModel } from './helpers/tiny-model.js';

const dir = scratchDir('server-lenient');
const modelPath = join(dir, 'tiny.gguf');
let server: ServerProcess;
let client: OpenAI;

before(async () => {
  mkdirSync(dir, { recursive: true });
  writeTinyModel(modelPath);
  server = await startServer(['-m', modelPath, '--ctx', '512', '--log-level', 'debug']);
  await server.ready();
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
after(async () => {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function post(path: string, body: unknown): Promise<{ status: number; json: any }> {
  const r = await fetch(server.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.status, json: await r.json().catch(() => undefined) };
}

test("the assistant message goes back as the SDK returned it, with the fields it added; extra fields are ignored and told once", async () => {
  const first = await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'Hello' }], max_tokens: 4, temperature: 0 });
  const reply = first.choices[0].message;
  // As the Python SDK's model_dump() (absent fields as null) and the JS SDK's finalMessage() add them.
  const sentBack = { ...reply, annotations: [], audio: null, function_call: null, tool_calls: null, parsed: null };
  // Fields of other servers and proxies, passed through by front ends.
  const extra = { reasoning_effort: 'low', cache_control: { type: 'ephemeral' }, my_custom_knob: 3 };
  const second = await client.chat.completions.create({
    model: 'tiny',
    messages: [{ role: 'user', content: 'Hello' }, sentBack as unknown as OpenAI.Chat.ChatCompletionMessageParam, { role: 'user', content: 'And then?' }],
    max_tokens: 4,
    temperature: 0,
    ...(extra as object),
  });
  assert.equal(second.choices.length, 1);
  assert.ok(second.usage!.completion_tokens > 0);
  // Ignoring them changes nothing: the same answer as without them.
  const plain = await client.chat.completions.create({
    model: 'tiny',
    messages: [{ role: 'user', content: 'Hello' }, { role: 'assistant', content: reply.content }, { role: 'user', content: 'And then?' }],
    max_tokens: 4,
    temperature: 0,
  });
  assert.equal(second.choices[0].message.content, plain.choices[0].message.content);
  // A misspelled parameter is ignored too (and told), but a known one out of range is still a 400.
  assert.equal((await post('/v1/completions', { model: 'tiny', prompt: 'a', max_tokens: 2, temprature: 1 })).status, 200);
  const bad = await post('/v1/chat/completions', { model: 'tiny', messages: [{ role: 'user', content: 'x' }], temperature: 7 });
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.param, 'temperature');
  await post('/v1/completions', { model: 'tiny', prompt: 'a', max_tokens: 2, temprature: 1 });
  const log = server.stderr();
  for (const field of ['reasoning_effort', 'cache_control', 'my_custom_knob', 'messages[].annotations', 'messages[].parsed', 'temprature']) {
    const told = log.split('\n').filter((l) => l.includes(`ignoring the request field "${field}"`));
    assert.equal(told.length, 1, `${field} told once:\n${log}`);
  }
});

test('fields that would change the answer and cannot be honoured are refused by name', async () => {
  const base = { model: 'tiny', messages: [{ role: 'user', content: 'x' }] };
  const cases: [Record<string, unknown>, string][] = [
    [{ ...base, functions: [{ name: 'f', parameters: {} }] }, 'functions'],
    [{ ...base, function_call: 'auto' }, 'function_call'],
    [{ ...base, modalities: ['text', 'audio'] }, 'modalities'],
    [{ ...base, audio: { voice: 'alloy', format: 'wav' } }, 'audio'],
    [{ ...base, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:,' } }] }] }, 'messages.0.content'],
  ];
  for (const [body, param] of cases) {
    const r = await post('/v1/chat/completions', body);
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.equal(r.json.error.param, param);
    if (param === 'messages.0.content') assert.match(r.json.error.message, /'image_url' are not supported/);
  }
  // What they look like when off is fine: null, false, text only.
  const off = await post('/v1/chat/completions', { ...base, max_tokens: 2, functions: null, function_call: null, audio: null, modalities: ['text'] });
  assert.equal(off.status, 200);
});

test("what other clients send as valid is served: an assistant's refusal part, Ollama's nulls; a list of too many prompts and a compressed body say what is wrong", async () => {
  // OpenAI's assistant content may hold a refusal part: read as its text, the same prompt as plain text.
  const turns = (assistant: unknown) => ({ model: 'tiny', max_tokens: 4, temperature: 0, messages: [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: assistant }, { role: 'user', content: 'Why?' }] });
  const refusal = await post('/v1/chat/completions', turns([{ type: 'refusal', refusal: 'I cannot.' }]));
  const text = await post('/v1/chat/completions', turns('I cannot.'));
  assert.equal(refusal.status, 200);
  assert.equal(refusal.json.usage.prompt_tokens, text.json.usage.prompt_tokens);
  assert.equal(refusal.json.choices[0].message.content, text.json.choices[0].message.content);
  // Ollama's own server takes null for these as absent.
  const generate = await post('/api/generate', { model: 'tiny', prompt: 'a', system: null, suffix: null, raw: null, options: null, stream: null, format: null });
  assert.equal(generate.status, 200);
  const chat = await post('/api/chat', { model: 'tiny', messages: [{ role: 'user', content: 'Hi' }], options: null, stream: false, format: null });
  assert.equal(chat.status, 200);
  assert.equal(chat.json.done, true);
  const many = await post('/v1/completions', { model: 'tiny', prompt: Array.from({ length: 65 }, () => 'a'), max_tokens: 1 });
  assert.equal(many.status, 400);
  assert.match(many.json.error.message, /1 to 64 strings/);
  const gzip = await fetch(`${server.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' }, body: gzipSync(JSON.stringify({ model: 'tiny', prompt: 'a' })) });
  assert.equal(gzip.status, 415);
  assert.match(((await gzip.json()) as { error: { message: string } }).error.message, /uncompressed/);
});

test('as OpenAI: tool_choice required or a named function without tools, and top_logprobs without logprobs, are 400s naming the field', async () => {
  const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: 'user', content: 'x' }];
  const cases: [Record<string, unknown>, string][] = [
    [{ tool_choice: 'required' }, 'tool_choice'],
    [{ tool_choice: 'required', tools: [] }, 'tool_choice'],
    [{ tool_choice: { type: 'function', function: { name: 'get_weather' } } }, 'tool_choice'],
    [{ top_logprobs: 2 }, 'top_logprobs'],
    [{ top_logprobs: 2, logprobs: false }, 'top_logprobs'],
  ];
  for (const [fields, param] of cases) {
    await assert.rejects(
      client.chat.completions.create({ model: 'tiny', messages, max_tokens: 2, ...fields } as OpenAI.ChatCompletionCreateParamsNonStreaming),
      (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === param && e.message.includes(param),
      JSON.stringify(fields),
    );
  }
  // Forcing nothing, top_logprobs with logprobs, or top_logprobs 0 (which asks for nothing) is served.
  for (const fields of [{ tool_choice: 'auto' }, { tool_choice: 'none' }, { logprobs: true, top_logprobs: 2 }, { top_logprobs: 0 }]) {
    const r = await client.chat.completions.create({ model: 'tiny', messages, max_tokens: 2, ...fields } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    assert.equal(r.choices.length, 1, JSON.stringify(fields));
  }
});

test('a prompt over the context is a 400 naming the field that held it: prompt on /v1/completions, content on /tokenize, messages on chat', async () => {
  // Within the byte bound, over the 512-token context in tokens.
  const long = 'a b c d '.repeat(200);
  const overflow = (param: string) => (e: unknown) => e instanceof OpenAI.BadRequestError && e.code === 'context_length_exceeded' && e.param === param;
  await assert.rejects(client.completions.create({ model: 'tiny', prompt: long, max_tokens: 1 }), overflow('prompt'));
  await assert.rejects(client.completions.create({ model: 'tiny', prompt: Array.from({ length: 600 }, () => 5), max_tokens: 1 }), overflow('prompt'));
  await assert.rejects(client.completions.create({ model: 'tiny', prompt: long, max_tokens: 1, stream: true }), overflow('prompt'));
  await assert.rejects(client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: long }], max_tokens: 1 }), overflow('messages'));
  const tokenize = await post('/tokenize', { content: long });
  assert.equal(tokenize.status, 400);
  assert.equal(tokenize.json.error.code, 'context_length_exceeded');
  assert.equal(tokenize.json.error.param, 'content');
});

test("a client configured with another model's name is served, and the name comes back", async () => {
  const r = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2 });
  assert.equal(r.model, 'gpt-4o');
  const c = await client.completions.create({ model: 'gpt-3.5-turbo-instruct', prompt: 'a', max_tokens: 2 });
  assert.equal(c.model, 'gpt-3.5-turbo-instruct');
  const stream = await client.chat.completions.create({ model: 'llama3:latest', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2, stream: true });
  for await (const chunk of stream) assert.equal(chunk.model, 'llama3:latest');
});

test('--strict-model-names answers 404 to other names', async () => {
  const strict = await startServer(['-m', modelPath, '--ctx', '256', '--strict-model-names']);
  try {
    await strict.ready();
    const c = new OpenAI({ baseURL: `${strict.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    await assert.rejects(c.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] }), (e: unknown) => e instanceof OpenAI.NotFoundError && /gpt-4o/.test(e.message));
    assert.equal((await c.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'x' }], max_tokens: 1 })).model, 'tiny');
    // Ollama's tag on the model's own name is still the model.
    const tagged = await fetch(`${strict.url}/api/generate`, { method: 'POST', body: JSON.stringify({ model: 'tiny:latest', prompt: 'a', stream: false, options: { num_predict: 1 } }) });
    assert.equal(tagged.status, 200);
    const other = await fetch(`${strict.url}/api/generate`, { method: 'POST', body: JSON.stringify({ model: 'llama3:latest', prompt: 'a', stream: false }) });
    assert.equal(other.status, 404);
    assert.match(((await other.json()) as { error: string }).error, /llama3/);
  } finally {
    await strict.stop();
  }
});

test("Ollama's clients: errors as a string under `error`, the root answers, tagged names are served", async () => {
  const root = await fetch(`${server.url}/`);
  assert.equal(root.status, 200);
  assert.equal(await root.text(), 'Ollama is running');
  assert.equal((await fetch(`${server.url}/`, { method: 'HEAD' })).status, 200);
  const bad = await post('/api/chat', { model: 'tiny', messages: 'not a list' });
  assert.equal(bad.status, 400);
  assert.equal(typeof bad.json.error, 'string');
  assert.ok(bad.json.error.length > 0);
  const tagged = await post('/api/chat', { model: 'tiny:latest', messages: [{ role: 'user', content: 'Hi' }], stream: false, options: { num_predict: 2 } });
  assert.equal(tagged.status, 200);
  assert.equal(tagged.json.done, true);
  // Options are range-checked as the OpenAI routes' fields are.
  for (const o of [{ temperature: 5 }, { top_p: 2 }, { presence_penalty: 9 }, { num_predict: -3 }]) {
    const r = await post('/api/generate', { model: 'tiny', prompt: 'a', stream: false, options: o });
    assert.equal(r.status, 400, JSON.stringify(o));
    assert.match(r.json.error, new RegExp(Object.keys(o)[0]));
  }
  // OpenAI routes keep OpenAI's error shape.
  const openai = await post('/v1/chat/completions', { model: 'tiny', messages: 'not a list' });
  assert.equal(typeof openai.json.error, 'object');
  assert.equal(openai.json.error.type, 'invalid_request_error');
});

// Teaches Llama 3.1's JSON tool calls (its header token and a `"parameters"` call), so that a
// reply that is a call object is parsed as one; renders tool calls and tool results, so that each
// changes the prompt.
const JSON_CALLS_TEMPLATE =
  '{#- as Llama 3.1: <|start_header_id|>, a call is {"name": ..., "parameters": ...} #}' +
  '{%- if tools %}tools: {{ tools | tojson }}\nAnswer a call as {"name": ..., "parameters": ...}.\n{% endif %}' +
  '{%- for m in messages %}{{ m.role }}{% if m.name %} {{ m.name }}{% endif %}{% if m.tool_call_id %} [{{ m.tool_call_id }}]{% endif %}: {{ m.content }}' +
  '{%- for c in m.tool_calls or [] %} call {{ c.function.name }} {{ c.function.arguments | tojson }}{% endfor %}\n{% endfor %}' +
  '{%- if add_generation_prompt %}assistant:{% endif %}';

test("Ollama's /api/chat with tools: a call comes back as message.tool_calls with object arguments, streamed in a line of its own; calls and tool results go back into the prompt", async () => {
  const path = join(dir, 'tiny-json-calls.gguf');
  writeTinyModel(path, JSON_CALLS_TEMPLATE);
  const s = await startServer(['-m', path, '--ctx', '1024']);
  try {
    await s.ready();
    const ollama = async (body: unknown) => {
      const r = await fetch(`${s.url}/api/chat`, { method: 'POST', body: JSON.stringify(body) });
      return { status: r.status, text: await r.text() };
    };
    const city = { type: 'string', enum: ['Paris', 'Rome'] };
    const tools = [{ type: 'function', function: { name: 'get_weather', description: 'Weather in a city', parameters: { type: 'object', properties: { city }, required: ['city'] } } }];
    // `format` makes the tiny model write a call in the template's syntax.
    const call = { type: 'object', properties: { name: { const: 'get_weather' }, parameters: { type: 'object', properties: { city }, required: ['city'], additionalProperties: false } }, required: ['name', 'parameters'], additionalProperties: false };
    const request = { model: 'tiny', messages: [{ role: 'user', content: 'Weather in Paris?' }], tools, format: call, options: { temperature: 0, num_predict: 100 } };

    const whole = await ollama({ ...request, stream: false });
    assert.equal(whole.status, 200, whole.text);
    const one = JSON.parse(whole.text);
    assert.equal(one.done, true);
    assert.equal(one.done_reason, 'stop', 'as Ollama: a call ends the reply with stop');
    assert.equal(one.message.content, '');
    assert.equal(one.message.tool_calls.length, 1);
    const fn = one.message.tool_calls[0].function;
    assert.equal(fn.name, 'get_weather');
    assert.equal(fn.index, 0);
    assert.ok(['Paris', 'Rome'].includes(fn.arguments.city), `arguments are an object: ${JSON.stringify(fn.arguments)}`);

    // Streamed: no text of the call as content; the call in a line of its own before the last.
    const lines = (await ollama(request)).text.trim().split('\n').map((l) => JSON.parse(l));
    const last = lines.at(-1);
    assert.equal(last.done, true);
    assert.equal(last.done_reason, 'stop');
    assert.equal(lines.map((l) => l.message.content).join(''), '');
    const withCalls = lines.filter((l) => l.message.tool_calls);
    assert.equal(withCalls.length, 1);
    assert.equal(withCalls[0].done, false);
    assert.deepEqual(withCalls[0].message.tool_calls.map((c: { function: unknown }) => c.function), [fn]);

    // The call and its result go back as Ollama's clients send them: the same prompt as the
    // OpenAI route's tool messages. That prompt was just read, so Ollama's reads all but its last token from the cache.
    const result = '{"temp": 21}';
    const viaOpenAi = await new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'unused', maxRetries: 0 }).chat.completions.create({
      model: 'tiny',
      tools: tools as OpenAI.ChatCompletionTool[],
      messages: [
        { role: 'user', content: 'Weather in Paris?' },
        { role: 'assistant', content: '', tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: JSON.stringify(fn.arguments) } }] },
        { role: 'tool', tool_call_id: 'call_1', name: 'get_weather', content: result } as OpenAI.ChatCompletionToolMessageParam,
      ],
      max_tokens: 2,
      temperature: 0,
    });
    const followUp = await ollama({
      model: 'tiny',
      tools,
      messages: [
        { role: 'user', content: 'Weather in Paris?' },
        { role: 'assistant', content: '', tool_calls: [{ id: 'call_1', function: { name: 'get_weather', arguments: fn.arguments } }] },
        { role: 'tool', tool_name: 'get_weather', tool_call_id: 'call_1', content: result },
      ],
      stream: false,
      options: { temperature: 0, num_predict: 2 },
    });
    assert.equal(followUp.status, 200, followUp.text);
    assert.ok(viaOpenAi.usage!.prompt_tokens > 20);
    assert.equal(JSON.parse(followUp.text).prompt_eval_count, 1, 'the same prompt as the OpenAI route');
  } finally {
    await s.stop();
  }
});

test('--cors-origin: a page of that origin may call the API (preflight answered, headers on answers and errors); others get no CORS headers; without it, none', async () => {
  const s = await startServer(['-m', modelPath, '--ctx', '256', '--cors-origin', 'http://localhost:3000', '--api-key', 'k-123']);
  try {
    await s.ready();
    const preflight = await fetch(`${s.url}/v1/chat/completions`, {
      method: 'OPTIONS',
      // As the SDKs' browser builds ask: their own headers besides the key.
      headers: { origin: 'http://localhost:3000', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,authorization,x-stainless-os,anthropic-version' },
    });
    assert.ok(preflight.status === 204 || preflight.status === 200, `preflight ${preflight.status}`);
    assert.equal(preflight.headers.get('access-control-allow-origin'), 'http://localhost:3000');
    for (const h of ['authorization', 'x-stainless-os', 'anthropic-version']) assert.match(preflight.headers.get('access-control-allow-headers') ?? '', new RegExp(h, 'i'));
    const del = await fetch(`${s.url}/v1/responses/resp_x`, { method: 'OPTIONS', headers: { origin: 'http://localhost:3000', 'access-control-request-method': 'DELETE' } });
    assert.match(del.headers.get('access-control-allow-methods') ?? '', /DELETE/);
    const ok = await fetch(`${s.url}/v1/models`, { headers: { origin: 'http://localhost:3000', authorization: 'Bearer k-123' } });
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get('access-control-allow-origin'), 'http://localhost:3000');
    const denied = await fetch(`${s.url}/v1/models`, { headers: { origin: 'http://localhost:3000' } });
    assert.equal(denied.status, 401);
    assert.equal(denied.headers.get('access-control-allow-origin'), 'http://localhost:3000', 'the browser can read the 401');
    const other = await fetch(`${s.url}/v1/models`, { headers: { origin: 'http://evil.example', authorization: 'Bearer k-123' } });
    assert.equal(other.headers.get('access-control-allow-origin'), null);
  } finally {
    await s.stop();
  }
  const none = await fetch(`${server.url}/v1/models`, { headers: { origin: 'http://localhost:3000' } });
  assert.equal(none.headers.get('access-control-allow-origin'), null);
});

test("llama-server's extras: /tokenize and /detokenize round-trip, /props and /slots describe the server", async () => {
  const t = await post('/tokenize', { content: 'hello world' });
  assert.equal(t.status, 200);
  assert.ok(Array.isArray(t.json.tokens) && t.json.tokens.length > 0 && t.json.tokens.every((x: unknown) => Number.isInteger(x)));
  const withBos = await post('/tokenize', { content: 'hello world', add_special: true });
  assert.equal(withBos.json.tokens.length, t.json.tokens.length + 1, 'add_special adds the BOS');
  const pieces = await post('/tokenize', { content: 'hello world', with_pieces: true });
  assert.deepEqual(
    pieces.json.tokens.map((p: { id: number }) => p.id),
    t.json.tokens,
  );
  assert.ok(pieces.json.tokens.every((p: { piece: unknown }) => typeof p.piece === 'string'));
  const back = await post('/detokenize', { tokens: t.json.tokens });
  assert.equal(back.status, 200);
  assert.match(back.json.content, /hello world/);
  // Out of the vocabulary, or not a list of ids: 400.
  assert.equal((await post('/detokenize', { tokens: [999999] })).status, 400);
  assert.equal((await post('/detokenize', { tokens: 'abc' })).status, 400);
  assert.equal((await post('/tokenize', { content: 3 })).status, 400);
  const props = (await (await fetch(`${server.url}/props`)).json()) as { total_slots: number; n_ctx: number; default_generation_settings: { params: { temperature: number } }; backend: unknown };
  assert.ok(props.total_slots >= 1);
  assert.deepEqual(props.backend, { name: 'cpu', adapter: null, gpu_layers: 0 });
  assert.equal(props.n_ctx, 512);
  assert.equal(typeof props.default_generation_settings.params.temperature, 'number');
  const slots = (await (await fetch(`${server.url}/slots`)).json()) as { id: number; is_processing: boolean }[];
  assert.equal(slots.length, props.total_slots);
  assert.ok(slots.every((s, i) => s.id === i && s.is_processing === false));
});

test('/api/show tells what Ollama clients read: context length, parameters, template, capabilities', async () => {
  const r = await post('/api/show', { model: 'tiny' });
  assert.equal(r.status, 200);
  assert.equal(r.json.model_info['llama.context_length'], 2048, 'the context the model was trained for');
  assert.equal(r.json.model_info['llama.block_count'], 2);
  assert.match(r.json.parameters, /^num_ctx 512$/m, 'the context each request gets here');
  assert.match(r.json.parameters, /^temperature 0\.8$/m);
  assert.ok(r.json.capabilities.includes('completion'));
  assert.equal(typeof r.json.template, 'string');
  assert.ok(!Number.isNaN(Date.parse(r.json.modified_at)));
});

test('one log line per request: method, path, status, tokens, time; --log-format json for machines', async () => {
  const before = server.stderr().length;
  await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 3, temperature: 0 });
  const s = await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 3, temperature: 0, stream: true });
  for await (const chunk of s) void chunk;
  await fetch(`${server.url}/v1/nothing%0Aforged`);
  await new Promise((r) => setTimeout(r, 100));
  const lines = server.stderr().slice(before).split('\n');
  const chat = lines.filter((l) => /^cairn: POST \/v1\/chat\/completions 200 \d+\+3 tokens \d+ ms$/.test(l));
  assert.equal(chat.length, 2, lines.join('\n'));
  assert.ok(lines.some((l) => /^cairn: GET \/v1\/nothing%0Aforged 404 \d+ ms$/.test(l)), 'the path as sent, on one line');
  assert.ok(!lines.some((l) => /GET \/health/.test(l)), 'health polls are not logged');

  const j = await startServer(['-m', modelPath, '--ctx', '256', '--log-format', 'json']);
  try {
    await j.ready();
    await fetch(`${j.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'tiny', prompt: 'a', max_tokens: 2 }) });
    await new Promise((r) => setTimeout(r, 100));
    const entry = j
      .stderr()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { method: string; path: string; status: number; completion_tokens: number; ms: number })
      .find((e) => e.path === '/v1/completions');
    assert.ok(entry);
    assert.equal(entry.method, 'POST');
    assert.equal(entry.status, 200);
    assert.equal(entry.completion_tokens, 2);
    assert.ok(entry.ms >= 0);
  } finally {
    await j.stop();
  }
});

test('/metrics has histograms of time to first token, inter-token latency and request duration, by model', async () => {
  await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4, temperature: 0 });
  const text = await (await fetch(`${server.url}/metrics`)).text();
  for (const name of ['time_to_first_token_seconds', 'inter_token_latency_seconds', 'request_duration_seconds']) {
    assert.match(text, new RegExp(`^# TYPE cairn_${name} histogram$`, 'm'));
    const count = Number(new RegExp(`^cairn_${name}_count\\{model="tiny"\\} (\\d+)$`, 'm').exec(text)?.[1]);
    assert.ok(count >= 1, `${name}: ${count} observations`);
    const inf = Number(new RegExp(`^cairn_${name}_bucket\\{model="tiny",le="\\+Inf"\\} (\\d+)$`, 'm').exec(text)?.[1]);
    assert.equal(inf, count, `${name}: the +Inf bucket holds every observation`);
    // Buckets are cumulative: never fewer at a larger bound.
    const buckets = [...text.matchAll(new RegExp(`^cairn_${name}_bucket\\{model="tiny",le="[^"]+"\\} (\\d+)$`, 'gm'))].map((m) => Number(m[1]));
    for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i] >= buckets[i - 1]);
  }
});
