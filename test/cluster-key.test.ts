/**
 * Cluster keys as users handle them: `cairn cluster key`, keys from a file or the environment
 * (never on the command line of the running process), weak passphrases refused, and nodes without
 * a key that still authenticate every loopback peer with this user's local key.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connectPeer } from '../src/cluster/index.js';
import { GgmlType, ggmlRowBytes } from '../src/gguf/ggml-types.js';
import { createKernels } from '../src/kernels/index.js';
import { MESH_COMPATIBILITY } from '../src/mesh/node.js';
import { writeSyntheticModel } from '../src/model/synthetic.js';
import { isCairnError } from '../src/util/errors.js';
import { startNode } from './helpers/node.js';
import { ROOT, scratchDir } from './helpers/paths.js';
import { startServer } from './helpers/server.js';

const dir = scratchDir('cluster-key');
mkdirSync(dir, { recursive: true });
after(() => rmSync(dir, { recursive: true, force: true }));

function cairn(args: string[], env: NodeJS.ProcessEnv = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin/cairn.js'), ...args], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, ...env } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('cairn cluster key prints a fresh 256-bit key, or writes it to a private file it never overwrites', () => {
  const a = cairn(['cluster', 'key']);
  const b = cairn(['cluster', 'key']);
  assert.equal(a.status, 0);
  assert.match(a.stdout.trim(), /^ck1_[A-Za-z0-9_-]{43}$/);
  assert.notEqual(a.stdout, b.stdout);
  const file = join(dir, 'written.key');
  assert.equal(cairn(['cluster', 'key', '--out', file]).status, 0);
  assert.match(readFileSync(file, 'utf8').trim(), /^ck1_/);
  if (process.platform !== 'win32') assert.equal(statSync(file).mode & 0o777, 0o600);
  const again = cairn(['cluster', 'key', '--out', file]);
  assert.equal(again.status, 1);
  assert.match(again.stderr, /already exists/);
});

test('a weak passphrase, a key file others can read, and two key sources at once are refused before anything starts', () => {
  const weak = cairn(['node', '--cluster-key', 'sesame', '--port', '0']);
  assert.equal(weak.status, 1);
  assert.match(weak.stderr, /fewer than 16 characters/);
  assert.match(weak.stderr, /cairn cluster key/);
  const weakEnv = cairn(['serve', '-m', 'missing.gguf', '--cluster', '--port', '0'], { CAIRN_CLUSTER_KEY: 'short' });
  assert.equal(weakEnv.status, 1);
  assert.match(weakEnv.stderr, /fewer than 16 characters/);
  const loose = join(dir, 'loose.key');
  writeFileSync(loose, 'a long enough cluster passphrase\n');
  chmodSync(loose, 0o644);
  const r = cairn(['node', '--cluster-key-file', loose, '--port', '0']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /chmod 600/);
  const both = cairn(['node', '--cluster-key-file', loose, '--cluster-key', 'x', '--port', '0']);
  assert.equal(both.status, 1);
  assert.match(both.stderr, /one way/);
});

test('a key from a file (node) and from the environment (coordinator) forms a cluster, and the key is not in either command line', { timeout: 120_000 }, async () => {
  const kernels = createKernels();
  const model = join(dir, 'tiny.gguf');
  writeSyntheticModel(model, { arch: 'llama', nEmbd: 64, nLayer: 2, nHead: 4, nKvHead: 2, nFf: 128, nVocab: 300, quant: GgmlType.Q8_0, seed: 9 }, (type, src) => {
    const out = new Uint8Array(ggmlRowBytes(type, src.length));
    kernels.quantize(type, src, out, src.length);
    return out;
  });
  const key = cairn(['cluster', 'key']).stdout.trim();
  const file = join(dir, 'cluster.key');
  writeFileSync(file, `${key}\n`, { mode: 0o600 });
  const env = { XDG_CACHE_HOME: join(dir, 'cache') };
  const node = await startNode(['--cluster-key-file', file, '--host', '127.0.0.1'], { env });
  const server = await startServer(['-m', model, '--cluster', '--peers', node.peer, '--no-local-compute', '--ctx', '128'], { ...env, CAIRN_CLUSTER_KEY: key });
  try {
    await server.ready();
    const r = await fetch(`${server.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'tiny', prompt: 'hi', max_tokens: 4, temperature: 0 }) });
    assert.equal(r.status, 200);
    for (const pid of [node.proc.pid, server.proc.pid]) {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      assert.ok(!cmdline.includes(key), 'the key is not visible in ps');
    }
  } finally {
    await server.stop();
    await node.stop();
  }
});

test('a node without a key authenticates loopback peers too: only a process with this user\'s local key gets in', { timeout: 60_000 }, async () => {
  const mine = join(dir, 'state-mine');
  const node = await startNode(['--host', '127.0.0.1'], { env: { CAIRN_STATE_DIR: mine } });
  const saved = process.env.CAIRN_STATE_DIR;
  try {
    // Another local user has another local key (and cannot read this one).
    process.env.CAIRN_STATE_DIR = join(dir, 'state-other-user');
    await assert.rejects(connectPeer('127.0.0.1', node.port, { nodeId: 'intruder', compatibility: MESH_COMPATIBILITY }), (e) =>
      isCairnError(e, 'CLUSTER_AUTH'),
    );
    process.env.CAIRN_STATE_DIR = mine;
    const conn = await connectPeer('127.0.0.1', node.port, { nodeId: 'owner', compatibility: MESH_COMPATIBILITY });
    assert.ok(conn.isOpen);
    conn.close();
  } finally {
    if (saved === undefined) delete process.env.CAIRN_STATE_DIR;
    else process.env.CAIRN_STATE_DIR = saved;
    await node.stop();
  }
});
