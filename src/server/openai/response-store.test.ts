/**
 * The response store's bounds: by count and by bytes, least recently used out first (reading a
 * response counts as a use), a response over the byte bound alone not kept.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ResponseStore } from './response-store.js';

const entry = (text: string) => ({ response: { id: 'r' }, conversation: [{ role: 'user', content: text }] });

test('the store keeps at most maxEntries responses, dropping the least recently used', () => {
  const store = new ResponseStore(3, 1 << 20);
  for (const id of ['a', 'b', 'c']) assert.ok(store.put(id, entry(id)));
  assert.ok(store.get('a'), 'a is now the most recently used');
  store.put('d', entry('d'));
  assert.equal(store.size, 3);
  assert.equal(store.get('b'), undefined, 'b was the least recently used');
  for (const id of ['a', 'c', 'd']) assert.ok(store.get(id), id);
});

test('the store keeps at most maxBytes; a response over the bound alone is not kept', () => {
  const one = Buffer.byteLength(JSON.stringify(entry('x'.repeat(100)).response)) + Buffer.byteLength(JSON.stringify(entry('x'.repeat(100)).conversation));
  const store = new ResponseStore(100, one * 2);
  store.put('a', entry('x'.repeat(100)));
  store.put('b', entry('y'.repeat(100)));
  assert.equal(store.bytes, one * 2);
  store.put('c', entry('z'.repeat(100)));
  assert.equal(store.size, 2);
  assert.ok(store.bytes <= one * 2);
  assert.equal(store.get('a'), undefined);
  assert.equal(store.put('big', entry('w'.repeat(one * 2))), false);
  assert.equal(store.get('big'), undefined);
  assert.equal(store.size, 2, 'a refused response evicts nothing');
  // Replacing and deleting keep the byte count right.
  store.put('b', entry('y'.repeat(100)));
  assert.ok(store.delete('b'));
  assert.equal(store.delete('b'), false);
  assert.equal(store.bytes, one);
});
