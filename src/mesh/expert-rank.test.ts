/**
 * An expert rank treats every request as hostile: only its home may ask, only for this plan and a
 * layer whose experts it holds, with a token count within its batch and exactly the bytes that
 * count needs; a well-formed request gets what the in-process group computes. The home's side
 * sends each rank only its tokens and refuses an answer of the wrong size.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Frame, PeerConnection } from '../cluster/index.js';
import { loadExpertRank } from '../engine/load.js';
import { GgmlType } from '../gguf/ggml-types.js';
import { readGguf } from '../gguf/reader.js';
import { readModelConfig } from '../model/config.js';
import type { ExpertDispatch } from '../model/blocks/types.js';
import type { ShardSpec } from '../model/shard.js';
import { writeSyntheticModel } from '../model/synthetic.js';
import { isCairnError } from '../util/errors.js';
import { packMessage, unpackMessage } from '../util/message-framing.js';
import { ExpertDispatcher } from './expert-dispatch.js';
import { ExpertRankRunner } from './expert-rank.js';
import { MeshFrame, type ExpertStepHead } from './protocol.js';
import { scratchDir } from '../../test/helpers/paths.js';
import { quantizeWithKernels } from '../../test/helpers/oracle-greedy.js';

const dir = scratchDir('expert-rank');
mkdirSync(dir, { recursive: true });
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const path = join(dir, 'moe.gguf');
writeSyntheticModel(
  path,
  { arch: 'qwen3moe', nEmbd: 64, nLayer: 2, nHead: 4, nKvHead: 2, headDim: 16, nFf: 64, nVocab: 100, moe: { experts: 8, used: 2, width: 32 }, quant: GgmlType.F32, seed: 3 },
  quantizeWithKernels,
);
const cfg = readModelConfig(readGguf(path));
const D = cfg.nEmbd;
const spec = (rank: number): ShardSpec => ({ layerStart: 0, layerEnd: 2, splitRank: rank, splitCount: 3, splitMode: 'expert' });

function frame(payload: Buffer): Frame {
  return { type: MeshFrame.experts, flags: 0, requestId: 1, sequence: 0, dtype: 0, payloadLength: payload.length, payload } as Frame;
}

function request(head: Partial<ExpertStepHead> & Record<string, unknown>, n: number, k = 2): Buffer {
  const input = new Float32Array(n * D).fill(0.5);
  const ids = Int32Array.from({ length: n * k }, (_, i) => i % 8);
  const weights = new Float32Array(n * k).fill(0.5);
  return packMessage({ epoch: 7, step: 0, layer: 0, n, ...head }, Buffer.from(input.buffer), Buffer.from(ids.buffer), Buffer.from(weights.buffer));
}

test('an expert rank answers its home and refuses every malformed or foreign request', async () => {
  const loaded = await loadExpertRank(path, spec(1), { maxBatch: 8, prefetch: false });
  const rank = new ExpertRankRunner(loaded, 7, 'home-node');
  try {
    const out = rank.answer('home-node', frame(request({}, 3)));
    assert.equal(out.length, 3 * D * 4);
    const refused = (from: string, payload: Buffer, why: RegExp) =>
      assert.throws(
        () => rank.answer(from, frame(payload)),
        (e) => (isCairnError(e, 'CLUSTER_PROTOCOL') || isCairnError(e, 'BAD_ARGUMENT')) && why.test((e as Error).message),
      );
    refused('another-node', request({}, 1), /not the home/);
    refused('home-node', request({ epoch: 6 }, 1), /plan 6/);
    refused('home-node', request({ layer: 2 }, 1), /layer 2/);
    refused('home-node', request({ layer: -1 }, 1), /layer -1/);
    refused('home-node', request({ layer: 0.5 }, 1), /layer 0.5/);
    refused('home-node', request({ n: 9 }, 9), /9 tokens/);
    refused('home-node', request({ n: 0 }, 1), /0 tokens/);
    refused('home-node', request({ n: 2 }, 1), /2 tokens with/);
    refused('home-node', request({}, 1, 3), /1 tokens with/);
    refused('home-node', Buffer.from([1, 2, 3]), /expert request|malformed|bytes/);
    refused('home-node', packMessage({ epoch: 7, step: 0, layer: 0, n: 1 }), /expert request|parts|bodies/);
    refused('home-node', packMessage(null, Buffer.alloc(D * 4), Buffer.alloc(8), Buffer.alloc(8)), /head/);
    // Still serving after all that.
    assert.equal(rank.answer('home-node', frame(request({}, 1))).length, D * 4);
  } finally {
    rank.close();
  }
});

/** A connection whose requests go to `answer` (a rank in this process); `sent` counts the tokens of each. */
function fakeConnection(answer: (f: Frame) => Buffer, sent: number[]): PeerConnection {
  return {
    isOpen: true,
    request: async (_type: number, _meta: unknown, payload: Buffer) => {
      sent.push(unpackMessage<ExpertStepHead>(payload, { bodies: 3 }).head.n);
      return frame(answer(frame(payload)));
    },
  } as unknown as PeerConnection;
}

test('the home sends each expert rank only the tokens routed to it and adds their answers; a short answer fails the step', async () => {
  const ranks = await Promise.all([1, 2].map((r) => loadExpertRank(path, spec(r), { maxBatch: 8, prefetch: false })));
  try {
    const runners = ranks.map((l) => new ExpertRankRunner(l, 7, 'home-node'));
    const sent: number[][] = [[], []];
    const conns = runners.map((r, i) => fakeConnection((f) => r.answer('home-node', f), sent[i]));
    const dispatcher = new ExpertDispatcher(cfg, spec(0), 7, conns);
    // 3 tokens: expert ranges of 3 ranks over 8 experts are [0,3), [3,6), [6,8).
    const d: ExpertDispatch = {
      kind: 'experts',
      phase: 'send',
      layer: 1,
      n: 3,
      input: new Float32Array(3 * D).fill(1),
      ids: Int32Array.from([0, 1, 3, 4, 0, 2]),
      weights: new Float32Array(6).fill(0.5),
      result: new Float32Array(3 * D),
    };
    await dispatcher.dispatch(0, d);
    assert.deepEqual(sent, [[1], []], 'rank 1 gets the one token routed to experts 3-5; rank 2 none');
    assert.ok(d.result.subarray(D, 2 * D).some((x) => x !== 0), "the routed token's row holds rank 1's outputs");
    assert.ok(d.result.subarray(0, D).every((x) => x === 0) && d.result.subarray(2 * D).every((x) => x === 0));
    const short = new ExpertDispatcher(cfg, spec(0), 7, [fakeConnection(() => Buffer.alloc(4), []), conns[1]]);
    await assert.rejects(
      short.dispatch(1, { ...d, result: new Float32Array(3 * D) }),
      (e) => isCairnError(e, 'CLUSTER_PROTOCOL') && /answered 4 bytes/.test((e as Error).message),
    );
  } finally {
    for (const l of ranks) l.close();
  }
});
