/**
 * TypeScript twins of the native float kernels: the same functions llama.cpp's CPU backend
 * computes, written for clarity. Values are rounded to f32 (Math.fround) wherever ggml rounds
 * them; sums that ggml keeps in f32 lanes are accumulated here in f64, which is the exact
 * result the native lanes approximate, so tests can bound the native error against it.
 */
import { ATTENTION_CHUNK, KV_TILE_ROWS, kvCapacity, kvElementBytes, type AttentionParams, type KvType, type RopeParams } from '../api.js';
import { putTileRow, rowsFromTiles } from '../kv-layout.js';
import { f32ToFp16, fp16ToF32, refDequantize, refQuantize } from './quant/index.js';

const f = Math.fround;

/** `v` rounded to f32, then to the nearest IEEE half (ties to even), as a number. */
export function roundToF16(v: number): number {
  return fp16ToF32(f32ToFp16(v));
}

/** out[r] = (x[r] * 1/sqrt(mean(x[r]^2) + eps)) * weight, in ggml's order and precision. */
export function refRmsNorm(x: Float32Array, weight: Float32Array, rows: number, dim: number, eps: number, out: Float32Array): void {
  const e = f(eps);
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    let sum = 0; // ggml: f64 sum of f32 squares
    for (let i = 0; i < dim; i++) sum += f(x[o + i] * x[o + i]);
    const mean = f(sum / dim);
    const scale = f(1 / f(Math.sqrt(f(mean + e))));
    for (let i = 0; i < dim; i++) out[o + i] = f(x[o + i] * scale) * weight[i];
  }
}

/**
 * cos/sin of each rotated pair at position `pos`: ggml's rope cache, where theta starts at the
 * position and is multiplied by base^(-2/nRot) once per pair, all in f32.
 */
export function ropeAngles(pos: number, p: RopeParams): { cos: Float64Array; sin: Float64Array } {
  const pairs = p.nRot / 2;
  const thetaScale = f(Math.pow(f(p.freqBase), f(-2 / p.nRot)));
  const freqScale = f(p.freqScale);
  const cos = new Float64Array(pairs);
  const sin = new Float64Array(pairs);
  let theta = f(pos);
  for (let i = 0; i < pairs; i++) {
    const ff = p.freqFactors ? p.freqFactors[i] : 1;
    const angle = f(freqScale * f(theta / ff));
    cos[i] = f(Math.cos(angle));
    sin[i] = f(Math.sin(angle));
    theta = f(theta * thetaScale);
  }
  return { cos, sin };
}

/** Rotates x (nTokens x nHeads x headDim) in place; dimensions past nRot pass through. */
export function refRope(x: Float32Array, nTokens: number, nHeads: number, headDim: number, positions: Int32Array, p: RopeParams): void {
  const half = p.nRot / 2;
  for (let t = 0; t < nTokens; t++) {
    const { cos, sin } = ropeAngles(positions[t], p);
    for (let h = 0; h < nHeads; h++) {
      const base = (t * nHeads + h) * headDim;
      for (let i = 0; i < half; i++) {
        // normal: pair (2i, 2i+1); neox: pair (i, i + nRot/2). Both use frequency i.
        const a = base + (p.mode === 'neox' ? i : 2 * i);
        const b = a + (p.mode === 'neox' ? half : 1);
        const x0 = x[a];
        const x1 = x[b];
        x[a] = f(x0 * cos[i]) - f(x1 * sin[i]);
        x[b] = f(x0 * sin[i]) + f(x1 * cos[i]);
      }
    }
  }
}

/**
 * Softmax of x[off, off + n) in place: exp(x - max) summed in f64, scaled by f32(1/sum); a sink
 * (gpt-oss) joins it as an entry without a value.
 */
