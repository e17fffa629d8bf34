/**
 * The Mixture-of-Experts hyperparameters llama.cpp reads (`<arch>.expert_count`, ...), with its
 * defaults and checks, into the MoeConfig the MoE families share; and the same keys written into
 * synthetic models. Which of the optional keys a family reads, and what it hard-codes instead
 * (Qwen3-MoE always normalizes, Qwen2-MoE never), is the family's: it passes them in.
 */
import { CairnError } from '../../util/errors.js';
import type { Metadata } from '../../gguf/metadata.js';
import { gv } from '../../gguf/values.js';
import type { ModelConfig } from '../config.js';
import type { MoeFfnPlan } from '../family.js';
import { checkMoeRouting, type MoeGating, type MoeRouting } from '../blocks/moe-router.js';
import type { SyntheticModelSpec, SyntheticTensors } from '../synthetic-tensors.js';
import { uniform } from './decoder-keys.js';

/** The MoE part of a model's shape. */
export interface MoeConfig {
  readonly routing: MoeRouting;
  /** Hidden width of one routed expert. */
  readonly width: number;
  /** Shared experts every token uses (0: none). */
  readonly shared: number;
  /** Total hidden width of the shared experts (0: none). */
  readonly sharedWidth: number;
  /** The shared experts' output goes through a sigmoid gate (Qwen2-MoE). */
  readonly sharedGated: boolean;
  /** Leading layers with a dense FFN of nFf instead of experts. */
  readonly leadingDense: number;
}

/** A config of a model whose layers (past the leading dense ones) are Mixture-of-Experts. */
export interface MoeModelConfig extends ModelConfig {
  readonly moe: MoeConfig;
}

/** True when the config has MoE layers. */
export function isMoeConfig(cfg: ModelConfig): cfg is MoeModelConfig {
  return (cfg as Partial<MoeModelConfig>).moe !== undefined;
}

/** True when layer `l` of an MoE model has experts (it is past the leading dense layers). */
export function isMoeLayer(cfg: MoeModelConfig, l: number): boolean {
  return l >= cfg.moe.leadingDense;
}

/** The plan of an MoE layer's FFN. */
export function moeFfnPlan(m: MoeConfig): MoeFfnPlan {
  return { kind: 'moe', experts: m.routing.experts, used: m.routing.used, shared: m.shared, width: m.width, sharedWidth: m.sharedWidth };
}

/** llama.cpp's `expert_gating_func` numbers. */
const GATING_FUNCS: Record<number, MoeGating | undefined> = { 1: 'softmax', 2: 'sigmoid', 3: 'softmax-selected' };

/** What a family reads or hard-codes besides the keys every MoE architecture has. */
export interface MoeKeyRules {
  /**
   * Expert width: `expert_feed_forward_length` (required, optional, or not read); where the family
   * has one, llama.cpp's fallback for a missing or zero key: the dense width (Mixtral) or nFf / used
   * (Qwen MoE, GLM-4.5), as integers divide.
   */
  readonly width: { readonly key: 'required' | 'optional' | 'none'; readonly fallback?: 'nFf' | 'nFf/used' };
  /** The gating when the file has no `expert_gating_func` (or the family does not read it: `fixed`). */
  readonly gating: { readonly fixed?: MoeGating; readonly default?: MoeGating };
  /** Normalization: hard-coded, or read from `expert_weights_norm` (default false). */
  readonly normalize: boolean | 'read';
  /** Read `expert_weights_scale` (else no scaling). */
  readonly readScale: boolean;
  /** Shared experts: none, `expert_shared_count` of the expert width (required), or Qwen2-MoE's one gated expert of `expert_shared_feed_forward_length`. */
  readonly shared: 'none' | 'count' | 'gated';
  /** Read `leading_dense_block_count`. */
  readonly readLeadingDense: boolean;
}

