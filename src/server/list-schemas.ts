/**
 * Schemas of long flat lists in request bodies (token ids, strings), checked in one plain loop that
 * stops at the first bad item and after the length bounds. zod's own arrays check every item
 * (a million token ids hold the event loop for hundreds of ms), and a union tried against such a
 * list first as the wrong kind (strings, for a list of ids) makes one issue object per item:
 * seconds for a body within the size limit.
 */
import { z } from 'zod';

/** A token id: a non-negative integer (whether the model has it is checked later). */
export function isTokenId(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** A string (any length: the list's bounds are the caller's). */
export function isString(v: unknown): v is string {
  return typeof v === 'string';
}

/** A list of `min` to `max` items each passing `is`; `what` names them in the error. */
export function listOf<T>(is: (v: unknown) => v is T, what: string, bounds: { min?: number; max?: number } = {}): z.ZodType<T[]> {
  const min = bounds.min ?? 0;
  const max = bounds.max ?? Infinity;
  const size = max === Infinity ? (min > 0 ? ` (at least ${min})` : '') : ` (${min} to ${max})`;
  return z.custom<T[]>((v) => Array.isArray(v) && v.length >= min && v.length <= max && v.every((x) => is(x)), {
    error: `expected a list of ${what}${size}`,
  });
}
