/**
 * Anthropic's Messages API on `cairn serve`, driven by the official `@anthropic-ai/sdk` against a
 * real server process. Answers are checked against what the same server says to the same
 * conversation on its OpenAI chat route at temperature 0 (the model's words are random; the two
 * routes must agree on them), streaming against not streaming, and errors by the SDK's classes.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { GgmlType } from '../src/gguf/ggml-types.js';
import { writeSyntheticModel } from '../src/model/synthetic.js';
import { scratchDir } from './helpers/paths.js';
import { startServer, type ServerProcess } from './helpers/server.js';
import { writeTinyModel } from './helpers/tiny-model.js';

// A Hermes-style template that renders the system prompt, tools, tool calls and tool results, so
// that each of them changes the prompt, and whose <tool_call> syntax the server parses.
const TEMPLATE =
  '{% if tools %}tools: {{ tools | tojson }}\nCall a tool inside <tool_call></tool_call> tags.\n{% endif %}' +
  '{% for m in messages %}' +
  "{% if m.role == 'tool' %}tool {{ m.tool_call_id }}: {{ m.content }}\n" +
  '{% elif m.tool_calls %}assistant: {{ m.content }}{% for c in m.tool_calls %}<tool_call>{{ c.function | tojson }}</tool_call>{% endfor %}\n' +
  '{% else %}{{ m.role }}: {{ m.content }}\n{% endif %}' +
  '{% endfor %}' +
  '{% if add_generation_prompt %}assistant:{% endif %}';

const dir = scratchDir('server-anthropic');
const modelPath = join(dir, 'tiny.gguf');
let server: ServerProcess;
let client: Anthropic;
let openai: OpenAI;

before(async () => {
  mkdirSync(dir, { recursive: true });
  writeTinyModel(modelPath, TEMPLATE);
  server = await startServer(['-m', modelPath, '--ctx', '1024', '--log-level', 'debug']);
  await server.ready();
  client = new Anthropic({ baseURL: server.url, apiKey: 'x', maxRetries: 0 });
  openai = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'x', maxRetries: 0 });
});
after(async () => {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function post(path: string, body: unknown, url = server.url): Promise<{ status: number; json: any }> {
  const r = await fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.status, json: await r.json().catch(() => undefined) };
}

function textOf(m: Anthropic.Message): string {
  return m.content.flatMap((b) => (b.type === 'text' ? [b.text] : [])).join('');
}

/** The whole prompt, as Anthropic's usage splits it. */
function promptTokens(u: Anthropic.Usage): number {
  return u.input_tokens + (u.cache_read_input_tokens ?? 0) + (u.cache_creation_input_tokens ?? 0);
}

// These SDK types no longer list temperature; the API takes it, and the SDK sends it.
const GREEDY: object = { temperature: 0 };

const STOP_REASON: Record<string, string> = { stop: 'end_turn', length: 'max_tokens', tool_calls: 'tool_use' };

const tools: Anthropic.Tool[] = [
  {
    name: 'get_weather',
    description: 'Weather in a city',
    input_schema: { type: 'object', properties: { city: { type: 'string', maxLength: 12 }, unit: { type: 'string', enum: ['c', 'f'] } }, required: ['city', 'unit'] },
  },
  { name: 'get_time', input_schema: { type: 'object', properties: { zone: { type: 'string', maxLength: 8 } }, required: ['zone'] } },
];
const openaiTools: OpenAI.ChatCompletionTool[] = tools.map((t) => ({
  type: 'function',
  function: t.description === undefined ? { name: t.name, parameters: t.input_schema } : { name: t.name, description: t.description, parameters: t.input_schema },
}));

