/**
 * What one rank of a group holds and reads of one layer, given the fractions of the layer it
 * has: of the query heads (`heads`), of the KV heads (`kv`), of the dense or shared-expert FFN
 * columns (`columns`) and of the routed experts (`experts`, whole experts out of all). Reads are per step of `tokens`
 * tokens: dense parts once, routed experts as many as the batch touches, the KV cache of every
 * sequence up to `context` positions. FLOPs are 2 per active parameter per token plus attention
 * over the context (2 x 2 x heads x headDim per position).
 */
import { expertsRead } from './experts.js';
import type { LayerShape, ModelShape } from './types.js';

/** A rank's fractions of a layer. */
export interface LayerPart {
  readonly heads: number;
  readonly kv: number;
  readonly columns: number;
  /** Fraction of the routed experts held (whole experts). */
  readonly experts: number;
  /** True when the rank runs the layer's attention, dense FFN, shared experts and router (false: experts only). */
  readonly attention: boolean;
}

/** The whole of a layer. */
export const WHOLE: LayerPart = { heads: 1, kv: 1, columns: 1, experts: 1, attention: true };

function perExpert(l: LayerShape): number {
  return l.experts > 0 ? l.expertBytes / l.experts : 0;
}

/** Bytes of the layer's weights the rank holds. */
export function heldBytes(l: LayerShape, p: LayerPart): number {
  const attn = p.attention
    ? l.attentionBytes * p.heads + l.kvProjectionBytes * p.kv + l.replicatedBytes + (l.denseFfnBytes + l.sharedExpertBytes) * p.columns
    : 0;
  return attn + l.expertBytes * p.experts;
}

/** Bytes of the layer a token reads in whole-layer terms (for the parameters-per-byte of FLOP estimates). */
function activeBytes(l: LayerShape): number {
  return l.attentionBytes + l.kvProjectionBytes + l.replicatedBytes + l.denseFfnBytes + l.sharedExpertBytes + perExpert(l) * l.expertsUsed;
}

/** Bytes and FLOPs of one step of `tokens` tokens over the rank's part of a layer. */
export function stepWork(
  shape: ModelShape,
  l: LayerShape,
  kvBytesPerToken: number,
  p: LayerPart,
  tokens: number,
  context: number,
): { bytes: number; flops: number } {
  const whole = activeBytes(l);
  const paramsPerByte = whole > 0 ? l.activeParameters / whole : 0;
  let bytes = 0;
  let active = 0;
  if (p.attention) {
    const dense =
      l.attentionBytes * p.heads + l.kvProjectionBytes * p.kv + l.replicatedBytes + (l.denseFfnBytes + l.sharedExpertBytes) * p.columns;
    bytes += dense + kvBytesPerToken * p.kv * context * tokens;
    active += dense;
  }
  if (l.experts > 0 && p.experts > 0) {
    const held = l.experts * p.experts;
    bytes += expertsRead(l.experts, held, l.expertsUsed, tokens) * perExpert(l);
    active += ((l.expertsUsed * held) / l.experts) * perExpert(l);
  }
  let flops = 2 * tokens * active * paramsPerByte;
  if (p.attention) flops += 4 * tokens * shape.nHead * p.heads * shape.headDim * context;
  return { bytes, flops };
}
