/**
 * GGUF v2/v3 writer. Used to build test and benchmark models (random weights of real shapes) and
 * to re-write files. Tensor data may be given lazily so a multi-gigabyte model is written one
 * tensor at a time without holding it all in memory.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC } from './reader.js';
import { ggmlRowBytes, type GgmlType } from './ggml-types.js';
import { GgufValueType, ggufFixedWidth, type GgufValue } from './values.js';

/** A tensor to write; `data` must hold exactly the bytes its type and dims need. */
export interface GgufTensorSpec {
  name: string;
  type: GgmlType;
  /** GGUF order: dims[0] is the contiguous row length. */
  dims: readonly number[];
  data: Uint8Array | (() => Uint8Array);
}

/** Everything a GGUF file holds. Metadata is written in the given order. */
export interface GgufSpec {
  version?: 2 | 3;
  /** Data alignment; written as general.alignment when not the default 32. */
  alignment?: number;
  metadata: ReadonlyArray<readonly [string, GgufValue]> | ReadonlyMap<string, GgufValue>;
  tensors: readonly GgufTensorSpec[];
}

/** Grows a byte buffer as values are appended (header building). */
class ByteSink {
  private buf = Buffer.alloc(1 << 16);
  length = 0;

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = Buffer.alloc(size);
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }
  u8(v: number): void {
    this.reserve(1);
    this.buf.writeUInt8(v, this.length);
    this.length += 1;
  }
  u32(v: number): void {
    this.reserve(4);
    this.buf.writeUInt32LE(v, this.length);
    this.length += 4;
  }
  u64(v: number | bigint): void {
    this.reserve(8);
    this.buf.writeBigUInt64LE(BigInt(v), this.length);
    this.length += 8;
  }
  raw(bytes: Uint8Array): void {
    this.reserve(bytes.length);
    this.buf.set(bytes, this.length);
    this.length += bytes.length;
  }
  string(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.raw(b);
  }
  pad(alignment: number): void {
    const n = (alignment - (this.length % alignment)) % alignment;
    this.reserve(n);
    this.buf.fill(0, this.length, this.length + n);
    this.length += n;
  }
  bytes(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

function scalarBytes(type: GgufValueType, v: unknown): Uint8Array {
  const b = Buffer.alloc(ggufFixedWidth(type));
  switch (type) {
    case GgufValueType.UINT8: b.writeUInt8(v as number); break;
    case GgufValueType.INT8: b.writeInt8(v as number); break;
    case GgufValueType.UINT16: b.writeUInt16LE(v as number); break;
    case GgufValueType.INT16: b.writeInt16LE(v as number); break;
    case GgufValueType.UINT32: b.writeUInt32LE(v as number); break;
    case GgufValueType.INT32: b.writeInt32LE(v as number); break;
    case GgufValueType.FLOAT32: b.writeFloatLE(v as number); break;
    case GgufValueType.BOOL: b.writeUInt8(v ? 1 : 0); break;
    case GgufValueType.UINT64: b.writeBigUInt64LE(BigInt(v as bigint)); break;
    case GgufValueType.INT64: b.writeBigInt64LE(BigInt(v as bigint)); break;
    case GgufValueType.FLOAT64: b.writeDoubleLE(v as number); break;
    default: throw new TypeError(`type ${type} is not a fixed-width scalar`);
  }
  return b;
}

function writeValue(sink: ByteSink, v: GgufValue): void {
  if (v.type === GgufValueType.STRING) {
    sink.string(v.value as string);
  } else if (v.type === GgufValueType.ARRAY) {
    sink.u32(v.itemType);
    const items = v.value;
    sink.u64(items.length);
    if (v.itemType === GgufValueType.STRING) {
      for (const s of items as string[]) sink.string(s);
    } else if (v.itemType === GgufValueType.ARRAY) {
      for (const inner of items as GgufValue[]) writeValue(sink, inner);
    } else {
      for (let i = 0; i < items.length; i++) sink.raw(scalarBytes(v.itemType, (items as ArrayLike<unknown>)[i]));
    }
  } else {
    sink.raw(scalarBytes(v.type, v.value));
  }
}

/** A tensor's place in a file being written. */
export interface GgufLayoutEntry {
  readonly name: string;
  /** Absolute offset of the tensor's data in the file. */
  readonly offset: number;
  readonly byteLength: number;
}

/** The header bytes of a GGUF file and where each tensor's data goes (for writing it in pieces). */
export interface GgufLayout {
  readonly header: Uint8Array;
  readonly tensors: readonly GgufLayoutEntry[];
  readonly alignment: number;
  /** Size of the whole file. */
  readonly fileSize: number;
}

/** Lays out a GGUF file: the header bytes and every tensor's offset and size (data not needed). */
export function ggufLayout(spec: Omit<GgufSpec, 'tensors'> & { tensors: readonly Omit<GgufTensorSpec, 'data'>[] }): GgufLayout {
  const alignment = spec.alignment ?? GGUF_DEFAULT_ALIGNMENT;
  const entries = [...(spec.metadata instanceof Map ? spec.metadata.entries() : (spec.metadata as ReadonlyArray<readonly [string, GgufValue]>))];
  if (alignment !== GGUF_DEFAULT_ALIGNMENT && !entries.some(([k]) => k === 'general.alignment')) {
    entries.push(['general.alignment', { type: GgufValueType.UINT32, value: alignment }]);
  }
  const sizes = spec.tensors.map((t) => ggmlRowBytes(t.type, t.dims[0]) * t.dims.slice(1).reduce((a, b) => a * b, 1));
  const head = new ByteSink();
  head.u32(GGUF_MAGIC);
  head.u32(spec.version ?? 3);
  head.u64(spec.tensors.length);
  head.u64(entries.length);
  for (const [key, value] of entries) {
    head.string(key);
    head.u32(value.type);
    writeValue(head, value);
  }
  let rel = 0;
  const rels: number[] = [];
  spec.tensors.forEach((t, i) => {
    head.string(t.name);
    head.u32(t.dims.length);
    for (const d of t.dims) head.u64(d);
    head.u32(t.type);
    head.u64(rel);
    rels.push(rel);
    rel += Math.ceil(sizes[i] / alignment) * alignment;
  });
  head.pad(alignment);
  const header = head.bytes().slice();
  return {
    header,
    alignment,
    tensors: spec.tensors.map((t, i) => ({ name: t.name, offset: header.length + rels[i], byteLength: sizes[i] })),
    fileSize: header.length + rel,
  };
}

/** Writes a GGUF file, telling `onProgress` the tensor bytes written after each tensor. Throws if a tensor's data size does not match its type and dims. */
export function writeGguf(path: string, spec: GgufSpec, onProgress?: (doneBytes: number, totalBytes: number) => void): void {
  const layout = ggufLayout(spec);
  const total = layout.tensors.reduce((a, t) => a + t.byteLength, 0);
  let done = 0;
  const fd = openSync(path, 'w');
  try {
    writeAll(fd, layout.header);
    const zeros = new Uint8Array(layout.alignment);
    spec.tensors.forEach((t, i) => {
      const data = typeof t.data === 'function' ? t.data() : t.data;
      const want = layout.tensors[i].byteLength;
      if (data.length !== want) {
        throw new RangeError(`tensor "${t.name}": ${data.length} bytes given, ${want} expected for its type and dims`);
      }
      writeAll(fd, data);
      const pad = (layout.alignment - (data.length % layout.alignment)) % layout.alignment;
      if (pad) writeAll(fd, zeros.subarray(0, pad));
      done += want;
      onProgress?.(done, total);
    });
  } finally {
    closeSync(fd);
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done);
}
