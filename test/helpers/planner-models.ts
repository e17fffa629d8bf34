/**
 * Dense model descriptions for the planner's tests: every layer alike, one byte per weight
 * (Q8_0-like), attention with grouped KV heads.
 */
import type { LayerShape, ModelMeta } from '../../src/planner/types.js';

/** The dimensions of a dense model. */
export interface DenseDims {
  readonly nEmbd: number;
  readonly nFf: number;
  readonly nLayer: number;
  readonly nHead: number;
  readonly nKvHead: number;
  readonly nVocab: number;
  /** Working memory of a stage, bytes. */
  readonly workingBytes: number;
}

/** A dense model of `d` at one byte per weight. */
export function denseModel(d: DenseDims): ModelMeta {
  const { nEmbd, nFf, nLayer, nVocab } = d;
  const kvDim = (nEmbd / d.nHead) * d.nKvHead;
  const layer: LayerShape = {
    attentionBytes: 2 * nEmbd * nEmbd,
    kvProjectionBytes: 2 * nEmbd * kvDim,
    denseFfnBytes: 3 * nEmbd * nFf,
    expertBytes: 0,
    experts: 0,
    expertsUsed: 0,
    sharedExpertBytes: 0,
    replicatedBytes: 2 * nEmbd * 4,
    activeParameters: 2 * nEmbd * nEmbd + 2 * nEmbd * kvDim + 3 * nEmbd * nFf,
    ffnWidth: nFf,
    weightType: 'Q8_0',
  };
  const bytes = layer.attentionBytes + layer.kvProjectionBytes + layer.denseFfnBytes + layer.replicatedBytes;
  return {
    nLayer,
    layerBytes: Array(nLayer).fill(bytes),
    layerActiveBytes: Array(nLayer).fill(bytes),
    embedBytes: nVocab * nEmbd,
    headBytes: nVocab * nEmbd,
    headActiveBytes: nVocab * nEmbd,
    kvBytesPerToken: Array(nLayer).fill(2 * kvDim * 2),
    activationBytesPerToken: nEmbd * 2,
    workingBytes: d.workingBytes,
    shape: {
      nEmbd,
      nHead: d.nHead,
      nKvHead: d.nKvHead,
      headDim: nEmbd / d.nHead,
      nVocab,
      blockSize: 32,
      layers: Array(nLayer).fill(layer),
      headParameters: nVocab * nEmbd,
      headWeightType: 'Q8_0',
    },
  };
}
