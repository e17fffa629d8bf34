/**
 * An attacker on the path between a coordinator and its node (a relay in this test process,
 * between a real `cairn serve --cluster` and a real `cairn node`): it sees no prompt, no token
 * ids and no step metadata, and one flipped byte of its traffic ends that connection without
 * ever changing an answer.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { startRelay, type Relay } from '../src/cluster/testing/relay.js';
import { GgmlType, ggmlRowBytes } from '../src/gguf/ggml-types.js';
import { createKernels } from '../src/kernels/index.js';
import { writeSyntheticModel } from '../src/model/synthetic.js';
import { tokenizerFromGguf } from '../src/tokenizer/index.js';
import { startNode, type NodeProcess } from './helpers/node.js';
import { ROOT, scratchDir } from './helpers/paths.js';
import { startServer, type ServerProcess } from './helpers/server.js';

const dir = scratchDir('cluster-relay');
const model = join(dir, 'relay.gguf');
const env = { XDG_CACHE_HOME: join(dir, 'cache') };
const PROMPT = 'MARKED secret prompt about the quarterly numbers';
let node: NodeProcess | undefined;
let relay: Relay | undefined;
let server: ServerProcess | undefined;

before(() => {
  mkdirSync(dir, { recursive: true });
  const kernels = createKernels();
  writeSyntheticModel(model, { arch: 'llama', nEmbd: 128, nLayer: 2, nHead: 4, nKvHead: 2, nFf: 256, nVocab: 400, quant: GgmlType.Q8_0, seed: 31 }, (type, src) => {
    const out = new Uint8Array(ggmlRowBytes(type, src.length));
    kernels.quantize(type, src, out, src.length);
    return out;
  });
});
after(async () => {
  await server?.stop();
  await relay?.close();
  await node?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function expected(n: number): string {
  const out = execFileSync(process.execPath, [join(ROOT, 'bin/cairn.js'), 'generate', '-m', model, '-p', PROMPT, '-n', String(n), '--temperature', '0', '--ignore-eos', '--json', '--ctx', '128'], { encoding: 'utf8' });
  return (JSON.parse(out) as { text: string }).text;
}

async function complete(url: string, n: number): Promise<{ status: number; text?: string }> {
  const r = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'relay', prompt: PROMPT, max_tokens: n, temperature: 0, ignore_eos: true }),
  });
  const body = (await r.json()) as { choices?: { text: string }[] };
  return { status: r.status, text: body.choices?.[0]?.text };
}

test('a relay between coordinator and node sees no plaintext, and a flipped byte never changes an answer', { timeout: 180_000 }, async () => {
  const want = expected(12);
  node = await startNode(['--host', '127.0.0.1'], { env });
  relay = await startRelay('127.0.0.1', node.port);
  server = await startServer(['-m', model, '--cluster', '--peers', `127.0.0.1:${relay.port}`, '--no-local-compute', '--ctx', '128'], env);
  await server.ready(60_000);
  const first = await complete(server.url, 12);
  assert.equal(first.status, 200);
  assert.equal(first.text, want);

  // What the relay saw: no prompt text, no token ids of the prompt, no step or sequence JSON.
  const ids = tokenizerFromGguf(model).encode(PROMPT);
  const idBytes = Buffer.from(Int32Array.from(ids.slice(0, 6)).buffer);
  for (const direction of ['toServer', 'toClient'] as const) {
    const seen = Buffer.concat(relay.seen[direction]);
    assert.ok(seen.length > 1000, `traffic ${direction}`);
    for (const plain of [Buffer.from('MARKED'), Buffer.from('quarterly'), idBytes, Buffer.from('"history"'), Buffer.from('"spans"'), Buffer.from('"tokens"'), Buffer.from('temperature')])
      assert.ok(!seen.includes(plain), `${plain.toString('hex').slice(0, 24)} travelled ${direction}`);
  }

  // One flipped byte in a result on its way back: the connection ends; the answer is right or an error, never altered.
  let flipped = false;
  relay.tamper = (direction, chunk) => {
    if (direction !== 'toClient' || flipped || chunk.length < 40) return chunk;
    flipped = true;
    const out = Buffer.from(chunk);
    out[chunk.length - 20] ^= 0x04;
    return out;
  };
  const second = await complete(server.url, 12);
  assert.ok(flipped, 'the relay altered the traffic');
  if (second.status === 200) assert.equal(second.text, want, 'an answer after tampering is the undisturbed one');
  assert.match(server.stderr(), /did not authenticate|left|disconnected/);
});
