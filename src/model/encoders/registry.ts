/** The encoder families cairn runs (embedding models), by GGUF architecture name. */
import { CairnError } from '../../util/errors.js';
import type { Metadata } from '../../gguf/metadata.js';
import { bertFamily } from './bert.js';
import type { EncoderConfig } from './config.js';
import type { EncoderFamily } from './family.js';
import { nomicBertFamily } from './nomic-bert.js';

/** Every encoder family. */
export const ENCODER_FAMILIES: readonly EncoderFamily[] = [bertFamily, nomicBertFamily];

const BY_ARCH = new Map<string, EncoderFamily>(ENCODER_FAMILIES.flatMap((f) => f.architectures.map((a) => [a, f] as const)));

/** True for an architecture an encoder family runs. */
export function isEncoderArchitecture(arch: string): boolean {
  return BY_ARCH.has(arch);
}

/** The encoder family of an architecture; MODEL_UNSUPPORTED for one that is not an encoder cairn runs. */
export function encoderFamilyFor(arch: string): EncoderFamily {
  const f = BY_ARCH.get(arch);
  if (!f) throw new CairnError('MODEL_UNSUPPORTED', `architecture "${arch}" is not an embedding model cairn runs (those: ${[...BY_ARCH.keys()].join(', ')})`);
  return f;
}

/** Reads an encoder's config from its file's metadata. */
export function readEncoderFileConfig(meta: Metadata): EncoderConfig {
  const arch = meta.requireString('general.architecture');
  return encoderFamilyFor(arch).readConfig(meta, arch);
}
