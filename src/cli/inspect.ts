/** `cairn inspect FILE`: what a GGUF model is and what it needs to run. */
import { resolveModelArg } from './model-arg.js';
import { Command, Option } from 'commander';
import { readGguf } from '../gguf/reader.js';
import { summarizeModel, type ModelSummary } from '../model/summary.js';
import { formatBytes, formatCount } from '../util/format.js';
import { intArg, KV_TYPES, kvTypeOf } from './options.js';
import { loadModel } from '../engine/load.js';

/** The inspect command. */
export function inspectCommand(): Command {
  return new Command('inspect')
    .description('Describe a GGUF model: architecture, parameters, quantization mix, tokenizer, tensors and memory needed')
    .argument('<model>', 'GGUF model: a file, a stored model (cairn ls), or hf:OWNER/REPO:TAG')
    .option('-c, --ctx <n>', 'context size for the memory estimate (default: trained context, at most 4096)', intArg(1))
    .addOption(new Option('--kv-type <type>', 'KV cache type for the estimate').choices(KV_TYPES).default('f16'))
    .option('--load', 'also load the model and report resident memory after loading')
    .option('--no-tensors', 'leave out the tensor table')
    .option('--json', 'print one JSON object')
    .action(async (file: string, o: { ctx?: number; kvType: string; load?: boolean; tensors: boolean; json?: boolean }) => {
      const kvType = kvTypeOf(o.kvType);
      file = (await resolveModelArg(file, { quiet: o.json })).path;
      const summary = summarizeModel(readGguf(file), { ctx: o.ctx, kvType });
      let loaded: { rssBytes: number; mappedBytes: number } | undefined;
      if (o.load) {
        const model = await loadModel(file, { ctx: summary.memory?.ctx, kvType, progress: !o.json });
        loaded = { rssBytes: model.residentBytes(), mappedBytes: model.mappedBytes };
        model.close();
      }
      if (o.json) {
        const { config, ...rest } = summary;
        process.stdout.write(JSON.stringify({ ...rest, config, loaded, tensors: o.tensors ? summary.tensors : undefined }, null, 2) + '\n');
        return;
      }
      process.stdout.write(render(summary, o.tensors, loaded));
    });
}

function render(s: ModelSummary, tensors: boolean, loaded?: { rssBytes: number; mappedBytes: number }): string {
  const lines: string[] = [];
  const row = (k: string, v: string) => lines.push(`${k.padEnd(13)}${v}`);
  row('file', `${s.path} (${formatBytes(s.fileBytes)}, GGUF v${s.ggufVersion})`);
  row('architecture', `${s.architecture}${s.name ? ` (${s.name})` : ''}${s.config ? '' : ` (cannot run: ${s.unsupportedReason})`}`);
  row('parameters', `${formatCount(s.parameters)} in ${s.tensors.length} tensors, ${formatBytes(s.tensorBytes)}`);
  const c = s.config;
  if (c && s.family) {
    row('family', s.family.name);
    row('shape', s.family.shape);
    const y = c.rope.yarn;
    const yarn = y && y.extFactor > 0 ? `, YaRN x${+(1 / c.rope.freqScale).toFixed(3)} of ${y.origCtx} trained positions${y.attnFactor !== 1 ? `, attention factor ${+y.attnFactor.toFixed(4)}` : ''}` : '';
    if (c.rope.nRot > 0) row('rope', `${c.rope.mode}, base ${c.rope.freqBase}, ${c.rope.nRot} dims${c.rope.freqScale !== 1 && !yarn ? `, scale ${c.rope.freqScale}` : ''}${yarn}`);
  }
  if (s.experts) {
    const e = s.experts;
    row('experts', `${e.routed} routed (${e.used} used per token)${e.shared ? ` + ${e.shared} shared` : ''}, width ${e.width}, in ${e.layers} of ${c?.nLayer ?? '?'} layers`);
  }
  if (s.bytes) row('per token', `${formatBytes(s.bytes.activePerToken)} of weights read per decoded token (of ${formatBytes(s.bytes.total)} held); ${formatCount(s.bytes.activeParameters)} of ${formatCount(s.bytes.parameters)} parameters active`);
  row('context', s.contextLength !== undefined ? `${s.contextLength} tokens (trained)` : 'unknown');
  row('quantization', s.quantization.map((q) => `${q.type} ${((100 * q.bytes) / s.tensorBytes).toFixed(1)}% (${q.tensors})`).join(', '));
  const t = s.tokenizer;
  row('tokenizer', `${t.model ?? 'none'}${t.pre ? `/${t.pre}` : ''}, ${t.tokens} tokens, BOS ${t.bos ?? '-'}, EOS ${t.eos ?? '-'}, chat template: ${t.hasChatTemplate ? 'yes' : 'none (built-in fallback)'}`);
  if (s.memory) {
    const m = s.memory;
    row(
      'memory',
      `${formatBytes(m.totalBytes)} for ${m.ctx} tokens: weights ${formatBytes(m.weightsBytes)} (mapped from the file) + KV cache ${formatBytes(m.kvCacheBytes)} (${m.kvType}) + activations ${formatBytes(m.activationBytes)}`,
    );
  }
  if (loaded) row('loaded', `resident ${formatBytes(loaded.rssBytes)} after load (file mapped: ${formatBytes(loaded.mappedBytes)})`);
  if (tensors) {
    lines.push('', `${'tensor'.padEnd(32)} ${'type'.padEnd(6)} ${'dims'.padEnd(20)} bytes`);
    for (const x of s.tensors) lines.push(`${x.name.padEnd(32)} ${x.type.padEnd(6)} ${`[${x.dims.join(', ')}]`.padEnd(20)} ${formatBytes(x.bytes)}`);
  }
  return lines.join('\n') + '\n';
}
