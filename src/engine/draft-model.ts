/**
 * A draft model as a source of drafts: a small model of the same vocabulary (Qwen2.5-0.5B for
 * Qwen2.5-7B, Llama-3.2-1B for Llama-3.1-8B) guesses the next tokens greedily, in passes that cost
 * a fraction of the big model's. Each sequence keeps a KV slot in the draft model with the tokens it
 * holds; a new request reads only what its slot lacks (after a rejected draft, only the tokens
 * from the first wrong one on), and all sequences asking at once share each forward pass.
 */
import { argmax } from '../sampling/index.js';
import { CairnError } from '../util/errors.js';
import type { DraftRequest, DraftSource } from './draft-source.js';
import { commonPrefix } from './prefix-cache.js';
import type { ForwardRunner, OutputRequest } from './runner.js';

interface Held {
  readonly slot: number;
  /** Tokens whose KV the slot holds, in order. */
  cached: number[];
  lastUsed: number;
}

/** One request being drafted for. */
interface Drafting {
  readonly held: Held;
  readonly history: readonly number[];
  readonly max: number;
  /** Tokens of history + draft the slot holds. */
  nPast: number;
  readonly draft: number[];
}

/** Drafts from a second model run by `runner` (local shards of the draft model). */
export class DraftModel implements DraftSource {
  private readonly held = new Map<number, Held>();
  private clock = 0;

  constructor(
    readonly name: string,
    private readonly runner: ForwardRunner,
  ) {}

  async propose(requests: readonly DraftRequest[]): Promise<number[][]> {
    const work = requests.map((r) => this.start(r));
    // Read what each slot lacks of its history; the last history token's row gives the first guess.
    let reading = work.filter((w) => w.max > 0);
    while (reading.length > 0) {
      reading = await this.pass(reading, (w) => w.history.length - w.nPast);
    }
    // Then one token per pass: each guess is read to make the next.
    let guessing = work.filter((w) => w.draft.length > 0 && w.draft.length < w.max);
    while (guessing.length > 0) {
      await this.pass(guessing, () => 1);
      guessing = guessing.filter((w) => w.draft.length < w.max);
    }
    return work.map((w) => w.draft);
  }

  forget(seq: number): void {
    this.held.delete(seq);
  }

  /** The slot of a request's sequence (a new one, or the least recently used when all are taken). */
  private start(r: DraftRequest): Drafting {
    let held = this.held.get(r.seq);
    if (!held) {
      const taken = new Set([...this.held.values()].map((h) => h.slot));
      let slot = 0;
      while (slot < this.runner.slots && taken.has(slot)) slot++;
      if (slot === this.runner.slots) {
        const [oldest, h] = [...this.held.entries()].reduce((a, b) => (b[1].lastUsed < a[1].lastUsed ? b : a));
        this.held.delete(oldest);
        slot = h.slot;
      }
      held = { slot, cached: [], lastUsed: 0 };
      this.held.set(r.seq, held);
    }
    held.lastUsed = ++this.clock;
    // At least the last history token is read again: its row is the first guess.
    const keep = Math.min(commonPrefix(held.cached, r.history), r.history.length - 1);
    held.cached.length = keep;
    const room = this.runner.ctxPerSlot - r.history.length;
    return { held, history: r.history, max: Math.max(0, Math.min(r.max, room)), nPast: keep, draft: [] };
  }

  /**
   * One forward pass over `take(w)` pending tokens of each request (as many as fit); a request whose
   * pending tokens all went in gets its next guess. Returns those still reading.
   */
  private async pass(work: readonly Drafting[], take: (w: Drafting) => number): Promise<Drafting[]> {
    const tokens: number[] = [];
    const spans: { slot: number; pos0: number; start: number; n: number }[] = [];
    const read: Drafting[] = []; // the request of each span
    const outputs: OutputRequest[] = [];
    const guessed: Drafting[] = [];
    const left: Drafting[] = [];
    for (const w of work) {
      const room = this.runner.maxBatch - tokens.length;
      const want = take(w);
      const n = Math.min(want, room);
      if (n <= 0) {
        left.push(w);
        continue;
      }
      const start = tokens.length;
      for (let i = 0; i < n; i++) tokens.push(this.tokenAt(w, w.nPast + i));
      spans.push({ slot: w.held.slot, pos0: w.nPast, start, n });
      read.push(w);
      if (n === want) {
        outputs.push({ row: start + n - 1, seq: 0, mode: 'logits' });
        guessed.push(w);
      } else {
        left.push(w);
      }
    }
    const result = await this.runner.forward({ nTokens: tokens.length, tokens: Int32Array.from(tokens), spans, outputs });
    const V = this.runner.nVocab;
    if (result.logits.length !== guessed.length * V) throw new CairnError('CLUSTER_PROTOCOL', 'the draft model returned the wrong number of rows');
    spans.forEach((s, i) => {
      const w = read[i];
      for (let t = 0; t < s.n; t++) w.held.cached.push(this.tokenAt(w, w.nPast + t));
      w.nPast += s.n;
    });
    guessed.forEach((w, k) => w.draft.push(argmax(result.logits.subarray(k * V, (k + 1) * V))));
    return left;
  }

  /** Token at a position of a request: its history, then its draft so far. */
  private tokenAt(w: Drafting, pos: number): number {
    return pos < w.history.length ? w.history[pos] : w.draft[pos - w.history.length];
  }
}
