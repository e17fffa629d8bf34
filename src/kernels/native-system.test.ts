/**
 * The native library's machine-facing side: CPU report, ISA forcing, the thread pool (same
 * results for any thread count, workers started and stopped, asleep when idle) and memory readout.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, describe, it } from 'node:test';
import { randomF32, seededRandom } from '../../test/helpers/kernel-inputs.js';
import { faultsTouching } from '../../test/helpers/page-faults.js';
import { hugePagesForTheAsking, transparentHugePages } from './huge-pages.js';
import { isCairnError } from '../util/errors.js';
import type { AttentionParams } from './api.js';
import { createKernels, residentBytes } from './index.js';
import { refStoreKv } from './reference/ops.js';
import { cpuInfo, forceIsa, NativeKernels, populateWrite, readBandwidth, restKernelThreads } from './native.js';

const kernels = new NativeKernels();
const initialThreads = cpuInfo().threads;
after(() => kernels.setThreads(initialThreads));

/** States (R, S, ...) of this process's pool workers, from /proc. */
function workerStates(): string[] {
  const states: string[] = [];
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      if (name === 'cairn-worker') states.push(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0]);
    } catch {
      // the thread exited while we listed them
    }
  }
  return states;
}

/** Runs every float kernel on inputs big enough to be split over the pool; returns all outputs. */
function runAll(seed: number): Float32Array[] {
  const rand = seededRandom(seed);
  const outs: Float32Array[] = [];
  const n = 200_003;
  const gate = randomF32(n, rand, 12);
  const up = randomF32(n, rand);
  for (const op of ['swiglu', 'geglu', 'add'] as const) {
    const out = new Float32Array(n);
    kernels[op](gate, up, n, out);
    outs.push(out);
  }
  const rows = 64;
  const dim = 4096;
  const x = randomF32(rows * dim, rand, 4);
  const normed = new Float32Array(rows * dim);
  kernels.rmsNorm(x, randomF32(dim, rand), rows, dim, 1e-6, normed);
  outs.push(normed);
  const soft = x.slice();
  kernels.softmax(soft, rows, dim);
  outs.push(soft);
  const roped = randomF32(7 * 32 * 128, rand);
  kernels.rope(roped, 7, 32, 128, Int32Array.from([9, 10, 11, 12, 13, 14, 15]), { nRot: 128, freqBase: 10000, freqScale: 1, mode: 'neox' });
  outs.push(roped);
  const p: AttentionParams = { nTokens: 7, nHead: 8, nKvHead: 2, headDim: 64, pos0: 500, scale: 0.125, kvType: 1 };
  const row = p.nKvHead * p.headDim;
  const ctx = p.pos0 + p.nTokens;
  const kCache = new Uint8Array(ctx * row * 2);
  const vCache = new Uint8Array(ctx * row * 2);
  refStoreKv(randomF32(ctx * row, rand), randomF32(ctx * row, rand), kCache, vCache, 1, row, 0, ctx, p.nKvHead);
  const attn = new Float32Array(p.nTokens * p.nHead * p.headDim);
  kernels.attention(randomF32(attn.length, rand), kCache, vCache, p, attn);
  outs.push(attn);
  // One decode token: with threads, each takes chunks of the cache (states merged in a second pass).
  const one = new Float32Array(p.nHead * p.headDim);
  kernels.attention(randomF32(one.length, rand), kCache, vCache, { ...p, nTokens: 1, pos0: ctx - 1 }, one);
  outs.push(one);
  return outs;
}

