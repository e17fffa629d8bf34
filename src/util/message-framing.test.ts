import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isCairnError } from './errors.js';
import { MAX_PART_BYTES, MAX_PARTS, packMessage, packParts, unpackMessage, unpackParts } from './message-framing.js';
import { Prng } from './prng.js';

function randomBytes(prng: Prng, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = prng.int(256);
  return b;
}

test('parts follow the documented layout: u32 count, then u32 length and bytes per part', () => {
  const packed = packParts([Buffer.from([7, 8, 9]), new Uint8Array(0), new Uint16Array([0x0102])]);
  assert.deepEqual([...packed], [3, 0, 0, 0, 3, 0, 0, 0, 7, 8, 9, 0, 0, 0, 0, 2, 0, 0, 0, 0x02, 0x01]);
  assert.deepEqual([...packParts([])], [0, 0, 0, 0]);
});

test('parts and messages survive a round trip, as views of the buffer', () => {
  const prng = new Prng(7);
  for (let round = 0; round < 200; round++) {
    const parts = Array.from({ length: prng.int(6) }, () => randomBytes(prng, prng.int(3) === 0 ? 0 : prng.int(300)));
    const packed = packParts(parts);
    const back = unpackParts(packed, { count: parts.length });
    assert.equal(back.length, parts.length);
    back.forEach((p, i) => {
      assert.ok(p.equals(parts[i]));
      if (p.length > 0) assert.equal(p.buffer, packed.buffer, 'a view, not a copy');
    });
  }
  const tokens = new Int32Array([1, -2, 300000]);
  const hidden = new Float32Array([0.5, -1.25]);
  const { head, bodies } = unpackMessage<{ step: number; kind: string }>(packMessage({ step: 3, kind: 'tokens' }, tokens, hidden), {
    bodies: 2,
  });
  assert.deepEqual(head, { step: 3, kind: 'tokens' });
  assert.deepEqual(new Int32Array(Uint8Array.prototype.slice.call(bodies[0]).buffer), tokens);
  assert.deepEqual(new Float32Array(Uint8Array.prototype.slice.call(bodies[1]).buffer), hidden);
  // A view into a larger buffer (a frame payload inside a socket chunk) unpacks the same.
  const inside = Buffer.concat([Buffer.from([1, 2, 3]), packMessage(null), Buffer.from([4])]);
  assert.deepEqual(unpackMessage(inside.subarray(3, inside.length - 1), { bodies: 0 }), { head: null, bodies: [] });
  assert.deepEqual(unpackMessage(packMessage(undefined)).head, null);
});

test('malformed lists are CairnErrors that say what is wrong', () => {
  const good = packParts([Buffer.from('abc'), Buffer.from('de')]);
  const cases: Array<[string, Buffer, RegExp]> = [
    ['empty', Buffer.alloc(0), /0 bytes, too short/],
    ['short count', Buffer.from([1, 0]), /too short/],
    ['count beyond the bytes', Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]), /4294967295 parts announced in 8 bytes/],
    [
      'length runs past the end',
      Buffer.concat([good.subarray(0, 4), Buffer.from([0xff, 0xff, 0xff, 0x7f]), good.subarray(8)]),
      /part 0 claims 2147483647 bytes/,
    ],
    ['truncated in a part', good.subarray(0, good.length - 1), /part 1 claims 2 bytes, 1 are left/],
    ['truncated before a length', Buffer.from([2, 0, 0, 0, 5, 0, 0, 0, 1, 2, 3, 4, 5, 9]), /part 1 has no length/],
    ['trailing bytes', Buffer.concat([good, Buffer.from([0])]), /1 bytes after the last part/],
  ];
  for (const [name, bytes, pattern] of cases) {
    assert.throws(
      () => unpackParts(bytes, { what: 'saved prefix', code: 'BAD_ARGUMENT' }),
      (e) => isCairnError(e, 'BAD_ARGUMENT') && e.message.startsWith('malformed saved prefix: ') && pattern.test(e.message),
      name,
    );
  }
  assert.throws(
    () => unpackParts(good, { count: 3 }),
    (e) => isCairnError(e, 'CLUSTER_PROTOCOL') && /2 parts where 3 were expected/.test(e.message),
  );
});

