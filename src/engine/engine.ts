/**
 * The engine: turns requests (prompt token ids + sampling options) into streams of generated
 * tokens. A scheduler loop runs one batched forward step at a time over every active sequence
 * (continuous batching): decoding sequences contribute one token each, sequences still reading
 * their prompt contribute a chunk, and a new request starts its prefill without waiting for the
 * others to finish. Each KV slot remembers the tokens it holds, so a request that shares a prefix
 * with an earlier one skips re-reading it (prompt cache). The engine knows nothing of networks: it
 * drives a ForwardRunner, local or remote. When a runner is rebuilt under running sequences (a
 * cluster lost a node and re-planned), each sequence resumes on the new runner by reading its
 * prompt and generated tokens again, with its sampler restored to where it was: the stream pauses
 * and goes on with the tokens it would have had.
 */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { CairnError } from '../util/errors.js';
import { randomSeed, Sampler, StopMatcher, stepLogprobs, type SamplerOptions, type StepLogprobs } from '../sampling/index.js';
import { AsyncQueue } from './async-queue.js';
import { ReadLog } from './read-log.js';
import { checkForwardResult } from './result-check.js';
import { RunnerInterrupted, type ForwardResult, type ForwardRunner } from './runner.js';
import type { SequenceSpec } from './sequence-samplers.js';
import { commonPrefix, PrefixCache, type PrefixCacheOptions } from './prefix-cache.js';
import { DraftPacer } from './draft-pacer.js';
import { StepCosts } from './step-costs.js';
import type { DraftSource } from './draft-source.js';

/** Bytes of prompt-scoring logits one step outputs at most (a cluster's limits follow it). */
export const SCORE_LOGITS_BYTES = 16 << 20;

/** Rows of prompt logprobs one step outputs at most for a vocabulary of nVocab: SCORE_LOGITS_BYTES of logits. */
export function scoreRowsFor(nVocab: number): number {
  return Math.max(1, Math.floor(SCORE_LOGITS_BYTES / (4 * nVocab)));
}

/** What the engine needs from a tokenizer. */
export interface EngineTokenizer {
  /** True for end-of-generation tokens (EOS, EOT, ...). */
  isEog(id: number): boolean;
  /** A decoder that turns ids into text as it becomes complete UTF-8. */
  streamDecoder(): { push(id: number): string; flush(): string };
  /** The BOS id; a prompt of only BOS starts the decoder with it, so the first word loses its space prefix. */
  readonly bosId?: number;
}

/** One generation request. */
export interface GenerateRequest {
  /** Prompt token ids (with BOS where the model wants it). */
  readonly prompt: readonly number[];
  /** Most tokens to generate (0: only read the prompt, for its logprobs). */
  readonly maxTokens: number;
  readonly sampler?: SamplerOptions;
  /** Stop strings: generation ends before the first one appears; its text is not emitted. */
  readonly stop?: readonly string[];
  /** When set, each token carries its logprob and this many alternatives (0 to 20). */
  readonly logprobs?: number;
  /**
   * When set, every prompt token after the first gets its logprob and this many alternatives (0 to
   * 20), told in one `prompt` event before the first generated token. Such a prompt is read whole:
   * a position taken from the prompt cache has no logits.
   */
  readonly promptLogprobs?: number;
  /** Keep going past end-of-generation tokens. */
  readonly ignoreEos?: boolean;
  readonly signal?: AbortSignal;
  /**
   * Restricts which tokens may come next (constrained decoding, e.g. JSON schemas). Generation
   * ends with finish reason `stop` once the constraint reports its value complete.
   */
  readonly constraint?: GenerationConstraint;
  /**
   * Most draft tokens checked per step for this request (speculative decoding, when the engine has
   * a draft source); 0 turns it off. Output is the same either way: only the speed differs.
   */
  readonly maxDraft?: number;
}

/** A token-level constraint on generated text. */
export interface GenerationConstraint {
  /** Sets to -Infinity the logits of tokens that may not come next. */
  mask(logits: Float32Array): void;
  /** Advances with the chosen token. */
  accept(id: number): void;
  /** True once the output is complete. */
  readonly complete: boolean;
}

/** Why a generation ended. */
export type FinishReason = 'stop' | 'length' | 'abort' | 'error';

/** Streamed events of one generation. */
export type GenerationEvent =
  | { readonly type: 'token'; readonly id: number; readonly text: string; readonly logprobs?: StepLogprobs }
  /** Text released at the end that belongs to no single token (held back for a stop string or UTF-8). */
  | { readonly type: 'text'; readonly text: string }
  /**
   * The logprobs of prompt tokens 1..n-1 (as the request's promptLogprobs asked), once the prompt
   * is read. Its text is empty, so that a consumer of text alone may pass over it.
   */
  | { readonly type: 'prompt'; readonly text: ''; readonly logprobs: readonly StepLogprobs[] }
  | { readonly type: 'done'; readonly summary: GenerationSummary };

