/** The shard's scratch memory: shared by name, sized for the largest request, views kept per batch size. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rowRange, Workspace } from './workspace.js';

test('buffers of one name share memory sized for the largest request; bytes are known before allocation', () => {
  const ws = new Workspace(4);
  const a = ws.buffer('q', 8);
  const b = ws.buffer('q', 12);
  const c = ws.buffer('k', 2);
  assert.equal(ws.bytes, 4 * 4 * (12 + 2));
  ws.allocate();
  assert.equal(a.rows(4).length, 32);
  assert.equal(b.rows(4).length, 48);
  assert.equal(a.rows(4).buffer, b.rows(4).buffer, 'one buffer for one name');
  assert.notEqual(a.rows(1).buffer, c.rows(1).buffer);
  assert.throws(() => ws.buffer('late', 1), /after allocation/);
});

test('the same batch size gives the same view object (no allocation per decode step); another size a new one', () => {
  const ws = new Workspace(8);
  const s = ws.buffer('x', 3);
  ws.allocate();
  const one = s.rows(1);
  assert.equal(s.rows(1), one);
  const five = s.rows(5);
  assert.notEqual(five, one);
  assert.equal(five.length, 15);
  assert.equal(s.rows(5), five);
  assert.equal(rowRange(five, 0, 5, 3), five, 'a span covering the batch is the batch view itself');
  assert.deepEqual(
    [
      ...rowRange(
        five.fill(0).map((_, i) => i),
        1,
        2,
        3,
      ),
    ],
    [3, 4, 5, 6, 7, 8],
  );
});
