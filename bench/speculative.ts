/**
 * Speculative decoding against plain decoding on one model, in alternating rounds (the machine's
 * state moves between runs): tokens per second of the generation, draft tokens kept of those
 * checked, and whether the tokens were the same (they must be).
 *
 *   node dist/bench/speculative.js MODEL [--draft-model FILE] [--draft-max 8] [--tokens 128]
 *        [--rounds 3] [--temperature 0] [--prompt TEXT | --repeat-prompt | --copy-prompt N] [--threads N] [--unpaced]
 *
 * --repeat-prompt gives a prompt whose continuation repeats text in it (a story told once and
 * begun again), the case of an edit or a summary that quotes its input.
 *
 * --copy-prompt N, for a copy model (`cairn bench --make-model llama-1b --copy-period P`, weights
 * that repeat the context every P tokens): P random tokens, then their first N again; the model goes
 * on repeating them, text that quotes its input with no oracle in the loop.
 *
 * --oracle-acceptance P drafts from the plain run's own tokens, each draft token made wrong with
 * chance 1 - P: the speed of checking drafts on this machine at a chosen acceptance, for a model
 * (random weights) whose text nothing could predict. P = 0 is the case of drafts always rejected.
 */
import { flag } from './args.js';
import { loadModel, type LoadedModel } from '../src/engine/load.js';
import type { GenerationSummary } from '../src/engine/engine.js';
import type { DraftRequest, DraftSource } from '../src/engine/draft-source.js';
import { Xoshiro128 } from '../src/sampling/index.js';
import { Metadata } from '../src/gguf/metadata.js';
import { COPY_PERIOD_KEY, copyPrompt } from '../src/model/families/copy-decoder.js';

const args = process.argv.slice(2);
const path = args[0];
if (!path || path.startsWith('--')) {
  process.stderr.write('usage: node dist/bench/speculative.js MODEL [--draft-model FILE] [--draft-max 8] [--tokens 128] [--rounds 3] [--temperature 0] [--prompt TEXT | --repeat-prompt | --copy-prompt N]\n');
  process.exit(2);
}
const tokens = Number(flag(args, '--tokens', '128'));
const rounds = Number(flag(args, '--rounds', '3'));
const temperature = Number(flag(args, '--temperature', '0'));
const threads = flag(args, '--threads') ? Number(flag(args, '--threads')) : undefined;
const maxDraft = Number(flag(args, '--draft-max', '8'));
const STORY =
  'Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends. One day, she saw a big, red ball under a tree. She ran to the ball and picked it up. Her friend Tom came and said, "Can I play with the ball too?" Lily said, "Yes, let us play together!" They played all day and had lots of fun.';
const prompt = args.includes('--repeat-prompt') ? `${STORY}\n\n${STORY.slice(0, 60)}` : (flag(args, '--prompt', 'Once upon a time') as string);
const ctx = 2048;

/** Drafts from known right tokens, each made wrong with chance 1 - acceptance. */
class OracleDrafts implements DraftSource {
  readonly name: string;
  truth: readonly number[] = [];
  private readonly rng = new Xoshiro128(5);
  constructor(
    private readonly acceptance: number,
    private readonly promptLength: number,
    private readonly nVocab: number,
  ) {
    this.name = `oracle drafts (acceptance ${acceptance})`;
  }
  propose(requests: readonly DraftRequest[]): number[][] {
    return requests.map((r) => {
      const at = r.history.length - this.promptLength;
      return this.truth.slice(at, at + r.max).map((t) => (this.rng.nextFloat() < this.acceptance ? t : (t + 1) % this.nVocab));
    });
  }
  forget(): void {}
}

const plain = await loadModel(path, { ctx, threads, progress: false, speculation: { maxDraft: 0 } });
const copyBegun = flag(args, '--copy-prompt');
const ids = copyBegun === undefined ? plain.tokenizer.encode(prompt, { addSpecial: true, parseSpecial: false }) : copyModelPrompt(Number(copyBegun));

/** The prompt of a copy model: its period's worth of tokens, then the first `begun` of them again. */
function copyModelPrompt(begun: number): number[] {
  const period = new Metadata(plain.file).number(COPY_PERIOD_KEY);
  if (period === undefined) throw new Error(`${path} is not a copy model (no ${COPY_PERIOD_KEY}): write one with cairn bench --make-model SHAPE --copy-period N`);
  return copyPrompt(period, plain.config.nVocab, begun, 0).prompt;
}
const oracleAt = flag(args, '--oracle-acceptance');
const oracle = oracleAt === undefined ? undefined : new OracleDrafts(Number(oracleAt), ids.length, plain.config.nVocab);
const spec = await loadModel(path, {
  ctx,
  threads,
  progress: false,
  speculation: { maxDraft, draftModel: flag(args, '--draft-model'), unpaced: args.includes('--unpaced'), source: oracle },
});

async function run(m: LoadedModel): Promise<GenerationSummary> {
  for await (const ev of m.engine.generate({ prompt: ids, maxTokens: tokens, sampler: { temperature, seed: 7 }, ignoreEos: true })) {
    if (ev.type === 'done') return ev.summary;
  }
  throw new Error('no summary');
}

const rate = (s: GenerationSummary) => (s.completionTokens - 1) / (s.decodeMs / 1000);
const first = await run(plain);
if (oracle) oracle.truth = first.tokens;
await run(spec);
const plainRates: number[] = [];
const specRates: number[] = [];
let same = true;
let kept = 0;
let checked = 0;
for (let r = 0; r < rounds; r++) {
  const a = await run(plain);
  const b = await run(spec);
  plainRates.push(rate(a));
  specRates.push(rate(b));
  same &&= a.tokens.join() === b.tokens.join();
  kept += b.acceptedDraftTokens;
  checked += b.draftTokens;
}
const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[xs.length >> 1];
const p = median(plainRates);
const s = median(specRates);
process.stdout.write(
  `${path.split('/').pop()}: ${ids.length} prompt tokens, ${tokens} generated, temperature ${temperature}, ${spec.engine.speculation?.source.name ?? 'off'} (draft-max ${maxDraft})\n` +
    `plain ${p.toFixed(1)} tok/s, speculative ${s.toFixed(1)} tok/s: ${(s / p).toFixed(2)}x; drafts kept ${kept}/${checked} (${checked ? ((100 * kept) / checked).toFixed(0) : 0}%); same tokens: ${same}\n`,
);
plain.close();
spec.close();
