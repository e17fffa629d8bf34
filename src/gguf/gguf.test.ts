import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, ftruncateSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { readGguf, GGUF_MAGIC, GGUF_MAX_ENTRIES, GGUF_MAX_NESTED_ARRAYS, GGUF_MAX_STRINGS } from './reader.js';
import { writeGguf, type GgufTensorSpec } from './writer.js';
import { GgufValueType, gv, type GgufValue } from './values.js';
import { GgmlType } from './ggml-types.js';
import { Metadata } from './metadata.js';
import { isCairnError } from '../util/errors.js';
import { Prng } from '../util/prng.js';
import { fixture, missingFixture, scratchDir } from '../../test/helpers/paths.js';

const dir = scratchDir('gguf');
mkdirSync(dir, { recursive: true });
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

function everyTypeMetadata(): [string, GgufValue][] {
  return [
    ['general.architecture', gv.str('llama')],
    ['t.u8', gv.u8(255)],
    ['t.i8', gv.i8(-128)],
    ['t.u16', gv.u16(65535)],
    ['t.i16', gv.i16(-32768)],
    ['t.u32', gv.u32(4294967295)],
    ['t.i32', gv.i32(-2147483648)],
    ['t.f32', gv.f32(1.5)],
    ['t.bool', gv.bool(true)],
    ['t.str', gv.str('héllo ▁ 🌍')],
    ['t.u64', gv.u64(2n ** 64n - 1n)],
    ['t.i64', gv.i64(-(2n ** 63n))],
    ['t.f64', gv.f64(Math.PI)],
    ['t.strs', gv.strs(['a', '', 'ü'])],
    ['t.f32s', gv.f32s([0.5, -2, 3.25])],
    ['t.i32s', gv.i32s([1, -2, 3])],
    ['t.bools', { type: GgufValueType.ARRAY, itemType: GgufValueType.BOOL, value: [true, false] }],
    ['t.u64s', { type: GgufValueType.ARRAY, itemType: GgufValueType.UINT64, value: BigUint64Array.from([1n, 2n ** 63n]) }],
    ['t.f64s', { type: GgufValueType.ARRAY, itemType: GgufValueType.FLOAT64, value: Float64Array.from([1e300, -0.5]) }],
    ['t.nested', { type: GgufValueType.ARRAY, itemType: GgufValueType.ARRAY, value: [gv.strs(['x']), gv.i32s([7, 8])] }],
    ['t.empty', gv.strs([])],
  ];
}

function smallTensors(): GgufTensorSpec[] {
  const f = new Float32Array(64).map((_, i) => i * 0.25);
  return [
    { name: 'a', type: GgmlType.F32, dims: [16, 4], data: new Uint8Array(f.buffer) },
    { name: 'b', type: GgmlType.Q8_0, dims: [32, 2], data: new Uint8Array(68).fill(3) },
    { name: 'c', type: GgmlType.F16, dims: [3], data: new Uint8Array(6).fill(1) },
  ];
}

function normalize(v: GgufValue): unknown {
  if (v.type === GgufValueType.ARRAY) {
    const items = v.itemType === GgufValueType.ARRAY ? (v.value as GgufValue[]).map(normalize) : Array.from(v.value as ArrayLike<unknown>);
    return { t: v.type, it: v.itemType, items };
  }
  return { t: v.type, v: v.value };
}

for (const version of [2, 3] as const) {
  test(`GGUF v${version}: every value type, arrays, nested arrays and tensors round-trip`, () => {
    const path = join(dir, `roundtrip-v${version}.gguf`);
    const metadata = everyTypeMetadata();
    writeGguf(path, { version, metadata, tensors: smallTensors(), alignment: 64 });
    const g = readGguf(path);
    assert.equal(g.version, version);
    assert.equal(g.alignment, 64);
    assert.equal(g.dataOffset % 64, 0);
    for (const [k, v] of metadata) assert.deepEqual(normalize(g.metadata.get(k)!), normalize(v), k);
    assert.equal(g.tensors.length, 3);
    const bytes = readFileSync(path);
    for (const spec of smallTensors()) {
      const t = g.tensors.find((x) => x.name === spec.name)!;
      assert.deepEqual(t.dims, spec.dims);
      assert.equal(t.type, spec.type);
      assert.equal(t.offset % 64, 0);
      assert.deepEqual(new Uint8Array(bytes.subarray(t.offset, t.offset + t.byteLength)), spec.data);
    }
  });
}

