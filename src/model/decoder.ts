/**
 * The forward pass of a shard of a decoder-only transformer in the Llama family. Llama, Mistral,
 * Qwen2 and Qwen3 share one block shape and differ only in the pieces the weights reveal (QKV bias,
 * per-head Q/K norm) and in the rope layout the config names, so one file runs all of them; a
 * family with a different block shape gets its own file beside this one.
 *
 * A forward call takes a batch of tokens from one or more sequences (each with its own KV-cache
 * slot and start position), runs the shard's layers, and returns hidden states or, on the last
 * shard, logits for the rows asked for. Buffers are allocated once for `maxBatch` tokens.
 */
import { CairnError } from '../util/errors.js';
import type { AttentionParams, Kernels, RopeParams } from '../kernels/api.js';
import type { ModelConfig } from './config.js';
import { KvCache } from './kv-cache.js';
import { isFirstShard, isLastShard, type ShardSpec } from './shard.js';
import type { LayerWeights, Matrix, ShardWeights } from './weights.js';

/** A run of consecutive batch rows that belong to one sequence. */
export interface SeqSpan {
  /** KV-cache slot of the sequence. */
  readonly slot: number;
  /** Position of the span's first token in the sequence. */
  readonly pos0: number;
  /** First batch row of the span. */
  readonly start: number;
  /** Number of rows. */
  readonly n: number;
}

/** The input of one forward call. */
export interface ShardBatch {
  readonly nTokens: number;
  /** Token ids (first shard). */
  readonly tokens?: Int32Array;
  /** Hidden states, nTokens x nEmbd (later shards). */
  readonly hidden?: Float32Array;
  readonly spans: readonly SeqSpan[];
  /** Batch rows that need logits (last shard); each gets one row of nVocab in the result. */
  readonly outputRows?: ArrayLike<number>;
}

/** A loaded shard: weights, KV cache and preallocated activations. */
export class DecoderShard {
  readonly maxBatch: number;
  private readonly x: Float32Array;
  private readonly h: Float32Array;
  private readonly q: Float32Array;
  private readonly k: Float32Array;
  private readonly v: Float32Array;
  private readonly attn: Float32Array;
  private readonly gate: Float32Array;
  private readonly up: Float32Array;
  private readonly tmp: Float32Array;
  private readonly positions: Int32Array;
  private logits: Float32Array;
  private gathered: Float32Array;
  private readonly rope: RopeParams;
  private readonly attnParams: AttentionParams & { nTokens: number; pos0: number };

  constructor(
    readonly cfg: ModelConfig,
    readonly shard: ShardSpec,
    readonly weights: ShardWeights,
    readonly kv: KvCache,
    private readonly kernels: Kernels,
    maxBatch: number,
  ) {
    if (cfg.headDimV !== cfg.headDim) {
      throw new CairnError('MODEL_UNSUPPORTED', `value head size ${cfg.headDimV} differs from key head size ${cfg.headDim}`);
    }
    this.maxBatch = maxBatch;
    const { nEmbd, nHead, nKvHead, headDim, nFf } = cfg;
    this.x = new Float32Array(maxBatch * nEmbd);
    this.h = new Float32Array(maxBatch * nEmbd);
    this.q = new Float32Array(maxBatch * nHead * headDim);
    this.k = new Float32Array(maxBatch * nKvHead * headDim);
    this.v = new Float32Array(maxBatch * nKvHead * headDim);
    this.attn = new Float32Array(maxBatch * nHead * headDim);
    this.gate = new Float32Array(maxBatch * nFf);
    this.up = new Float32Array(maxBatch * nFf);
    this.tmp = new Float32Array(maxBatch * nEmbd);
    this.positions = new Int32Array(maxBatch);
    this.logits = new Float32Array(0);
    this.gathered = new Float32Array(0);
    this.rope = { ...cfg.rope, freqFactors: weights.ropeFreqs };
    this.attnParams = {
      nTokens: 0,
      nHead,
      nKvHead,
      headDim,
      pos0: 0,
      scale: 1 / Math.sqrt(headDim),
      kvType: kv.type,
    };
  }

  /**
   * Runs the shard on a batch. Returns a view of internal memory, valid until the next call:
   * nTokens x nEmbd hidden states, or (last shard) outputRows.length x nVocab logits.
   */
  forward(batch: ShardBatch): Float32Array {
    const { cfg, kernels } = this;
    const n = batch.nTokens;
    const D = cfg.nEmbd;
    this.checkBatch(batch);
    const x = this.x.subarray(0, n * D);
    if (isFirstShard(this.shard)) {
      const e = this.weights.embed!;
      kernels.getRows(e.data, e.type, e.cols, batch.tokens!, x);
    } else {
      x.set(batch.hidden!.subarray(0, n * D));
    }
    for (const s of batch.spans) {
      for (let i = 0; i < s.n; i++) this.positions[s.start + i] = s.pos0 + i;
    }
    for (let i = 0; i < this.weights.layers.length; i++) this.layer(i, batch);
    if (!isLastShard(this.shard, cfg)) return x;
    return this.head(batch);
  }

