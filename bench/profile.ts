/**
 * Where a decode step's time goes: wraps the kernels of a one-shard model and times each kind of
 * call over a run of single-token steps, and each matrix product by weight type and shape.
 *
 *   node dist/bench/profile.js MODEL [--tokens N] [--streams S] [--depth D] [--kv-type f16|q8_0|f32]
 *
 * --streams S: each step decodes one token for each of S sequences at once (as a server's
 * continuous batching does), and the figures are per step; a token costs a step / S.
 * --depth D: the steps start at position D, as if D tokens were already in the KV cache (its rows
 * there are left as allocated: attention reads them all the same, so its cost is that of a real
 * context of that length, without the minutes a prompt of it takes).
 */
import { readGguf } from '../src/gguf/reader.js';
import { GgmlType, ggmlRowBytes } from '../src/gguf/ggml-types.js';
import { adviseWillNeed, createKernels, openMapping, type ExpertBatch, type Kernels } from '../src/kernels/index.js';
import { readModelConfig } from '../src/model/config.js';
import { loadShard } from '../src/model/build-shard.js';
import { packProductWeights } from '../src/engine/pack-weights.js';
import { wholeModel } from '../src/model/shard.js';
import { preferLargePages } from '../src/engine/large-pages.js';
import { KV_TYPES, kvTypeOf } from '../src/cli/options.js';
import { flag } from './args.js';

