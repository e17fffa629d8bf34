/**
 * GGUF v2/v3 reader: metadata, tensor index, alignment and data offsets. It reads only the header
 * (tensor data stays on disk for the native library to map) and distrusts every count, length and
 * offset in it: anything that lies gives a CairnError naming the file and the problem, never a
 * crash, a hang or an allocation larger than the file.
 */
import { closeSync, fstatSync, openSync } from 'node:fs';
import { CairnError } from '../util/errors.js';
import { FileCursor, TruncatedError } from './file-cursor.js';
import { GgmlType, ggmlTypeInfo, ggmlTypeName } from './ggml-types.js';
import { GgufValueType, ggufFixedWidth, isGgufValueType, type GgufArrayItems, type GgufValue } from './values.js';

/** GGUF magic: the bytes "GGUF" read as a little-endian u32. */
export const GGUF_MAGIC = 0x46554747;
/** Default data alignment when general.alignment is absent. */
export const GGUF_DEFAULT_ALIGNMENT = 32;
/** GGML's limit on tensor dimensions. */
export const GGUF_MAX_DIMS = 4;
const MAX_ARRAY_DEPTH = 8;
/**
 * Limits on what a header may declare beyond its size. Each tensor, metadata entry, string and
 * nested array becomes JS objects of its own, many times the bytes it takes in the file, and takes
 * time to read: a header of a few GB made of empty strings or empty arrays would otherwise exhaust
 * the heap or block the event loop for minutes. Real models stay far below: a few thousand tensors,
 * vocabularies and merge lists of up to a million or so strings, no nested arrays.
 */
export const GGUF_MAX_ENTRIES = 1 << 16;
export const GGUF_MAX_STRINGS = 1 << 22;
export const GGUF_MAX_NESTED_ARRAYS = 1 << 16;
/** Longest string read: a JS string holds at most 2^29 - 24 UTF-16 units, one per byte at most. */
export const GGUF_MAX_STRING_BYTES = 1 << 28;

/** What a header may still hold of the counted things (see the limits above). */
interface Budget {
  strings: number;
  nestedArrays: number;
}

/** One entry of the tensor index. */
export interface GgufTensorInfo {
  readonly name: string;
  /** Dimensions as GGUF stores them: dims[0] is the contiguous (row) length. */
  readonly dims: readonly number[];
  readonly type: GgmlType;
  /** Offset relative to the start of the data section. */
  readonly relOffset: number;
  /** Absolute offset in the file. */
  readonly offset: number;
  /** Bytes of tensor data. */
  readonly byteLength: number;
  /** Number of elements. */
  readonly elements: number;
}

/** A parsed GGUF header. */
export interface GgufFile {
  readonly path: string;
  readonly version: number;
  readonly fileSize: number;
  readonly alignment: number;
  /** Absolute offset of the data section. */
  readonly dataOffset: number;
  readonly metadata: ReadonlyMap<string, GgufValue>;
  readonly tensors: readonly GgufTensorInfo[];
}

function malformed(path: string, problem: string): CairnError {
  return new CairnError('GGUF_MALFORMED', `${path}: not a valid GGUF file: ${problem}`);
}

/** Reads the header of a GGUF file. Throws CairnError (GGUF_MALFORMED, GGUF_UNSUPPORTED, FILE_NOT_FOUND). */
export function readGguf(path: string): GgufFile {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new CairnError('FILE_NOT_FOUND', `${path}: no such file`);
    throw new CairnError('FILE_NOT_FOUND', `${path}: cannot open (${code ?? String(err)})`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new CairnError('FILE_NOT_FOUND', `${path}: not a regular file`);
    const cur = new FileCursor(fd, st.size);
    try {
      return parse(path, cur);
    } catch (err) {
      if (err instanceof TruncatedError) throw malformed(path, `truncated (${err.message})`);
      throw err;
    }
  } finally {
    closeSync(fd);
  }
}

/** Thrown by readGgufPrefix when the header runs past the bytes given: fetch at least `needed` bytes and try again. */
export class GgufPrefixShort extends Error {
  constructor(readonly needed: number) {
    super(`the GGUF header runs past the first ${needed - 1} bytes`);
  }
}

/**
 * Reads the header of a GGUF file of `fileSize` bytes from its first bytes only (`prefix`, e.g.
 * a ranged read of a remote file); `name` names it in errors. Throws GgufPrefixShort when the
 * header is longer than the prefix, and CairnError (GGUF_MALFORMED, ...) as readGguf does.
 */
