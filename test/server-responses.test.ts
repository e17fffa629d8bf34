/**
 * OpenAI's Responses API (POST /v1/responses) on a real `cairn serve`, driven by the official
 * `openai` client. What the model says is random (a tiny random-weight model), so every answer is
 * checked against the chat route's answer to the same conversation at temperature 0: the same
 * prompt (input tokens) and the same text. The model's template renders tools, tool calls and tool
 * results, so that a lost call or result shows in the prompt.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { zodTextFormat } from 'openai/helpers/zod';
import { z } from 'zod';
import { scratchDir } from './helpers/paths.js';
import { startServer, type ServerProcess } from './helpers/server.js';
import { writeTinyModel } from './helpers/tiny-model.js';

const TEMPLATE =
  '{%- if tools %}System: tools {{ tools | tojson }}. Call them inside <tool_call></tool_call> tags.\n{% endif %}' +
  '{%- for m in messages %}{{ m.role }}: {{ m.content }}' +
  '{%- if m.tool_calls %}{% for c in m.tool_calls %}<tool_call>{{ c.function.name }} {{ c.function.arguments }}</tool_call>{% endfor %}{% endif %}' +
  '{%- if m.tool_call_id %} [{{ m.tool_call_id }}]{% endif %}\n' +
  '{%- endfor %}{%- if add_generation_prompt %}assistant:{%- endif %}';

const dir = scratchDir('server-responses');
const modelPath = join(dir, 'tiny.gguf');
const model = 'tiny';
let server: ServerProcess;
let client: OpenAI;

before(async () => {
  mkdirSync(dir, { recursive: true });
  writeTinyModel(modelPath, TEMPLATE);
  server = await startServer(['-m', modelPath, '--ctx', '2048', '--log-level', 'debug']);
  await server.ready();
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
after(async () => {
  assert.equal(await server.stop(), 0, 'clean exit on SIGTERM');
  rmSync(dir, { recursive: true, force: true });
});

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function post(path: string, body: unknown): Promise<{ status: number; json: any }> {
  const r = await fetch(server.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.status, json: await r.json().catch(() => undefined) };
}

/** The chat route's answer to a conversation at temperature 0: text, prompt tokens, finish reason. */
async function viaChat(messages: OpenAI.ChatCompletionMessageParam[], max: number, tools?: OpenAI.ChatCompletionTool[]): Promise<{ text: string; promptTokens: number; completionTokens: number; finish: string }> {
  const r = await client.chat.completions.create({ model, messages, max_tokens: max, temperature: 0, ...(tools ? { tools } : {}) });
  return { text: r.choices[0].message.content ?? '', promptTokens: r.usage!.prompt_tokens, completionTokens: r.usage!.completion_tokens, finish: r.choices[0].finish_reason };
}

function messageOf(r: OpenAI.Responses.Response): OpenAI.Responses.ResponseOutputMessage {
  const m = r.output.find((o) => o.type === 'message');
  assert.ok(m, `a message item in ${JSON.stringify(r.output)}`);
  return m;
}

function callOf(r: OpenAI.Responses.Response): OpenAI.Responses.ResponseFunctionToolCall {
  const c = r.output.find((o) => o.type === 'function_call');
  assert.ok(c, `a function_call item in ${JSON.stringify(r.output)}`);
  return c;
}

test('string input: the response object, its text and usage are what the chat route gives the same user message', async () => {
  const r = await client.responses.create({ model, input: 'Tell me a story about a cat', max_output_tokens: 12, temperature: 0 });
  const chat = await viaChat([{ role: 'user', content: 'Tell me a story about a cat' }], 12);
  assert.match(r.id, /^resp_/);
  assert.equal(r.object, 'response');
  assert.equal(r.model, model);
  assert.ok(Math.abs(r.created_at - Date.now() / 1000) < 60);
  assert.equal(r.status, chat.finish === 'length' ? 'incomplete' : 'completed');
  const message = messageOf(r);
  assert.match(message.id, /^msg_/);
  assert.equal(message.role, 'assistant');
  assert.equal(message.content[0].type, 'output_text');
  assert.equal(r.output_text, chat.text);
  assert.ok(chat.completionTokens > 0);
  assert.equal(r.usage!.input_tokens, chat.promptTokens);
  assert.equal(r.usage!.output_tokens, chat.completionTokens);
  assert.equal(r.usage!.total_tokens, chat.promptTokens + chat.completionTokens);
  assert.equal(r.usage!.output_tokens_details.reasoning_tokens, 0);
  assert.equal(typeof r.usage!.input_tokens_details.cached_tokens, 'number');
});

