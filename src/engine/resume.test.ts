import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { GgmlType, ggmlRowBytes } from '../gguf/ggml-types.js';
import { createKernels } from '../kernels/index.js';
import { writeSyntheticModel } from '../model/synthetic.js';
import { loadModel, type LoadedModel } from './load.js';
import { Engine, type GenerateRequest, type GenerationSummary } from './engine.js';
import { RunnerInterrupted, type ForwardRequest, type ForwardResult, type ForwardRunner } from './runner.js';
import { SequenceSamplers } from './sequence-samplers.js';
import { scratchDir } from '../../test/helpers/paths.js';

const dir = scratchDir('engine-resume');
mkdirSync(dir, { recursive: true });
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const kernels = createKernels();
const path = join(dir, 'model.gguf');
writeSyntheticModel(
  path,
  { arch: 'llama', nEmbd: 128, nLayer: 2, nHead: 4, nKvHead: 2, nFf: 256, nVocab: 512, quant: GgmlType.Q8_0, seed: 5 },
  (type, src) => {
    const out = new Uint8Array(ggmlRowBytes(type, src.length));
    kernels.quantize(type, src, out, src.length);
    return out;
  },
);

const load = () => loadModel(path, { ctx: 256, slots: 4, maxBatch: 64, progress: false });

/** Requests of different kinds: greedy, seeded sampling, sampling with penalties and logprobs. */
const requests: GenerateRequest[] = [
  { prompt: [1, 300, 301, 302, 303, 304, 305, 306], maxTokens: 40, sampler: { temperature: 0 }, ignoreEos: true },
  { prompt: [1, 17, 18], maxTokens: 40, sampler: { temperature: 0.9, topK: 40, seed: 3 }, ignoreEos: true },
  {
    prompt: [1, 400, 401, 402, 403, 404],
    maxTokens: 40,
    sampler: { temperature: 1.1, repeatPenalty: 1.3, seed: 99 },
    logprobs: 2,
    ignoreEos: true,
  },
];

async function collect(engine: Engine, req: GenerateRequest): Promise<{ summary: GenerationSummary; logprobs: unknown[] }> {
  const logprobs: unknown[] = [];
  for await (const ev of engine.generate(req)) {
    if (ev.type === 'token') logprobs.push(ev.logprobs);
    if (ev.type === 'done') return { summary: ev.summary, logprobs };
  }
  throw new Error('no summary');
}

/**
 * A runner that is rebuilt under the engine, as a cluster that re-plans is: at the steps numbered
 * in `breakAt.steps` (or the sequence starts in `breakAt.starts`) the call is interrupted, calls
 * fail with RunnerInterrupted for a while, and then a fresh model (empty KV caches, new samplers)
 * takes over with a new epoch.
 */
class RebuiltRunner implements ForwardRunner {
  epoch = 1;
  steps = 0;
  starts = 0;
  rebuilds = 0;
  private rebuilding: Promise<void> | undefined;

  constructor(
    private inner: ForwardRunner,
    private readonly next: () => Promise<LoadedModel>,
    private readonly breakAt: { steps?: number[]; starts?: number[] },
  ) {}

  get nVocab() {
    return this.inner.nVocab;
  }
  get maxBatch() {
    return this.inner.maxBatch;
  }
  get slots() {
    return this.inner.slots;
  }
  get ctxPerSlot() {
    return this.inner.ctxPerSlot;
  }
  get pipelineDepth() {
    return 1;
  }

  private check(): void {
    if (this.rebuilding) throw new RunnerInterrupted('rebuilding');
  }

  async settle(): Promise<void> {
    while (this.rebuilding) await this.rebuilding;
  }

  /** Starts a rebuild and returns the error of the call it interrupts. */
  private rebuild(): RunnerInterrupted {
    this.rebuilding = (async () => {
      await new Promise((r) => setTimeout(r, 20));
      this.inner = (await this.next()).engine.runner;
      this.epoch++;
      this.rebuilds++;
      this.rebuilding = undefined;
    })();
    return new RunnerInterrupted('a node left');
  }

