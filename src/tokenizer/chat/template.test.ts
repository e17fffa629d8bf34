import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isCairnError } from '../../util/errors.js';
import { ChatTemplate, renderChat } from './template.js';
import { detectToolCallFormat, parseToolCalls } from './tool-calls.js';
import type { ChatMessage, ToolDefinition } from './types.js';

/** The project root: the nearest folder above this file holding package.json. */
function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('package.json not found above ' + import.meta.url);
    dir = up;
  }
  return dir;
}

const TESTDATA = join(projectRoot(), 'src', 'tokenizer', 'chat', 'testdata');
const load = (file: string): ChatTemplate => ChatTemplate.compile(readFileSync(join(TESTDATA, file), 'utf8'), file);

const SYSTEM = 'You are a helpful assistant.';
const U1 = 'Hello, how are you?';
const A1 = "I'm doing great. How can I help you today?";
const U2 = "I'd like to show off how chat templating works!";

const chat: ChatMessage[] = [
  { role: 'system', content: SYSTEM },
  { role: 'user', content: U1 },
  { role: 'assistant', content: A1 },
  { role: 'user', content: U2 },
];

const weatherTool: ToolDefinition = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Get the weather',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};

const toolChat: ChatMessage[] = [
  { role: 'system', content: SYSTEM },
  { role: 'user', content: 'What is the weather in Paris?' },
  {
    role: 'assistant',
    content: null,
    tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city": "Paris"}' } }],
  },
  { role: 'tool', tool_call_id: 'call_1', content: '{"temperature": 22}' },
];

/** The weather tool as Python's json.dumps(indent=4) prints it. */
const WEATHER_TOOL_INDENT4 = [
  '{',
  '    "type": "function",',
  '    "function": {',
  '        "name": "get_weather",',
  '        "description": "Get the weather",',
  '        "parameters": {',
  '            "type": "object",',
  '            "properties": {',
  '                "city": {',
  '                    "type": "string"',
  '                }',
  '            },',
  '            "required": [',
  '                "city"',
  '            ]',
  '        }',
  '    }',
  '}',
].join('\n');

/** The weather tool as Python's json.dumps() prints it (", " and ": " separators). */
const WEATHER_TOOL_COMPACT =
  '{"type": "function", "function": {"name": "get_weather", "description": "Get the weather", ' +
  '"parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}';

const LLAMA3_HEADER = (role: string): string => `<|start_header_id|>${role}<|end_header_id|>\n\n`;

test('ChatML renders each turn between im_start and im_end', () => {
  const expected =
    `<|im_start|>system\n${SYSTEM}<|im_end|>\n` +
    `<|im_start|>user\n${U1}<|im_end|>\n` +
    `<|im_start|>assistant\n${A1}<|im_end|>\n` +
    `<|im_start|>user\n${U2}<|im_end|>\n` +
    `<|im_start|>assistant\n`;
  assert.equal(load('chatml.jinja').render(chat), expected);
});

test('Llama 3 (original) puts BOS first and uses header/eot markers', () => {
  const expected =
    '<|begin_of_text|>' +
    LLAMA3_HEADER('system') + SYSTEM + '<|eot_id|>' +
    LLAMA3_HEADER('user') + U1 + '<|eot_id|>' +
    LLAMA3_HEADER('assistant') + A1 + '<|eot_id|>' +
    LLAMA3_HEADER('user') + U2 + '<|eot_id|>' +
    LLAMA3_HEADER('assistant');
  assert.equal(load('llama-3-instruct.jinja').render(chat, { bosToken: '<|begin_of_text|>' }), expected);
});

test('Llama 3.1 adds the knowledge-date system header', () => {
  const expected =
    '<|begin_of_text|>' +
    LLAMA3_HEADER('system') +
    'Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n' + SYSTEM + '<|eot_id|>' +
    LLAMA3_HEADER('user') + U1 + '<|eot_id|>' +
    LLAMA3_HEADER('assistant') + A1 + '<|eot_id|>' +
    LLAMA3_HEADER('user') + U2 + '<|eot_id|>' +
    LLAMA3_HEADER('assistant');
  assert.equal(load('llama-3.1-instruct.jinja').render(chat, { bosToken: '<|begin_of_text|>' }), expected);
});

