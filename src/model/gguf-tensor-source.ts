/**
 * The TensorSource over a GGUF file's tensor index. It checks every declared tensor (present,
 * shape, a type the kernels compute with) and adds its bytes to the model part being declared:
 * all of them to the part's total, and what a decode step reads of them (a matrix in full, one row
 * of an embedding table) to its active bytes. Given the mapped file it returns views of the data
 * (a loaded shard); without, it returns empty placeholders (a dry build: accounting and estimates).
 */
import { CairnError } from '../util/errors.js';
import { GgmlType, ggmlRowBytes, ggmlTypeInfo, ggmlTypeName } from '../gguf/ggml-types.js';
import type { GgufFile, GgufTensorInfo } from '../gguf/reader.js';
import type { Kernels } from '../kernels/api.js';
import type { ExpertBank, Matrix, ProductMatrix, TensorSource } from './tensor-source.js';
import type { Range, TensorSplit } from './tensor-split.js';
import { fullDims, readSlices, tensorBytes, type TensorSlice } from './tensor-slices.js';

/** Returns the bytes of a tensor in the file (a mapped view, not a copy). */
export type TensorBytes = (t: GgufTensorInfo) => Uint8Array;

/** A part of a model: a layer (by number), the token embedding, the output head, or tensors every shard holds once. */
export type ModelPart = number | 'embed' | 'head' | 'shared';

/** Bytes of a model part: held in memory, and read by a decode step per token; likewise its parameters. */
export interface PartBytes {
  readonly total: number;
  readonly activePerToken: number;
  readonly parameters: number;
  /** Parameters a token uses: all of a dense part, the chosen experts' share of an expert bank, one row of an embedding. */
  readonly activeParameters: number;
}

interface Tally {
  total: number;
  activePerToken: number;
  parameters: number;
  activeParameters: number;
  names: Set<string>;
}

const NO_BYTES = new Uint8Array(0);

/** What a shard holds of a tensor declared in part (a tensor-parallel slice): its bytes and their data. */
interface Held {
  readonly bytes: number;
  readonly data: (whole: Uint8Array) => Uint8Array;
  /** Which slice of the tensor this is, where a shard file can hold it alone. */
  readonly slice?: TensorSlice;
}

/** Checks declared tensors against a file, accounts for their bytes per part, and (when loading) returns their data. */
export class GgufTensorSource implements TensorSource {
  readonly path: string;
  private readonly byName: Map<string, GgufTensorInfo>;
  private part: ModelPart = 'shared';
  private readonly tallies = new Map<ModelPart, Tally>();
  private readonly unique = new Map<string, Uint8Array>();
  /** Bytes held of each distinct tensor declared (all of it unless a slice). */
  private readonly heldBytes = new Map<string, number>();
  private readonly shared = new Map<string, Float32Array | undefined>();
  /** Tensors of which the file holds a slice: the slice, and the stored tensor. */
  private readonly stored = new Map<string, { readonly slice: TensorSlice; readonly real: GgufTensorInfo }>();
  /** The slice declared of each distinct tensor (undefined: all of it). */
  private readonly declaredSlices = new Map<string, TensorSlice | undefined>();
  private readonly zeros = new Map<number, Float32Array>();
  /** Matrices declared whole or by rows for products, and expert banks as matrices (views of the file), in the order declared. */
  private readonly productList: Matrix[] = [];
  /** Tensors declared some other way too (a vector, an expert bank whose experts are not whole 16-row groups). */
  private readonly otherUses = new Set<string>();

  /**
   * `load` gives the mapped data and the kernels that turn small non-f32 vectors into f32; without
   * it, a dry build. `split`: the tensor-parallel rank the shard is (its blocks declare slices);
   * `expertSplit`: the expert-parallel rank (its MoE blocks declare their range of the experts).
   */
  constructor(
    private readonly file: GgufFile,
    private readonly load?: { readonly bytesOf: TensorBytes; readonly kernels: Kernels },
    readonly split?: TensorSplit,
    readonly expertSplit?: TensorSplit,
  ) {
    this.path = file.path;
    this.byName = new Map(file.tensors.map((t) => [t.name, t]));
    // A shard file that holds slices: the source checks declarations against the whole tensors
    // they came from, and serves the slices from the stored bytes.
    for (const [name, slice] of readSlices(file)) {
      const t = this.byName.get(name)!;
      const dims = fullDims(t.dims, slice);
      this.stored.set(name, { slice, real: t });
      this.byName.set(name, { ...t, dims, byteLength: tensorBytes(t.type, dims), elements: dims.reduce((a, b) => a * b, 1) });
    }
  }