test('items with instructions: the prompt is the chat conversation with instructions as its system message; settings are echoed', async () => {
  const input: OpenAI.Responses.ResponseInput = [
    { role: 'user', content: 'Hi there' },
    { type: 'message', role: 'assistant', status: 'completed', id: 'msg_1', content: [{ type: 'output_text', text: 'Hello, friend.', annotations: [] }] },
    { role: 'developer', content: 'Keep it short.' },
    { role: 'user', content: [{ type: 'input_text', text: 'Part one.' }, { type: 'input_text', text: 'Part two.' }] },
  ];
  const settings = { model, input, instructions: 'You are a storyteller.', max_output_tokens: 10, temperature: 0, metadata: { run: 'a1' } };
  const r = await client.responses.create(settings);
  const chat = await viaChat(
    [
      { role: 'system', content: 'You are a storyteller.' },
      { role: 'user', content: 'Hi there' },
      { role: 'assistant', content: 'Hello, friend.' },
      { role: 'system', content: 'Keep it short.' },
      { role: 'user', content: [{ type: 'text', text: 'Part one.' }, { type: 'text', text: 'Part two.' }] },
    ],
    10,
  );
  assert.equal(r.usage!.input_tokens, chat.promptTokens);
  assert.equal(r.output_text, chat.text);
  // The instructions are in the prompt: without them it is shorter.
  const plain = await client.responses.create({ ...settings, instructions: undefined });
  assert.ok(plain.usage!.input_tokens < r.usage!.input_tokens);
  assert.equal(r.instructions, 'You are a storyteller.');
  assert.deepEqual(r.metadata, { run: 'a1' });
  assert.equal(r.temperature, 0);
  assert.equal(r.max_output_tokens, 10);
  assert.deepEqual(r.text?.format, { type: 'text' });
  assert.equal(r.tool_choice, 'auto');
  assert.deepEqual(r.tools, []);
  assert.equal(r.previous_response_id, null);
});

test('streaming: the events come in order with consecutive sequence numbers, token by token, and give the non-streamed text; finalResponse() works', async () => {
  const request = { model, input: 'Once upon a time', max_output_tokens: 16, temperature: 0 };
  const whole = await client.responses.create(request);
  const stream = client.responses.stream(request);
  const events: OpenAI.Responses.ResponseStreamEvent[] = [];
  for await (const ev of stream) events.push(ev);
  const final = await stream.finalResponse();
  assert.deepEqual(
    events.map((e) => e.sequence_number),
    events.map((_, i) => i),
  );
  const types = events.map((e) => e.type);
  const finalType = whole.status === 'incomplete' ? 'response.incomplete' : 'response.completed';
  const deltas = events.filter((e) => e.type === 'response.output_text.delta');
  assert.deepEqual(types, [
    'response.created',
    'response.in_progress',
    'response.output_item.added',
    'response.content_part.added',
    ...deltas.map(() => 'response.output_text.delta'),
    'response.output_text.done',
    'response.content_part.done',
    'response.output_item.done',
    finalType,
  ]);
  assert.ok(deltas.length > 3, `text came in ${deltas.length} deltas`);
  assert.equal(deltas.map((d) => d.delta).join(''), whole.output_text);
  const done = events.find((e) => e.type === 'response.output_text.done')!;
  assert.equal(done.text, whole.output_text);
  assert.equal(final.output_text, whole.output_text);
  assert.equal(final.status, whole.status);
  assert.equal(final.usage!.output_tokens, whole.usage!.output_tokens);
  const last = events.at(-1) as OpenAI.Responses.ResponseCompletedEvent;
  assert.equal(final.id, last.response.id);
  assert.equal((events[0] as OpenAI.Responses.ResponseCreatedEvent).response.status, 'in_progress');
  // stream: true on create gives the same events.
  let text = '';
  for await (const ev of await client.responses.create({ ...request, stream: true })) if (ev.type === 'response.output_text.delta') text += ev.delta;
  assert.equal(text, whole.output_text);
});