test('malformed messages: no head, a head that is not JSON, the wrong number of bodies', () => {
  assert.throws(() => unpackMessage(packParts([])), /no head/);
  assert.throws(() => unpackMessage(packParts([Buffer.from('{x')])), /head is not JSON/);
  assert.throws(() => unpackMessage(packParts([Buffer.alloc(0)])), /head is not JSON/);
  assert.throws(() => unpackMessage(packParts([Buffer.from([0xff, 0xfe])])), /head is not JSON/);
  assert.throws(
    () => unpackMessage(packMessage({}, Buffer.alloc(1), Buffer.alloc(2)), { bodies: 1, what: 'forward message' }),
    (e) => isCairnError(e, 'CLUSTER_PROTOCOL') && e.message === 'malformed forward message: 2 bodies where 1 were expected',
  );
  assert.equal(unpackMessage(packMessage({ a: 1 }, Buffer.alloc(4))).bodies.length, 1);
});

test('a list of more than MAX_PARTS parts is refused from its count, before the list is made', () => {
  // 200k empty parts in 800 kB: each part would be a heap object, so a peer's few hundred MB could fill the heap.
  const many = Buffer.alloc(4 + 4 * 200_000);
  many.writeUInt32LE(200_000, 0);
  assert.throws(() => unpackParts(many), (e) => isCairnError(e, 'CLUSTER_PROTOCOL') && /200000 parts announced, at most 65536 allowed/.test(e.message));
  assert.throws(() => unpackMessage(many), (e) => isCairnError(e, 'CLUSTER_PROTOCOL') && /200000 parts announced/.test(e.message));
  assert.throws(() => unpackMessage(many, { bodies: 1 }), (e) => isCairnError(e, 'CLUSTER_PROTOCOL') && /199999 bodies where 1 were expected/.test(e.message));
  assert.throws(() => packParts(Array.from({ length: MAX_PARTS + 1 }, () => new Uint8Array(0))), (e) => isCairnError(e, 'BAD_ARGUMENT'));
  assert.equal(unpackParts(packParts(Array.from({ length: MAX_PARTS }, () => new Uint8Array(0)))).length, MAX_PARTS);
});

test('fuzz: mutated and cut buffers unpack or fail with a CairnError, never read or allocate beyond them', () => {
  const prng = new Prng(23);
  for (let round = 0; round < 5000; round++) {
    const bodies = Array.from({ length: prng.int(4) }, () => randomBytes(prng, prng.int(64)));
    const bytes = Buffer.from(packMessage({ step: round, spans: [[0, 1, 2, 3]] }, ...bodies));
    for (let e = 1 + prng.int(4); e > 0; e--) bytes[prng.int(bytes.length)] = prng.int(3) === 0 ? 0xff : prng.int(256);
    const cut = prng.int(4) === 0 ? bytes.subarray(0, prng.int(bytes.length + 1)) : bytes;
    try {
      const { bodies: got } = unpackMessage(cut);
      let total = 0;
      for (const b of got) {
        assert.equal(b.buffer, cut.buffer);
        assert.ok(b.byteOffset >= cut.byteOffset && b.byteOffset + b.length <= cut.byteOffset + cut.length);
        total += b.length;
      }
      assert.ok(total <= cut.length);
    } catch (err) {
      assert.ok(isCairnError(err, 'CLUSTER_PROTOCOL'), String(err));
    }
  }
});

test('a part longer than a u32 length can say is refused when packing', () => {
  const huge = { byteLength: MAX_PART_BYTES + 1, byteOffset: 0, buffer: new ArrayBuffer(0) } as ArrayBufferView;
  assert.throws(
    () => packParts([huge]),
    (e) => isCairnError(e, 'BAD_ARGUMENT'),
  );
});
