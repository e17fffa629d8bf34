/** `cairn generate`: continue a prompt, streaming only the continuation to stdout. */
import { Command } from 'commander';
import { GgmlType } from '../gguf/ggml-types.js';
import { loadModel } from '../engine/load.js';
import { CairnError } from '../util/errors.js';
import { addModelOptions, addSamplingOptions, collect, intArg, samplerOptions, type SamplingFlags } from './options.js';
import type { GenerationSummary } from '../engine/engine.js';

interface GenerateFlags extends SamplingFlags {
  model: string;
  prompt: string;
  nPredict: number;
  threads?: number;
  ctx?: number;
  kvType: string;
  json?: boolean;
  stop?: string[];
  ignoreEos?: boolean;
  backend?: 'native' | 'reference';
}

/** The generate command. */
export function generateCommand(): Command {
  const cmd = new Command('generate').description('Generate a continuation of a prompt (streams only the new text to stdout)');
  addModelOptions(cmd);
  cmd
    .requiredOption('-p, --prompt <text>', 'prompt text (BOS is added when the model wants it; special tokens are parsed)')
    .option('-n, --n-predict <n>', 'most tokens to generate', intArg(0), 128)
    .option('--stop <text>', 'stop before this text (repeatable)', collect)
    .option('--ignore-eos', 'keep generating past end-of-generation tokens')
    .option('--json', 'print one JSON object with ids, text, timings and memory instead of streaming');
  addSamplingOptions(cmd);
  cmd.option('--backend <name>', 'kernel backend: native or reference (slow, for checking)', 'native');
  cmd.action(async (o: GenerateFlags) => {
    if (o.backend !== 'native' && o.backend !== 'reference') throw new CairnError('BAD_ARGUMENT', `--backend must be native or reference, got "${o.backend}"`);
    const model = await loadModel(o.model, {
      threads: o.threads,
      ctx: o.ctx,
      kvType: o.kvType === 'f32' ? GgmlType.F32 : GgmlType.F16,
      backend: o.backend,
      progress: !o.json && process.stderr.isTTY,
    });
    try {
      const prompt = model.tokenizer.encode(o.prompt, { addSpecial: true, parseSpecial: true });
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
            memory: { rss_bytes: model.residentBytes(), mapped_bytes: model.mappedBytes, kv_cache_bytes: model.kvBytes },
          }) + '\n',
        );
      } else {
        process.stdout.write('\n');
      }
    } finally {
      model.close();
    }
  });
  return cmd;
}
