/**
 * Anthropic conversations as chat messages: tool results right after the calls they answer and
 * before the turn's text, tool_use inputs as call arguments, system prompts from either place,
 * the billing header dropped, a final assistant turn kept apart as the answer's start.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiError } from '../errors.js';
import { conversationOf, toolDefinitions } from './conversation.js';
import { countTokensRequest, type CountTokensRequest } from './schemas.js';

const req = (body: Record<string, unknown>): CountTokensRequest => countTokensRequest.parse({ model: 'm', ...body });

test('tool_use and tool_result blocks become a call and a tool message, before the text of the same turn', () => {
  const { messages, prefill } = conversationOf(
    req({
      system: [{ type: 'text', text: 'Be brief.' }],
      messages: [
        { role: 'user', content: 'Weather?' },
        {
          role: 'assistant',
          content: [
            { type: 'thinking', thinking: 'Look it up.', signature: 's' },
            { type: 'text', text: 'Checking.' },
            { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Paris' } },
          ],
        },
        {
          role: 'user',
          content: [
            { type: 'tool_result', tool_use_id: 'toolu_1', content: [{ type: 'text', text: '21' }], is_error: false },
            { type: 'text', text: 'Thanks' },
          ],
        },
      ],
    }),
  );
  assert.equal(prefill, undefined);
  assert.deepEqual(messages, [
    { role: 'system', content: [{ type: 'text', text: 'Be brief.' }] },
    { role: 'user', content: 'Weather?' },
    {
      role: 'assistant',
      content: [{ type: 'text', text: 'Checking.' }],
      tool_calls: [{ id: 'toolu_1', type: 'function', function: { name: 'get_weather', arguments: { city: 'Paris' } } }],
      reasoning_content: 'Look it up.',
    },
    { role: 'tool', tool_call_id: 'toolu_1', content: [{ type: 'text', text: '21' }] },
    { role: 'user', content: [{ type: 'text', text: 'Thanks' }] },
  ]);
});

test('a final assistant turn is the prefill; one with tool_use is refused; system messages and the billing header', () => {
  const c = conversationOf(req({ messages: [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: [{ type: 'text', text: 'Once' }] }] }));
  assert.equal(c.prefill, 'Once');
  assert.deepEqual(c.messages, [{ role: 'user', content: 'Hi' }]);
  assert.throws(
    () => conversationOf(req({ messages: [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: [{ type: 'tool_use', id: 't', name: 'f', input: {} }] }] })),
    (e: unknown) => e instanceof ApiError && e.status === 400,
  );
  const s = conversationOf(
    req({
      system: 'x-anthropic-billing-header: cc_version=1.0; cch=12ab3;\nYou are helpful.',
      messages: [{ role: 'system', content: 'Also this.' }, { role: 'user', content: 'Hi' }],
    }),
  );
  assert.deepEqual(s.messages.slice(0, 2), [
    { role: 'system', content: 'You are helpful.' },
    { role: 'system', content: 'Also this.' },
  ]);
});

test('tools in the template’s (OpenAI) shape; tool_choice none offers none', () => {
  const tools = [{ name: 'f', input_schema: { type: 'object' } }];
  assert.deepEqual(toolDefinitions(req({ messages: [{ role: 'user', content: 'x' }], tools })), [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }]);
  assert.equal(toolDefinitions(req({ messages: [{ role: 'user', content: 'x' }], tools, tool_choice: { type: 'none' } })), undefined);
});
