/**
 * The kernel library checked outside Node.js: every kernel on the scalar path against the best
 * vector path (and the AVX2 one where the machine has more), built for this machine, and
 * cross-built for arm64 and run under qemu-aarch64 (so the NEON kernels are checked on an x86
 * machine). The arm64 run is skipped, with the reason, where the cross compiler or qemu is not
 * installed (.ci/run installs both).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './helpers/paths.js';

function run(target: string, env: NodeJS.ProcessEnv = {}): { status: number | null; out: string } {
  const r = spawnSync('bash', [join(ROOT, 'native/check/run.sh'), target], {
    encoding: 'utf8',
    timeout: 600_000,
    env: { ...process.env, ...env },
  });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

test('scalar and vector kernels agree on this machine (without Node.js)', { timeout: 600_000 }, () => {
  const r = run('host');
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, /all kernels agree/);
});

test('the AVX2 kernels agree with the scalar ones too on an x86 machine with a higher level', { timeout: 600_000 }, (t) => {
  if (process.arch !== 'x64') return t.skip('not an x86-64 machine');
  const r = run('host', { CAIRN_ISA: 'avx2' });
  if (/ignoring CAIRN_ISA/.test(r.out)) return t.skip(`this CPU has no AVX2 level: ${r.out.trim()}`);
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, /comparing the scalar kernels with avx2/);
  assert.match(r.out, /all kernels agree/);
});

test('NEON kernels agree with the scalar ones on arm64 (cross-built, run under qemu-aarch64)', { timeout: 600_000 }, (t) => {
  const r = run('arm64');
  if (r.status === 2) return t.skip(r.out.trim());
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, /comparing the scalar kernels with neon/);
  assert.match(r.out, /all kernels agree/);
});