describe('cpu report and ISA choice', () => {
  it('reports a sane machine', () => {
    const info = cpuInfo();
    assert.ok(info.physicalCores >= 1);
    assert.ok(info.threads >= 1);
    assert.ok(info.availableIsas.includes('scalar'));
    assert.equal(info.availableIsas.at(-1), info.detectedIsa, 'the detected level is the best available one');
    assert.ok(info.availableIsas.includes(info.isa));
    assert.ok(info.features.every((f) => typeof f === 'string' && f.length > 0));
    if (['avx2', 'avx512', 'amx'].includes(info.detectedIsa)) {
      for (const f of ['avx2', 'fma', 'f16c']) assert.ok(info.features.includes(f), `${f} reported with ${info.detectedIsa}`);
    }
    if (['avx512', 'amx'].includes(info.detectedIsa)) {
      for (const f of ['avx512f', 'avx512bw', 'avx512vl', 'avx512vnni', 'avx512bf16']) assert.ok(info.features.includes(f), f);
    }
    // AMX is a level of its own above AVX-512 (its tile products take the batches, and every F16
    // product on the bf16 tiles), only where the OS granted the tile state.
    assert.equal(info.features.includes('amx-int8'), info.detectedIsa === 'amx');
    assert.equal(info.features.includes('amx-bf16'), info.detectedIsa === 'amx');
    if (info.detectedIsa === 'amx') assert.ok(info.availableIsas.includes('avx512'));
  });

  it('forces each available ISA and goes back to the detected one', () => {
    const { availableIsas, detectedIsa } = cpuInfo();
    for (const isa of availableIsas) {
      forceIsa(isa);
      assert.equal(cpuInfo().isa, isa);
      assert.equal(cpuInfo().detectedIsa, detectedIsa);
    }
    forceIsa(null);
    assert.equal(cpuInfo().isa, detectedIsa);
  });

  it('takes a starting level from CAIRN_ISA and ignores one it cannot run', () => {
    const nativeUrl = new URL('./native.js', import.meta.url).href;
    const script = `import { cpuInfo } from ${JSON.stringify(nativeUrl)}; console.log(cpuInfo().isa);`;
    const run = (isa: string): { stdout: string; stderr: string } => {
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
        env: { ...process.env, CAIRN_ISA: isa },
        encoding: 'utf8',
      });
      return { stdout: r.stdout.trim(), stderr: r.stderr };
    };
    assert.equal(run('scalar').stdout, 'scalar');
    const bogus = run('sse9');
    assert.equal(bogus.stdout, cpuInfo().detectedIsa);
    assert.match(bogus.stderr, /ignoring CAIRN_ISA=sse9/);
  });

  it('refuses unknown ISAs and ISAs this CPU lacks', () => {
    assert.throws(
      () => forceIsa('sse9'),
      (e: unknown) => isCairnError(e, 'BAD_ARGUMENT') && /unknown ISA 'sse9'/.test((e as Error).message),
    );
    const foreign = ['avx2', 'avx512', 'neon'].find((isa) => !cpuInfo().availableIsas.includes(isa));
    if (foreign) {
      assert.throws(
        () => forceIsa(foreign),
        (e: unknown) => isCairnError(e, 'BAD_ARGUMENT') && /cannot run/.test((e as Error).message),
      );
    }
    assert.equal(cpuInfo().isa, cpuInfo().detectedIsa);
  });
});

describe('thread pool', () => {
  it('gives bit-identical results with 1, 2 and 3 threads', () => {
    kernels.setThreads(1);
    const one = runAll(21);
    for (const n of [2, 3]) {
      kernels.setThreads(n);
      assert.equal(cpuInfo().threads, n);
      const many = runAll(21);
      many.forEach((out, i) => assert.deepEqual(out, one[i], `output ${i} with ${n} threads`));
    }
  });

  it('survives many small dispatches in a row', () => {
    kernels.setThreads(2);
    const n = 70_000; // just above the size that wakes a second thread
    const a = randomF32(n, seededRandom(5));
    const out = new Float32Array(n);
    for (let i = 0; i < 3000; i++) kernels.add(a, a, n, out);
    assert.equal(out[n - 1], a[n - 1] * 2);
  });

  it('starts threads - 1 workers, which sleep once idle', { skip: process.platform !== 'linux' }, async () => {
    kernels.setThreads(3);
    runAll(3);
    assert.equal(workerStates().length, 2);
    await sleep(300); // far past the workers' spin window (about 0.1 ms)
    assert.deepEqual(workerStates(), ['S', 'S']);
    kernels.setThreads(1);
    assert.equal(workerStates().length, 0);
  });

  it('keeps results exact when told to rest between dispatches', () => {
    kernels.setThreads(3);
    const before = runAll(8);
    for (let i = 0; i < 50; i++) restKernelThreads();
    const rested = runAll(8);
    rested.forEach((out, i) => assert.deepEqual(out, before[i], `output ${i} after rest`));
    const n = 70_000;
    const a = randomF32(n, seededRandom(6));
    const out = new Float32Array(n);
    for (let i = 0; i < 500; i++) {
      kernels.add(a, a, n, out);
      restKernelThreads(); // workers drop out of their spin and must wake for the next job
    }
    assert.equal(out[n - 1], a[n - 1] * 2);
  });

  it('rejects thread counts out of range', () => {
    for (const bad of [0, -1, 1.5, 257]) {
      assert.throws(
        () => kernels.setThreads(bad),
        (e: unknown) => isCairnError(e, 'BAD_ARGUMENT'),
      );
    }
  });

  it('createKernels applies the threads option', () => {
    const k = createKernels({ threads: 2 });
    assert.match(k.name, /^native-/);
    assert.equal(cpuInfo().threads, 2);
  });
});

describe('resident memory', () => {
  it('reports the resident set and sees it grow', { skip: process.platform !== 'linux' }, () => {
    const before = residentBytes();
    assert.ok(before > 1 << 20, `rss ${before}`);
    const block = new Uint8Array(64 << 20).fill(1); // touch every page
    const grown = residentBytes();
    assert.ok(grown - before >= 32 << 20, `rss grew by ${grown - before} bytes after touching 64 MiB`);
    assert.equal(block[block.length - 1], 1);
  });
});

