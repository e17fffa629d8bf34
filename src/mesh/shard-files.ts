/**
 * Shipping a shard's weights to a node that lacks the model: the coordinator lays out a GGUF file
 * holding the model's metadata and only the shard's tensors, describes it in a manifest (the
 * SHA-256 of its header and of every tensor, computed from the coordinator's own copy of the
 * model), and streams it in chunks; the node checks every byte against the manifest it was given
 * (shard-receiver.ts) and keeps the file in its cache (shard-cache.ts) for the next start. A node
 * never needs the whole model, in memory or on disk: a rank of a tensor- or expert-parallel group
 * is sent only the slices of tensors it reads (model/tensor-slices.ts), not whole layers.
 */
import { createHash } from 'node:crypto';
import type { GgufFile, GgufTensorInfo } from '../gguf/reader.js';
import { ggufLayout } from '../gguf/writer.js';
import type { Frame, PeerConnection } from '../cluster/index.js';
import { frameJson, jsonPayload } from '../cluster/index.js';
import { CairnError } from '../util/errors.js';
import { readModelConfig } from '../model/config.js';
import { shardTensorNames, shardTensorSlices } from '../model/model-bytes.js';
import type { ShardSpec } from '../model/shard.js';
import { ggmlRowBytes } from '../gguf/ggml-types.js';
import { slicedDims, slicesMetadata, tensorBytes, type TensorSlice } from '../model/tensor-slices.js';
import type { HashedBytes } from './tensor-hashes.js';
import { hasControlCharacter } from './load-request.js';
import { MeshFrame, type ShardManifest } from './protocol.js';
import { tensorSha256s } from './tensor-hashes.js';

/** The tensors a shard [start, end) of a model needs, as the model's family declares them, in file order. */
export function shardTensors(file: GgufFile, nLayer: number, start: number, end: number): GgufTensorInfo[] {
  const cfg = readModelConfig(file);
  if (cfg.nLayer !== nLayer) throw new CairnError('BAD_ARGUMENT', `${file.path} has ${cfg.nLayer} layers, not ${nLayer}`);
  const needed = new Set(shardTensorNames(file, cfg, { layerStart: start, layerEnd: end }));
  return file.tensors.filter((t) => needed.has(t.name));
}

/** One tensor of a shard file: a model tensor, or the slice of it a rank reads. */
export interface ShardPiece {
  /** The model's tensor. */
  readonly source: GgufTensorInfo;
  readonly slice?: TensorSlice;
  /** Dims as the shard file stores them. */
  readonly dims: readonly number[];
  readonly byteLength: number;
  /** What of the model file to hash for it. */
  readonly hashed: HashedBytes;
  /** Its bytes, out of the source tensor's. */
  extract(whole: Uint8Array): Uint8Array;
}

/** A shard file as the coordinator will send it: its manifest, header bytes and pieces (in file order). */
export interface PreparedShard {
  readonly manifest: ShardManifest;
  readonly header: Uint8Array;
  readonly pieces: readonly ShardPiece[];
}

/** A shard file's tensor for what a shard reads of `t`: all of it, or a slice. */
function pieceOf(t: GgufTensorInfo, slice: TensorSlice | undefined): ShardPiece {
  if (!slice) return { source: t, dims: t.dims, byteLength: t.byteLength, hashed: t, extract: (whole) => whole };
  const dims = slicedDims(t.dims, slice);
  const byteLength = tensorBytes(t.type, dims);
  const key = `${t.name}#${slice.kind}:${slice.start}-${slice.end}`;
  if (slice.kind === 'outer') {
    const unit = t.byteLength / slice.full;
    const from = slice.start * unit;
    return {
      source: t,
      slice,
      dims,
      byteLength,
      hashed: { name: key, offset: t.offset + from, byteLength },
      extract: (whole) => whole.subarray(from, from + byteLength),
    };
  }
  const rows = t.dims[1];
  const rowBytes = ggmlRowBytes(t.type, t.dims[0]);
  const from = ggmlRowBytes(t.type, slice.start);
  const width = ggmlRowBytes(t.type, slice.end - slice.start);
  return {
    source: t,
    slice,
    dims,
    byteLength,
    hashed: { name: key, offset: t.offset, byteLength: rows * rowBytes, columns: { rows, rowBytes, from, width } },
    extract: (whole) => {
      const out = new Uint8Array(rows * width);
      for (let r = 0; r < rows; r++) out.set(whole.subarray(r * rowBytes + from, r * rowBytes + from + width), r * width);
      return out;
    },
  };
}

/** A shard file's layout: its header bytes and its pieces, with each piece's offset in the file. */
export interface ShardLayout {
  readonly header: Uint8Array;
  readonly pieces: readonly ShardPiece[];
  readonly offsets: readonly number[];
  readonly fileSize: number;
}

/**
 * Lays out the shard `spec` of a model (`file`, its header): its layers, and for a rank of a group
 * only the slices it reads. The same header gives the same layout, byte for byte, wherever it is
 * computed: on the coordinator from its copy, or on a node from the header of the published file.
 */
