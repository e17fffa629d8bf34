/**
 * `cairn serve` (a real child process) against requests and model files meant to hurt it: a
 * prompt of megabytes, schemas of megabytes or thousands of levels deep or too ambiguous to
 * enforce, a chat template that loops for ever, a body trickled byte by byte, token ids past
 * 2^32. Each is refused with a 4xx (or times out) while /health keeps answering within a second,
 * and the server goes on serving; SIGTERM stops it cleanly even while a template is stuck.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { scratchDir } from './helpers/paths.js';
import { startServer, watchHealth, type HealthWatch, type ServerProcess } from './helpers/server.js';
import { writeTinyModel } from './helpers/tiny-model.js';

/** /health must answer within this while a hostile request is handled (a generous bound: the goal is tens of ms). */
const LIVE_MS = 1000;

// Responses are checked field by field; a loose type keeps the assertions readable.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function post(url: string, path: string, body: unknown): Promise<{ status: number; json: any }> {
  const r = await fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await r.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: r.status, json };
}

/** Runs `work` while watching /health; returns what work returned and what the watch saw. */
async function whileWatched<T>(url: string, work: () => Promise<T>): Promise<{ result: T; health: HealthWatch }> {
  const watch = watchHealth(url, 25);
  await watch.started;
  await new Promise((r) => setTimeout(r, 100)); // polls run before, during and after the work
  let result: T;
  try {
    result = await work();
  } finally {
    await new Promise((r) => setTimeout(r, 100));
  }
  const health = await watch.stop();
  return { result, health };
}

function assertLive(health: HealthWatch): void {
  assert.deepEqual(health.failures, []);
  assert.ok(health.polls >= 3, `only ${health.polls} polls`);
  assert.ok(health.slowestMs < LIVE_MS, `/health took ${health.slowestMs.toFixed(0)} ms`);
}

/** A schema nested `depth` objects deep, as JSON text (JSON.stringify itself overflows on thousands of levels). */
function deepSchemaJson(depth: number): string {
  return '{"type":"object","properties":{"a":'.repeat(depth) + '{"type":"string"}' + '},"required":["a"]}'.repeat(depth);
}

/** `body` as JSON text, with the string "DEEP" replaced by `deep` (JSON text). */
function withDeep(body: unknown, deep: string): string {
  return JSON.stringify(body).replace('"DEEP"', deep);
}

const dir = scratchDir('server-hostile');
const plainModel = join(dir, 'tiny.gguf');
const model = 'tiny';
const user = (content: string) => [{ role: 'user', content }];

