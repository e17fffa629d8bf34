/** The model families cairn runs, by GGUF architecture name (`general.architecture`). */
import { CairnError } from '../util/errors.js';
import type { ModelConfig } from './config.js';
import type { ModelFamily } from './family.js';
import { deepseek2Family } from './families/deepseek2.js';
import { gemma2Family } from './families/gemma2.js';
import { gemma3Family } from './families/gemma3.js';
import { phi3Family } from './families/phi3.js';
import { mistral3Family } from './families/mistral3.js';
import { glm4MoeFamily } from './families/glm4moe.js';
import { gptOssFamily } from './families/gpt-oss.js';
import { llamaFamily } from './families/llama.js';
import { qwen2Family } from './families/qwen2.js';
import { qwen3Family } from './families/qwen3.js';
import { qwen2MoeFamily } from './families/qwen2moe.js';
import { qwen3MoeFamily } from './families/qwen3moe.js';
import { isEncoderArchitecture } from './encoders/registry.js';

/** Every family, in the order `inspect` and `bench` list them. */
export const MODEL_FAMILIES: readonly ModelFamily[] = [
  llamaFamily,
  qwen2Family,
  qwen3Family,
  gemma2Family as ModelFamily,
  gemma3Family as ModelFamily,
  phi3Family as ModelFamily,
  mistral3Family as ModelFamily,
  qwen2MoeFamily as ModelFamily,
  qwen3MoeFamily as ModelFamily,
  deepseek2Family,
  glm4MoeFamily as ModelFamily,
  gptOssFamily,
];

const BY_ARCH = new Map<string, ModelFamily>(MODEL_FAMILIES.flatMap((f) => f.architectures.map((a) => [a, f] as const)));

/** GGUF architecture names with a family. */
export function supportedArchitectures(): string[] {
  return [...BY_ARCH.keys()];
}

/** The family of a GGUF architecture; an unknown one fails naming itself and the supported ones. */
export function familyFor(arch: string, path?: string): ModelFamily {
  const f = BY_ARCH.get(arch);
  if (!f && isEncoderArchitecture(arch)) {
    throw new CairnError(
      'MODEL_UNSUPPORTED',
      `${path ? `${path}: ` : ''}"${arch}" is an embedding model: it runs whole on one machine (cairn serve without --cluster) and makes embeddings only`,
    );
  }
  if (!f) {
    throw new CairnError(
      'MODEL_UNSUPPORTED',
      `${path ? `${path}: ` : ''}architecture "${arch}" is not supported (supported: ${supportedArchitectures().join(', ')})`,
    );
  }
  return f;
}

/** The family that made a config. */
export function familyOf(cfg: ModelConfig): ModelFamily {
  return familyFor(cfg.arch);
}