export function readGgufPrefix(name: string, prefix: Uint8Array, fileSize: number): GgufFile {
  if (!Number.isSafeInteger(fileSize) || fileSize < prefix.length) throw malformed(name, `a size of ${fileSize} bytes is less than the ${prefix.length} bytes read`);
  const bytes = Buffer.from(prefix.buffer, prefix.byteOffset, prefix.byteLength);
  const cur = new FileCursor((buf, off, len, pos) => (pos >= bytes.length ? 0 : bytes.copy(buf, off, pos, Math.min(bytes.length, pos + len))), fileSize);
  try {
    return parse(name, cur);
  } catch (err) {
    if (err instanceof TruncatedError && err.at >= prefix.length && err.at < fileSize) throw new GgufPrefixShort(err.at + err.wanted);
    if (err instanceof TruncatedError) throw malformed(name, `truncated (${err.message})`);
    throw err;
  }
}

function parse(path: string, cur: FileCursor): GgufFile {
  if (cur.fileSize < 4) throw malformed(path, `file is ${cur.fileSize} bytes, too short for a GGUF header`);
  const magic = cur.u32();
  if (magic !== GGUF_MAGIC) {
    throw malformed(path, `bad magic 0x${magic.toString(16).padStart(8, '0')} (expected "GGUF")`);
  }
  const version = cur.u32();
  if (version === 1) {
    throw new CairnError('GGUF_UNSUPPORTED', `${path}: GGUF version 1 is not supported; convert the file again with a current llama.cpp`);
  }
  if (version !== 2 && version !== 3) {
    throw malformed(path, `unknown version ${version} (supported: 2 and 3)`);
  }
  const tensorCount = count(path, cur.u64(), 'tensor count', cur.remaining, 8 + 4 + 4 + 8);
  const kvCount = count(path, cur.u64(), 'metadata count', cur.remaining, 8 + 4);
  const budget: Budget = { strings: GGUF_MAX_STRINGS, nestedArrays: GGUF_MAX_NESTED_ARRAYS };

  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < kvCount; i++) {
    const key = readString(path, cur, `metadata key #${i}`, budget);
    const type = cur.u32();
    if (!isGgufValueType(type)) throw malformed(path, `metadata ${shown(key)} has unknown value type ${type}`);
    if (metadata.has(key)) throw malformed(path, `metadata key ${shown(key)} appears twice`);
    metadata.set(key, readValue(path, cur, key, type, 0, budget));
  }

  let alignment = GGUF_DEFAULT_ALIGNMENT;
  const alignValue = metadata.get('general.alignment');
  if (alignValue) {
    if (alignValue.type !== GgufValueType.UINT32) throw malformed(path, 'general.alignment is not a u32');
    const a = alignValue.value as number;
    if (a === 0 || (a & (a - 1)) !== 0) throw malformed(path, `general.alignment ${a} is not a power of two`);
    alignment = a;
  }

  const raw: { name: string; dims: number[]; type: number; relOffset: number }[] = [];
  const names = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    // As llama.cpp: a tensor name is shorter than GGML_MAX_NAME (64) bytes.
    const name = readString(path, cur, `tensor name #${i}`, budget, 63);
    if (names.has(name)) throw malformed(path, `tensor ${shown(name)} appears twice`);
    names.add(name);
    const nDims = cur.u32();
    if (nDims < 1 || nDims > GGUF_MAX_DIMS) throw malformed(path, `tensor ${shown(name)} has ${nDims} dimensions (1 to ${GGUF_MAX_DIMS} allowed)`);
    const dims: number[] = [];
    for (let d = 0; d < nDims; d++) {
      const dim = cur.u64();
      if (dim === 0n || dim > BigInt(Number.MAX_SAFE_INTEGER)) throw malformed(path, `tensor ${shown(name)} has dimension ${d} = ${dim}`);
      dims.push(Number(dim));
    }
    const type = cur.u32();
    const off = cur.u64();
    if (off > BigInt(cur.fileSize)) throw malformed(path, `tensor ${shown(name)} offset ${off} is past the end of the file`);
    raw.push({ name, dims, type, relOffset: Number(off) });
  }

  const dataOffset = Math.ceil(cur.offset / alignment) * alignment;
  if (tensorCount > 0 && dataOffset > cur.fileSize) throw malformed(path, 'truncated before the tensor data section');

  const tensors: GgufTensorInfo[] = raw.map((t) => tensorInfo(path, t, dataOffset, alignment, cur.fileSize));
  checkOverlaps(path, tensors);
  return { path, version, fileSize: cur.fileSize, alignment, dataOffset, metadata, tensors };
}

