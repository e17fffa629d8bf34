import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jsonValueEnd } from './json-scan.js';
import { detectToolCallFormat, parseToolCalls, proseLength, ProseTracker } from './tool-calls.js';

test('hermes: one call with surrounding text', () => {
  const r = parseToolCalls(
    'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
    'hermes',
  );
  assert.deepEqual(r, { content: 'Let me check.', toolCalls: [{ name: 'get_weather', arguments: { city: 'Paris' } }] });
});

test('hermes: several calls, braces inside strings, missing final close tag', () => {
  const text =
    '<tool_call>\n{"name": "a", "arguments": {"q": "x } y {"}}\n</tool_call>\n' +
    '<tool_call>\n{"name": "b", "arguments": {}}';
  const r = parseToolCalls(text, 'hermes');
  assert.equal(r.content, '');
  assert.deepEqual(r.toolCalls, [
    { name: 'a', arguments: { q: 'x } y {' } },
    { name: 'b', arguments: {} },
  ]);
});

test('hermes: malformed blocks stay in the content', () => {
  const text = 'x <tool_call>{"name": "a", "arguments": {"q": }</tool_call>';
  assert.deepEqual(parseToolCalls(text, 'hermes'), { content: text, toolCalls: [] });
  assert.deepEqual(parseToolCalls('just text', 'hermes'), { content: 'just text', toolCalls: [] });
});

test('llama3: JSON reply with parameters, python_tag prefix, several calls', () => {
  assert.deepEqual(parseToolCalls('{"name": "get_weather", "parameters": {"city": "Paris"}}', 'llama3'), {
    content: '',
    toolCalls: [{ name: 'get_weather', arguments: { city: 'Paris' } }],
  });
  const multi = parseToolCalls(
    '<|python_tag|>{"type": "function", "name": "a", "parameters": {"n": 1}}; {"name": "b", "parameters": {}}',
    'llama3',
  );
  assert.deepEqual(multi.toolCalls, [
    { name: 'a', arguments: { n: 1 } },
    { name: 'b', arguments: {} },
  ]);
});

test('llama3: prose and JSON that is not a call stay content', () => {
  assert.deepEqual(parseToolCalls('The answer is 4.', 'llama3'), { content: 'The answer is 4.', toolCalls: [] });
  assert.deepEqual(parseToolCalls('{"result": 4}', 'llama3'), { content: '{"result": 4}', toolCalls: [] });
  assert.deepEqual(parseToolCalls('{"name": "a", "parameters": {}} and more', 'llama3').toolCalls, []);
});

test('mistral: [TOOL_CALLS] array with ids', () => {
  const r = parseToolCalls(
    '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "abcDEF123"}, {"name": "b", "arguments": "{\\"k\\": 2}"}]',
    'mistral',
  );
  assert.deepEqual(r, {
    content: '',
    toolCalls: [
      { name: 'get_weather', arguments: { city: 'Paris' }, id: 'abcDEF123' },
      { name: 'b', arguments: { k: 2 } },
    ],
  });
});

test('mistral: newer name[ARGS]{...} form, and text without calls', () => {
  const r = parseToolCalls('[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}[TOOL_CALLS]b[ARGS]{}', 'mistral');
  assert.deepEqual(r.toolCalls, [
    { name: 'get_weather', arguments: { city: 'Paris' } },
    { name: 'b', arguments: {} },
  ]);
  assert.deepEqual(parseToolCalls('No tools needed.', 'mistral'), { content: 'No tools needed.', toolCalls: [] });
  assert.deepEqual(parseToolCalls('[TOOL_CALLS] [oops', 'mistral').toolCalls, []);
});

test('the format is read from the template source', () => {
  assert.equal(detectToolCallFormat('... <tool_call>\\n{"name": ...'), 'hermes');
  assert.equal(detectToolCallFormat('{{- "[TOOL_CALLS] [" }}'), 'mistral');
  assert.equal(
    detectToolCallFormat(`{{- '<|start_header_id|>' }} 'Respond in the format {"name": function name, "parameters": ...}'`),
    'llama3',
  );
  assert.equal(detectToolCallFormat('{{ messages }}'), undefined);
});

