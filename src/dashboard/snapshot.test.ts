/** The dashboard's snapshots: speeds from the engine's counters, per-request numbers and the ended requests from the metrics, hit rate, history bound. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ServerMetrics } from '../server/metrics.js';
import type { ModelHost } from '../server/host.js';
import type { GenerationSummary } from '../engine/engine.js';
import { HISTORY_SECONDS, MAX_PEER_TEXT, Snapshotter } from './snapshot.js';

function fakeHost() {
  const engine = {
    stats: { promptTokens: 0, cachedTokens: 0, generatedTokens: 0, steps: 0 },
    queued: 1,
    activeCount: 2,
    runner: { ctxPerSlot: 512, slots: 4 },
    heldSequences: () => [],
  };
  const model = {
    engine,
    config: { nLayer: 2, ctxTrain: 2048 },
    file: { fileSize: 1000 },
    kvBytes: 64,
    embeddingOnly: false,
    residentBytes: () => 4096,
    summary: () => ({ architecture: 'llama', parameters: 123, quantization: [{ type: 'Q8_0' }] }),
  };
  return { host: { id: 'm', state: 'ready', model } as unknown as ModelHost, engine };
}

const summary = (completionTokens: number, prefillMs: number, decodeMs: number): GenerationSummary =>
  ({
    finishReason: 'length',
    promptTokens: 10,
    cachedTokens: 4,
    completionTokens,
    tokens: [],
    text: '',
    prefillMs,
    decodeMs,
  }) as unknown as GenerationSummary;

test('a snapshot tells speeds since the last one, the requests that ended, the model and the prompt-cache hit rate', () => {
  const { host, engine } = fakeHost();
  const metrics = new ServerMetrics();
  const snaps = new Snapshotter({ host, metrics });
  snaps.take();
  engine.stats.generatedTokens += 50;
  engine.stats.promptTokens += 100;
  engine.stats.cachedTokens += 25;
  metrics.requestStarted();
  metrics.requestStarted();
  metrics.requestEnded(summary(11, 30, 500));
  const s = snaps.take();
  assert.ok(s.live.tokensPerSecond > 50, `${s.live.tokensPerSecond}`); // 50 tokens in well under a second
  assert.equal(s.live.inFlight, 1);
  assert.equal(s.live.queued, 1);
  assert.equal(s.live.busySlots, 2);
  assert.equal(s.live.ttftMs, 30);
  assert.deepEqual(s.live.requestTokensPerSecond, [20]); // 10 tokens after the first in 0.5 s
  assert.equal(s.live.cacheHitRate, 0.25);
  // The fake engine holds no sequences; the request that ended is listed.
  assert.deepEqual([s.requests.running, s.requests.runningTotal], [[], 0]);
  assert.deepEqual(
    s.requests.finished.map((r) => [r.seq, r.completionTokens, r.tokensPerSecond, r.ttftMs]),
    [[1, 11, 20, 30]],
  );
  assert.deepEqual(
    { arch: s.model.architecture, quant: s.model.quantization, ctx: s.model.contextPerSlot, slots: s.model.slots, layers: s.model.layers },
    { arch: 'llama', quant: 'Q8_0', ctx: 512, slots: 4, layers: 2 },
  );
  assert.equal(s.cluster, null);
  // A request is counted once.
  const next = snaps.take();
  assert.deepEqual(next.live.requestTokensPerSecond, []);
  assert.equal(next.live.ttftMs, null);
  assert.equal(next.live.tokensPerSecond, 0);
});

test('the history keeps the last five minutes only', () => {
  const { host } = fakeHost();
  const snaps = new Snapshotter({ host, metrics: new ServerMetrics() });
  for (let i = 0; i < HISTORY_SECONDS + 20; i++) snaps.take();
  assert.equal(snaps.history.length, HISTORY_SECONDS);
});

test('without a model (loading) the snapshot still answers', () => {
  const host = { id: 'm', state: 'loading', model: undefined } as unknown as ModelHost;
  const s = new Snapshotter({ host, metrics: new ServerMetrics() }).take();
  assert.equal(s.model.state, 'loading');
  assert.equal(s.model.architecture, null);
  assert.equal(s.live.tokensPerSecond, 0);
});

test("a node's long texts are cut short in the snapshot, and only the fields the page reads go out", () => {
  const { host } = fakeHost();
  const huge = 'x'.repeat(8 << 20);
  const node = {
    id: 'n1',
    name: huge,
    address: '10.0.0.2:7000',
    local: false,
    up: true,
    memoryBytes: 1,
    bytesPerSecond: 1,
    threads: 2,
    isa: huge,
    backend: 'gpu' as const,
    adapter: huge,
  };
  const status = {
    state: 'ready' as const,
    error: huge,
    epoch: 1,
    model: { name: 'm.gguf', sha256: 'ab', layers: 2 },
    nodes: [node],
    links: [{ to: huge, latencyMs: 1, megabytesPerSecond: 2 }],
    plan: {
      stages: [{ nodeId: 'n1', name: huge, layerStart: 0, layerEnd: 2, memoryBytes: 1, splitRank: 0, splitCount: 1, splitShare: 1 }],
      predictedTokensPerSecond: 3,
      predictedPipelinedTokensPerSecond: 4,
      activationDtype: 'f32',
      exchanges: [{ huge }],
    },
  };
  const snaps = new Snapshotter({ host, metrics: new ServerMetrics(), cluster: () => status as never });
  const s = snaps.take();
  assert.ok(JSON.stringify(s).length < 10_000, `${JSON.stringify(s).length} characters`);
  const n = s.cluster!.nodes[0];
  assert.equal(n.name.length, MAX_PEER_TEXT);
  assert.ok(n.name.startsWith('xxx') && n.isa.length <= MAX_PEER_TEXT && n.adapter!.length <= MAX_PEER_TEXT);
  assert.deepEqual([n.id, n.address, n.backend, n.up], ['n1', '10.0.0.2:7000', 'gpu', true]);
  assert.equal(s.cluster!.plan!.predictedTokensPerSecond, 3);
  assert.equal(s.live.planPredictedTokensPerSecond, 3);
  assert.ok(!('exchanges' in s.cluster!.plan!));
});
