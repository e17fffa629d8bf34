/**
 * A benchmark worker: loads one model with one engine (cairn or llama.cpp through node-llama-cpp),
 * reports load time, time to first token and resident memory, then runs prefill and decode passes
 * on command. Started by `cairn bench` with child_process.fork.
 */
import type { BenchCommand, BenchReply, WorkerSpec } from './protocol.js';
import { readGguf } from '../src/gguf/reader.js';
import { readModelConfig } from '../src/model/config.js';

interface Runner {
  /** Seconds for a prefill of n tokens after `depth` tokens already in the cache. */
  prefill(n: number, depth: number): Promise<number>;
  /** Seconds for n decode steps after `depth` tokens already in the cache. */
  decode(n: number, depth: number): Promise<number>;
  rss(): number;
}

function send(m: BenchReply): void {
  process.send!(m);
}

/** Token ids for a synthetic prompt (and for filling the cache to a depth): BOS then ordinary tokens, the same for both engines. */
function promptIds(n: number, vocab: number): number[] {
  const out = [1];
  // Ordinary tokens past the special and byte tokens that start most vocabularies.
  const base = Math.min(300, vocab >> 1);
  for (let i = 1; i < n; i++) out.push(base + ((i * 7919) % (vocab - base)));
  return out;
}

function vocabSize(path: string): number {
  return readModelConfig(readGguf(path)).nVocab;
}

async function cairnRunner(spec: WorkerSpec): Promise<{ runner: Runner; loadMs: number; firstTokenMs: number; detail: string }> {
  const t0 = performance.now();
  const { loadModel } = await import('../src/engine/load.js');
  const { cpuInfo } = await import('../src/kernels/index.js');
  const { kvTypeOf } = await import('../src/cli/options.js');
  const { loadGpuParts } = await import('../src/engine/load-gpu.js');
  // On the GPU the whole model is one shard; on the CPU, the shards of the loaded model.
  const gpu = spec.backend === 'gpu' ? await loadGpuParts(spec.model, { threads: spec.threads, ctx: spec.ctx, maxBatch: spec.batch, kvType: kvTypeOf(spec.kvType ?? 'f16') }) : undefined;
  const model = gpu
    ? undefined
    : await loadModel(spec.model, { threads: spec.threads, ctx: spec.ctx, maxBatch: spec.batch, progress: false, kvType: kvTypeOf(spec.kvType ?? 'f16') });
  const loadMs = performance.now() - t0;
  const V = (gpu ?? model)!.config.nVocab;
  const batchOf = (tokens: number[], pos0: number, logitsRow: number) => ({
    nTokens: tokens.length,
    tokens: Int32Array.from(tokens),
    spans: [{ slot: 0, pos0, start: 0, n: tokens.length }],
    outputRows: [logitsRow],
  });
  const forward = async (tokens: number[], pos0: number, logitsRow: number): Promise<Float32Array> => {
    if (gpu) return gpu.shard.forward(batchOf(tokens, pos0, logitsRow));
    let hidden: Float32Array | undefined;
    for (const s of model!.shards) hidden = s.forward({ ...batchOf(tokens, pos0, logitsRow), hidden });
    return hidden!;
  };
  const argmax = (l: Float32Array) => {
    let b = 0;
    for (let i = 1; i < V; i++) if (l[i] > l[b]) b = i;
    return b;
  };
  await forward([1], 0, 0);
  const firstTokenMs = performance.now() - t0;
  const info = cpuInfo();
  // Positions [0, filled) of the cache hold the depth tokens; measured runs write after them only.
  let filled = 0;
  const fill = async (depth: number) => {
    if (filled === depth) return;
    const ids = promptIds(depth, V);
    for (let at = 0; at < depth; at += spec.batch) {
      const piece = ids.slice(at, at + spec.batch);
      await forward(piece, at, piece.length - 1);
    }
    filled = depth;
  };
  return {
    loadMs,
    firstTokenMs,
    detail: gpu
      ? `GPU ${gpu.placement.adapter}`
      : `kernels ${info.isa}, ${spec.threads} threads${model!.shards.some((s) => s.kv.tiles) ? ', q8_0 KV cache in tiles' : ''}`,
    runner: {
      async prefill(n, depth) {
        await fill(depth);
        const ids = promptIds(n, V);
        const t = performance.now();
        await forward(ids, depth, n - 1);
        return (performance.now() - t) / 1000;
      },
      async decode(n, depth) {
        await fill(depth);
        let tok = argmax(await forward([1], depth, 0));
        const t = performance.now();
        for (let i = 1; i <= n; i++) tok = argmax(await forward([tok], depth + i, 0));
        return (performance.now() - t) / 1000;
      },
      rss: () => (model ? model.residentBytes() : process.memoryUsage().rss),
    },
  };
}