test('proseLength: the start of a growing reply that can be streamed as content', () => {
  // Hermes and Mistral: everything before the marker, holding back an end that may become one.
  assert.equal(proseLength('Let me check. <tool', 'hermes'), 'Let me check. '.length);
  assert.equal(proseLength('Let me check. <tool_call>{"na', 'hermes'), 'Let me check. '.length);
  assert.equal(proseLength('a < b', 'hermes'), 'a < b'.length);
  assert.equal(proseLength('x <', 'hermes'), 2);
  assert.equal(proseLength('ok [TOOL', 'mistral'), 3);
  assert.equal(proseLength('ok [TOOL_CALLS][{"name"', 'mistral'), 3);
  assert.equal(proseLength('ok [1]', 'mistral'), 6);
  // Llama 3: a call is the whole reply, so prose is known from its first character.
  assert.equal(proseLength('  ', 'llama3'), 0);
  assert.equal(proseLength(' {"name": "a"', 'llama3'), 0);
  assert.equal(proseLength('<|python', 'llama3'), 0);
  assert.equal(proseLength('<|python_tag|>{"na', 'llama3'), 0);
  assert.equal(proseLength('Sunny today {', 'llama3'), 'Sunny today {'.length);
  // Whatever follows, the prose found so far never turns into a call.
  for (const [text, format] of [
    ['Let me check. <tool', 'hermes'],
    ['ok [TOOL', 'mistral'],
    ['Sunny', 'llama3'],
  ] as const) {
    const n = proseLength(text, format);
    const completed = text.slice(0, n) + '<tool_call>{"name": "a", "arguments": {}}</tool_call>[TOOL_CALLS][{"name": "a", "arguments": {}}]';
    assert.ok(parseToolCalls(completed.slice(0, n), format).toolCalls.length === 0);
    assert.equal(completed.slice(0, n), text.slice(0, n));
  }
});

test('hermes: the JSON scan stops where text cannot be JSON, so unclosed calls are not each scanned to the end', () => {
  assert.equal(jsonValueEnd('{"a": 1 <b> }', 0), -1, 'a tag outside a string');
  assert.equal(jsonValueEnd('{"a": \\"x" }', 0), -1, 'a backslash outside a string');
  assert.equal(jsonValueEnd('{"a": "<b> \\" }" }', 0), 18, 'both inside a string');
  // From each tag the scan used to run to the end of the text (in a string, past every tag).
  const n = 100_000;
  const text = '<tool_call>{\\"'.repeat(n);
  assert.deepEqual(parseToolCalls(text, 'hermes'), { content: text, toolCalls: [] });
  // A call after an unclosed one is still found.
  const r = parseToolCalls('<tool_call>{"name": "a", "arguments": {}\n</tool_call>\n<tool_call>{"name": "b", "arguments": {}}</tool_call>', 'hermes');
  assert.deepEqual(r.toolCalls, [{ name: 'b', arguments: {} }]);
});

test('ProseTracker: the same prose length as proseLength of the whole reply after every piece, for every format', () => {
  let seed = 7;
  const random = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const pieces = ['Sure', ' ', '<', 'tool', '_call', '>', '{"name"', '[TOOL', '_CALLS]', '{', ' ', '<|python', '_tag|>', 'x', '\n', '[', 'ok'];
  for (const format of ['hermes', 'mistral', 'llama3'] as const) {
    for (let run = 0; run < 300; run++) {
      const tracker = new ProseTracker(format);
      let text = '';
      for (let i = 0, n = 1 + random(12); i < n; i++) {
        const piece = pieces[random(pieces.length)];
        text += piece;
        assert.equal(tracker.push(piece), proseLength(text, format), `${format}: ${JSON.stringify(text)}`);
      }
    }
  }
});

test('ProseTracker: a long streamed reply is searched once, not once per piece to its start', () => {
  const indexOf = String.prototype.indexOf;
  let scanned = 0;
  String.prototype.indexOf = function (this: string, search: string, from?: number) {
    scanned += this.length - (from ?? 0);
    return indexOf.call(this, search, from);
  };
  try {
    const tracker = new ProseTracker('hermes');
    const n = 20_000;
    for (let i = 0; i < n; i++) tracker.push('word < ');
    // Each search starts where the last could not rule a marker out: a few characters a piece.
    assert.ok(scanned < 10 * 7 * n, `${scanned} characters searched for ${7 * n}`);
  } finally {
    String.prototype.indexOf = indexOf;
  }
});
