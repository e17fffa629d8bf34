/**
 * A shard's activation memory: named f32 buffers sized once for `maxBatch` tokens and shared by
 * every block that asks for the same name (all layers of a shard run one after the other, so their
 * q, k, v, ... can live in one buffer). Blocks ask at construction; the shard allocates once, after
 * the last block is built; a dry build (memory estimates) never allocates and reads `bytes`.
 */

interface Slot {
  elems: number;
  data: Float32Array;
}

const EMPTY: Float32Array = new Float32Array(0);
const EMPTY_INTS: Int32Array = new Int32Array(0);

/** The shard's named scratch buffers. */
export class Workspace {
  private readonly slots = new Map<string, Slot>();
  private readonly aside = new Map<string, number>();
  private readonly handles: Scratch[] = [];
  private allocated = false;

  /**
   * `ctx`: positions each sequence may reach (0 where no cache is sized, as in byte accounting),
   * for blocks whose weights depend on it (Phi-3's rope factors for long contexts).
   */
  constructor(
    readonly maxBatch: number,
    readonly ctx = 0,
  ) {}

  /**
   * Reserves `perToken` floats per batch token under `name` and returns a handle to them. Blocks
   * whose data is alive at the same time must use different names.
   */
  buffer(name: string, perToken: number): Scratch {
    if (this.allocated) throw new Error(`workspace buffer "${name}" asked for after allocation`);
    let slot = this.slots.get(name);
    if (!slot) this.slots.set(name, (slot = { elems: 0, data: EMPTY }));
    slot.elems = Math.max(slot.elems, perToken * this.maxBatch);
    const h = new Scratch(slot, perToken);
    this.handles.push(h);
    return h;
  }

  /**
   * Counts a buffer of `bytes` that a block allocates itself (expert batches, shared by the blocks
   * that name it alike): in `bytes`, once per name, at the largest size asked for.
   */
  reserveAside(name: string, bytes: number): void {
    this.aside.set(name, Math.max(this.aside.get(name) ?? 0, bytes));
  }

  /** Allocates every buffer asked for (once). */
  allocate(): void {
    if (this.allocated) return;
    for (const s of this.slots.values()) s.data = new Float32Array(s.elems);
    for (const h of this.handles) h.reset();
    this.allocated = true;
  }

  /** The buffers allocated (none before allocate()). */
  *buffers(): IterableIterator<Float32Array> {
    for (const s of this.slots.values()) if (s.data.length > 0) yield s.data;
  }

  /** Bytes reserved aside (see reserveAside). */
  get asideBytes(): number {
    let n = 0;
    for (const b of this.aside.values()) n += b;
    return n;
  }

  /** Bytes the buffers take (allocated or not), those reserved aside included. */
  get bytes(): number {
    let n = 0;
    for (const s of this.slots.values()) n += 4 * s.elems;
    return n + this.asideBytes;
  }
}

/** One block's view of a workspace buffer. */
export class Scratch {
  private n = -1;
  private view: Float32Array = EMPTY;
  private intN = -1;
  private intView: Int32Array = EMPTY_INTS;

  constructor(
    private readonly slot: Slot,
    /** Floats per batch token. */
    readonly perToken: number,
  ) {}

  /**
   * The first n tokens' rows. The view is kept while n stays the same, so a run of decode steps
   * (or of equal prefill chunks) creates no objects.
   */
  rows(n: number): Float32Array {
    if (n !== this.n) {
      this.view = this.slot.data.subarray(0, n * this.perToken);
      this.n = n;
    }
    return this.view;
  }

  /**
   * The first n tokens' rows as 32-bit integers (expert ids), over the same memory as rows(n):
   * a block uses a buffer either way, never both at once. Kept per n like rows().
   */
  ints(n: number): Int32Array {
    if (n !== this.intN) {
      const d = this.slot.data;
      this.intView = new Int32Array(d.buffer, d.byteOffset, n * this.perToken);
      this.intN = n;
    }
    return this.intView;
  }

  /** Forgets the kept views (the buffer was allocated). */
  reset(): void {
    this.n = -1;
    this.view = EMPTY;
    this.intN = -1;
    this.intView = EMPTY_INTS;
  }
}

/**
 * Rows [start, start + count) of `a`, a view of n rows of `width`: `a` itself when that is all of
 * it (one sequence in the batch: no new object), else a subarray.
 */
export function rowRange(a: Float32Array, start: number, count: number, width: number): Float32Array {
  return start === 0 && count * width === a.length ? a : a.subarray(start * width, (start + count) * width);
}
