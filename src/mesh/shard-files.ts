/**
 * Shipping a shard's weights to a node that lacks the model: the coordinator lays out a GGUF file
 * holding the model's metadata and only the shard's tensors, describes it in a manifest (the
 * SHA-256 of its header and of every tensor, computed from the coordinator's own copy of the
 * model), and streams it in chunks; the node checks every byte against the manifest it was given
 * (shard-receiver.ts) and keeps the file in its cache (shard-cache.ts) for the next start. A node
 * never needs the whole model, in memory or on disk.
 */
import { createHash } from 'node:crypto';
import type { GgufFile, GgufTensorInfo } from '../gguf/reader.js';
import { ggufLayout } from '../gguf/writer.js';
import type { Frame, PeerConnection } from '../cluster/index.js';
import { frameJson, jsonPayload } from '../cluster/index.js';
import { CairnError } from '../util/errors.js';
import { readModelConfig } from '../model/config.js';
import { shardTensorNames } from '../model/model-bytes.js';
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

/** A shard file as the coordinator will send it: its manifest, header bytes and source tensors. */
export interface PreparedShard {
  readonly manifest: ShardManifest;
  readonly header: Uint8Array;
  /** The model's tensors, in the shard file's order. */
  readonly tensors: readonly GgufTensorInfo[];
}

/**
 * Lays out the shard [start, end) of the model at `modelPath` (whose SHA-256 is `modelSha256`) and
 * writes its manifest from the model's own bytes. `onProgress` follows the hashing of tensors not
 * hashed before.
 */
export async function prepareShard(
  modelPath: string,
  file: GgufFile,
  modelSha256: string,
  nLayer: number,
  start: number,
  end: number,
  onProgress?: (done: number, total: number) => void,
): Promise<PreparedShard> {
  const tensors = shardTensors(file, nLayer, start, end);
  const layout = ggufLayout({ version: 3, alignment: file.alignment, metadata: file.metadata, tensors: tensors.map((t) => ({ name: t.name, type: t.type, dims: t.dims })) });
  const hashes = await tensorSha256s(modelPath, modelSha256, tensors, onProgress);
  const manifest: ShardManifest = {
    modelSha256,
    layerStart: start,
    layerEnd: end,
    fileSize: layout.fileSize,
    headerSha256: createHash('sha256').update(layout.header).digest('hex'),
    tensors: tensors.map((t, i) => ({ name: t.name, offset: layout.tensors[i].offset, byteLength: t.byteLength, sha256: hashes[i] })),
  };
  return { manifest, header: layout.header, tensors };
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
    for (let i = 0; i < shard.tensors.length; i++) {
      const want = manifest.tensors[i].offset;
      if (want > at) await push(new Uint8Array(want - at)); // alignment padding
      const data = bytesOf(shard.tensors[i]);
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