test('previous_response_id continues the conversation (without the earlier instructions); unknown ids and store: false are 404', async () => {
  const first = await client.responses.create({ model, input: 'Tell me about a dog', instructions: 'Talk like a pirate.', max_output_tokens: 8, temperature: 0 });
  const second = await client.responses.create({ model, previous_response_id: first.id, input: 'And then what happened?', max_output_tokens: 8, temperature: 0 });
  const chat = await viaChat(
    [
      { role: 'user', content: 'Tell me about a dog' },
      { role: 'assistant', content: first.output_text },
      { role: 'user', content: 'And then what happened?' },
    ],
    8,
  );
  assert.equal(second.usage!.input_tokens, chat.promptTokens);
  assert.equal(second.output_text, chat.text);
  assert.equal(second.previous_response_id, first.id);
  // A third turn carries both earlier ones.
  const third = await client.responses.create({ model, previous_response_id: second.id, input: 'The end.', max_output_tokens: 4, temperature: 0 });
  const chat3 = await viaChat(
    [
      { role: 'user', content: 'Tell me about a dog' },
      { role: 'assistant', content: first.output_text },
      { role: 'user', content: 'And then what happened?' },
      { role: 'assistant', content: second.output_text },
      { role: 'user', content: 'The end.' },
    ],
    4,
  );
  assert.equal(third.usage!.input_tokens, chat3.promptTokens);
  assert.equal(third.output_text, chat3.text);
  // Kept responses can be read back and deleted.
  const kept = await client.responses.retrieve(first.id);
  assert.equal(kept.id, first.id);
  assert.deepEqual(kept.output, first.output);
  await assert.rejects(
    client.responses.create({ model, previous_response_id: 'resp_nope', input: 'x' }),
    (e: unknown) => e instanceof OpenAI.NotFoundError && (e.error as { param?: string }).param === 'previous_response_id',
  );
  const unkept = await client.responses.create({ model, input: 'Say hi', store: false, max_output_tokens: 2 });
  await assert.rejects(client.responses.create({ model, previous_response_id: unkept.id, input: 'x' }), OpenAI.NotFoundError);
  await assert.rejects(client.responses.retrieve(unkept.id), OpenAI.NotFoundError);
  await client.responses.delete(first.id);
  await assert.rejects(client.responses.retrieve(first.id), OpenAI.NotFoundError);
  await assert.rejects(client.responses.create({ model, previous_response_id: first.id, input: 'x' }), OpenAI.NotFoundError);
  // The later response keeps its own copy of the conversation.
  assert.equal((await client.responses.create({ model, previous_response_id: second.id, input: 'The end.', max_output_tokens: 4, temperature: 0 })).output_text, third.output_text);
});

const weatherTool: OpenAI.Responses.FunctionTool = {
  type: 'function',
  name: 'get_weather',
  description: 'Weather in a city',
  parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 12 }, unit: { type: 'string', enum: ['c', 'f'] } }, required: ['city', 'unit'], additionalProperties: false },
  strict: true,
};
const chatWeatherTool: OpenAI.ChatCompletionTool = { type: 'function', function: { name: 'get_weather', description: 'Weather in a city', parameters: weatherTool.parameters! } };