describe('faulting writable memory in (a KV cache at load)', () => {
  it('faults a fresh buffer in without changing a byte, a view only its own pages', { skip: process.platform !== 'linux' }, (t) => {
    const fresh = new ArrayBuffer(64 << 20);
    if (!populateWrite(fresh)) {
      t.skip('this kernel cannot fault memory in ahead (MADV_POPULATE_WRITE is Linux 5.14+)');
      return;
    }
    const untouched = new Uint8Array(new ArrayBuffer(64 << 20));
    const populatedFaults = faultsTouching([new Uint8Array(fresh)]);
    const freshFaults = faultsTouching([untouched]);
    assert.ok(freshFaults >= 32 && populatedFaults * 8 < freshFaults, `touching faulted ${populatedFaults} times after populateWrite, ${freshFaults} without`);
    assert.ok(new Uint8Array(fresh).every((b) => b === 0));
    const marked = new Uint32Array(1 << 20).map((_, i) => i * 2654435761);
    const view = marked.subarray(1000, 300000);
    assert.equal(populateWrite(view), true);
    assert.equal(populateWrite(new DataView(marked.buffer, 8, 4096)), true);
    assert.ok(marked.every((x, i) => x === (i * 2654435761) >>> 0));
  });

  it('refuses what is not memory', () => {
    for (const bad of [undefined, 42, 'bytes', {}]) {
      assert.throws(() => populateWrite(bad as unknown as ArrayBuffer), (e: unknown) => isCairnError(e, 'BAD_ARGUMENT'), String(bad));
    }
  });
});

describe('memory read bandwidth (the decode limit cairn bench reports)', () => {
  it('measures a finite rate, frees its buffer, and refuses sizes it cannot measure', () => {
    const before = residentBytes();
    for (let i = 0; i < 3; i++) {
      const rate = readBandwidth(128 << 20, 2);
      assert.ok(Number.isFinite(rate) && rate > 0, `rate ${rate}`);
    }
    // Three 128 MiB buffers, each touched whole: kept, they would show in the resident set.
    assert.ok(residentBytes() - before < 64 << 20, `rss grew by ${residentBytes() - before} bytes`);
    for (const [bytes, runs] of [[100, 1], [128 << 20, 0], [2 ** 37, 1], [Number.NaN, 1]]) {
      assert.throws(() => readBandwidth(bytes, runs), (e: unknown) => isCairnError(e, 'BAD_ARGUMENT'), `${bytes} bytes, ${runs} runs`);
    }
  });
});

/** Kilobytes of this process's anonymous memory on transparent huge pages. */
function anonHugeKib(): number {
  return Number(/AnonHugePages:\s+(\d+)/.exec(readFileSync('/proc/self/smaps_rollup', 'utf8'))?.[1] ?? 0);
}

describe('large zeroed memory (a KV cache arena)', () => {
  it('hands out zeroed, writable memory of exactly the size asked, from 8 MiB up, where the OS gives huge pages', () => {
    const bytes = 24 * 2 ** 20 + 12345;
    const ab = kernels.allocateZeroed(bytes);
    if (!hugePagesForTheAsking()) {
      assert.equal(ab, undefined, 'without huge pages an ordinary buffer serves');
      return;
    }
    assert.ok(ab instanceof ArrayBuffer);
    assert.equal(ab.byteLength, bytes);
    const view = new Uint8Array(ab);
    assert.ok(view.every((b) => b === 0));
    view.fill(0xa5);
    assert.equal(view[0], 0xa5);
    assert.equal(view[bytes - 1], 0xa5);
  });

  it('declines sizes where ordinary memory serves (small, not a size, or turned off); one no machine holds is a RangeError', () => {
    assert.equal(kernels.allocateZeroed(2 ** 20), undefined);
    assert.equal(kernels.allocateZeroed(Number.NaN), undefined);
    if (hugePagesForTheAsking()) assert.throws(() => kernels.allocateZeroed(2 ** 52), RangeError);
    process.env.CAIRN_LARGE_PAGES = '0';
    try {
      assert.equal(kernels.allocateZeroed(16 * 2 ** 20), undefined);
    } finally {
      delete process.env.CAIRN_LARGE_PAGES;
    }
  });

  it('puts the memory on huge pages where the OS offers them for the asking', (t) => {
    if (!hugePagesForTheAsking()) {
      t.skip(`transparent huge pages are '${transparentHugePages() ?? 'absent'}' here, so none are asked for`);
      return;
    }
    const before = anonHugeKib();
    const ab = kernels.allocateZeroed(32 * 2 ** 20);
    assert.ok(ab);
    new Uint8Array(ab).fill(1);
    const gained = anonHugeKib() - before;
    assert.ok(gained >= 2048, `anonymous huge pages grew by ${gained} KiB after touching 32 MiB`);
  });
});