/** Totals and timings of a finished generation. */
export interface GenerationSummary {
  readonly finishReason: FinishReason;
  readonly error?: Error;
  readonly promptTokens: number;
  /** Prompt tokens whose KV came from the prompt cache instead of a forward pass. */
  readonly cachedTokens: number;
  readonly completionTokens: number;
  readonly tokens: readonly number[];
  readonly text: string;
  /** Stop string that ended the generation, if any. */
  readonly stop?: string;
  readonly prefillMs: number;
  readonly decodeMs: number;
  /** Draft tokens checked (speculative decoding) and how many of them were kept. */
  readonly draftTokens: number;
  readonly acceptedDraftTokens: number;
}

interface Slot {
  readonly id: number;
  /** Tokens whose KV this slot holds, in order. */
  cached: number[];
  busy: boolean;
  lastUsed: number;
}

interface Sequence {
  /** Unique id, also the runner's key for the sequence's sampler. */
  readonly id: number;
  readonly req: GenerateRequest;
  readonly out: AsyncQueue<GenerationEvent>;
  /** Sampler kept here for constrained sequences (they need the logits); others sample in the runner. */
  readonly sampler: Sampler | undefined;
  readonly stopper: StopMatcher;
  readonly decoder: { push(id: number): string; flush(): string };
  slot?: Slot;
  /** Micro-batch group: sequences of one group share a forward step; groups overlap in a pipeline. */
  group: number;
  /** True while a forward step of this sequence runs (its slot may not be reused until it ends). */
  inFlight: boolean;
  /** The runner holds sampling state for this sequence. */
  registered: boolean;
  /** Runner epoch when the sequence got its slot; its KV is gone once the epoch changes. */
  epoch: number;
  /** Its KV is gone (the runner was rebuilt): it must resume before its next step. */
  lost: boolean;
  /** Times it resumed or tried to; bounded, so a runner that keeps failing ends it. */
  resumes: number;
  /** The chunks its positions were first read in, to read them the same way after a resume. */
  readonly reads: ReadLog;
  /** The seed its sampler runs with, fixed here so that a resumed sampler continues the same stream. */
  readonly seed: number;
  /** Prompt + generated tokens. */
  history: number[];
  /** Positions already in the KV cache. */
  nPast: number;
  cachedTokens: number;
  generated: number[];
  text: string;
  /** Masked copy of the logits, for constrained sequences. */
  masked?: Float32Array;
  /** Logprobs of prompt tokens 1..n-1 as their rows come (promptLogprobs), and whether they were told. */
  promptLogprobs?: (StepLogprobs | undefined)[];
  promptTold?: boolean;
  tStart: number;
  tFirstToken: number;
  finished: boolean;
  cancelled: boolean;
  /** Draft length (speculative decoding), when the sequence drafts. */
  readonly pacer: DraftPacer | undefined;
  draftTokens: number;
  acceptedDraftTokens: number;
}

/** A sequence the engine holds, as status pages show it. */
export interface HeldSequence {
  readonly id: number;
  /** Waiting for a slot. */
  readonly queued: boolean;
  readonly promptTokens: number;
  /** Tokens generated so far. */
  readonly generated: number;
  readonly maxTokens: number;
  /** When it was submitted (performance.now()). */
  readonly tStart: number;
  /** When its first token came (performance.now()); 0 before. */
  readonly tFirstToken: number;
}

/** Times one sequence may resume (or wait to) before it fails: a runner that keeps breaking ends it. */
const MAX_RESUMES = 20;
/** Pause before trying again to resume sequences on a runner that is not ready yet. */
const RESUME_RETRY_MS = 100;

/** Engine options. */
export interface EngineOptions {
  /** Requests waiting for a slot beyond which submit() refuses (server answers 429). */
  readonly maxQueue?: number;
  /** Keep prefixes of overwritten slots within this many bytes (0 = only what the slots hold). */
  readonly promptCache?: PrefixCacheOptions;
  /**
   * A resumed sequence reads its tokens again in the chunks it first read them in (bit for bit the
   * same KV, so the same greedy tokens) when that takes at most this many steps (default 256);
   * past that it reads them in the biggest chunks a step takes, so a long generation pauses for
   * about one prompt read rather than for as many steps as it generated tokens.
   */
  readonly exactReplaySteps?: number;
  /** The model makes embeddings only (an encoder): generate() refuses with this reason (BAD_ARGUMENT). */
  readonly refuseGeneration?: string;
  /**
   * Speculative decoding: where drafts come from and the most draft tokens a step checks per
   * sequence. Draft lengths follow the measured cost of steps unless `unpaced` (then they follow
   * acceptance alone: runs that must draft whatever the machine's timing, as tests).
   */
  readonly speculation?: { readonly source: DraftSource; readonly maxDraft: number; readonly unpaced?: boolean };
}

/** The tokens of one sequence in a step, and the draft among them with its first output (speculative decoding). */
interface StepPart {
  readonly seq: Sequence;
  readonly n: number;
  readonly draft?: { readonly tokens: readonly number[]; readonly firstOutput: number };
}

