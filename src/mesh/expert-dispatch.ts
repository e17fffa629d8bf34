/**
 * The home's side of an expert-parallel group: at each MoE layer of a step the home has routed every
 * token and computed its own experts' pairs; each expert rank is sent only the tokens with a chosen
 * expert in its range (their FFN inputs, chosen experts and weights) and answers with their
 * weighted outputs, which the home adds in rank order. A rank none of whose experts a token chose
 * gets no message for that layer. An answer of the wrong size, or one that never comes (the
 * connection closed), fails the step; the coordinator plans again.
 */
import { DType, type PeerConnection } from '../cluster/index.js';
import type { ModelConfig } from '../model/config.js';
import type { ExpertDispatch } from '../model/blocks/types.js';
import { addRows, gatherRows, routedRows } from '../model/expert-group.js';
import { familyOf } from '../model/registry.js';
import type { ShardSpec } from '../model/shard.js';
import { expertRange, type Range } from '../model/tensor-split.js';
import { CairnError } from '../util/errors.js';
import { packMessage } from '../util/message-framing.js';
import { MeshFrame, type ExpertStepHead } from './protocol.js';

/** Longest an expert rank may take to answer one layer's request. */
const ANSWER_TIMEOUT_MS = 120_000;

/** A home's connections to its expert ranks, and the expert ranges each holds by layer. */
export class ExpertDispatcher {
  /** ranges[l][r - 1]: the experts rank r holds in the shard's layer l (undefined: a layer without experts). */
  private readonly ranges: (readonly Range[] | undefined)[];

  /** `ranks[r - 1]`: the connection to rank r (r >= 1) of the group `spec` is the home (rank 0) of. */
  constructor(
    private readonly cfg: ModelConfig,
    spec: ShardSpec,
    readonly epoch: number,
    private readonly ranks: readonly PeerConnection[],
  ) {
    const family = familyOf(cfg);
    const shares = spec.splitShares;
    this.ranges = [];
    for (let l = spec.layerStart; l < spec.layerEnd; l++) {
      const ffn = family.layerPlan(cfg, l).ffn;
      this.ranges.push(
        ffn.kind === 'moe' ? ranks.map((_, i) => expertRange(ffn.experts, { rank: i + 1, count: spec.splitCount, shares })) : undefined,
      );
    }
  }

  /** Fills `d.result` with the expert ranks' outputs for the tokens routed to them. */
  async dispatch(step: number, d: ExpertDispatch): Promise<void> {
    const ranges = this.ranges[d.layer];
    if (!ranges) throw new CairnError('BAD_ARGUMENT', `layer ${d.layer} of this group has no experts to dispatch`);
    const D = this.cfg.nEmbd;
    const answers = await Promise.all(
      this.ranks.map(async (conn, i) => {
        const rows = routedRows(d, ranges[i]);
        if (rows.length === 0) return undefined;
        if (!conn.isOpen) throw new CairnError('CLUSTER_CLOSED', `expert rank ${i + 1} of the group disconnected`);
        const g = gatherRows(d, rows, D);
        const head: ExpertStepHead = { epoch: this.epoch, step, layer: d.layer, n: rows.length };
        const payload = packMessage(head, bytesOf(g.input), bytesOf(g.ids), bytesOf(g.weights));
        const reply = await conn.request(MeshFrame.experts, { dtype: DType.raw }, payload, { timeoutMs: ANSWER_TIMEOUT_MS });
        const body = reply.payload;
        if (body.length !== rows.length * D * 4) {
          throw new CairnError('CLUSTER_PROTOCOL', `expert rank ${i + 1} answered ${body.length} bytes for ${rows.length} tokens of ${D}`);
        }
        // A copy, aligned for the f32 view: the frame's buffer is not ours to keep.
        const out = new Float32Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.length));
        return { rows, out };
      }),
    );
    for (const a of answers) if (a) addRows(d, a.rows, a.out, D);
  }
}

function bytesOf(v: Float32Array | Int32Array): Buffer {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}
