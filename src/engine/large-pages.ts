/**
 * Weights on huge pages. A decode step streams every active weight from memory, and through 4 KiB
 * pages that stream pays a TLB miss (a two-level walk on a virtual machine) and a restarted
 * hardware prefetcher at every page boundary: measured on a 2-core AMD EPYC virtual machine,
 * Mixture-of-Experts decode read its expert weights at ~22 GB/s through 4 KiB pages and ~35 GB/s
 * through 2 MiB ones, the same kernels on the same bytes.
 *
 * The native mapping asks for huge pages (MADV_HUGEPAGE), and Linux then reads a file it does not
 * cache yet into 2 MiB folios that it maps whole. A file already cached in small pages (just
 * written, or read with read()) stays small, and this kernel cannot merge it in place
 * (MADV_COLLAPSE needs CONFIG_READ_ONLY_THP_FOR_FS). So after the load has faulted the weights in,
 * if more than a tenth of them sit on small pages, a probe drops and re-reads 8 MiB: when that comes back on
 * huge pages, the whole file is dropped and read again, once; later loads find it large. Where
 * the probe does not (a file system without large folios, an older kernel), nothing more is done.
 * `CAIRN_LARGE_PAGES=0` turns this off.
 */
import { adviseWillNeed, type FileMapping } from '../kernels/index.js';
import { hugePagesForTheAsking } from '../kernels/huge-pages.js';

const MIB = 1 << 20;
/** Huge page size on x86-64 and arm64 with 4 KiB base pages. */
const HUGE = 2 * MIB;
/** Weights below this size are left as they are: the reread would cost more than it saves. */
const MIN_BYTES = 64 * MIB;
const PROBE_BYTES = 8 * MIB;
/**
 * Share of the weights that must already sit on huge pages for a load to leave them as they are.
 * A file read partly through small pages (another program read() it, or part of it was evicted
 * and read back without the advice) decodes at the speed of its small part: measured, a
 * DeepSeek-V2-Lite file with 5.7 of 9.7 GiB large ran its expert products at ~6 GB/s instead
 * of ~30.
 */
const LARGE_ENOUGH = 0.9;

/**
 * What preferLargePages found or did: the weights were already on huge pages, were moved there,
 * the OS cannot put them there, or it was not tried (turned off, not Linux, too small).
 */
export type LargePagesOutcome = 'large' | 'moved' | 'unsupported' | 'off';

/** A stretch of the file that the load uses, to probe on (the largest tensor is a good choice). */
export interface ProbeRange {
  readonly offset: number;
  readonly length: number;
}

/**
 * Puts the weights a load uses on huge pages where the OS can (see the file's comment).
 * `weightBytes`: bytes of the file the load uses; `reread`: faults them in again (with the load's
 * progress bar); called at most once.
 */
export async function preferLargePages(
  mapping: FileMapping,
  weightBytes: number,
  probe: ProbeRange | undefined,
  reread: () => Promise<void>,
): Promise<LargePagesOutcome> {
  if (process.env.CAIRN_LARGE_PAGES === '0' || !mapping.mapped || weightBytes < MIN_BYTES) return 'off';
  if (!hugePagesForTheAsking()) return 'off';
  const before = mapping.largePageBytes();
  if (before === undefined) return 'off';
  if (before >= weightBytes * LARGE_ENOUGH) return 'large';
  // The probe: a whole number of huge pages inside the stretch, re-read on its own.
  if (!probe) return 'unsupported';
  const start = Math.ceil(probe.offset / HUGE) * HUGE;
  if (start + PROBE_BYTES > probe.offset + probe.length) return 'unsupported';
  if (!mapping.dropPages(start, PROBE_BYTES)) return 'unsupported';
  const dropped = mapping.largePageBytes() ?? 0;
  adviseWillNeed(mapping.view(start, PROBE_BYTES), true);
  const gained = (mapping.largePageBytes() ?? 0) - dropped;
  if (gained < PROBE_BYTES / 2) return 'unsupported';
  if (!mapping.dropPages(0, mapping.size)) return 'unsupported';
  await reread();
  return 'moved';
}
