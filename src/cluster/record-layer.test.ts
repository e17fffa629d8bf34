import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Prng } from '../util/prng.js';
import { MAX_RECORD_PLAINTEXT, RECORD_HEADER_BYTES, RECORD_TAG_BYTES, RecordOpener, RecordSealer, type OpenResult } from './record-layer.js';

function pair(): { sealer: RecordSealer; opener: RecordOpener; out: Buffer[] } {
  const key = randomBytes(32);
  const out: Buffer[] = [];
  return { sealer: new RecordSealer(key), opener: new RecordOpener(key, (p) => out.push(Buffer.from(p))), out };
}

test('sealed frames open to the same bytes wherever the stream is cut, and large frames span several records', () => {
  const prng = new Prng(5);
  const { sealer, opener, out } = pair();
  const frames = [Buffer.from('small'), randomBytes(MAX_RECORD_PLAINTEXT), randomBytes(3 * MAX_RECORD_PLAINTEXT + 17), Buffer.alloc(1)];
  const stream = Buffer.concat(frames.flatMap((f) => sealer.sealAll([f.subarray(0, 3), f.subarray(3)])));
  // 1 + 1 + 4 + 1 records, each header + tag.
  assert.equal(stream.length, frames.reduce((a, f) => a + f.length, 0) + 7 * (RECORD_HEADER_BYTES + RECORD_TAG_BYTES));
  for (let at = 0; at < stream.length; ) {
    const n = 1 + prng.int(70_000);
    assert.deepEqual(opener.push(stream.subarray(at, at + n)), { kind: 'ok' });
    at += n;
  }
  assert.ok(Buffer.concat(out).equals(Buffer.concat(frames)));
  assert.ok(!stream.includes(Buffer.from('small')), 'the plaintext is not in the stream');
});

test('a flipped bit, a replayed, reordered or dropped record each fail authentication and stop the stream', () => {
  const cases: [string, (records: Buffer[][]) => Buffer][] = [
    ['flipped bit', (r) => {
      const b = Buffer.concat(r.flat());
      b[RECORD_HEADER_BYTES + 3] ^= 0x10;
      return b;
    }],
    ['flipped length', (r) => {
      const b = Buffer.concat(r.flat());
      b[4] ^= 1;
      return b;
    }],
    ['replayed', (r) => Buffer.concat([...r[0], ...r[0], ...r[1]])],
    ['reordered', (r) => Buffer.concat([...r[1], ...r[0]])],
    ['dropped', (r) => Buffer.concat([...r[1]])],
  ];
  for (const [name, tamper] of cases) {
    const { sealer, opener, out } = pair();
    const records = [sealer.sealAll([Buffer.from('first frame')]), sealer.sealAll([Buffer.from('second frame')])];
    const result = opener.push(tamper(records));
    assert.equal(result.kind, 'error', name);
    // Nothing after the tampered record is ever delivered, and the opener stays failed.
    assert.ok(out.every((p) => p.toString() === 'first frame'), name);
    assert.equal(opener.push(Buffer.concat(records[1])).kind, 'error', name);
  }
});

test('a record under another key is an authentication failure of the first record', () => {
  const sealer = new RecordSealer(randomBytes(32));
  const opener = new RecordOpener(randomBytes(32), () => assert.fail('nothing may be delivered'));
  const result = opener.push(Buffer.concat(sealer.sealAll([Buffer.from('hello')])));
  assert.equal(result.kind, 'error');
  assert.equal((result as Extract<OpenResult, { kind: 'error' }>).error.code, 'CLUSTER_AUTH');
});

test('an oversized record length is refused from its header, before its body is gathered', () => {
  const opener = new RecordOpener(randomBytes(32), () => {});
  const header = Buffer.from([0xcb, 1, 0, 0, 0, 0, 0, 0]);
  header.writeUInt32LE(MAX_RECORD_PLAINTEXT + RECORD_TAG_BYTES + 1, 4);
  const result = opener.push(header);
  assert.equal(result.kind, 'error');
  assert.match((result as Extract<OpenResult, { kind: 'error' }>).error.message, /record length \d+ is out of range/);
});

test('a cleartext frame at a record boundary is reported with its bytes, anything else is an error', () => {
  const { sealer, opener } = pair();
  const clear = Buffer.from([0xca, 1, 4, 0]);
  const result = opener.push(Buffer.concat([...sealer.sealAll([Buffer.from('x')]), clear]));
  assert.equal(result.kind, 'cleartext');
  assert.ok((result as Extract<OpenResult, { kind: 'cleartext' }>).rest.equals(clear));
  assert.equal(pair().opener.push(Buffer.from('GET / HTTP/1.1')).kind, 'error');
});

test('both ends ratchet their keys at the same record, and a side that did not ratchet can no longer read', () => {
  const key = randomBytes(32);
  const limits = { records: 3, bytes: 1 << 30 };
  const sealer = new RecordSealer(key, limits);
  const got: string[] = [];
  const opener = new RecordOpener(key, (p) => got.push(p.toString()), limits);
  const stale = new RecordOpener(key, () => {}, { records: 1000, bytes: 1 << 30 });
  for (let i = 0; i < 10; i++) {
    const bytes = Buffer.concat(sealer.sealAll([Buffer.from(`m${i}`)]));
    assert.equal(opener.push(bytes).kind, 'ok');
    const r = stale.push(bytes);
    assert.equal(r.kind, i < 3 ? 'ok' : 'error', `record ${i}`);
  }
  assert.deepEqual(got, Array.from({ length: 10 }, (_, i) => `m${i}`));
});
