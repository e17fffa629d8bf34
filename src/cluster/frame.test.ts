import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isCairnError } from '../util/errors.js';
import { Prng } from '../util/prng.js';
import { FrameDecoder } from './frame-decoder.js';
import { FrameEncoder, INLINE_PAYLOAD_BYTES } from './frame-encoder.js';
import {
  type DTypeCode,
  type Frame,
  type FrameMeta,
  DType,
  FRAME_HEADER_BYTES,
  FrameFlags,
  encodeFrame,
  frameJson,
  readFrameHeader,
  resolveFrameHeader,
} from './frame.js';

/** Decodes a byte stream fed in the given chunks; returns frames and the first error. */
function decodeChunks(chunks: Buffer[], maxPayloadBytes?: number, allocate?: (n: number) => Buffer) {
  const frames: Frame[] = [];
  const decoder = new FrameDecoder({ onFrame: (f) => frames.push(f), maxPayloadBytes, allocate });
  let error;
  for (const c of chunks) error = decoder.push(c) ?? error;
  return { frames, error, decoder };
}

function randomBytes(prng: Prng, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = prng.int(256);
  return b;
}

interface Sample {
  type: number;
  meta: FrameMeta;
  payload: Buffer;
  flags: number;
  requestId: number;
}

function samples(prng: Prng): Sample[] {
  const out: Sample[] = [];
  for (const size of [1, 3, 40, 1000]) {
    out.push({ type: 300, meta: { sequence: out.length }, payload: randomBytes(prng, size), flags: 0, requestId: 0 });
  }
  out.push({ type: 302, meta: { dtype: DType.raw }, payload: randomBytes(prng, 17), flags: FrameFlags.request, requestId: 7 });
  out.push({
    type: 303,
    meta: { dtype: DType.raw },
    payload: randomBytes(prng, 5),
    flags: FrameFlags.response,
    requestId: 0xffffffff,
  });
  out.push({ type: 304, meta: { dtype: DType.raw }, payload: Buffer.alloc(0), flags: 0, requestId: 0 });
  out.push({
    type: 0xffff,
    meta: { dtype: DType.json },
    payload: Buffer.from('{"a":[1,2,"é"]}'),
    flags: FrameFlags.response | FrameFlags.error,
    requestId: 3,
  });
  out.push({ type: 1, meta: { dtype: DType.raw, sequence: 0xfffffffe }, payload: randomBytes(prng, 12), flags: 0, requestId: 0 });
  return out;
}

function assertSameFrame(got: Frame, want: Sample): void {
  assert.equal(got.type, want.type);
  assert.equal(got.flags, want.flags);
  assert.equal(got.requestId, want.requestId);
  assert.equal(got.sequence, want.meta.sequence ?? 0);
  assert.equal(got.dtype, want.meta.dtype ?? DType.raw);
  assert.equal(got.payloadLength, want.payload.length);
  assert.ok(got.payload.equals(want.payload));
}

function encodeAll(list: Sample[]): Buffer {
  return Buffer.concat(list.flatMap((s) => encodeFrame(s.type, s.meta, s.payload, s.flags, s.requestId)));
}

test('header bytes follow the documented little-endian layout', () => {
  const payload = Buffer.alloc(24);
  const [header, body] = encodeFrame(0x1234, { dtype: DType.json, sequence: 0x01020304 }, payload, FrameFlags.request, 0xa0b0c0d0);
  assert.equal(header.length, FRAME_HEADER_BYTES);
  assert.equal(body, payload, 'the payload is passed through, not copied');
  const expected = Buffer.alloc(24);
  expected[0] = 0xca;
  expected[1] = 2; // frame version
  expected.set([0x34, 0x12], 2);
  expected.set([0xd0, 0xc0, 0xb0, 0xa0], 4);
  expected.set([0x04, 0x03, 0x02, 0x01], 8);
  expected[12] = 1; // json
  expected.set([1, 0], 14); // request flag
  expected[16] = 24; // payload length (u64)
  assert.deepEqual([...header], [...expected]);
  // The length is a u64: one above 4 GiB reads back whole.
  const big = encodeFrame(300, undefined, Buffer.alloc(2))[0];
  big.writeUInt32LE(1, 20);
  const read = readFrameHeader(big, 0, 2 ** 33);
  assert.ok('type' in read && read.payloadLength === 2 ** 32 + 2);
});