/** Schedules generation requests over a ForwardRunner. */
export class Engine {
  private readonly slots: Slot[];
  private readonly queue: Sequence[] = [];
  private readonly active: Sequence[] = [];
  private running = false;
  private closed = false;
  private clock = 0;
  private nextSeqId = 1;
  private readonly busyGroups = new Set<number>();
  readonly maxQueue: number;
  private readonly exactReplaySteps: number;
  private readonly refusal: string | undefined;
  /** Saved prefixes beyond the slots, when configured. */
  readonly prefixCache: PrefixCache | undefined;
  /** Counters for metrics. */
  readonly stats = { promptTokens: 0, cachedTokens: 0, generatedTokens: 0, steps: 0, draftTokens: 0, acceptedDraftTokens: 0 };
  /** Speculative decoding, when configured. */
  readonly speculation: EngineOptions['speculation'];
  /** What steps cost by size, measured: speculative decoding drafts only where it pays. */
  private readonly stepCosts = new StepCosts();

  constructor(
    readonly runner: ForwardRunner,
    readonly tokenizer: EngineTokenizer,
    options: EngineOptions = {},
  ) {
    this.slots = Array.from({ length: runner.slots }, (_, id) => ({ id, cached: [], busy: false, lastUsed: 0 }));
    this.maxQueue = options.maxQueue ?? 64;
    this.exactReplaySteps = options.exactReplaySteps ?? 256;
    this.refusal = options.refuseGeneration;
    this.speculation = options.speculation && options.speculation.maxDraft > 0 ? options.speculation : undefined;
    this.prefixCache =
      options.promptCache && options.promptCache.budgetBytes > 0 ? new PrefixCache(runner, options.promptCache) : undefined;
  }

  /** Requests waiting for a slot. */
  get queued(): number {
    return this.queue.length;
  }

  /** Sequences holding a slot. */
  get activeCount(): number {
    return this.active.length;
  }

  /** The sequences not finished yet, waiting or holding a slot, oldest first (a copy: for status pages). */
  heldSequences(): HeldSequence[] {
    const view = (s: Sequence, queued: boolean): HeldSequence => ({
      id: s.id,
      queued,
      promptTokens: s.req.prompt.length,
      generated: s.generated.length,
      maxTokens: s.req.maxTokens,
      tStart: s.tStart,
      tFirstToken: s.tFirstToken,
    });
    return [
      ...this.active.filter((s) => !s.finished).map((s) => view(s, false)),
      ...this.queue.filter((s) => !s.finished).map((s) => view(s, true)),
    ].sort((a, b) => a.id - b.id);
  }

  /** Each slot: whether a sequence holds it, and how many tokens of KV it keeps. */
  slotStates(): { id: number; busy: boolean; cached: number }[] {
    return this.slots.map((s) => ({ id: s.id, busy: s.busy, cached: s.cached.length }));
  }

  /**
   * Starts a generation and returns its event stream. Throws CONTEXT_FULL when the prompt cannot
   * fit a slot, QUEUE_FULL when too many requests wait, BAD_ARGUMENT for an empty or invalid prompt.
   */
  generate(req: GenerateRequest): AsyncIterable<GenerationEvent> {
    if (this.closed) throw new CairnError('SHUTTING_DOWN', 'the engine is shutting down');
    if (this.refusal) throw new CairnError('BAD_ARGUMENT', this.refusal);
    if (req.prompt.length === 0) throw new CairnError('BAD_ARGUMENT', 'the prompt is empty: give at least one token');
    if (req.prompt.length >= this.runner.ctxPerSlot) {
      throw new CairnError(
        'CONTEXT_FULL',
        `the prompt has ${req.prompt.length} tokens but the context holds ${this.runner.ctxPerSlot}; shorten it or raise --ctx`,
      );
    }
    const freeSlots = this.slots.reduce((n, s) => n + (s.busy ? 0 : 1), 0);
    if (this.queue.length >= freeSlots + this.maxQueue)
      throw new CairnError('QUEUE_FULL', `every slot is busy and the queue is full (${this.maxQueue} waiting)`);
    for (const id of req.prompt) {
      if (!(Number.isInteger(id) && id >= 0 && id < this.runner.nVocab)) {
        throw new CairnError('BAD_ARGUMENT', `prompt token ${id} is outside the vocabulary`);
      }
    }
    const draftLimit = this.draftLimit(req);
    const seq: Sequence = {
      id: this.nextSeqId++,
      req,
      out: new AsyncQueue(),
      sampler: req.constraint ? new Sampler(req.sampler) : undefined,
      group: 0,
      inFlight: false,
      registered: false,
      epoch: 0,
      lost: false,
      resumes: 0,
      reads: new ReadLog(),
      seed: req.sampler?.seed === undefined || req.sampler.seed === -1 ? randomSeed() : req.sampler.seed,
      stopper: new StopMatcher(req.stop ?? []),
      decoder: this.tokenizer.streamDecoder(),
      history: [...req.prompt],
      nPast: 0,
      cachedTokens: 0,
      generated: [],
      text: '',
      tStart: performance.now(),
      tFirstToken: 0,
      finished: false,
      cancelled: false,
      pacer: draftLimit > 0 ? new DraftPacer(draftLimit) : undefined,
      draftTokens: 0,
      acceptedDraftTokens: 0,
    };
    if (req.prompt.length === 1 && req.prompt[0] === this.tokenizer.bosId) seq.decoder.push(req.prompt[0]);
    if (req.signal?.aborted) {
      this.finish(seq, 'abort');
    } else {
      req.signal?.addEventListener('abort', () => (seq.cancelled = true), { once: true });
      this.queue.push(seq);
      void this.loop();
    }
    const iterator = seq.out[Symbol.asyncIterator]();
    return {
      [Symbol.asyncIterator]: () => ({
        next: () => iterator.next(),
        // A consumer that stops early (break, disconnect) cancels the sequence and frees its slot.
        return: async () => {
          seq.cancelled = true;
          void this.loop();
          return { value: undefined, done: true };
        },
      }),
    };
  }