  private checkBatch(batch: ShardBatch): void {
    const n = batch.nTokens;
    if (!(n >= 1 && n <= this.maxBatch)) throw new CairnError('BAD_ARGUMENT', `batch of ${n} tokens (1 to ${this.maxBatch} allowed)`);
    if (isFirstShard(this.shard)) {
      const t = batch.tokens;
      if (!t || t.length < n) throw new CairnError('BAD_ARGUMENT', 'the first shard needs token ids');
      for (let i = 0; i < n; i++) {
        if (!(t[i] >= 0 && t[i] < this.cfg.nVocab)) throw new CairnError('BAD_ARGUMENT', `token id ${t[i]} is outside the vocabulary (0 to ${this.cfg.nVocab - 1})`);
      }
    } else if (!batch.hidden || batch.hidden.length < n * this.cfg.nEmbd) {
      throw new CairnError('BAD_ARGUMENT', 'a later shard needs hidden states of nTokens x nEmbd');
    }
    let covered = 0;
    for (const s of batch.spans) {
      if (s.slot < 0 || s.slot >= this.kv.slots) throw new CairnError('BAD_ARGUMENT', `KV slot ${s.slot} does not exist`);
      if (s.start !== covered || s.n < 1) throw new CairnError('BAD_ARGUMENT', 'sequence spans must cover the batch in order');
      if (s.pos0 < 0 || s.pos0 + s.n > this.kv.ctxPerSlot) {
        throw new CairnError('CONTEXT_FULL', `context full: positions up to ${s.pos0 + s.n} do not fit the ${this.kv.ctxPerSlot}-token context`);
      }
      covered += s.n;
    }
    if (covered !== n) throw new CairnError('BAD_ARGUMENT', 'sequence spans must cover the batch');
  }

  private matmul(w: Matrix, input: Float32Array, n: number, out: Float32Array): void {
    this.kernels.matmul(w.data, w.type, w.rows, w.cols, input, n, out);
  }

  private addBias(y: Float32Array, bias: Float32Array, n: number): void {
    const d = bias.length;
    for (let r = 0; r < n; r++) {
      const row = y.subarray(r * d, (r + 1) * d);
      this.kernels.add(row, bias, d, row);
    }
  }

  private layer(i: number, batch: ShardBatch): void {
    const { cfg, kernels } = this;
    const w: LayerWeights = this.weights.layers[i];
    const n = batch.nTokens;
    const D = cfg.nEmbd;
    const hd = cfg.headDim;
    const qDim = cfg.nHead * hd;
    const kvDim = cfg.nKvHead * hd;
    const x = this.x.subarray(0, n * D);
    const h = this.h.subarray(0, n * D);
    const q = this.q.subarray(0, n * qDim);
    const k = this.k.subarray(0, n * kvDim);
    const v = this.v.subarray(0, n * kvDim);
    const positions = this.positions.subarray(0, n);

    kernels.rmsNorm(x, w.attnNorm, n, D, cfg.rmsEps, h);
    this.matmul(w.wq, h, n, q);
    this.matmul(w.wk, h, n, k);
    this.matmul(w.wv, h, n, v);
    if (w.bq) this.addBias(q, w.bq, n);
    if (w.bk) this.addBias(k, w.bk, n);
    if (w.bv) this.addBias(v, w.bv, n);
    if (w.qNorm) kernels.rmsNorm(q, w.qNorm, n * cfg.nHead, hd, cfg.rmsEps, q);
    if (w.kNorm) kernels.rmsNorm(k, w.kNorm, n * cfg.nKvHead, hd, cfg.rmsEps, k);
    kernels.rope(q, n, cfg.nHead, hd, positions, this.rope);
    kernels.rope(k, n, cfg.nKvHead, hd, positions, this.rope);

    const attn = this.attn.subarray(0, n * qDim);
    const p = this.attnParams;
    for (const s of batch.spans) {
      const kc = this.kv.keys(i, s.slot);
      const vc = this.kv.values(i, s.slot);
      kernels.storeKv(
        k.subarray(s.start * kvDim, (s.start + s.n) * kvDim),
        v.subarray(s.start * kvDim, (s.start + s.n) * kvDim),
        kc,
        vc,
        this.kv.type,
        kvDim,
        s.pos0,
        s.n,
      );
      p.nTokens = s.n;
      p.pos0 = s.pos0;
      kernels.attention(q.subarray(s.start * qDim, (s.start + s.n) * qDim), kc, vc, p, attn.subarray(s.start * qDim, (s.start + s.n) * qDim));
    }
    const t = this.tmp.subarray(0, n * D);
    this.matmul(w.wo, attn, n, t);
    if (w.bo) this.addBias(t, w.bo, n);
    kernels.add(x, t, n * D, x);

    kernels.rmsNorm(x, w.ffnNorm, n, D, cfg.rmsEps, h);
    const F = cfg.nFf;
    const g = this.gate.subarray(0, n * F);
    const u = this.up.subarray(0, n * F);
    this.matmul(w.wGate, h, n, g);
    this.matmul(w.wUp, h, n, u);
    kernels.swiglu(g, u, n * F, g);
    this.matmul(w.wDown, g, n, t);
    kernels.add(x, t, n * D, x);
  }

  private head(batch: ShardBatch): Float32Array {
    const { cfg, kernels } = this;
    const D = cfg.nEmbd;
    const rows = batch.outputRows ?? [batch.nTokens - 1];
    const m = rows.length;
    if (this.gathered.length < m * D) this.gathered = new Float32Array(m * D);
    if (this.logits.length < m * cfg.nVocab) this.logits = new Float32Array(m * cfg.nVocab);
    const g = this.gathered.subarray(0, m * D);
    for (let j = 0; j < m; j++) {
      const r = rows[j];
      if (!(r >= 0 && r < batch.nTokens)) throw new CairnError('BAD_ARGUMENT', `output row ${r} is outside the batch`);
      g.set(this.x.subarray(r * D, (r + 1) * D), j * D);
    }
    kernels.rmsNorm(g, this.weights.outputNorm!, m, D, cfg.rmsEps, g);
    const out = this.logits.subarray(0, m * cfg.nVocab);
    this.matmul(this.weights.output!, g, m, out);
    return out;
  }
}
