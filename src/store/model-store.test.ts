import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkStoredModel, ModelStore, normalName, type StoredModel } from './model-store.js';

const SHA_A = 'a'.repeat(64);
const SHA_B = 'b'.repeat(64);

function model(name: string, sha256: string): StoredModel {
  return {
    name,
    sha256,
    size: 4,
    architecture: 'llama',
    quantization: 'Q8_0',
    pulledAt: '2026-01-01T00:00:00.000Z',
    source: { repo: 'o/r', commit: 'c'.repeat(40), endpoint: 'https://huggingface.co', files: [{ path: 'm.gguf', size: 4, sha256 }] },
  };
}

function storeWithBlobs(): { store: ModelStore; root: string } {
  const root = mkdtempSync(join(tmpdir(), 'cairn-store-'));
  const store = new ModelStore(root);
  mkdirSync(store.blobsDir, { recursive: true });
  for (const sha of [SHA_A, SHA_B]) writeFileSync(store.blobPath(sha), 'GGUF');
  return { store, root };
}

test('records that do not check out are skipped, never followed', () => {
  const good = model('hf:o/r:Q8_0', SHA_A);
  assert.ok(checkStoredModel(good));
  assert.equal(checkStoredModel({ ...good, sha256: '../../etc/passwd' }), undefined);
  assert.equal(checkStoredModel({ ...good, size: -1 }), undefined);
  assert.equal(checkStoredModel({ ...good, name: 'x\u001b[2J' }), undefined);
  assert.equal(checkStoredModel({ ...good, source: { ...good.source, files: [] } }), undefined);
  const { store, root } = storeWithBlobs();
  try {
    store.add(good);
    writeFileSync(join(root, 'models', `${'0'.repeat(32)}.json`), JSON.stringify({ ...good, name: 'evil', sha256: '../x' }));
    writeFileSync(join(root, 'models', `${'1'.repeat(32)}.json`), '{ not json');
    assert.deepEqual(
      store.list().map((m) => m.name),
      ['hf:o/r:Q8_0'],
    );
    assert.throws(() => store.blobPath('../x'), /not a SHA-256/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('find() takes the full name, the name without hf:, a tail, a tag in any case, or a repository with one model', () => {
  const { store, root } = storeWithBlobs();
  try {
    store.add(model('hf:owner/Tiny-GGUF:Q8_0', SHA_A));
    assert.equal(store.find('hf:owner/Tiny-GGUF:Q8_0')?.sha256, SHA_A);
    assert.equal(store.find('owner/Tiny-GGUF:q8_0')?.sha256, SHA_A);
    assert.equal(store.find('Tiny-GGUF:Q8_0')?.sha256, SHA_A);
    assert.equal(store.find('hf:owner/Tiny-GGUF')?.sha256, SHA_A);
    assert.equal(store.find('other:Q8_0'), undefined);
    store.add(model('hf:owner/Tiny-GGUF:F16', SHA_B));
    assert.throws(() => store.find('hf:owner/Tiny-GGUF'), /matches 2 stored models/);
    assert.equal(normalName('hf.co/a/b:q4_k_m'), 'a/b:Q4_K_M');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('remove() keeps a file another name still uses, and deletes it with its last name', () => {
  const { store, root } = storeWithBlobs();
  try {
    store.add(model('hf:o/r:Q8_0', SHA_A));
    store.add(model('hf:o/r/m.gguf', SHA_A));
    assert.equal(store.remove('hf:o/r/m.gguf').freedBytes, 0);
    assert.ok(store.hasBlob(SHA_A));
    assert.equal(store.remove('hf:o/r:Q8_0').freedBytes, 4);
    assert.ok(!store.hasBlob(SHA_A));
    assert.throws(() => store.remove('hf:o/r:Q8_0'), /cairn ls/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
