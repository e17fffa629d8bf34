/**
 * An expert rank of an expert-parallel group: for the group's layer range it holds only its range of
 * each MoE layer's routed experts: no attention, no KV cache, no router, no shared experts. The
 * group's home routes every token and sends a rank, layer by layer, only the tokens routed to its
 * experts (their FFN input, chosen experts and weights); the rank returns each token's weighted sum
 * of those experts' outputs. Its memory is its experts and one batch of activations.
 */
import { CairnError } from '../util/errors.js';
import type { Kernels } from '../kernels/api.js';
import type { MoeFfn } from './blocks/moe-ffn.js';
import type { Scratch, Workspace } from './blocks/workspace.js';
import type { ModelConfig } from './config.js';
import type { ShardWeights } from './decoder.js';
import type { ShardSpec } from './shard.js';
import type { Range } from './tensor-split.js';

/** A loaded expert rank. */
export class ExpertShard {
  readonly maxBatch: number;
  /** Bytes of its activation buffers. */
  readonly activationBytes: number;
  private readonly out: Scratch;

  /** `layers[i]`: the experts of the shard's layer i (layerStart + i), undefined for a layer without them. */
  constructor(
    readonly cfg: ModelConfig,
    readonly shard: ShardSpec,
    private readonly layers: readonly (MoeFfn | undefined)[],
    /** Routed experts each token chooses, by layer (0 where none). */
    private readonly used: readonly number[],
    readonly weights: ShardWeights,
    private readonly kernels: Kernels,
    ws: Workspace,
  ) {
    this.maxBatch = ws.maxBatch;
    this.out = ws.buffer('experts.out', cfg.nEmbd);
    ws.allocate();
    this.activationBytes = ws.bytes;
  }

  /** Layers of the shard (its index space for compute()). */
  get layerCount(): number {
    return this.layers.length;
  }

  /** The experts [first, end) this rank holds of the shard's layer `layer`, or undefined where it has none. */
  held(layer: number): Range | undefined {
    return this.layers[layer]?.heldExperts;
  }

  /** Experts each token chooses in the shard's layer `layer` (0 where the layer has none). */
  usedAt(layer: number): number {
    return this.used[layer] ?? 0;
  }

  /**
   * The weighted outputs of this rank's experts for `n` tokens of the shard's layer `layer`:
   * input n x nEmbd (the FFN's input), ids and weights n x used (each token's chosen experts, the
   * layer's ids, in the router's order). Returns n x nEmbd, a view of internal memory valid until
   * the next call: for each token Σ weight x output over its chosen experts this rank holds. Throws
   * BAD_ARGUMENT for a layer without experts or sizes that do not fit (bytes from a peer).
   */
  compute(layer: number, n: number, input: Float32Array, ids: Int32Array, weights: Float32Array): Float32Array {
    const block = Number.isInteger(layer) ? this.layers[layer] : undefined;
    if (!block) throw new CairnError('BAD_ARGUMENT', `layer ${layer} of this expert rank holds no experts`);
    const k = this.used[layer];
    const d = this.cfg.nEmbd;
    if (!(Number.isInteger(n) && n >= 1 && n <= this.maxBatch)) throw new CairnError('BAD_ARGUMENT', `${n} tokens for an expert rank (1 to ${this.maxBatch})`);
    if (input.length < n * d || ids.length < n * k || weights.length < n * k) {
      throw new CairnError('BAD_ARGUMENT', `an expert step of ${n} tokens needs ${n * d} inputs and ${n * k} expert ids and weights`);
    }
    const out = this.out.rows(n);
    block.computeRouted(input, n, ids, weights, out, this.kernels);
    return out;
  }
}