  /** Most draft tokens per step for a request: the engine's, lowered by the request's; 0 = none. */
  private draftLimit(req: GenerateRequest): number {
    const max = this.speculation?.maxDraft ?? 0;
    // A constrained request is sampled here from masked logits, which drafts do not go through.
    if (max <= 0 || req.constraint) return 0;
    const asked = req.maxDraft;
    return asked === undefined ? max : Math.max(0, Math.min(max, Math.floor(asked)));
  }

  /** Ends every queued and running generation with an error event and refuses new ones. */
  shutdown(reason = 'the server is shutting down'): void {
    this.closed = true;
    for (const s of [...this.active, ...this.queue]) this.finish(s, 'error', new CairnError('SHUTTING_DOWN', reason));
  }

  /**
   * The scheduler: admits waiting requests into free slots and keeps up to pipelineDepth forward
   * steps in flight, one per micro-batch group, so pipeline stages work on different groups at
   * once. With a depth of 1 it is the plain continuous-batching loop.
   */
  private async loop(): Promise<void> {
    if (this.running) return;
    this.running = true;
    const inFlight = new Set<Promise<void>>();
    try {
      while (this.queue.length > 0 || this.active.length > 0) {
        this.reapCancelled();
        if (this.runner.settle && (this.queue.length > 0 || this.active.some((s) => this.mustResume(s)))) await this.runner.settle();
        this.checkEpoch();
        await this.resumeLost();
        await this.admit();
        for (let g = 0; g < this.runner.pipelineDepth; g++) {
          if (this.busyGroups.has(g) || !this.active.some((s) => s.group === g && this.canStep(s))) continue;
          this.busyGroups.add(g);
          const p: Promise<void> = this.step(g).finally(() => {
            this.busyGroups.delete(g);
            inFlight.delete(p);
          });
          inFlight.add(p);
        }
        if (inFlight.size === 0) {
          // Nothing can run: done, unless requests wait for the runner to be rebuilt.
          if (this.queue.length === 0 && !this.active.some((s) => this.mustResume(s))) break;
          await new Promise((r) => setTimeout(r, RESUME_RETRY_MS));
          continue;
        }
        await Promise.race(inFlight);
        await yieldToEventLoop();
      }
      await Promise.all(inFlight);
    } catch (err) {
      // Whatever a runner returns or throws ends the requests here, never the process.
      const error = new CairnError('CLUSTER_REMOTE', `generation failed: ${(err as Error)?.message ?? String(err)}`);
      for (const s of [...this.active, ...this.queue]) this.finish(s, 'error', error);
    } finally {
      this.running = false;
    }
  }

  /** A sequence whose KV went with a rebuilt runner. */
  private mustResume(s: Sequence): boolean {
    return !s.finished && !s.inFlight && (s.lost || s.epoch !== this.runner.epoch);
  }

  private canStep(s: Sequence): boolean {
    return !s.finished && !s.lost && s.epoch === this.runner.epoch;
  }

  private reapCancelled(): void {
    for (const s of [...this.active, ...this.queue]) if (s.cancelled && !s.finished) this.finish(s, 'abort');
  }

  private seenEpoch = 0;

  /** After the runner rebuilt its caches, nothing cached is valid and running sequences lost their KV. */
  private checkEpoch(): void {
    const epoch = this.runner.epoch;
    if (epoch === this.seenEpoch) return;
    this.seenEpoch = epoch;
    for (const s of this.slots) s.cached = [];
    this.prefixCache?.clear();
    for (const s of this.active) if (s.epoch !== epoch) s.lost = true;
  }

  /**
   * Puts sequences whose KV is gone back on the runner: same slot, nothing cached, the sampler
   * registered again with the tokens so far and the draws already made. Their next steps read the
   * prompt and the generated tokens again, then decoding goes on.
   */
  private async resumeLost(): Promise<void> {
    for (const seq of [...this.active]) {
      if (!this.mustResume(seq)) continue;
      if (seq.cancelled) {
        this.finish(seq, 'abort');
        continue;
      }
      if (++seq.resumes > MAX_RESUMES) {
        this.finish(
          seq,
          'error',
          new CairnError('CLUSTER_CLOSED', `the model's runner was rebuilt ${MAX_RESUMES} times while this request ran; giving up`),
        );
        continue;
      }
      seq.lost = true;
      seq.nPast = 0;
      seq.reads.rewind(seq.reads.steps <= this.exactReplaySteps);
      seq.epoch = this.runner.epoch;
      // Same group where the new plan still has it: steps then hold the same sequences as before.
      if (seq.group >= this.runner.pipelineDepth) seq.group = this.leastLoadedGroup(seq);
      seq.slot!.cached = [];
      if (seq.sampler) {
        seq.lost = false;
        continue;
      }
      try {
        await this.runner.startSequence(seq.id, this.samplingSpec(seq));
        seq.registered = true;
        seq.lost = false;
      } catch (err) {
        // Interrupted again: the next round waits for the runner once more.
        if (!(err instanceof RunnerInterrupted)) this.finish(seq, 'error', err as Error);
      }
    }
  }

