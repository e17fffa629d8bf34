/**
 * Getting models, end to end, with real `cairn` processes against a local imitation of the Hugging
 * Face hub (helpers/mock-hub.ts): `cairn pull` by quantization tag (any case) and by path, the
 * listing when no tag is given, a file pulled under two names stored once, a multi-part model
 * joined into one that generates exactly what the single file does, a gated repository, a file
 * whose hash differs refused with nothing kept, a pull that loses its connection finishing, `ls`
 * and `rm`, `-m` with a stored name working with the hub gone, and a server listing stored models
 * and pulling through Ollama's /api/pull.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { GgmlType } from '../src/gguf/ggml-types.js';
import { isCairnError } from '../src/util/errors.js';
import { readGguf } from '../src/gguf/reader.js';
import { GgufValueType, type GgufValue } from '../src/gguf/values.js';
import { writeGguf } from '../src/gguf/writer.js';
import { HubClient } from '../src/store/hub-client.js';
import { parseHubRef } from '../src/store/hub-ref.js';
import { ModelStore } from '../src/store/model-store.js';
import { pullModel, type PullEvent } from '../src/store/pull.js';
import { writeSyntheticModel } from '../src/model/synthetic.js';
import { quantizeWithKernels } from './helpers/oracle-greedy.js';
import { startMockHub, type MockHub } from './helpers/mock-hub.js';
import { ROOT, scratchDir } from './helpers/paths.js';
import { startServer } from './helpers/server.js';

const dir = scratchDir('model-store');
const REPO = 'tester/tiny-llama-GGUF';
const GATED = 'tester/gated-GGUF';
const BAD = 'tester/bad-hash-GGUF';
const ALIEN = 'tester/alien-GGUF';
const ODD = 'tester/odd-names-GGUF';
const MANY = 'tester/many-parts-GGUF';
/** A file name whose quant-like run is longer than any tag. */
const LONG_TAG = `odd-Q4${'_K'.repeat(40)}.gguf`;
/** A path of about 1000 characters: the stored name `hf:OWNER/REPO/PATH` passes 1024. */
const LONG_PATH = `${'d'.repeat(200)}/`.repeat(4) + `${'f'.repeat(190)}-Q8_0.gguf`;
const TOKEN = 'hf_test_token_0123456789';
let q8 = new Uint8Array();
let f32 = new Uint8Array();
let parts: Uint8Array[] = [];
let alien = new Uint8Array();
let oddArch = new Uint8Array();
let hub: MockHub;
let home = '';

/** Writes the model `path` again as two gguf-split parts (metadata in the first, tensors halved). */
function splitInTwo(path: string): Uint8Array[] {
  const file = readGguf(path);
  const data = readFileSync(path);
  const half = Math.ceil(file.tensors.length / 2);
  const groups = [file.tensors.slice(0, half), file.tensors.slice(half)];
  return groups.map((tensors, i) => {
    const split: [string, GgufValue][] = [
      ['split.no', { type: GgufValueType.UINT16, value: i }],
      ['split.count', { type: GgufValueType.UINT16, value: 2 }],
      ['split.tensors.count', { type: GgufValueType.INT32, value: file.tensors.length }],
    ];
    const out = join(dir, `part-${i}.gguf`);
    writeGguf(out, {
      alignment: file.alignment,
      metadata: i === 0 ? [...file.metadata, ...split] : split,
      tensors: tensors.map((t) => ({ name: t.name, type: t.type, dims: t.dims, data: data.subarray(t.offset, t.offset + t.byteLength) })),
    });
    return new Uint8Array(readFileSync(out));
  });
}

/** Runs cairn as a child process (asynchronously: the mock hub in this process must keep answering). */
function cairn(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const proc = spawn(process.execPath, [join(ROOT, 'bin/cairn.js'), ...args], {
    env: { ...process.env, CAIRN_HOME: home, XDG_CACHE_HOME: join(dir, 'cache'), HF_ENDPOINT: hub.url, HF_TOKEN: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => proc.kill('SIGKILL'), 120_000);
  return new Promise((resolve) =>
    proc.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    }),
  );
}