  async forward(req: ForwardRequest): Promise<ForwardResult> {
    this.check();
    this.steps++;
    if (this.breakAt.steps?.includes(this.steps)) throw this.rebuild();
    const r = await this.inner.forward(req);
    return { tokens: r.tokens.slice(), logprobs: r.logprobs, logits: r.logits.slice() };
  }

  async startSequence(seq: number, spec: Parameters<ForwardRunner['startSequence']>[1]) {
    this.check();
    this.starts++;
    if (this.breakAt.starts?.includes(this.starts)) throw this.rebuild();
    return this.inner.startSequence(seq, spec);
  }
  async endSequence(seq: number) {
    return this.inner.endSequence(seq);
  }
  async copySlotPrefix(from: number, to: number, n: number) {
    this.check();
    return this.inner.copySlotPrefix(from, to, n);
  }
  async saveSlot(slot: number, n: number, key: number) {
    this.check();
    return this.inner.saveSlot(slot, n, key);
  }
  async loadSlot(key: number, slot: number) {
    this.check();
    return this.inner.loadSlot(key, slot);
  }
  async dropSaved(key: number) {
    return this.inner.dropSaved(key);
  }
  async exportSaved(key: number) {
    return this.inner.exportSaved(key);
  }
  async importSaved(key: number, bytes: Uint8Array) {
    return this.inner.importSaved(key, bytes);
  }
}

test(
  'a runner rebuilt under running sequences: they resume and give exactly the tokens and logprobs of an undisturbed run',
  { timeout: 60_000 },
  async () => {
    const models: LoadedModel[] = [await load()];
    try {
      const base = models[0];
      const undisturbed = await Promise.all(requests.map((r) => collect(base.engine, r)));
      const fresh = async () => {
        const m = await load();
        models.push(m);
        return m;
      };
      const first = await fresh();
      // Rebuilt four times: while the first request is admitted, while prompts are read, early in decoding, and late.
      const runner = new RebuiltRunner(first.engine.runner, fresh, { starts: [1], steps: [1, 6, 40] });
      const engine = new Engine(runner, first.tokenizer, { promptCache: { budgetBytes: 1 << 20 } });
      const resumed = await Promise.all(requests.map((r) => collect(engine, r)));
      assert.equal(runner.rebuilds, 4);
      for (const [i, r] of resumed.entries()) {
        assert.equal(r.summary.finishReason, 'length', r.summary.error?.message);
        assert.deepEqual(r.summary.tokens, undisturbed[i].summary.tokens, `request ${i}`);
        assert.deepEqual(r.logprobs, undisturbed[i].logprobs, `logprobs of request ${i}`);
      }
    } finally {
      for (const m of models) m.close();
    }
  },
);

test('a long history resumes in big chunks when reading it token by token would take too many steps', { timeout: 60_000 }, async () => {
  const models: LoadedModel[] = [];
  const fresh = async () => {
    const m = await load();
    models.push(m);
    return m;
  };
  try {
    const req = requests[0];
    const first = await fresh();
    const undisturbed = await collect(new Engine(first.engine.runner, first.tokenizer), req);
    const steady = new RebuiltRunner((await fresh()).engine.runner, fresh, {});
    await collect(new Engine(steady, first.tokenizer), req);
    // Rebuilt after 30 steps: 1 prompt chunk and 29 single tokens to read again, over the limit of 8.
    const runner = new RebuiltRunner((await fresh()).engine.runner, fresh, { steps: [30] });
    const r = await collect(new Engine(runner, first.tokenizer, { exactReplaySteps: 8 }), req);
    assert.equal(r.summary.finishReason, 'length', r.summary.error?.message);
    assert.equal(r.summary.tokens.length, req.maxTokens);
    assert.deepEqual(r.summary.tokens.slice(0, 29), undisturbed.summary.tokens.slice(0, 29), 'what was sent before the rebuild stays');
    assert.ok(
      runner.steps <= steady.steps + 3,
      `${runner.steps} steps with the rebuild, ${steady.steps} without: the history was read in one or two`,
    );
  } finally {
    for (const m of models) m.close();
  }
});