const [path, ...rest] = process.argv.slice(2);
const steps = Number(flag(rest, '--tokens', '32'));
const streams = Number(flag(rest, '--streams', '1'));
if (!Number.isSafeInteger(streams) || streams < 1 || streams > 64) throw new Error('--streams takes 1 to 64');
const depth = Number(flag(rest, '--depth', '0'));
if (!Number.isSafeInteger(depth) || depth < 0) throw new Error('--depth takes a whole number of positions');
const kvFlag = flag(rest, '--kv-type', 'f16');
if (!KV_TYPES.includes(kvFlag)) throw new Error(`--kv-type must be one of ${KV_TYPES.join(', ')}`);
const file = readGguf(path);
const cfg = readModelConfig(file);
const kernels = createKernels();
const mapping = openMapping(path);
// Fault the whole file in first (as `cairn bench` and a load do): otherwise the first use of each
// expert pays its page faults inside the timed steps.
const populate = async () => {
  if (mapping.mapped)
    for (let at = 0; at < mapping.size; at += 1 << 30) adviseWillNeed(mapping.view(at, Math.min(1 << 30, mapping.size - at)), true);
};
await populate();
// As a load does: the weights on huge pages where the OS can (see src/engine/large-pages.ts).
const largest = file.tensors.reduce((a, t) => (t.byteLength > a.byteLength ? t : a));
process.stdout.write(
  `huge pages: ${await preferLargePages(mapping, mapping.size, { offset: largest.offset, length: largest.byteLength }, populate)}\n`,
);
// Distinct experts of each batch's last preparation (the bytes its products read).
const routed = new Map<ExpertBatch, number>();
const times = new Map<string, { ms: number; calls: number }>();
const shapes = new Map<string, { ms: number; calls: number; bytes: number }>();
const timed = Object.create(kernels) as Kernels;
// Every kernel call is timed (expert products, routing, attention with sinks alike); what the
// kernels do not cover is the TypeScript between them.
const kernelNames = Object.keys(kernels).filter((k) => typeof (kernels as unknown as Record<string, unknown>)[k] === 'function');
for (let proto = Object.getPrototypeOf(kernels); proto && proto !== Object.prototype; proto = Object.getPrototypeOf(proto)) {
  for (const k of Object.getOwnPropertyNames(proto))
    if (k !== 'constructor' && typeof (kernels as unknown as Record<string, unknown>)[k] === 'function' && !kernelNames.includes(k))
      kernelNames.push(k);
}
for (const name of kernelNames) {
  const inner = (kernels as unknown as Record<string, (...a: unknown[]) => unknown>)[name].bind(kernels);
  (timed as unknown as Record<string, unknown>)[name] = (...a: unknown[]) => {
    const t = performance.now();
    const result = inner(...a);
    const ms = performance.now() - t;
    const e = times.get(name) ?? { ms: 0, calls: 0 };
    e.ms += ms;
    e.calls++;
    times.set(name, e);
    if (name === 'prepareExperts') {
      const [batch, , , n, ids] = a as [ExpertBatch, GgmlType, Float32Array, number, Int32Array];
      routed.set(batch, new Set(ids.subarray(0, n * batch.nUsed)).size);
    }
    if (name === 'matmul') {
      // Per weight type and shape, with the rate its bytes were read at.
      const [w, type, rows, cols] = a as [Uint8Array, GgmlType, number, number];
      const key = `${GgmlType[type]} ${rows}x${cols}`;
      const m = shapes.get(key) ?? { ms: 0, calls: 0, bytes: 0 };
      m.ms += ms;
      m.calls++;
      m.bytes += w.byteLength;
      shapes.set(key, m);
    }
    if (name === 'expertMatmul') {
      // Expert products by weight type and output rows; the bytes are those of the experts used.
      const [batch, , type, rows] = a as [ExpertBatch, Uint8Array, GgmlType, number];
      const used = routed.get(batch) ?? 0;
      const key = `experts ${GgmlType[type]} ${rows}x${batch.cols}`;
      const m = shapes.get(key) ?? { ms: 0, calls: 0, bytes: 0 };
      m.ms += ms;
      m.calls++;
      m.bytes += used * rows * ggmlRowBytes(type, batch.cols);
      shapes.set(key, m);
    }
    return result;
  };
}
const spec = wholeModel(cfg);
// CAIRN_PROFILE_COPY=1: weights copied out of the mapping into process memory (to compare the two).
const copy = process.env.CAIRN_PROFILE_COPY === '1';
const weight = (t: { offset: number; byteLength: number }) => mapping.view(t.offset, t.byteLength);
const shard = loadShard(file, cfg, spec, (t) => (copy ? weight(t).slice() : weight(t)), timed, {
  slots: streams,
  ctx: depth + steps + 16,
  kvType: kvTypeOf(kvFlag),
  maxBatch: Math.max(16, streams),
});
// As a load does: the products' weights packed where the kernels keep copies (CAIRN_PACK_WEIGHTS=0: not).
const packed = await packProductWeights(shard.weights.products ?? [], kernels, mapping, false, '');
process.stdout.write(`packed: ${(packed.packedBytes / 2 ** 20).toFixed(1)} MiB\n`);
const spans = (p: number) => Array.from({ length: streams }, (_, s) => ({ slot: s, pos0: depth + p, start: s, n: 1 }));
const rows = Array.from({ length: streams }, (_, s) => s);
const run = (n: number) => {
  const tokens = new Int32Array(streams).fill(1);
  for (let p = 0; p < n; p++) {
    shard.forward({ nTokens: streams, tokens, spans: spans(p), outputRows: rows });
    for (let s = 0; s < streams; s++) tokens[s] = 300 + ((p + 7 * s) % 100);
  }
};
run(4);
times.clear();
shapes.clear();
const t0 = performance.now();
run(steps);
const total = (performance.now() - t0) / steps;
process.stdout.write(
  `${path}${depth ? ` at depth ${depth}` : ''}: ${total.toFixed(2)} ms per step of ${streams} token${streams > 1 ? 's' : ''} (${((1000 * streams) / total).toFixed(1)} tok/s)\n`,
);
const inKernels = [...times.values()].reduce((a, e) => a + e.ms, 0) / steps;
process.stdout.write(
  `  (outside the kernels: ${(total - inKernels).toFixed(3)} ms, ${((100 * (total - inKernels)) / total).toFixed(1)}%)\n`,
);
for (const [name, e] of [...times].sort((a, b) => b[1].ms - a[1].ms)) {
  process.stdout.write(
    `  ${name.padEnd(10)} ${(e.ms / steps).toFixed(3).padStart(8)} ms  ${(e.calls / steps).toFixed(0).padStart(4)} calls  ${((100 * e.ms) / steps / total).toFixed(1)}%\n`,
  );
}
process.stdout.write('matrix products by weight type and shape:\n');
for (const [key, m] of [...shapes].sort((a, b) => b[1].ms - a[1].ms)) {
  process.stdout.write(
    `  ${key.padEnd(20)} ${(m.ms / steps).toFixed(3).padStart(8)} ms  ${(m.calls / steps).toFixed(0).padStart(4)} calls  ${(m.bytes / (m.ms / 1e3) / 1e9).toFixed(1).padStart(6)} GB/s\n`,
  );
}
