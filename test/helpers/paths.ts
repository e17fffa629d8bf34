/**
 * Paths tests need: the package root (found from this file, in src or dist) and the shared
 * fixtures folder beside it, which a fresh clone does not have.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('package root not found');
    dir = up;
  }
  return dir;
}

/** The package root (the folder with package.json). */
export const ROOT = findRoot();

/** ../shared/fixtures relative to the package root. */
export const FIXTURES = resolve(ROOT, '..', 'shared', 'fixtures');

/** Absolute path of a shared fixture, or undefined when the fixtures folder is absent. */
export function fixture(rel: string): string | undefined {
  const p = join(FIXTURES, rel);
  return existsSync(p) ? p : undefined;
}

/** The reason string for tests skipped because a shared fixture is missing. */
export function missingFixture(rel: string): string {
  return `fixture ${rel} not found under ${FIXTURES} (a fresh clone has no ../shared)`;
}

/** A scratch folder for test outputs under the OS temp dir. */
export function scratchDir(name: string): string {
  return join(process.env.TMPDIR ?? '/tmp', `cairn-test-${process.pid}-${name}`);
}
