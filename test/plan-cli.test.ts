/**
 * `cairn plan` as users run it: a real child process over a random-weight model written by the
 * project's writer, with a nodes file of machines that are not here ("what would 4 of these
 * do?"), with nodes that cannot hold the model, with a bad file, and with a live node.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, spawn } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GgmlType, ggmlRowBytes } from '../src/gguf/ggml-types.js';
import { createKernels } from '../src/kernels/index.js';
import { writeSyntheticModel, type SyntheticModelSpec } from '../src/model/synthetic.js';
import type { Candidate } from '../src/planner/types.js';
import { startNode } from './helpers/node.js';
import { ROOT, scratchDir } from './helpers/paths.js';

const dir = scratchDir('plan-cli');
mkdirSync(dir, { recursive: true });
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

const kernels = createKernels();
function model(name: string, spec: SyntheticModelSpec): string {
  const path = join(dir, `${name}.gguf`);
  writeSyntheticModel(path, spec, (type, src) => {
    const out = new Uint8Array(ggmlRowBytes(type, src.length));
    kernels.quantize(type, src, out, src.length);
    return out;
  });
  return path;
}
const dense = model('dense', {
  arch: 'llama',
  nEmbd: 512,
  nLayer: 4,
  nHead: 8,
  nKvHead: 4,
  nFf: 1536,
  nVocab: 1000,
  quant: GgmlType.Q8_0,
  seed: 1,
});
const moe = model('moe', {
  arch: 'qwen3moe',
  nEmbd: 256,
  nLayer: 4,
  nHead: 8,
  nKvHead: 4,
  headDim: 32,
  nFf: 768,
  nVocab: 1000,
  quant: GgmlType.Q8_0,
  seed: 1,
  moe: { experts: 16, used: 4, width: 128, normalize: true },
});

function nodesFile(name: string, json: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, typeof json === 'string' ? json : JSON.stringify(json));
  return path;
}

function cairn(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin/cairn.js'), ...args], { encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const fourOfThese = nodesFile('four.json', {
  nodes: [{ id: 'box', count: 4, memory: '4GiB', bandwidth: '40GB/s', flops: '1TFLOPS', cores: 8 }],
  defaultLink: { latency: '20us', bandwidth: '10GB/s' },
});

test('plan --help explains the nodes file', () => {
  const r = cairn(['plan', '--help']);
  assert.equal(r.status, 0);
  assert.match(r.stdout, /Usage: cairn plan/);
  assert.match(r.stdout, /--nodes <file>/);
  assert.match(r.stdout, /"defaultLink"/);
  assert.match(cairn(['--help']).stdout, /\bplan\b/);
});

test('what would 4 of these do? a table of candidates and the choice', () => {
  const r = cairn(['plan', '-m', dense, '--nodes', fourOfThese, '--batch', '16']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /box1 .*coordinator/);
  assert.match(r.stdout, /plan +fits +decode tok\/s +batch 16 tok\/s +prefill tok\/s +all-reduce +nodes \(share, memory\)/);
  for (const label of ['pipeline x4', 'tensor x2', 'tensor x3', 'tensor x4']) assert.match(r.stdout, new RegExp(`${label} +yes +\\d`));
  assert.match(r.stdout, /tensor x3 .*box1 33% [\d.]+ MiB, box2 33% [\d.]+ MiB, box3 33%/);
  assert.match(r.stdout, /^chosen: \S+ x\d: the fastest decode of one sequence among the \d+ plans that fit/m);
  assert.match(r.stdout, /^\* /m, 'the chosen row is marked');
});

test('--json: the same, with each stage of each candidate', () => {
  const r = cairn(['plan', '-m', moe, '--nodes', fourOfThese, '--json']);
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { candidates: Candidate[]; chosen: string; why: string; nodes: { id: string }[] };
  assert.deepEqual(
    j.nodes.map((n) => n.id),
    ['box1', 'box2', 'box3', 'box4'],
  );
  const kinds = new Set(j.candidates.map((c) => c.kind));
  for (const k of ['pipeline', 'tensor', 'expert']) assert.ok(kinds.has(k as Candidate['kind']), k);
  const t3 = j.candidates.find((c) => c.label === 'tensor x3')!;
  assert.equal(t3.stages.length, 3);
  assert.equal(
    t3.stages.reduce((a, s) => a + s.heads![1] - s.heads![0], 0),
    8,
  );
  assert.deepEqual(
    t3.stages.map((s) => s.experts),
    [
      [0, 5],
      [5, 11],
      [11, 16],
    ],
  );
  const e4 = j.candidates.find((c) => c.label === 'expert x4')!;
  assert.deepEqual(
    e4.stages.map((s) => s.home ?? false),
    [true, false, false, false],
  );
  assert.ok(j.candidates.some((c) => c.label === j.chosen));
  for (const c of j.candidates) assert.ok(c.decodeTokensPerSecond > 0 && c.aggregateTokensPerSecond > 0 && c.prefillTokensPerSecond > 0);
});

test('nodes that cannot hold the model: every plan says so, exit status 1', () => {
  const small = nodesFile('small.json', { nodes: [{ id: 'tiny', count: 2, memory: '20MiB', bandwidth: '10GB/s' }] });
  const r = cairn(['plan', '-m', dense, '--nodes', small]);
  assert.equal(r.status, 1);
  assert.match(r.stdout, /pipeline x2 +no/);
  assert.match(r.stdout, /no plan fits the nodes/);
  assert.match(r.stdout, /tiny1 .*> 20\.0 MiB/);
});

test('a bad nodes file: one line naming the field, exit status 1', () => {
  const bad = nodesFile('bad.json', { nodes: [{ id: 'a', memory: 'plenty', bandwidth: '1GB/s' }] });
  const r = cairn(['plan', '-m', dense, '--nodes', bad]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^cairn: .*bad\.json: nodes\[0\]\.memory: expected a size such as "192GiB".*"plenty"\n$/);
  const notJson = cairn(['plan', '-m', dense, '--nodes', nodesFile('broken.json', '{ nodes: ')]);
  assert.equal(notJson.status, 1);
  assert.match(notJson.stderr, /broken\.json: not JSON/);
});

test('--cluster --peers: a live node and this machine, measured', async () => {
  const node = await startNode(['--max-memory', String(1 << 30)]);
  try {
    const r = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      const p = spawn(process.execPath, [
        join(ROOT, 'bin/cairn.js'),
        'plan',
        '-m',
        dense,
        '--cluster',
        '--peers',
        node.peer,
        '--max-memory',
        String(1 << 30),
        '--json',
      ]);
      let stdout = '';
      let stderr = '';
      p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      p.on('exit', (status) => resolve({ status, stdout, stderr }));
    });
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout) as {
      nodes: { id: string; bytesPerSecond: number; coordinator?: boolean }[];
      links: unknown[];
      candidates: Candidate[];
    };
    assert.equal(j.nodes.length, 2);
    assert.equal(j.nodes[0].id, 'this-machine');
    assert.ok(j.nodes.every((n) => n.bytesPerSecond > 0));
    assert.equal(j.links.length, 1);
    assert.ok(j.candidates.some((c) => c.label === 'tensor x2'));
  } finally {
    await node.stop();
  }
});