function count(path: string, n: bigint, what: string, remaining: number, minBytesEach: number): number {
  if (n > BigInt(Math.floor(remaining / minBytesEach))) {
    throw malformed(path, `${what} ${n} cannot fit in the ${remaining} bytes that follow`);
  }
  if (n > BigInt(GGUF_MAX_ENTRIES)) throw malformed(path, `${what} ${n} is more than the ${GGUF_MAX_ENTRIES} cairn reads`);
  return Number(n);
}

/** Takes `n` of the header's strings or nested arrays (`kind`) from the budget; throws when it has fewer. */
function spend(path: string, budget: Budget, kind: keyof Budget, n: number, what: string): void {
  if (n > budget[kind]) {
    const limit = kind === 'strings' ? `${GGUF_MAX_STRINGS} strings` : `${GGUF_MAX_NESTED_ARRAYS} nested arrays`;
    throw malformed(path, `${what}: the header holds more than the ${limit} cairn reads`);
  }
  budget[kind] -= n;
}

function readString(path: string, cur: FileCursor, what: string, budget: Budget, maxBytes = GGUF_MAX_STRING_BYTES): string {
  const len = cur.u64();
  if (len > BigInt(cur.remaining)) throw malformed(path, `${what}: string length ${len} runs past the end of the file`);
  if (len > BigInt(maxBytes)) {
    throw malformed(path, maxBytes < GGUF_MAX_STRING_BYTES ? `${what} is ${len} bytes long (at most ${maxBytes})` : `${what}: a string of ${len} bytes is longer than the ${GGUF_MAX_STRING_BYTES} cairn reads`);
  }
  spend(path, budget, 'strings', 1, what);
  return cur.string(Number(len));
}

function readValue(path: string, cur: FileCursor, key: string, type: GgufValueType, depth: number, budget: Budget): GgufValue {
  switch (type) {
    case GgufValueType.UINT8:
      return { type, value: cur.u8() };
    case GgufValueType.INT8:
      return { type, value: cur.i8() };
    case GgufValueType.UINT16:
      return { type, value: cur.u16() };
    case GgufValueType.INT16:
      return { type, value: cur.i16() };
    case GgufValueType.UINT32:
      return { type, value: cur.u32() };
    case GgufValueType.INT32:
      return { type, value: cur.i32() };
    case GgufValueType.FLOAT32:
      return { type, value: cur.f32() };
    case GgufValueType.BOOL: {
      const b = cur.u8();
      if (b > 1) throw malformed(path, `metadata ${shown(key)}: bool value ${b}`);
      return { type, value: b === 1 };
    }
    case GgufValueType.STRING:
      return { type, value: readString(path, cur, `metadata ${shown(key)}`, budget) };
    case GgufValueType.UINT64:
      return { type, value: cur.u64() };
    case GgufValueType.INT64:
      return { type, value: cur.i64() };
    case GgufValueType.FLOAT64:
      return { type, value: cur.f64() };
    case GgufValueType.ARRAY:
      return readArray(path, cur, key, depth, budget);
  }
}

function readArray(path: string, cur: FileCursor, key: string, depth: number, budget: Budget): GgufValue {
  if (depth >= MAX_ARRAY_DEPTH) throw malformed(path, `metadata ${shown(key)}: arrays nested deeper than ${MAX_ARRAY_DEPTH}`);
  const itemType = cur.u32();
  if (!isGgufValueType(itemType)) throw malformed(path, `metadata ${shown(key)}: array of unknown type ${itemType}`);
  const n = cur.u64();
  const width = ggufFixedWidth(itemType);
  // Strings need at least their 8-byte length; nested arrays their 12-byte header.
  const minEach = width || (itemType === GgufValueType.STRING ? 8 : 12);
  if (n > BigInt(Math.floor(cur.remaining / minEach))) {
    throw malformed(path, `metadata ${shown(key)}: array of ${n} elements cannot fit in the ${cur.remaining} bytes that follow`);
  }
  const len = Number(n);
  const value = { type: GgufValueType.ARRAY as const, itemType, value: [] as unknown as GgufArrayItems };
  if (width > 0) {
    value.value = fixedArray(itemType, cur.bytes(len * width), len, path, key);
  } else if (itemType === GgufValueType.STRING) {
    // Checked for the whole array first, so that a giant one fails before it is read.
    if (len > budget.strings) spend(path, budget, 'strings', len, `metadata ${shown(key)}`);
    const out = new Array<string>(len);
    for (let i = 0; i < len; i++) out[i] = readString(path, cur, `metadata ${shown(key)}[${i}]`, budget);
    value.value = out;
  } else {
    spend(path, budget, 'nestedArrays', len, `metadata ${shown(key)}`);
    const out = new Array<GgufValue>(len);
    for (let i = 0; i < len; i++) out[i] = readArray(path, cur, `${key}[${i}]`, depth + 1, budget);
    value.value = out;
  }
  return value;
}

