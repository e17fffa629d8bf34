import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GgmlType } from '../../../gguf/ggml-types.js';
import { quantizeActivationQ8_0, quantizeActivationQ8_1, quantizeQ8_K } from './activation-quants.js';
import { refDequantize, refMatmul, refQuantize } from './index.js';
import { LLAMA_K_WEIGHTS, LLAMA_QUANT_CPU, LLAMA_QUANT_REF, LLAMA_VEC_DOT, LLAMA_VECTOR_LENGTH, llamaVectorInput } from './llama-vectors.js';

const N = LLAMA_VECTOR_LENGTH;
const hex = (u: Uint8Array): string => Buffer.from(u).toString('hex');
const fromHex = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'));
const TYPES: Record<string, GgmlType> = {
  F32: GgmlType.F32,
  F16: GgmlType.F16,
  BF16: GgmlType.BF16,
  Q4_0: GgmlType.Q4_0,
  Q4_1: GgmlType.Q4_1,
  Q5_0: GgmlType.Q5_0,
  Q5_1: GgmlType.Q5_1,
  Q8_0: GgmlType.Q8_0,
  Q8_1: GgmlType.Q8_1,
  Q4_K: GgmlType.Q4_K,
  Q5_K: GgmlType.Q5_K,
  Q6_K: GgmlType.Q6_K,
  Q8_K: GgmlType.Q8_K,
  MXFP4: GgmlType.MXFP4,
};

test('reference quantizers reproduce llama.cpp byte for byte', () => {
  const x = llamaVectorInput(1);
  for (const [name, expected] of Object.entries(LLAMA_QUANT_REF)) {
    const out = new Uint8Array(expected.length / 2);
    refQuantize(TYPES[name], x, out, N);
    assert.equal(hex(out), expected, name);
  }
});

test('activation quantizers reproduce llama.cpp CPU backend byte for byte', () => {
  const a = llamaVectorInput(2);
  const encoders = { Q8_0: [quantizeActivationQ8_0, 32, 34], Q8_1: [quantizeActivationQ8_1, 32, 36], Q8_K: [quantizeQ8_K, 256, 292] } as const;
  for (const [name, [encode, size, bytes]] of Object.entries(encoders)) {
    const out = new Uint8Array((N / size) * bytes);
    for (let b = 0; b < N / size; b++) encode(a, b * size, out, b * bytes);
    assert.equal(hex(out), LLAMA_QUANT_CPU[name], name);
  }
});

test('dot products equal llama.cpp up to float summation order', () => {
  const x = llamaVectorInput(1);
  const a = llamaVectorInput(2);
  for (const [name, expected] of Object.entries(LLAMA_VEC_DOT)) {
    const type = TYPES[name];
    let w: Uint8Array;
    if (name === 'F32') w = new Uint8Array(x.buffer.slice(0));
    else if (LLAMA_K_WEIGHTS[name]) w = fromHex(LLAMA_K_WEIGHTS[name]);
    else w = fromHex(LLAMA_QUANT_REF[name]);
    const y = new Float32Array(1);
    refMatmul(w, type, 1, N, a, 1, y);
    // Scale of the terms being summed, to bound reordering error.
    const deq = new Float32Array(N);
    refDequantize(type, w, deq, N);
    let magnitude = 0;
    for (let i = 0; i < N; i++) magnitude += Math.abs(deq[i] * a[i]);
    assert.ok(Math.abs(y[0] - expected) <= magnitude * 1e-6, `${name}: ${y[0]} vs llama.cpp ${expected}`);
  }
});
