import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkMachineLoad } from './node-loads.js';

test('a node\'s load report is taken only when it is a share and a sane wattage (or null)', () => {
  assert.deepEqual(checkMachineLoad({ cpuLoad: 0.25, powerWatts: 41.5 }), { cpuLoad: 0.25, powerWatts: 41.5 });
  assert.deepEqual(checkMachineLoad({ cpuLoad: null, powerWatts: null, extra: 'ignored' }), { cpuLoad: null, powerWatts: null });
  for (const bad of [null, 'x', {}, { cpuLoad: 1.5, powerWatts: null }, { cpuLoad: -0.1, powerWatts: null }, { cpuLoad: 0.5, powerWatts: -1 }, { cpuLoad: 0.5, powerWatts: 1e9 }, { cpuLoad: Number.NaN, powerWatts: null }, { cpuLoad: '0.5', powerWatts: null }]) {
    assert.equal(checkMachineLoad(bad), undefined, JSON.stringify(bad));
  }
});
