/**
 * Attention alone, at depth: one layer's attention of a prompt (or of one decode token) after N
 * positions already in the KV cache, in the shapes of llama-1b (32 query heads, 8 KV heads of 64)
 * and qwen3-0.6b (16 / 8 of 128), F16 cache, timed over repeated calls. With `--layers N` the calls
 * go to N layers' caches in turn, so each finds its cache cold, as in a model.
 *
 *   node dist/bench/attention.js [--depths 0,4096,16384] [--tokens 128] [--reps 5] [--kv-type f16|q8_0|f32] [--layers 1]
 */
import { flag } from './args.js';
import { createKernels } from '../src/kernels/index.js';
import { kvElementBytes } from '../src/kernels/api.js';
import { KV_TYPES, kvTypeOf } from '../src/cli/options.js';

const args = process.argv.slice(2);
const depths = flag(args, '--depths', '0,4096,16384').split(',').map(Number);
const tokens = Number(flag(args, '--tokens', '128'));
const reps = Number(flag(args, '--reps', '5'));
const layers = Number(flag(args, '--layers', '1'));
if (!(Number.isInteger(layers) && layers >= 1)) throw new Error('--layers must be a positive integer');
const kvFlag = flag(args, '--kv-type', 'f16');
if (!KV_TYPES.includes(kvFlag)) throw new Error(`--kv-type must be one of ${KV_TYPES.join(', ')}`);
const kvType = kvTypeOf(kvFlag);
const elem = kvElementBytes(kvType);
const kernels = createKernels();
const shapes = [
  { name: 'llama-1b', nHead: 32, nKvHead: 8, headDim: 64 },
  { name: 'qwen3-0.6b', nHead: 16, nKvHead: 8, headDim: 128 },
];

for (const s of shapes) {
  for (const depth of depths) {
    const ctx = depth + tokens;
    const row = s.nKvHead * s.headDim;
    const kCache = new Uint8Array(ctx * row * elem);
    const vCache = new Uint8Array(ctx * row * elem);
    const kv = new Float32Array(ctx * row).map(() => Math.random() - 0.5);
    kernels.storeKv(kv, kv, kCache, vCache, kvType, row, 0, ctx, s.nKvHead);
    const caches = Array.from({ length: layers }, (_, i) => (i === 0 ? [kCache, vCache] : [kCache.slice(), vCache.slice()]));
    const time = (n: number) => {
      const q = new Float32Array(n * s.nHead * s.headDim).map(() => Math.random() - 0.5);
      const out = new Float32Array(q.length);
      const p = { nTokens: n, nHead: s.nHead, nKvHead: s.nKvHead, headDim: s.headDim, pos0: depth + tokens - n, scale: 1 / Math.sqrt(s.headDim), kvType };
      kernels.attention(q, kCache, vCache, p, out);
      const runs: number[] = [];
      for (let r = 0; r < reps * layers; r++) {
        const [kc, vc] = caches[r % layers];
        const t = performance.now();
        kernels.attention(q, kc, vc, p, out);
        runs.push(performance.now() - t);
      }
      return runs.sort((a, b) => a - b)[runs.length >> 1];
    };
    const prompt = time(tokens);
    const decode = time(1);
    // K and V rows a decode token reads: its whole visible cache, once.
    const kvBytes = 2 * (depth + tokens) * row * elem;
    process.stdout.write(
      `${s.name} ${kvFlag} depth ${depth}: prompt of ${tokens} ${prompt.toFixed(2)} ms (${((tokens / prompt) * 1000).toFixed(0)} tok/s per layer); ` +
        `decode ${decode.toFixed(3)} ms (${(kvBytes / decode / 1e6).toFixed(1)} GB/s of KV)\n`,
    );
  }
}
