/**
 * Shipping a shard's weights to a node that lacks the model: the coordinator lays out a GGUF file
 * holding the model's metadata and only the shard's tensors, streams it in chunks with each
 * tensor's SHA-256, and the node writes it to its shard cache, checks every hash, and keeps it for
 * the next start. A node never needs the whole model, in memory or on disk.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { GgufFile, GgufTensorInfo } from '../gguf/reader.js';
import { ggufLayout } from '../gguf/writer.js';
import type { PeerConnection } from '../cluster/index.js';
import { jsonPayload } from '../cluster/index.js';
import { CairnError } from '../util/errors.js';
import { MeshFrame, type ShardTransferBegin } from './protocol.js';

/** The tensors a shard [start, end) of a model needs. */
export function shardTensors(file: GgufFile, nLayer: number, start: number, end: number): GgufTensorInfo[] {
  const tied = !file.tensors.some((t) => t.name === 'output.weight');
  return file.tensors.filter((t) => {
    const m = /^blk\.(\d+)\./.exec(t.name);
    if (m) return Number(m[1]) >= start && Number(m[1]) < end;
    if (t.name === 'token_embd.weight') return start === 0 || (end === nLayer && tied);
    if (t.name === 'output_norm.weight' || t.name === 'output.weight') return end === nLayer;
    return true; // rope_freqs and any other global tensor: small, and every stage may need it
  });
}

/** File name of a cached shard. */
export function shardFileName(modelSha256: string, start: number, end: number): string {
  return `${modelSha256}-${start}-${end}.gguf`;
}

const CHUNK = 8 << 20;

/** Coordinator side: streams a shard file to a node. `bytesOf` gives a tensor's bytes from the mapped model. */
export async function sendShard(
  conn: PeerConnection,
  file: GgufFile,
  modelSha256: string,
  nLayer: number,
  start: number,
  end: number,
  bytesOf: (t: GgufTensorInfo) => Uint8Array,
  onProgress?: (done: number, total: number) => void,
): Promise<void> {
  const tensors = shardTensors(file, nLayer, start, end);
  const layout = ggufLayout({ version: 3, alignment: file.alignment, metadata: file.metadata, tensors: tensors.map((t) => ({ name: t.name, type: t.type, dims: t.dims })) });
  const begin: ShardTransferBegin = {
    modelSha256,
    layerStart: start,
    layerEnd: end,
    fileSize: layout.fileSize,
    headerSha256: createHash('sha256').update(layout.header).digest('hex'),
    tensors: tensors.map((t, i) => ({ name: t.name, offset: layout.tensors[i].offset, byteLength: t.byteLength, sha256: createHash('sha256').update(bytesOf(t)).digest('hex') })),
  };
  const b = jsonPayload(begin);
  await conn.request(MeshFrame.shardBegin, b.meta, b.payload);
  let sent = 0;
  let seq = 0;
  const push = async (bytes: Uint8Array) => {
    for (let o = 0; o < bytes.length; o += CHUNK) {
      const piece = bytes.subarray(o, Math.min(bytes.length, o + CHUNK));
      await conn.write(MeshFrame.shardChunk, { sequence: seq++ }, piece);
      sent += piece.length;
      onProgress?.(sent, layout.fileSize);
    }
  };
  await push(layout.header);
  let at = layout.header.length;
  for (let i = 0; i < tensors.length; i++) {
    const want = layout.tensors[i].offset;
    if (want > at) await push(new Uint8Array(want - at)); // alignment padding
    const data = bytesOf(tensors[i]);
    await push(data);
    at = want + data.length;
  }
  if (layout.fileSize > at) await push(new Uint8Array(layout.fileSize - at));
  await conn.request(MeshFrame.shardEnd, jsonPayload({}).meta, jsonPayload({}).payload, { timeoutMs: 600_000 });
}

/** Node side: receives one shard file into the cache folder, checking every hash. */
export class ShardReceiver {
  private fd: number | undefined;
  private temp = '';
  private written = 0;
  private nextSeq = 0;
  private begin: ShardTransferBegin | undefined;
  /** Hash of the region being written (the header, or the current tensor), with its index. */
  private region = -1;
  private hash = createHash('sha256');

  constructor(private readonly dir: string) {}

  /** Path a finished shard of this model and range would have. */
  pathFor(modelSha256: string, start: number, end: number): string {
    return join(this.dir, shardFileName(modelSha256, start, end));
  }

