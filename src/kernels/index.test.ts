/** Choosing a kernel implementation, and the reference kernels' argument checks. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isCairnError } from '../util/errors.js';
import { createKernels, ReferenceKernels, residentBytes } from './index.js';

describe('createKernels', () => {
  it('returns the native kernels by default and the reference twins on request', () => {
    assert.match(createKernels().name, /^native-(scalar|avx2|avx512|amx|neon)$/);
    const ref = createKernels({ backend: 'reference', threads: 3 });
    assert.ok(ref instanceof ReferenceKernels);
    assert.equal(ref.name, 'reference');
  });

  it('rejects an unknown backend', () => {
    assert.throws(
      () => createKernels({ backend: 'gpu' as never }),
      (e: unknown) => isCairnError(e, 'BAD_ARGUMENT') && /unknown kernel backend 'gpu'/.test((e as Error).message),
    );
  });

  it('reads the resident memory', () => {
    assert.ok(residentBytes() > 0);
  });
});

describe('reference kernels check their arguments like the native ones', () => {
  const ref = new ReferenceKernels();
  const x = new Float32Array(8);
  const bad = (fn: () => void, pattern: RegExp): void => {
    assert.throws(fn, (e: unknown) => isCairnError(e, 'BAD_ARGUMENT') && pattern.test((e as Error).message));
  };

  it('names short arrays and bad parameters', () => {
    bad(() => ref.rmsNorm(x, x, 3, 4, 1e-5, x), /x is too short/);
    bad(() => ref.softmax(x, 1, 0), /cols must be an integer >= 1/);
    bad(() => ref.add(x, x, 9, x), /a is too short/);
    bad(() => ref.rope(x, 1, 1, 8, new Int32Array(1), { nRot: 6, freqBase: 1e4, freqScale: 1, mode: 'sideways' as never }), /mode/);
    bad(
      () => ref.rope(x, 1, 1, 8, new Int32Array(1), { nRot: 10, freqBase: 1e4, freqScale: 1, mode: 'neox' }),
      /nRot must be even and at most headDim/,
    );
    bad(() => ref.storeKv(x, x, new Uint8Array(8), new Uint8Array(64), 0, 4, 0, 2, 1), /kCache is too short/);
    bad(() => ref.storeKv(x, x, new Uint8Array(64), new Uint8Array(64), 0, 4, 0, 2, 3), /multiple of nKvHead/);
    const p = { nTokens: 1, nHead: 3, nKvHead: 2, headDim: 2, pos0: 0, scale: 1, kvType: 0 as const };
    bad(() => ref.attention(x, new Uint8Array(64), new Uint8Array(64), p, x), /multiple of params.nKvHead/);
    bad(() => ref.setThreads(0), /threads must be an integer >= 1/);
  });
});