test('Metadata getters check types and name the key', () => {
  const path = join(dir, 'meta.gguf');
  writeGguf(path, { metadata: everyTypeMetadata(), tensors: [] });
  const m = new Metadata(readGguf(path));
  assert.equal(m.string('general.architecture'), 'llama');
  assert.equal(m.number('t.u32'), 4294967295);
  assert.equal(m.number('missing'), undefined);
  assert.deepEqual(Array.from(m.numbers('t.i32s')!), [1, -2, 3]);
  assert.throws(() => m.string('t.u32'), (e) => isCairnError(e, 'GGUF_MALFORMED') && /t\.u32/.test(e.message));
  assert.throws(() => m.number('t.u64'), /2\^53/);
  assert.throws(() => m.requireNumber('llama.block_count'), /llama\.block_count.*missing/);
});

test('stories260K: header, tensor index and a byte-identical rewrite', (t) => {
  const path = fixture('models/stories260K.gguf');
  if (!path) return t.skip(missingFixture('models/stories260K.gguf'));
  const g = readGguf(path);
  const m = new Metadata(g);
  assert.equal(m.string('general.architecture'), 'llama');
  assert.equal(m.number('llama.block_count'), 5);
  assert.equal(m.strings('tokenizer.ggml.tokens')!.length, 512);
  assert.equal(g.tensors.length, 3 + 5 * 9);
  const emb = g.tensors.find((x) => x.name === 'token_embd.weight')!;
  assert.deepEqual(emb.dims, [64, 512]);
  assert.equal(emb.byteLength, 64 * 512 * 4);

  const original = readFileSync(path);
  const out = join(dir, 'rewrite.gguf');
  writeGguf(out, {
    version: g.version as 3,
    metadata: g.metadata,
    tensors: g.tensors.map((x) => ({ name: x.name, type: x.type, dims: x.dims, data: original.subarray(x.offset, x.offset + x.byteLength) })),
  });
  assert.ok(readFileSync(out).equals(original), 'rewritten file differs from the original');
});

function expectMalformed(bytes: Uint8Array, pattern: RegExp, name: string): void {
  const path = join(dir, `${name}.gguf`);
  writeFileSync(path, bytes);
  assert.throws(() => readGguf(path), (e) => isCairnError(e) && e.message.startsWith(path) && pattern.test(e.message), name);
}

