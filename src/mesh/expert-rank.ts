/**
 * An expert rank as the node that runs it holds it: its range of the routed experts of a layer
 * range, and nothing else (no KV cache, no steps of its own). Its home sends it, layer by layer,
 * the tokens routed to its experts; it answers with their weighted outputs. Every request is
 * checked before it is used: it must come from the home, name this plan and one of the rank's
 * expert layers, and carry exactly the bytes its token count says.
 */
import type { Frame } from '../cluster/index.js';
import type { LoadedExpertRank } from '../engine/load.js';
import { CairnError } from '../util/errors.js';
import { unpackMessage } from '../util/message-framing.js';
import type { StageSizes } from './limits.js';
import type { ExpertStepHead } from './protocol.js';

/** One node's loaded expert rank. */
export class ExpertRankRunner {
  constructor(
    readonly loaded: LoadedExpertRank,
    readonly epoch: number,
    /** The node that may send requests: the group's home. */
    private readonly homeNodeId: string,
  ) {}

  /** Sizes that bound what this rank receives (limits.ts): one step's tokens, no KV cache. */
  get sizes(): StageSizes {
    const c = this.loaded.config;
    return { maxBatch: this.loaded.expert.maxBatch, nEmbd: c.nEmbd, nVocab: c.nVocab, slots: 1, kvBytesPerSlot: 0 };
  }

  /** Answers an expert request from `fromNodeId`: the outputs (f32 bytes), or throws naming what is wrong. */
  answer(fromNodeId: string, frame: Frame): Buffer {
    if (fromNodeId !== this.homeNodeId) throw new CairnError('CLUSTER_PROTOCOL', `node ${fromNodeId} is not the home of this expert rank`);
    const { head, bodies } = unpackMessage<ExpertStepHead>(frame.payload, { bodies: 3, what: 'expert request' });
    if (typeof head !== 'object' || head === null) throw new CairnError('CLUSTER_PROTOCOL', 'an expert request without its head');
    const { epoch, layer, n } = head;
    if (epoch !== this.epoch) throw new CairnError('CLUSTER_PROTOCOL', `an expert request of plan ${String(epoch)}; this rank runs plan ${this.epoch}`);
    const expert = this.loaded.expert;
    if (!Number.isSafeInteger(layer) || layer < 0 || layer >= expert.layerCount || !expert.held(layer)) {
      throw new CairnError('CLUSTER_PROTOCOL', `an expert request for layer ${String(layer)}, which holds no experts here`);
    }
    if (!Number.isSafeInteger(n) || n < 1 || n > expert.maxBatch) throw new CairnError('CLUSTER_PROTOCOL', `an expert request of ${String(n)} tokens (1 to ${expert.maxBatch})`);
    const d = this.loaded.config.nEmbd;
    const k = expert.usedAt(layer);
    const [input, ids, weights] = bodies;
    if (input.length !== n * d * 4 || ids.length !== n * k * 4 || weights.length !== n * k * 4) {
      throw new CairnError('CLUSTER_PROTOCOL', `an expert request of ${n} tokens with ${input.length}, ${ids.length} and ${weights.length} bytes`);
    }
    const out = expert.compute(layer, n, f32(input), new Int32Array(copy(ids)), f32(weights));
    return Buffer.from(out.buffer, out.byteOffset, n * d * 4);
  }

  close(): void {
    this.loaded.close();
  }
}

/** The bytes in a buffer of their own (4-byte aligned for typed views). */
function copy(b: Buffer): ArrayBuffer {
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.length) as ArrayBuffer;
}

function f32(b: Buffer): Float32Array {
  return new Float32Array(copy(b));
}
