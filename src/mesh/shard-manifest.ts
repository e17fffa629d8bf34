/**
 * The shard manifest: what a shard file must be, byte for byte. The coordinator writes it from its
 * own copy of the model (the layout of the shard's GGUF file, the SHA-256 of its header and of
 * every tensor) and states it in the load request; the node accepts, keeps and loads a shard only
 * as the file its manifest describes. A manifest from the wire is validated field by field before
 * anything uses it, and the cache names a shard by the digest of its manifest, so a file made for
 * another manifest (a hostile peer's, or an older coordinator's) is simply another, unused name.
 */
import { createHash } from 'node:crypto';
import { CairnError } from '../util/errors.js';
import type { ShardManifest, ShardTensorEntry } from './protocol.js';

/** Most tensors one shard may list (real models have a few thousand; this bounds a manifest to a few MB). */
export const MAX_SHARD_TENSORS = 1 << 14;
/** Highest layer index a shard may name. */
export const MAX_SHARD_LAYERS = 1 << 16;
/** Largest shard file accepted (256 TiB: far past any model, far below 2^53). */
export const MAX_SHARD_FILE_BYTES = 2 ** 48;

const HEX64 = /^[0-9a-f]{64}$/;
/** Letters, digits and `_ . : + -`: every GGUF tensor name in use, and safe to quote in a message. */
const TENSOR_NAME = /^[\w.:+-]{1,256}$/;

/** True for 64 lowercase hex digits (a SHA-256 as cairn writes it). */
export function isSha256Hex(v: unknown): v is string {
  return typeof v === 'string' && HEX64.test(v);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A whole number in [min, max]. */
function intIn(v: unknown, min: number, max: number): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max;
}

/**
 * Checks every field of a manifest from a peer and returns a clean copy (unknown fields dropped).
 * Throws BAD_ARGUMENT naming the first bad field. Guarantees: hashes are 64 hex digits; layers
 * 0 <= start < end <= MAX_SHARD_LAYERS; 1..MAX_SHARD_TENSORS tensors with unique names of letters, digits and `_ . : + -`,
 * in file order, not overlapping, each at least one byte, the first after a non-empty header, the
 * last ending within fileSize <= MAX_SHARD_FILE_BYTES.
 */
export function validateShardManifest(v: unknown, what = 'shard manifest'): ShardManifest {
  const bad = (why: string) => new CairnError('BAD_ARGUMENT', `${what}: ${why}`);
  if (!isRecord(v)) throw bad('not an object');
  if (!isSha256Hex(v.modelSha256)) throw bad('modelSha256 is not 64 lowercase hex digits');
  if (!isSha256Hex(v.headerSha256)) throw bad('headerSha256 is not 64 lowercase hex digits');
  if (!intIn(v.layerStart, 0, MAX_SHARD_LAYERS - 1)) throw bad(`layerStart must be a whole number in [0, ${MAX_SHARD_LAYERS})`);
  if (!intIn(v.layerEnd, v.layerStart + 1, MAX_SHARD_LAYERS)) throw bad(`layerEnd must be a whole number in (layerStart, ${MAX_SHARD_LAYERS}]`);
  if (!intIn(v.fileSize, 1, MAX_SHARD_FILE_BYTES)) throw bad(`fileSize must be a whole number in [1, ${MAX_SHARD_FILE_BYTES}]`);
  const fileSize = v.fileSize;
  if (!Array.isArray(v.tensors)) throw bad('tensors is not an array');
  if (v.tensors.length < 1 || v.tensors.length > MAX_SHARD_TENSORS) throw bad(`${v.tensors.length} tensors (1 to ${MAX_SHARD_TENSORS} allowed)`);
  const names = new Set<string>();
  const tensors: ShardTensorEntry[] = [];
  let end = 1; // the header takes at least one byte
  for (let i = 0; i < v.tensors.length; i++) {
    const t: unknown = v.tensors[i];
    if (!isRecord(t)) throw bad(`tensor #${i} is not an object`);
    if (typeof t.name !== 'string' || !TENSOR_NAME.test(t.name)) throw bad(`tensor #${i} has a bad name (1-256 letters, digits and _ . : + -)`);
    if (names.has(t.name)) throw bad(`tensor "${t.name}" is listed twice`);
    names.add(t.name);
    if (!intIn(t.offset, end, fileSize - 1)) throw bad(`tensor "${t.name}" offset must be a whole number in [${end}, ${fileSize}) (file order, no overlap)`);
    if (!intIn(t.byteLength, 1, fileSize - t.offset)) throw bad(`tensor "${t.name}" byteLength must be a whole number in [1, ${fileSize - t.offset}]`);
    if (!isSha256Hex(t.sha256)) throw bad(`tensor "${t.name}" sha256 is not 64 lowercase hex digits`);
    tensors.push({ name: t.name, offset: t.offset, byteLength: t.byteLength, sha256: t.sha256 });
    end = t.offset + t.byteLength;
  }
  return {
    modelSha256: v.modelSha256,
    layerStart: v.layerStart,
    layerEnd: v.layerEnd,
    fileSize,
    headerSha256: v.headerSha256,
    tensors,
  };
}

/** SHA-256 (hex) of a validated manifest's canonical form: the shard's name in a node's cache. */
export function manifestDigest(m: ShardManifest): string {
  const canonical = JSON.stringify([
    'cairn-shard/1',
    m.modelSha256,
    m.layerStart,
    m.layerEnd,
    m.fileSize,
    m.headerSha256,
    m.tensors.map((t) => [t.name, t.offset, t.byteLength, t.sha256]),
  ]);
  return createHash('sha256').update(canonical).digest('hex');
}

/** One stretch of a shard file: the header, a tensor (with its index), or padding that must be zero. */
export type ShardRegion =
  | { readonly kind: 'header'; readonly offset: number; readonly length: number }
  | { readonly kind: 'tensor'; readonly index: number; readonly offset: number; readonly length: number }
  | { readonly kind: 'padding'; readonly offset: number; readonly length: number };

/** The regions of a validated manifest's file, in order, covering every byte exactly once. */
export function shardRegions(m: ShardManifest): ShardRegion[] {
  const out: ShardRegion[] = [{ kind: 'header', offset: 0, length: m.tensors[0].offset }];
  let at = m.tensors[0].offset;
  m.tensors.forEach((t, index) => {
    if (t.offset > at) out.push({ kind: 'padding', offset: at, length: t.offset - at });
    out.push({ kind: 'tensor', index, offset: t.offset, length: t.byteLength });
    at = t.offset + t.byteLength;
  });
  if (m.fileSize > at) out.push({ kind: 'padding', offset: at, length: m.fileSize - at });
  return out;
}

/** "layers a-b" as messages say it. */
export function describeLayers(m: { readonly layerStart: number; readonly layerEnd: number }): string {
  return `layers ${m.layerStart}-${m.layerEnd - 1}`;
}
