/**
 * This machine's CPU load (from /proc/stat, else the load average) and package power (from Linux
 * RAPL where readable; null elsewhere), sampled by differences between calls.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism, freemem, loadavg, totalmem } from 'node:os';
import type { MachineSample } from './wire.js';

const RAPL = '/sys/class/powercap/intel-rapl:0';

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** Busy and total jiffies of all cores, from /proc/stat's first line. */
function cpuTimes(): { busy: number; total: number } | undefined {
  const line = readText('/proc/stat')?.split('\n', 1)[0];
  if (!line?.startsWith('cpu ')) return undefined;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  if (v.length < 4 || v.some((x) => !Number.isFinite(x))) return undefined;
  const idle = v[3] + (v[4] ?? 0);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

/** Samples this machine; each call measures since the previous one. */
export class MachineSampler {
  private cpu = cpuTimes();
  private energy = this.readEnergy();
  private energyAt = performance.now();
  private readonly energyRange = Number(readText(`${RAPL}/max_energy_range_uj`) ?? NaN);

  private readEnergy(): number | undefined {
    const v = Number(readText(`${RAPL}/energy_uj`));
    return Number.isFinite(v) ? v : undefined;
  }

  /** Load and power since the last call. */
  sample(): MachineSample {
    const cpu = cpuTimes();
    let cpuLoad: number | null = null;
    if (cpu && this.cpu && cpu.total > this.cpu.total) cpuLoad = (cpu.busy - this.cpu.busy) / (cpu.total - this.cpu.total);
    else if (!cpu) cpuLoad = Math.min(1, loadavg()[0] / availableParallelism());
    this.cpu = cpu;
    const energy = this.readEnergy();
    const now = performance.now();
    let powerWatts: number | null = null;
    if (energy !== undefined && this.energy !== undefined && now > this.energyAt) {
      // The counter wraps at max_energy_range_uj.
      let d = energy - this.energy;
      if (d < 0 && Number.isFinite(this.energyRange)) d += this.energyRange;
      if (d >= 0) powerWatts = d / 1e6 / ((now - this.energyAt) / 1000);
    }
    this.energy = energy;
    this.energyAt = now;
    return { cpuLoad, powerWatts, totalMemoryBytes: totalmem(), freeMemoryBytes: freemem() };
  }
}
