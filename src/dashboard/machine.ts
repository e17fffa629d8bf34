/**
 * This machine's CPU load (from /proc/stat, else the load average) and power: Linux RAPL energy
 * counters of every CPU package where readable, else hwmon power sensors; null where neither is.
 * Load and RAPL power are measured between calls.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism, freemem, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import type { MachineSample } from './wire.js';

/** Where the kernel tells load and power (tests point these at a fake tree). */
export interface MachinePaths {
  readonly procStat: string;
  /** /sys/class: its powercap/intel-rapl:N packages and hwmon/hwmonN sensors. */
  readonly sysClass: string;
}

const LINUX: MachinePaths = { procStat: '/proc/stat', sysClass: '/sys/class' };

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function readNumber(path: string): number | undefined {
  const text = readText(path);
  const v = text === undefined ? NaN : Number(text.trim());
  return Number.isFinite(v) ? v : undefined;
}

function list(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** Busy and total jiffies of all cores, from /proc/stat's first line. */
function cpuTimes(procStat: string): { busy: number; total: number } | undefined {
  const line = readText(procStat)?.split('\n', 1)[0];
  if (!line?.startsWith('cpu ')) return undefined;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  if (v.length < 4 || v.some((x) => !Number.isFinite(x))) return undefined;
  const idle = v[3] + (v[4] ?? 0);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

/** A RAPL package's energy counter (µJ) and where it wraps. */
interface RaplPackage {
  readonly energy: string;
  readonly range: number | undefined;
}

/** Samples this machine; each call measures since the previous one. */
export class MachineSampler {
  private cpu: { busy: number; total: number } | undefined;
  /** Top-level RAPL domains (intel-rapl:0, :1, ...: one per package; their subdomains are parts of them). */
  private readonly packages: RaplPackage[];
  /** hwmon sensors of power in µW (power1_average or power1_input). */
  private readonly sensors: string[];
  private energy: number[] | undefined;
  private energyAt = performance.now();

  constructor(private readonly paths: MachinePaths = LINUX) {
    this.cpu = cpuTimes(paths.procStat);
    const powercap = join(paths.sysClass, 'powercap');
    this.packages = list(powercap)
      .filter((d) => /^intel-rapl:\d+$/.test(d))
      .map((d) => ({ energy: join(powercap, d, 'energy_uj'), range: readNumber(join(powercap, d, 'max_energy_range_uj')) }))
      .filter((p) => readNumber(p.energy) !== undefined);
    const hwmon = join(paths.sysClass, 'hwmon');
    this.sensors = this.packages.length
      ? []
      : list(hwmon)
          .map((d) => ['power1_average', 'power1_input'].map((f) => join(hwmon, d, f)).find((p) => readNumber(p) !== undefined))
          .filter((p): p is string => p !== undefined);
    this.energy = this.readEnergy();
  }

  private readEnergy(): number[] | undefined {
    if (!this.packages.length) return undefined;
    const values = this.packages.map((p) => readNumber(p.energy));
    return values.every((v) => v !== undefined) ? (values as number[]) : undefined;
  }

  private power(): number | null {
    if (this.sensors.length) {
      const uw = this.sensors.map(readNumber);
      return uw.every((v) => v !== undefined) ? (uw as number[]).reduce((a, b) => a + b, 0) / 1e6 : null;
    }
    const energy = this.readEnergy();
    const now = performance.now();
    const before = this.energy;
    const seconds = (now - this.energyAt) / 1000;
    this.energy = energy;
    this.energyAt = now;
    if (!energy || !before || seconds <= 0) return null;
    let joules = 0;
    for (let i = 0; i < energy.length; i++) {
      // A counter wraps at its max_energy_range_uj.
      let d = energy[i] - before[i];
      if (d < 0 && this.packages[i].range !== undefined) d += this.packages[i].range!;
      if (d < 0) return null;
      joules += d / 1e6;
    }
    return joules / seconds;
  }

  /** Load and power since the last call. */
  sample(): MachineSample {
    const cpu = cpuTimes(this.paths.procStat);
    let cpuLoad: number | null = null;
    if (cpu && this.cpu && cpu.total > this.cpu.total) cpuLoad = (cpu.busy - this.cpu.busy) / (cpu.total - this.cpu.total);
    else if (!cpu) cpuLoad = Math.min(1, loadavg()[0] / availableParallelism());
    this.cpu = cpu;
    return { cpuLoad, powerWatts: this.power(), totalMemoryBytes: totalmem(), freeMemoryBytes: freemem() };
  }
}
