/** This machine's sample: load from /proc/stat, power from RAPL packages or hwmon sensors, or null. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MachineSampler } from './machine.js';

test('load, power and memory of this machine are in range', async () => {
  const m = new MachineSampler();
  await new Promise((r) => setTimeout(r, 50));
  const s = m.sample();
  assert.ok(s.cpuLoad === null || (s.cpuLoad >= 0 && s.cpuLoad <= 1), `${s.cpuLoad}`);
  assert.ok(s.powerWatts === null || s.powerWatts >= 0, `${s.powerWatts}`);
  assert.ok(s.totalMemoryBytes > 0 && s.freeMemoryBytes <= s.totalMemoryBytes);
});

/** A fake /proc/stat and /sys/class. */
function fakeTree(): { root: string; write: (rel: string, text: string) => void } {
  const root = mkdtempSync(join(tmpdir(), 'cairn-machine-'));
  const write = (rel: string, text: string) => {
    mkdirSync(join(root, rel, '..'), { recursive: true });
    writeFileSync(join(root, rel), text);
  };
  return { root, write };
}

test('load is the busy share of the jiffies between samples; power sums the RAPL packages and handles a wrap', async () => {
  const { root, write } = fakeTree();
  try {
    write('stat', 'cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 1 2 3 4\n');
    write('class/powercap/intel-rapl:0/energy_uj', '1000000');
    write('class/powercap/intel-rapl:0/max_energy_range_uj', '2000000');
    write('class/powercap/intel-rapl:1/energy_uj', '5000000');
    // A subdomain (core) is part of its package: not added again.
    write('class/powercap/intel-rapl:0:0/energy_uj', '999999999');
    const m = new MachineSampler({ procStat: join(root, 'stat'), sysClass: join(root, 'class') });
    write('stat', 'cpu  130 0 120 850 0 0 0 0 0 0\n');
    // Package 0 wrapped: 1.0 J -> 2.0 J (end of range) -> 0.5 J is 1.5 J; package 1 spent 0.5 J.
    write('class/powercap/intel-rapl:0/energy_uj', '500000');
    write('class/powercap/intel-rapl:1/energy_uj', '5500000');
    await new Promise((r) => setTimeout(r, 100));
    const s = m.sample();
    assert.equal(s.cpuLoad, 50 / 100);
    assert.ok(s.powerWatts !== null && s.powerWatts > 5 && s.powerWatts <= 20, `${s.powerWatts}`); // 2 J over about 0.1 s
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('without RAPL, hwmon power sensors (µW) are read; with neither, power is null', () => {
  const { root, write } = fakeTree();
  try {
    write('stat', 'cpu  1 0 1 8 0 0 0 0\n');
    write('class/hwmon/hwmon0/name', 'amdgpu');
    write('class/hwmon/hwmon0/power1_average', '35000000');
    write('class/hwmon/hwmon1/name', 'k10temp');
    assert.equal(new MachineSampler({ procStat: join(root, 'stat'), sysClass: join(root, 'class') }).sample().powerWatts, 35);
    assert.equal(new MachineSampler({ procStat: join(root, 'stat'), sysClass: join(root, 'nothing') }).sample().powerWatts, null);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
