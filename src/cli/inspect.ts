/** `cairn inspect FILE`: what a GGUF model is and what it needs to run. */
import { resolveModelArg } from './model-arg.js';
import { Command, Option } from 'commander';
import { readGguf } from '../gguf/reader.js';
import { summarizeModel, type ModelSummary } from '../model/summary.js';
import { formatBytes, formatCount } from '../util/format.js';
import { BACKENDS, backendOptions, intArg, KV_TYPES, kvTypeOf } from './options.js';
import { loadModel } from '../engine/load.js';

/** The inspect command. */
export function inspectCommand(): Command {
  return new Command('inspect')
    .description('Describe a GGUF model: architecture, parameters, quantization mix, tokenizer, tensors and memory needed')
    .argument('<model>', 'GGUF model: a file, a stored model (cairn ls), or hf:OWNER/REPO:TAG')
    .option('-c, --ctx <n>', 'context size for the memory estimate (default: trained context, at most 4096)', intArg(1))
    .addOption(new Option('--kv-type <type>', 'KV cache type for the estimate').choices(KV_TYPES).default('f16'))
    .option('--load', 'also load the model and report resident memory after loading, and where its layers run')
    .addOption(new Option('--backend <name>', 'with --load: where the layers run (see cairn generate --help)').choices(BACKENDS).default('cpu'))
    .option('--gpu-layers <n>', 'with --load and --backend gpu or auto: the last n layers on the GPU', intArg(1))
    .option('--no-tensors', 'leave out the tensor table')
    .option('--json', 'print one JSON object')
    .action(async (file: string, o: { ctx?: number; kvType: string; load?: boolean; tensors: boolean; json?: boolean; backend: string; gpuLayers?: number }) => {
      const kvType = kvTypeOf(o.kvType);
      file = (await resolveModelArg(file, { quiet: o.json })).path;
      const summary = summarizeModel(readGguf(file), { ctx: o.ctx, kvType });
      let loaded: Loaded | undefined;
      if (o.load) {
        const model = await loadModel(file, { ctx: summary.memory?.ctx, kvType, progress: !o.json, ...backendOptions(o) });
        const n = model.config.nLayer;
        const gpu = model.placement.backend === 'gpu' ? (model.placement.gpuLayers ?? n) : 0;
        loaded = {
          rssBytes: model.residentBytes(),
          mappedBytes: model.mappedBytes,
          layers: {
            cpu: gpu < n ? [0, n - gpu] : null,
            gpu: gpu > 0 ? [n - gpu, n] : null,
            adapter: model.placement.adapter ?? null,
            note: model.placement.note ?? null,
          },
        };
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

/** What --load adds: memory after loading, and which layers run where ([start, end) or null). */
interface Loaded {
  rssBytes: number;
  mappedBytes: number;
  layers: { cpu: [number, number] | null; gpu: [number, number] | null; adapter: string | null; note: string | null };
}

function render(s: ModelSummary, tensors: boolean, loaded?: Loaded): string {
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
  if (loaded) {
    row('loaded', `resident ${formatBytes(loaded.rssBytes)} after load (file mapped: ${formatBytes(loaded.mappedBytes)})`);
    const l = loaded.layers;
    const range = (r: [number, number]) => (r[1] - r[0] === 1 ? `layer ${r[0]}` : `layers ${r[0]}-${r[1] - 1}`);
    const where = [l.cpu && `${range(l.cpu)} on the CPU`, l.gpu && `${range(l.gpu)} and the head on the GPU (${l.adapter})`].filter(Boolean).join(', ');
    row('runs on', `${where}${l.note ? ` (${l.note})` : ''}`);
  }
  if (tensors) {
    lines.push('', `${'tensor'.padEnd(32)} ${'type'.padEnd(6)} ${'dims'.padEnd(20)} bytes`);
    for (const x of s.tensors) lines.push(`${x.name.padEnd(32)} ${x.type.padEnd(6)} ${`[${x.dims.join(', ')}]`.padEnd(20)} ${formatBytes(x.bytes)}`);
  }
  return lines.join('\n') + '\n';
}