test('Llama 3.1 with tools: definitions in the first user turn, JSON call, ipython result', () => {
  const expected =
    '<|begin_of_text|>' +
    LLAMA3_HEADER('system') +
    'Environment: ipython\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n' +
    SYSTEM + '<|eot_id|>' +
    LLAMA3_HEADER('user') +
    'Given the following functions, please respond with a JSON for a function call with its proper ' +
    'arguments that best answers the given prompt.\n\n' +
    'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' +
    'Do not use variables.\n\n' +
    WEATHER_TOOL_INDENT4 + '\n\n' +
    'What is the weather in Paris?<|eot_id|>' +
    LLAMA3_HEADER('assistant') + '{"name": "get_weather", "parameters": {"city": "Paris"}}<|eot_id|>' +
    // A string result is iterable to Jinja, so this template prints it through tojson.
    LLAMA3_HEADER('ipython') + '"{\\"temperature\\": 22}"<|eot_id|>' +
    LLAMA3_HEADER('assistant');
  const got = load('llama-3.1-instruct.jinja').render(toolChat, { bosToken: '<|begin_of_text|>', tools: [weatherTool] });
  assert.equal(got, expected);
});

test('Llama 3.1 tools in the system turn when tools_in_user_message is false', () => {
  const got = load('llama-3.1-instruct.jinja').render(toolChat.slice(0, 2), {
    bosToken: '<|begin_of_text|>',
    tools: [weatherTool],
    variables: { tools_in_user_message: false },
  });
  assert.ok(got.includes('You have access to the following functions.'));
  assert.ok(got.includes(WEATHER_TOOL_INDENT4 + '\n\n' + SYSTEM + '<|eot_id|>'));
  assert.ok(got.endsWith(LLAMA3_HEADER('user') + 'What is the weather in Paris?<|eot_id|>' + LLAMA3_HEADER('assistant')));
});

test('Llama 3.2 dates the prompt with strftime_now', () => {
  const got = load('llama-3.2-instruct.jinja').render(chat, { bosToken: '<|begin_of_text|>', now: new Date(2024, 8, 5, 12) });
  assert.ok(got.startsWith('<|begin_of_text|>' + LLAMA3_HEADER('system') + 'Cutting Knowledge Date: December 2023\nToday Date: 05 Sep 2024\n\n'));
  assert.ok(got.endsWith(LLAMA3_HEADER('user') + U2 + '<|eot_id|>' + LLAMA3_HEADER('assistant')));
});

test('Qwen2.5 without a system message uses its default one', () => {
  const expected =
    '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' +
    `<|im_start|>user\n${U1}<|im_end|>\n` +
    `<|im_start|>assistant\n${A1}<|im_end|>\n` +
    `<|im_start|>user\n${U2}<|im_end|>\n`;
  assert.equal(load('qwen2.5-instruct.jinja').render(chat.slice(1), { addGenerationPrompt: false }), expected);
});

test('Qwen2.5 with tools: <tools> block, <tool_call> and <tool_response>', () => {
  const expected =
    `<|im_start|>system\n${SYSTEM}\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n` +
    'You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n' +
    WEATHER_TOOL_COMPACT +
    '\n</tools>\n\nFor each function call, return a json object with function name and arguments within ' +
    '<tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n' +
    '</tool_call><|im_end|>\n' +
    '<|im_start|>user\nWhat is the weather in Paris?<|im_end|>\n' +
    '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>\n' +
    '<|im_start|>user\n<tool_response>\n{"temperature": 22}\n</tool_response><|im_end|>\n' +
    '<|im_start|>assistant\n';
  assert.equal(load('qwen2.5-instruct.jinja').render(toolChat, { tools: [weatherTool] }), expected);
});

test('Qwen3 drops past reasoning and honours enable_thinking', () => {
  const messages: ChatMessage[] = [
    { role: 'user', content: 'Q1' },
    { role: 'assistant', content: '<think>\nplan\n</think>\n\nA1' },
    { role: 'user', content: 'Q2' },
  ];
  const base = '<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n<|im_start|>user\nQ2<|im_end|>\n';
  const qwen3 = load('qwen3.jinja');
  assert.equal(qwen3.render(messages), base + '<|im_start|>assistant\n');
  assert.equal(
    qwen3.render(messages, { variables: { enable_thinking: false } }),
    base + '<|im_start|>assistant\n<think>\n\n</think>\n\n',
  );
  // The reply after the last user turn keeps its reasoning.
  const answered = qwen3.render([...messages, { role: 'assistant', content: 'A2', reasoning_content: 'why' }], {
    addGenerationPrompt: false,
  });
  assert.ok(answered.endsWith('<|im_start|>assistant\n<think>\nwhy\n</think>\n\nA2<|im_end|>\n'));
});