before(() => {
  mkdirSync(dir, { recursive: true });
  writeTinyModel(plainModel);
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('hostile requests against cairn serve', () => {
  let server: ServerProcess;
  before(async () => {
    server = await startServer(['-m', plainModel, '--ctx', '256', '--parallel', '2', '--request-timeout', '1500']);
    await server.ready();
  });
  after(async () => {
    assert.equal(await server.stop(), 0, 'clean exit on SIGTERM');
  });

  test('a 4 MB prompt is refused before it is tokenized, on every route; /health answers throughout', async () => {
    const huge = 'Once upon a time there was a tiny model. '.repeat(100_000); // 4.2 MB
    const { result, health } = await whileWatched(server.url, async () => [
      await post(server.url, '/v1/completions', { model, prompt: huge, max_tokens: 1 }),
      await post(server.url, '/v1/chat/completions', { model, messages: user(huge), max_tokens: 1 }),
      await post(server.url, '/api/generate', { model, prompt: huge, raw: true, stream: false }),
      await post(server.url, '/api/chat', { model, messages: user(huge), stream: false }),
    ]);
    for (const r of result.slice(0, 2)) {
      assert.equal(r.status, 400, JSON.stringify(r.json).slice(0, 300));
      assert.equal(r.json.error.code, 'context_length_exceeded');
      assert.match(r.json.error.message, /bytes/);
    }
    for (const r of result.slice(2)) assert.equal(r.status, 400);
    assertLive(health);
    // A prompt within the byte bound but over the context in tokens is refused too, after tokenizing.
    const long = await post(server.url, '/v1/completions', { model, prompt: 'a b c d '.repeat(100), max_tokens: 1 });
    assert.equal(long.status, 400);
    assert.equal(long.json.error.code, 'context_length_exceeded');
    assert.match(long.json.error.message, /tokens/);
  });

  test('a 1.1 MB enum schema is refused before it is compiled; /health answers throughout', async () => {
    const values = Array.from({ length: 110_000 }, (_, i) => `v${i.toString(36).padStart(6, '0')}`);
    const { result, health } = await whileWatched(server.url, () =>
      post(server.url, '/v1/chat/completions', { model, messages: user('pick one'), max_tokens: 4, response_format: { type: 'json_schema', json_schema: { name: 'big', schema: { enum: values } } } }),
    );
    assert.equal(result.status, 400);
    assert.equal(result.json.error.param, 'response_format.json_schema.schema');
    assert.match(result.json.error.message, /too large/);
    assertLive(health);
  });

  test('a schema too ambiguous to enforce is refused; /health answers throughout', async () => {
    // Small, but nested optional repetitions keep thousands of parses open at every character.
    const schema = { type: 'string', pattern: '^(.{0,100}){0,100}$' };
    const { result, health } = await whileWatched(server.url, () =>
      post(server.url, '/v1/chat/completions', { model, messages: user('x'), max_tokens: 4, response_format: { type: 'json_schema', json_schema: { name: 'p', schema } } }),
    );
    assert.equal(result.status, 400);
    assert.match(result.json.error.message, /too complex/);
    assertLive(health);
  });

  test('every schema error is a 400, wherever the schema sits and however deep', async () => {
    const deep = deepSchemaJson(3000);
    const tool = (parameters: unknown) => [{ type: 'function', function: { name: 'f', parameters } }];
    const cases: [string, string, string][] = [
      ['response_format', '/v1/chat/completions', withDeep({ model, messages: user('x'), response_format: { type: 'json_schema', json_schema: { name: 'd', schema: 'DEEP' } } }, deep)],
      ['tool_choice required', '/v1/chat/completions', withDeep({ model, messages: user('x'), tools: tool('DEEP'), tool_choice: 'required' }, deep)],
      ['named tool_choice', '/v1/chat/completions', withDeep({ model, messages: user('x'), tools: tool('DEEP'), tool_choice: { type: 'function', function: { name: 'f' } } }, deep)],
      ['tool_choice auto', '/v1/chat/completions', withDeep({ model, messages: user('x'), tools: tool('DEEP') }, deep)],
      ['Ollama format', '/api/chat', withDeep({ model, messages: user('x'), format: 'DEEP', stream: false }, deep)],
      ['Ollama tools', '/api/chat', withDeep({ model, messages: user('x'), tools: tool('DEEP'), stream: false }, deep)],
      ['unsupported keyword, nested', '/v1/chat/completions', JSON.stringify({ model, messages: user('x'), tools: tool({ type: 'object', properties: { a: { type: 'string', contentSchema: {} } } }), tool_choice: 'required' })],
    ];
    for (const [what, path, body] of cases) {
      const r = await post(server.url, path, body);
      assert.equal(r.status, 400, `${what}: ${JSON.stringify(r.json).slice(0, 300)}`);
    }
    // Within the limits, a forced call still works.
    const ok = await post(server.url, '/v1/chat/completions', withDeep({ model, messages: user('x'), tools: tool('DEEP'), tool_choice: 'required', max_tokens: 200, temperature: 0 }, deepSchemaJson(20)));
    assert.equal(ok.status, 200, JSON.stringify(ok.json).slice(0, 300));
  });

  test('logit_bias keys are token ids of the model, checked before use (2^32 + 313 is not token 313)', async () => {
    const wrapped = { [String(2 ** 32 + 313)]: 100 };
    for (const [path, body] of [
      ['/v1/completions', { model, prompt: 'a', max_tokens: 2, logit_bias: wrapped }],
      ['/v1/chat/completions', { model, messages: user('a'), max_tokens: 2, logit_bias: wrapped }],
      ['/v1/completions', { model, prompt: 'a', max_tokens: 2, logit_bias: { '1000': 5 } }],
      ['/api/generate', { model, prompt: 'a', stream: false, options: { num_predict: 2, logit_bias: wrapped } }],
      ['/api/chat', { model, messages: user('a'), stream: false, options: { num_predict: 2, logit_bias: { '-1': 5 } } }],
    ] as const) {
      const r = await post(server.url, path, body);
      assert.equal(r.status, 400, `${path}: ${JSON.stringify(r.json).slice(0, 200)}`);
    }
    // A key in the vocabulary acts: a bias of 100 makes token 313 the whole greedy reply.
    const forced = await post(server.url, '/v1/completions', { model, prompt: 'a', max_tokens: 3, temperature: 0, logit_bias: { '313': 100 } });
    assert.equal(forced.status, 200);
    const viaOllama = await post(server.url, '/api/generate', { model, prompt: 'a', raw: true, stream: false, options: { num_predict: 3, temperature: 0, logit_bias: { '313': 100 } } });
    assert.deepEqual(viaOllama.json.context.slice(-3), [313, 313, 313]);
    assert.equal(viaOllama.json.response, forced.json.choices[0].text);
    const ids = await post(server.url, '/v1/completions', { model, prompt: [1, 2 ** 32 + 313], max_tokens: 1 });
    assert.equal(ids.status, 400);
  });

  test('sampling values the sampler refuses are 400s naming the field, before a stream starts', async () => {
    const cases: [string, unknown, string][] = [
      ['/v1/chat/completions', { model, messages: user('x'), seed: -5, stream: true }, 'seed'],
      ['/v1/completions', { model, prompt: 'a', repeat_penalty: 0, stream: true }, 'repeat_penalty'],
      ['/api/chat', { model, messages: user('x'), options: { seed: -7 } }, 'options.seed'],
      ['/api/generate', { model, prompt: 'a', options: { repeat_penalty: 0 } }, 'options.repeat_penalty'],
      // Every stop string is looked for after every token: Ollama's list is bounded as OpenAI's is.
      ['/api/generate', { model, prompt: 'a', options: { stop: Array.from({ length: 65 }, (_, i) => `s${i}`) } }, 'options.stop'],
    ];
    for (const [path, body, field] of cases) {
      const r = await post(server.url, path, body);
      assert.equal(r.status, 400, `${path}: ${JSON.stringify(r.json).slice(0, 300)}`);
      const message = path.startsWith('/api/') ? r.json.error : r.json.error.message;
      assert.ok(message.includes(`'${field}'`), message);
      if (!path.startsWith('/api/')) assert.equal(r.json.error.param, field);
    }
    // -1 is a random seed, as in llama.cpp.
    assert.equal((await post(server.url, '/v1/chat/completions', { model, messages: user('x'), seed: -1, max_tokens: 2 })).status, 200);
  });

  test('n beyond what the slots and the queue can take is a 400 naming n, not a 429 that retrying never clears', async () => {
    // 2 slots and the default queue of 4 x 2 take 10 choices at once.
    for (const [path, body] of [
      ['/v1/chat/completions', { model, messages: user('x'), max_tokens: 2, n: 11 }],
      ['/v1/chat/completions', { model, messages: user('x'), max_tokens: 2, n: 11, stream: true }],
      ['/v1/completions', { model, prompt: ['a', 'b', 'c', 'd', 'e', 'f'], max_tokens: 2, n: 2 }],
    ] as const) {
      const r = await post(server.url, path, body);
      assert.equal(r.status, 400, `${path}: ${JSON.stringify(r.json).slice(0, 300)}`);
      assert.equal(r.json.error.param, 'n');
      assert.match(r.json.error.message, /at most 10/);
    }
    const ten = await post(server.url, '/v1/chat/completions', { model, messages: user('x'), max_tokens: 2, n: 10 });
    assert.equal(ten.status, 200);
    assert.equal(ten.json.choices.length, 10);
    assert.doesNotMatch(server.stderr(), /MaxListenersExceeded/);
  });

  test('values nested thousands of levels deep are 400s (or ignored where the field is), never 500s', async () => {
    const deep = '['.repeat(100_000) + ']'.repeat(100_000);
    const cases: [string, string, number][] = [
      // Tool-call arguments are handed to the chat template as values.
      ['/v1/chat/completions', withDeep({ model, max_tokens: 2, messages: [...user('x'), { role: 'assistant', tool_calls: [{ id: 'a', type: 'function', function: { name: 'f', arguments: 'DEEP' } }] }] }, JSON.stringify(deep)), 400],
      ['/api/chat', withDeep({ model, stream: false, options: { num_predict: 2 }, messages: [...user('x'), { role: 'assistant', content: '', tool_calls: [{ function: { name: 'f', arguments: { x: 'DEEP' } } }] }] }, deep), 400],
      ['/v1/responses', withDeep({ model, max_output_tokens: 2, input: [{ type: 'message', role: 'user', content: 'x' }, { type: 'function_call', call_id: 'c', name: 'f', arguments: 'DEEP' }, { type: 'function_call_output', call_id: 'c', output: 'r' }] }, JSON.stringify(deep)), 400],
      ['/v1/messages', withDeep({ model, max_tokens: 2, messages: [...user('x'), { role: 'assistant', content: [{ type: 'tool_use', id: 'a', name: 'f', input: { x: 'DEEP' } }] }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'a', content: 'r' }] }] }, deep), 400],
      ['/v1/messages/count_tokens', withDeep({ model, messages: [...user('x'), { role: 'assistant', content: [{ type: 'tool_use', id: 'a', name: 'f', input: { x: 'DEEP' } }] }] }, deep), 400],
      ['/v1/messages', withDeep({ model, max_tokens: 2, messages: user('x'), tools: [{ name: 'f', input_schema: { x: 'DEEP' } }] }, deep), 400],
      // Metadata is accepted and ignored, however it is nested.
      ['/v1/messages', withDeep({ model, max_tokens: 2, messages: user('x'), metadata: 'DEEP' }, deep), 200],
    ];
    for (const [path, body, status] of cases) {
      const r = await post(server.url, path, body);
      assert.equal(r.status, status, `${path}: ${JSON.stringify(r.json).slice(0, 300)}`);
    }
  });

  test('a body of a million token ids is checked in one pass; /health answers throughout', async () => {
    const ids = Array.from({ length: 1_500_000 }, () => 1);
    const { result, health } = await whileWatched(server.url, async () => [
      await post(server.url, '/v1/embeddings', { model, input: ids }),
      await post(server.url, '/v1/completions', { model, prompt: ids, max_tokens: 1 }),
      await post(server.url, '/detokenize', { tokens: ids }),
    ]);
    for (const r of result) assert.equal(r.status, 400, JSON.stringify(r.json).slice(0, 300));
    assertLive(health);
  });

  test("a path the router cannot read is answered in the API's error shape", async () => {
    const openai = await fetch(`${server.url}/v1/models/%E0%A4%A`);
    assert.equal(openai.status, 400);
    assert.equal(((await openai.json()) as { error: { code: string } }).error.code, 'invalid_path');
    const ollama = await fetch(`${server.url}/api/%zz`);
    assert.equal(ollama.status, 400);
    assert.equal(typeof ((await ollama.json()) as { error: unknown }).error, 'string');
    const anthropic = await fetch(`${server.url}/v1/messages/%zz`, { method: 'POST' });
    assert.equal(anthropic.status, 400);
    assert.equal(((await anthropic.json()) as { type: string }).type, 'error');
  });

  test('a trickled request body is dropped after --request-timeout, as are trickled headers', async () => {
    const trickle = (head: string, then: string) =>
      new Promise<{ closedAfterMs: number; reply: string }>((resolve, reject) => {
        const t0 = performance.now();
        const { hostname, port } = new URL(server.url);
        const socket = connect(Number(port), hostname);
        let reply = '';
        let timer: NodeJS.Timeout | undefined;
        socket.on('connect', () => {
          socket.write(head);
          timer = setInterval(() => socket.write(then), 100);
        });
        socket.on('data', (d) => (reply += d.toString()));
        socket.on('error', () => {}); // the server may reset the connection
        socket.on('close', () => {
          clearInterval(timer);
          resolve({ closedAfterMs: performance.now() - t0, reply });
        });
        setTimeout(() => {
          clearInterval(timer);
          socket.destroy();
          reject(new Error('the server kept the trickling connection open for 10 s'));
        }, 10_000);
      });
    const { result, health } = await whileWatched(server.url, () =>
      Promise.all([
        trickle('POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"model": "tiny", "prompt": "', 'a'),
        trickle('POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n', 'X-Slow: 1\r\n'),
      ]),
    );
    for (const r of result) {
      assert.ok(r.closedAfterMs < 6000, `closed after ${r.closedAfterMs.toFixed(0)} ms`);
      assert.ok(r.closedAfterMs > 1000, `closed after ${r.closedAfterMs.toFixed(0)} ms, before the timeout`);
      assert.match(r.reply, /^HTTP\/1\.1 408/);
    }
    assertLive(health);
    // Requests sent at once are unaffected.
    assert.equal((await post(server.url, '/v1/completions', { model, prompt: 'a', max_tokens: 2 })).status, 200);
  });
});

