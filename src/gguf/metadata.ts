/**
 * Typed access to GGUF metadata: each getter returns undefined when a key is absent and throws a
 * CairnError naming the key when it is present with the wrong type, so model code reads config
 * in one line and malformed files fail with a clear message.
 */
import { CairnError } from '../util/errors.js';
import { shown, type GgufFile } from './reader.js';
import { GgufValueType, type GgufValue } from './values.js';

function wrongType(file: GgufFile, key: string, want: string): CairnError {
  return new CairnError('GGUF_MALFORMED', `${file.path}: metadata ${shown(key)} should be ${want}`);
}

/** Reads metadata keys of one file with type checks. */
export class Metadata {
  constructor(readonly file: GgufFile) {}

  /** True when the key is present. */
  has(key: string): boolean {
    return this.file.metadata.has(key);
  }

  /** The raw tagged value. */
  raw(key: string): GgufValue | undefined {
    return this.file.metadata.get(key);
  }

  /** A string value. */
  string(key: string): string | undefined {
    const v = this.file.metadata.get(key);
    if (!v) return undefined;
    if (v.type !== GgufValueType.STRING) throw wrongType(this.file, key, 'a string');
    return v.value as string;
  }

  /** Any numeric value as a JS number (64-bit integers must be safe integers). */
  number(key: string): number | undefined {
    const v = this.file.metadata.get(key);
    if (!v) return undefined;
    if (typeof v.value === 'number') return v.value;
    if (typeof v.value === 'bigint') {
      if (v.value > BigInt(Number.MAX_SAFE_INTEGER) || v.value < BigInt(Number.MIN_SAFE_INTEGER)) {
        throw wrongType(this.file, key, 'a number below 2^53');
      }
      return Number(v.value);
    }
    throw wrongType(this.file, key, 'a number');
  }

  /** A boolean value. */
  bool(key: string): boolean | undefined {
    const v = this.file.metadata.get(key);
    if (!v) return undefined;
    if (v.type !== GgufValueType.BOOL) throw wrongType(this.file, key, 'a bool');
    return v.value as boolean;
  }

  /** A string array. */
  strings(key: string): readonly string[] | undefined {
    const v = this.file.metadata.get(key);
    if (!v) return undefined;
    if (v.type !== GgufValueType.ARRAY || v.itemType !== GgufValueType.STRING) throw wrongType(this.file, key, 'an array of strings');
    return v.value as string[];
  }

  /** A numeric array as numbers. */
  numbers(key: string): ArrayLike<number> | undefined {
    const v = this.file.metadata.get(key);
    if (!v) return undefined;
    if (v.type !== GgufValueType.ARRAY) throw wrongType(this.file, key, 'an array of numbers');
    const items = v.value;
    if (items instanceof BigInt64Array || items instanceof BigUint64Array) return Array.from(items, Number);
    if (ArrayBuffer.isView(items)) return items as ArrayLike<number>;
    throw wrongType(this.file, key, 'an array of numbers');
  }

  /** A number, or a per-layer array of numbers (some files store head counts per layer). */
  numberOrArray(key: string): number | ArrayLike<number> | undefined {
    const v = this.file.metadata.get(key);
    if (!v) return undefined;
    return v.type === GgufValueType.ARRAY ? this.numbers(key) : this.number(key);
  }

  /** Like number() but throws when the key is absent. */
  requireNumber(key: string): number {
    const n = this.number(key);
    if (n === undefined) throw new CairnError('GGUF_MALFORMED', `${this.file.path}: required metadata ${shown(key)} is missing`);
    return n;
  }

  /** Like string() but throws when the key is absent. */
  requireString(key: string): string {
    const s = this.string(key);
    if (s === undefined) throw new CairnError('GGUF_MALFORMED', `${this.file.path}: required metadata ${shown(key)} is missing`);
    return s;
  }
}