test('every payload type, size and flag survives an encode/decode round trip', () => {
  const list = samples(new Prng(1));
  const { frames, error } = decodeChunks([encodeAll(list)]);
  assert.equal(error, undefined);
  assert.equal(frames.length, list.length);
  frames.forEach((f, i) => assertSameFrame(f, list[i]));
});

test('decoding gives the same frames wherever the stream is cut', () => {
  const list = samples(new Prng(2));
  const stream = encodeAll(list);
  for (let cut = 0; cut <= stream.length; cut++) {
    const { frames, error } = decodeChunks([stream.subarray(0, cut), stream.subarray(cut)]);
    assert.equal(error, undefined, `cut at ${cut}`);
    assert.equal(frames.length, list.length, `cut at ${cut}`);
    frames.forEach((f, i) => assertSameFrame(f, list[i]));
  }
  const byteByByte = decodeChunks([...stream].map((b) => Buffer.from([b])));
  assert.equal(byteByByte.frames.length, list.length);
  byteByByte.frames.forEach((f, i) => assertSameFrame(f, list[i]));
});

test('a payload inside one chunk is a view of it; a split one is gathered into a buffer of its exact size', () => {
  const payload = Buffer.alloc(64, 7);
  const stream = Buffer.concat(encodeFrame(300, { dtype: DType.raw }, payload));
  const whole = decodeChunks([stream]);
  assert.equal(whole.frames[0].payload.buffer, stream.buffer);
  const allocations: number[] = [];
  const split = decodeChunks([stream.subarray(0, 50), stream.subarray(50)], undefined, (n) => {
    allocations.push(n);
    return Buffer.alloc(n);
  });
  assert.deepEqual(allocations, [64]);
  assert.ok(split.frames[0].payload.equals(payload));
});

test('malformed headers are reported as CLUSTER_PROTOCOL errors, never thrown', () => {
  const good = () => Buffer.concat(encodeFrame(300, { dtype: DType.raw }, Buffer.alloc(8)));
  const cases: Array<[string, (b: Buffer) => void, RegExp]> = [
    ['bad magic', (b) => (b[0] = 0x47), /magic/],
    ['other version', (b) => (b[1] = 1), /version 1/],
    ['future version', (b) => (b[1] = 3), /version 3/],
    ['unknown payload type', (b) => (b[12] = 4), /payload type 4/],
    ['reserved byte set', (b) => (b[13] = 1), /reserved/],
    ['unknown flag', (b) => (b[14] = 0x80), /flag/],
    ['request without id', (b) => (b[14] = FrameFlags.request), /non-zero request id/],
    ['huge length', (b) => b.writeUInt32LE(0xffffffff, 20), /not representable|exceeds/],
  ];
  for (const [name, mutate, pattern] of cases) {
    const bytes = good();
    mutate(bytes);
    const { frames, error, decoder } = decodeChunks([bytes]);
    assert.equal(frames.length, 0, name);
    assert.ok(isCairnError(error, 'CLUSTER_PROTOCOL'), name);
    assert.match(error!.message, pattern, name);
    // A failed decoder stays failed and ignores further input.
    assert.equal(decoder.push(good()), error, name);
  }
});

