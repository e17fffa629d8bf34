/**
 * The expert-batch size a dry build counts equals what the native library allocates, for float and
 * quantized weight types and awkward shapes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GgmlType, ggmlTypeInfo } from '../gguf/ggml-types.js';
import { expertBatchBytes } from './expert-batch-bytes.js';
import { createKernels, isNativeAvailable } from './index.js';

test('expert batch bytes: the native layout', { skip: !isNativeAvailable() && 'needs the native library' }, () => {
  const kernels = createKernels();
  const types = [
    GgmlType.F32,
    GgmlType.F16,
    GgmlType.BF16,
    GgmlType.Q8_0,
    GgmlType.Q4_0,
    GgmlType.Q4_1,
    GgmlType.Q4_K,
    GgmlType.Q6_K,
    GgmlType.MXFP4,
  ];
  for (const type of types) {
    for (const [experts, used, cols, tokens] of [
      [8, 2, 256, 1],
      [128, 8, 2048, 512],
      [64, 6, 1536, 7],
      [32, 4, 2816, 33],
      [3, 3, 512, 2],
    ]) {
      if (cols % ggmlTypeInfo(type)!.blockSize !== 0) continue;
      const b = kernels.createExpertBatch(type, experts, used, cols, tokens) as unknown as { buffer: Uint8Array };
      assert.equal(
        expertBatchBytes(type, experts, used, cols, tokens),
        b.buffer.byteLength,
        `${GgmlType[type]} ${experts}/${used}/${cols}/${tokens}`,
      );
    }
  }
});
