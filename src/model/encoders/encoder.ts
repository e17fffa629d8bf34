/**
 * An encoder's forward pass (BERT and nomic-bert, as llama.cpp builds their graphs): it reads each
 * sequence whole, in one pass with bidirectional attention, and returns every token's final hidden
 * state; nothing is cached between calls. This is why it is not a decoder shard: there is no KV
 * cache to fill and no step to resume, no logits, and no layer range to hand to another machine,
 * so the decoder's slots, scheduler and pipeline have nothing to do here. Several sequences may be
 * packed into one call: the per-token parts (projections, norms, FFN) run over all their rows at
 * once and attention over each sequence's own rows.
 *
 * Per layer (post-norm): attention, its output projection, + input, LayerNorm; FFN, + its input,
 * LayerNorm. The input is the token's row, plus token type 0's row, plus (BERT) its position's
 * row, then LayerNorm.
 */
import { CairnError } from '../../util/errors.js';
import type { Kernels } from '../../kernels/api.js';
import { FullAttention } from '../blocks/full-attention.js';
import { layerNorm } from '../blocks/layer-norm.js';
import { addRowBias, applyLinear, splitRows } from '../blocks/linear.js';
import type { EncoderConfig } from './config.js';
import type { EncoderLayerWeights, EncoderWeights } from './weights.js';

/** One sequence's rows in a packed batch. */
export interface EncoderSpan {
  readonly start: number;
  readonly n: number;
}

/** Token rows the FFN computes at once: its hidden-width buffers hold this many rows, not a whole sequence's. */
const FFN_CHUNK = 256;

/** The encoder, with its activations allocated for `maxTokens` rows per call. */
export class Encoder {
  private readonly x: Float32Array;
  private readonly h: Float32Array;
  private readonly q: Float32Array;
  private readonly k: Float32Array;
  private readonly v: Float32Array;
  private readonly qkv: Float32Array | undefined;
  private readonly attn: Float32Array;
  private readonly up: Float32Array;
  private readonly gate: Float32Array | undefined;
  private readonly ones: Float32Array | undefined;
  private readonly positions: Int32Array;
  private readonly typeRow: Float32Array | undefined;
  private readonly attention: FullAttention;

  constructor(
    readonly cfg: EncoderConfig,
    private readonly w: EncoderWeights,
    private readonly kernels: Kernels,
    /** Most rows one call takes (the longest sequence, or sequences packed together). */
    readonly maxTokens: number,
  ) {
    if (!(Number.isInteger(maxTokens) && maxTokens >= 1)) throw new RangeError(`an encoder for ${maxTokens} tokens`);
    const D = cfg.nEmbd;
    const kvw = cfg.nKvHead * cfg.headDim;
    const T = maxTokens;
    const F = Math.min(T, FFN_CHUNK) * cfg.nFf;
    this.x = new Float32Array(T * D);
    this.h = new Float32Array(T * D);
    this.q = new Float32Array(T * D);
    this.k = new Float32Array(T * kvw);
    this.v = new Float32Array(T * kvw);
    this.qkv = w.layers.some((l) => 'fused' in l.qkv) ? new Float32Array(T * (D + 2 * kvw)) : undefined;
    this.attn = new Float32Array(T * D);
    this.up = new Float32Array(F);
    this.gate = cfg.kind.ffn === 'swiglu' ? new Float32Array(F) : undefined;
    // GELU is the gated-GELU kernel with a gate of ones (times 1 is exact): ggml's own table.
    this.ones = cfg.kind.ffn === 'gelu' ? new Float32Array(F).fill(1) : undefined;
    this.positions = new Int32Array(T);
    if (w.types) {
      this.typeRow = new Float32Array(D);
      kernels.getRows(w.types.data, w.types.type, D, Int32Array.of(0), this.typeRow);
    }
    this.attention = new FullAttention({ nHead: cfg.nHead, nKvHead: cfg.nKvHead, headDim: cfg.headDim }, T, cfg.causal);
  }

  /** Bytes of the activation buffers. */
  get activationBytes(): number {
    return 4 * (this.x.length + this.h.length + this.q.length + this.k.length + this.v.length + (this.qkv?.length ?? 0) + this.attn.length + this.up.length + (this.gate?.length ?? 0) + (this.ones?.length ?? 0) + this.positions.length);
  }

  /**
   * The final hidden states (rows x nEmbd, a view of internal memory valid until the next call) of
   * the sequences `spans` packed in `tokens`, each read on its own.
   */
  forward(tokens: Int32Array, spans: readonly EncoderSpan[]): Float32Array {
    const steps = this.forwardSteps(tokens, spans);
    for (let r = steps.next(); ; r = steps.next()) if (r.done) return r.value;
  }

