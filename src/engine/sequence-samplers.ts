/**
 * Sampling state of the sequences a runner samples for: each sequence's sampler (its random
 * stream) and token history (for penalties). It lives where the logits are made, so in a cluster
 * the last pipeline stage samples and only token ids travel back.
 */
import { Sampler, stepLogprobs, type SamplerOptions, type StepLogprobs } from '../sampling/index.js';
import { CairnError } from '../util/errors.js';

/** How a sequence is to be sampled. */
export interface SequenceSpec {
  readonly sampler: SamplerOptions;
  /** Report logprobs with this many alternatives (0 to 20); undefined = none. */
  readonly logprobs?: number;
  /** Tokens so far (the prompt, and what was generated before a resume), for penalties. */
  readonly history: readonly number[];
  /**
   * Tokens this sequence already sampled elsewhere (it resumes after its runner changed): the
   * seeded random stream skips their draws, so a seeded sequence continues exactly as it would
   * have. At most history.length.
   */
  readonly drawn?: number;
}

interface State {
  readonly sampler: Sampler;
  readonly logprobs?: number;
  readonly history: number[];
}

/** Samplers of many sequences, by sequence id. */
export class SequenceSamplers {
  private readonly states = new Map<number, State>();

  /** Registers a sequence. */
  start(seq: number, spec: SequenceSpec): void {
    const drawn = spec.drawn ?? 0;
    if (!(Number.isSafeInteger(drawn) && drawn >= 0 && drawn <= spec.history.length)) {
      throw new CairnError('BAD_ARGUMENT', `a sequence cannot have drawn ${String(drawn)} tokens with a history of ${spec.history.length}`);
    }
    const sampler = new Sampler(spec.sampler);
    sampler.skip(drawn);
    this.states.set(seq, { sampler, logprobs: spec.logprobs, history: [...spec.history] });
  }

  /** Forgets a sequence. */
  end(seq: number): void {
    this.states.delete(seq);
  }

  /** Whether `seq` has a sampler here. */
  has(seq: number): boolean {
    return this.states.has(seq);
  }

  /** Sequences with a sampler here. */
  get size(): number {
    return this.states.size;
  }

  /** Samples a sequence's next token from its logits and records it in its history. */
  sample(seq: number, logits: Float32Array): { token: number; logprobs?: StepLogprobs } {
    const s = this.states.get(seq);
    if (!s) throw new CairnError('BAD_ARGUMENT', `sequence ${seq} has no sampler`);
    const token = s.sampler.sample(logits, s.history);
    s.history.push(token);
    return { token, logprobs: s.logprobs !== undefined ? stepLogprobs(logits, token, s.logprobs) : undefined };
  }
}