  /** Makes the following declarations belong to `part`. */
  enter(part: ModelPart): void {
    this.part = part;
  }

  /** Bytes of a part declared so far. */
  bytesOf(part: ModelPart): PartBytes {
    const t = this.tallies.get(part);
    return { total: t?.total ?? 0, activePerToken: t?.activePerToken ?? 0, parameters: t?.parameters ?? 0, activeParameters: t?.activeParameters ?? 0 };
  }

  /** Parameters of all distinct tensors declared (a tensor two parts need counts once). */
  get totalParameters(): number {
    let n = 0;
    for (const [name, held] of this.heldBytes) {
      const t = this.byName.get(name)!;
      n += t.byteLength > 0 ? Math.round((t.elements * held) / t.byteLength) : 0;
    }
    return n;
  }

  /** True when two parts declared a tensor in common (a head tied to the embedding). */
  partsShare(a: ModelPart, b: ModelPart): boolean {
    const x = this.tallies.get(a)?.names;
    const y = this.tallies.get(b)?.names;
    return !!x && !!y && [...x].some((n) => y.has(n));
  }

  /** Bytes of all distinct tensors declared (a tensor two parts need counts once). */
  get totalBytes(): number {
    let n = 0;
    for (const held of this.heldBytes.values()) n += held;
    return n;
  }

  /** Names of the distinct tensors declared, in the order first declared. */
  names(): string[] {
    return [...this.unique.keys()];
  }

  /** The slice of each distinct tensor declared that a shard file may hold alone (undefined: all of it), in the order first declared. */
  slices(): Map<string, TensorSlice | undefined> {
    return new Map(this.declaredSlices);
  }

  /** The data of every distinct tensor declared, in file order (for reading pages in ahead). */
  views(): Uint8Array[] {
    return [...this.unique.entries()].sort((a, b) => this.byName.get(a[0])!.offset - this.byName.get(b[0])!.offset).map((e) => e[1]);
  }