async function greedy(model: string, env: NodeJS.ProcessEnv = {}): Promise<string> {
  const r = await cairn(['generate', '-m', model, '-p', 'once upon', '-n', '12', '--temperature', '0', '--ignore-eos', '--json', '--ctx', '128'], env);
  assert.equal(r.status, 0, r.stderr);
  return (JSON.parse(r.stdout) as { text: string }).text;
}

function blobs(): string[] {
  try {
    return readdirSync(join(home, 'blobs')).filter((n) => /^sha256-[0-9a-f]{64}$/.test(n));
  } catch {
    return [];
  }
}

before(async () => {
  mkdirSync(dir, { recursive: true });
  home = join(dir, 'home');
  const shape = { arch: 'llama', nEmbd: 128, nLayer: 4, nHead: 4, nKvHead: 2, nFf: 256, nVocab: 300, seed: 5 } as const;
  writeSyntheticModel(join(dir, 'q8.gguf'), { ...shape, quant: GgmlType.Q8_0 }, quantizeWithKernels);
  writeSyntheticModel(join(dir, 'f32.gguf'), { ...shape, quant: GgmlType.F32 }, quantizeWithKernels);
  q8 = new Uint8Array(readFileSync(join(dir, 'q8.gguf')));
  f32 = new Uint8Array(readFileSync(join(dir, 'f32.gguf')));
  parts = splitInTwo(join(dir, 'f32.gguf'));
  // An architecture cairn does not run, with a megabyte of weights behind its header.
  writeGguf(join(dir, 'alien.gguf'), {
    metadata: [['general.architecture', { type: GgufValueType.STRING, value: 'alien' }]],
    tensors: [{ name: 'blk.0.weight', type: GgmlType.F32, dims: [512, 512], data: new Uint8Array(512 * 512 * 4) }],
  });
  alien = new Uint8Array(readFileSync(join(dir, 'alien.gguf')));
  // An architecture name with a line break in it (what `pull --force` would fetch).
  writeGguf(join(dir, 'odd-arch.gguf'), {
    metadata: [['general.architecture', { type: GgufValueType.STRING, value: 'llama\nrm -rf' }]],
    tensors: [{ name: 'w', type: GgmlType.F32, dims: [8], data: new Uint8Array(32) }],
  });
  oddArch = new Uint8Array(readFileSync(join(dir, 'odd-arch.gguf')));
  // A model split into more parts than a store record holds.
  const many: Record<string, Uint8Array> = {};
  for (let i = 1; i <= 1025; i++) many[`many-Q8_0-${String(i).padStart(5, '0')}-of-01025.gguf`] = new Uint8Array([i & 255, i >> 8]);
  hub = await startMockHub({
    [REPO]: {
      files: {
        'README.md': new TextEncoder().encode('# tiny'),
        'tiny-llama-Q8_0.gguf': q8,
        'tiny-llama-F32.gguf': f32,
        'split/tiny-llama-BF16-00001-of-00002.gguf': parts[0],
        'split/tiny-llama-BF16-00002-of-00002.gguf': parts[1],
      },
    },
    [GATED]: { files: { 'gated-Q8_0.gguf': q8 }, token: TOKEN },
    [BAD]: { files: { 'bad-Q8_0.gguf': q8 }, wrongSha: ['bad-Q8_0.gguf'] },
    [ALIEN]: { files: { 'alien-F32.gguf': alien } },
    [ODD]: { files: { [LONG_TAG]: q8, [LONG_PATH]: f32, 'odd-arch-F32.gguf': oddArch } },
    [MANY]: { files: many },
  });
});

after(async () => {
  await hub?.close();
  rmSync(dir, { recursive: true, force: true });
});

