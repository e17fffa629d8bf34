/**
 * What a Q8_0 KV cache costs in accuracy against F16: the same prompt scored with each cache type
 * (every prompt token's log-probability, as `echo` with logprobs scores it), compared position by
 * position: mean and largest difference of the token's log-probability, and how often the most
 * likely next token is the same. Also the cache's bytes per token.
 *
 *   node dist/bench/kv-accuracy.js MODEL [--tokens 512] [--threads N]
 *
 * The prompt is the model's own greedy text after a short start, so it is text the model finds
 * likely (a random-weight model's logits are otherwise flat).
 */
import { flag } from './args.js';
import { GgmlType } from '../src/gguf/ggml-types.js';
import { loadModel, type LoadedModel } from '../src/engine/load.js';
import type { StepLogprobs } from '../src/sampling/index.js';

const args = process.argv.slice(2);
const path = args[0];
if (!path || path.startsWith('--')) {
  process.stderr.write('usage: node dist/bench/kv-accuracy.js MODEL [--tokens 512] [--threads N]\n');
  process.exit(2);
}
const tokens = Number(flag(args, '--tokens', '512'));
const threads = flag(args, '--threads') ? Number(flag(args, '--threads')) : undefined;
const ctx = tokens + 64;

async function score(m: LoadedModel, prompt: number[]): Promise<readonly StepLogprobs[]> {
  for await (const ev of m.engine.generate({ prompt, maxTokens: 0, promptLogprobs: 1 })) if (ev.type === 'prompt') return ev.logprobs;
  throw new Error('no prompt logprobs');
}

const f16 = await loadModel(path, { ctx, threads, progress: false, kvType: GgmlType.F16, speculation: { maxDraft: 0 } });
const start = f16.tokenizer.encode('Once upon a time', { addSpecial: true, parseSpecial: false });
let text: number[] = [];
for await (const ev of f16.engine.generate({ prompt: start, maxTokens: tokens - start.length, sampler: { temperature: 0.7, seed: 3 }, ignoreEos: true })) {
  if (ev.type === 'done') text = [...start, ...ev.summary.tokens];
}
const want = await score(f16, text);
const f16Bytes = f16.kvBytes;
f16.close();
const q8 = await loadModel(path, { ctx, threads, progress: false, kvType: GgmlType.Q8_0, speculation: { maxDraft: 0 } });
const got = await score(q8, text);
const q8Bytes = q8.kvBytes;
q8.close();

let sum = 0;
let max = 0;
let sameTop = 0;
for (let i = 0; i < want.length; i++) {
  const d = Math.abs(want[i].logprob - got[i].logprob);
  sum += d;
  max = Math.max(max, d);
  if (want[i].top[0]?.id === got[i].top[0]?.id) sameTop++;
}
process.stdout.write(
  `${path.split('/').pop()}: ${want.length} positions scored with an F16 and a Q8_0 KV cache\n` +
    `log-probability of each token: mean difference ${(sum / want.length).toFixed(4)}, largest ${max.toFixed(4)}; ` +
    `same most likely token at ${((100 * sameTop) / want.length).toFixed(1)}% of positions; ` +
    `cache ${(q8Bytes / f16Bytes).toFixed(3)}x the bytes of F16\n`,
);