/** A runner that hands back what `mangle` makes of the real result. */
function mangled(inner: ForwardRunner, mangle: (r: ForwardResult) => ForwardResult): ForwardRunner {
  let calls = 0;
  return Object.assign(Object.create(inner) as ForwardRunner, {
    forward: async (req: ForwardRequest) => {
      const r = await inner.forward(req);
      // Only the first step goes wrong; later requests see a working runner again.
      return ++calls === 1 ? mangle({ tokens: r.tokens.slice(), logprobs: [...r.logprobs], logits: r.logits.slice() }) : r;
    },
  });
}

test('a runner that returns or throws anything fails only the requests of that step, clearly, and the engine goes on', async () => {
  const model = await load();
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => unhandled.push(e);
  process.on('unhandledRejection', onUnhandled);
  try {
    const req = requests[0];
    const expected = (await collect(new Engine(model.engine.runner, model.tokenizer), req)).summary.tokens;
    const cases: [string, ForwardRunner, RegExp][] = [
      [
        'token id -1',
        mangled(model.engine.runner, (r) => ({ ...r, tokens: r.tokens.map(() => -1) })),
        /token id -1 .*outside the vocabulary/,
      ],
      [
        'token id past the vocabulary',
        mangled(model.engine.runner, (r) => ({ ...r, tokens: r.tokens.map(() => 512) })),
        /outside the vocabulary/,
      ],
      [
        'one token too many',
        mangled(model.engine.runner, (r) => ({ ...r, tokens: Int32Array.from([...r.tokens, 0]) })),
        /2 token ids for 1 outputs/,
      ],
      [
        'logprobs nobody asked for',
        mangled(model.engine.runner, (r) => ({ ...r, logprobs: [{ id: 0, logprob: 0, top: [] }] })),
        /logprobs nobody asked for/,
      ],
      [
        'logits for a sampled output',
        mangled(model.engine.runner, (r) => ({ ...r, logits: new Float32Array(512) })),
        /512 logits for 0 rows/,
      ],
      ['no result at all', mangled(model.engine.runner, () => undefined as unknown as ForwardResult), /malformed step result: no result/],
      [
        'a synchronous throw',
        Object.assign(Object.create(model.engine.runner) as ForwardRunner, {
          forward: () => {
            throw new Error('boom');
          },
        }),
        /boom/,
      ],
    ];
    for (const [what, runner, message] of cases) {
      const engine = new Engine(runner, model.tokenizer);
      const bad = await collect(engine, req);
      assert.equal(bad.summary.finishReason, 'error', what);
      assert.match(bad.summary.error?.message ?? '', message, what);
      if (what !== 'a synchronous throw') {
        const good = await collect(engine, req);
        assert.deepEqual(good.summary.tokens, expected, `${what}: the next request works`);
      }
    }
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(unhandled, []);
  } finally {
    process.off('unhandledRejection', onUnhandled);
    model.close();
  }
});

test('a sampler rebuilt with the tokens already drawn continues the seeded stream exactly', () => {
  const V = 64;
  const logits = Array.from({ length: 30 }, (_, t) => Float32Array.from({ length: V }, (_, i) => Math.sin(i * 0.7 + t) * 3));
  const spec = { sampler: { temperature: 1, topK: 20, topP: 0.9, seed: 1234, repeatPenalty: 1.2 }, history: [1, 2, 3] };
  const whole = new SequenceSamplers();
  whole.start(1, spec);
  const tokens = logits.map((l) => whole.sample(1, l).token);
  for (const k of [1, 7, 29]) {
    const resumed = new SequenceSamplers();
    resumed.start(1, { ...spec, history: [...spec.history, ...tokens.slice(0, k)], drawn: k });
    assert.deepEqual(
      logits.slice(k).map((l) => resumed.sample(1, l).token),
      tokens.slice(k),
      `resumed after ${k}`,
    );
  }
  assert.throws(() => new SequenceSamplers().start(1, { ...spec, drawn: 4 }), /drawn 4 tokens with a history of 3/);
});