  /**
   * The matrices declared for products as views of the file (a tensor's columns are a copy, and
   * not among them), a tensor's view once; `only`: nothing but the kernels' products and row
   * lookups of that view read its bytes (a tied head's table serves the embedding's lookups too,
   * through the same view). Empty for a dry build.
   */
  products(): ProductMatrix[] {
    // Every declaration of a tensor gets its one view (count's): a tensor declared twice is packed once.
    const seen = new Set<Uint8Array>();
    const out: ProductMatrix[] = [];
    for (const m of this.productList) {
      if (seen.has(m.data)) continue;
      seen.add(m.data);
      out.push({ matrix: m, only: !this.otherUses.has(m.name) });
    }
    return out;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  matrix(name: string, rows: number, cols: number): Matrix {
    return this.declareMatrix(name, rows, cols, true, rows)!;
  }

  optionalMatrix(name: string, rows: number, cols: number): Matrix | undefined {
    return this.declareMatrix(name, rows, cols, false, rows);
  }

  matrixRows(name: string, rows: number, cols: number, range: Range): Matrix {
    const t = this.checkMatrix(name, rows, cols, true)!;
    const [r0, r1] = this.checkRange(name, range, rows, 1);
    const rowBytes = ggmlRowBytes(t.type, cols);
    const bytes = (r1 - r0) * rowBytes;
    const slice: TensorSlice | undefined = t.dims.length === 2 ? { kind: 'outer', start: r0, end: r1, full: rows } : undefined;
    const data = this.count(t, bytes, { bytes, data: (whole) => whole.subarray(r0 * rowBytes, r1 * rowBytes), slice });
    return this.product({ name, type: t.type, rows: r1 - r0, cols, data });
  }

  matrixColumns(name: string, rows: number, cols: number, range: Range): Matrix {
    const t = this.checkMatrix(name, rows, cols, true)!;
    const block = ggmlTypeInfo(t.type)!.blockSize;
    const [c0, c1] = this.checkRange(name, range, cols, block);
    const rowBytes = ggmlRowBytes(t.type, cols);
    const from = ggmlRowBytes(t.type, c0);
    const width = ggmlRowBytes(t.type, c1 - c0);
    const copy = (whole: Uint8Array) => {
      const out = new Uint8Array(rows * width);
      for (let r = 0; r < rows; r++) out.set(whole.subarray(r * rowBytes + from, r * rowBytes + from + width), r * width);
      return out;
    };
    const slice: TensorSlice | undefined = t.dims.length === 2 ? { kind: 'columns', start: c0, end: c1, full: cols } : undefined;
    const data = this.count(t, rows * width, { bytes: rows * width, data: copy, slice });
    return { name, type: t.type, rows, cols: c1 - c0, data };
  }

  vectorRange(name: string, len: number, range: Range, required: boolean): Float32Array | undefined {
    const t = this.find(name, required);
    if (!t) return undefined;
    const [a, b] = this.checkRange(name, range, len, 1);
    this.otherUses.add(name);
    if (t.type !== GgmlType.F32 || t.elements !== len) return this.declareVector(name, len, required)!.subarray(a, b);
    // An F32 vector's range is a view of the file: only it is held.
    const bytes = 4 * (b - a);
    const slice: TensorSlice | undefined = t.dims.length === 1 ? { kind: 'outer', start: a, end: b, full: len } : undefined;
    const data = this.count(t, bytes, { bytes, data: (whole) => whole.subarray(4 * a, 4 * b), slice });
    return this.load ? this.floats(t, data, b - a) : this.zeroVector(b - a);
  }

  embedding(name: string, rows: number, cols: number): Matrix {
    return this.declareMatrix(name, rows, cols, true, 1)!;
  }

  experts(name: string, count: number, rows: number, cols: number, used: number): ExpertBank {
    const t = this.checkExperts(name, count, rows, cols, used);
    const expertBytes = rows * ggmlRowBytes(t.type, cols);
    return this.bank({ name, type: t.type, rows, cols, count, expertBytes, data: this.count(t, used * expertBytes) });
  }

  /**
   * Records a bank for products as one matrix of its experts' rows, where its experts are whole
   * groups of 16 rows (a packed copy then keeps every expert at its offset); else its bytes serve
   * a use packing does not know.
   */
  private bank(b: ExpertBank): ExpertBank {
    if (b.rows % 16 === 0) this.product({ name: b.name, type: b.type, rows: b.rows * b.count, cols: b.cols, data: b.data });
    else this.otherUses.add(b.name);
    return b;
  }

  expertsRange(name: string, count: number, rows: number, cols: number, used: number, range: Range): ExpertBank {
    const t = this.checkExperts(name, count, rows, cols, used);
    const [e0, e1] = this.checkRange(name, range, count, 1);
    const expertBytes = rows * ggmlRowBytes(t.type, cols);
    const held = (e1 - e0) * expertBytes;
    // A rank computes, on average, its share of the experts a token chooses.
    const active = Math.round((used * held) / count);
    const slice: TensorSlice = { kind: 'outer', start: e0, end: e1, full: count };
    const data = this.count(t, active, { bytes: held, data: (whole) => whole.subarray(e0 * expertBytes, e1 * expertBytes), slice });
    return this.bank({ name, type: t.type, rows, cols, count: e1 - e0, expertBytes, data, first: e0 });
  }

  /** Checks a 3-D expert tensor's dims and type and the experts used per token. */
  private checkExperts(name: string, count: number, rows: number, cols: number, used: number): GgufTensorInfo {
    const t = this.find(name, true)!;
    if (t.dims.length !== 3 || t.dims[0] !== cols || t.dims[1] !== rows || t.dims[2] !== count) {
      throw new CairnError(
        'GGUF_MALFORMED',
        `${this.path}: tensor "${name}" has dims [${t.dims.join(', ')}], expected [${cols}, ${rows}, ${count}]`,
      );
    }
    this.checkComputable(t);
    if (!(Number.isInteger(used) && used >= 1 && used <= count)) {
      throw new CairnError('GGUF_MALFORMED', `${this.path}: ${used} experts used per token of ${count} in "${name}"`);
    }
    return t;
  }

  vector(name: string, len: number): Float32Array {
    return this.declareVector(name, len, true)!;
  }

  optionalVector(name: string, len: number): Float32Array | undefined {
    return this.declareVector(name, len, false);
  }

  sharedVector(name: string, len: number, required: boolean): Float32Array | undefined {
    if (this.shared.has(name)) return this.shared.get(name);
    const part = this.part;
    this.part = 'shared';
    try {
      const v = this.declareVector(name, len, required);
      this.shared.set(name, v);
      return v;
    } finally {
      this.part = part;
    }
  }

  private find(name: string, required: boolean): GgufTensorInfo | undefined {
    const t = this.byName.get(name);
    if (!t && required) throw new CairnError('GGUF_MALFORMED', `${this.path}: tensor "${name}" is missing`);
    return t;
  }

  /**
   * Adds a tensor to the current part (once per part), `activeBytes` of it read per token; `held`:
   * the slice of it the shard holds (default all of it).
   */
  private count(t: GgufTensorInfo, activeBytes: number, held?: Held): Uint8Array {
    const heldBytes = held?.bytes ?? t.byteLength;
    const elements = (bytes: number) => (t.byteLength > 0 ? Math.round((t.elements * bytes) / t.byteLength) : 0);
    let tally = this.tallies.get(this.part);
    if (!tally) this.tallies.set(this.part, (tally = { total: 0, activePerToken: 0, parameters: 0, activeParameters: 0, names: new Set() }));
    if (!tally.names.has(t.name)) {
      tally.names.add(t.name);
      tally.total += heldBytes;
      tally.activePerToken += activeBytes;
      tally.parameters += elements(heldBytes);
      // Active bytes are whole rows or whole experts (a rank's average share of the chosen experts
      // aside), so this share of the elements is exact.
      tally.activeParameters += elements(activeBytes);
    }
    let data = this.unique.get(t.name);
    if (!data) {
      data = this.load ? this.dataOf(t, held) : NO_BYTES;
      this.unique.set(t.name, data);
      this.heldBytes.set(t.name, heldBytes);
      this.declaredSlices.set(t.name, held?.slice);
    }
    return data;
  }

  /** A declared tensor's bytes: all of it, or the slice `held` asks for (from the file's slice where it holds one). */
  private dataOf(t: GgufTensorInfo, held: Held | undefined): Uint8Array {
    const load = this.load!;
    const stored = this.stored.get(t.name);
    if (!stored) return held ? held.data(load.bytesOf(t)) : load.bytesOf(t);
    const want = held?.slice;
    const s = stored.slice;
    const fits = want && want.kind === s.kind && (s.kind === 'outer' ? s.start <= want.start && want.end <= s.end : s.start === want.start && s.end === want.end);
    if (!fits) {
      throw new CairnError(
        'MODEL_UNSUPPORTED',
        `${this.path}: this shard holds ${s.kind === 'outer' ? 'part' : 'some columns'} [${s.start}, ${s.end}) of tensor "${t.name}", not what this split reads; it was made for another plan`,
      );
    }
    const bytes = load.bytesOf(stored.real);
    if (s.kind === 'columns') return bytes;
    const unit = t.byteLength / s.full;
    return bytes.subarray((want.start - s.start) * unit, (want.end - s.start) * unit);
  }

  /** Checks that [start, end) is a non-empty range within `size` on multiples of `unit`. */
  private checkRange(name: string, range: Range, size: number, unit: number): Range {
    const [a, b] = range;
    const ok = Number.isInteger(a) && Number.isInteger(b) && a >= 0 && b <= size && a < b && a % unit === 0 && b % unit === 0;
    if (!ok) {
      throw new CairnError(
        'MODEL_UNSUPPORTED',
        `${this.path}: tensor "${name}" cannot be split at [${a}, ${b}) of ${size}${unit > 1 ? ` (its blocks are ${unit} elements)` : ''}; choose fewer ranks or other shares`,
      );
    }
    return range;
  }

  private checkMatrix(name: string, rows: number, cols: number, required: boolean): GgufTensorInfo | undefined {
    const t = this.find(name, required);
    if (!t) return undefined;
    const misshapen = t.dims[0] !== cols || (t.dims[1] ?? 1) !== rows || t.dims.slice(2).some((d) => d !== 1);
    if (misshapen) {
      throw new CairnError('GGUF_MALFORMED', `${this.path}: tensor "${name}" has dims [${t.dims.join(', ')}], expected [${cols}, ${rows}]`);
    }
    this.checkComputable(t);
    return t;
  }

  private declareMatrix(name: string, rows: number, cols: number, required: boolean, activeRows: number): Matrix | undefined {
    const t = this.checkMatrix(name, rows, cols, required);
    if (!t) return undefined;
    const active = activeRows === rows ? t.byteLength : activeRows * ggmlRowBytes(t.type, cols);
    // An embedding table's rows are read through kernels.getRows with the tensor's one view (count's).
    const m: Matrix = { name, type: t.type, rows, cols, data: this.count(t, active) };
    return activeRows === rows ? this.product(m) : m;
  }

  /** Records a matrix declared for products (when loading). */
  private product(m: Matrix): Matrix {
    if (this.load && m.data.byteLength > 0) this.productList.push(m);
    return m;
  }

  private checkComputable(t: GgufTensorInfo): void {
    if (!ggmlTypeInfo(t.type)?.supported) {
      throw new CairnError(
        'MODEL_UNSUPPORTED',
        `${this.path}: tensor "${t.name}" has type ${ggmlTypeName(t.type)}, which cairn cannot compute with yet`,
      );
    }
  }

  private declareVector(name: string, len: number, required: boolean): Float32Array | undefined {
    const t = this.find(name, required);
    if (!t) return undefined;
    if (t.elements !== len)
      throw new CairnError('GGUF_MALFORMED', `${this.path}: tensor "${name}" has ${t.elements} elements, expected ${len}`);
    if (t.type !== GgmlType.F32 && !ggmlTypeInfo(t.type)?.supported) {
      throw new CairnError('MODEL_UNSUPPORTED', `${this.path}: tensor "${name}" has type ${ggmlTypeName(t.type)}`);
    }
    this.otherUses.add(name);
    const data = this.count(t, t.byteLength);
    if (!this.load) return this.zeroVector(len);
    if (t.type === GgmlType.F32) return this.floats(t, data, len);
    const out = new Float32Array(len);
    this.load.kernels.dequantize(t.type, data, out, len);
    return out;
  }

  /**
   * F32 data of `t` as floats: a view of the file where it starts on a 4-byte boundary, else a copy.
   * A file with general.alignment 1 or 2 may place an F32 tensor anywhere, and neither a typed array
   * nor the native kernels take unaligned floats. The mapping starts on a page, so the offset in the
   * file (of the stored tensor, for a slice) tells the address's alignment.
   */
  private floats(t: GgufTensorInfo, data: Uint8Array, len: number): Float32Array {
    const fileOffset = this.stored.get(t.name)?.real.offset ?? t.offset;
    if (fileOffset % 4 === 0 && data.byteOffset % 4 === 0) return new Float32Array(data.buffer, data.byteOffset, len);
    // Uint8Array's slice copies; a Buffer's (file bytes read into memory) would be a view.
    return new Float32Array(Uint8Array.prototype.slice.call(data, 0, 4 * len).buffer, 0, len);
  }

  /** Dry builds share one zero vector per length (nothing reads them). */
  private zeroVector(len: number): Float32Array {
    let z = this.zeros.get(len);
    if (!z) this.zeros.set(len, (z = new Float32Array(len)));
    return z;
  }
}