  /** How the runner samples for a sequence: its options with the fixed seed, its tokens so far, draws made. */
  private samplingSpec(seq: Sequence): SequenceSpec {
    return {
      sampler: { ...seq.req.sampler, seed: seq.seed },
      logprobs: seq.req.logprobs,
      history: [...seq.history],
      drawn: seq.generated.length,
    };
  }

  /** Gives free slots to waiting requests, reusing the longest cached prefix (slot or saved). */
  private async admit(): Promise<void> {
    while (this.queue.length > 0) {
      const free = this.slots.filter((s) => !s.busy);
      if (free.length === 0) return;
      const seq = this.queue.shift()!;
      try {
        await this.admitOne(seq, free);
        this.active.push(seq);
      } catch (err) {
        if (seq.slot) {
          seq.slot.busy = false;
          seq.slot.cached = [];
          seq.slot = undefined;
        }
        if (err instanceof RunnerInterrupted && !seq.cancelled && ++seq.resumes <= MAX_RESUMES) {
          // The runner is being rebuilt: the request waits for it at the head of the queue.
          this.queue.unshift(seq);
          return;
        }
        // The runner failed for good (the cluster cannot run the model): this request fails, the engine goes on.
        this.finish(seq, 'error', err as Error);
      }
    }
  }

  /** Picks a slot for a sequence, fills it with the longest cached prefix, registers its sampler. */
  private async admitOne(seq: Sequence, free: Slot[]): Promise<void> {
    const prompt = seq.req.prompt;
    let best: Slot | undefined;
    let bestLen = 0;
    for (const s of this.slots) {
      const n = commonPrefix(s.cached, prompt);
      if (n > bestLen || (n === bestLen && best && !s.busy && best.busy)) {
        best = s;
        bestLen = n;
      }
    }
    const stored = this.prefixCache?.best(prompt);
    // At least the last prompt token must run to produce logits; for prompt logprobs, every one.
    const limit = seq.req.promptLogprobs !== undefined ? 0 : prompt.length - 1;
    let slot: Slot;
    let reuse: number;
    if (
      stored &&
      stored.length > bestLen &&
      Math.min(stored.length, limit) > 0 &&
      (await this.tryLoadStored(stored.key, (slot = this.leastRecentlyUsed(free)), prompt))
    ) {
      reuse = Math.min(stored.length, limit);
    } else if (best && !best.busy && Math.min(bestLen, limit) > 0) {
      slot = best;
      reuse = Math.min(bestLen, limit);
      await this.saveBeforeOverwrite(slot, prompt);
    } else {
      slot = this.leastRecentlyUsed(free);
      reuse = best ? Math.min(bestLen, limit) : 0;
      await this.saveBeforeOverwrite(slot, prompt);
      if (best && reuse > 0) await this.runner.copySlotPrefix(best.id, slot.id, reuse);
    }
    slot.busy = true;
    slot.lastUsed = ++this.clock;
    slot.cached = prompt.slice(0, reuse);
    seq.slot = slot;
    seq.group = this.leastLoadedGroup(seq);
    seq.epoch = this.runner.epoch;
    if (!seq.sampler) {
      await this.runner.startSequence(seq.id, this.samplingSpec(seq));
      seq.registered = true;
    }
    seq.nPast = reuse;
    seq.cachedTokens = reuse;
    // A prefix from the cache was read elsewhere; a resume reads it in the biggest chunks a step takes.
    for (let done = 0; done < reuse; done += this.runner.maxBatch) seq.reads.record(Math.min(this.runner.maxBatch, reuse - done));
    this.stats.promptTokens += prompt.length;
    this.stats.cachedTokens += reuse;
  }

  /** Copies a saved prefix into a slot; a prefix that cannot be read (damaged file, other layout) is dropped. */
  private async tryLoadStored(key: number, slot: Slot, prompt: readonly number[]): Promise<boolean> {
    try {
      await this.saveBeforeOverwrite(slot, prompt, key);
      await this.prefixCache!.load(key, slot.id);
      return true;
    } catch {
      await this.prefixCache!.forget(key);
      slot.cached = [];
      return false;
    }
  }

  /** The micro-batch group with the fewest other sequences (the depth may have changed with a new plan). */
  private leastLoadedGroup(seq: Sequence): number {
    const counts = new Array<number>(Math.max(1, this.runner.pipelineDepth)).fill(0);
    for (const s of this.active) if (s !== seq && s.group < counts.length) counts[s.group]++;
    return counts.indexOf(Math.min(...counts));
  }