  /** Starts a transfer (any unfinished one is dropped). */
  start(b: ShardTransferBegin): void {
    this.abort();
    if (!/^[0-9a-f]{64}$/.test(b.modelSha256)) throw new CairnError('BAD_ARGUMENT', 'shard transfer: bad model hash');
    mkdirSync(this.dir, { recursive: true });
    this.begin = b;
    this.temp = join(this.dir, `.${shardFileName(b.modelSha256, b.layerStart, b.layerEnd)}.${process.pid}.part`);
    this.fd = openSync(this.temp, 'w');
    this.written = 0;
    this.nextSeq = 0;
    this.region = -1;
    this.hash = createHash('sha256');
  }

  /** Appends the next chunk; hashes are checked region by region as bytes arrive. */
  chunk(sequence: number, bytes: Uint8Array): void {
    const b = this.begin;
    if (!b || this.fd === undefined) throw new CairnError('BAD_ARGUMENT', 'shard chunk without a transfer');
    if (sequence !== this.nextSeq++) throw new CairnError('BAD_ARGUMENT', `shard chunk ${sequence} out of order`);
    if (this.written + bytes.length > b.fileSize) throw new CairnError('BAD_ARGUMENT', 'shard transfer runs past the announced size');
    let done = 0;
    while (done < bytes.length) done += writeSync(this.fd, bytes, done, bytes.length - done, this.written + done);
    // Feed the hash of whatever region each byte belongs to (header, tensor i, or padding).
    let pos = this.written;
    const end = this.written + bytes.length;
    while (pos < end) {
      const { index, stop } = this.regionAt(pos);
      if (index !== this.region) this.finishRegion(index);
      const upto = Math.min(end, stop);
      if (index !== -2) this.hash.update(bytes.subarray(pos - this.written, upto - this.written));
      pos = upto;
    }
    this.written = end;
  }

  /** Ends the transfer: checks the size and the last hash, and moves the file into place. */
  finish(): string {
    const b = this.begin;
    if (!b || this.fd === undefined) throw new CairnError('BAD_ARGUMENT', 'shard end without a transfer');
    if (this.written !== b.fileSize) throw new CairnError('BAD_ARGUMENT', `shard transfer ended at ${this.written} of ${b.fileSize} bytes`);
    this.finishRegion(Number.MAX_SAFE_INTEGER);
    closeSync(this.fd);
    this.fd = undefined;
    const path = this.pathFor(b.modelSha256, b.layerStart, b.layerEnd);
    renameSync(this.temp, path);
    this.begin = undefined;
    return path;
  }

  /** Drops an unfinished transfer. */
  abort(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
    if (this.temp && existsSync(this.temp)) rmSync(this.temp, { force: true });
    this.begin = undefined;
  }

  /** Region of a file offset: -1 header, i >= 0 tensor i, -2 padding; with where it stops. */
  private regionAt(pos: number): { index: number; stop: number } {
    const b = this.begin!;
    const firstTensor = b.tensors.length ? b.tensors[0].offset : b.fileSize;
    if (pos < firstTensor) {
      // The header ends where its padding starts; padding bytes are not hashed.
      return { index: -1, stop: firstTensor };
    }
    for (let i = 0; i < b.tensors.length; i++) {
      const t = b.tensors[i];
      if (pos >= t.offset && pos < t.offset + t.byteLength) return { index: i, stop: t.offset + t.byteLength };
      const nextStart = i + 1 < b.tensors.length ? b.tensors[i + 1].offset : b.fileSize;
      if (pos >= t.offset + t.byteLength && pos < nextStart) return { index: -2, stop: nextStart };
    }
    return { index: -2, stop: b.fileSize };
  }

  private finishRegion(nextIndex: number): void {
    const b = this.begin!;
    if (this.region >= 0 || this.region === -1) {
      const got = this.hash.digest('hex');
      if (this.region === -1) {
        // The header hash covers the header plus its alignment padding up to the first tensor.
        if (got !== b.headerSha256) throw new CairnError('BAD_ARGUMENT', 'shard transfer: the header does not match its hash');
      } else if (got !== b.tensors[this.region].sha256) {
        throw new CairnError('BAD_ARGUMENT', `shard transfer: tensor "${b.tensors[this.region].name}" does not match its hash`);
      }
    }
    this.region = nextIndex === -2 ? -3 : nextIndex;
    this.hash = createHash('sha256');
  }
}
