import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GgmlType } from '../gguf/ggml-types.js';
import type { DecoderShard } from '../model/decoder.js';
import type { KvSnapshot } from '../model/kv-cache.js';
import { isCairnError } from '../util/errors.js';
import { packMessage, packParts } from '../util/message-framing.js';
import { LocalRunner } from './runner.js';

/** A shard whose KV cache hands out fixed layer bytes, records what is restored and the arenas it gave. */
function fakeShard(layers: Uint8Array[], restored: KvSnapshot[], arenas: ArrayBuffer[] = []): DecoderShard {
  const kv = {
    slots: 2,
    ctxPerSlot: 64,
    snapshot: (_slot: number, n: number): KvSnapshot => ({ type: GgmlType.F16, tokens: n, layers: layers.map((l) => l.slice()), layout: 'heads' }),
    restore: (s: KvSnapshot) => void restored.push(s),
    copyArena: (bytes: number) => arenas[arenas.push(new ArrayBuffer(bytes)) - 1],
  };
  return { cfg: { nVocab: 10 }, maxBatch: 8, kv } as unknown as DecoderShard;
}

test('a saved prefix exported as bytes imports back into the same layers', async () => {
  const restored: KvSnapshot[] = [];
  const arenas: ArrayBuffer[] = [];
  const shards = [fakeShard([Uint8Array.of(1, 2, 3), Uint8Array.of()], restored, arenas), fakeShard([Uint8Array.of(9)], restored)];
  const runner = new LocalRunner(shards);
  assert.equal(await runner.saveSlot(0, 5, 1), 4);
  const bytes = await runner.exportSaved(1);
  const other = new LocalRunner(shards);
  assert.equal(await other.importSaved(7, bytes), 4);
  bytes.fill(0); // the import holds copies, in one arena from the first shard's cache
  assert.equal(arenas.length, 1);
  await other.loadSlot(7, 1);
  assert.deepEqual(
    restored.map((s) => ({ type: s.type, tokens: s.tokens, layers: s.layers.map((l) => [...l]), layout: s.layout })),
    [
      { type: GgmlType.F16, tokens: 5, layers: [[1, 2, 3], []], layout: 'heads' },
      { type: GgmlType.F16, tokens: 5, layers: [[9]], layout: 'heads' },
    ],
  );
});

test('a saved prefix from a version that did not name its layout imports as rows (every head of a position side by side)', async () => {
  const restored: KvSnapshot[] = [];
  const runner = new LocalRunner([fakeShard([Uint8Array.of(1)], restored)]);
  await runner.importSaved(3, packMessage({ shards: [{ type: GgmlType.F16, tokens: 1, layers: 1 }] }, Uint8Array.of(4, 5)));
  await runner.loadSlot(3, 0);
  assert.equal(restored[0].layout, 'rows');
  assert.deepEqual([...restored[0].layers[0]], [4, 5]);
});

test('bytes that are not a saved prefix of this layout are refused with BAD_ARGUMENT', async () => {
  const runner = new LocalRunner([fakeShard([Uint8Array.of(1)], [])]);
  await runner.saveSlot(0, 1, 1);
  const good = await runner.exportSaved(1);
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ['empty', new Uint8Array(0), /too short/],
    ['truncated', good.subarray(0, good.length - 1), /part 1 claims 1 bytes, 0 are left/],
    ['head not JSON', packParts([Buffer.from('{')]), /not JSON/],
    ['head without shards', packMessage({ layers: 1 }, Uint8Array.of(1)), /does not describe the shards/],
    ['negative tokens', packMessage({ shards: [{ type: 1, tokens: -1, layers: 1 }] }, Uint8Array.of(1)), /does not describe the shards/],
    ['unknown layout', packMessage({ shards: [{ type: 1, tokens: 1, layers: 1, layout: 'columns' }] }, Uint8Array.of(1)), /does not describe the shards/],
    [
      'fewer layers than named',
      packMessage({ shards: [{ type: 1, tokens: 1, layers: 2 }] }, Uint8Array.of(1)),
      /1 layers where its head names 2/,
    ],
    ['another layout', packMessage({ shards: [] }), /another layout/],
  ];
  for (const [name, bytes, pattern] of cases) {
    await assert.rejects(runner.importSaved(2, bytes), (e) => isCairnError(e, 'BAD_ARGUMENT') && pattern.test(e.message), name);
  }
});
