/**
 * Times every dispatch on the device itself (timestamp queries, one compute pass per dispatch) and
 * sums the times by kernel: where a GPU step's time goes, which the host's clock cannot say since a
 * whole step runs between one submit and one read. Profiling changes what it measures a little (a
 * pass per dispatch); it is for benchmarks (bench/gpu-step.ts --profile), never on by default.
 */
/// <reference types="@webgpu/types" />

/** Queries in one query set (WebGPU allows at most 4096): two per dispatch. */
const QUERIES_PER_SET = 4096;

/** One kernel's sum over the dispatches timed. */
export interface KernelTime {
  readonly key: string;
  readonly dispatches: number;
  /** Summed time on the device, in nanoseconds. */
  readonly ns: number;
  /** Bytes of weights the dispatches named as read (weight products), for a read rate. */
  readonly bytes: number;
}

/** What the device did while profiling. */
export interface GpuProfile {
  readonly kernels: readonly KernelTime[];
  /** Summed time of every timed dispatch, in nanoseconds. */
  readonly busyNs: number;
  /** Summed time from each submission's first dispatch starting to its last ending (busy plus the gaps between dispatches). */
  readonly spanNs: number;
  readonly submissions: number;
}

interface Batch {
  readonly keys: string[];
  readonly bytes: number[];
}

/** Timestamp queries for the dispatches of each submission, read back after it. */
export class GpuProfiler {
  private readonly sets: GPUQuerySet[] = [];
  private batch: Batch = { keys: [], bytes: [] };
  private readonly reads: Promise<void>[] = [];
  private readonly sums = new Map<string, { dispatches: number; ns: number; bytes: number }>();
  private busyNs = 0;
  private spanNs = 0;
  private submissions = 0;

  constructor(private readonly device: GPUDevice) {}

  /** The timestamp writes of the next dispatch's pass, named `key` (bytes: weights it reads). */
  next(key: string, bytes = 0): GPUComputePassTimestampWrites {
    const i = this.batch.keys.length;
    const set = Math.floor((2 * i) / QUERIES_PER_SET);
    while (this.sets.length <= set) this.sets.push(this.device.createQuerySet({ type: 'timestamp', count: QUERIES_PER_SET }));
    this.batch.keys.push(key);
    this.batch.bytes.push(bytes);
    const at = (2 * i) % QUERIES_PER_SET;
    return { querySet: this.sets[set], beginningOfPassWriteIndex: at, endOfPassWriteIndex: at + 1 };
  }

  /** Adds the resolving of this submission's queries to `encoder` (its last commands); `submitted` is called once it is submitted. */
  resolve(encoder: GPUCommandEncoder): (() => void) | undefined {
    const batch = this.batch;
    const n = batch.keys.length;
    if (n === 0) return undefined;
    this.batch = { keys: [], bytes: [] };
    const bytes = 2 * n * 8;
    const resolved = this.device.createBuffer({ size: bytes, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
    const readable = this.device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    for (let s = 0; s * QUERIES_PER_SET < 2 * n; s++) {
      const count = Math.min(QUERIES_PER_SET, 2 * n - s * QUERIES_PER_SET);
      encoder.resolveQuerySet(this.sets[s], 0, count, resolved, s * QUERIES_PER_SET * 8);
    }
    encoder.copyBufferToBuffer(resolved, 0, readable, 0, bytes);
    return () => {
      this.reads.push(
        readable.mapAsync(GPUMapMode.READ).then(() => {
          this.add(batch, new BigUint64Array(readable.getMappedRange()));
          readable.destroy();
          resolved.destroy();
        }),
      );
    };
  }

  private add(batch: Batch, t: BigUint64Array): void {
    let first = t[0];
    let last = t[1];
    for (let i = 0; i < batch.keys.length; i++) {
      const begin = t[2 * i];
      const end = t[2 * i + 1];
      // A pair the device did not write in order (a counter reset) counts nothing.
      const ns = end >= begin ? Number(end - begin) : 0;
      if (begin < first) first = begin;
      if (end > last) last = end;
      const s = this.sums.get(batch.keys[i]) ?? { dispatches: 0, ns: 0, bytes: 0 };
      s.dispatches++;
      s.ns += ns;
      s.bytes += batch.bytes[i];
      this.sums.set(batch.keys[i], s);
      this.busyNs += ns;
    }
    this.spanNs += last >= first ? Number(last - first) : 0;
    this.submissions++;
  }

  /** Waits for every submission's times and returns the sums (kernels by time, longest first), then starts again from zero. */
  async take(): Promise<GpuProfile> {
    await Promise.all(this.reads.splice(0));
    const kernels = [...this.sums].map(([key, s]) => ({ key, ...s })).sort((a, b) => b.ns - a.ns);
    const profile = { kernels, busyNs: this.busyNs, spanNs: this.spanNs, submissions: this.submissions };
    this.sums.clear();
    this.busyNs = this.spanNs = this.submissions = 0;
    return profile;
  }

  /** Frees the query sets. */
  destroy(): void {
    for (const s of this.sets) s.destroy();
    this.sets.length = 0;
  }
}
