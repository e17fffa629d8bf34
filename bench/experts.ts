/**
 * Expert products of a Mixture-of-Experts layer at the shapes of real models, for one token
 * (decode) and a batch (prefill), against the machine's memory bandwidth.
 *
 *   node dist/bench/experts.js [--threads N] [--tokens 1,64] [--model qwen3-30b-a3b,gpt-oss-20b] [--layers L] [--mapped] [--json]
 *
 * A step is what one MoE layer does: prepare the input once (shared by the gate and up products),
 * gate and up products, the gated unit, prepare the expert outputs, the down product, the weighted
 * sum. Expert weights are read once per product for all the tokens routed to them, so the bytes a
 * step reads are those of the distinct experts its tokens chose; GB/s is those bytes over the time.
 * Steps cycle over `layers` copies of the layer's weights, so they come from memory, not cache.
 * Times are medians over the steps. The bandwidth is `cairn bench`'s: the best rate of plain reads
 * of a 512 MiB buffer on the kernel threads (readBandwidth), measured after each case.
 */
import { GgmlType, ggmlRowBytes, ggmlTypeName } from '../src/gguf/ggml-types.js';
import { closeSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  adviseWillNeed,
  cpuInfo,
  createKernels,
  evictFile,
  openMapping,
  readBandwidth,
  type ExpertBatch,
  type Kernels,
} from '../src/kernels/index.js';

interface MoeShape {
  name: string;
  hidden: number;
  ffn: number;
  nExperts: number;
  nUsed: number;
  gateUp: GgmlType;
  down: GgmlType;
  oai: boolean;
}

const SHAPES: Record<string, MoeShape> = {
  // Qwen3-30B-A3B as its Q4_K_M file stores the experts (gate/up Q4_K, down Q6_K).
  'qwen3-30b-a3b': {
    name: 'qwen3-30b-a3b',
    hidden: 2048,
    ffn: 768,
    nExperts: 128,
    nUsed: 8,
    gateUp: GgmlType.Q4_K,
    down: GgmlType.Q6_K,
    oai: false,
  },
  // gpt-oss-20b: every expert tensor in MXFP4, with biases and its clamped gated unit.
  'gpt-oss-20b': {
    name: 'gpt-oss-20b',
    hidden: 2880,
    ffn: 2880,
    nExperts: 32,
    nUsed: 4,
    gateUp: GgmlType.MXFP4,
    down: GgmlType.MXFP4,
    oai: true,
  },
};

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

let seed = 12345;
function random(): number {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return seed / 4294967296;
}

/** A 3-D expert tensor: one quantized expert, copied to every slot (same bytes, real layout). */
function expertTensor(k: Kernels, type: GgmlType, nExperts: number, rows: number, cols: number): Uint8Array {
  const one = new Uint8Array(ggmlRowBytes(type, cols) * rows);
  const f = new Float32Array(rows * cols).map(() => (random() - 0.5) * 0.1);
  k.quantize(type, f, one, rows * cols);
  const all = new Uint8Array(one.length * nExperts);
  for (let e = 0; e < nExperts; e++) all.set(one, e * one.length);
  return all;
}

/** nUsed distinct experts per token, uniformly, as a router's top-k would pick them. */
function route(nTokens: number, nUsed: number, nExperts: number, ids: Int32Array): number {
  const used = new Set<number>();
  for (let t = 0; t < nTokens; t++) {
    const chosen = new Set<number>();
    while (chosen.size < nUsed) chosen.add(Math.floor(random() * nExperts));
    let s = 0;
    for (const e of chosen) {
      ids[t * nUsed + s++] = e;
      used.add(e);
    }
  }
  return used.size;
}

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

interface Layer {
  gate: Uint8Array;
  up: Uint8Array;
  down: Uint8Array;
}

interface Result {
  model: string;
  tokens: number;
  threads: number;
  stepMs: number;
  productMs: { gate: number; up: number; down: number };
  bytesPerStep: number;
  gbps: number;
  bandwidthGBps: number;
  fractionOfBandwidth: number;
  perExpertLoopMs: number;
}

/**
 * --mapped: the layers' weights written to a file and used from its mapping, as a model's are
 * (page-cache pages rather than the process's own), to compare the two.
 */
