/**
 * Where a KV cache's stretches go: one stretch per layer for its keys and one for its values,
 * laid out one after another in as few arenas as fit, so the cache can be one allocation (on huge
 * pages: Kernels.allocateZeroed) instead of a small one per layer, each rounded to whole huge pages.
 * Snapshots of the cache (one stretch per layer) are laid out the same way.
 */

/** Most bytes of one arena: a typed array's offset stays small on every Node version, and a large cache is still a few allocations. */
export const ARENA_MAX_BYTES = 2 ** 30;
/** Each stretch starts on a page of its own. */
export const STRETCH_ALIGN = 4096;
/** A snapshot's layers (a cache's, or one read back from bytes) start at multiples of this in their arena (a cache line). */
export const SNAPSHOT_ALIGN = 64;

/** A stretch's place: its arena and byte offset there. */
export interface StretchPlace {
  readonly arena: number;
  readonly offset: number;
}

/** The arenas' sizes and each stretch's place. */
export interface ArenaLayout {
  readonly arenas: readonly number[];
  readonly places: readonly StretchPlace[];
}

/**
 * Places stretches of these byte sizes, in order, each at a multiple of `align`, a new arena begun
 * where the next stretch would take the current one past `maxBytes` (a stretch larger than that
 * gets an arena of its own).
 */
export function layoutArenas(sizes: readonly number[], maxBytes = ARENA_MAX_BYTES, align = STRETCH_ALIGN): ArenaLayout {
  const arenas: number[] = [];
  const places = sizes.map((size): StretchPlace => {
    const last = arenas.length - 1;
    const at = last < 0 ? 0 : Math.ceil(arenas[last] / align) * align;
    if (last < 0 || (arenas[last] > 0 && at + size > maxBytes)) {
      arenas.push(size);
      return { arena: arenas.length - 1, offset: 0 };
    }
    arenas[last] = at + size;
    return { arena: last, offset: at };
  });
  return { arenas, places };
}

/**
 * Zeroed views of these byte sizes, in order, laid out by layoutArenas and backed by memory from
 * `allocate` (an ordinary ArrayBuffer where it gives none); a size past what can be allocated
 * throws the allocator's RangeError.
 */
export function arenaViews(
  sizes: readonly number[],
  allocate?: (bytes: number) => ArrayBuffer | undefined,
  align = STRETCH_ALIGN,
): Uint8Array[] {
  const { arenas, places } = layoutArenas(sizes, ARENA_MAX_BYTES, align);
  const buffers = arenas.map((size) => allocate?.(size) ?? new ArrayBuffer(size));
  return places.map((p, i) => new Uint8Array(buffers[p.arena], p.offset, sizes[i]));
}
