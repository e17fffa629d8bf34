import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isCairnError } from '../util/errors.js';
import { checkKeyStrength, deriveClusterSecret, deriveClusterSecretSync, generateClusterKey, isGeneratedKey } from './cluster-key.js';
import { localClusterSecret, localKeyPath } from './local-key.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

test('generated keys are 256 random bits in one recognizable form', () => {
  const a = generateClusterKey();
  const b = generateClusterKey();
  assert.match(a, /^ck1_[A-Za-z0-9_-]{43}$/);
  assert.notEqual(a, b);
  assert.ok(isGeneratedKey(a));
  assert.equal(Buffer.from(a.slice(4), 'base64url').length, 32);
  assert.ok(!isGeneratedKey(a.slice(0, -1)));
});

test('weak passphrases are refused with what to do, unless allowed; generated keys always pass', () => {
  assert.throws(() => checkKeyStrength('sesame'), (e) => isCairnError(e, 'CLUSTER_AUTH') && /fewer than 16 characters/.test(e.message) && /cairn cluster key/.test(e.message));
  assert.doesNotThrow(() => checkKeyStrength('sesame', true));
  assert.doesNotThrow(() => checkKeyStrength('a passphrase of some length'));
  assert.doesNotThrow(() => checkKeyStrength(generateClusterKey()));
  assert.throws(() => checkKeyStrength(generateClusterKey().slice(0, 20)), /not a whole generated key/);
  assert.throws(() => checkKeyStrength(''), /empty/);
  assert.throws(() => checkKeyStrength('x'.repeat(2000), true), /longer than/);
});

test('a passphrase derives the same secret everywhere (async, sync, any Unicode normalization) and different ones apart', async () => {
  const text = 'caf\u00e9 on the seventh floor';
  const a = await deriveClusterSecret(text);
  const b = deriveClusterSecretSync('cafe\u0301 on the seventh floor');
  assert.ok(a.psk.equals(b.psk));
  assert.equal(a.psk.length, 32);
  assert.ok(!a.psk.equals(deriveClusterSecretSync('cafe on the seventh floor').psk));
  const key = generateClusterKey();
  assert.ok((await deriveClusterSecret(key)).psk.equals(deriveClusterSecretSync(key).psk));
  // The secret is not the key's bytes: nothing of the key is ever used as is.
  assert.ok(!deriveClusterSecretSync(key).psk.equals(Buffer.from(key.slice(4), 'base64url')));
});

test('the local key is made once per user, private to that user, and refused when others can read it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-state-'));
  dirs.push(dir);
  const saved = process.env.CAIRN_STATE_DIR;
  process.env.CAIRN_STATE_DIR = join(dir, 'state');
  try {
    const secret = localClusterSecret();
    assert.equal(secret.kind, 'local');
    const path = localKeyPath();
    const text = readFileSync(path, 'utf8').trim();
    assert.ok(isGeneratedKey(text));
    if (process.platform !== 'win32') {
      assert.equal(statSync(path).mode & 0o777, 0o600);
      assert.equal(statSync(join(dir, 'state')).mode & 0o077, 0);
    }
    assert.ok(localClusterSecret().psk.equals(secret.psk));

    // A fresh state folder gets its own key; a key readable by others is refused with the fix.
    process.env.CAIRN_STATE_DIR = join(dir, 'other');
    assert.ok(!localClusterSecret().psk.equals(secret.psk));
    if (process.platform !== 'win32') {
      chmodSync(localKeyPath(), 0o644);
      assert.throws(() => localClusterSecret(), (e) => isCairnError(e, 'CLUSTER_AUTH') && /chmod 600/.test(e.message));
    }
    writeFileSync(localKeyPath(), 'not a key\n', { mode: 0o600 });
    chmodSync(localKeyPath(), 0o600);
    assert.throws(() => localClusterSecret(), (e) => isCairnError(e, 'CLUSTER_AUTH') && /damaged; remove it/.test(e.message));
  } finally {
    if (saved === undefined) delete process.env.CAIRN_STATE_DIR;
    else process.env.CAIRN_STATE_DIR = saved;
  }
});
