/**
 * Log-probabilities of a model run on the GPU backend along llama.cpp's greedy continuation
 * (teacher-forced), for the GPU oracle tests.
 */
import { loadGpuParts } from '../../src/engine/load-gpu.js';
import type { WebGpuKernels } from '../../src/kernels/webgpu/gpu-kernels.js';
import type { OracleStep } from './llama-cpp.js';
import { logSoftmax } from './oracle-greedy.js';

/** Next-token log-probabilities of loaded GPU parts (a CPU shard in front, if any) along llama.cpp's continuation (teacher-forced). */
export async function alongOracle(parts: Awaited<ReturnType<typeof loadGpuParts>>, prompt: readonly number[], oracle: readonly OracleStep[]): Promise<Float64Array[]> {
  const step = async (tokens: number[], pos0: number) => {
    const batch = { nTokens: tokens.length, tokens: Int32Array.from(tokens), spans: [{ slot: 0, pos0, start: 0, n: tokens.length }] };
    const hidden = parts.shards[0]?.forward(batch);
    return parts.shard.forward(hidden ? { ...batch, tokens: undefined, hidden } : batch);
  };
  const out: Float64Array[] = [];
  let logits = await step([...prompt], 0);
  for (let i = 0; i < oracle.length; i++) {
    out.push(logSoftmax(logits));
    if (i + 1 < oracle.length) logits = await step([oracle[i].token], prompt.length + i);
  }
  return out;
}

/** The GPU's next-token log-probabilities along llama.cpp's continuation (teacher-forced), on `gpu` where given (else a device of its own). */
export async function gpuLogProbsAlong(path: string, prompt: readonly number[], oracle: readonly OracleStep[], gpu?: WebGpuKernels): Promise<Float64Array[]> {
  const parts = await loadGpuParts(path, { ctx: 256 }, gpu);
  try {
    return await alongOracle(parts, prompt, oracle);
  } finally {
    parts.close();
  }
}