export function layoutShard(file: GgufFile, nLayer: number, spec: Pick<ShardSpec, 'layerStart' | 'layerEnd'> & Partial<ShardSpec>): ShardLayout {
  const { layerStart: start, layerEnd: end } = spec;
  let pieces: ShardPiece[];
  if ((spec.splitCount ?? 1) > 1) {
    const cfg = readModelConfig(file);
    if (cfg.nLayer !== nLayer) throw new CairnError('BAD_ARGUMENT', `${file.path} has ${cfg.nLayer} layers, not ${nLayer}`);
    const slices = shardTensorSlices(file, cfg, { splitRank: 0, splitCount: 1, ...spec });
    pieces = file.tensors.filter((t) => slices.has(t.name)).map((t) => pieceOf(t, slices.get(t.name)));
  } else {
    pieces = shardTensors(file, nLayer, start, end).map((t) => pieceOf(t, undefined));
  }
  const sliced = new Map(pieces.filter((p) => p.slice).map((p) => [p.source.name, p.slice!]));
  const metadata = sliced.size ? [...file.metadata, slicesMetadata(sliced)] : file.metadata;
  const layout = ggufLayout({ version: 3, alignment: file.alignment, metadata, tensors: pieces.map((p) => ({ name: p.source.name, type: p.source.type, dims: p.dims })) });
  return { header: layout.header, pieces, offsets: layout.tensors.map((t) => t.offset), fileSize: layout.fileSize };
}

/**
 * Lays out the shard `spec` of the model at `modelPath` (whose SHA-256 is `modelSha256`) and
 * writes its manifest from the model's own bytes. `onProgress` follows the hashing of what was
 * not hashed before.
 */
export async function prepareShard(
  modelPath: string,
  file: GgufFile,
  modelSha256: string,
  nLayer: number,
  spec: Pick<ShardSpec, 'layerStart' | 'layerEnd'> & Partial<ShardSpec>,
  onProgress?: (done: number, total: number) => void,
): Promise<PreparedShard> {
  const layout = layoutShard(file, nLayer, spec);
  const { pieces } = layout;
  const hashes = await tensorSha256s(modelPath, modelSha256, pieces.map((p) => p.hashed), onProgress);
  const manifest: ShardManifest = {
    modelSha256,
    layerStart: spec.layerStart,
    layerEnd: spec.layerEnd,
    fileSize: layout.fileSize,
    headerSha256: createHash('sha256').update(layout.header).digest('hex'),
    tensors: pieces.map((p, i) => ({ name: p.source.name, offset: layout.offsets[i], byteLength: p.byteLength, sha256: hashes[i] })),
  };
  return { manifest, header: layout.header, pieces };
}

const CHUNK = 8 << 20;

/**
 * Coordinator side: streams a prepared shard file to a node. `bytesOf` gives a tensor's bytes from
 * the mapped model. Stops early, with the node's reason, when the node gives the transfer up.
 */
export async function sendShard(
  conn: PeerConnection,
  shard: PreparedShard,
  bytesOf: (t: GgufTensorInfo) => Uint8Array,
  onProgress?: (done: number, total: number) => void,
): Promise<void> {
  const { manifest } = shard;
  let refused: string | undefined;
  const onFrame = (frame: Frame) => {
    if (frame.type !== MeshFrame.shardAbort) return;
    try {
      const { reason } = frameJson(frame) as { reason?: unknown };
      refused = typeof reason === 'string' && !hasControlCharacter(reason) ? reason.slice(0, 1000) : 'no reason given';
    } catch {
      refused = 'no reason given';
    }
  };
  conn.on('frame', onFrame);
  try {
    const b = jsonPayload(manifest);
    await conn.request(MeshFrame.shardBegin, b.meta, b.payload);
    let sent = 0;
    let seq = 0;
    const push = async (bytes: Uint8Array) => {
      for (let o = 0; o < bytes.length; o += CHUNK) {
        if (refused !== undefined) throw new CairnError('CLUSTER_REMOTE', `the node gave up the shard transfer: ${refused}`);
        const piece = bytes.subarray(o, Math.min(bytes.length, o + CHUNK));
        await conn.write(MeshFrame.shardChunk, { sequence: seq++ }, piece);
        sent += piece.length;
        onProgress?.(sent, manifest.fileSize);
      }
    };
    await push(shard.header);
    let at = shard.header.length;
    for (let i = 0; i < shard.pieces.length; i++) {
      const want = manifest.tensors[i].offset;
      if (want > at) await push(new Uint8Array(want - at)); // alignment padding
      const piece = shard.pieces[i];
      const data = piece.extract(bytesOf(piece.source));
      await push(data);
      at = want + data.length;
    }
    if (manifest.fileSize > at) await push(new Uint8Array(manifest.fileSize - at));
    const e = jsonPayload({});
    await conn.request(MeshFrame.shardEnd, e.meta, e.payload, { timeoutMs: 600_000 });
  } finally {
    conn.off('frame', onFrame);
  }
}
