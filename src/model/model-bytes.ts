/**
 * What a model holds and reads, from its file's tensor index and its family's declarations (a dry
 * build, nothing mapped): bytes per layer, embedding, head and shared tensors, each held in memory
 * and read per decode token; and the activation memory of a shard. The planner, the mesh, `inspect`
 * and `bench` take their sizes from here.
 */
import type { GgufFile } from '../gguf/reader.js';
import type { ModelConfig } from './config.js';
import { checkSplittable, declareExpertShard, declareShard } from './build-shard.js';
import { GgufTensorSource, type PartBytes } from './gguf-tensor-source.js';
import { expertSplitOf, tensorSplitOf, wholeModel, type ShardSpec } from './shard.js';
import type { TensorSlice } from './tensor-slices.js';
import { Workspace } from './blocks/workspace.js';

export type { PartBytes } from './gguf-tensor-source.js';

/** A model's bytes by part. */
export interface ModelBytes {
  /** Per layer (length nLayer). */
  readonly layers: readonly PartBytes[];
  /** The token embedding table: a token reads one row. */
  readonly embed: PartBytes;
  /** Final norm and head; a tied head holds and reads the embedding table too. */
  readonly head: PartBytes;
  /** Tensors every shard holds once (rope frequency factors). */
  readonly shared: PartBytes;
  /** Bytes of the distinct tensors the model uses. */
  readonly total: number;
  /** Bytes a decode step reads per token: every part's active bytes. */
  readonly activePerToken: number;
  /** Parameters of the tensors the model uses (a tensor two parts share counts once). */
  readonly parameters: number;
  /** Parameters a token uses: the whole of a dense model; a Mixture-of-Experts model's chosen experts only. */
  readonly activeParameters: number;
}

/** A model's bytes and the activation memory of a shard running `batch` tokens at once. */
export interface ModelSurvey {
  readonly bytes: ModelBytes;
  /** f32 activations of a shard (any range) for `batch` tokens, plus logits of up to 8 rows. */
  readonly activationBytes: number;
}

/** Surveys a model by declaring all of it through a dry tensor source; throws where the file does not fit its family. */
export function surveyModel(file: GgufFile, cfg: ModelConfig, batch = 1): ModelSurvey {
  const src = new GgufTensorSource(file);
  const ws = new Workspace(batch);
  declareShard(cfg, wholeModel(cfg), src, ws);
  const layers = Array.from({ length: cfg.nLayer }, (_, l) => src.bytesOf(l));
  const embed = src.bytesOf('embed');
  const head = src.bytesOf('head');
  const shared = src.bytesOf('shared');
  const parts = [embed, head, shared, ...layers];
  const activePerToken = parts.reduce((a, p) => a + p.activePerToken, 0);
  // A tied head uses the whole embedding table, which covers the row the embedding reads.
  const activeParameters = parts.reduce((a, p) => a + p.activeParameters, 0) - (src.partsShare('embed', 'head') ? embed.activeParameters : 0);
  return {
    bytes: { layers, embed, head, shared, total: src.totalBytes, activePerToken, parameters: src.totalParameters, activeParameters },
    activationBytes: ws.bytes + 4 * cfg.nVocab * Math.min(batch, 8),
  };
}

/** A model's bytes by part. */
export function modelBytes(file: GgufFile, cfg: ModelConfig): ModelBytes {
  return surveyModel(file, cfg).bytes;
}

/** Names of the tensors a shard of layers [layerStart, layerEnd) reads: what a node must hold to run it. */
export function shardTensorNames(file: GgufFile, cfg: ModelConfig, range: Pick<ShardSpec, 'layerStart' | 'layerEnd'>): string[] {
  const src = new GgufTensorSource(file);
  declareShard(cfg, { layerStart: range.layerStart, layerEnd: range.layerEnd, splitRank: 0, splitCount: 1 }, src, new Workspace(1));
  return src.names();
}

/**
 * What a shard reads of each tensor, in the order first declared: all of it (undefined) or a slice
 * a shard file may hold alone (tensor-slices.ts). A tensor- or expert-parallel rank reads slices of
 * its split tensors; an expert rank only its experts.
 */
export function shardTensorSlices(file: GgufFile, cfg: ModelConfig, spec: ShardSpec): Map<string, TensorSlice | undefined> {
  const experts = expertSplitOf(spec);
  const src = new GgufTensorSource(file, undefined, tensorSplitOf(spec), experts);
  const ws = new Workspace(1);
  if (experts && experts.rank > 0) declareExpertShard(cfg, spec, src, ws);
  else {
    checkSplittable(cfg, spec);
    declareShard(cfg, spec, src, ws);
  }
  return src.slices();
}
