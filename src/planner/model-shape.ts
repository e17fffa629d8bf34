/**
 * The model's shape as the cost model uses it. A ModelMeta made without a shape (older callers,
 * tests of the pipeline planner) still plans and predicts as whole layers: each layer then reads
 * its active bytes and holds the rest as if in experts no token uses, and it cannot be split.
 */
import type { LayerShape, ModelMeta, ModelShape } from './types.js';

/** The weight type of layers whose type is not known: read at the node's plain speed. */
export const ANY_TYPE = '*';

/** The model's shape, or a whole-layer stand-in (`splittable` false) when the meta has none. */
export function shapeOf(meta: ModelMeta): { shape: ModelShape; splittable: boolean } {
  if (meta.shape && meta.shape.layers.length === meta.nLayer) return { shape: meta.shape, splittable: true };
  const layers = meta.layerBytes.map((held, l): LayerShape => ({
    attentionBytes: 0,
    kvProjectionBytes: 0,
    denseFfnBytes: meta.layerActiveBytes[l],
    // Held but not read per token: one expert of which no token uses any.
    expertBytes: Math.max(0, held - meta.layerActiveBytes[l]),
    experts: held > meta.layerActiveBytes[l] ? 1 : 0,
    expertsUsed: 0,
    sharedExpertBytes: 0,
    replicatedBytes: 0,
    // About one parameter per byte (8-bit weights): used only for compute-bound estimates.
    activeParameters: meta.layerActiveBytes[l],
    ffnWidth: 1,
    weightType: ANY_TYPE,
  }));
  const nEmbd = Math.max(1, Math.round(meta.activationBytesPerToken / 2));
  return {
    shape: {
      nEmbd,
      nHead: 1,
      nKvHead: 1,
      headDim: 1,
      nVocab: 1,
      blockSize: 1,
      layers,
      headParameters: meta.headActiveBytes,
      headWeightType: ANY_TYPE,
    },
    splittable: false,
  };
}

/** The weight type holding most bytes of the model's layers. */
export function mainWeightType(shape: ModelShape): string {
  const bytes = new Map<string, number>();
  for (const l of shape.layers) {
    const b = l.attentionBytes + l.kvProjectionBytes + l.denseFfnBytes + l.expertBytes + l.sharedExpertBytes + l.replicatedBytes;
    bytes.set(l.weightType, (bytes.get(l.weightType) ?? 0) + b);
  }
  let best = ANY_TYPE;
  let most = -1;
  for (const [t, b] of bytes) if (b > most) [best, most] = [t, b];
  return best;
}
