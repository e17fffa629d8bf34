/**
 * What a user sees for a model cairn cannot run: `cairn generate` exits with one line naming the
 * model's kind (not a missing tensor, not a stack trace), and `cairn inspect` describes the file
 * and says why it cannot run. Real child processes on files re-written the way other tools write them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { GgmlType } from '../src/gguf/ggml-types.js';
import { gv } from '../src/gguf/values.js';
import { writeSyntheticModel } from '../src/model/synthetic.js';
import { rewriteGguf } from './helpers/rewrite-gguf.js';
import { ROOT, scratchDir } from './helpers/paths.js';

const dir = scratchDir('unsupported-models');
mkdirSync(dir, { recursive: true });
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

function cairn(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin/cairn.js'), ...args], { encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const base = join(dir, 'llama.gguf');
writeSyntheticModel(
  base,
  { arch: 'llama', nEmbd: 64, nLayer: 2, nHead: 4, nKvHead: 2, nFf: 128, nVocab: 300, quant: GgmlType.F32, seed: 2 },
  () => {
    throw new Error('F32 needs no quantizer');
  },
);

test('a Mixtral file of an older converter (a tensor per expert): generate names it, inspect says it cannot run and why', () => {
  const path = join(dir, 'mixtral-split.gguf');
  const experts = 2;
  rewriteGguf(base, path, {
    metadata: { 'llama.expert_count': gv.u32(experts), 'llama.expert_used_count': gv.u32(1) },
    keep: (n) => !/ffn_(gate|up|down)\.weight$/.test(n),
    add: [0, 1].flatMap((l) => [
      { name: `blk.${l}.ffn_gate_inp.weight`, type: GgmlType.F32, dims: [64, experts], data: new Uint8Array(4 * 64 * experts) },
      ...[0, 1].flatMap((e) => [
        { name: `blk.${l}.ffn_gate.${e}.weight`, type: GgmlType.F32, dims: [64, 128], data: new Uint8Array(4 * 64 * 128) },
        { name: `blk.${l}.ffn_up.${e}.weight`, type: GgmlType.F32, dims: [64, 128], data: new Uint8Array(4 * 64 * 128) },
        { name: `blk.${l}.ffn_down.${e}.weight`, type: GgmlType.F32, dims: [128, 64], data: new Uint8Array(4 * 128 * 64) },
      ]),
    ]),
  });
  const why =
    /Mixtral with one tensor per expert \("blk\.0\.ffn_gate\.0\.weight", written by converters before April 2024\) is not supported/;
  const gen = cairn(['generate', '-m', path, '-p', 'hello', '-n', '2']);
  assert.equal(gen.status, 1);
  assert.match(gen.stderr, /^cairn: .*mixtral-split\.gguf: /);
  assert.match(gen.stderr, why);
  assert.doesNotMatch(gen.stderr, /is missing|\n\s+at /, 'no missing-tensor message, no stack trace');
  const inspect = cairn(['inspect', path, '--no-tensors']);
  assert.equal(inspect.status, 0, inspect.stderr);
  assert.match(inspect.stdout, /architecture llama .*\(cannot run: .*Mixtral with one tensor per expert/);
});

test('an unknown architecture: generate names it and the supported ones', () => {
  const path = join(dir, 'mamba.gguf');
  rewriteGguf(base, path, { metadata: { 'general.architecture': gv.str('mamba') } });
  const gen = cairn(['generate', '-m', path, '-p', 'hello', '-n', '2']);
  assert.equal(gen.status, 1);
  assert.match(
    gen.stderr,
    /mamba\.gguf: architecture "mamba" is not supported \(supported: llama, qwen2, qwen3, gemma2, gemma3, phi3, mistral3, qwen2moe, qwen3moe, deepseek2, glm4moe, gpt-oss\)/,
  );
  assert.doesNotMatch(gen.stderr, /\n\s+at /);
});