test('Qwen3 with tools matches the Qwen2.5 tool layout', () => {
  const got = load('qwen3.jinja').render(toolChat, { tools: [weatherTool] });
  assert.ok(got.includes('<tools>\n' + WEATHER_TOOL_COMPACT + '\n</tools>'));
  assert.ok(got.includes('<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>\n'));
});

test('Mistral v0.3 puts the system prompt in the last user turn and closes replies with EOS', () => {
  const expected =
    `<s>[INST] ${U1}[/INST] ${A1}</s>` + `[INST] ${SYSTEM}\n\n${U2}[/INST]`;
  assert.equal(load('mistral-7b-instruct-v0.3.jinja').render(chat, { bosToken: '<s>', eosToken: '</s>' }), expected);
});

test('Mistral v0.3 with tools: [AVAILABLE_TOOLS] before the last user turn, [TOOL_CALLS] and [TOOL_RESULTS]', () => {
  const messages: ChatMessage[] = [
    { role: 'user', content: 'Weather in Paris?' },
    {
      role: 'assistant',
      tool_calls: [{ id: 'abcDEF123', type: 'function', function: { name: 'get_weather', arguments: { city: 'Paris' } } }],
    },
    { role: 'tool', tool_call_id: 'abcDEF123', content: '22' },
  ];
  const expected =
    '<s>[AVAILABLE_TOOLS] [{"type": "function", "function": {"name": "get_weather", "description": "Get the weather", ' +
    '"parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}][/AVAILABLE_TOOLS]' +
    '[INST] Weather in Paris?[/INST]' +
    '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "abcDEF123"}]</s>' +
    '[TOOL_RESULTS] {"content": 22, "call_id": "abcDEF123"}[/TOOL_RESULTS]';
  const got = load('mistral-7b-instruct-v0.3.jinja').render(messages, { bosToken: '<s>', eosToken: '</s>', tools: [weatherTool] });
  assert.equal(got, expected);
});

test('Phi-3.5 renders role tags, and EOS when no generation prompt is asked', () => {
  const body =
    `<|system|>\n${SYSTEM}<|end|>\n<|user|>\n${U1}<|end|>\n<|assistant|>\n${A1}<|end|>\n<|user|>\n${U2}<|end|>\n`;
  const phi = load('phi-3.5-mini-instruct.jinja');
  assert.equal(phi.render(chat, { eosToken: '<|endoftext|>' }), body + '<|assistant|>\n');
  assert.equal(phi.render(chat, { eosToken: '<|endoftext|>', addGenerationPrompt: false }), body + '<|endoftext|>');
});

test('text parts are joined with newlines; other parts are refused', () => {
  const parts: ChatMessage[] = [{ role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }] }];
  assert.equal(load('chatml.jinja').render(parts), '<|im_start|>user\na\nb<|im_end|>\n<|im_start|>assistant\n');
  const image = [{ role: 'user', content: [{ type: 'image_url', image_url: 'x' }] }] as unknown as ChatMessage[];
  assert.throws(() => load('chatml.jinja').render(image), (e) => isCairnError(e, 'BAD_ARGUMENT') && /image_url/.test(e.message));
});

test('tokenizerAddsBos removes the template BOS so the prompt gets exactly one', () => {
  const t = load('llama-3.1-instruct.jinja');
  const withBos = t.render(chat, { bosToken: '<|begin_of_text|>' });
  const without = t.render(chat, { bosToken: '<|begin_of_text|>', tokenizerAddsBos: true });
  assert.equal(without, withBos.slice('<|begin_of_text|>'.length));
  // ChatML never prints BOS, so there is nothing to remove.
  assert.equal(load('chatml.jinja').render(chat, { bosToken: '<s>', tokenizerAddsBos: true }), load('chatml.jinja').render(chat));
});

