import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { withPullLock } from './pull-lock.js';

test('pulls of one file in a process run one after the other', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-lock-'));
  try {
    const lock = join(dir, 'x.lock');
    const order: string[] = [];
    const slow = (name: string) =>
      withPullLock(lock, async () => {
        order.push(`${name} start`);
        assert.ok(existsSync(lock));
        await new Promise((r) => setTimeout(r, 30));
        order.push(`${name} end`);
      });
    const waited: string[] = [];
    await Promise.all([slow('a'), withPullLock(lock, async () => order.push('b ran'), () => waited.push('b'))]);
    assert.deepEqual(order, ['a start', 'a end', 'b ran']);
    assert.deepEqual(waited, ['b'], 'the caller that waited was told so, once');
    await Promise.all([slow('a'), slow('b')]);
    assert.deepEqual(order, ['a start', 'a end', 'b ran', 'a start', 'a end', 'b start', 'b end']);
    assert.ok(!existsSync(lock), 'the lock is removed after');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a lock left by a dead process is taken over; one held by a live process refuses', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-lock-'));
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)']);
  try {
    const lock = join(dir, 'x.lock');
    // A pid that is not running (the largest pid Linux allows, plus one).
    writeFileSync(lock, String(4194305));
    assert.equal(await withPullLock(lock, async () => 'ran'), 'ran');
    writeFileSync(lock, String(child.pid));
    await assert.rejects(withPullLock(lock, async () => 'ran'), /another cairn process \(pid \d+\) is downloading/);
  } finally {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});
