/**
 * Link measurement over an established connection, for the planner: round-trip latency (median of
 * small pings, after a warm-up) and bandwidth (timed transfers of a few MB that the peer discards).
 * Both go through the same framing and sockets the mesh will use, so they price what it will pay.
 */

import { performance } from 'node:perf_hooks';
import { CairnError } from '../util/errors.js';
import type { PeerConnection } from './connection.js';

/** Round-trip latency figures, in milliseconds. */
export interface LatencyMeasurement {
  readonly medianMs: number;
  readonly minMs: number;
  readonly maxMs: number;
  readonly samples: number;
}

/** Bandwidth figures, in bytes per second (one direction: from this node to the peer). */
export interface BandwidthMeasurement {
  /** Median over rounds. */
  readonly bytesPerSecond: number;
  readonly bestBytesPerSecond: number;
  readonly bytesPerRound: number;
  readonly rounds: number;
}

/** What the planner needs to know about one link. */
export interface LinkMeasurement {
  readonly latencyMs: number;
  readonly bandwidthBytesPerSecond: number;
  readonly latency: LatencyMeasurement;
  readonly bandwidth: BandwidthMeasurement;
}

/** Options of measureLatency. */
export interface LatencyOptions {
  /** Pings counted. Default 21. */
  readonly samples?: number;
  /** Pings sent first and not counted (connection and JIT warm-up). Default 3. */
  readonly warmup?: number;
  /** Payload carried by each ping, like a small activation. Default 0. */
  readonly payloadBytes?: number;
  readonly timeoutMs?: number;
}

/** Options of measureBandwidth. */
export interface BandwidthOptions {
  /** Bytes sent per round. Default 8 MiB. */
  readonly bytes?: number;
  /** Rounds timed. Default 3. */
  readonly rounds?: number;
  readonly timeoutMs?: number;
}

/** Median round trip of small pings, one at a time. */
export async function measureLatency(connection: PeerConnection, options: LatencyOptions = {}): Promise<LatencyMeasurement> {
  const samples = options.samples ?? 21;
  const warmup = options.warmup ?? 3;
  if (!Number.isInteger(samples) || samples < 1)
    throw new CairnError('BAD_ARGUMENT', `latency samples must be a positive integer, got ${samples}`);
  const request = { timeoutMs: options.timeoutMs ?? 5000 };
  for (let i = 0; i < warmup; i++) await connection.ping(options.payloadBytes ?? 0, request);
  const times: number[] = [];
  for (let i = 0; i < samples; i++) times.push(await connection.ping(options.payloadBytes ?? 0, request));
  times.sort((a, b) => a - b);
  return { medianMs: median(times), minMs: times[0], maxMs: times[times.length - 1], samples };
}

/**
 * Throughput of sending `bytes` to the peer, timed from the first byte queued to the peer's
 * acknowledgement that all of it arrived. The acknowledgement's own round trip is included, which
 * matters little at a few MB and errs on the safe side for planning.
 */
export async function measureBandwidth(connection: PeerConnection, options: BandwidthOptions = {}): Promise<BandwidthMeasurement> {
  const bytes = options.bytes ?? 8 * 1024 * 1024;
  const rounds = options.rounds ?? 3;
  if (!Number.isInteger(bytes) || bytes < 1)
    throw new CairnError('BAD_ARGUMENT', `bandwidth probe size must be a positive integer, got ${bytes}`);
  if (!Number.isInteger(rounds) || rounds < 1)
    throw new CairnError('BAD_ARGUMENT', `bandwidth rounds must be a positive integer, got ${rounds}`);
  const payload = Buffer.alloc(bytes);
  const request = { timeoutMs: options.timeoutMs ?? 30_000 };
  const rates: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const start = performance.now();
    await connection.sink(payload, request);
    const seconds = (performance.now() - start) / 1000;
    rates.push(bytes / Math.max(seconds, 1e-9));
  }
  rates.sort((a, b) => a - b);
  return { bytesPerSecond: median(rates), bestBytesPerSecond: rates[rates.length - 1], bytesPerRound: bytes, rounds };
}

/** Latency, then bandwidth, of one link. */
export async function measureLink(
  connection: PeerConnection,
  options: { latency?: LatencyOptions; bandwidth?: BandwidthOptions } = {},
): Promise<LinkMeasurement> {
  const latency = await measureLatency(connection, options.latency);
  const bandwidth = await measureBandwidth(connection, options.bandwidth);
  return { latencyMs: latency.medianMs, bandwidthBytesPerSecond: bandwidth.bytesPerSecond, latency, bandwidth };
}

function median(sorted: readonly number[]): number {
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}
