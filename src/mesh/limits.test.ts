/**
 * Frame limits follow the loaded model: what carries a step's activations (forward frames, partial
 * sums, expert requests and their answers) may be as large as a step's tokens need, on whichever
 * side receives it; everything else stays small. (A group's answers of a long prompt once exceeded
 * the small limit and broke every plan.) What a stage keeps for its peers beyond one frame
 * (samplers, saved KV prefixes, steps waiting their turn) is capped too, with a clear refusal.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FrameFlags, type Frame, type PeerConnection } from '../cluster/index.js';
import { createKernels } from '../kernels/index.js';
import type { ModelConfig } from '../model/config.js';
import { isCairnError } from '../util/errors.js';
import { packMessage } from '../util/message-framing.js';
import { coordinatorReceiveLimit, maxLogitsRows, nodeReceiveLimit, type StageSizes } from './limits.js';
import { checkForwardHead } from './validate.js';
import { SCORE_LOGITS_BYTES } from '../engine/engine.js';
import { MeshFrame } from './protocol.js';
import { checkCapabilities } from './node-set.js';
import { ClusterCoordinator } from './coordinator.js';
import { CairnError } from '../util/errors.js';
import { MAX_QUEUED_STEPS, MAX_SAVED_PREFIXES, StageRunner } from './stage-runner.js';
import type { KvOps, StageModel } from './stage-model.js';

const sizes: StageSizes = { maxBatch: 512, nEmbd: 4096, nVocab: 151936, slots: 4, kvBytesPerSlot: 1 << 26 };
const step = sizes.maxBatch * sizes.nEmbd * 4;
const response = FrameFlags.response;

test("a node takes a whole step's activations in forward frames, partial sums, expert requests and expert answers", () => {
  assert.ok(nodeReceiveLimit(MeshFrame.forward, 0, sizes) >= step);
  assert.ok(nodeReceiveLimit(MeshFrame.partial, 0, sizes) >= step);
  assert.ok(nodeReceiveLimit(MeshFrame.experts, 0, sizes) >= step + sizes.maxBatch * 8 * 8, 'inputs plus 8 experts and weights a token');
  assert.ok(nodeReceiveLimit(MeshFrame.experts, response, sizes) >= step);
  // Before a shard is loaded no activations (a forward frame's head at most), and anything else small.
  for (const type of [MeshFrame.forward, MeshFrame.partial, MeshFrame.experts]) assert.ok(nodeReceiveLimit(type, 0, undefined) <= 2 << 20);
  assert.ok(nodeReceiveLimit(MeshFrame.experts, response, undefined) <= 64 * 1024);
  assert.ok(nodeReceiveLimit(MeshFrame.seqEnd, 0, sizes) <= 64 * 1024);
  assert.ok(nodeReceiveLimit(MeshFrame.forward, response, sizes) <= 64 * 1024);
});

test("the coordinator, as rank 0 of a group, takes a whole step's partial sums and expert answers", () => {
  assert.ok(coordinatorReceiveLimit(MeshFrame.partial, 0, sizes) >= step);
  assert.ok(coordinatorReceiveLimit(MeshFrame.experts, response, sizes) >= step);
  assert.ok(coordinatorReceiveLimit(MeshFrame.result, 0, sizes) >= sizes.slots * sizes.nVocab * 4);
  assert.ok(coordinatorReceiveLimit(MeshFrame.kv, response, sizes) >= sizes.kvBytesPerSlot);
  assert.ok(coordinatorReceiveLimit(MeshFrame.forward, 0, sizes) <= 64 * 1024);
  assert.ok(coordinatorReceiveLimit(MeshFrame.experts, 0, sizes) <= 64 * 1024, 'nodes send the coordinator no expert requests');
});

/** A stage of 2 slots of 64 positions (1 KiB of KV each) whose KV operations and steps are recorded, not computed. */
function fakeStage(opts: { stepsWait?: boolean; savedBytes?: number } = {}) {
  const saved = new Map<number, number>();
  const kvOps = {
    copySlotPrefix: async () => {},
    saveSlot: async (_slot: number, n: number, key: number) => (saved.set(key, n * 16), n * 16),
    loadSlot: async () => {},
    dropSaved: async (key: number) => void saved.delete(key),
    exportSaved: async () => new Uint8Array(0),
    importSaved: async (key: number, bytes: Uint8Array) => (saved.set(key, bytes.length), bytes.length),
  } satisfies KvOps;
  const pending: (() => void)[] = [];
  const model: StageModel = {
    config: { nEmbd: 4, nLayer: 2, nVocab: 10 } as ModelConfig,
    kernels: createKernels({ threads: 1 }),
    kvBytes: 2048,
    layerStart: 0,
    layerEnd: 1,
    maxBatch: 4,
    slots: 2,
    ctxPerSlot: 64,
    kvOps,
    forward: (batch) =>
      opts.stepsWait
        ? new Promise<Float32Array>((resolve) => pending.push(() => resolve(new Float32Array(batch.nTokens * 4))))
        : new Float32Array(batch.nTokens * 4),
    close: () => {},
  };
  const sent: { type: number; payload: Buffer }[] = [];
  const conn = {
    isOpen: true,
    send: (type: number, _meta: unknown, payload: Buffer) => void sent.push({ type, payload: Buffer.from(payload) }),
  } as unknown as PeerConnection;
  const runner = new StageRunner(model, 1, { coordinator: conn, next: conn }, { savedBytes: opts.savedBytes });
  return { runner, saved, pending, sent };
}

