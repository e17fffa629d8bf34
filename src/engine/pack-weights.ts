/**
 * Weights packed at load. The CPU kernels can keep a copy of a weight matrix in a layout of their
 * own (on AVX-512, Q4_0, IQ4_NL, MXFP4, Q4_K, Q5_K and Q6_K rows in groups of 16 whose vector lanes
 * are the rows: a product then reads each group's quants and scales with whole-vector loads instead of
 * transposing 16 rows of every block, a one-token llama-1b Q4_0 step ~1.4x faster on a Zen 5 host,
 * Q4_K_M ~1.13x), with the same results bit for bit. Expert banks are packed as one matrix of their experts' rows. Packing copies the bytes once, so a matrix that nothing but products reads then has its
 * pages of the file mapping released: the process holds those weights once, in the packed copy.
 * `CAIRN_PACK_WEIGHTS=0` keeps every product on the file's layout (to compare the two).
 *
 * This departs from using every weight in place where it is mapped: for the formats whose one-token
 * products cost more to unpack from the file's layout than to read (these six on AVX-512, where
 * llama.cpp likewise repacks Q4_0, IQ4_NL and Q4_K), a copy in the kernels' layout at load, never
 * dequantized, and held once. Loads take longer by the time the OS needs to give the process that much fresh memory.
 */
import type { Kernels } from '../kernels/api.js';
import type { FileMapping } from '../kernels/index.js';
import type { ProductMatrix } from '../model/tensor-source.js';
import { ProgressReporter } from '../util/progress.js';

/** What packing did: bytes of packed copies made, and bytes of the mapping released. */
export interface PackOutcome {
  readonly packedBytes: number;
  readonly releasedBytes: number;
}

/** Rows below which a matrix is left as it is (a group holds 16 rows: fewer would be padded). */
const MIN_ROWS = 16;
/**
 * Bytes of weights packed per kernels call, into one allocation: small enough to yield to the event
 * loop between calls, large enough that rounding each allocation up to a huge page costs little.
 */
const BATCH_BYTES = 64 * 1024 * 1024;

/** Whether packing is on (`CAIRN_PACK_WEIGHTS=0` turns it off). */
export function packingEnabled(): boolean {
  return process.env.CAIRN_PACK_WEIGHTS !== '0';
}

/**
 * Packs the products' matrices the kernels keep copies of, with a progress bar when `show`, and
 * releases the mapping's pages of those that nothing else reads. Yields to the event loop between
 * batches (a server answers /health while it loads).
 */
export async function packProductWeights(
  products: readonly ProductMatrix[],
  kernels: Kernels,
  mapping: FileMapping,
  show: boolean,
  label: string,
): Promise<PackOutcome> {
  if (!kernels.packWeights || !packingEnabled()) return { packedBytes: 0, releasedBytes: 0 };
  const candidates = products.filter((p) => p.matrix.rows >= MIN_ROWS);
  const total = candidates.reduce((a, p) => a + p.matrix.data.byteLength, 0);
  const progress = new ProgressReporter(show ? label : undefined, total);
  let done = 0;
  let packedBytes = 0;
  let releasedBytes = 0;
  try {
    for (let i = 0; i < candidates.length;) {
      const batch: ProductMatrix[] = [];
      let bytes = 0;
      while (i < candidates.length && (batch.length === 0 || bytes + candidates[i].matrix.data.byteLength <= BATCH_BYTES)) {
        bytes += candidates[i].matrix.data.byteLength;
        batch.push(candidates[i++]);
      }
      const packed = kernels.packWeights(batch.map((p) => p.matrix));
      batch.forEach(({ matrix: m, only }, j) => {
        packedBytes += packed[j];
        if (packed[j] > 0 && only && mapping.releasePages(m.data)) releasedBytes += m.data.byteLength;
      });
      done += bytes;
      progress.update(done);
      await new Promise((r) => setImmediate(r));
    }
  } finally {
    progress.stop();
  }
  return { packedBytes, releasedBytes };
}
