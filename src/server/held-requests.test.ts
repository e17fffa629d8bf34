/** The running-requests list read from a real engine (one slot: one request generates, the next waits), and the ended ones. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { GgmlType } from '../gguf/ggml-types.js';
import { loadModel } from '../engine/load.js';
import { writeSyntheticModel } from '../model/synthetic.js';
import { ServerMetrics } from './metrics.js';
import type { GenerationSummary } from '../engine/engine.js';
import { scratchDir } from '../../test/helpers/paths.js';
import { FINISHED_LISTED, finishedRequests, runningRequests } from './held-requests.js';

test('a generating request shows its tokens and speed so far; the one waiting for the slot shows as queued', async () => {
  const dir = scratchDir('dashboard-requests');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'm.gguf');
  writeSyntheticModel(
    path,
    { arch: 'llama', nEmbd: 64, nLayer: 2, nHead: 4, nKvHead: 2, nFf: 128, nVocab: 300, ctx: 512, quant: GgmlType.F32, seed: 3 },
    () => {
      throw new Error('F32 needs no quantizer');
    },
  );
  const model = await loadModel(path, { ctx: 512, slots: 1, threads: 1, progress: false });
  try {
    assert.deepEqual(runningRequests(model.engine, 'm'), { list: [], total: 0 });
    const first = model.engine.generate({ prompt: [1, 5, 6, 7], maxTokens: 400, ignoreEos: true, sampler: { temperature: 0 } });
    const second = model.engine.generate({ prompt: [1, 8], maxTokens: 3, ignoreEos: true, sampler: { temperature: 0 } });
    const it = first[Symbol.asyncIterator]();
    let tokens = 0;
    while (tokens < 5) if ((await it.next()).value?.type === 'token') tokens++;
    // A little later than the fifth token, so that the decode time so far is above zero.
    const { list, total } = runningRequests(model.engine, 'm', performance.now() + 1);
    assert.equal(total, 2);
    const [a, b] = list;
    assert.equal(a.phase, 'generating');
    assert.equal(a.model, 'm');
    assert.equal(a.promptTokens, 4);
    assert.equal(a.maxTokens, 400);
    assert.ok(a.tokens >= 5, `${a.tokens}`);
    assert.ok(a.tokensPerSecond !== null && a.tokensPerSecond > 0, `${a.tokensPerSecond}`);
    assert.ok(a.ttftMs !== null && a.ttftMs >= 0 && a.elapsedMs >= a.ttftMs);
    assert.deepEqual([b.phase, b.tokens, b.tokensPerSecond, b.ttftMs, b.promptTokens], ['queued', 0, null, null, 2]);
    assert.ok(b.id > a.id);
    await it.return!();
    for await (const _ of second);
    // Both gone once they ended.
    assert.equal(runningRequests(model.engine, 'm').total, 0);
  } finally {
    model.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('ended requests are listed newest first, the last few only', () => {
  const metrics = new ServerMetrics();
  const summary = (n: number) =>
    ({
      finishReason: 'length',
      promptTokens: 3,
      cachedTokens: 0,
      completionTokens: n,
      tokens: [],
      text: '',
      prefillMs: 10,
      decodeMs: 100,
    }) as unknown as GenerationSummary;
  for (let i = 1; i <= FINISHED_LISTED + 5; i++) {
    metrics.requestStarted();
    metrics.requestEnded(summary(i + 1));
  }
  const list = finishedRequests(metrics.recent);
  assert.equal(list.length, FINISHED_LISTED);
  assert.equal(list[0].seq, FINISHED_LISTED + 5);
  assert.equal(list[0].completionTokens, FINISHED_LISTED + 6);
  assert.equal(list[0].tokensPerSecond, (FINISHED_LISTED + 5) / 0.1);
  assert.equal(list[0].promptTokens, 3);
  assert.ok(Math.abs(list[0].endedAt - Date.now()) < 5000);
  assert.equal(list[list.length - 1].seq, 6);
});
