/**
 * Speculative decoding in the server and the cluster, with real processes: concurrent requests
 * that each speculate (or not: `speculative.n_max`) inside one batched step answer exactly what
 * they answer without speculation, through the official `openai` client; a cluster pipeline of
 * `cairn node`s checks drafts at its last stage, on a node, with the same output; /metrics counts
 * the draft tokens checked and kept.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { GgmlType } from '../src/gguf/ggml-types.js';
import { scratchDir } from './helpers/paths.js';
import { startNode, type NodeProcess } from './helpers/node.js';
import { startServer, type ServerProcess } from './helpers/server.js';
import { writeSyntheticFile } from './helpers/synthetic-file.js';

const dir = scratchDir('speculative-serving');
const model = join(dir, 'synthetic.gguf');
const env = { XDG_CACHE_HOME: join(dir, 'cache') };

before(() => {
  mkdirSync(dir, { recursive: true });
  // A random-weight model falls into loops after a few dozen greedy tokens: prompt lookup then
  // drafts well, and before that it drafts from the few repeats of the prompt and misses.
  writeSyntheticFile(model, { arch: 'llama', nEmbd: 512, nLayer: 6, nHead: 8, nKvHead: 4, nFf: 1024, nVocab: 1000, quant: GgmlType.Q8_0, seed: 21 });
});
after(() => rmSync(dir, { recursive: true, force: true }));

const PROMPTS = ['hello', 'one two three one two three one', 'the cat sat', 'a b c d e f'];
const TOKENS = 96;

async function complete(client: OpenAI, prompt: string, nMax?: number): Promise<string> {
  const body = { model: 'm', prompt, max_tokens: TOKENS, temperature: 0, ignore_eos: true, ...(nMax === undefined ? {} : { 'speculative.n_max': nMax }) };
  const r = await client.completions.create(body as OpenAI.CompletionCreateParamsNonStreaming);
  return r.choices[0].text;
}

async function draftCounts(url: string): Promise<{ checked: number; kept: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const value = (name: string) => Number(new RegExp(`^cairn_${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { checked: value('draft_tokens_total'), kept: value('draft_tokens_accepted_total') };
}

/** Baselines without speculation (one at a time), then all prompts at once, each asking differently. */
async function checkServer(server: ServerProcess): Promise<void> {
  const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  const expected: string[] = [];
  for (const p of PROMPTS) expected.push(await complete(client, p, 0));
  assert.deepEqual(await draftCounts(server.url), { checked: 0, kept: 0 }, 'n_max 0 drafts nothing');
  const asks = [undefined, 3, undefined, 0];
  const got = await Promise.all(PROMPTS.map((p, i) => complete(client, p, asks[i])));
  assert.deepEqual(got, expected);
  const { checked, kept } = await draftCounts(server.url);
  assert.ok(kept > 0 && kept <= checked, `${kept} of ${checked} draft tokens kept`);
}

test('the server: concurrent requests speculate inside one batch and answer what they answer without', { timeout: 120_000 }, async () => {
  const server = await startServer(['-m', model, '--ctx', '256', '--parallel', '4']);
  try {
    await server.ready();
    await checkServer(server);
  } finally {
    await server.stop();
  }
});

test('a cluster pipeline checks drafts at its last stage (a node) with the same output', { timeout: 180_000 }, async () => {
  const nodes: NodeProcess[] = [];
  let server: ServerProcess | undefined;
  try {
    for (let i = 0; i < 2; i++) nodes.push(await startNode([], { env }));
    // The coordinator only coordinates: the last stage, where drafts are checked, is a node. The
    // plan follows measured speeds (two stages, or one node on a busy machine).
    server = await startServer(['-m', model, '--cluster', '--peers', nodes.map((n) => n.peer).join(','), '--no-local-compute', '--ctx', '256', '--parallel', '4'], env);
    await server.ready();
    await checkServer(server);
  } finally {
    await server?.stop();
    await Promise.all(nodes.map((n) => n.stop()));
  }
});