  private leastRecentlyUsed(free: Slot[]): Slot {
    return free.reduce((a, b) => (b.lastUsed < a.lastUsed ? b : a));
  }

  /** Before a slot's positions past the shared prefix are overwritten, keep its old prefix aside. */
  private async saveBeforeOverwrite(slot: Slot, prompt: readonly number[], loading?: number): Promise<void> {
    const cache = this.prefixCache;
    if (!cache || slot.cached.length - commonPrefix(slot.cached, prompt) < cache.minTokens) return;
    // The entry about to be loaded into the slot must survive making room for the slot's own.
    await cache.save(slot.id, slot.cached, loading);
  }

  /** Saves what the slots hold and writes the prompt cache to its directory (on shutdown). */
  async persistPromptCache(): Promise<number> {
    const cache = this.prefixCache;
    // Without a directory there is nowhere to keep them: copying the slots aside would only hold
    // up the shutdown (seconds, and gigabytes of fresh memory, for long contexts).
    if (!cache?.persistent) return 0;
    for (const s of this.slots) if (!s.busy) await cache.save(s.id, s.cached);
    return cache.persist();
  }

  /** One batched forward step over the active sequences of a group. */
  private async step(group: number): Promise<void> {
    const budget = this.runner.maxBatch;
    const tokens: number[] = [];
    const spans: { slot: number; pos0: number; start: number; n: number }[] = [];
    // `scores`: the row gives the logprob of prompt token `scores` (promptLogprobs).
    // `draft`: the draft token the next row reads (speculative decoding).
    const outputs: { seq: Sequence; row: number; scores?: number; draft?: number }[] = [];
    const inStep: StepPart[] = [];
    const mine = this.active.filter((s) => s.group === group && this.canStep(s));
    // Decoding sequences first (one token each, with their drafts), then prompt chunks with what is left.
    const ordered = [...mine.filter((s) => s.nPast >= s.req.prompt.length), ...mine.filter((s) => s.nPast < s.req.prompt.length)];
    const drafts = await this.draftsFor(ordered);
    let scoreBudget = this.scoreRows;
    for (const seq of ordered) {
      const room = budget - tokens.length;
      if (room <= 0) break;
      const draft = drafts?.get(seq)?.slice(0, room - 1);
      if (draft && draft.length > 0 && !seq.finished) {
        // The pending token and the draft after it, every row sampled (runner.ts, OutputRequest.draft).
        const start = tokens.length;
        tokens.push(seq.history[seq.nPast], ...draft);
        spans.push({ slot: seq.slot!.id, pos0: seq.nPast, start, n: 1 + draft.length });
        inStep.push({ seq, n: 1 + draft.length, draft: { tokens: draft, firstOutput: outputs.length } });
        seq.inFlight = true;
        for (let i = 0; i <= draft.length; i++) outputs.push({ seq, row: start + i, draft: draft[i] });
        continue;
      }
      const scoring = seq.req.promptLogprobs !== undefined && seq.nPast < seq.req.prompt.length - 1;
      // Prompts scored side by side share one step's rows of logits (a cluster carries them back).
      if (scoring && scoreBudget === 0) continue;
      const n = this.chunkFor(seq, scoring ? Math.min(room, scoreBudget) : room);
      if (n === 0) continue;
      if (scoring) scoreBudget -= Math.min(n, seq.req.prompt.length - 1 - seq.nPast);
      const start = tokens.length;
      for (let i = 0; i < n; i++) tokens.push(seq.history[seq.nPast + i]);
      spans.push({ slot: seq.slot!.id, pos0: seq.nPast, start, n });
      inStep.push({ seq, n });
      seq.inFlight = true;
      if (scoring) {
        for (let i = 0; i < n && seq.nPast + i + 1 < seq.req.prompt.length; i++)
          outputs.push({ seq, row: start + i, scores: seq.nPast + i + 1 });
      }
      if (seq.nPast + n === seq.history.length) outputs.push({ seq, row: start + n - 1 });
    }
    if (inStep.length === 0) return;
    this.stats.steps++;
    let result: ForwardResult;
    try {
      const modes = outputs.map((o) =>
        o.seq.sampler || o.scores !== undefined
          ? { mode: 'logits' as const, logprobs: undefined }
          : { mode: 'sample' as const, logprobs: o.seq.req.logprobs, seq: o.seq.id, draft: o.draft },
      );
      const t0 = performance.now();
      result = await this.runner.forward({
        nTokens: tokens.length,
        tokens: Int32Array.from(tokens),
        spans,
        outputs: outputs.map((o, j) => ({ row: o.row, seq: o.seq.id, mode: modes[j].mode, draft: o.draft })),
      });
      if (this.speculation) this.stepCosts.record(tokens.length, performance.now() - t0);
      const bad = checkForwardResult(result, modes, this.runner.nVocab);
      if (bad) throw new CairnError('CLUSTER_PROTOCOL', `the model's runner returned a malformed step result: ${bad}`);
    } catch (err) {
      const interrupted = err instanceof RunnerInterrupted;
      for (const { seq } of inStep) {
        seq.inFlight = false;
        // A runner being rebuilt costs the sequence nothing: it resumes on the new one.
        if (interrupted && !seq.finished) seq.lost = true;
        else if (seq.finished) this.release(seq);
        else this.finish(seq, 'error', err as Error);
      }
      return;
    }
    for (const part of inStep) {
      const { seq } = part;
      seq.inFlight = false;
      if (part.draft) {
        // The KV of the pending token and of the draft tokens the model agreed with (the leading
        // ones its rows sampled) is kept; the rows of the rest are left past nPast, where the next
        // step writes over them.
        const { tokens: draft, firstOutput } = part.draft;
        let kept = 0;
        while (kept < draft.length && result.tokens[firstOutput + kept] === draft[kept]) kept++;
        seq.reads.record(1 + kept);
        if (seq.slot) seq.slot.cached.push(seq.history[seq.nPast], ...draft.slice(0, kept));
        seq.nPast += 1 + kept;
        seq.draftTokens += draft.length;
        seq.acceptedDraftTokens += kept;
        this.stats.draftTokens += draft.length;
        this.stats.acceptedDraftTokens += kept;
        seq.pacer?.record(draft.length, kept);
      } else {
        if (seq.slot) seq.slot.cached.push(...seq.history.slice(seq.nPast, seq.nPast + part.n));
        seq.nPast += part.n;
      }
      // A sequence finished while its step ran releases its slot now.
      if (seq.finished) this.release(seq);
    }
    const V = this.runner.nVocab;
    let k = 0;
    outputs.forEach(({ seq, scores }, j) => {
      try {
        if (scores !== undefined) {
          const row = result.logits.subarray(k * V, (k + 1) * V);
          k++;
          if (!seq.finished) this.scorePrompt(seq, scores, row);
          return;
        }
        if (seq.req.promptLogprobs !== undefined && !seq.promptTold && !seq.finished) this.tellPromptLogprobs(seq);
        if (seq.sampler) {
          const row = result.logits.subarray(k * V, (k + 1) * V);
          k++;
          if (!seq.finished) this.acceptLogits(seq, row);
        } else if (!seq.finished && result.tokens[j] !== -1) {
          // -1: a row after a rejected draft token, not sampled.
          this.accept(seq, result.tokens[j], result.logprobs[j]);
        }
      } catch (err) {
        this.finish(seq, 'error', err as Error);
      }
    });
  }