test('a payload over the limit is refused before anything is allocated', () => {
  const header = encodeFrame(300, { dtype: DType.raw }, Buffer.alloc(1000))[0];
  let allocated = 0;
  const { error } = decodeChunks([header], 999, (n) => {
    allocated += n;
    return Buffer.alloc(n);
  });
  assert.ok(isCairnError(error, 'CLUSTER_PROTOCOL'));
  assert.match(error!.message, /exceeds this connection's limit of 999/);
  assert.equal(allocated, 0);
  // The same frame passes under a limit that allows it.
  const ok = decodeChunks(encodeFrame(300, { dtype: DType.raw }, Buffer.alloc(1000)), 1000);
  assert.equal(ok.error, undefined);
  assert.equal(ok.frames.length, 1);
});

test('fuzz: mutated streams in random chunks never throw and never allocate past the limit', () => {
  const prng = new Prng(99);
  const limit = 4096;
  const base = encodeAll(samples(prng));
  for (let round = 0; round < 3000; round++) {
    const stream = Buffer.from(base);
    const edits = 1 + prng.int(6);
    for (let e = 0; e < edits; e++) {
      const at = prng.int(stream.length);
      stream[at] = prng.int(3) === 0 ? 0xff : prng.int(256);
    }
    // Sometimes also cut the stream short or append junk.
    const cutStream = prng.int(4) === 0 ? stream.subarray(0, prng.int(stream.length)) : stream;
    const chunks: Buffer[] = [];
    for (let pos = 0; pos < cutStream.length;) {
      const n = 1 + prng.int(200);
      chunks.push(cutStream.subarray(pos, pos + n));
      pos += n;
    }
    let allocated = 0;
    const frames: Frame[] = [];
    const decoder = new FrameDecoder({
      onFrame: (f) => frames.push(f),
      maxPayloadBytes: limit,
      allocate: (n) => {
        assert.ok(n <= limit, `allocation of ${n} bytes`);
        allocated += n;
        return Buffer.alloc(n);
      },
    });
    for (const chunk of chunks) {
      const error = decoder.push(chunk);
      if (error) assert.ok(isCairnError(error, 'CLUSTER_PROTOCOL'));
    }
    for (const f of frames) assert.ok(f.payload.length <= limit && f.payload.length === f.payloadLength);
    assert.ok(allocated <= cutStream.length + limit);
  }
});

test('sending an inconsistent frame is a BAD_ARGUMENT error', () => {
  assert.throws(
    () => resolveFrameHeader(70000, 0, 0, undefined, 0),
    (e) => isCairnError(e, 'BAD_ARGUMENT') && /u16/.test(e.message),
  );
  assert.throws(() => resolveFrameHeader(300, 0, 0, { sequence: -1 }, 0), /not a u32/);
  assert.throws(() => resolveFrameHeader(300, FrameFlags.request, 0, undefined, 0), /non-zero request id/);
  assert.throws(() => resolveFrameHeader(300, FrameFlags.error, 0, undefined, 0), /only valid on a response/);
  assert.throws(() => resolveFrameHeader(300, 0, 0, { dtype: 42 as DTypeCode }, 0), /unknown payload type/);
  assert.equal(resolveFrameHeader(300, 0, 0, undefined, 5).dtype, DType.raw);
});

test('json payloads parse; anything else is a CLUSTER_PROTOCOL error', () => {
  const json = decodeChunks(encodeFrame(300, { dtype: DType.json }, Buffer.from('{"x":1}'))).frames[0];
  assert.deepEqual(frameJson(json), { x: 1 });
  const notJson = decodeChunks(encodeFrame(300, { dtype: DType.json }, Buffer.from('{x'))).frames[0];
  assert.throws(
    () => frameJson(notJson),
    (e) => isCairnError(e, 'CLUSTER_PROTOCOL'),
  );
  const raw = decodeChunks(encodeFrame(300, { dtype: DType.raw }, Buffer.from('{"x":1}'))).frames[0];
  assert.throws(() => frameJson(raw), /expected a json frame, got payload type raw/);
});

test('the encoder never overwrites a buffer it handed out, across slab refills', () => {
  const prng = new Prng(5);
  const encoder = new FrameEncoder();
  const sent: Array<{ parts: Buffer[]; sample: Sample }> = [];
  for (let i = 0; i < 400; i++) {
    const size = prng.int(3) === 0 ? INLINE_PAYLOAD_BYTES + 1 + prng.int(100) : prng.int(3000);
    const sample: Sample = {
      type: 500 + (i % 7),
      meta: { dtype: DType.raw, sequence: i },
      payload: randomBytes(prng, size),
      flags: 0,
      requestId: 0,
    };
    const header = resolveFrameHeader(sample.type, 0, 0, sample.meta, size);
    const out = encoder.encode(header, sample.payload);
    const parts = Buffer.isBuffer(out) ? [out] : out;
    if (size > INLINE_PAYLOAD_BYTES) assert.equal(parts[1], sample.payload, 'large payloads are not copied');
    else assert.equal(parts.length, 1, 'small payloads travel with their header');
    sent.push({ parts, sample });
  }
  const { frames, error } = decodeChunks(sent.flatMap((s) => s.parts));
  assert.equal(error, undefined);
  assert.equal(frames.length, sent.length);
  frames.forEach((f, i) => assertSameFrame(f, sent[i].sample));
});
