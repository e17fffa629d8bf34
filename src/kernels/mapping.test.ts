/**
 * File mappings: contents, ranges, errors, files past Node's 4 GiB buffer limit, and the lifetime
 * rule (a view keeps the file mapped after its handle is closed and collected; the file is
 * unmapped once nothing refers to it), checked in a child process run with --expose-gc.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync, ftruncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { randomF32, seededRandom } from '../../test/helpers/kernel-inputs.js';
import { isCairnError } from '../util/errors.js';
import { openMapping, readIntoMemory } from './mapping.js';
import { adviseWillNeed, mapFile } from './native.js';

const dir = mkdtempSync(join(tmpdir(), 'cairn-map-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function randomFile(name: string, size: number): string {
  const path = join(dir, name);
  const bytes = new Uint8Array(randomF32(Math.ceil(size / 4), seededRandom(size)).buffer, 0, size);
  writeFileSync(path, bytes);
  return path;
}

function expectError(fn: () => unknown, code: 'BAD_ARGUMENT' | 'FILE_NOT_FOUND', pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => isCairnError(err, code) && pattern.test((err as Error).message));
}

describe('file mappings', () => {
  const size = 100_003;
  const path = randomFile('data.bin', size);
  const expected = new Uint8Array(readFileSync(path));

  it('mapFile exposes the whole file without copying', () => {
    const m = mapFile(path);
    assert.equal(m.size, size);
    assert.deepEqual(new Uint8Array(m.buffer), expected);
    assert.equal(adviseWillNeed(m.buffer), true);
  });

  it('views of ranges hold the bytes of those ranges', () => {
    const m = openMapping(path);
    assert.equal(m.mapped, true);
    assert.equal(m.size, size);
    for (const [offset, length] of [
      [0, size],
      [1, 5],
      [4097, 1000],
      [size - 1, 1],
      [size, 0],
      [12345, 0],
    ]) {
      assert.deepEqual(m.view(offset, length), expected.subarray(offset, offset + length), `[${offset}, +${length})`);
    }
    const a = m.view(8, 64);
    const b = m.view(8, 64);
    assert.deepEqual(a, b);
    assert.equal(adviseWillNeed(m.view(4096, 8192)), true);
    m.close();
    m.close();
    assert.deepEqual(a, expected.subarray(8, 72), 'views outlive close()');
    expectError(() => m.view(0, 1), 'BAD_ARGUMENT', /mapping was closed/);
  });

  it('falls back to reading the file into memory, with the same views and errors', () => {
    const m = readIntoMemory(path);
    assert.equal(m.mapped, false);
    assert.equal(m.size, size);
    assert.deepEqual(m.view(4097, 1000), expected.subarray(4097, 5097));
    expectError(() => m.view(size, 1), 'BAD_ARGUMENT', /outside/);
    m.close();
    expectError(() => m.view(0, 1), 'BAD_ARGUMENT', /closed/);
    expectError(() => readIntoMemory(join(dir, 'nope.bin')), 'FILE_NOT_FOUND', /nope\.bin/);
    expectError(() => readIntoMemory(dir), 'BAD_ARGUMENT', /is a directory/);
  });

  it('rejects ranges outside the file', () => {
    const m = openMapping(path);
    expectError(() => m.view(size, 1), 'BAD_ARGUMENT', /outside the 100003-byte file/);
    expectError(() => m.view(-1, 1), 'BAD_ARGUMENT', /outside/);
    expectError(() => m.view(0.5, 1), 'BAD_ARGUMENT', /outside/);
    m.close();
  });

  it('names the path when a file cannot be mapped', () => {
    const missing = join(dir, 'missing.gguf');
    expectError(() => openMapping(missing), 'FILE_NOT_FOUND', new RegExp(`'${missing}'.*No such file`));
    expectError(() => mapFile(missing), 'FILE_NOT_FOUND', /missing\.gguf/);
    expectError(() => openMapping(dir), 'BAD_ARGUMENT', /is a directory/);
    const empty = join(dir, 'empty.bin');
    writeFileSync(empty, '');
    expectError(() => openMapping(empty), 'BAD_ARGUMENT', /empty\.bin.*empty/);
  });

  it('maps files past 4 GiB by ranges, and says so when one view would be too large', (t) => {
    const big = join(dir, 'sparse.bin');
    const bigSize = 5 * 2 ** 30 + 7;
    const fd = openSync(big, 'w');
    try {
      ftruncateSync(fd, bigSize);
      writeSync(fd, new Uint8Array([42, 43]), 0, 2, 4.5 * 2 ** 30);
    } catch (err) {
      t.skip(`this filesystem cannot hold a sparse 5 GiB file (${(err as Error).message})`);
      return;
    } finally {
      closeSync(fd);
    }
    const m = openMapping(big);
    assert.equal(m.size, bigSize);
    assert.deepEqual(m.view(4.5 * 2 ** 30 - 1, 4), new Uint8Array([0, 42, 43, 0]));
    assert.equal(m.view(bigSize - 2 ** 30, 2 ** 30).length, 2 ** 30);
    expectError(() => mapFile(big), 'BAD_ARGUMENT', /smaller ranges/);
    m.close();
    rmSync(big);
  });

  it('keeps the file mapped while a view lives, and unmaps it after the last one is collected', () => {
    const file = randomFile('lifetime.bin', 8192 + 17);
    const mappingUrl = new URL('./mapping.js', import.meta.url).href;
    const script = `
      import { openMapping } from ${JSON.stringify(mappingUrl)};
      import { readFileSync } from 'node:fs';
      const file = ${JSON.stringify(file)};
      const isMapped = () => readFileSync('/proc/self/maps', 'utf8').includes(file);
      const collect = async () => { for (let i = 0; i < 10; i++) { globalThis.gc(); await new Promise((r) => setImmediate(r)); } };
      let m = openMapping(file);
      let view = m.view(100, 4096);
      const copy = view.slice();
      m.close();
      m = undefined;
      await collect();
      const junk = []; for (let i = 0; i < 200; i++) junk.push(new Uint8Array(65536).fill(i));
      await collect();
      const intact = view.every((b, i) => b === copy[i]);
      const mappedWithView = isMapped();
      view = undefined;
      await collect();
      console.log(JSON.stringify({ intact, mappedWithView, mappedAfter: isMapped(), junk: junk.length }));
    `;
    const out = execFileSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { encoding: 'utf8' });
    const result = JSON.parse(out.trim().split('\n').pop() ?? '{}') as { intact: boolean; mappedWithView: boolean; mappedAfter: boolean };
    assert.equal(result.intact, true, 'the view still reads the file after its handle was collected');
    if (process.platform === 'linux') {
      assert.equal(result.mappedWithView, true, 'the file stays mapped while a view lives');
      assert.equal(result.mappedAfter, false, 'the file is unmapped once the last view is collected');
    }
  });
});