function mapLayers(layers: Layer[]): void {
  const path = join(tmpdir(), `cairn-experts-${process.pid}.bin`);
  const fd = openSync(path, 'w');
  for (const l of layers) for (const t of [l.gate, l.up, l.down]) writeSync(fd, t);
  closeSync(fd);
  // Read back through the mapping, as a model's file is on its first load (the pages written
  // above are dropped from the page cache first).
  evictFile(path);
  const mapping = openMapping(path);
  unlinkSync(path);
  adviseWillNeed(mapping.view(0, mapping.size), true);
  let at = 0;
  for (const l of layers) {
    for (const key of ['gate', 'up', 'down'] as const) {
      l[key] = mapping.view(at, l[key].byteLength);
      at += l[key].byteLength;
    }
  }
}

function bench(k: Kernels, shape: MoeShape, nTokens: number, nLayers: number, threads: number): Result {
  const { hidden, ffn, nExperts, nUsed } = shape;
  const layers: Layer[] = [];
  const gateTensor = expertTensor(k, shape.gateUp, nExperts, ffn, hidden);
  const downTensor = expertTensor(k, shape.down, nExperts, hidden, ffn);
  for (let l = 0; l < nLayers; l++) {
    // Distinct copies per layer (and per product), so a step never finds its weights in cache.
    layers.push({ gate: gateTensor.slice(), up: gateTensor.slice(), down: downTensor.slice() });
  }
  if (process.argv.includes('--mapped')) mapLayers(layers);
  const pairs = nTokens * nUsed;
  const x = new Float32Array(nTokens * hidden).map(() => random() - 0.5);
  const ids = new Int32Array(pairs);
  const routeWeights = new Float32Array(pairs).fill(1 / nUsed);
  const g = new Float32Array(pairs * ffn);
  const u = new Float32Array(pairs * ffn);
  const d = new Float32Array(pairs * hidden);
  const out = new Float32Array(nTokens * hidden);
  const gateBias = shape.oai ? new Float32Array(nExperts * ffn) : undefined;
  const downBias = shape.oai ? new Float32Array(nExperts * hidden) : undefined;
  const inBatch: ExpertBatch = k.createExpertBatch(shape.gateUp, nExperts, nUsed, hidden, nTokens);
  const midBatch: ExpertBatch = k.createExpertBatch(shape.down, nExperts, nUsed, ffn, nTokens);
  const gateUpRow = ggmlRowBytes(shape.gateUp, hidden) * ffn;
  const downRow = ggmlRowBytes(shape.down, ffn) * hidden;
  const product = { gate: [] as number[], up: [] as number[], down: [] as number[] };
  const stepTimes: number[] = [];
  let bytes = 0;
  const steps = Math.max(nLayers * 4, nTokens === 1 ? 400 : 32);
  const warm = nLayers;
  for (let i = 0; i < warm + steps; i++) {
    const layer = layers[i % nLayers];
    const distinct = route(nTokens, nUsed, nExperts, ids);
    const t0 = process.hrtime.bigint();
    k.prepareExperts(inBatch, shape.gateUp, x, nTokens, ids, 'token');
    k.expertMatmul(inBatch, layer.gate, shape.gateUp, ffn, g, gateBias);
    const t1 = process.hrtime.bigint();
    k.expertMatmul(inBatch, layer.up, shape.gateUp, ffn, u, gateBias);
    const t2 = process.hrtime.bigint();
    if (shape.oai) k.swigluOai(g, u, pairs * ffn, 1.702, 7, g);
    else k.swiglu(g, u, pairs * ffn, g);
    const t3 = process.hrtime.bigint();
    k.prepareExperts(midBatch, shape.down, g, nTokens, ids, 'slot');
    k.expertMatmul(midBatch, layer.down, shape.down, hidden, d, downBias);
    const t4 = process.hrtime.bigint();
    k.moeCombine(d, routeWeights, nTokens, nUsed, hidden, out);
    const t5 = process.hrtime.bigint();
    if (i < warm) continue;
    stepTimes.push(Number(t5 - t0) / 1e6);
    product.gate.push(Number(t1 - t0) / 1e6);
    product.up.push(Number(t2 - t1) / 1e6);
    product.down.push(Number(t4 - t3) / 1e6);
    bytes += distinct * (2 * gateUpRow + downRow);
  }
  // Medians: the machine may be shared, and a median step is the one least disturbed either way.
  const stepMs = median(stepTimes);
  const gbps = bytes / steps / (stepMs / 1e3) / 1e9;
  // The machine's read rate right after the steps (a shared machine's rate drifts).
  const bandwidth = readBandwidth();

  // For comparison: the same expert products as one dense matmul per (expert, its tokens), no
  // shared preparation (what a model without expert kernels would do).
  const xs = new Float32Array(nTokens * hidden);
  const loopTimes: number[] = [];
  for (let i = 0; i < warm + steps; i++) {
    const layer = layers[i % nLayers];
    route(nTokens, nUsed, nExperts, ids);
    const t0 = process.hrtime.bigint();
    const byExpert = new Map<number, number[]>();
    for (let p = 0; p < pairs; p++) byExpert.set(ids[p], [...(byExpert.get(ids[p]) ?? []), p]);
    for (const [e, ps] of byExpert) {
      for (let j = 0; j < ps.length; j++)
        xs.set(x.subarray(Math.floor(ps[j] / nUsed) * hidden, (Math.floor(ps[j] / nUsed) + 1) * hidden), j * hidden);
      const xe = xs.subarray(0, ps.length * hidden);
      k.matmul(layer.gate.subarray(e * gateUpRow, (e + 1) * gateUpRow), shape.gateUp, ffn, hidden, xe, ps.length, g);
      k.matmul(layer.up.subarray(e * gateUpRow, (e + 1) * gateUpRow), shape.gateUp, ffn, hidden, xe, ps.length, u);
      k.swiglu(g, u, ps.length * ffn, g);
      k.matmul(layer.down.subarray(e * downRow, (e + 1) * downRow), shape.down, hidden, ffn, g, ps.length, d);
    }
    if (i >= warm) loopTimes.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return {
    model: shape.name,
    tokens: nTokens,
    threads,
    stepMs,
    productMs: { gate: median(product.gate), up: median(product.up), down: median(product.down) },
    bytesPerStep: bytes / steps,
    gbps,
    bandwidthGBps: bandwidth / 1e9,
    fractionOfBandwidth: gbps / (bandwidth / 1e9),
    perExpertLoopMs: median(loopTimes),
  };
}

const kernels = createKernels({ threads: process.argv.includes('--threads') ? Number(flag('threads', '0')) : undefined });
const info = cpuInfo();
const tokenCounts = flag('tokens', '1,64').split(',').map(Number);
const models = flag('model', Object.keys(SHAPES).join(',')).split(',');
const results: Result[] = [];
for (const m of models) {
  const shape = SHAPES[m];
  if (!shape) throw new Error(`unknown model shape '${m}' (known: ${Object.keys(SHAPES).join(', ')})`);
  // About 1.5 GiB of layer copies: far more than any last-level cache holds.
  const perLayer =
    shape.nExperts * (2 * ggmlRowBytes(shape.gateUp, shape.hidden) * shape.ffn + ggmlRowBytes(shape.down, shape.ffn) * shape.hidden);
  const layers = Number(flag('layers', String(Math.max(2, Math.min(8, Math.ceil((1.5 * 2 ** 30) / perLayer))))));
  for (const n of tokenCounts) results.push(bench(kernels, shape, n, layers, info.threads));
}
if (process.argv.includes('--json')) {
  process.stdout.write(`${JSON.stringify({ isa: info.isa, threads: info.threads, results }, null, 2)}\n`);
} else {
  process.stdout.write(`${info.isa}, ${info.threads} threads (medians of the steps; bandwidth measured after each case)\n`);
  for (const r of results) {
    const s = SHAPES[r.model];
    process.stdout.write(
      `${r.model} (${ggmlTypeName(s.gateUp)}/${ggmlTypeName(s.down)}, ${s.nExperts} experts, ${s.nUsed} used), ${r.tokens} token${r.tokens > 1 ? 's' : ''}: ` +
        `${r.stepMs.toFixed(3)} ms per layer (gate ${r.productMs.gate.toFixed(3)}, up ${r.productMs.up.toFixed(3)}, down ${r.productMs.down.toFixed(3)}), ` +
        `${(r.bytesPerStep / 2 ** 20).toFixed(1)} MiB of experts, ${r.gbps.toFixed(1)} GB/s = ${(100 * r.fractionOfBandwidth).toFixed(0)}% of ${r.bandwidthGBps.toFixed(1)} GB/s; ` +
        `a matmul per expert: ${r.perExpertLoopMs.toFixed(3)} ms\n`,
    );
  }
}
