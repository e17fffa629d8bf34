/**
 * Exact decimals (m x 10^e with a BigInt m) for comparing number prefixes against schema bounds
 * without binary floating-point surprises (0.1 + 0.2 and friends).
 */

/** The exact value m x 10^e. */
export interface Decimal {
  readonly m: bigint;
  readonly e: number;
}

const DECIMAL_SYNTAX = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/;

const POWERS: bigint[] = [1n];

/** 10^k as a BigInt (k >= 0). */
export function pow10(k: number): bigint {
  while (POWERS.length <= k && POWERS.length < 400) POWERS.push(POWERS[POWERS.length - 1] * 10n);
  return k < POWERS.length ? POWERS[k] : 10n ** BigInt(k);
}

/** Parses decimal text ("-12.5", "1e-7", "3E+2"); undefined when it is not one. */
export function parseDecimal(text: string): Decimal | undefined {
  const match = DECIMAL_SYNTAX.exec(text);
  if (!match) return undefined;
  const [, sign, int, frac = '', exp = '0'] = match;
  const m = BigInt(int + frac);
  return { m: sign === '-' ? -m : m, e: Number(exp) - frac.length };
}

/** The exact decimal a finite JS number prints as (its shortest round-trip form). */
export function decimalOfNumber(x: number): Decimal {
  if (!Number.isFinite(x)) throw new RangeError(`${x} is not a finite number`);
  const d = parseDecimal(String(x));
  if (!d) throw new RangeError(`cannot read ${x} as a decimal`);
  return d;
}

/** -1, 0 or 1 as a is below, equal to or above b. */
export function compareDecimal(a: Decimal, b: Decimal): number {
  const e = Math.min(a.e, b.e);
  const am = a.m * pow10(a.e - e);
  const bm = b.m * pow10(b.e - e);
  return am < bm ? -1 : am > bm ? 1 : 0;
}

/** The largest integer not above d. */
export function floorDecimal(d: Decimal): bigint {
  if (d.e >= 0) return d.m * pow10(d.e);
  const div = pow10(-d.e);
  const q = d.m / div; // truncates toward zero
  return d.m < 0n && q * div !== d.m ? q - 1n : q;
}

/** The smallest integer not below d. */
export function ceilDecimal(d: Decimal): bigint {
  return -floorDecimal({ m: -d.m, e: d.e });
}
