/**
 * Sampling: the sampler chain (temperature, top-k, top-p, min-p, penalties, logit bias, seed),
 * logprobs and streaming stop strings.
 */
export { Sampler } from './sampler.js';
export {
  resolveSamplerOptions,
  SAMPLER_DEFAULTS,
  type ResolvedSamplerOptions,
  type SamplerOptions,
} from './options.js';
export {
  applyLogitBias,
  applyPenalties,
  penaltiesAreOff,
  PenaltyScratch,
  type PenaltyParams,
} from './penalties.js';
export { argmax, selectTop } from './select.js';
export { Xoshiro128, randomSeed } from './prng.js';
export {
  logSumExp,
  MAX_TOP_LOGPROBS,
  stepLogprobs,
  type StepLogprobs,
  type TokenLogprob,
} from './logprobs.js';
export { StopMatcher, type StopMatchResult } from './stop-matcher.js';