  /**
   * Drafts for the decoding sequences of a step that may speculate now: one pending token, not
   * replaying a resume, with room left in their length and context. Undefined without speculation.
   */
  private async draftsFor(seqs: readonly Sequence[]): Promise<Map<Sequence, number[]> | undefined> {
    const spec = this.speculation;
    if (!spec) return undefined;
    const asking: { seq: Sequence; max: number }[] = [];
    // Tokens the step holds so far: one per decoding sequence, and the drafts given out.
    let base = seqs.filter((s) => s.nPast >= s.req.prompt.length).length;
    for (const seq of seqs) {
      if (!seq.pacer || seq.finished || seq.cancelled || seq.generated.length === 0) continue;
      if (seq.nPast !== seq.history.length - 1 || seq.nPast < seq.reads.length) continue;
      // Each kept draft token is one more generated token and one more position.
      const max = Math.min(seq.req.maxTokens - seq.generated.length - 1, this.runner.ctxPerSlot - 1 - seq.nPast, this.runner.maxBatch - 1);
      if (max <= 0) continue;
      const want = Math.min(seq.pacer.next(spec.unpaced ? undefined : this.stepCosts, Math.max(1, base)), max);
      if (want > 0) {
        asking.push({ seq, max: want });
        base += want;
      }
    }
    if (asking.length === 0) return undefined;
    const proposed = await spec.source.propose(asking.map(({ seq, max }) => ({ seq: seq.id, history: seq.history, max })));
    const drafts = new Map<Sequence, number[]>();
    asking.forEach(({ seq, max }, i) => {
      // A source's draft is checked like any input: only token ids of the model, at most `max`.
      const d = Array.isArray(proposed[i]) ? proposed[i].slice(0, max) : [];
      if (d.length > 0 && d.every((t) => Number.isInteger(t) && t >= 0 && t < this.runner.nVocab)) drafts.set(seq, d);
    });
    return drafts;
  }

  /**
   * How many of a sequence's pending tokens go into a step with `room` left: positions read before
   * (a resumed sequence) in the chunks they were first read in, new ones as many as fit (logged).
   */
  private chunkFor(seq: Sequence, room: number): number {
    const log = seq.reads;
    if (seq.nPast < log.length) {
      const chunk = log.chunkAt(seq.nPast);
      if (chunk === undefined) return Math.min(log.length - seq.nPast, room);
      // A chunk is never split (that would round differently); it waits for a step with room.
      if (chunk > room && room < this.runner.maxBatch) return 0;
      log.advance();
      return Math.min(chunk, room);
    }
    const n = Math.min(seq.history.length - seq.nPast, room);
    log.record(n);
    return n;
  }