test('malformed files give one clear error naming the file and the problem', () => {
  const path = join(dir, 'good.gguf');
  writeGguf(path, { metadata: [['general.architecture', gv.str('llama')]], tensors: smallTensors() });
  const good = new Uint8Array(readFileSync(path));
  const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

  expectMalformed(new Uint8Array(0), /too short/, 'empty');
  const badMagic = good.slice();
  badMagic[0] = 0x47 ^ 0xff;
  expectMalformed(badMagic, /bad magic/, 'magic');
  const badVersion = good.slice();
  dv(badVersion).setUint32(4, 99, true);
  expectMalformed(badVersion, /unknown version 99/, 'version');
  const v1 = good.slice();
  dv(v1).setUint32(4, 1, true);
  expectMalformed(v1, /version 1 is not supported/, 'v1');
  const lyingTensors = good.slice();
  dv(lyingTensors).setBigUint64(8, 2n ** 62n, true);
  expectMalformed(lyingTensors, /tensor count .* cannot fit/, 'tensor-count');
  const lyingKv = good.slice();
  dv(lyingKv).setBigUint64(16, 2n ** 40n, true);
  expectMalformed(lyingKv, /metadata count .* cannot fit/, 'kv-count');
  const lyingString = good.slice();
  dv(lyingString).setBigUint64(24, 2n ** 50n, true); // first key length
  expectMalformed(lyingString, /string length .* past the end/, 'string-length');
  const badType = good.slice();
  dv(badType).setUint32(24 + 8 + 'general.architecture'.length, 77, true);
  expectMalformed(badType, /unknown value type 77/, 'value-type');
  expectMalformed(good.subarray(0, good.length - 40), /runs past the end/, 'truncated-data');
  expectMalformed(good.subarray(0, 40), /truncated/, 'truncated-header');

  // Tensor-level lies: rewrite with hand-built headers.
  const t = (name: string, tensors: GgufTensorSpec[]) => {
    const p = join(dir, `${name}-src.gguf`);
    writeGguf(p, { metadata: [], tensors });
    return new Uint8Array(readFileSync(p));
  };
  const unknownType = t('unknown-type', [{ name: 'x', type: GgmlType.F32, dims: [4], data: new Uint8Array(16) }]);
  // tensor info: u64 count(0 kv)..: header 24 bytes, then name(8+1), ndims(4), dim(8), type(4)
  dv(unknownType).setUint32(24 + 9 + 4 + 8, 250, true);
  expectMalformed(unknownType, /unknown type 250/, 'tensor-type');
  const hugeDims = t('huge-dims', [{ name: 'x', type: GgmlType.F32, dims: [4], data: new Uint8Array(16) }]);
  dv(hugeDims).setBigUint64(24 + 9 + 4, 2n ** 52n, true);
  expectMalformed(hugeDims, /more data than the file holds|past the end/, 'tensor-dims');
  const overlap = t('overlap', [
    { name: 'x', type: GgmlType.F32, dims: [16], data: new Uint8Array(64) },
    { name: 'y', type: GgmlType.F32, dims: [16], data: new Uint8Array(64) },
  ]);
  // second tensor's offset: after first record (9+4+8+4+8 = 33 bytes) then name(9)+ndims(4)+dim(8)+type(4)
  dv(overlap).setBigUint64(24 + 33 + 9 + 4 + 8 + 4, 32n, true);
  expectMalformed(overlap, /overlap/, 'tensor-overlap');
  const misaligned = overlap.slice();
  dv(misaligned).setBigUint64(24 + 33 + 9 + 4 + 8 + 4, 65n, true);
  expectMalformed(misaligned, /not aligned/, 'tensor-align');
  const zeroDims = t('zero-dims', [{ name: 'x', type: GgmlType.F32, dims: [4], data: new Uint8Array(16) }]);
  dv(zeroDims).setUint32(24 + 9, 9, true);
  expectMalformed(zeroDims, /9 dimensions/, 'tensor-ndims');
  // A name that swallows the bytes after it: too long for a tensor name (as llama.cpp: under 64 bytes),
  // and where shorter, shown with its control characters escaped, never written raw to a terminal.
  const longName = t('long-name', [{ name: 'x', type: GgmlType.F32, dims: [256], data: new Uint8Array(1024) }]);
  dv(longName).setBigUint64(24, 300n, true);
  expectMalformed(longName, /tensor name #0 is 300 bytes long \(at most 63\)/, 'tensor-name-length');
  const ate = t('ate-bytes', [{ name: 'x', type: GgmlType.F32, dims: [4], data: new Uint8Array(16) }]);
  dv(ate).setBigUint64(24, 9n, true);
  const atePath = join(dir, 'ate.gguf');
  writeFileSync(atePath, ate);
  assert.throws(() => readGguf(atePath), (e) => isCairnError(e, 'GGUF_MALFORMED') && /tensor "x\\u0001\\u0000/.test(e.message) && ![...e.message].some((c) => c.charCodeAt(0) < 0x20 || (c.charCodeAt(0) >= 0x7f && c.charCodeAt(0) <= 0x9f)));
});

test('counts and lengths the file size allows but no model has are refused before they are read', () => {
  // Sparse files: a header, then zeros up to `size` (empty strings, empty u8 arrays, empty names).
  const u32 = (v: number) => Buffer.from(Uint32Array.of(v).buffer);
  const u64 = (v: number) => Buffer.from(BigUint64Array.of(BigInt(v)).buffer);
  const key = Buffer.concat([u64(1), Buffer.from('k')]);
  const cases: [string, Buffer, number, RegExp][] = [
    // More UTF-16 units than a JS string can hold: decoding it threw a plain Error.
    ['long-string', Buffer.concat([u64(0), u64(1), key, u32(GgufValueType.STRING), u64(2 ** 29)]), 2 ** 29 + 64, /a string of 536870912 bytes is longer than/],
    // Empty strings: 8 bytes each in the file, each read and decoded on its own (minutes for a few GB).
    [
      'many-strings',
      Buffer.concat([u64(0), u64(1), key, u32(GgufValueType.ARRAY), u32(GgufValueType.STRING), u64(GGUF_MAX_STRINGS + 1)]),
      8 * (GGUF_MAX_STRINGS + 1) + 64,
      /metadata "k": the header holds more than the 4194304 strings cairn reads/,
    ],
    // Empty arrays in an array: 12 bytes each in the file, an object each in memory (the heap ran out).
    [
      'nested-arrays',
      Buffer.concat([u64(0), u64(1), key, u32(GgufValueType.ARRAY), u32(GgufValueType.ARRAY), u64(GGUF_MAX_NESTED_ARRAYS + 1)]),
      12 * (GGUF_MAX_NESTED_ARRAYS + 1) + 64,
      /metadata "k": the header holds more than the 65536 nested arrays cairn reads/,
    ],
    ['many-tensors', Buffer.concat([u64(GGUF_MAX_ENTRIES + 1), u64(0)]), 32 * (GGUF_MAX_ENTRIES + 1) + 64, /tensor count 65537 is more than the 65536 cairn reads/],
  ];
  for (const [name, header, size, expected] of cases) {
    const path = join(dir, `${name}.gguf`);
    const fd = openSync(path, 'w');
    writeSync(fd, Buffer.concat([u32(GGUF_MAGIC), u32(3), header]));
    ftruncateSync(fd, size);
    closeSync(fd);
    assert.throws(
      () => readGguf(path),
      (e) => isCairnError(e, 'GGUF_MALFORMED') && expected.test(e.message),
      name,
    );
    rmSync(path);
  }
});

test('fuzz: mutated and truncated files either parse or fail with a CairnError', { timeout: 120_000 }, () => {
  const path = join(dir, 'fuzz-src.gguf');
  writeGguf(path, { metadata: everyTypeMetadata(), tensors: smallTensors() });
  const good = new Uint8Array(readFileSync(path));
  const rng = new Prng(1234);
  const target = join(dir, 'fuzz.gguf');
  let parsed = 0;
  let rejected = 0;
  for (let iter = 0; iter < 1500; iter++) {
    const b = good.slice(0, iter % 10 === 0 ? rng.int(good.length) : good.length);
    const edits = 1 + rng.int(4);
    for (let e = 0; e < edits && b.length > 0; e++) {
      const at = rng.int(Math.min(b.length, 700)); // most mutations land in the header
      const kind = rng.int(3);
      if (kind === 0) b[at] = rng.int(256);
      else if (kind === 1) b[at] ^= 1 << rng.int(8);
      else b.fill(0xff, at, Math.min(b.length, at + 1 + rng.int(8)));
    }
    writeFileSync(target, b);
    try {
      readGguf(target);
      parsed++;
    } catch (err) {
      assert.ok(isCairnError(err), `iteration ${iter}: ${String(err)}`);
      assert.ok((err as Error).message.startsWith(target));
      rejected++;
    }
  }
  assert.ok(rejected > 500, `only ${rejected} of 1500 mutations were rejected`);
  assert.ok(parsed > 0);
  // The magic is what it is documented to be.
  assert.equal(new DataView(good.buffer).getUint32(0, true), GGUF_MAGIC);
});
