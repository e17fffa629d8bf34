/**
 * Checks a forward step's result against what the step asked for before anything uses it: a
 * runner may be a machine elsewhere, and a wrong count, a token id outside the vocabulary or a
 * malformed logprobs entry must fail the step with a clear message, never reach an index.
 */
import { MAX_TOP_LOGPROBS, type StepLogprobs, type TokenLogprob } from '../sampling/index.js';
import type { ForwardResult } from './runner.js';

/** What one output of a step expects back. */
export interface ExpectedOutput {
  readonly mode: 'sample' | 'logits';
  /** Alternatives asked for with each sampled token; undefined = no logprobs. */
  readonly logprobs?: number;
  /** The sequence, and the draft token its next row reads (speculative decoding: OutputRequest.draft). */
  readonly seq?: number;
  readonly draft?: number;
}

/** Why `result` does not answer a step with these outputs, or undefined when it does. */
export function checkForwardResult(result: ForwardResult, outputs: readonly ExpectedOutput[], nVocab: number): string | undefined {
  if (typeof result !== 'object' || result === null) return 'no result';
  const { tokens, logprobs, logits } = result;
  if (!(tokens instanceof Int32Array) || tokens.length !== outputs.length)
    return `${describeLength(tokens)} token ids for ${outputs.length} outputs`;
  if (!Array.isArray(logprobs) || logprobs.length !== outputs.length)
    return `${describeLength(logprobs)} logprobs entries for ${outputs.length} outputs`;
  const wanted = outputs.reduce((n, o) => n + (o.mode === 'logits' ? 1 : 0), 0);
  if (!(logits instanceof Float32Array) || logits.length !== wanted * nVocab)
    return `${describeLength(logits)} logits for ${wanted} rows of ${nVocab}`;
  // Sequences whose draft was wrong at an earlier output: their later outputs carry nothing.
  const missed = new Set<number>();
  for (let j = 0; j < outputs.length; j++) {
    const o = outputs[j];
    const id = tokens[j];
    const lp = logprobs[j];
    if (o.mode === 'logits') {
      if (id !== -1) return `output ${j} returns logits but carries token id ${id}`;
      if (lp !== undefined) return `output ${j} returns logits but carries logprobs`;
      continue;
    }
    if (o.seq !== undefined && missed.has(o.seq)) {
      if (id !== -1 || lp !== undefined) return `output ${j} follows a rejected draft but carries a token`;
      continue;
    }
    if (!isTokenId(id, nVocab)) return `token id ${id} of output ${j} is outside the vocabulary of ${nVocab}`;
    if (o.seq !== undefined && o.draft !== undefined && id !== o.draft) missed.add(o.seq);
    if (o.logprobs === undefined) {
      if (lp !== undefined) return `output ${j} carries logprobs nobody asked for`;
      continue;
    }
    const why = checkLogprobs(lp, id, o.logprobs, nVocab);
    if (why) return `logprobs of output ${j}: ${why}`;
  }
  return undefined;
}

function checkLogprobs(lp: StepLogprobs | undefined, id: number, top: number, nVocab: number): string | undefined {
  if (typeof lp !== 'object' || lp === null) return 'missing';
  if (lp.id !== id) return `for token ${String(lp.id)}, not the sampled ${id}`;
  if (typeof lp.logprob !== 'number') return 'the logprob is not a number';
  if (!Array.isArray(lp.top) || lp.top.length > Math.min(top, MAX_TOP_LOGPROBS))
    return `${describeLength(lp.top)} alternatives for at most ${top}`;
  for (const t of lp.top as readonly TokenLogprob[]) {
    if (typeof t !== 'object' || t === null || !isTokenId(t.id, nVocab) || typeof t.logprob !== 'number') return 'a malformed alternative';
  }
  return undefined;
}

function isTokenId(id: unknown, nVocab: number): boolean {
  return Number.isInteger(id) && (id as number) >= 0 && (id as number) < nVocab;
}

function describeLength(x: unknown): string {
  return x !== null && typeof x === 'object' && 'length' in x && typeof x.length === 'number' ? String(x.length) : 'no';
}
