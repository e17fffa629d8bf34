/**
 * The external oracle: llama.cpp through node-llama-cpp (a devDependency, pinned). Given a GGUF
 * file and prompt token ids, it returns llama.cpp's greedy continuation, with an f16 KV cache,
 * flash attention off, on the CPU.
 */
import type { Llama } from 'node-llama-cpp';

let llamaPromise: Promise<Llama> | undefined;

async function llama(): Promise<Llama> {
  const { getLlama } = await import('node-llama-cpp');
  llamaPromise ??= getLlama({ gpu: false, build: 'never', logLevel: 'error' as never, progressLogs: false });
  return llamaPromise;
}

/** llama.cpp's greedy tokens after `prompt` (ids, BOS included by the caller), `steps` of them. */
export async function llamaCppGreedy(path: string, prompt: readonly number[], steps: number, threads = 2): Promise<number[]> {
  const l = await llama();
  const model = await l.loadModel({ modelPath: path, gpuLayers: 0 });
  try {
    const ctx = await model.createContext({ contextSize: Math.max(256, prompt.length + steps + 8), threads, batchSize: 512, flashAttention: false });
    try {
      const seq = ctx.getSequence();
      const out: number[] = [];
      for await (const t of seq.evaluate(prompt as never, { temperature: 0, yieldEogToken: true })) {
        out.push(t as number);
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