test('template errors are CairnErrors with code TEMPLATE_ERROR naming the problem', () => {
  const templateError = (pattern: RegExp) => (e: unknown): boolean =>
    isCairnError(e, 'TEMPLATE_ERROR') && pattern.test((e as Error).message);
  assert.throws(() => ChatTemplate.compile('{% for m in messages %}{{ m.content }}'), templateError(/does not parse/));
  assert.throws(() => ChatTemplate.compile(''), templateError(/empty/));
  // The template's own raise_exception: Mistral refuses two user turns in a row.
  const twoUsers: ChatMessage[] = [{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }];
  assert.throws(
    () => load('mistral-7b-instruct-v0.3.jinja').render(twoUsers),
    templateError(/raised an error: After the optional system message, conversation roles must alternate/),
  );
  // A failure inside the engine (unknown filter) is reported too.
  assert.throws(() => ChatTemplate.compile('{{ messages | nosuchfilter }}').render(chat), templateError(/failed/));
});

test('extra variables reach the template; reserved names are refused', () => {
  const t = ChatTemplate.compile('{{ greeting }}, {{ messages[0].content }}');
  assert.equal(renderChat(t, chat, { variables: { greeting: 'hi' } }), `hi, ${SYSTEM}`);
  assert.throws(() => t.render(chat, { variables: { messages: [] } }), (e) => isCairnError(e, 'BAD_ARGUMENT'));
});

test('tools are absent from the template when none are given', () => {
  const t = ChatTemplate.compile('{% if tools is defined %}T{% else %}none{% endif %}');
  assert.equal(t.render(chat), 'none');
  assert.equal(t.render(chat, { tools: [] }), 'none');
  assert.equal(t.render(chat, { tools: [weatherTool] }), 'T');
});

test('each real template teaches a tool-call format the parser reads back', () => {
  const cases: Array<[string, string | undefined]> = [
    ['qwen2.5-instruct.jinja', 'hermes'],
    ['qwen3.jinja', 'hermes'],
    ['llama-3.1-instruct.jinja', 'llama3'],
    ['llama-3.2-instruct.jinja', 'llama3'],
    ['mistral-7b-instruct-v0.3.jinja', 'mistral'],
    ['chatml.jinja', undefined],
    ['phi-3.5-mini-instruct.jinja', undefined],
  ];
  for (const [file, format] of cases) assert.equal(detectToolCallFormat(load(file).source), format, file);
  // The assistant turn a template renders for a call parses back to that call.
  const rendered = load('qwen2.5-instruct.jinja').render(toolChat, { tools: [weatherTool] });
  const turn = rendered.split('<|im_start|>assistant\n')[1].split('<|im_end|>')[0];
  assert.deepEqual(parseToolCalls(turn, 'hermes').toolCalls, [{ name: 'get_weather', arguments: { city: 'Paris' } }]);
  const llama = load('llama-3.1-instruct.jinja').render(toolChat, { tools: [weatherTool] });
  const llamaTurn = llama.split('<|start_header_id|>assistant<|end_header_id|>\n\n')[1].split('<|eot_id|>')[0];
  assert.deepEqual(parseToolCalls(llamaTurn, 'llama3').toolCalls, [{ name: 'get_weather', arguments: { city: 'Paris' } }]);
});

test('a template that loops past its step budget is stopped with TEMPLATE_ERROR', () => {
  const loop = ChatTemplate.compile('{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}', 'loop');
  assert.throws(
    () => loop.render(chat, { budget: { maxSteps: 100_000 } }),
    (err: unknown) => isCairnError(err, 'TEMPLATE_ERROR') && /'loop' was stopped: it took more than 100000 steps/.test(err.message),
  );
  assert.throws(
    () => loop.render(chat, { budget: { timeoutMs: 50 } }),
    (err: unknown) => isCairnError(err, 'TEMPLATE_ERROR') && /was stopped: it ran for more than 50 ms/.test(err.message),
  );
  // Real templates need a few thousand steps for a long conversation.
  const long = Array.from({ length: 200 }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: `turn ${i}` }));
  assert.ok(load('qwen3.jinja').render(long, { budget: { maxSteps: 20_000 } }).includes('turn 199'));
});

test('range() refuses lists longer than MAX_RANGE before building them', () => {
  assert.throws(
    () => ChatTemplate.compile('{{ range(100000000)|length }}').render(chat),
    (err: unknown) => isCairnError(err, 'TEMPLATE_ERROR') && /range\(\) of 100000000 numbers/.test(err.message),
  );
  assert.equal(ChatTemplate.compile('{{ range(1000)|length }}').render(chat), '1000');
});
