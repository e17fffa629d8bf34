/**
 * Option parsers and option groups shared by commands, so every command spells and checks
 * `--threads`, `--ctx` and the sampling flags the same way.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import type { SamplerOptions } from '../sampling/index.js';
import { GgmlType } from '../gguf/ggml-types.js';
import type { KvType } from '../kernels/api.js';
import { CairnError } from '../util/errors.js';

/** Parses a whole number >= min. */
export function intArg(min: number, max = Infinity): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(max === Infinity ? `expected a whole number >= ${min}, got "${v}"` : `expected a whole number from ${min} to ${max}, got "${v}"`);
    }
    return n;
  };
}

/** Parses a finite number within [min, max]. */
export function numArg(min: number, max = Infinity): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < min || n > max) {
      throw new InvalidArgumentError(`expected a number in [${min}, ${max === Infinity ? '∞' : max}], got "${v}"`);
    }
    return n;
  };
}

/** Collects a repeatable string option into an array. */
export function collect(v: string, prev: string[] = []): string[] {
  return [...prev, v];
}

/** Adds -m/--model, --threads, --ctx, --kv-type and --backend. */
export function addModelOptions(cmd: Command): Command {
  return cmd
    .requiredOption('-m, --model <model>', 'GGUF model: a file, a stored model (cairn ls), or hf:OWNER/REPO:TAG (pulled on first use)')
    .option('-t, --threads <n>', 'compute threads (default: physical cores)', intArg(1))
    .option('-c, --ctx <n>', 'context size in tokens (default: the model\'s, at most 4096)', intArg(16))
    .addOption(new Option('--kv-type <type>', 'KV cache element type (q8_0: about half the memory of f16, a small accuracy cost)').choices(KV_TYPES).default('f16'))
    .addOption(
      new Option(
        '--backend <name>',
        'where the layers run: cpu; gpu (through WebGPU: Metal, Vulkan, Direct3D 12; an error when no GPU runs the model); auto (a hardware GPU when one runs the model, else the CPU, saying why); reference (the TypeScript kernels on the CPU: slow, for checking)',
      )
        .choices(BACKENDS)
        .default('cpu'),
    )
    .option('--gpu-layers <n>', 'with --backend gpu or auto: run only the last n layers (and the head) on the GPU, the others on the CPU, for a GPU whose memory is short (as llama.cpp\'s -ngl)', intArg(1));
}

/** The --backend choices. */
export const BACKENDS = ['cpu', 'gpu', 'auto', 'reference'];

/** The load options the --backend and --gpu-layers flags stand for. */
export function backendOptions(o: { backend: string; gpuLayers?: number }): { compute: 'cpu' | 'gpu' | 'auto'; backend?: 'reference'; gpuLayers?: number } {
  const flag = o.backend;
  if (o.gpuLayers !== undefined && flag !== 'gpu' && flag !== 'auto') throw new CairnError('BAD_ARGUMENT', `--gpu-layers goes with --backend gpu or auto (not ${flag})`);
  if (flag === 'reference') return { compute: 'cpu', backend: 'reference' };
  if (flag === 'cpu' || flag === 'gpu' || flag === 'auto') return { compute: flag, gpuLayers: o.gpuLayers };
  throw new CairnError('BAD_ARGUMENT', `--backend must be one of ${BACKENDS.join(', ')}, got "${flag}"`);
}

/** The --kv-type choices. */
export const KV_TYPES = ['f16', 'f32', 'q8_0'];

/** The cache type a --kv-type flag names. */
export function kvTypeOf(flag: string): KvType {
  return flag === 'f32' ? GgmlType.F32 : flag === 'q8_0' ? GgmlType.Q8_0 : GgmlType.F16;
}

/** Adds the sampling flags (llama.cpp's defaults). */
export function addSamplingOptions(cmd: Command): Command {
  return cmd
    .option('--temperature <t>', 'sampling temperature; 0 = greedy', numArg(0), 0.8)
    .option('--top-k <k>', 'keep the k most likely tokens; 0 = off', intArg(0), 40)
    .option('--top-p <p>', 'nucleus sampling threshold; 1 = off', numArg(0, 1), 0.95)
    .option('--min-p <p>', 'drop tokens below p x the best one; 0 = off', numArg(0, 1), 0.05)
    .option('--repeat-penalty <r>', 'llama.cpp repetition penalty; 1 = off', numArg(0), 1)
    .option('--presence-penalty <p>', 'OpenAI presence penalty', numArg(-2, 2), 0)
    .option('--frequency-penalty <p>', 'OpenAI frequency penalty', numArg(-2, 2), 0)
    .option('-s, --seed <n>', 'random seed (same seed, same output; -1: a random one)', intArg(-1));
}

/** Sampling flags as parsed by commander. */
export interface SamplingFlags {
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  repeatPenalty: number;
  presencePenalty: number;
  frequencyPenalty: number;
  seed?: number;
}

/** Turns parsed sampling flags into sampler options. */
export function samplerOptions(f: SamplingFlags): SamplerOptions {
  return {
    temperature: f.temperature,
    topK: f.topK,
    topP: f.topP,
    minP: f.minP,
    repeatPenalty: f.repeatPenalty,
    presencePenalty: f.presencePenalty,
    frequencyPenalty: f.frequencyPenalty,
    seed: f.seed,
  };
}

/** Cluster key flags as parsed by commander. */
export interface ClusterKeyFlags {
  clusterKey?: string;
  clusterKeyFile?: string;
  allowWeakKey?: boolean;
}

/** Adds --cluster-key, --cluster-key-file and --allow-weak-key. */
export function addClusterKeyOptions(cmd: Command): Command {
  return cmd
    .option('--cluster-key-file <file>', 'file holding the cluster key (readable only by you); the way to keep the key out of `ps`')
    .option('--cluster-key <key>', 'shared secret of the cluster (default: $CAIRN_CLUSTER_KEY); make one with `cairn cluster key`. Without a key, only processes of the same user on this machine can connect')
    .option('--allow-weak-key', 'accept a passphrase shorter than 16 characters as the cluster key');
}

/**
 * The cluster secret from the flags (undefined: this machine's local key), with warnings printed
 * on stderr. Derivation of a passphrase takes about half a second, off the event loop.
 */
export async function clusterSecretFromFlags(flags: ClusterKeyFlags): Promise<import('../cluster/index.js').ClusterSecret | undefined> {
  const { resolveClusterKey } = await import('../cluster/key-source.js');
  const resolved = await resolveClusterKey({ key: flags.clusterKey, keyFile: flags.clusterKeyFile, allowWeak: flags.allowWeakKey });
  for (const w of resolved.warnings) process.stderr.write(`cairn: note: ${w}\n`);
  return resolved.secret;
}

/** Adds --draft-max and --draft-model (speculative decoding). */
export function addSpeculationOptions(cmd: Command): Command {
  return cmd
    .option('--draft-max <n>', 'speculative decoding: most draft tokens checked per step (0 = off; same output either way)', intArg(0, 64), 8)
    .option('--draft-model <model>', 'speculative decoding: a small model of the same vocabulary drafts (default: drafts from prompt lookup)');
}

/** Speculation flags as parsed by commander. */
export interface SpeculationFlags {
  draftMax: number;
  draftModel?: string;
}
