/**
 * A load faults in the memory a first step would (the activation buffers, and a KV cache on huge
 * pages, whose first positions touch most of its pages), so that the first request does not wait
 * on fresh pages; `prefetch: false` leaves it to the first step, and a cache on small pages is left
 * to fault in as it fills. The model is tiny and its context long, so the cache is nearly all of
 * what the load adds.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { GgmlType } from '../gguf/ggml-types.js';
import { hugePagesForTheAsking } from '../kernels/huge-pages.js';
import { isNativeAvailable, residentBytes } from '../kernels/index.js';
import { writeSyntheticModel } from '../model/synthetic.js';
import { loadShards } from './load.js';

const dir = mkdtempSync(join(tmpdir(), 'cairn-load-memory-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const MIB = 2 ** 20;

describe(
  'memory a load faults in',
  { skip: (process.platform !== 'linux' || !isNativeAvailable()) && 'needs Linux and the native library' },
  () => {
    const path = join(dir, 'long-context.gguf');
    // 2 layers x (keys + values) x 2 KV heads x 64 x f16 = 1 KiB a position: 96 MiB at 96k positions.
    writeSyntheticModel(
      path,
      { arch: 'llama', nEmbd: 256, nLayer: 2, nHead: 4, nKvHead: 2, nFf: 512, nVocab: 300, ctx: 98304, quant: GgmlType.F32, seed: 3 },
      () => {
        throw new Error('F32 needs no quantizer');
      },
    );

    it(
      'the KV cache on huge pages and the activations are resident after a load, not with prefetch off',
      { skip: !hugePagesForTheAsking() && 'this OS gives no huge pages for the asking' },
      async () => {
        const lazyBefore = residentBytes();
        const lazy = await loadShards(path, { threads: 1, ctx: 98304, progress: false, prefetch: false });
        const lazyGrowth = residentBytes() - lazyBefore;
        assert.equal(lazy.kvBytes, 96 * MIB);
        lazy.close();

        const before = residentBytes();
        const eager = await loadShards(path, { threads: 1, ctx: 98304, progress: false });
        const growth = residentBytes() - before;
        assert.ok(
          growth >= lazyGrowth + 0.9 * eager.kvBytes,
          `a load grew the resident set by ${growth / MIB} MiB (${lazyGrowth / MIB} MiB with prefetch off)`,
        );
        // Faulting in changes no byte: the cache is still zero.
        let regions = 0;
        for (const region of eager.shards[0].firstTouchMemory()) {
          const bytes = new Uint8Array(region.buffer, region.byteOffset, region.byteLength);
          for (let i = 0; i < bytes.length; i += 4093) assert.equal(bytes[i], 0);
          regions++;
        }
        assert.ok(regions > 4, `${regions} regions`);
        eager.close();
      },
    );

    it('a cache on small pages is left to fault in as it fills', async () => {
      process.env.CAIRN_LARGE_PAGES = '0';
      try {
        const before = residentBytes();
        const loaded = await loadShards(path, { threads: 1, ctx: 98304, progress: false });
        const growth = residentBytes() - before;
        assert.ok(growth < 0.5 * loaded.kvBytes, `a load grew the resident set by ${growth / MIB} MiB`);
        assert.equal([...loaded.shards[0].kv.allocatedStorage()].length, 0);
        loaded.close();
      } finally {
        delete process.env.CAIRN_LARGE_PAGES;
      }
    });
  },
);
