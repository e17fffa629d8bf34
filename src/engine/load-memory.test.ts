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
import { isNativeAvailable, populateWrite } from '../kernels/index.js';
import { hugePagesForTheAsking, transparentHugePages } from '../kernels/huge-pages.js';
import { freeMemoryBytes } from '../util/free-memory.js';
import { faultsTouching } from '../../test/helpers/page-faults.js';
import { writeSyntheticFile } from '../../test/helpers/synthetic-file.js';
import type { DecoderShard } from '../model/decoder.js';
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
    writeSyntheticFile(path, { arch: 'llama', nEmbd: 256, nLayer: 2, nHead: 4, nKvHead: 2, nFf: 512, nVocab: 300, ctx: 98304, quant: GgmlType.F32, seed: 3 });

    it('the KV cache on huge pages and the activations are faulted in by a load, not with prefetch off', async (t) => {
      // A load faults nothing in where any of these holds; the test says which, rather than fail.
      if (!hugePagesForTheAsking()) return t.skip('this OS gives no huge pages for the asking');
      if (!populateWrite(new ArrayBuffer(4096)))
        return t.skip('this kernel cannot fault memory in ahead (MADV_POPULATE_WRITE is Linux 5.14+)');
      if (freeMemoryBytes() < 512 * MIB) return t.skip('less than 512 MiB of memory is free here');
      /** Faults a first step would take: in the cache (on huge pages), then in the activations. */
      const firstStepFaults = (shard: DecoderShard) => ({
        kv: faultsTouching(shard.kv.allocatedStorage()),
        activations: faultsTouching(shard.firstTouchMemory()),
      });
      const lazy = await loadShards(path, { threads: 1, ctx: 98304, progress: false, prefetch: false });
      assert.equal(lazy.kvBytes, 96 * MIB);
      const lazyFaults = firstStepFaults(lazy.shards[0]);
      lazy.close();

      const eager = await loadShards(path, { threads: 1, ctx: 98304, progress: false });
      const regions = [...eager.shards[0].firstTouchMemory()];
      assert.ok(regions.length > 4, `${regions.length} regions`);
      const eagerFaults = firstStepFaults(eager.shards[0]);
      // Faulting in changed no byte: the cache and activations are still zero (counted first: reading
      // a page faults it in too).
      for (const r of regions) {
        const bytes = new Uint8Array(r.buffer, r.byteOffset, r.byteLength);
        for (let i = 0; i < bytes.length; i += 4093) assert.equal(bytes[i], 0);
      }
      // 96 MiB of cache is 48 huge pages; the activations are on small pages.
      const told = `a first step faulted ${JSON.stringify(eagerFaults)} times after a load, ${JSON.stringify(lazyFaults)} with prefetch off`;
      assert.ok(lazyFaults.kv >= 48 && eagerFaults.kv * 8 < lazyFaults.kv, told);
      assert.ok(lazyFaults.activations >= 100 && eagerFaults.activations * 8 < lazyFaults.activations, told);
      eager.close();
    });

    it('a cache on small pages is left to fault in as it fills', async () => {
      process.env.CAIRN_LARGE_PAGES = '0';
      try {
        const loaded = await loadShards(path, { threads: 1, ctx: 98304, progress: false });
        const kv = loaded.shards[0].kv;
        assert.equal([...kv.allocatedStorage()].length, 0);
        const storage = Array.from({ length: kv.rows.length }, (_, i) => [kv.keys(i, 0), kv.values(i, 0)]).flat();
        const faults = faultsTouching(storage);
        // Where every buffer gets huge pages unasked ('always'), a fault takes in 2 MiB.
        const page = transparentHugePages() === 'always' ? 2 * MIB : 4096;
        assert.ok(faults >= 0.5 * (loaded.kvBytes / page), `touching the cache faulted ${faults} times`);
        loaded.close();
      } finally {
        delete process.env.CAIRN_LARGE_PAGES;
      }
    });
  },
);
