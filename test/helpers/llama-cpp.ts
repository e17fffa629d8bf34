/**
 * The external oracle: llama.cpp through node-llama-cpp (a devDependency, pinned). Given a GGUF
 * file and prompt token ids, it returns llama.cpp's greedy continuation on the CPU with flash
 * attention off, and for each step the probabilities it saw (to tell a genuine near-tie apart).
 */
import type { Llama } from 'node-llama-cpp';

let llamaPromise: Promise<Llama> | undefined;

async function llama(): Promise<Llama> {
  const { getLlama } = await import('node-llama-cpp');
  llamaPromise ??= getLlama({ gpu: false, build: 'never', logLevel: 'error' as never, progressLogs: false });
  return llamaPromise;
}

/** One greedy step of llama.cpp: the chosen token and the next-token probabilities. */
export interface OracleStep {
  readonly token: number;
  readonly probabilities: ReadonlyMap<number, number>;
}

/** llama.cpp's greedy steps after `prompt` (ids, BOS included by the caller). */
export async function llamaCppGreedy(
  path: string,
  prompt: readonly number[],
  steps: number,
  opts: { threads?: number; kvType?: 'F16' | 'F32' } = {},
): Promise<OracleStep[]> {
  const l = await llama();
  const model = await l.loadModel({ modelPath: path, gpuLayers: 0 });
  try {
    const ctx = await model.createContext({
      contextSize: Math.max(256, prompt.length + steps + 8),
      threads: opts.threads ?? 2,
      batchSize: 512,
      flashAttention: false,
      experimentalKvCacheKeyType: opts.kvType ?? 'F16',
      experimentalKvCacheValueType: opts.kvType ?? 'F16',
    });
    try {
      const seq = ctx.getSequence();
      const out: OracleStep[] = [];
      for await (const r of seq.evaluateWithMetadata(prompt as never, { probabilities: true }, { temperature: 0, yieldEogToken: true })) {
        out.push({ token: r.token as number, probabilities: r.probabilities as ReadonlyMap<number, number> });
        if (out.length >= steps) break;
      }
      return out;
    } finally {
      await ctx.dispose();
    }
  } finally {
    await model.dispose();
  }
}