function softmaxRow(x: Float64Array | Float32Array, off: number, n: number, sink?: number): void {
  let max = sink ?? -Infinity;
  for (let i = 0; i < n; i++) if (x[off + i] > max) max = x[off + i];
  let sum = 0;
  for (let i = 0; i < n; i++) {
    x[off + i] = f(Math.exp(f(x[off + i] - max)));
    sum += x[off + i];
  }
  if (sink !== undefined) sum += f(Math.exp(f(sink - max)));
  const inv = f(1 / sum);
  for (let i = 0; i < n; i++) x[off + i] = f(x[off + i] * inv);
}

/** Softmax of each of `rows` rows of `cols`, in place. */
export function refSoftmax(x: Float32Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) softmaxRow(x, r * cols, cols);
}

/** out[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + exp(-g)) in f32. */
export function refSwiglu(gate: Float32Array, up: Float32Array, n: number, out: Float32Array): void {
  for (let i = 0; i < n; i++) {
    const g = gate[i];
    out[i] = f(g / f(1 + f(Math.exp(-g)))) * up[i];
  }
}

/** ggml's swiglu_oai (gpt-oss): min(g, limit) / (1 + exp(alpha * -g')) * (clamp(u, -limit, limit) + 1). */
export function refSwigluOai(gate: Float32Array, up: Float32Array, n: number, alpha: number, limit: number, out: Float32Array): void {
  const a = f(alpha);
  const l = f(limit);
  for (let i = 0; i < n; i++) {
    const g = Math.min(gate[i], l);
    const u = Math.min(Math.max(up[i], -l), l);
    out[i] = f(f(g / f(1 + f(Math.exp(f(a * -g))))) * f(u + 1));
  }
}

/** ggml's tanh-approximated gelu in f32, with ggml's operation order. */
export function geluF32(x: number): number {
  const a = f(0.044715);
  const s = f(0.7978845608028654); // sqrt(2 / pi)
  const inner = f(f(s * x) * f(1 + f(f(a * x) * x)));
  return f(f(0.5 * x) * f(1 + f(Math.tanh(inner))));
}

let geluTable: Float32Array | undefined;

/** gelu of every f16 input, rounded to f16: llama.cpp's lookup table (GGML_GELU_FP16). */
export function geluF16Table(): Float32Array {
  if (!geluTable) {
    geluTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) geluTable[h] = roundToF16(geluF32(fp16ToF32(h)));
  }
  return geluTable;
}

/** out[i] = gelu(gate[i]) * up[i] as llama.cpp: 0 at or below -10, identity at or above 10, else the f16 table. */
export function refGeglu(gate: Float32Array, up: Float32Array, n: number, out: Float32Array): void {
  const table = geluF16Table();
  for (let i = 0; i < n; i++) {
    const g = gate[i];
    if (g <= -10) out[i] = 0;
    else if (g >= 10) out[i] = g * up[i];
    else out[i] = table[f32ToFp16(g)] * up[i];
  }
}

/** out[i] = a[i] + b[i]. */
export function refAdd(a: Float32Array, b: Float32Array, n: number, out: Float32Array): void {
  for (let i = 0; i < n; i++) out[i] = a[i] + b[i];
}

/** Bytes of one cache element. */

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Writes rows of k and v (nKvHead heads each) into cache positions [pos0, pos0 + nTokens): f32 or
 * f16 little-endian, or Q8_0 blocks (with kvTiles, in tiles: kv-layout.ts); each cache head by
 * head, its kvCapacity the stride.
 */