test('a stage refuses more samplers than its slots can run; restarting or ending one makes room', () => {
  const { runner } = fakeStage();
  const spec = { sampler: {}, history: [1, 2] };
  for (let seq = 0; seq < 4; seq++) runner.startSequence(seq, spec);
  assert.throws(
    () => runner.startSequence(99, spec),
    (e) => isCairnError(e, 'BAD_ARGUMENT') && /already samples 4 sequences \(2 per KV slot\)/.test(e.message),
  );
  runner.startSequence(2, spec); // the same sequence again replaces its sampler
  runner.endSequence(0);
  runner.startSequence(99, spec);
});

test('a stage refuses saved KV prefixes beyond its byte budget or count; dropping makes room', async () => {
  const { runner, saved } = fakeStage({ savedBytes: 3000 });
  // A save of 64 positions holds one slot's whole cache (1 KiB): the third would pass 3000 bytes.
  await runner.kv({ op: 'save', slot: 0, n: 64, key: 1 });
  await runner.kv({ op: 'save', slot: 1, n: 64, key: 2 });
  await assert.rejects(
    runner.kv({ op: 'save', slot: 0, n: 64, key: 3 }),
    (e) => isCairnError(e, 'BAD_ARGUMENT') && /would take 3072 bytes, more than the 3000 this node offers/.test(e.message),
  );
  await assert.rejects(runner.kv({ op: 'import', key: 4 }, Buffer.alloc(1500)), /more than the 3000 this node offers/);
  assert.deepEqual([...saved.keys()], [1, 2]);
  // Saving over a key replaces it; dropping one frees its bytes.
  await runner.kv({ op: 'save', slot: 0, n: 64, key: 2 });
  await runner.kv({ op: 'drop', key: 1 });
  await runner.kv({ op: 'import', key: 4 }, Buffer.alloc(1500));
  assert.deepEqual([...saved.keys()].sort(), [2, 4]);

  // Without a byte budget, empty prefixes are still bounded by count.
  const many = fakeStage();
  for (let key = 0; key < MAX_SAVED_PREFIXES; key++) await many.runner.kv({ op: 'save', slot: 0, n: 0, key });
  await assert.rejects(
    many.runner.kv({ op: 'save', slot: 0, n: 0, key: 1_000_000 }),
    (e) => isCairnError(e, 'BAD_ARGUMENT') && /already keeps 65536 saved prefixes/.test(e.message),
  );
  await many.runner.kv({ op: 'save', slot: 0, n: 0, key: 7 });
});

