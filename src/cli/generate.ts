/** `cairn generate`: continue a prompt, streaming only the continuation to stdout. */
import { resolveModelArg } from './model-arg.js';
import { Command } from 'commander';
import { fstatSync } from 'node:fs';
import { loadModel } from '../engine/load.js';
import { CairnError } from '../util/errors.js';
import { addModelOptions, addSamplingOptions, addSpeculationOptions, backendOptions, collect, intArg, samplerOptions, type SamplingFlags, type SpeculationFlags, kvTypeOf } from './options.js';
import type { GenerationSummary } from '../engine/engine.js';

interface GenerateFlags extends SamplingFlags, SpeculationFlags {
  model: string;
  prompt: string;
  nPredict: number;
  threads?: number;
  ctx?: number;
  kvType: string;
  json?: boolean;
  stop?: string[];
  ignoreEos?: boolean;
  backend: string;
  gpuLayers?: number;
  verbose?: boolean;
}

/** The prompt: the text given, or with `-p -` all of stdin (as text, UTF-8). */
async function readPrompt(p: string): Promise<string> {
  if (p !== '-') return p;
  if (process.stdin.isTTY) process.stderr.write('cairn: reading the prompt from stdin (end it with Ctrl+D)\n');
  // Node reads a folder given as stdin as nothing at all: say so rather than generate from an empty prompt.
  if (stdinIsFolder()) throw new CairnError('BAD_ARGUMENT', 'with -p -, the prompt comes from stdin, which is a folder here: pipe the prompt in or redirect a file');
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function stdinIsFolder(): boolean {
  try {
    return fstatSync(0).isDirectory();
  } catch {
    return false; // no stdin at all: read as empty, as Node reads it
  }
}

/** One line of timings for --verbose. */
function timingLine(promptTokens: number, s: GenerationSummary | undefined): string {
  const evaluated = promptTokens - (s?.cachedTokens ?? 0);
  const prefill = s?.prefillMs ?? 0;
  const decode = s?.decodeMs ?? 0;
  const generated = s?.completionTokens ?? 0;
  const rate = (n: number, ms: number) => (ms > 0 ? `${((n * 1000) / ms).toFixed(1)} tok/s` : '-');
  const drafts = s && s.draftTokens > 0 ? `; drafts ${s.acceptedDraftTokens}/${s.draftTokens} kept` : '';
  return `cairn: prompt ${promptTokens} tokens (${evaluated} read) in ${prefill.toFixed(0)} ms, ${rate(evaluated, prefill)}; generated ${generated} tokens in ${decode.toFixed(0)} ms, ${rate(Math.max(0, generated - 1), decode)}${drafts}${s ? `; finish: ${s.finishReason}` : ''}`;
}

/** The generate command. */
export function generateCommand(): Command {
  const cmd = new Command('generate').description('Generate a continuation of a prompt (streams only the new text to stdout)');
  addModelOptions(cmd);
  cmd
    .requiredOption('-p, --prompt <text>', "prompt text, or '-' to read it from stdin (BOS is added when the model wants it; special tokens are parsed)")
    .option('-n, --n-predict <n>', 'most tokens to generate', intArg(0), 128)
    .option('--stop <text>', 'stop before this text (repeatable)', collect)
    .option('--ignore-eos', 'keep generating past end-of-generation tokens')
    .option('--json', 'print one JSON object with ids, text, timings and memory instead of streaming')
    .option('--verbose', 'print a line of timings (prompt and generation speed) to stderr at the end');
  addSamplingOptions(cmd);
  addSpeculationOptions(cmd);
  cmd.action(async (o: GenerateFlags) => {
    // Read before loading: a prompt from a pipe is there at once; the model may take a while.
    const text = await readPrompt(o.prompt);
    o.model = (await resolveModelArg(o.model)).path;
    const draftModel = o.draftModel ? (await resolveModelArg(o.draftModel, { option: '--draft-model' })).path : undefined;
    const model = await loadModel(o.model, {
      threads: o.threads,
      ctx: o.ctx,
      kvType: kvTypeOf(o.kvType),
      ...backendOptions(o),
      progress: !o.json && process.stderr.isTTY,
      speculation: { maxDraft: o.draftMax, draftModel },
    });
    if (model.placement.note && (o.verbose || process.stderr.isTTY)) process.stderr.write(`cairn: ${model.placement.note}\n`);
    try {
      const prompt = model.tokenizer.encode(text, { addSpecial: true, parseSpecial: true });
      if (prompt.length === 0) throw new CairnError('BAD_ARGUMENT', 'the prompt is empty (and this model adds no BOS): give some text with -p');
      let summary: GenerationSummary | undefined;
      if (o.nPredict > 0) {
        for await (const ev of model.engine.generate({
          prompt,
          maxTokens: o.nPredict,
          sampler: samplerOptions(o),
          stop: o.stop,
          ignoreEos: o.ignoreEos,
        })) {
          if (ev.type === 'done') summary = ev.summary;
          else if (!o.json && ev.text) process.stdout.write(ev.text);
        }
        if (summary?.error) throw summary.error;
      }
      const tokens = summary?.tokens ?? [];
      if (o.json) {
        const evaluated = prompt.length - (summary?.cachedTokens ?? 0);
        const prefillS = (summary?.prefillMs ?? 0) / 1000;
        const decodeS = (summary?.decodeMs ?? 0) / 1000;
        process.stdout.write(
          JSON.stringify({
            prompt_tokens: prompt,
            tokens,
            text: summary?.text ?? '',
            finish_reason: summary?.finishReason ?? 'length',
            timings: {
              prefill_tokens_per_s: prefillS > 0 ? evaluated / prefillS : 0,
              decode_tokens_per_s: decodeS > 0 && tokens.length > 1 ? (tokens.length - 1) / decodeS : 0,
            },
            speculation: {
              source: model.engine.speculation?.source.name ?? 'off',
              draft_tokens: summary?.draftTokens ?? 0,
              accepted_draft_tokens: summary?.acceptedDraftTokens ?? 0,
            },
            memory: { rss_bytes: model.residentBytes(), mapped_bytes: model.mappedBytes, kv_cache_bytes: model.kvBytes },
            backend: { name: model.placement.backend, adapter: model.placement.adapter ?? null, gpu_layers: model.placement.gpuLayers ?? 0, note: model.placement.note ?? null },
          }) + '\n',
        );
      } else {
        process.stdout.write('\n');
      }
      if (o.verbose) process.stderr.write(timingLine(prompt.length, summary) + '\n');
    } finally {
      model.close();
    }
  });
  return cmd;
}