export function refStoreKv(
  k: Float32Array,
  v: Float32Array,
  kCache: Uint8Array,
  vCache: Uint8Array,
  kvType: KvType,
  rowElems: number,
  pos0: number,
  nTokens: number,
  nKvHead: number,
  kvTiles = false,
): void {
  const d = rowElems / nKvHead;
  const headBytes = d * kvElementBytes(kvType);
  const tileBytes = KV_TILE_ROWS * headBytes;
  const row = new Uint8Array(headBytes);
  for (const [src, dst] of [
    [k, kCache],
    [v, vCache],
  ] as const) {
    const capacity = kvCapacity(dst.byteLength, rowElems, kvType);
    const dv = view(dst);
    for (let t = 0; t < nTokens; t++) {
      for (let h = 0; h < nKvHead; h++) {
        const from = src.subarray(t * rowElems + h * d, t * rowElems + (h + 1) * d);
        const at = (h * capacity + pos0 + t) * headBytes;
        if (kvType === 8 && kvTiles) {
          refQuantize(8, from, row, d);
          const pos = pos0 + t;
          const tile = (h * capacity + pos - (pos % KV_TILE_ROWS)) * headBytes;
          putTileRow(dst.subarray(tile, tile + tileBytes), pos % KV_TILE_ROWS, row, d / 32, src === k ? 'k' : 'v');
          continue;
        }
        if (kvType === 8) {
          // Q8_0: whole blocks of ggml's reference quantizer.
          refQuantize(8, from, dst.subarray(at, at + headBytes), d);
          continue;
        }
        for (let i = 0; i < d; i++) {
          if (kvType === 1) dv.setUint16(at + i * 2, f32ToFp16(from[i]), true);
          else dv.setFloat32(at + i * 4, from[i], true);
        }
      }
    }
  }
}

/** Reads element `i` of a cache (of `elems` elements) as a number. */
function cacheReader(cache: Uint8Array, kvType: KvType, elems: number): (i: number) => number {
  if (kvType === 8) {
    const all = new Float32Array(elems);
    refDequantize(8, cache, all, elems);
    return (i) => all[i];
  }
  const dv = view(cache);
  return kvType === 1 ? (i) => fp16ToF32(dv.getUint16(i * 2, true)) : (i) => dv.getFloat32(i * 4, true);
}

/** A query vector as a Q8_0 cache's scores see it: quantized to Q8_0 (ggml quantizes q for a Q8_0 K). */
function roundToQ8(x: Float32Array): Float32Array {
  const bytes = new Uint8Array((x.length / 32) * 34);
  refQuantize(8, x, bytes, x.length);
  const out = new Float32Array(x.length);
  refDequantize(8, bytes, out, x.length);
  return out;
}

/**
 * Causal GQA for one sequence, fused as the native kernel computes it (native/src/attention.c):
 * per query vector, the cache in chunks of ATTENTION_CHUNK rows at fixed positions; per chunk the
 * scores f32(q.k) * scale (q rounded to f16 for an F16 cache, to Q8_0 for a Q8_0 cache), their
 * maximum m, the weights exp(s - m) with their sum, and the weighted sum of V; the chunks merged in
 * order (online softmax), a sink joining last, the vector divided by the sum. A vector whose visible
 * rows lie in one chunk takes llama.cpp's unfused path instead: softmax (with the sink), weights
 * rounded to f16 for an F16 cache, then the weighted sum. Sinks and a sliding window as
 * AttentionParams describes them (the model twin is model/blocks/attention-sinks.ts).
 */