test('function tools: a forced call is a function_call item; its output goes back as a function_call_output item, after the call, as in the chat route', async () => {
  const question = 'What is the weather in Paris?';
  const r = await client.responses.create({ model, input: question, tools: [weatherTool], tool_choice: { type: 'function', name: 'get_weather' }, max_output_tokens: 120, temperature: 0 });
  assert.equal(r.status, 'completed');
  const call = callOf(r);
  assert.equal(r.output.filter((o) => o.type === 'message').length, 0, 'a forced reply is the call alone');
  assert.equal(call.name, 'get_weather');
  assert.match(call.call_id, /^call_/);
  assert.match(call.id!, /^fc_/);
  assert.equal(call.status, 'completed');
  const args = JSON.parse(call.arguments);
  assert.equal(typeof args.city, 'string');
  assert.ok(['c', 'f'].includes(args.unit));
  assert.deepEqual(r.tool_choice, { type: 'function', name: 'get_weather' });
  assert.equal((r.tools[0] as OpenAI.Responses.FunctionTool).name, 'get_weather');

  const result = { type: 'function_call_output' as const, call_id: call.call_id, output: '{"temp": 21}' };
  const followUp = await client.responses.create({ model, previous_response_id: r.id, input: [result], tools: [weatherTool], max_output_tokens: 6, temperature: 0 });
  const chat = await viaChat(
    [
      { role: 'user', content: question },
      { role: 'assistant', content: null, tool_calls: [{ id: call.call_id, type: 'function', function: { name: call.name, arguments: call.arguments } }] },
      { role: 'tool', tool_call_id: call.call_id, content: '{"temp": 21}' },
    ],
    6,
    [chatWeatherTool],
  );
  assert.equal(followUp.usage!.input_tokens, chat.promptTokens);
  assert.equal(followUp.output_text, chat.text);
  // The same conversation sent whole, the call item as the API returned it.
  const explicit = await client.responses.create({ model, input: [{ role: 'user', content: question }, call, result], tools: [weatherTool], max_output_tokens: 6, temperature: 0 });
  assert.equal(explicit.usage!.input_tokens, chat.promptTokens);
  assert.equal(explicit.output_text, chat.text);

  const bad = await post('/v1/responses', { model, input: question, tools: [weatherTool], tool_choice: { type: 'function', name: 'nope' } });
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.param, 'tool_choice');
});

test('function tools streamed: tool_choice required gives the call events, and finalResponse() holds the call', async () => {
  const stream = client.responses.stream({ model, input: 'Weather in Rome?', tools: [weatherTool], tool_choice: 'required', max_output_tokens: 120, temperature: 0 });
  const events: OpenAI.Responses.ResponseStreamEvent[] = [];
  for await (const ev of stream) events.push(ev);
  const final = await stream.finalResponse();
  const types = events.map((e) => e.type);
  assert.deepEqual(types, [
    'response.created',
    'response.in_progress',
    'response.output_item.added',
    'response.function_call_arguments.delta',
    'response.function_call_arguments.done',
    'response.output_item.done',
    'response.completed',
  ]);
  const done = events.find((e) => e.type === 'response.function_call_arguments.done')!;
  assert.equal(done.name, 'get_weather');
  const call = callOf(final);
  assert.equal(call.arguments, done.arguments);
  assert.ok(['c', 'f'].includes(JSON.parse(call.arguments).unit));
  // The same as not streamed (the call ids are fresh each time).
  const whole = await client.responses.create({ model, input: 'Weather in Rome?', tools: [weatherTool], tool_choice: 'required', max_output_tokens: 120, temperature: 0 });
  assert.equal(callOf(whole).arguments, call.arguments);
});

test('function tools, auto: prose is streamed as it comes (no call in it) and equals the chat route answer with the same tools', async () => {
  const request = { model, input: 'Tell me a story', tools: [weatherTool], max_output_tokens: 24, temperature: 0 };
  const whole = await client.responses.create(request);
  const chat = await viaChat([{ role: 'user', content: 'Tell me a story' }], 24, [chatWeatherTool]);
  assert.equal(whole.usage!.input_tokens, chat.promptTokens);
  assert.equal(whole.output_text, chat.text);
  assert.equal(whole.output.filter((o) => o.type === 'function_call').length, 0);
  // The tools are in the prompt.
  const without = await client.responses.create({ ...request, tools: undefined });
  assert.ok(without.usage!.input_tokens < whole.usage!.input_tokens);
  const deltas: string[] = [];
  for await (const ev of client.responses.stream(request)) if (ev.type === 'response.output_text.delta') deltas.push(ev.delta);
  assert.ok(deltas.length > 3, `text came in ${deltas.length} deltas`);
  assert.equal(deltas.join(''), whole.output_text);
});

