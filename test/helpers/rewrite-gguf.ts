/**
 * Re-writes a GGUF file with its metadata or tensors changed: how tests make the files other
 * tools would write (a Mixtral, an unknown architecture, a missing or misshapen tensor) from a
 * synthetic model.
 */
import { readFileSync } from 'node:fs';
import { readGguf } from '../../src/gguf/reader.js';
import type { GgufValue } from '../../src/gguf/values.js';
import { writeGguf, type GgufTensorSpec } from '../../src/gguf/writer.js';

/** The changes to make. */
export interface GgufEdit {
  /** Keys to set (added at the end when new) or, with undefined, to remove. */
  readonly metadata?: Readonly<Record<string, GgufValue | undefined>>;
  /** Which tensors to keep (default: all). */
  readonly keep?: (name: string) => boolean;
  /** Tensors to add at the end. */
  readonly add?: readonly GgufTensorSpec[];
}

/** Writes `src` with `edit` applied to `dst`. */
export function rewriteGguf(src: string, dst: string, edit: GgufEdit): void {
  const file = readGguf(src);
  const bytes = readFileSync(src);
  const metadata = new Map(file.metadata);
  for (const [k, v] of Object.entries(edit.metadata ?? {})) {
    if (v === undefined) metadata.delete(k);
    else metadata.set(k, v);
  }
  const tensors: GgufTensorSpec[] = file.tensors
    .filter((t) => edit.keep?.(t.name) ?? true)
    .map((t) => ({ name: t.name, type: t.type, dims: t.dims, data: bytes.subarray(t.offset, t.offset + t.byteLength) }));
  writeGguf(dst, { metadata, tensors: [...tensors, ...(edit.add ?? [])] });
}