export function refAttention(q: Float32Array, kCache: Uint8Array, vCache: Uint8Array, p: AttentionParams, out: Float32Array): void {
  const { nTokens, nHead, nKvHead, headDim: d, pos0 } = p;
  const row = nKvHead * d;
  if (p.kvTiles && p.kvType === 8) {
    // The same positions read from their tiles: the attention of the rows they hold.
    const rowsOf = (cache: Uint8Array, part: 'k' | 'v') => {
      const cap = kvCapacity(cache.byteLength, row, 8);
      const hb = (d / 32) * 34;
      const rows = new Uint8Array(cap * nKvHead * hb);
      for (let h = 0; h < nKvHead; h++)
        rows.set(rowsFromTiles(cache.subarray(h * cap * hb, (h + 1) * cap * hb), cap, hb, part), h * cap * hb);
      return rows;
    };
    refAttention(q, rowsOf(kCache, 'k'), rowsOf(vCache, 'v'), { ...p, kvTiles: false }, out);
    return;
  }
  const kCap = kvCapacity(kCache.byteLength, row, p.kvType);
  const vCap = kvCapacity(vCache.byteLength, row, p.kvType);
  const k = cacheReader(kCache, p.kvType, kCap * row);
  const v = cacheReader(vCache, p.kvType, vCap * row);
  const half = p.kvType === 1;
  const q8 = p.kvType === 8;
  const group = nHead / nKvHead;
  const cap = f(p.softcap ?? 0);
  const capInv = cap > 0 ? f(1 / cap) : 0;
  const weights = new Float64Array(ATTENTION_CHUNK);
  const qh = new Float64Array(d);
  const acc = new Float64Array(d);
  const chunkAcc = new Float64Array(d);
  for (let t = 0; t < nTokens; t++) {
    const nCtx = pos0 + t + 1;
    for (let h = 0; h < nHead; h++) {
      const kvHead = Math.floor(h / group);
      // Element of dimension i of position j's row in this head's stretch of each cache.
      const kAt = (j: number) => (kvHead * kCap + j) * d;
      const vAt = (j: number) => (kvHead * vCap + j) * d;
      const qOff = (t * nHead + h) * d;
      const qv = q8 ? roundToQ8(q.subarray(qOff, qOff + d)) : undefined;
      for (let i = 0; i < d; i++) qh[i] = qv ? qv[i] : half ? roundToF16(q[qOff + i]) : q[qOff + i];
      const first = p.window && nCtx > p.window ? nCtx - p.window : 0;
      const score = (j: number) => {
        let dot = 0;
        const at = kAt(j);
        for (let i = 0; i < d; i++) dot += k(at + i) * qh[i];
        const s = f(f(dot) * f(p.scale));
        return cap > 0 ? f(cap * f(Math.tanh(f(s * capInv)))) : s;
      };
      if (Math.floor(first / ATTENTION_CHUNK) === Math.floor((nCtx - 1) / ATTENTION_CHUNK)) {
        // All it sees lies in one chunk: unfused, as llama.cpp without flash attention.
        for (let j = first; j < nCtx; j++) weights[j - first] = score(j);
        softmaxRow(weights, 0, nCtx - first, p.sinks?.[h]);
        for (let i = 0; i < d; i++) {
          let sum = 0;
          for (let j = first; j < nCtx; j++) sum += (half ? roundToF16(weights[j - first]) : weights[j - first]) * v(vAt(j) + i);
          out[qOff + i] = sum;
        }
        continue;
      }
      let max = -Infinity;
      let sum = 0;
      for (let lo = first - (first % ATTENTION_CHUNK); lo < nCtx; lo += ATTENTION_CHUNK) {
        const a = Math.max(lo, first);
        const b = Math.min(lo + ATTENTION_CHUNK, nCtx);
        let m = -Infinity;
        for (let j = a; j < b; j++) {
          weights[j - a] = score(j);
          m = Math.max(m, weights[j - a]);
        }
        let l = 0;
        chunkAcc.fill(0);
        for (let j = a; j < b; j++) {
          const w = f(Math.exp(f(weights[j - a] - m)));
          l += w;
          for (let i = 0; i < d; i++) chunkAcc[i] += w * v(vAt(j) + i);
        }
        if (sum === 0) {
          max = m;
          sum = l;
          for (let i = 0; i < d; i++) acc[i] = f(chunkAcc[i]);
          continue;
        }
        const mx = Math.max(max, m);
        const ra = f(Math.exp(f(max - mx)));
        const rb = f(Math.exp(f(m - mx)));
        sum = sum * ra + l * rb;
        for (let i = 0; i < d; i++) acc[i] = f(f(acc[i] * ra) + f(f(chunkAcc[i]) * rb));
        max = mx;
      }
      let scale = 1;
      const sink = p.sinks?.[h];
      if (sink !== undefined) {
        const mx = Math.max(max, sink);
        scale = f(Math.exp(f(max - mx)));
        sum = sum * scale + f(Math.exp(f(sink - mx)));
      }
      const inv = f(1 / sum);
      for (let i = 0; i < d; i++) out[qOff + i] = f(f(acc[i] * scale) * inv);
    }
  }
}
