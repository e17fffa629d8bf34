/**
 * Parts of tensors in a shard file. A rank of a tensor- or expert-parallel group reads only slices
 * of some tensors (rows, input columns, experts, a range of a vector), so the shard file a
 * coordinator sends it holds only those: an `outer` slice is a range of a tensor's outermost
 * dimension (rows of a matrix, experts of a bank, elements of a vector), stored as is; a `columns`
 * slice is a range of a matrix's input columns, stored gathered (the compact copy the rank keeps).
 * The file names each slice in its metadata; a tensor source over it serves the slices the same
 * split asks for, and refuses what the file does not hold.
 */
import { CairnError } from '../util/errors.js';
import { ggmlRowBytes, ggmlTypeInfo, type GgmlType } from '../gguf/ggml-types.js';
import type { GgufFile } from '../gguf/reader.js';
import { GgufValueType, type GgufValue } from '../gguf/values.js';

/** The part [start, end) of a tensor's outermost dimension or input columns, of `full`. */
export interface TensorSlice {
  readonly kind: 'outer' | 'columns';
  readonly start: number;
  readonly end: number;
  readonly full: number;
}

/** The metadata key of a shard file's slices: JSON, a list of { name, kind, start, end, full }. */
export const SHARD_SLICES_KEY = 'cairn.shard.slices';

/** Most slices one shard file may name. */
const MAX_SLICES = 1 << 16;

/** The dims of a slice of a tensor of `dims`, as the shard file stores it. */
export function slicedDims(dims: readonly number[], s: TensorSlice): number[] {
  const out = [...dims];
  if (s.kind === 'outer') out[out.length - 1] = s.end - s.start;
  else out[0] = s.end - s.start;
  return out;
}

/** The dims of the whole tensor a stored slice of `dims` came from. */
export function fullDims(dims: readonly number[], s: TensorSlice): number[] {
  const out = [...dims];
  if (s.kind === 'outer') out[out.length - 1] = s.full;
  else out[0] = s.full;
  return out;
}

/** Bytes of a tensor of this type and dims. */
export function tensorBytes(type: GgmlType, dims: readonly number[]): number {
  return ggmlRowBytes(type, dims[0]) * dims.slice(1).reduce((a, b) => a * b, 1);
}

/** The metadata entry naming a shard file's slices. */
export function slicesMetadata(slices: ReadonlyMap<string, TensorSlice>): [string, GgufValue] {
  const list = [...slices].map(([name, s]) => ({ name, kind: s.kind, start: s.start, end: s.end, full: s.full }));
  return [SHARD_SLICES_KEY, { type: GgufValueType.STRING, value: JSON.stringify(list) }];
}

/**
 * The slices a shard file holds, by tensor name (none for a model file). Throws GGUF_MALFORMED for
 * an entry that does not describe a slice of one of its tensors.
 */
export function readSlices(file: GgufFile): Map<string, TensorSlice> {
  const out = new Map<string, TensorSlice>();
  const v = file.metadata.get(SHARD_SLICES_KEY);
  if (!v) return out;
  const bad = (why: string) => new CairnError('GGUF_MALFORMED', `${file.path}: ${SHARD_SLICES_KEY}: ${why}`);
  if (v.type !== GgufValueType.STRING || typeof v.value !== 'string') throw bad('not a string');
  let list: unknown;
  try {
    list = JSON.parse(v.value);
  } catch {
    throw bad('not JSON');
  }
  if (!Array.isArray(list) || list.length > MAX_SLICES) throw bad('not a list of slices');
  const byName = new Map(file.tensors.map((t) => [t.name, t]));
  for (const e of list as unknown[]) {
    if (typeof e !== 'object' || e === null) throw bad('an entry is not an object');
    const { name, kind, start, end, full } = e as Record<string, unknown>;
    const t = typeof name === 'string' ? byName.get(name) : undefined;
    if (!t || out.has(t.name)) throw bad(`${JSON.stringify(name)} is not a tensor of the file, or named twice`);
    if (kind !== 'outer' && kind !== 'columns') throw bad(`"${t.name}": kind ${JSON.stringify(kind)}`);
    const ints = [start, end, full].every((x) => Number.isSafeInteger(x));
    const s = { kind, start, end, full } as TensorSlice;
    if (!ints || s.start < 0 || s.start >= s.end || s.end > s.full || (kind === 'columns' && t.dims.length !== 2)) {
      throw bad(`"${t.name}": [${String(start)}, ${String(end)}) of ${String(full)} is not a slice`);
    }
    const stored = kind === 'outer' ? t.dims[t.dims.length - 1] : t.dims[0];
    if (stored !== s.end - s.start) throw bad(`"${t.name}" holds ${stored}, not ${s.end - s.start}`);
    // A slice along a row (of columns, or of a vector) cuts whole blocks of its type, or the whole
    // tensor's size and the slice's place in it cannot be worked out.
    const block = ggmlTypeInfo(t.type)!.blockSize;
    if ((kind === 'columns' || t.dims.length === 1) && (s.start % block !== 0 || s.full % block !== 0)) {
      throw bad(`"${t.name}": [${s.start}, ${s.end}) of ${s.full} does not cut whole blocks of ${block} elements`);
    }
    out.set(t.name, s);
  }
  return out;
}
