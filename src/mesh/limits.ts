/**
 * How large each mesh message may be, by frame type and by which side receives it. The transport
 * checks a frame's declared length against these before it allocates anything, so a peer can
 * make a node hold at most one step's activations, one shard chunk or one slot's KV cache, each
 * sized from the model actually loaded. Anything without a reason to be large stays small.
 */
import { FrameFlags } from '../cluster/index.js';
import { MeshFrame } from './protocol.js';
import { scoreRowsFor } from '../engine/engine.js';

/** Sizes of the loaded model that bound a stage's messages. */
export interface StageSizes {
  /** Most tokens one step carries. */
  readonly maxBatch: number;
  readonly nEmbd: number;
  readonly nVocab: number;
  readonly slots: number;
  /** Bytes of one slot's whole KV cache on this side (all its layers). */
  readonly kvBytesPerSlot: number;
}

const KIB = 1024;
const MIB = 1024 * KIB;
/** Control-like JSON messages: a reason, an id, a small object. */
const SMALL = 64 * KIB;
/** JSON that lists per-tensor or per-token values (a shard manifest, a sequence's history). */
const LISTS = 16 * MIB;
/** A step's JSON head: spans and outputs of at most maxBatch rows, logprobs of each output. */
const HEAD = 2 * MIB;
/** Shard bytes travel in chunks of a few MiB; a little room above the sender's chunk size. */
const SHARD_CHUNK = 16 * MIB;

/** The limit of a frame a node receives (from its coordinator or the previous stage). `sizes` is undefined until a shard is loaded. */
export function nodeReceiveLimit(type: number, flags: number, sizes: StageSizes | undefined): number {
  // An expert rank's answer to its home: its outputs for at most a step's tokens.
  if (type === MeshFrame.experts && (flags & FrameFlags.response) !== 0) return sizes ? SMALL + sizes.maxBatch * sizes.nEmbd * 4 : SMALL;
  if ((flags & FrameFlags.response) !== 0) return SMALL;
  switch (type) {
    case MeshFrame.load:
    case MeshFrame.shardBegin:
    case MeshFrame.seqStart:
      return LISTS;
    case MeshFrame.shardChunk:
      return SHARD_CHUNK;
    case MeshFrame.forward:
      return sizes ? HEAD + sizes.maxBatch * sizes.nEmbd * 4 : HEAD;
    case MeshFrame.partial:
      return sizes ? SMALL + sizes.maxBatch * sizes.nEmbd * 4 : SMALL;
    case MeshFrame.experts:
      // Inputs (nEmbd f32) plus ids and weights (used x 8 bytes, used < nEmbd / 2 in any model) per token.
      return sizes ? SMALL + 2 * sizes.maxBatch * sizes.nEmbd * 4 : SMALL;
    case MeshFrame.kv:
      return sizes ? SMALL + sizes.kvBytesPerSlot : SMALL;
    default:
      return SMALL;
  }
}

/**
 * Rows of logits one step may carry back: one per sequence sampled at the coordinator (a
 * constrained one), and the rows of prompts being scored, which the engine reads in chunks of
 * SCORE_LOGITS_BYTES of logits a step (engine.ts).
 */
export function maxLogitsRows(sizes: Pick<StageSizes, 'slots' | 'nVocab'>): number {
  return sizes.slots + scoreRowsFor(sizes.nVocab);
}

/** The limit of a frame the coordinator receives from a node of a plan with these sizes. */
export function coordinatorReceiveLimit(type: number, flags: number, sizes: StageSizes): number {
  if (type === MeshFrame.kv && (flags & FrameFlags.response) !== 0) return SMALL + sizes.kvBytesPerSlot;
  // As rank 0 of a group: the other ranks' partial sums, and expert ranks' answers, of a step's tokens.
  if (type === MeshFrame.partial || (type === MeshFrame.experts && (flags & FrameFlags.response) !== 0)) return SMALL + sizes.maxBatch * sizes.nEmbd * 4;
  // Logits come back only for rows sampled here (constrained sequences) and rows of scored prompts.
  if (type === MeshFrame.result) return HEAD + maxLogitsRows(sizes) * sizes.nVocab * 4;
  return SMALL;
}