test('a message: the same answer, stop reason and token counts as the chat route gives the same conversation', async () => {
  const cases: { system?: string; messages: Anthropic.MessageParam[]; chat: OpenAI.ChatCompletionMessageParam[] }[] = [
    { messages: [{ role: 'user', content: 'Hello' }], chat: [{ role: 'user', content: 'Hello' }] },
    {
      system: 'You are terse.',
      messages: [
        { role: 'user', content: [{ type: 'text', text: 'Hi' }, { type: 'text', text: 'there', cache_control: { type: 'ephemeral' } }] },
        { role: 'assistant', content: [{ type: 'text', text: 'Hello!' }] },
        { role: 'user', content: 'And then?' },
      ],
      chat: [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: [{ type: 'text', text: 'Hi' }, { type: 'text', text: 'there' }] },
        { role: 'assistant', content: 'Hello!' },
        { role: 'user', content: 'And then?' },
      ],
    },
  ];
  for (const c of cases) {
    const m = await client.messages.create({ model: 'claude-x', max_tokens: 12, ...GREEDY, system: c.system, messages: c.messages });
    const chat = await openai.chat.completions.create({ model: 'tiny', max_tokens: 12, temperature: 0, messages: c.chat });
    assert.match(m.id, /^msg_[0-9a-f]{24}$/);
    assert.equal(m.type, 'message');
    assert.equal(m.role, 'assistant');
    assert.equal(m.model, 'claude-x', 'the model name comes back as sent');
    assert.equal(m.content.length, 1);
    assert.equal(textOf(m), chat.choices[0].message.content);
    assert.equal(m.stop_reason, STOP_REASON[chat.choices[0].finish_reason]);
    assert.equal(m.stop_sequence, null);
    assert.equal(promptTokens(m.usage), chat.usage!.prompt_tokens);
    assert.equal(m.usage.output_tokens, chat.usage!.completion_tokens);
    assert.equal(m.usage.cache_creation_input_tokens, 0);
  }
  // Asked again, the prompt comes from the prefix cache: cache reads, and input_tokens the rest.
  const again = await client.messages.create({ model: 'tiny', max_tokens: 1, messages: [{ role: 'user', content: 'Hello' }] });
  assert.ok(again.usage.cache_read_input_tokens! > 0, JSON.stringify(again.usage));
  const count = await client.messages.countTokens({ model: 'tiny', messages: [{ role: 'user', content: 'Hello' }] });
  assert.equal(again.usage.input_tokens + again.usage.cache_read_input_tokens!, count.input_tokens);
});

test('max_tokens ends the answer with stop_reason max_tokens', async () => {
  const m = await client.messages.create({ model: 'tiny', max_tokens: 3, ...GREEDY, messages: [{ role: 'user', content: 'Count' }] });
  const chat = await openai.chat.completions.create({ model: 'tiny', max_tokens: 3, temperature: 0, messages: [{ role: 'user', content: 'Count' }] });
  assert.equal(chat.choices[0].finish_reason, 'length', 'the model ran to the limit');
  assert.equal(m.stop_reason, 'max_tokens');
  assert.equal(m.usage.output_tokens, 3);
});

test('the system prompt is rendered into the prompt, as the chat route renders a system message; the billing header is left out', async () => {
  const messages: Anthropic.MessageParam[] = [{ role: 'user', content: 'Hello' }];
  const plain = await client.messages.countTokens({ model: 'tiny', messages });
  const withSystem = await client.messages.countTokens({ model: 'tiny', system: 'You are a helpful assistant who answers briefly.', messages });
  assert.ok(withSystem.input_tokens > plain.input_tokens, `${withSystem.input_tokens} > ${plain.input_tokens}`);
  const chat = await openai.chat.completions.create({
    model: 'tiny',
    max_tokens: 1,
    messages: [{ role: 'system', content: 'You are a helpful assistant who answers briefly.' }, { role: 'user', content: 'Hello' }],
  });
  assert.equal(withSystem.input_tokens, chat.usage!.prompt_tokens);
  const blocks = await client.messages.countTokens({ model: 'tiny', system: [{ type: 'text', text: 'You are a helpful assistant who answers briefly.' }], messages });
  assert.equal(blocks.input_tokens, withSystem.input_tokens);
  // Claude Code's first system block changes with every request; it is billing data, not prompt.
  const header = (cch: string) => [
    { type: 'text' as const, text: `x-anthropic-billing-header: cc_version=2.1.0.abc; cc_entrypoint=cli; cch=${cch};` },
    { type: 'text' as const, text: 'You are a helpful assistant who answers briefly.' },
  ];
  assert.equal((await client.messages.countTokens({ model: 'tiny', system: header('a5145'), messages })).input_tokens, withSystem.input_tokens);
  assert.equal((await client.messages.countTokens({ model: 'tiny', system: header('0ff3e'), messages })).input_tokens, withSystem.input_tokens);
});

