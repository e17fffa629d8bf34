/**
 * Expert parallelism: a Mixture-of-Experts layer's routed experts placed on nodes in contiguous
 * runs sized by the nodes' shares (speed, capped by memory), and what a step then costs. A token
 * uses `used` of the `experts`; taking the router's choices as uniform, the chance that a node
 * holding n of them is needed for a token is 1 - C(E-n, u) / C(E, u), and a node holding n reads
 * u n / E of them per token on average. A batch of b tokens touches each expert with probability
 * 1 - (1 - u/E)^b, which is what a batched step reads. Only the hidden states of the tokens routed
 * to a node travel to it and back.
 */
import { proportionalCuts } from './apportion.js';
import type { Range } from './types.js';

/** Contiguous expert ids [start, end) of each node, at least one each; undefined when there are fewer experts than nodes. */
export function placeExperts(experts: number, shares: readonly number[]): Range[] | undefined {
  const cuts = proportionalCuts(experts, shares);
  return cuts && shares.map((_, i): Range => [cuts[i], cuts[i + 1]]);
}

/** The chance a token needs at least one of the `held` experts of a node (it uses `used` of `experts`). */
export function touchProbability(experts: number, held: number, used: number): number {
  if (held <= 0) return 0;
  if (held + used > experts) return 1;
  let none = 1;
  for (let i = 0; i < used; i++) none *= (experts - held - i) / (experts - i);
  return 1 - none;
}

/** Expected experts of the `held` a batch of `tokens` reads (each expert read once per step however many tokens use it). */
export function expertsRead(experts: number, held: number, used: number, tokens: number): number {
  if (held <= 0 || experts <= 0) return 0;
  return held * (1 - Math.pow(1 - used / experts, tokens));
}