  /**
   * Rows of prompt logprobs one step outputs at most: each is a whole vocabulary of logits to carry
   * back (over the network, in a cluster), so a scored prompt is read in chunks of about 16 MiB of them.
   */
  private get scoreRows(): number {
    return scoreRowsFor(this.runner.nVocab);
  }

  /** Keeps the logprob of prompt token `at` (a resumed sequence reads its rows again: the first is kept). */
  private scorePrompt(seq: Sequence, at: number, logits: Float32Array): void {
    const lps = (seq.promptLogprobs ??= new Array<StepLogprobs | undefined>(seq.req.prompt.length - 1));
    lps[at - 1] ??= stepLogprobs(logits, seq.req.prompt[at], seq.req.promptLogprobs!);
  }

  /** Tells the prompt's logprobs, once all its rows came, before the first generated token. */
  private tellPromptLogprobs(seq: Sequence): void {
    seq.promptTold = true;
    const lps = seq.promptLogprobs ?? [];
    const all: StepLogprobs[] = [];
    for (let i = 0; i < seq.req.prompt.length - 1; i++) {
      const lp = lps[i];
      if (!lp) throw new CairnError('CLUSTER_PROTOCOL', `the logprob of prompt token ${i + 1} never came`);
      all.push(lp);
    }
    seq.out.push({ type: 'prompt', text: '', logprobs: all });
  }

  /** Samples a constrained sequence's next token here, from its masked logits. */
  private acceptLogits(seq: Sequence, logits: Float32Array): void {
    if (seq.cancelled) return this.finish(seq, 'abort');
    let id: number;
    try {
      const c = seq.req.constraint!;
      seq.masked ??= new Float32Array(logits.length);
      seq.masked.set(logits);
      c.mask(seq.masked);
      id = seq.sampler!.sample(seq.masked, seq.history);
      if (!this.tokenizer.isEog(id)) c.accept(id);
    } catch (err) {
      return this.finish(seq, 'error', err as Error);
    }
    this.accept(seq, id, seq.req.logprobs !== undefined ? stepLogprobs(logits, id, seq.req.logprobs) : undefined);
  }

  /** Emits a sequence's next token and decides whether it goes on. */
  private accept(seq: Sequence, id: number, lp: StepLogprobs | undefined): void {
    if (seq.cancelled) return this.finish(seq, 'abort');
    if (seq.req.maxTokens <= 0) return this.finish(seq, 'length');
    if (seq.generated.length === 0) seq.tFirstToken = performance.now();
    if (!seq.req.ignoreEos && this.tokenizer.isEog(id)) return this.finish(seq, 'stop');
    seq.generated.push(id);
    seq.history.push(id);
    this.stats.generatedTokens++;
    const r = seq.stopper.push(seq.decoder.push(id));
    seq.text += r.text;
    seq.out.push({ type: 'token', id, text: r.text, logprobs: lp });
    if (r.stopped || seq.req.constraint?.complete) return this.finish(seq, 'stop');
    if (seq.generated.length >= seq.req.maxTokens) return this.finish(seq, 'length');
    if (seq.history.length >= this.runner.ctxPerSlot) return this.finish(seq, 'length');
  }

  /** Gives a finished sequence's slot back and drops its runner-side sampler. */
  private release(seq: Sequence): void {
    if (seq.slot) {
      seq.slot.busy = false;
      // The slot's KV covers exactly the tokens that went through a forward pass.
      seq.slot.cached.length = Math.min(seq.slot.cached.length, seq.nPast);
      seq.slot = undefined;
    }
    if (seq.pacer) this.speculation?.source.forget(seq.id);
    if (seq.registered) {
      seq.registered = false;
      // Forgetting a sampler is best effort: a runner that fails at it (a node gone) loses nothing.
      void (async () => this.runner.endSequence(seq.id))().catch(() => {});
    }
  }

  private finish(seq: Sequence, reason: FinishReason, error?: Error): void {
    if (seq.finished) return;
    seq.finished = true;
    if (reason !== 'stop' || !seq.stopper.stopped) {
      // Release text held back for a possible stop string (or by the UTF-8 decoder).
      const tail = seq.stopper.push(seq.decoder.flush());
      const rest = tail.stopped ? tail.text : tail.text + seq.stopper.flush();
      if (rest) {
        seq.text += rest;
        seq.out.push({ type: 'text', text: rest });
      }
    }
    const i = this.active.indexOf(seq);
    if (i >= 0) this.active.splice(i, 1);
    const q = this.queue.indexOf(seq);
    if (q >= 0) this.queue.splice(q, 1);
    if (!seq.inFlight) this.release(seq);
    const end = performance.now();
    const first = seq.tFirstToken || end;
    seq.out.push({
      type: 'done',
      summary: {
        finishReason: reason,
        error,
        promptTokens: seq.req.prompt.length,
        cachedTokens: seq.cachedTokens,
        completionTokens: seq.generated.length,
        tokens: seq.generated,
        text: seq.text,
        stop: seq.stopper.stop,
        prefillMs: first - seq.tStart,
        decodeMs: end - first,
        draftTokens: seq.draftTokens,
        acceptedDraftTokens: seq.acceptedDraftTokens,
      },
    });
    seq.out.close();
  }
}