test('pull without a tag lists what the repository offers and fetches nothing', async () => {
  const r = await cairn(['pull', `hf:${REPO}`]);
  assert.equal(r.status, 0, r.stderr);
  for (const tag of ['Q8_0', 'F32', 'BF16']) assert.match(r.stdout, new RegExp(tag));
  assert.match(r.stdout, /cairn pull hf:/);
  assert.deepEqual(blobs(), []);
});

test('pull by tag (any case) stores the file under its SHA-256 and ls shows it', async () => {
  const r = await cairn(['pull', `hf:${REPO}:q8_0`]);
  assert.equal(r.status, 0, r.stderr);
  const ls = await cairn(['ls', '--json']);
  assert.equal(ls.status, 0, ls.stderr);
  const models = JSON.parse(ls.stdout) as { name: string; size: number; architecture: string; quantization: string; sha256: string; pulledAt: string }[];
  assert.equal(models.length, 1);
  assert.equal(models[0].name, `hf:${REPO}:Q8_0`);
  assert.equal(models[0].size, q8.length);
  assert.equal(models[0].architecture, 'llama');
  assert.equal(models[0].quantization, 'Q8_0');
  assert.ok(existsSync(join(home, 'blobs', `sha256-${models[0].sha256}`)));
  const table = await cairn(['ls']);
  assert.match(table.stdout, /NAME\s+SIZE\s+QUANT\s+ARCH\s+PULLED/);
  assert.match(table.stdout, /tiny-llama-GGUF:Q8_0/);
});

