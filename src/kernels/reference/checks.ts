/**
 * Argument checks of the reference kernels, mirroring the native binding's: a wrong shape is a
 * CairnError naming the argument instead of silently reading `undefined` past an array's end.
 */
import { CairnError } from '../../util/errors.js';

/** Requires a whole number >= min. */
export function needInt(name: string, v: number, min: number): void {
  if (!Number.isSafeInteger(v) || v < min) throw new CairnError('BAD_ARGUMENT', `${name} must be an integer >= ${min}, got ${v}`);
}

/** Requires an array of at least `n` elements. */
export function needLength(name: string, a: ArrayLike<number>, n: number): void {
  if (a.length < n) throw new CairnError('BAD_ARGUMENT', `${name} is too short: ${a.length} elements, need ${n}`);
}

/** Requires a finite number. */
export function needFinite(name: string, v: number): void {
  if (!Number.isFinite(v)) throw new CairnError('BAD_ARGUMENT', `${name} must be a finite number, got ${v}`);
}

/** Requires a KV cache type id: 0 (F32) or 1 (F16). */
export function needKvType(name: string, v: number): void {
  if (v !== 0 && v !== 1 && v !== 8) throw new CairnError('BAD_ARGUMENT', `${name} must be 0 (F32), 1 (F16) or 8 (Q8_0), got ${v}`);
}