test('text.format json_schema: the text parses and matches the schema; json_object gives an object', async () => {
  const schema = {
    type: 'object',
    properties: { name: { type: 'string', maxLength: 10 }, age: { type: 'integer', minimum: 0, maximum: 120 }, pet: { type: 'string', enum: ['cat', 'dog'] } },
    required: ['name', 'age', 'pet'],
    additionalProperties: false,
  };
  const r = await client.responses.create({ model, input: 'Describe a person', text: { format: { type: 'json_schema', name: 'person', schema, strict: true } }, max_output_tokens: 200, temperature: 0 });
  assert.equal(r.status, 'completed');
  const v = JSON.parse(r.output_text);
  assert.deepEqual(Object.keys(v).sort(), ['age', 'name', 'pet']);
  assert.equal(typeof v.name, 'string');
  assert.ok(v.name.length <= 10);
  assert.ok(Number.isInteger(v.age) && v.age >= 0 && v.age <= 120);
  assert.ok(['cat', 'dog'].includes(v.pet));
  assert.equal((r.text?.format as { name: string }).name, 'person');
  // The client's own structured-output helper: a zod schema in, the parsed object out.
  const Pet = z.object({ kind: z.enum(['cat', 'dog', 'bird']), legs: z.number().int().min(0).max(8) });
  const parsed = await client.responses.parse({ model, input: 'A pet', text: { format: zodTextFormat(Pet, 'pet') }, max_output_tokens: 200, temperature: 0 });
  assert.deepEqual(parsed.output_parsed, Pet.parse(JSON.parse(parsed.output_text)));
  const obj = await client.responses.create({ model, input: 'Any JSON', text: { format: { type: 'json_object' } }, max_output_tokens: 200, temperature: 0 });
  const o = JSON.parse(obj.output_text);
  assert.ok(typeof o === 'object' && o !== null && !Array.isArray(o));
  const badSchema = await post('/v1/responses', { model, input: 'x', text: { format: { type: 'json_schema', name: 'x', schema: { type: 'string', pattern: '(?<=a)b' } } } });
  assert.equal(badSchema.status, 400);
  assert.equal(badSchema.json.error.param, 'text.format.schema');
});

test('max_output_tokens: a reply cut short is incomplete, with the reason', async () => {
  const r = await client.responses.create({ model, input: 'Tell me a long story', max_output_tokens: 3, temperature: 0 });
  assert.equal(r.status, 'incomplete');
  assert.deepEqual(r.incomplete_details, { reason: 'max_output_tokens' });
  assert.equal(r.usage!.output_tokens, 3);
  assert.equal(messageOf(r).status, 'incomplete');
  const stream = client.responses.stream({ model, input: 'Tell me a long story', max_output_tokens: 3, temperature: 0 });
  const types: string[] = [];
  for await (const ev of stream) types.push(ev.type);
  assert.equal(types.at(-1), 'response.incomplete');
  assert.equal((await stream.finalResponse()).output_text, r.output_text);
});

test('truncation: a conversation over the context is a 400, or with auto loses its oldest turns (the instructions stay)', async () => {
  const turn = (i: number) => `Turn ${i}: the little cat sat on the warm mat and looked at the birds in the tall green tree. `.repeat(6);
  const input = Array.from({ length: 11 }, (_, i) => ({ role: i % 2 === 0 ? ('user' as const) : ('assistant' as const), content: turn(i) }));
  const request = { model, input, instructions: 'Be kind.', max_output_tokens: 4, temperature: 0 };
  const refused = await post('/v1/responses', request);
  assert.equal(refused.status, 400);
  assert.equal(refused.json.error.code, 'context_length_exceeded');
  assert.equal(refused.json.error.param, 'input');
  assert.match(refused.json.error.message, /truncation/);
  const r = await client.responses.create({ ...request, truncation: 'auto' });
  assert.equal(r.truncation, 'auto');
  assert.ok(r.usage!.input_tokens < 2048);
  // The prompt is the chat conversation of the instructions and the last turns.
  let match: number | undefined;
  for (let k = 1; k < input.length && match === undefined; k++) {
    const chat = await viaChat([{ role: 'system', content: 'Be kind.' }, ...input.slice(input.length - k)], 4);
    if (chat.promptTokens === r.usage!.input_tokens && chat.text === r.output_text) match = k;
  }
  assert.ok(match !== undefined && match > 1, `kept ${match} turns`);
});