test('the same file pulled under another name is stored once and not fetched again', async () => {
  const before = hub.log.length;
  const r = await cairn(['pull', `hf:${REPO}/tiny-llama-Q8_0.gguf`]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(hub.log.length, before, 'no file bytes were read from the hub');
  assert.equal(blobs().length, 1);
  const names = (JSON.parse((await cairn(['ls', '--json'])).stdout) as { name: string }[]).map((m) => m.name);
  assert.deepEqual(names.sort(), [`hf:${REPO}/tiny-llama-Q8_0.gguf`, `hf:${REPO}:Q8_0`].sort());
});

test('a multi-part model is joined into one model that generates what the single file does', async () => {
  const r = await cairn(['pull', `hf:${REPO}:bf16`]);
  assert.equal(r.status, 0, r.stderr);
  const m = (JSON.parse((await cairn(['ls', '--json'])).stdout) as { name: string; source: { files: { path: string }[] } }[]).find((x) => x.name === `hf:${REPO}:BF16`);
  assert.ok(m, 'the joined model is stored');
  assert.equal(m.source.files.length, 2);
  // The parts are not kept beside the joined file.
  assert.equal(blobs().length, 2);
  assert.equal(await greedy(`hf:${REPO}:BF16`), await greedy(join(dir, 'f32.gguf')));
});

test('two pulls of one multi-part model at once: joined once, both get the same stored model', async () => {
  const store = new ModelStore(join(dir, 'home-concurrent'));
  const client = new HubClient({ endpoint: hub.url, env: {} });
  try {
    const events: PullEvent[][] = [[], []];
    const models = await Promise.all(events.map((list) => pullModel(parseHubRef(`hf:${REPO}:BF16`), { store, client, onEvent: (e) => list.push(e) })));
    assert.equal(models[0].sha256, models[1].sha256);
    const joins = events.flat().filter((e) => e.status.startsWith('joining'));
    assert.equal(joins.length, 1, 'the second pull found what the first joined');
    // A pull that reached the lock while the other held it said so in its progress rather than
    // going quiet, and then fetched nothing (both usually overlap; the lock's own test covers the
    // notice deterministically).
    const waited = events.filter((list) => list.some((e) => e.status === 'waiting for another pull of this model'));
    assert.ok(waited.length <= 1);
    for (const list of waited) assert.ok(!list.some((e) => /^pulling [0-9a-f]{12}$/.test(e.status) || e.status.startsWith('joining')), 'the pull that waited found the model stored');
    assert.equal(store.list().length, 1);
    assert.deepEqual(readdirSync(store.blobsDir).filter((n) => n.startsWith('sha256-')), [`sha256-${models[0].sha256}`]);
  } finally {
    await client.close();
  }
});

test('names and headers from the hub that a store record could not hold: stored safely, or refused before any download', async () => {
  const store = new ModelStore(join(dir, 'home-odd'));
  const client = new HubClient({ endpoint: hub.url, env: {} });
  try {
    // A quant-like run longer than any tag is no tag: the model is stored under its path.
    const tagless = await pullModel(parseHubRef(`hf:${ODD}/${LONG_TAG}`), { store, client });
    assert.equal(tagless.name, `hf:${ODD}/${LONG_TAG}`);
    assert.equal(tagless.quantization, 'Q8_0');
    // A name of more than 1024 characters, from a path the reference grammar accepts.
    const long = await pullModel(parseHubRef(`hf:${ODD}/${LONG_PATH}`), { store, client });
    assert.ok(long.name.length > 1024);
    // An architecture name with a control character is not copied into the record.
    const odd = await pullModel(parseHubRef(`hf:${ODD}:F32`), { store, client });
    assert.equal(odd.architecture, 'unknown');
    assert.equal(store.list().length, 3);
    // More parts than a record holds: refused with nothing fetched.
    const before = hub.log.length;
    await assert.rejects(pullModel(parseHubRef(`hf:${MANY}:Q8_0`), { store, client }), (err: unknown) => isCairnError(err, 'BAD_ARGUMENT') && /1025 parts/.test(err.message));
    assert.equal(hub.log.length, before, 'no file bytes were read from the hub');
  } finally {
    await client.close();
  }
});

test('-m with a stored name works with the hub gone (offline)', async () => {
  const text = await greedy(`tiny-llama-GGUF:q8_0`, { HF_ENDPOINT: 'http://127.0.0.1:1' });
  assert.equal(text, await greedy(join(dir, 'q8.gguf')));
});

test('a gated repository needs HF_TOKEN, with a message that says so', async () => {
  const r = await cairn(['pull', `hf:${GATED}:Q8_0`]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /HF_TOKEN/);
  const wrong = await cairn(['pull', `hf:${GATED}:Q8_0`], { HF_TOKEN: 'hf_wrong' });
  assert.equal(wrong.status, 1);
  assert.match(wrong.stderr, /HF_TOKEN|token/);
  const ok = await cairn(['pull', `hf:${GATED}:Q8_0`], { HF_TOKEN: TOKEN });
  assert.equal(ok.status, 0, ok.stderr);
  // The token goes to the hub only, never to the CDN the hub redirects to.
  const toCdn = hub.requests.filter((q) => q.url.startsWith(hub.cdnUrl) && q.authorization !== undefined);
  assert.deepEqual(toCdn, []);
});

test('a file whose SHA-256 differs from the hub\'s is refused and nothing is kept', async () => {
  const stored = blobs().length;
  const r = await cairn(['pull', `hf:${BAD}:Q8_0`]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /SHA-256/);
  assert.equal(blobs().length, stored);
  const names = (JSON.parse((await cairn(['ls', '--json'])).stdout) as { name: string }[]).map((m) => m.name);
  assert.ok(!names.some((n) => n.includes('bad-hash')));
  assert.deepEqual(
    readdirSync(join(home, 'blobs')).filter((n) => n.includes('partial')),
    [],
  );
});

test('a model cairn cannot run is refused from its header, before its weights are fetched; --force fetches it', async () => {
  const before = hub.log.length;
  const r = await cairn(['pull', `hf:${ALIEN}:F32`]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /cannot run this model.*nothing was downloaded/);
  const read = hub.log.slice(before).filter((l) => l.path === 'alien-F32.gguf').reduce((a, l) => a + (l.end - l.start), 0);
  assert.ok(read < alien.length / 2, `read ${read} of ${alien.length} bytes`);
  assert.ok(!(JSON.parse((await cairn(['ls', '--json'])).stdout) as { name: string }[]).some((m) => m.name.includes('alien')));
  const forced = await cairn(['pull', '--force', `hf:${ALIEN}:F32`]);
  assert.equal(forced.status, 0, forced.stderr);
  assert.equal((await cairn(['rm', `hf:${ALIEN}:F32`])).status, 0);
});

test('rm removes a name; the file goes with its last name', async () => {
  const r = await cairn(['rm', `hf:${REPO}/tiny-llama-Q8_0.gguf`]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /kept/);
  const q8Sha = (JSON.parse((await cairn(['ls', '--json'])).stdout) as { name: string; sha256: string }[]).find((m) => m.name === `hf:${REPO}:Q8_0`)!.sha256;
  assert.ok(existsSync(join(home, 'blobs', `sha256-${q8Sha}`)));
  const gone = await cairn(['rm', `hf:${GATED}:Q8_0`, `hf:${REPO}:Q8_0`]);
  assert.equal(gone.status, 0, gone.stderr);
  assert.ok(!existsSync(join(home, 'blobs', `sha256-${q8Sha}`)));
  const missing = await cairn(['rm', 'no-such-model']);
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /cairn ls/);
});