async function llamaCppRunner(spec: WorkerSpec): Promise<{ runner: Runner; loadMs: number; firstTokenMs: number; detail: string }> {
  let mod: typeof import('node-llama-cpp');
  try {
    mod = await import('node-llama-cpp');
  } catch {
    throw new Error('--vs-llama-cpp needs the node-llama-cpp package (a devDependency of cairn): run `npm install` in the cairn repository');
  }
  const t0 = performance.now();
  const gpu = spec.backend === 'gpu';
  const llama = await mod.getLlama({ gpu: gpu ? 'auto' : false, build: 'never', logLevel: 'error' as never, progressLogs: false });
  if (gpu && llama.gpu === false) throw new Error('--backend gpu: node-llama-cpp found no GPU build that runs here (Vulkan, CUDA or Metal)');
  const model = await llama.loadModel({ modelPath: spec.model, gpuLayers: gpu ? 'max' : 0 });
  const flash = spec.flashAttention ?? false;
  const kv = ({ f16: 'F16', f32: 'F32', q8_0: 'Q8_0' } as const)[spec.kvType ?? 'f16'];
  const ctx = await model.createContext({
    contextSize: spec.ctx,
    batchSize: spec.batch,
    threads: spec.threads,
    flashAttention: flash,
    experimentalKvCacheKeyType: kv,
    experimentalKvCacheValueType: kv,
  });
  const seq = ctx.getSequence();
  const loadMs = performance.now() - t0;
  const V = vocabSize(spec.model);
  await seq.evaluateWithoutGeneratingNewTokens([1] as never);
  const firstTokenMs = performance.now() - t0;
  // The sequence holding exactly the `depth` fill tokens: filled once, what runs add is erased.
  let filled = -1;
  const toDepth = async (depth: number) => {
    if (filled !== depth) {
      await seq.clearHistory();
      if (depth > 0) await seq.evaluateWithoutGeneratingNewTokens(promptIds(depth, V) as never);
      filled = depth;
    } else if (seq.nextTokenIndex > depth) {
      await seq.eraseContextTokenRanges([{ start: depth, end: seq.nextTokenIndex }]);
    }
  };
  return {
    loadMs,
    firstTokenMs,
    detail: `llama.cpp ${llama.buildType}${gpu ? ` on ${String(llama.gpu)}` : ''}, ${spec.threads} threads, flash attention ${flash ? 'on' : 'off'}, KV ${kv}`,
    runner: {
      async prefill(n, depth) {
        await toDepth(depth);
        const ids = promptIds(n, V);
        const t = performance.now();
        await seq.evaluateWithoutGeneratingNewTokens(ids as never);
        return (performance.now() - t) / 1000;
      },
      async decode(n, depth) {
        await toDepth(depth);
        let count = 0;
        let t = 0;
        for await (const _ of seq.evaluate([1] as never, { temperature: 0, yieldEogToken: true })) {
          // The first token comes with the one-token prompt; time the n after it.
          if (count === 0) t = performance.now();
          if (++count > n) break;
        }
        return (performance.now() - t) / 1000;
      },
      rss: () => process.memoryUsage.rss(),
    },
  };
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2]) as WorkerSpec;
  let r: Awaited<ReturnType<typeof cairnRunner>>;
  try {
    r = spec.engine === 'cairn' ? await cairnRunner(spec) : await llamaCppRunner(spec);
  } catch (err) {
    send({ type: 'error', message: (err as Error).message });
    process.exit(1);
  }
  send({ type: 'loaded', engine: spec.engine, loadMs: r.loadMs, firstTokenMs: r.firstTokenMs, rssBytes: r.runner.rss(), detail: r.detail });
  process.on('message', async (cmd: BenchCommand) => {
    try {
      if (cmd.type === 'exit') process.exit(0);
      const depth = cmd.depth ?? 0;
      const seconds = cmd.type === 'prefill' ? await r.runner.prefill(cmd.tokens, depth) : await r.runner.decode(cmd.tokens, depth);
      send({ type: 'result', seconds, tokens: cmd.tokens, rssBytes: r.runner.rss() });
    } catch (err) {
      send({ type: 'error', message: (err as Error).message });
    }
  });
}

void main();