test('steps beyond what a plan keeps in flight are refused with a step error, not piled up', async () => {
  const { runner, pending, sent } = fakeStage({ stepsWait: true });
  const forward = (step: number) =>
    ({
      type: MeshFrame.forward,
      payload: packMessage(
        { epoch: 1, step, nTokens: 1, spans: [[0, 0, 0, 1]], outputs: [], kind: 'tokens', wire: 'f32' },
        Int32Array.of(3),
      ),
    }) as unknown as Frame;
  for (let step = 0; step < MAX_QUEUED_STEPS + 3; step++) runner.onForward(forward(step));
  const errors = sent.filter((f) => f.type === MeshFrame.stepError).map((f) => JSON.parse(f.payload.toString()) as { message: string });
  assert.equal(errors.length, 3);
  assert.match(errors[0].message, /64 steps are already waiting at this stage/);
  assert.equal(pending.length, MAX_QUEUED_STEPS);
  // Once steps finish, the stage takes new ones again.
  for (const done of pending.splice(0)) done();
  await new Promise((r) => setImmediate(r));
  runner.onForward(forward(1000));
  assert.equal(pending.length, 1);
  assert.equal(sent.filter((f) => f.type === MeshFrame.stepError).length, 3);
});

test("a node's description of itself is refused when its texts or its list of models are not what a node sends", () => {
  const good = { nodeId: 'n1', name: 'box', memoryBytes: 1 << 30, bytesPerSecond: 1e10, threads: 2, isa: 'avx512', models: ['ab'.repeat(32)] };
  assert.equal(checkCapabilities(good).isa, 'avx512');
  for (const [what, bad] of [
    ['a 64 KiB isa', { ...good, isa: 'x'.repeat(65536) }],
    ['a model that is not a SHA-256', { ...good, models: ['../etc/passwd'] }],
    ['a model list longer than any node holds', { ...good, models: Array.from({ length: 5000 }, () => 'ab'.repeat(32)) }],
  ] as const) {
    assert.throws(() => checkCapabilities(bad), /malformed/, what);
  }
});

test("a prefix save a node refuses (its memory bound) is dropped from every stage and reported as the cache's to skip, not the request's to fail", async () => {
  const ops: string[] = [];
  let failWith: CairnError | undefined;
  const pipeline = {
    broken: false,
    kv: async (op: { op: string; key?: number }) => {
      ops.push(`${op.op} ${op.key}`);
      if (op.op === 'save' && failWith) throw failWith;
      return [{ bytes: 10 }, { bytes: 5 }];
    },
  };
  // The coordinator's saves over a stand-in pipeline (its stages' answers as a real one gives them).
  const coordinator = Object.create(ClusterCoordinator.prototype) as ClusterCoordinator;
  Object.assign(coordinator, { pipeline, current: () => pipeline });
  assert.equal(await coordinator.saveSlot(0, 16, 1), 15);
  failWith = new CairnError('CLUSTER_REMOTE', 'peer n1 answered with an error: KV prefix 2 refused: saved prefixes would take more than this node offers');
  await assert.rejects(coordinator.saveSlot(0, 16, 2), (err: unknown) => isCairnError(err, 'BAD_ARGUMENT') && /refused/.test(err.message));
  assert.deepEqual(ops.slice(1), ['save 2', 'drop 2'], 'the stages that kept it drop it');
  // A lost node is not the cache's business: its error goes on as it came, for the re-planning.
  failWith = new CairnError('CLUSTER_CLOSED', 'node n1 is gone');
  await assert.rejects(coordinator.saveSlot(0, 16, 3), (err: unknown) => isCairnError(err, 'CLUSTER_CLOSED'));
});

test("a step may carry back a scored prompt's chunk of logits beside one row per slot, and no more; the coordinator takes that many", () => {
  const most = maxLogitsRows(sizes);
  assert.equal(most, sizes.slots + Math.floor(SCORE_LOGITS_BYTES / (4 * sizes.nVocab)));
  assert.ok(coordinatorReceiveLimit(MeshFrame.result, 0, sizes) >= most * sizes.nVocab * 4);
  const bounds = { maxBatch: 512, slots: 4, ctxPerSlot: 256, nVocab: sizes.nVocab, isFirst: true };
  const head = (rows: number) => ({ epoch: 1, step: 1, nTokens: rows, spans: [[0, 0, 0, rows]], outputs: Array.from({ length: rows }, (_, r) => [r, 1, 1]), kind: 'tokens', wire: 'f32' });
  assert.equal(checkForwardHead(head(most), bounds).outputs.length, most);
  assert.throws(() => checkForwardHead(head(most + 1), bounds), (e) => isCairnError(e, 'CLUSTER_PROTOCOL') && new RegExp(`${most + 1} rows of logits asked for; a step holds at most ${most}`).test(e.message));
});