test('a server lists stored models and pulls through /api/pull, streaming Ollama progress lines', async () => {
  const env = { CAIRN_HOME: home, XDG_CACHE_HOME: join(dir, 'cache'), HF_ENDPOINT: hub.url, HF_TOKEN: '' };
  const server = await startServer(['-m', `hf:${REPO}:BF16`, '--ctx', '128'], env);
  try {
    await server.ready();
    const models = (await (await fetch(`${server.url}/v1/models`)).json()) as { data: { id: string }[] };
    assert.equal(models.data[0].id, `hf:${REPO}:BF16`);
    const pull = await fetch(`${server.url}/api/pull`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: `hf.co/${REPO}:Q8_0` }) });
    assert.equal(pull.status, 200);
    assert.match(pull.headers.get('content-type') ?? '', /ndjson/);
    const lines = (await pull.text()).trim().split('\n').map((l) => JSON.parse(l) as { status: string; digest?: string; total?: number; completed?: number });
    assert.equal(lines[0].status, 'pulling manifest');
    const bytes = lines.filter((l) => l.digest !== undefined);
    assert.ok(bytes.length > 0);
    assert.equal(bytes.at(-1)!.completed, q8.length);
    assert.equal(bytes.at(-1)!.total, q8.length);
    assert.equal(lines.at(-1)!.status, 'success');
    const tags = (await (await fetch(`${server.url}/api/tags`)).json()) as { models: { name: string; size: number; details: { quantization_level: string } }[] };
    assert.equal(tags.models[0].name, `hf:${REPO}:BF16`);
    const q = tags.models.find((m) => m.name === `hf:${REPO}:Q8_0`);
    assert.ok(q, 'the pulled model is listed');
    assert.equal(q.details.quantization_level, 'Q8_0');
    const v1 = (await (await fetch(`${server.url}/v1/models`)).json()) as { data: { id: string }[] };
    assert.ok(v1.data.some((m) => m.id === `hf:${REPO}:Q8_0`));
    // Only Hugging Face names: anything else is refused clearly.
    const other = await fetch(`${server.url}/api/pull`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'llama3.2' }) });
    assert.equal(other.status, 400);
    assert.match(await other.text(), /hf\.co\//);
    // A failing pull streams an error line and the server keeps serving.
    const gated = await fetch(`${server.url}/api/pull`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: `hf.co/${GATED}:Q8_0`, stream: true }) });
    const gatedLines = (await gated.text()).trim().split('\n').map((l) => JSON.parse(l) as { error?: string });
    assert.match(gatedLines.at(-1)!.error ?? '', /HF_TOKEN/);
    assert.equal((await fetch(`${server.url}/health`)).status, 200);
  } finally {
    await server.stop();
  }
});