describe('a model whose chat template is hostile', () => {
  // 10^8 steps: hours for the template interpreter.
  const loop = '{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}';
  // One step that takes seconds (sorting a million numbers): the step budget cannot see into it.
  const longStep = '{% for i in range(100) %}{% set x = range(1000000)|sort %}{% endfor %}{{ messages[0].content }}';
  const loopModel = join(dir, 'loop.gguf');
  const stepModel = join(dir, 'step.gguf');
  before(() => {
    writeTinyModel(loopModel, loop);
    writeTinyModel(stepModel, longStep);
  });

  test('a template that loops for ever fails its request with 400; /health and other requests go on', async () => {
    const s = await startServer(['-m', loopModel, '--ctx', '256', '--template-timeout', '500']);
    try {
      await s.ready();
      const { result, health } = await whileWatched(s.url, async () => {
        const chats = await Promise.all([
          post(s.url, '/v1/chat/completions', { model: 'loop', messages: user('hi'), max_tokens: 2 }),
          post(s.url, '/api/chat', { model: 'loop', messages: user('hi'), stream: false }),
        ]);
        const text = await post(s.url, '/v1/completions', { model: 'loop', prompt: 'hi', max_tokens: 2 });
        return { chats, text };
      });
      for (const r of result.chats) {
        assert.equal(r.status, 400, JSON.stringify(r.json).slice(0, 300));
        assert.match(JSON.stringify(r.json), /chat template was stopped: it ran for more than 500 ms/);
      }
      assert.equal(result.text.status, 200);
      assertLive(health);
    } finally {
      assert.equal(await s.stop(), 0);
    }
  });

  test('a template stuck inside one long step: its worker is replaced and the request fails with 400', async () => {
    const s = await startServer(['-m', stepModel, '--ctx', '256', '--template-timeout', '100', '--prompt-workers', '1']);
    try {
      await s.ready();
      const { result, health } = await whileWatched(s.url, () => post(s.url, '/v1/chat/completions', { model: 'step', messages: user('hi'), max_tokens: 2 }));
      assert.equal(result.status, 400, JSON.stringify(result.json).slice(0, 300));
      assert.match(result.json.error.message, /chat template was stopped/);
      assertLive(health);
      // The one worker was replaced: text prompts are still tokenized.
      assert.equal((await post(s.url, '/v1/completions', { model: 'step', prompt: 'hi', max_tokens: 2 })).status, 200);
    } finally {
      assert.equal(await s.stop(), 0);
    }
  });

  test('SIGTERM shuts the server down cleanly while a template is stuck', async () => {
    const s = await startServer(['-m', loopModel, '--ctx', '256', '--template-timeout', '600000']);
    await s.ready();
    const pending = post(s.url, '/v1/chat/completions', { model: 'loop', messages: user('hi'), max_tokens: 2 }).catch((err: Error) => err);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal((await fetch(`${s.url}/health`)).status, 200, 'the server answers while the template runs');
    const t0 = performance.now();
    s.proc.kill('SIGTERM');
    assert.equal(await s.stop(), 0);
    assert.ok(performance.now() - t0 < 8000, 'exited promptly');
    const r = await pending;
    if (!(r instanceof Error)) assert.notEqual(r.status, 200);
  });
});
