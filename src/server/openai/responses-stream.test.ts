/**
 * The order of a streamed response's events when a reply holds text and calls, as the official
 * clients accumulate them: the message (its text streamed, then the rest of it) before the calls,
 * output indexes in order, sequence numbers consecutive.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SseStream } from '../sse.js';
import { ResponseEvents } from './responses-stream.js';

type Sent = { name: string; payload: Record<string, unknown> };

function recorder(): { sse: SseStream; sent: Sent[] } {
  const sent: Sent[] = [];
  const sse = { event: (name: string, payload: Record<string, unknown>) => sent.push({ name, payload }) } as unknown as SseStream;
  return { sse, sent };
}

test('text streamed, more text held, then two calls: message events first, then each call', () => {
  const { sse, sent } = recorder();
  const out = new ResponseEvents(sse, 'msg_1');
  out.lifecycle('response.created', {});
  out.text('Let me ');
  out.text('check. ');
  const calls = [
    { id: 'fc_1', callId: 'call_1', name: 'a', arguments: '{"x":1}' },
    { id: 'fc_2', callId: 'call_2', name: 'b', arguments: '{}' },
  ];
  out.finish({ messageId: 'msg_1', text: 'Let me check. Now.', calls, incomplete: false });
  assert.deepEqual(
    sent.map((s) => s.name),
    [
      'response.created',
      'response.output_item.added',
      'response.content_part.added',
      'response.output_text.delta',
      'response.output_text.delta',
      'response.output_text.delta',
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.output_item.added',
      'response.function_call_arguments.delta',
      'response.function_call_arguments.done',
      'response.output_item.done',
      'response.output_item.added',
      'response.function_call_arguments.delta',
      'response.function_call_arguments.done',
      'response.output_item.done',
    ],
  );
  assert.deepEqual(
    sent.map((s) => s.payload.sequence_number),
    sent.map((_, i) => i),
  );
  assert.ok(sent.every((s) => s.payload.type === s.name));
  const deltas = sent.filter((s) => s.name === 'response.output_text.delta').map((s) => s.payload.delta);
  assert.deepEqual(deltas, ['Let me ', 'check. ', 'Now.']);
  const added = sent.filter((s) => s.name === 'response.output_item.added').map((s) => [s.payload.output_index, (s.payload.item as { type: string }).type]);
  assert.deepEqual(added, [
    [0, 'message'],
    [1, 'function_call'],
    [2, 'function_call'],
  ]);
  const done = sent.filter((s) => s.name === 'response.function_call_arguments.done').map((s) => [s.payload.item_id, s.payload.name, s.payload.arguments]);
  assert.deepEqual(done, [
    ['fc_1', 'a', '{"x":1}'],
    ['fc_2', 'b', '{}'],
  ]);
});

test('a reply of calls alone has no message item; an empty reply has an empty message', () => {
  const calls = recorder();
  new ResponseEvents(calls.sse, 'msg_1').finish({ messageId: 'msg_1', text: null, calls: [{ id: 'fc_1', callId: 'call_1', name: 'a', arguments: '{}' }], incomplete: false });
  assert.equal(calls.sent[0].payload.output_index, 0);
  assert.ok(calls.sent.every((s) => !String(s.name).includes('output_text')));
  const empty = recorder();
  new ResponseEvents(empty.sse, 'msg_2').finish({ messageId: 'msg_2', text: '', calls: [], incomplete: true });
  assert.deepEqual(
    empty.sent.map((s) => s.name),
    ['response.output_item.added', 'response.content_part.added', 'response.output_text.done', 'response.content_part.done', 'response.output_item.done'],
  );
  assert.equal((empty.sent.at(-1)!.payload.item as { status: string }).status, 'incomplete');
});
