/**
 * Validation of a load request from a peer: every field is checked for type and range before the
 * node touches a file, a map or an allocation with it, and a clean copy (unknown fields dropped)
 * is what the node then uses. A bad request fails with BAD_ARGUMENT naming the field.
 */
import { GgmlType } from '../gguf/ggml-types.js';
import { CairnError } from '../util/errors.js';
import type { ShardSpec } from '../model/shard.js';
import type { GroupSpec, LoadRequest, PeerRef } from './protocol.js';
import { isSha256Hex, MAX_SHARD_LAYERS, validateShardManifest } from './shard-manifest.js';
import { validateHubSource } from './hub-shard.js';

/** Largest context (tokens per slot) a load request may ask for. */
export const MAX_LOAD_CTX = 1 << 24;
/** Most ranks of a tensor-parallel group. */
export const MAX_GROUP_RANKS = 64;
/** Most sequence slots a load request may ask for. */
export const MAX_LOAD_SLOTS = 4096;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function intIn(v: unknown, min: number, max: number): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max;
}

/** True when a string holds a C0 control character or DEL (which could forge log lines). */
export function hasControlCharacter(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

/** A short string without control characters (it may reach a log line). */
function isLabel(v: unknown, max: number): v is string {
  return typeof v === 'string' && v.length >= 1 && v.length <= max && !hasControlCharacter(v);
}

/** Checks every field of a load request from a peer; returns a clean copy. */
export function validateLoadRequest(v: unknown): LoadRequest {
  const bad = (why: string) => new CairnError('BAD_ARGUMENT', `load request: ${why}`);
  if (!isRecord(v)) throw bad('not an object');
  if (!isSha256Hex(v.modelSha256)) throw bad('modelSha256 is not 64 lowercase hex digits');
  if (!isLabel(v.modelName, 256)) throw bad('modelName must be 1-256 characters without control characters');
  if (!intIn(v.layerStart, 0, MAX_SHARD_LAYERS - 1)) throw bad(`layerStart must be a whole number in [0, ${MAX_SHARD_LAYERS})`);
  if (!intIn(v.layerEnd, v.layerStart + 1, MAX_SHARD_LAYERS)) throw bad(`layerEnd must be a whole number in (layerStart, ${MAX_SHARD_LAYERS}]`);
  if (!intIn(v.ctx, 2, MAX_LOAD_CTX)) throw bad(`ctx must be a whole number in [2, ${MAX_LOAD_CTX}]`);
  if (!intIn(v.slots, 1, MAX_LOAD_SLOTS)) throw bad(`slots must be a whole number in [1, ${MAX_LOAD_SLOTS}]`);
  if (v.kvType !== GgmlType.F16 && v.kvType !== GgmlType.F32 && v.kvType !== GgmlType.Q8_0) throw bad('kvType must be f16, f32 or q8_0');
  if (!intIn(v.maxBatch, 1, v.ctx)) throw bad('maxBatch must be a whole number in [1, ctx]');
  if (!intIn(v.epoch, 0, Number.MAX_SAFE_INTEGER)) throw bad('epoch must be a whole number >= 0');
  const peer = (n: unknown, what: string): PeerRef => {
    if (!isRecord(n)) throw bad(`${what} is not an object`);
    if (n.coordinator === true) {
      if (!isLabel(n.nodeId, 128)) throw bad(`${what}.nodeId must be 1-128 characters without control characters`);
      return { host: '', port: 0, nodeId: n.nodeId, coordinator: true };
    }
    if (!isLabel(n.host, 255) || /\s/.test(n.host)) throw bad(`${what}.host is not a host name or address`);
    if (!intIn(n.port, 1, 65535)) throw bad(`${what}.port is not a TCP port`);
    if (!isLabel(n.nodeId, 128)) throw bad(`${what}.nodeId must be 1-128 characters without control characters`);
    return { host: n.host, port: n.port, nodeId: n.nodeId };
  };
  const next = v.next !== undefined && v.next !== null ? peer(v.next, 'next') : undefined;
  let group: GroupSpec | undefined;
  if (v.group !== undefined && v.group !== null) {
    const g = v.group;
    if (!isRecord(g)) throw bad('group is not an object');
    if (!Array.isArray(g.peers) || g.peers.length < 2 || g.peers.length > MAX_GROUP_RANKS) throw bad(`group.peers must list 2 to ${MAX_GROUP_RANKS} nodes`);
    const peers = g.peers.map((p, i) => peer(p, `group.peers[${i}]`));
    if (new Set(peers.map((p) => p.nodeId)).size !== peers.length) throw bad('group.peers names a node twice');
    if (peers.filter((p) => p.coordinator).length > 1) throw bad('group.peers names more than one coordinator');
    if (!intIn(g.rank, 0, peers.length - 1)) throw bad('group.rank is not a rank of the group');
    if (!Array.isArray(g.shares) || g.shares.length !== peers.length || !g.shares.every((x) => typeof x === 'number' && Number.isFinite(x) && x > 0 && x <= 1e9)) {
      throw bad('group.shares must be one positive number per rank');
    }
    if (g.exchange !== undefined && g.exchange !== 'f32' && g.exchange !== 'f16' && g.exchange !== 'q8') throw bad('group.exchange must be f32, f16 or q8');
    if (g.mode !== undefined && g.mode !== 'tensor' && g.mode !== 'expert') throw bad('group.mode must be tensor or expert');
    let link: GroupSpec['link'];
    if (g.link !== undefined && g.link !== null) {
      const l = g.link;
      const positive = (x: unknown, max: number) => typeof x === 'number' && Number.isFinite(x) && x > 0 && x <= max;
      if (!isRecord(l) || !positive(l.latencySeconds, 60) || !positive(l.bytesPerSecond, 1e15)) throw bad('group.link must give a positive latency (s) and bandwidth (bytes/s)');
      link = { latencySeconds: l.latencySeconds as number, bytesPerSecond: l.bytesPerSecond as number };
    }
    if (g.allReduce !== undefined && g.allReduce !== 'auto' && g.allReduce !== 'direct' && g.allReduce !== 'ring') throw bad('group.allReduce must be auto, direct or ring');
    group = {
      ...(g.allReduce ? { allReduce: g.allReduce } : {}),
      rank: g.rank,
      shares: g.shares as number[],
      peers,
      ...(g.exchange ? { exchange: g.exchange } : {}),
      ...(g.mode ? { mode: g.mode } : {}),
      ...(link ? { link } : {}),
    };
  }
  let shard: LoadRequest['shard'];
  if (v.shard !== undefined && v.shard !== null) {
    shard = validateShardManifest(v.shard, 'load request: shard');
    if (shard.modelSha256 !== v.modelSha256 || shard.layerStart !== v.layerStart || shard.layerEnd !== v.layerEnd) {
      throw bad('the shard manifest is for another model or layer range');
    }
  }
  let hub: LoadRequest['hub'];
  if (v.hub !== undefined && v.hub !== null) {
    if (!shard) throw bad('hub without a shard manifest to check the fetched bytes against');
    hub = validateHubSource(v.hub);
  }
  return {
    modelSha256: v.modelSha256,
    modelName: v.modelName,
    layerStart: v.layerStart,
    layerEnd: v.layerEnd,
    ctx: v.ctx,
    slots: v.slots,
    kvType: v.kvType,
    maxBatch: v.maxBatch,
    epoch: v.epoch,
    ...(next ? { next } : {}),
    ...(group ? { group } : {}),
    ...(shard ? { shard } : {}),
    ...(hub ? { hub } : {}),
  };
}

/** The shard a load request asks for: its layers, and its rank of a group where it is one. */
export function shardSpecOf(req: Pick<LoadRequest, 'layerStart' | 'layerEnd' | 'group'>): ShardSpec {
  const g = req.group;
  if (!g) return { layerStart: req.layerStart, layerEnd: req.layerEnd, splitRank: 0, splitCount: 1 };
  return { layerStart: req.layerStart, layerEnd: req.layerEnd, splitRank: g.rank, splitCount: g.peers.length, splitShares: g.shares, ...(g.mode ? { splitMode: g.mode } : {}) };
}
