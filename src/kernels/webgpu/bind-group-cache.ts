/**
 * Bind groups made once per pipeline and set of bindings, found again on later steps. A decode step
 * looks up hundreds of them, so the lookup walks maps keyed by the bound objects themselves (and a
 * number for a parameter slot) instead of building a string key per dispatch. Groups that bind a
 * buffer are dropped when it is freed: they would keep the freed buffer (and the cache's room).
 */
/// <reference types="@webgpu/types" />

/** A binding as the cache keys it: a buffer bound whole, or a number naming a range of the parameter buffer. */
export type BindingKey = GPUBuffer | number;

type Level = Map<BindingKey, Level | GPUBindGroup>;

/** Where a cached group hangs: in `map` under `key`. */
interface Leaf {
  readonly map: Level;
  readonly key: BindingKey;
  readonly group: GPUBindGroup;
  alive: boolean;
}

/** Cached bind groups by (pipeline, bindings in order). */
export class BindGroupCache {
  private readonly root = new Map<GPUComputePipeline, Level>();
  private readonly leavesOf = new Map<GPUBuffer, Leaf[]>();
  private count = 0;

  /** `max`: groups kept before the cache starts again (a bound on what shapes that churn leave behind). */
  constructor(private readonly max: number) {}

  /** Cached groups. */
  get size(): number {
    return this.count;
  }

  /** The group of `pipeline` over `keys`, made by `make` the first time. */
  get(pipeline: GPUComputePipeline, keys: readonly BindingKey[], make: () => GPUBindGroup): GPUBindGroup {
    if (this.count >= this.max) this.clear();
    let level = this.root.get(pipeline);
    if (!level) this.root.set(pipeline, (level = new Map()));
    const last = keys.length - 1;
    for (let i = 0; i < last; i++) {
      let next = level.get(keys[i]) as Level | undefined;
      if (!next) level.set(keys[i], (next = new Map()));
      level = next;
    }
    const found = level.get(keys[last]) as GPUBindGroup | undefined;
    if (found) return found;
    const group = make();
    level.set(keys[last], group);
    this.count++;
    const leaf: Leaf = { map: level, key: keys[last], group, alive: true };
    for (const k of keys) {
      if (typeof k === 'number') continue;
      let leaves = this.leavesOf.get(k);
      if (!leaves) this.leavesOf.set(k, (leaves = []));
      // A buffer that outlives many others (a weight) would collect their dead leaves: drop them now and then.
      if (leaves.length >= 64 && (leaves.length & (leaves.length - 1)) === 0) {
        const live = leaves.filter((l) => l.alive);
        leaves.length = 0;
        leaves.push(...live);
      }
      leaves.push(leaf);
    }
    return group;
  }

  /** Drops every group that binds `buffer`. */
  forget(buffer: GPUBuffer): void {
    const leaves = this.leavesOf.get(buffer);
    if (!leaves) return;
    this.leavesOf.delete(buffer);
    for (const leaf of leaves) {
      if (!leaf.alive) continue;
      leaf.alive = false;
      if (leaf.map.get(leaf.key) === leaf.group) {
        leaf.map.delete(leaf.key);
        this.count--;
      }
    }
  }

  /** Drops every group. */
  clear(): void {
    for (const leaves of this.leavesOf.values()) for (const leaf of leaves) leaf.alive = false;
    this.root.clear();
    this.leavesOf.clear();
    this.count = 0;
  }
}
