/** The cairn command as users run it: a real child process, its output and its exit status. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GgmlType } from '../src/gguf/ggml-types.js';
import { readGguf } from '../src/gguf/reader.js';
import { writeSyntheticModel } from '../src/model/synthetic.js';
import { writeSyntheticFile } from './helpers/synthetic-file.js';
import { rewriteGguf } from './helpers/rewrite-gguf.js';
import { createKernels } from '../src/kernels/index.js';
import { ggmlRowBytes } from '../src/gguf/ggml-types.js';
import { ROOT, scratchDir } from './helpers/paths.js';

const dir = scratchDir('cli');
mkdirSync(dir, { recursive: true });
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

function cairn(args: string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin/cairn.js'), ...args], { encoding: 'utf8', input, timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const kernels = createKernels();
const model = join(dir, 'tiny-q8.gguf');
writeSyntheticModel(
  model,
  { arch: 'llama', nEmbd: 64, nLayer: 2, nHead: 4, nKvHead: 2, nFf: 128, nVocab: 300, quant: GgmlType.Q8_0, seed: 3 },
  (type, src) => {
    const out = new Uint8Array(ggmlRowBytes(type, src.length));
    kernels.quantize(type, src, out, src.length);
    return out;
  },
);
// Heads of 32: a model a Q8_0 KV cache can hold (the one above has heads of 16).
const model32 = join(dir, 'tiny-q8-heads32.gguf');
writeSyntheticFile(model32, { arch: 'llama', nEmbd: 128, nLayer: 2, nHead: 4, nKvHead: 2, nFf: 128, nVocab: 300, quant: GgmlType.Q8_0, seed: 3 });

test('every command has --help', () => {
  const top = cairn(['--help']);
  assert.equal(top.status, 0);
  for (const cmd of ['generate', 'chat', 'inspect']) {
    assert.match(top.stdout, new RegExp(`\\b${cmd}\\b`));
    const r = cairn([cmd, '--help']);
    assert.equal(r.status, 0, cmd);
    assert.match(r.stdout, new RegExp(`Usage: cairn ${cmd}`));
  }
});

test('inspect prints architecture, parameters, quantization mix, tokenizer, tensors and memory; --json has the same', () => {
  const r = cairn(['inspect', model, '--ctx', '1024']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /architecture llama/);
  assert.match(r.stdout, /2 layers, embedding 64, 4 heads \(2 KV\)/);
  assert.match(r.stdout, /quantization Q8_0 \d/);
  assert.match(r.stdout, /tokenizer +llama, 300 tokens/);
  assert.match(r.stdout, /memory .* for 1024 tokens/);
  assert.match(r.stdout, /blk\.1\.ffn_down\.weight +Q8_0/);
  assert.match(r.stdout, /per token .* read per decoded token .* parameters active/);
  const j = JSON.parse(cairn(['inspect', model, '--json', '--ctx', '1024', '--load']).stdout);
  assert.equal(j.architecture, 'llama');
  assert.equal(j.config.nLayer, 2);
  assert.equal(j.memory.ctx, 1024);
  // KV cache: 2 layers x 1024 positions x 2 KV heads x (16 + 16) dims x 2 bytes.
  assert.equal(j.memory.kvCacheBytes, 2 * 1024 * 2 * 32 * 2);
  assert.ok(j.parameters > 0 && j.tensors.length === 3 + 2 * 9);
  // Dense: every parameter but the other tokens' embedding rows is used per token.
  assert.equal(j.bytes.parameters, j.parameters);
  assert.ok(j.bytes.activeParameters > 0.5 * j.parameters && j.bytes.activeParameters <= j.parameters);
  assert.ok(j.loaded.rssBytes > 0 && j.loaded.mappedBytes > 0);
});

test('inspect names YaRN rope scaling: its factor and the trained context', () => {
  const path = join(dir, 'yarn.gguf');
  writeSyntheticModel(path, { arch: 'qwen3', nEmbd: 64, nLayer: 1, nHead: 4, nKvHead: 2, nFf: 128, nVocab: 300, ctx: 131072, yarn: { factor: 4, origCtx: 32768 }, quant: GgmlType.F32, seed: 1 }, (_t, src) => new Uint8Array(src.buffer));
  const r = cairn(['inspect', path, '--no-tensors']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /rope +neox, base \d+, 16 dims, YaRN x4 of 32768 trained positions\n/);
});

test('a malformed model file gives one clear line and exit status 1, not a stack trace', () => {
  const bad = join(dir, 'bad.gguf');
  writeFileSync(bad, Buffer.from('GGUF\x03\x00\x00\x00garbage'));
  for (const args of [['inspect', bad], ['generate', '-m', bad, '-p', 'x']]) {
    const r = cairn(args);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^cairn: .*bad\.gguf: not a valid GGUF file: /);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
  const missing = cairn(['generate', '-m', join(dir, 'nope.gguf'), '-p', 'x']);
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /nope\.gguf: no such file/);
  const badFlag = cairn(['generate', '-m', model, '-p', 'x', '--temperature', 'hot']);
  assert.notEqual(badFlag.status, 0);
  assert.match(badFlag.stderr, /temperature.*expected a number/);
});

test('generate: the same seed gives the same sampled text; --json reports ids and timings', () => {
  const args = ['generate', '-m', model, '-p', 'hello', '-n', '12', '--temperature', '1', '--seed', '42', '--json'];
  const a = JSON.parse(cairn(args).stdout);
  const b = JSON.parse(cairn(args).stdout);
  assert.deepEqual(a.tokens, b.tokens);
  assert.equal(a.tokens.length, 12);
  const c = JSON.parse(cairn(['generate', '-m', model, '-p', 'hello', '-n', '12', '--temperature', '1', '--seed', '43', '--json', '--ignore-eos']).stdout);
  assert.equal(c.tokens.length, 12);
  assert.ok(a.prompt_tokens[0] === 1, 'BOS first');
});

test('generate: speculative decoding is on by default and reported in --json, same tokens with it off; --kv-type q8_0 where the heads allow it', () => {
  const base = ['generate', '-m', model, '-p', 'hello hello hello', '-n', '24', '--temperature', '0', '--ignore-eos', '--json'];
  const on = JSON.parse(cairn(base).stdout);
  const off = JSON.parse(cairn([...base, '--draft-max', '0']).stdout);
  assert.equal(on.speculation.source, 'lookup');
  assert.deepEqual(off.speculation, { source: 'off', draft_tokens: 0, accepted_draft_tokens: 0 });
  assert.ok(on.speculation.accepted_draft_tokens <= on.speculation.draft_tokens);
  assert.deepEqual(on.tokens, off.tokens);
  const refused = cairn(['generate', '-m', model, '-p', 'hi', '-n', '2', '--kv-type', 'q8_0']);
  assert.equal(refused.status, 1);
  assert.match(refused.stderr, /q8_0 KV cache needs head sizes in blocks of 32.*use --kv-type f16/);
  const q8 = cairn(['generate', '-m', model32, '-p', 'hi', '-n', '4', '--kv-type', 'q8_0', '--json', '--ignore-eos']);
  assert.equal(q8.status, 0, q8.stderr);
  const f16 = JSON.parse(cairn(['generate', '-m', model32, '-p', 'hi', '-n', '4', '--json', '--ignore-eos']).stdout);
  assert.ok(JSON.parse(q8.stdout).memory.kv_cache_bytes < f16.memory.kv_cache_bytes * 0.6, 'about half the cache bytes');
});

test('chat: reads turns from stdin and answers each using the chat template', () => {
  const r = cairn(['chat', '-m', model, '--temperature', '0', '-n', '8'], 'hi there\nand again\n/exit\n');
  assert.equal(r.status, 0, r.stderr);
  // Two prompts were answered: two "> " prompts followed by replies, then a third prompt before /exit.
  assert.equal((r.stdout.match(/> /g) ?? []).length, 3);
  assert.match(r.stderr, /layers loaded/);
});

test('bench: figures for cairn (and llama.cpp with --vs-llama-cpp) as one JSON object', { timeout: 300_000 }, () => {
  const r = cairn(['bench', '-m', model, '-p', '8', '-n', '4', '-r', '1', '--vs-llama-cpp', '--json']);
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.deepEqual(
    j.engines.map((e: { engine: string }) => e.engine),
    ['cairn', 'llama.cpp'],
  );
  for (const e of j.engines) {
    assert.ok(e.prefillTokensPerS > 0 && e.decodeTokensPerS > 0 && e.rssAfterLoadBytes > 0, JSON.stringify(e));
  }
  assert.ok(j.ratios.decode > 0 && j.bandwidthBytesPerSecond > 0);
  // A skipped phase has no ratio rather than NaN.
  const text = cairn(['bench', '-m', model, '-p', '0', '-n', '2', '-r', '1', '--vs-llama-cpp']);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /cairn \/ llama\.cpp: prefill n\/a, decode \d+\.\d+x/);
  const made = join(dir, 'made.gguf');
  assert.equal(cairn(['bench', '--make-model', 'nope', '--out', made]).status, 1);
});

test('bench --make-model --layers: a real shape at its width with fewer layers', { timeout: 120_000 }, () => {
  const made = join(dir, 'llama-1b-2-layers.gguf');
  const r = cairn(['bench', '--make-model', 'llama-1b', '--quant', 'Q4_0', '--layers', '2', '--out', made]);
  assert.equal(r.status, 0, r.stderr);
  const g = readGguf(made);
  assert.equal(g.metadata.get('llama.block_count')?.value, 2);
  assert.equal(g.metadata.get('llama.embedding_length')?.value, 2048, 'the shape keeps its width');
  const names = g.tensors.map((t) => t.name);
  assert.ok(names.includes('blk.1.ffn_down.weight') && !names.some((n) => n.startsWith('blk.2.')), names.join(' '));
  rmSync(made);
});

test('bench --llama-bench: a llama-bench binary runs in alternating rounds on the same file and threads, and gets its ratios', { timeout: 120_000 }, () => {
  // A stand-in with llama-bench's command line and JSON output, which logs how it was called.
  const fake = join(dir, 'llama-bench');
  const log = join(dir, 'llama-bench.log');
  writeFileSync(
    fake,
    `#!${process.execPath}
const a = process.argv.slice(2);
const v = (k) => a[a.indexOf(k) + 1];
const fs = require('fs');
// Whether a bench worker (an engine loaded by the same cairn bench) is alive beside this run.
const sibling = fs.readdirSync('/proc').filter((d) => /^\\d+$/.test(d)).some((d) => {
  try {
    const stat = fs.readFileSync('/proc/' + d + '/stat', 'utf8');
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    return ppid === process.ppid && fs.readFileSync('/proc/' + d + '/cmdline', 'utf8').includes('worker.js');
  } catch { return false; }
});
fs.appendFileSync(${JSON.stringify(log)}, a.join(' ') + (sibling ? ' (beside an engine)' : '') + '\\n');
const p = Number(v('-p')), n = Number(v('-n'));
const d = a.includes('-d') ? Number(v('-d')) : 0;
// As llama-bench: one test (one row) for the prompt and one for the generation.
const row = (np, ng) => ({ build_commit: 'abc1234', build_number: 7, n_prompt: np, n_gen: ng, n_depth: d, n_threads: Number(v('-t')), avg_ts: (np ? 1000 : 1) / (1 + d / 1000), stddev_ts: 0 });
console.log(JSON.stringify([...(p ? [row(p, 0)] : []), ...(n ? [row(0, n)] : [])]));
`,
  );
  chmodSync(fake, 0o755);
  const r = cairn(['bench', '-m', model, '-p', '8', '-n', '4', '-r', '2', '-t', '1', '--llama-bench', fake, '--json']);
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.deepEqual(j.engines.map((e: { engine: string }) => e.engine), ['cairn', 'llama-bench']);
  const lb = j.engines[1];
  assert.deepEqual([lb.prefillRuns, lb.decodeRuns], [[1000, 1000], [1, 1]]);
  assert.match(lb.detail, /build 7 \(abc1234\)/);
  assert.match(lb.detail, /build 7 \(abc1234\), CPU,/, 'a CPU comparison says so');
  assert.ok(Math.abs(j.ratiosToLlamaBench.decode - j.engines[0].decodeTokensPerS) < 1e-9);
  assert.equal(j.ratiosToLlamaBench.rssAfterLoad, null, 'llama-bench reports no RSS');
  // Warm-up and two rounds of each phase, each on the model with the same threads.
  const calls = readFileSync(log, 'utf8').trim().split('\n');
  assert.equal(calls.length, 6);
  for (const c of calls) assert.match(c, new RegExp(`-m ${model.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} -t 1 -r 1 -o json`));
  // On the CPU, llama.cpp's layers stay there too, whatever its build.
  for (const c of calls) assert.match(c, / -ngl 0 /);
  assert.equal(calls.filter((c) => / -p 8 -n 0 \(beside an engine\)$/.test(c)).length, 3, 'alternating rounds: the engine stays loaded');
  assert.equal(calls.filter((c) => / -p 0 -n 4 \(beside an engine\)$/.test(c)).length, 3);

  // One at a time: llama-bench runs after the engines have exited, and still gets its rounds.
  writeFileSync(log, '');
  const alone = cairn(['bench', '-m', model32, '-p', '8', '-n', '4', '-r', '1', '-t', '1', '--vs-llama-bench', fake, '--one-at-a-time', '--kv-type', 'q8_0', '--json']);
  assert.equal(alone.status, 0, alone.stderr);
  const ja = JSON.parse(alone.stdout);
  assert.equal(ja.oneAtATime, true);
  assert.deepEqual(ja.engines.map((e: { engine: string; decodeRuns: number[] }) => [e.engine, e.decodeRuns.length]), [['cairn', 1], ['llama-bench', 1]]);
  const aloneCalls = readFileSync(log, 'utf8').trim().split('\n');
  assert.equal(aloneCalls.length, 4);
  for (const c of aloneCalls) assert.doesNotMatch(c, /beside an engine/);
  // The same KV type for llama-bench, with the flash attention its quantized V cache needs.
  for (const c of aloneCalls) assert.match(c, / -fa 1 .* -ctk q8_0 -ctv q8_0/);

  const text = cairn(['bench', '-m', model, '-p', '0', '-n', '2', '-r', '1', '--llama-bench', fake]);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /cairn \/ llama-bench: prefill n\/a, decode \d+\.\d+x/);
  const missing = cairn(['bench', '-m', model, '--llama-bench', join(dir, 'nope')]);
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /no such file/);
});

test('bench --depth: each engine measured after that many tokens in the KV cache, with llama.cpp at its best settings', { timeout: 300_000 }, () => {
  const fake = join(dir, 'llama-bench');
  const log = join(dir, 'llama-bench.log');
  writeFileSync(log, '');
  const r = cairn(['bench', '-m', model, '-p', '8', '-n', '4', '-r', '1', '-t', '1', '--depth', '0,40', '--vs-llama-cpp', '--llama-bench', fake, '--json']);
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.flashAttention, true, 'auto: flash attention for llama.cpp once the cache is not empty');
  assert.ok(j.ctx >= 40 + 8, `context ${j.ctx} holds the deepest fill and the measured tokens`);
  assert.deepEqual(
    j.depths.map((d: { depth: number }) => d.depth),
    [0, 40],
  );
  for (const d of j.depths) {
    assert.deepEqual(
      d.engines.map((e: { engine: string }) => e.engine),
      ['cairn', 'llama.cpp', 'llama-bench'],
    );
    for (const e of d.engines) assert.ok(e.prefillTokensPerS > 0 && e.decodeTokensPerS > 0, JSON.stringify(e));
    assert.ok(d.ratios.decode > 0 && d.ratiosToLlamaBench.decode > 0);
  }
  // llama-bench's own figure at depth 40 is the one for depth 40 (the stand-in slows with depth).
  assert.ok(j.depths[1].engines[2].prefillTokensPerS < j.depths[0].engines[2].prefillTokensPerS);
  assert.match(j.depths[1].engines[1].detail, /flash attention on/);
  const calls = readFileSync(log, 'utf8').trim().split('\n');
  assert.ok(calls.some((c) => / -fa 1 .* -d 40\b/.test(c)), calls.join('\n'));
  // At depth one run per round measures both phases (one fill), and llama-bench warms up by itself.
  assert.deepEqual(calls.filter((c) => / -d 40\b/.test(c)).map((c) => / -p 8 -n 4 /.test(c)), [true], calls.join('\n'));
  assert.ok(calls.every((c) => / -fa 1 /.test(c)));
  // Depths read as llama-bench writes them; a bad one is refused.
  const bad = cairn(['bench', '-m', model, '--depth', '4k,x']);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /0,4k,16k/);
});

test('bench: llama.cpp refusing the file is reported as failed, and cairn\'s figures are kept', { timeout: 300_000 }, () => {
  // llama.cpp refuses a file with a tensor its architecture does not use; cairn loads it.
  const extra = join(dir, 'tiny-q8-extra-tensor.gguf');
  rewriteGguf(model, extra, { add: [{ name: 'blk.0.unused.weight', type: GgmlType.F32, dims: [32], data: new Uint8Array(128) }] });
  const r = cairn(['bench', '-m', extra, '-p', '8', '-n', '4', '-r', '1', '-t', '1', '--vs-llama-cpp', '--json']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /warning: llama\.cpp failed: .*the bench goes on without it/);
  const j = JSON.parse(r.stdout);
  assert.deepEqual(j.engines.map((e: { engine: string; failed?: string }) => [e.engine, typeof e.failed]), [['cairn', 'undefined'], ['llama.cpp', 'string']]);
  assert.match(j.engines[1].failed, /load/i);
  assert.ok(j.engines[0].prefillTokensPerS > 0 && j.engines[0].decodeTokensPerS > 0, 'cairn measured all the same');
  assert.equal(j.ratios, undefined, 'no ratios to a peer that failed');
});

test('bench: a peer that fails part-way keeps cairn\'s figures, and the figures it made before', { timeout: 120_000 }, () => {
  // A llama-bench that measures at depth 0 and fails once the cache holds tokens (as a run past its time would).
  const failing = join(dir, 'llama-bench-failing');
  writeFileSync(
    failing,
    `#!${process.execPath}
const a = process.argv.slice(2);
const v = (k) => a[a.indexOf(k) + 1];
if (a.includes('-d') && Number(v('-d')) > 0) { console.error('out of memory filling the cache'); process.exit(1); }
const p = Number(v('-p')), n = Number(v('-n'));
const row = (np, ng) => ({ build_commit: 'abc1234', build_number: 7, n_prompt: np, n_gen: ng, n_depth: 0, n_threads: Number(v('-t')), avg_ts: np ? 1000 : 1, stddev_ts: 0 });
console.log(JSON.stringify([...(p ? [row(p, 0)] : []), ...(n ? [row(0, n)] : [])]));
`,
  );
  chmodSync(failing, 0o755);
  const r = cairn(['bench', '-m', model, '-p', '8', '-n', '4', '-r', '1', '-t', '1', '--depth', '0,40', '--llama-bench', failing, '--json']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /llama-bench failed at depth 40: llama-bench failed: out of memory filling the cache; the bench goes on without it/);
  const j = JSON.parse(r.stdout);
  const [shallow, deep] = j.depths;
  assert.deepEqual(shallow.engines.map((e: { engine: string; failed?: string }) => [e.engine, e.failed]), [['cairn', undefined], ['llama-bench', undefined]]);
  assert.ok(shallow.ratiosToLlamaBench.decode > 0, 'depth 0 keeps its comparison');
  assert.ok(deep.engines[0].prefillTokensPerS > 0 && deep.engines[0].decodeTokensPerS > 0, 'cairn measured at depth 40 all the same');
  assert.match(deep.engines[1].failed, /out of memory filling the cache/);
  assert.equal(deep.ratiosToLlamaBench, undefined, 'no ratios to incomplete figures');
  const text = cairn(['bench', '-m', model, '-p', '8', '-n', '4', '-r', '1', '-t', '1', '--depth', '0,40', '--llama-bench', failing]);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /llama-bench +failed: llama-bench failed: out of memory/);
});
