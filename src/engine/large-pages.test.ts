/**
 * Weights on huge pages: dropping pages of a mapping loses no byte, the huge-page count of a
 * mapping is read on Linux, and preferLargePages either leaves the weights on huge pages (then the
 * count says so) or reports why not; it never changes what the mapping reads.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { adviseWillNeed, isNativeAvailable, openMapping, type FileMapping } from '../kernels/index.js';
import { transparentHugePages } from '../kernels/huge-pages.js';
import { preferLargePages } from './large-pages.js';

const dir = mkdtempSync(join(tmpdir(), 'cairn-large-pages-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const MIB = 1 << 20;

/** A file of `size` bytes whose every 4-byte word is its own index (so any misplaced page shows). */
function countingFile(name: string, size: number): string {
  const words = new Uint32Array(size / 4);
  for (let i = 0; i < words.length; i++) words[i] = i;
  const path = join(dir, name);
  writeFileSync(path, new Uint8Array(words.buffer));
  return path;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));
}

describe('huge pages for weights', { skip: !isNativeAvailable() && 'needs the native library' }, () => {
  const size = 80 * MIB;
  const path = countingFile('weights.bin', size);
  const expected = new Uint8Array(readFileSync(path));

  it('a dropped range reads the same bytes again', () => {
    const m = openMapping(path);
    const whole = m.view(0, size);
    adviseWillNeed(whole, true);
    assert.equal(m.dropPages(3 * MIB + 17, 5 * MIB), true);
    assert.ok(sameBytes(whole, expected));
    assert.equal(m.dropPages(0, size), true);
    assert.ok(sameBytes(m.view(7 * MIB, 9 * MIB), expected.subarray(7 * MIB, 16 * MIB)));
    assert.throws(() => m.dropPages(size - 1, 2), /outside/);
    m.close();
  });

  it('counts the bytes mapped with huge pages on Linux', { skip: process.platform !== 'linux' && 'Linux only' }, () => {
    const m = openMapping(path);
    adviseWillNeed(m.view(0, size), true);
    const large = m.largePageBytes();
    assert.equal(typeof large, 'number');
    assert.ok(large! >= 0 && large! <= size, `${large} bytes of ${size}`);
    m.close();
    assert.equal(m.largePageBytes(), undefined, 'a closed mapping has nothing to count');
  });

  it('puts the weights on huge pages where the OS can, and says so otherwise', async () => {
    const m = openMapping(path);
    const whole = m.view(0, size);
    const reread = async () => void adviseWillNeed(whole, true);
    await reread();
    let rereads = 0;
    const outcome = await preferLargePages(m, size, { offset: MIB, length: size - 2 * MIB }, async () => {
      rereads++;
      await reread();
    });
    const mode = transparentHugePages();
    if (process.platform !== 'linux' || (mode !== 'always' && mode !== 'madvise')) assert.equal(outcome, 'off');
    else assert.ok(['large', 'moved', 'unsupported'].includes(outcome), outcome);
    assert.equal(rereads, outcome === 'moved' ? 1 : 0);
    if (outcome === 'large' || outcome === 'moved') {
      assert.ok(m.largePageBytes()! >= size / 2, `${m.largePageBytes()} of ${size} bytes on huge pages`);
      // Another load of the same file finds it on huge pages and reads nothing again.
      const again = openMapping(path);
      adviseWillNeed(again.view(0, size), true);
      assert.equal(await preferLargePages(again, size, undefined, () => Promise.reject(new Error('read again'))), 'large');
      again.close();
    }
    assert.ok(sameBytes(whole, expected), 'the bytes are those of the file');
    m.close();
  });

  it('moves a file again when more than a tenth of it sits on small pages', async (t) => {
    const mode = transparentHugePages();
    if (mode !== 'always' && mode !== 'madvise') return t.skip('the OS offers no transparent huge pages');
    // A mapping that counts its huge pages as the OS would for a file read partly through read():
    // readahead brings that part back on pages too small to map whole (not reproducible on demand
    // with a real file, so the count is played here).
    const size = 1024 * MIB;
    let large = 0.8 * size;
    const drops: Array<[number, number]> = [];
    const fake: FileMapping = {
      path: 'weights.bin',
      size,
      mapped: true,
      view: (_offset, length) => {
        if (length === 8 * MIB) large += length; // the probe's read comes back on huge pages
        return new Uint8Array(MIB);
      },
      largePageBytes: () => large,
      releasePages: () => false,
      dropPages: (offset, length) => {
        drops.push([offset, length]);
        large = Math.max(0, large - length);
        return true;
      },
      close: () => {},
    };
    let rereads = 0;
    const outcome = await preferLargePages(fake, size, { offset: 0, length: size }, async () => {
      rereads++;
      large = size;
    });
    assert.equal(outcome, 'moved', '80% on huge pages is not enough');
    assert.equal(rereads, 1);
    assert.deepEqual(drops.at(-1), [0, size], 'the whole file is dropped before the reread');
    assert.equal(await preferLargePages(fake, size, undefined, () => Promise.reject(new Error('read again'))), 'large');
  });

  it('is not tried when turned off, for small weights, or without a mapping', async () => {
    const m = openMapping(path);
    const never = () => Promise.reject(new Error('read again'));
    process.env.CAIRN_LARGE_PAGES = '0';
    try {
      assert.equal(await preferLargePages(m, size, undefined, never), 'off');
    } finally {
      delete process.env.CAIRN_LARGE_PAGES;
    }
    assert.equal(await preferLargePages(m, 4 * MIB, undefined, never), 'off');
    m.close();
  });
});
