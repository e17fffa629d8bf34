/**
 * Ollama's keep_alive, through the official `ollama` JS client against a real `cairn serve`: 0
 * unloads the model (without loading it first), a duration keeps it that long after the last
 * request, -1 keeps it; the next request loads it again and answers as before; a request in
 * progress is never cut; a malformed keep_alive is a 400; /api/version reads as Ollama's.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Ollama } from 'ollama';
import { scratchDir } from './helpers/paths.js';
import { startServer, type ServerProcess } from './helpers/server.js';
import { writeTinyModel } from './helpers/tiny-model.js';

const dir = scratchDir('server-keep-alive');
const modelPath = join(dir, 'tiny.gguf');
let server: ServerProcess;
let ollama: Ollama;

before(async () => {
  mkdirSync(dir, { recursive: true });
  writeTinyModel(modelPath);
  server = await startServer(['-m', modelPath, '--ctx', '512']);
  await server.ready();
  ollama = new Ollama({ host: server.url });
});
after(async () => {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function loaded(): Promise<{ names: string[]; expires: number[] }> {
  const ps = await ollama.ps();
  return { names: ps.models.map((m) => m.name), expires: ps.models.map((m) => new Date(m.expires_at).getTime()) };
}

async function until(what: () => Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await what()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

const ask = (keep_alive?: string | number) => ollama.generate({ model: 'tiny', prompt: 'hello there', raw: true, options: { temperature: 0, num_predict: 6 }, keep_alive });

test('keep_alive 0 unloads, the next request loads the model again and answers the same; -1 keeps it', async () => {
  const before = await ask();
  assert.deepEqual((await loaded()).names, ['tiny']);
  // Ollama's way to unload: no prompt, keep_alive 0.
  const unload = await ollama.generate({ model: 'tiny', prompt: '', keep_alive: 0 });
  assert.equal(unload.done_reason, 'unload');
  assert.ok(await until(async () => (await loaded()).names.length === 0, 10_000), 'still listed as loaded');
  assert.ok(await until(async () => /tiny unloaded/.test(server.stderr()), 10_000), 'the log tells the unload');
  // Unloaded: listing and describing do not load it; the server says it is up.
  assert.equal((await ollama.list()).models[0].name, 'tiny');
  assert.ok((await ollama.show({ model: 'tiny' })).model_info);
  assert.deepEqual((await loaded()).names, []);
  assert.equal((await fetch(`${server.url}/health`)).status, 200);
  // A request loads it again and answers as before it was unloaded.
  const again = await ask(-1);
  assert.equal(again.response, before.response);
  assert.ok(await until(async () => /tiny loaded again/.test(server.stderr()), 10_000), 'the log tells the load');
  const kept = await loaded();
  assert.deepEqual(kept.names, ['tiny']);
  assert.ok(kept.expires[0] > Date.now() + 365 * 24 * 3600 * 1000, 'kept forever');
  // An empty prompt with another keep_alive just loads (and keeps) it.
  assert.equal((await ollama.generate({ model: 'tiny', prompt: '' })).done_reason, 'load');
});

test('a duration keeps the model that long after the last request, then unloads it', async () => {
  const t0 = Date.now();
  await ask('1.5s');
  const { names, expires } = await loaded();
  assert.deepEqual(names, ['tiny']);
  assert.ok(expires[0] >= t0 + 1000 && expires[0] <= Date.now() + 1600, `expires ${expires[0] - t0} ms after the request began`);
  assert.ok(await until(async () => (await loaded()).names.length === 0, 15_000), 'not unloaded after its keep_alive');
  // Loads again on use; a request in numbers of seconds is read too.
  await ask(600);
  const later = await loaded();
  assert.ok(later.expires[0] > Date.now() + 500_000 && later.expires[0] <= Date.now() + 600_000);
  await ask(-1);
});

test('a request in progress is never cut by another asking to unload; the model goes once it ends', async () => {
  const long = ollama.generate({ model: 'tiny', prompt: 'x', raw: true, stream: true, options: { temperature: 0, num_predict: 300 } });
  const stream = await long;
  const it = stream[Symbol.asyncIterator]();
  await it.next(); // generating
  const unload = await ollama.chat({ model: 'tiny', messages: [], keep_alive: 0 });
  assert.equal(unload.done_reason, 'unload');
  let last: { done: boolean; eval_count?: number } | undefined;
  for (let r = await it.next(); !r.done; r = await it.next()) last = r.value;
  assert.equal(last?.done, true);
  assert.equal(last?.eval_count, 300, 'the running generation went to its end');
  assert.ok(await until(async () => (await loaded()).names.length === 0, 10_000), 'unloaded once idle');
  await ask(-1);
});

test('a malformed keep_alive is a 400 in Ollama shape; /api/version reads as an Ollama version', async () => {
  for (const bad of ['soon', '5 minutes', { a: 1 }, '1x']) {
    const r = await fetch(`${server.url}/api/generate`, { method: 'POST', body: JSON.stringify({ model: 'tiny', prompt: 'a', keep_alive: bad }) });
    assert.equal(r.status, 400, JSON.stringify(bad));
    const body = (await r.json()) as { error: unknown };
    assert.equal(typeof body.error, 'string');
    assert.match(body.error as string, /keep_alive/);
  }
  const v = (await (await fetch(`${server.url}/api/version`)).json()) as { version: string };
  assert.match(v.version, /^\d+\.\d+\.\d+$/);
  const [major, minor] = v.version.split('.').map(Number);
  assert.ok(major > 0 || minor >= 5, `clients gate tools and structured outputs on Ollama >= 0.5: ${v.version}`);
  // Still serving, still loaded.
  assert.deepEqual((await loaded()).names, ['tiny']);
});