function fixedArray(t: GgufValueType, bytes: Uint8Array, n: number, path: string, key: string): GgufArrayItems {
  // bytes is a fresh copy, so its buffer can back an aligned typed array after one more copy at most.
  const buf = bytes.byteOffset % 8 === 0 ? bytes.buffer : bytes.slice().buffer;
  const o = bytes.byteOffset % 8 === 0 ? bytes.byteOffset : 0;
  switch (t) {
    case GgufValueType.UINT8:
      return new Uint8Array(buf, o, n);
    case GgufValueType.INT8:
      return new Int8Array(buf, o, n);
    case GgufValueType.UINT16:
      return new Uint16Array(buf, o, n);
    case GgufValueType.INT16:
      return new Int16Array(buf, o, n);
    case GgufValueType.UINT32:
      return new Uint32Array(buf, o, n);
    case GgufValueType.INT32:
      return new Int32Array(buf, o, n);
    case GgufValueType.FLOAT32:
      return new Float32Array(buf, o, n);
    case GgufValueType.UINT64:
      return new BigUint64Array(buf, o, n);
    case GgufValueType.INT64:
      return new BigInt64Array(buf, o, n);
    case GgufValueType.FLOAT64:
      return new Float64Array(buf, o, n);
    case GgufValueType.BOOL: {
      const out = new Array<boolean>(n);
      for (let i = 0; i < n; i++) {
        if (bytes[i] > 1) throw malformed(path, `metadata ${shown(key)}[${i}]: bool value ${bytes[i]}`);
        out[i] = bytes[i] === 1;
      }
      return out;
    }
    default:
      throw malformed(path, `metadata ${shown(key)}: type ${t} is not fixed-width`);
  }
}

function tensorInfo(
  path: string,
  t: { name: string; dims: number[]; type: number; relOffset: number },
  dataOffset: number,
  alignment: number,
  fileSize: number,
): GgufTensorInfo {
  const ti = ggmlTypeInfo(t.type);
  if (!ti) throw malformed(path, `tensor ${shown(t.name)} has unknown type ${t.type}`);
  let elements = 1;
  for (const d of t.dims) {
    elements *= d;
    if (elements > Number.MAX_SAFE_INTEGER || elements > fileSize * 64) {
      throw malformed(path, `tensor ${shown(t.name)} dimensions [${t.dims.join(', ')}] describe more data than the file holds`);
    }
  }
  if (t.dims[0] % ti.blockSize !== 0) {
    throw malformed(path, `tensor ${shown(t.name)} row length ${t.dims[0]} is not a multiple of the ${ggmlTypeName(t.type)} block size ${ti.blockSize}`);
  }
  if (t.relOffset % alignment !== 0) {
    throw malformed(path, `tensor ${shown(t.name)} offset ${t.relOffset} is not aligned to ${alignment}`);
  }
  const byteLength = (elements / ti.blockSize) * ti.typeSize;
  const offset = dataOffset + t.relOffset;
  if (offset + byteLength > fileSize) {
    throw malformed(path, `tensor ${shown(t.name)} (${byteLength} bytes at ${offset}) runs past the end of the file (${fileSize} bytes)`);
  }
  return { name: t.name, dims: t.dims, type: t.type as GgmlType, relOffset: t.relOffset, offset, byteLength, elements };
}

function checkOverlaps(path: string, tensors: readonly GgufTensorInfo[]): void {
  const sorted = [...tensors].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1];
    if (sorted[i].offset < prev.offset + prev.byteLength) {
      throw malformed(path, `tensors ${shown(prev.name)} and ${shown(sorted[i].name)} overlap`);
    }
  }
}

/** A name from the file as an error message shows it: quoted, control characters escaped, at most 100 characters. */
export function shown(text: string): string {
  const cut = text.length > 100 ? `${text.slice(0, 100)}...` : text;
  return JSON.stringify(cut).replace(/[\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