/** Reads the MoE keys of `arch` for a model of `nLayer` layers whose dense FFN width is nFf. */
export function readMoeConfig(m: Metadata, arch: string, nLayer: number, nFf: number, rules: MoeKeyRules): MoeConfig {
  const path = m.file.path;
  const k = (suffix: string) => `${arch}.${suffix}`;
  const experts = m.number(k('expert_count')) ?? 0;
  const used = uniform(path, k('expert_used_count'), m.numberOrArray(k('expert_used_count'))) ?? 0;
  if (experts <= 0)
    throw new CairnError('GGUF_MALFORMED', `${path}: "${k('expert_count')}" is missing or zero for a Mixture-of-Experts architecture`);
  if (used <= 0)
    throw new CairnError(
      'GGUF_MALFORMED',
      `${path}: the model has expert layers but no expert is used per token ("${k('expert_used_count')}")`,
    );
  const fallback = rules.width.fallback === 'nFf' ? nFf : rules.width.fallback === 'nFf/used' ? Math.floor(nFf / used) : undefined;
  const widthKey =
    rules.width.key === 'none'
      ? undefined
      : uniform(path, k('expert_feed_forward_length'), m.numberOrArray(k('expert_feed_forward_length')));
  // As llama.cpp: a required key must be there, but a width of 0 means the fallback either way.
  const width = widthKey === undefined ? (rules.width.key === 'required' ? undefined : fallback) : widthKey || fallback;
  if (!width || !Number.isInteger(width) || width <= 0) {
    throw new CairnError(
      'GGUF_MALFORMED',
      `${path}: expert FFN width unknown or not a positive integer ("${k('expert_feed_forward_length')}")`,
    );
  }
  let gating = rules.gating.fixed;
  if (!gating) {
    const f = m.number(k('expert_gating_func')) ?? 0;
    gating = f === 0 ? rules.gating.default : GATING_FUNCS[f];
    if (!gating)
      throw new CairnError('MODEL_UNSUPPORTED', `${path}: expert gating function ${f} ("${k('expert_gating_func')}") is not supported`);
  }
  const normalize = rules.normalize === 'read' ? (m.bool(k('expert_weights_norm')) ?? false) : rules.normalize;
  const scale = rules.readScale ? (m.number(k('expert_weights_scale')) ?? 0) : 0;
  const routing: MoeRouting = {
    experts,
    used,
    gating,
    normalize,
    scale,
    groups: m.number(k('expert_group_count')) ?? 0,
    groupsUsed: m.number(k('expert_group_used_count')) ?? 0,
  };
  checkMoeRouting(routing, path);

  let shared = 0;
  let sharedWidth = 0;
  if (rules.shared === 'count') {
    shared = m.requireNumber(k('expert_shared_count'));
    if (!(Number.isInteger(shared) && shared >= 0 && shared <= 64)) {
      throw new CairnError('GGUF_MALFORMED', `${path}: ${shared} shared experts ("${k('expert_shared_count')}")`);
    }
    sharedWidth = shared * width;
  } else if (rules.shared === 'gated') {
    shared = 1;
    sharedWidth = m.number(k('expert_shared_feed_forward_length')) || nFf;
    if (!(Number.isInteger(sharedWidth) && sharedWidth > 0)) {
      throw new CairnError(
        'GGUF_MALFORMED',
        `${path}: shared expert width unknown ("${k('expert_shared_feed_forward_length')}" or "${k('feed_forward_length')}")`,
      );
    }
  }
  const leadingDense = rules.readLeadingDense ? (m.number(k('leading_dense_block_count')) ?? 0) : 0;
  if (!(Number.isInteger(leadingDense) && leadingDense >= 0 && leadingDense <= nLayer)) {
    throw new CairnError('GGUF_MALFORMED', `${path}: ${leadingDense} leading dense layers of ${nLayer}`);
  }
  if (leadingDense > 0 && !(nFf > 0)) {
    throw new CairnError('GGUF_MALFORMED', `${path}: dense layers need "${k('feed_forward_length')}"`);
  }
  return { routing, width, shared, sharedWidth, sharedGated: rules.shared === 'gated', leadingDense };
}

/** `8 of 128 experts of 768 per token (+1 shared)`, for a family's one-line description. */
export function describeMoe(m: MoeConfig): string {
  const r = m.routing;
  const shared = m.shared > 0 ? ` + ${m.shared} shared${m.sharedGated ? ' (gated)' : ''} of ${m.sharedWidth}` : '';
  const groups = r.groups > 1 ? `, ${r.groupsUsed} of ${r.groups} groups` : '';
  const dense = m.leadingDense > 0 ? `, ${m.leadingDense} leading dense` : '';
  return `experts ${r.used} of ${r.experts} of ${m.width}${shared} (${r.gating}${r.normalize ? ', normalized' : ''}${r.scale !== 0 && r.scale !== 1 ? `, x${r.scale}` : ''}${groups})${dense}`;
}

/**
 * Writes the MoE keys of a synthetic model: counts and width always; the rest where the family
 * reads it (`keys`), from the spec's MoE part.
 */
export function writeMoeKeys(
  spec: SyntheticModelSpec,
  out: SyntheticTensors,
  keys: {
    readonly width: boolean;
    readonly gating?: boolean;
    readonly norm?: boolean;
    readonly scale?: boolean;
    readonly shared?: 'count' | 'gated';
    readonly leadingDense?: boolean;
  },
): void {
  const a = spec.arch;
  const moe = spec.moe!;
  out.meta(`${a}.expert_count`, gv.u32(moe.experts));
  out.meta(`${a}.expert_used_count`, gv.u32(moe.used));
  if (keys.width) out.meta(`${a}.expert_feed_forward_length`, gv.u32(moe.width));
  if (keys.shared === 'count') out.meta(`${a}.expert_shared_count`, gv.u32(moe.shared ?? 0));
  if (keys.shared === 'gated') out.meta(`${a}.expert_shared_feed_forward_length`, gv.u32(moe.sharedWidth ?? moe.width));
  if (keys.leadingDense && moe.leadingDense) out.meta(`${a}.leading_dense_block_count`, gv.u32(moe.leadingDense));
  if (keys.gating) out.meta(`${a}.expert_gating_func`, gv.u32(moe.sigmoid === false ? 1 : 2));
  if (keys.norm) out.meta(`${a}.expert_weights_norm`, gv.bool(moe.normalize ?? true));
  if (keys.scale && moe.scale !== undefined) out.meta(`${a}.expert_weights_scale`, gv.f32(moe.scale));
  if (moe.groups && moe.groups > 1) {
    out.meta(`${a}.expert_group_count`, gv.u32(moe.groups));
    out.meta(`${a}.expert_group_used_count`, gv.u32(moe.groupsUsed ?? 1));
  }
}