test('what cannot be honoured is refused by name: images, files, built-in tools, other item types, background runs', async () => {
  const base = { model, input: 'x' };
  const cases: [Record<string, unknown>, string, RegExp][] = [
    [{ ...base, input: [{ role: 'user', content: [{ type: 'input_text', text: 'see' }, { type: 'input_image', image_url: 'data:,' }] }] }, 'input.0.content.1', /input_image/],
    [{ ...base, input: [{ role: 'user', content: [{ type: 'input_file', file_id: 'file_1' }] }] }, 'input.0.content.0', /input_file/],
    [{ ...base, tools: [weatherTool, { type: 'web_search' }] }, 'tools.1.type', /web_search/],
    [{ ...base, input: [{ role: 'user', content: 'x' }, { type: 'computer_call_output', call_id: 'c', output: {} }] }, 'input.1', /computer_call_output/],
    [{ ...base, input: [{ type: 'function_call_output', call_id: 'c', output: [{ type: 'input_image', image_url: 'data:,' }] }] }, 'input.0.output.0', /input_image/],
    [{ ...base, tool_choice: { type: 'web_search_preview' } }, 'tool_choice', /web_search_preview/],
    [{ ...base, background: true }, 'background', /[Bb]ackground/],
    [{ ...base, temperature: 7 }, 'temperature', /temperature/],
    [{ ...base, input: [{ role: 'robot', content: 'x' }] }, 'input.0.role', /role/],
  ];
  for (const [body, param, message] of cases) {
    const r = await post('/v1/responses', body);
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.equal(r.json.error.param, param, JSON.stringify(r.json));
    assert.match(r.json.error.message, message);
    assert.equal(r.json.error.type, 'invalid_request_error');
  }
  await assert.rejects(client.responses.create({ model, input: 'x', tools: [{ type: 'web_search' }] }), (e: unknown) => e instanceof OpenAI.BadRequestError && /web_search/.test(e.message));
});

test('unknown fields are ignored (and told once each); the answer is the same as without them', async () => {
  const plain = { model, input: [{ role: 'user' as const, content: 'Hello' }], max_output_tokens: 6, temperature: 0 };
  const extra = {
    ...plain,
    input: [{ role: 'user', content: 'Hello', phase: 'final_answer' }],
    include: ['message.output_text.logprobs'],
    my_custom_knob: 3,
    reasoning: { effort: 'low' },
    text: { format: { type: 'text' }, verbosity: 'low' },
  };
  const r = await post('/v1/responses', extra);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  const base = await client.responses.create(plain);
  assert.equal(r.json.output[0].content[0].text, base.output_text);
  assert.equal(r.json.usage.input_tokens, base.usage!.input_tokens);
  await post('/v1/responses', extra);
  const log = server.stderr();
  for (const field of ['include', 'my_custom_knob', 'reasoning', 'text.verbosity', 'input[].phase']) {
    const told = log.split('\n').filter((l) => l.includes(`ignoring the request field "${field}"`));
    assert.equal(told.length, 1, `${field} told once:\n${log}`);
  }
});

test('a client that goes away mid-stream stops its generation', async () => {
  const metric = async (name: string) => Number(new RegExp(`^cairn_${name} (\\S+)$`, 'm').exec(await (await fetch(`${server.url}/metrics`)).text())![1]);
  const request = { model, input: 'Go on and on', max_output_tokens: 1900, temperature: 0 };
  // Uninterrupted, the reply runs to the limit.
  const whole = await client.responses.create(request);
  assert.equal(whole.usage!.output_tokens, 1900);
  const before = await metric('completion_tokens_total');
  const controller = new AbortController();
  const live = client.responses.stream(request, { signal: controller.signal });
  let deltas = 0;
  await assert.rejects(
    (async () => {
      for await (const ev of live) if (ev.type === 'response.output_text.delta' && ++deltas === 2) controller.abort();
    })(),
  );
  const end = Date.now() + 10_000;
  while ((await metric('requests_in_flight')) > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  assert.equal(await metric('requests_in_flight'), 0);
  const generated = (await metric('completion_tokens_total')) - before;
  assert.ok(generated < 1900, `the generation stopped (${generated} tokens)`);
});