  /**
   * forward() one layer at a time: it yields after each layer (so a caller can let other work run
   * between them) and returns what forward() returns. The caller must not start another pass
   * before this one ends.
   */
  *forwardSteps(tokens: Int32Array, spans: readonly EncoderSpan[]): Generator<void, Float32Array, void> {
    const { cfg, kernels, w } = this;
    const D = cfg.nEmbd;
    const n = this.check(tokens, spans);
    const x = this.x.subarray(0, n * D);
    const ids = tokens.subarray(0, n);
    kernels.getRows(w.tokens.data, w.tokens.type, D, ids, x);
    if (this.typeRow) addRowBias(x, this.typeRow, n);
    const pos = this.positions.subarray(0, n);
    for (const s of spans) for (let i = 0; i < s.n; i++) pos[s.start + i] = i;
    if (w.positions) {
      const h = this.h.subarray(0, n * D);
      kernels.getRows(w.positions.data, w.positions.type, D, pos, h);
      kernels.add(x, h, n * D, x);
    }
    layerNorm(x, w.inputNorm, n, D, cfg.normEps, x);
    for (const layer of w.layers) {
      this.layer(layer, x, n, spans, pos);
      yield;
    }
    return x;
  }

  /** Checks the batch; returns its rows. */
  private check(tokens: Int32Array, spans: readonly EncoderSpan[]): number {
    let n = 0;
    for (const s of spans) {
      if (s.start !== n || !(Number.isInteger(s.n) && s.n >= 1)) throw new CairnError('BAD_ARGUMENT', 'sequence spans must cover the batch in order, none empty');
      if (this.w.positions && s.n > this.cfg.ctxTrain) {
        throw new CairnError('CONTEXT_FULL', `a sequence of ${s.n} tokens is longer than the ${this.cfg.ctxTrain} positions this model has`);
      }
      n += s.n;
    }
    if (n < 1 || n > this.maxTokens) throw new CairnError('BAD_ARGUMENT', `a batch of ${n} tokens (1 to ${this.maxTokens} allowed)`);
    if (tokens.length < n) throw new CairnError('BAD_ARGUMENT', `${tokens.length} token ids for a batch of ${n}`);
    const V = this.cfg.nVocab;
    for (let i = 0; i < n; i++) {
      if (!(tokens[i] >= 0 && tokens[i] < V)) throw new CairnError('BAD_ARGUMENT', `token id ${tokens[i]} is outside the vocabulary (0 to ${V - 1})`);
    }
    return n;
  }

  private layer(L: EncoderLayerWeights, x: Float32Array, n: number, spans: readonly EncoderSpan[], pos: Int32Array): void {
    const { cfg, kernels } = this;
    const D = cfg.nEmbd;
    const hd = cfg.headDim;
    const kvw = cfg.nKvHead * hd;
    const q = this.q.subarray(0, n * D);
    const k = this.k.subarray(0, n * kvw);
    const v = this.v.subarray(0, n * kvw);
    if ('fused' in L.qkv) {
      const all = this.qkv!.subarray(0, n * (D + 2 * kvw));
      applyLinear(kernels, L.qkv.fused, x, n, all);
      splitRows(all, n, [D, kvw, kvw], [q, k, v]);
    } else {
      applyLinear(kernels, L.qkv.q, x, n, q);
      applyLinear(kernels, L.qkv.k, x, n, k);
      applyLinear(kernels, L.qkv.v, x, n, v);
    }
    if (cfg.kind.positions === 'rope') {
      const r = cfg.rope;
      const p = { nRot: r.nRot, freqBase: r.freqBase, freqScale: r.freqScale, mode: r.mode };
      kernels.rope(q, n, cfg.nHead, hd, pos, p);
      kernels.rope(k, n, cfg.nKvHead, hd, pos, p);
    }
    const attn = this.attn.subarray(0, n * D);
    const scale = 1 / Math.sqrt(hd);
    for (const s of spans) {
      this.attention.forward(
        kernels,
        q.subarray(s.start * D, (s.start + s.n) * D),
        k.subarray(s.start * kvw, (s.start + s.n) * kvw),
        v.subarray(s.start * kvw, (s.start + s.n) * kvw),
        s.n,
        scale,
        attn.subarray(s.start * D, (s.start + s.n) * D),
      );
    }
    const h = this.h.subarray(0, n * D);
    applyLinear(kernels, L.out, attn, n, h);
    kernels.add(h, x, n * D, h);
    layerNorm(h, L.attnNorm, n, D, cfg.normEps, x);
    // x is now the FFN's input; h gets the FFN's output, chunk by chunk.
    const F = cfg.nFf;
    for (let r0 = 0; r0 < n; r0 += FFN_CHUNK) {
      const m = Math.min(FFN_CHUNK, n - r0);
      const xin = x.subarray(r0 * D, (r0 + m) * D);
      const up = this.up.subarray(0, m * F);
      applyLinear(kernels, L.up, xin, m, up);
      if (L.gate) {
        const gate = this.gate!.subarray(0, m * F);
        applyLinear(kernels, L.gate, xin, m, gate);
        kernels.swiglu(gate, up, m * F, up);
      } else {
        kernels.geglu(up, this.ones!.subarray(0, m * F), m * F, up);
      }
      applyLinear(kernels, L.down, up, m, h.subarray(r0 * D, (r0 + m) * D));
    }
    kernels.add(h, x, n * D, h);
    layerNorm(h, L.outNorm, n, D, cfg.normEps, x);
  }
}