test('streaming: the events Anthropic sends, text token by token, and the same message as unstreamed', async () => {
  const params = { model: 'tiny', max_tokens: 16, ...GREEDY, messages: [{ role: 'user' as const, content: 'Tell me a story' }] };
  const whole = await client.messages.create(params);
  const stream = client.messages.stream(params);
  const types: string[] = [];
  let deltas = 0;
  for await (const ev of stream) {
    types.push(ev.type);
    if (ev.type === 'content_block_delta' && ev.delta.type === 'text_delta') deltas++;
  }
  const final = await stream.finalMessage();
  assert.equal(textOf(final), textOf(whole));
  assert.equal(final.stop_reason, whole.stop_reason);
  assert.equal(final.usage.output_tokens, whole.usage.output_tokens);
  assert.equal(promptTokens(final.usage), promptTokens(whole.usage));
  assert.match(final.id, /^msg_/);
  assert.equal(final.model, 'tiny');
  assert.equal(types.filter((t) => t === 'content_block_start').length, 1);
  // On the wire: each event named as its data's type; message_start, ping, one text block,
  // message_delta, message_stop.
  const r = await fetch(`${server.url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...params, stream: true }) });
  assert.match(r.headers.get('content-type') ?? '', /^text\/event-stream/);
  const events = (await r.text())
    .trim()
    .split('\n\n')
    .map((e) => {
      const [name, data] = e.split('\n');
      return { name: name.replace(/^event: /, ''), data: JSON.parse(data.replace(/^data: /, '')) as { type: string } };
    });
  for (const e of events) assert.equal(e.name, e.data.type);
  assert.deepEqual(
    [...new Set(events.map((e) => e.name))],
    ['message_start', 'ping', 'content_block_start', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop'],
  );
  assert.ok(deltas > 5, `text came in ${deltas} deltas`);
});

test('stop_sequences: the answer ends before the sequence, and stop_sequence names which one matched', async () => {
  const params = { model: 'tiny', max_tokens: 24, ...GREEDY, messages: [{ role: 'user' as const, content: 'Say something' }] };
  const full = textOf(await client.messages.create(params));
  // A word from the middle of the answer: the answer must stop just before its first occurrence.
  const word = /[a-z]{2,}/.exec(full.slice(Math.floor(full.length / 2)))?.[0];
  assert.ok(word, `a word in ${JSON.stringify(full)}`);
  const expected = full.slice(0, full.indexOf(word));
  const stop_sequences = ['\u0001never\u0001', word];
  const m = await client.messages.create({ ...params, stop_sequences });
  assert.equal(m.stop_reason, 'stop_sequence');
  assert.equal(m.stop_sequence, word);
  assert.equal(textOf(m), expected);
  const streamed = await client.messages.stream({ ...params, stop_sequences }).finalMessage();
  assert.equal(streamed.stop_reason, 'stop_sequence');
  assert.equal(streamed.stop_sequence, word);
  assert.equal(textOf(streamed), expected);
});

test('a final assistant turn is the start of the answer (prefill): generation continues from its tokens', async () => {
  const messages: Anthropic.MessageParam[] = [{ role: 'user', content: 'Hello' }];
  const prefill = 'Once upon';
  const m = await client.messages.create({ model: 'tiny', max_tokens: 8, ...GREEDY, messages: [...messages, { role: 'assistant', content: prefill }] });
  // The same prompt built by hand: the rendered conversation with the prefill after it, tokenized together.
  const rendered = (await post('/tokenize', { content: 'user: Hello\nassistant:', add_special: true })).json.tokens as number[];
  const whole = (await post('/tokenize', { content: `user: Hello\nassistant:${prefill}`, add_special: true })).json.tokens as number[];
  const count = await client.messages.countTokens({ model: 'tiny', messages: [...messages, { role: 'assistant', content: prefill }] });
  assert.equal(count.input_tokens, whole.length);
  assert.equal((await client.messages.countTokens({ model: 'tiny', messages })).input_tokens, rendered.length);
  const raw = await openai.completions.create({ model: 'tiny', prompt: whole, max_tokens: 8, temperature: 0 });
  assert.equal(textOf(m), raw.choices[0].text, 'the answer holds only what follows the prefill');
});

describe('tools', () => {
  const question: Anthropic.MessageParam[] = [{ role: 'user', content: 'What is the weather in Paris?' }];

  test('tools are rendered into the prompt (count_tokens equals the chat prompt with the same tools)', async () => {
    const without = await client.messages.countTokens({ model: 'tiny', messages: question });
    const withTools = await client.messages.countTokens({ model: 'tiny', messages: question, tools });
    assert.ok(withTools.input_tokens > without.input_tokens);
    const chat = await openai.chat.completions.create({ model: 'tiny', max_tokens: 1, messages: [{ role: 'user', content: 'What is the weather in Paris?' }], tools: openaiTools });
    assert.equal(withTools.input_tokens, chat.usage!.prompt_tokens);
    // tool_choice none: the tools are not offered.
    const none = await client.messages.countTokens({ model: 'tiny', messages: question, tools, tool_choice: { type: 'none' } });
    assert.equal(none.input_tokens, without.input_tokens);
  });

  test('a forced tool_choice gives a tool_use block whose input matches the schema; its tool_result goes back as the chat route takes a tool message', async () => {
    const m = await client.messages.create({ model: 'tiny', max_tokens: 200, ...GREEDY, messages: question, tools, tool_choice: { type: 'tool', name: 'get_weather' } });
    assert.equal(m.stop_reason, 'tool_use');
    const use = m.content.find((b): b is Anthropic.ToolUseBlock => b.type === 'tool_use');
    assert.ok(use, JSON.stringify(m.content));
    assert.match(use.id, /^toolu_[0-9a-f]{24}$/);
    assert.equal(use.name, 'get_weather');
    const input = use.input as { city: unknown; unit: unknown };
    assert.equal(typeof input.city, 'string');
    assert.ok(['c', 'f'].includes(input.unit as string), JSON.stringify(input));
    assert.deepEqual(Object.keys(input).sort(), ['city', 'unit']);

    // The call and its result go back: the same prompt and answer as the chat route's tool messages.
    const followUp = await client.messages.create({
      model: 'tiny',
      max_tokens: 10,
      ...GREEDY,
      tools,
      messages: [...question, { role: 'assistant', content: m.content }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: '{"temp": 21}' }] }],
    });
    const chat = await openai.chat.completions.create({
      model: 'tiny',
      max_tokens: 10,
      temperature: 0,
      tools: openaiTools,
      messages: [
        { role: 'user', content: 'What is the weather in Paris?' },
        { role: 'assistant', content: null, tool_calls: [{ id: use.id, type: 'function', function: { name: use.name, arguments: JSON.stringify(use.input) } }] },
        { role: 'tool', tool_call_id: use.id, content: '{"temp": 21}' },
      ],
    });
    assert.equal(promptTokens(followUp.usage), chat.usage!.prompt_tokens);
    assert.equal(textOf(followUp), chat.choices[0].message.content ?? '');
    // The result's text is in the prompt: a longer one makes a longer prompt. Text blocks and
    // is_error are taken too.
    const count = (content: Anthropic.ToolResultBlockParam['content'], is_error?: boolean) =>
      client.messages.countTokens({
        model: 'tiny',
        tools,
        messages: [...question, { role: 'assistant', content: m.content }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content, is_error }] }],
      });
    const short = await count('{"temp": 21}');
    assert.equal(short.input_tokens, chat.usage!.prompt_tokens);
    assert.ok((await count([{ type: 'text', text: '{"temp": 21, "sky": "clear", "wind": "none"}' }], false)).input_tokens > short.input_tokens);
    assert.equal((await count([{ type: 'text', text: '{"temp": 21}' }], true)).input_tokens, short.input_tokens);
  });

  test('tool_choice any, streamed: the tool_use block arrives as input_json_delta and parses to an input that matches its schema', async () => {
    const stream = client.messages.stream({ model: 'tiny', max_tokens: 200, ...({ temperature: 0.7 } as object), messages: question, tools, tool_choice: { type: 'any' } });
    let jsonDeltas = 0;
    for await (const ev of stream) if (ev.type === 'content_block_delta' && ev.delta.type === 'input_json_delta') jsonDeltas++;
    const final = await stream.finalMessage();
    assert.equal(final.stop_reason, 'tool_use');
    assert.ok(jsonDeltas > 0);
    const use = final.content.find((b): b is Anthropic.ToolUseBlock => b.type === 'tool_use');
    assert.ok(use && ['get_weather', 'get_time'].includes(use.name), JSON.stringify(final.content));
    const input = use.input as Record<string, unknown>;
    if (use.name === 'get_weather') assert.ok(typeof input.city === 'string' && ['c', 'f'].includes(input.unit as string), JSON.stringify(input));
    else assert.equal(typeof input.zone, 'string');
  });

  test('with tools offered and none called, prose streams token by token and equals the unstreamed answer', async () => {
    const params = { model: 'tiny', max_tokens: 24, ...GREEDY, messages: [{ role: 'user' as const, content: 'Tell me a story' }], tools };
    const whole = await client.messages.create(params);
    assert.equal(whole.stop_reason === 'tool_use', false);
    let deltas = 0;
    const stream = client.messages.stream(params);
    for await (const ev of stream) if (ev.type === 'content_block_delta' && ev.delta.type === 'text_delta') deltas++;
    const final = await stream.finalMessage();
    assert.equal(textOf(final), textOf(whole));
    assert.ok(deltas > 5, `text came in ${deltas} deltas`);
  });
});

describe('errors in Anthropic’s shape', () => {
  const isShape = (e: unknown, type: string) => {
    const body = (e as { error?: { type?: string; error?: { type?: string; message?: string } } }).error;
    return body?.type === 'error' && body.error?.type === type && typeof body.error.message === 'string' && body.error.message.length > 0;
  };

  test('400 invalid_request_error: max_tokens missing, an image block, a bad role, an unknown forced tool, a server tool', async () => {
    const base = { model: 'tiny', max_tokens: 4, messages: [{ role: 'user' as const, content: 'x' }] };
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ model: 'tiny', messages: base.messages }, /max_tokens/],
      [{ ...base, messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'AAAA' } }] }] }, /image/],
      [{ ...base, messages: [{ role: 'user', content: [{ type: 'text', text: 'see' }, { type: 'document', source: { type: 'text', media_type: 'text/plain', data: 'x' } }] }] }, /document/],
      [{ ...base, messages: [{ role: 'wizard', content: 'x' }] }, /role/],
      [{ ...base, tools, tool_choice: { type: 'tool', name: 'nope' } }, /nope/],
      [{ ...base, tools: [{ type: 'web_search_20250305', name: 'web_search' }] }, /web_search_20250305/],
      [{ ...base, temperature: 1.5 }, /temperature/],
    ];
    for (const [body, message] of cases) {
      await assert.rejects(
        client.messages.create(body as never),
        (e: unknown) => e instanceof Anthropic.BadRequestError && isShape(e, 'invalid_request_error') && message.test((e as Error).message),
        JSON.stringify(body),
      );
    }
    const raw = await post('/v1/messages', { model: 'tiny', messages: base.messages });
    assert.equal(raw.status, 400);
    assert.deepEqual(Object.keys(raw.json).sort(), ['error', 'type']);
    assert.equal(raw.json.type, 'error');
    assert.equal(raw.json.error.type, 'invalid_request_error');
    // count_tokens too, and a path under /v1/messages that does not exist.
    await assert.rejects(client.messages.countTokens({ model: 'tiny', messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'url', url: 'http://x' } }] }] }), (e: unknown) => e instanceof Anthropic.BadRequestError && isShape(e, 'invalid_request_error'));
    const missing = await post('/v1/messages/nope', {});
    assert.equal(missing.status, 404);
    assert.equal(missing.json.error.type, 'not_found_error');
    // Other routes keep their own shape.
    const openaiShape = (await post('/v1/chat/completions', { model: 'tiny' })).json;
    assert.equal(openaiShape.type, undefined);
    assert.equal(openaiShape.error.type, 'invalid_request_error');
  });

  test('401 authentication_error for a wrong key; the right one in x-api-key is served', async () => {
    const s = await startServer(['-m', modelPath, '--ctx', '256', '--api-key', 'k-123']);
    try {
      await s.ready();
      const wrong = new Anthropic({ baseURL: s.url, apiKey: 'wrong', maxRetries: 0 });
      await assert.rejects(wrong.messages.create({ model: 'tiny', max_tokens: 2, messages: [{ role: 'user', content: 'x' }] }), (e: unknown) => e instanceof Anthropic.AuthenticationError && isShape(e, 'authentication_error'));
      const right = new Anthropic({ baseURL: s.url, apiKey: 'k-123', maxRetries: 0 });
      const m = await right.messages.create({ model: 'tiny', max_tokens: 2, messages: [{ role: 'user', content: 'x' }] });
      assert.equal(m.type, 'message');
    } finally {
      await s.stop();
    }
  });
});

test('unknown fields are ignored (the same answer) and told once each; metadata, thinking and cache_control are accepted', async () => {
  const plain = await client.messages.create({ model: 'tiny', max_tokens: 6, ...GREEDY, messages: [{ role: 'user', content: [{ type: 'text', text: 'Hi' }] }] });
  const body = {
    model: 'tiny',
    max_tokens: 6,
    temperature: 0,
    messages: [{ role: 'user', content: [{ type: 'text', text: 'Hi', cache_control: { type: 'ephemeral' }, my_block_knob: 1 }], my_message_knob: true }],
    metadata: { user_id: 'u-1' },
    thinking: { type: 'enabled', budget_tokens: 1024 },
    my_custom_knob: 3,
  };
  const extra = await client.messages.create(body as never);
  assert.equal(textOf(extra as Anthropic.Message), textOf(plain));
  await client.messages.create(body as never);
  const log = server.stderr();
  for (const field of ['my_custom_knob', 'messages[].my_message_knob', 'messages[].content[].my_block_knob', 'thinking']) {
    const told = log.split('\n').filter((l) => l.includes(`ignoring the request field "${field}"`));
    assert.equal(told.length, 1, `${field} told once:\n${log}`);
  }
  assert.doesNotMatch(log, /ignoring the request field "(metadata|messages\[\]\.content\[\]\.cache_control)"/);
});

describe('a client that goes away', () => {
  // A model slow enough that a long answer is still being generated when the client leaves.
  const slow = join(dir, 'slow.gguf');
  test('stops its generation: the slot is freed and few tokens were generated', async () => {
    writeSyntheticModel(slow, { arch: 'llama', nEmbd: 512, nLayer: 6, nHead: 8, nKvHead: 4, nFf: 1536, nVocab: 1000, ctx: 2048, quant: GgmlType.F32, seed: 5 }, () => {
      throw new Error('F32 needs no quantizer');
    });
    const s = await startServer(['-m', slow, '--ctx', '2048', '--parallel', '1']);
    try {
      await s.ready();
      const c = new Anthropic({ baseURL: s.url, apiKey: 'x', maxRetries: 0 });
      const stream = c.messages.stream({ model: 'slow', max_tokens: 2000, messages: [{ role: 'user', content: 'Go on' }] });
      let deltas = 0;
      try {
        for await (const ev of stream) if (ev.type === 'content_block_delta' && ++deltas === 3) stream.abort();
      } catch {
        // the client's own abort
      }
      const metric = async (name: string) => Number(new RegExp(`^cairn_${name} (\\S+)$`, 'm').exec(await (await fetch(`${s.url}/metrics`)).text())![1]);
      const t0 = Date.now();
      while ((await metric('slots_busy')) !== 0 && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 5));
      assert.equal(await metric('slots_busy'), 0);
      assert.ok((await metric('completion_tokens_total')) < 200, 'the abandoned generation stopped early');
    } finally {
      await s.stop();
    }
  });
});
