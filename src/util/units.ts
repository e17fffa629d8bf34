/**
 * Quantities as people write them in configuration: sizes (`192GiB`, `512 GB`, `8e9`), rates
 * (`800GB/s`, `10 Gbit/s`, `117.5MB/s`), durations (`5us`, `0.2 ms`, `1s`) and compute rates
 * (`28TFLOPS`, `1.5e12`). A bare number is bytes, bytes per second, seconds or FLOP/s. Decimal
 * prefixes are powers of 1000, binary ones (KiB, MiB, GiB, TiB) powers of 1024; `bit` units are
 * an eighth of a byte. Each parser returns undefined for text it does not understand.
 */

const DECIMAL: Record<string, number> = { '': 1, k: 1e3, K: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15 };
const BINARY: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50 };

function split(text: string): { value: number; unit: string } | undefined {
  const m = /^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z/]*)\s*$/.exec(text);
  if (!m) return undefined;
  const value = Number(m[1]);
  return Number.isFinite(value) ? { value, unit: m[2] } : undefined;
}

/** Multiplier of a prefix (`G`, `Gi`, `k`, ``), or undefined. */
function prefix(p: string): number | undefined {
  return BINARY[p] ?? DECIMAL[p];
}

/** A number of bytes from a unit like `GiB`, `GB`, `Gbit`, `Gb`, `B`, or none; undefined if the unit is not one. */
function bytesOf(value: number, unit: string): number | undefined {
  const m = /^([kKMGTP]i?)?(B|bytes?|bit|bits|b)?$/.exec(unit);
  if (!m || (unit !== '' && m[2] === undefined && m[1] === undefined)) return undefined;
  const mult = prefix(m[1] ?? '');
  if (mult === undefined) return undefined;
  const bits = m[2] === 'bit' || m[2] === 'bits' || m[2] === 'b';
  return (value * mult) / (bits ? 8 : 1);
}

/** Bytes from `192GiB`, `512 GB`, `8e9`; undefined when not a size. */
export function parseBytes(input: string | number): number | undefined {
  if (typeof input === 'number') return Number.isFinite(input) && input >= 0 ? input : undefined;
  const s = split(input);
  if (!s) return undefined;
  return bytesOf(s.value, s.unit);
}

/** Bytes per second from `800GB/s`, `10 Gbit/s`, `1Gbps`, `117.5e6`; undefined when not a rate. */
export function parseRate(input: string | number): number | undefined {
  if (typeof input === 'number') return Number.isFinite(input) && input > 0 ? input : undefined;
  const s = split(input);
  if (!s || s.value <= 0) return undefined;
  if (s.unit === '') return s.value;
  const bps = /^([kKMGTP]i?)?bps$/.exec(s.unit);
  if (bps) {
    const mult = prefix(bps[1] ?? '');
    return mult === undefined ? undefined : (s.value * mult) / 8;
  }
  const m = /^(.*)\/s$/.exec(s.unit);
  if (!m) return undefined;
  return bytesOf(s.value, m[1]);
}

/** Seconds from `5us`, `0.2ms`, `1s`, `250ns`, `0.001`; undefined when not a duration. */
export function parseDuration(input: string | number): number | undefined {
  if (typeof input === 'number') return Number.isFinite(input) && input >= 0 ? input : undefined;
  const s = split(input);
  if (!s) return undefined;
  const per: Record<string, number> = { '': 1, s: 1, ms: 1e3, us: 1e6, µs: 1e6, ns: 1e9 };
  const d = per[s.unit];
  return d === undefined ? undefined : s.value / d;
}

/** FLOP/s from `28TFLOPS`, `500 GFLOP/s`, `1e12`; undefined when not a compute rate. */
export function parseFlops(input: string | number): number | undefined {
  if (typeof input === 'number') return Number.isFinite(input) && input > 0 ? input : undefined;
  const s = split(input);
  if (!s || s.value <= 0) return undefined;
  if (s.unit === '') return s.value;
  const m = /^([kKMGTP]?)(FLOPS|FLOP\/s|flops|flop\/s)$/.exec(s.unit);
  if (!m) return undefined;
  return s.value * DECIMAL[m[1]];
}
