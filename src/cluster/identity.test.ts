import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isCairnError } from '../util/errors.js';
import { IDENTITY_FILE, loadNodeIdentity } from './identity.js';
import { DEFAULT_CLUSTER_PORT, parsePeerAddress, parsePeerList } from './peer-address.js';

test('a persisted identity keeps its id across loads; a rename is saved', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cairn-identity-'));
  try {
    const first = await loadNodeIdentity({ dir: join(dir, 'state'), name: 'alpha' });
    assert.match(first.id, /^[0-9a-f-]{36}$/);
    const second = await loadNodeIdentity({ dir: join(dir, 'state') });
    assert.deepEqual(second, first);
    const renamed = await loadNodeIdentity({ dir: join(dir, 'state'), name: 'beta' });
    assert.equal(renamed.id, first.id);
    assert.equal(JSON.parse(await readFile(join(dir, 'state', IDENTITY_FILE), 'utf8')).name, 'beta');
    // Without a directory every process is a new node.
    assert.notEqual((await loadNodeIdentity()).id, (await loadNodeIdentity()).id);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a corrupt identity file is a clear error naming the file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cairn-identity-'));
  try {
    await writeFile(join(dir, IDENTITY_FILE), '{"id": "not-a-uuid"}');
    await assert.rejects(loadNodeIdentity({ dir }), (e) => isCairnError(e, 'BAD_ARGUMENT') && e.message.includes(IDENTITY_FILE));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('peer addresses parse in every usual spelling and reject the rest clearly', () => {
  assert.deepEqual(parsePeerAddress('node-2.local:9000'), { host: 'node-2.local', port: 9000 });
  assert.deepEqual(parsePeerAddress(' 192.168.1.4 '), { host: '192.168.1.4', port: DEFAULT_CLUSTER_PORT });
  assert.deepEqual(parsePeerAddress('[fe80::1]:7000'), { host: 'fe80::1', port: 7000 });
  assert.deepEqual(parsePeerAddress('::1'), { host: '::1', port: DEFAULT_CLUSTER_PORT });
  assert.deepEqual(parsePeerList('a:1, b:2,,'), [
    { host: 'a', port: 1 },
    { host: 'b', port: 2 },
  ]);
  for (const bad of ['', 'host:', 'host:99999', 'host:0', 'host:12ab', '[::1', '[::1]x', '[notv6]:5', 'a b:1', ':80', '1:2:3:4:5']) {
    assert.throws(
      () => parsePeerAddress(bad),
      (e) => isCairnError(e, 'BAD_ARGUMENT') && e.message.includes(`"${bad}"`),
      bad,
    );
  }
});
