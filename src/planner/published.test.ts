/**
 * The cost model against published measurements of other systems. Each case builds the model's
 * shape from its real dimensions and quantization, and the hardware from stated figures (cited
 * below); nothing is fitted to the published speeds. Where the model does not reproduce a figure
 * within 20%, the test pins what it does predict and says which term the model lacks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tensorPlan } from './candidates.js';
import type { Candidate, LayerShape, ModelMeta, NodeInfo, PlanRequest } from './types.js';

/** Relative error of a prediction against a published figure. */
const off = (predicted: number, published: number) => (predicted - published) / published;
const msPerToken = (c: Candidate) => 1000 / c.decodeTokensPerSecond;

// ---------------------------------------------------------------------------------------------
// distributed-llama on Raspberry Pi 4B 8 GB, Llama 2 7B Q40, tensor parallel over gigabit Ethernet.
//
// Published (github.com/b4rtaz/distributed-llama README, "Average Single Token Generation Time",
// Q40 weights, Q80 buffer, units on a TP-Link LS1008G gigabit switch): 1312.50 / 793.69 / 494.00 /
// 588.19 ms per token on 1 / 2 / 4 / 8 devices, with inference (I) 1307.94 / 739.00 / 458.81 /
// 296.69 ms and transfer (T) 1.81 / 52.50 / 34.06 / 289.75 ms.
//
// Hardware taken:
//  - gigabit Ethernet: 940 Mbit/s of TCP payload, the Pi 4's iperf3 figure (tomcore.io, "Raspberry
//    PI 4B Network Performance"; salivity.github.io "Raspberry Pi 4 Maximum Gigabit Ethernet
//    Throughput"): 117.5 MB/s; one-way latency 200 us, the middle of the 100-300 us a gigabit hop
//    takes (DESIGN.md, "Numbers that shape the code").
//  - memory: 5.56 GB/s, STREAM on a Pi 4 (sci-pi.org.uk/bench/stream.html).
//  - Q4_0 matrix-vector speed: the A72 has no dot-product instructions, so a Q4_0 x Q8_0 product is
//    compute-bound well below the memory speed: a model read at 5.56 GB/s would predict 669 ms on
//    one device, half the measured time. Its speed is what `cairn bench` measures on the node; the
//    only published measurement of that kernel on that board is distributed-llama's own single-device
//    inference time (I = 1307.94 ms for the 3.72 GB a token reads), so the 1-device row checks the
//    bookkeeping and the 2/4/8-device rows are the predictions. The 2.75 ms a step spends outside
//    inference and transfer on one device (G - I - T) is the node's fixed step cost.
//  - the all-reduce: distributed-llama syncs through the root node in Q80, a star, with the
//    transfers of a layer in turn; modelled as two star all-reduces of nEmbd Q8_0 values per layer.
//
// Predicted: 1311 / 710 / 395 / 261 ms. 1 and 2 devices are within 20% (-0.1%, -10.5%); 4 and 8
// are not (-20.1%, -56%), and the published breakdown says why: inference on the root does not
// shrink with the devices as the model's compute term does (I = 739 / 459 / 297 ms against the
// model's 677 / 352 / 199 ms: distributed-llama 0.1 runs attention, norms and the quantization of
// every synced buffer on the root alone, a root-serial term the model lacks), and at 8 devices
// transfer grew to 290 ms against the model's 59 ms (contention on the root's link and the cost of
// serving 7 sockets in turn, beyond latency + bytes / bandwidth). The exchange term is right in
// size at 2 and 4 devices (31 and 40 ms against T = 52 and 34 ms).
// ---------------------------------------------------------------------------------------------

const Q40 = 18 / 32; // bytes per weight: 32 4-bit weights and an f16 scale

function llama2_7b(): ModelMeta {
  const nEmbd = 4096;
  const nFf = 11008;
  const nLayer = 32;
  const nVocab = 32000;
  const norms = 2 * nEmbd * 4;
  const layer: LayerShape = {
    attentionBytes: 2 * nEmbd * nEmbd * Q40, // wq, wo
    kvProjectionBytes: 2 * nEmbd * nEmbd * Q40, // wk, wv
    denseFfnBytes: 3 * nEmbd * nFf * Q40,
    expertBytes: 0,
    experts: 0,
    expertsUsed: 0,
    sharedExpertBytes: 0,
    replicatedBytes: norms,
    activeParameters: 4 * nEmbd * nEmbd + 3 * nEmbd * nFf + 2 * nEmbd,
    ffnWidth: nFf,
    weightType: 'Q4_0',
  };
  const layerBytes = layer.attentionBytes + layer.kvProjectionBytes + layer.denseFfnBytes + layer.replicatedBytes;
  return {
    nLayer,
    layerBytes: Array(nLayer).fill(layerBytes),
    layerActiveBytes: Array(nLayer).fill(layerBytes),
    embedBytes: nVocab * nEmbd * 4, // f32 in distributed-llama's file
    headBytes: nVocab * nEmbd * Q40,
    headActiveBytes: nVocab * nEmbd * Q40,
    kvBytesPerToken: Array(nLayer).fill(2 * nEmbd * 4),
    activationBytesPerToken: nEmbd * 2,
    workingBytes: 64 << 20,
    shape: {
      nEmbd,
      nHead: 32,
      nKvHead: 32,
      headDim: 128,
      nVocab,
      blockSize: 32,
      layers: Array(nLayer).fill(layer),
      headParameters: nVocab * nEmbd,
      headWeightType: 'Q4_0',
    },
  };
}

test('distributed-llama, Llama 2 7B Q40 on 1 / 2 / 4 / 8 Raspberry Pi 4B over gigabit Ethernet', () => {
  const model = llama2_7b();
  const readPerToken = model.layerActiveBytes.reduce((a, b) => a + b, 0) + model.headActiveBytes;
  const q40Speed = readPerToken / 1.30794;
  const pis: NodeInfo[] = Array.from({ length: 8 }, (_, i) => ({
    id: `pi${i}`,
    coordinator: i === 0,
    memoryBytes: 7.6e9,
    bytesPerSecond: 5.56e9,
    bytesPerSecondByType: { Q4_0: q40Speed },
    cores: 4,
    stepOverheadSeconds: 2.75e-3,
  }));
  const req = (k: number): PlanRequest => ({
    model,
    nodes: pis.slice(0, k),
    links: [],
    defaultLink: { latencySeconds: 200e-6, bytesPerSecond: 117.5e6 },
    kvTokens: 2048,
    batch: 1,
    allReduce: 'star',
    exchangeDtype: 'q8',
  });
  const published = { 1: 1312.5, 2: 793.69, 4: 494.0, 8: 588.19 };
  const predicted = Object.fromEntries(([1, 2, 4, 8] as const).map((k) => [k, tensorPlan(req(k), pis.slice(0, k))]));
  for (const k of [1, 2, 4, 8] as const) assert.ok(predicted[k].fits, `${k} devices hold the model`);
  const ms = (k: 1 | 2 | 4 | 8) => msPerToken(predicted[k]);
  // Within 20%.
  assert.ok(Math.abs(off(ms(1), published[1])) < 0.2, `1 device: ${ms(1)} ms`);
  assert.ok(Math.abs(off(ms(2), published[2])) < 0.2, `2 devices: ${ms(2)} ms`);
  // Not within 20%: what the model predicts (see above for the missing terms).
  assert.ok(Math.abs(ms(4) - 395) < 4, `4 devices: ${ms(4)} ms`);
  assert.ok(Math.abs(ms(8) - 261) < 4, `8 devices: ${ms(8)} ms`);
  assert.ok(off(ms(4), published[4]) < -0.2 && off(ms(8), published[8]) < -0.5);
  assert.equal(predicted[8].allReduce?.algorithm, 'star');
  // Both terms against the published breakdown at 2 devices: compute ~ I, exchange ~ T.
  assert.ok(Math.abs(off(predicted[2].breakdown.compute * 1000, 739.0)) < 0.1);
  assert.ok(Math.abs(predicted[2].breakdown.exchange * 1000 - 52.5) < 25);
});

// ---------------------------------------------------------------------------------------------
// exo 1.0 on Mac Studio M3 Ultra, DeepSeek V3.1 671B 8-bit, tensor parallel over Thunderbolt 5 RDMA.
//
// Published (github.com/exo-explore/exo README, "DeepSeek v3.1 671B (8-bit) on 4 x M3 Ultra Mac
// Studio with Tensor Parallel RDMA", from Jeff Geerling, "1.5 TB of VRAM on Mac Studio - RDMA over
// Thunderbolt 5", 2025): 21.1 / 27.8 / 32.5 tok/s on 1 / 2 / 4 nodes.
//
// Hardware taken: 819 GB/s of memory bandwidth per M3 Ultra (Apple's figure), 512 GB each (the
// README's caption), 28 TFLOPS FP32 of GPU (twice the M3 Max's 14); Thunderbolt 5 at 80 Gbit/s =
// 10 GB/s, and under 50 us of latency with RDMA (Geerling: "lowering memory access latency from
// 300us down to < 50us"). Model: 61 layers of width 7168, multi-head latent attention (128 heads,
// q rank 1536, kv rank 512, 128 + 64 key dims, 128 value dims), 3 dense layers (FFN 18432), 58
// Mixture-of-Experts layers (256 experts of width 2048, 8 used, 1 shared), 129280 tokens; MLX 8-bit
// weights (groups of 64 with a bf16 scale and bias: 8.5 bits per weight); activations in bf16.
//
// Predicted: 21.0 / 31.8 / 48.8 tok/s. 1 and 2 nodes are within 20% (-0.4%, +14.5%); 4 nodes are
// not (+50%). What the measurements imply is a time per token that does not shrink with the nodes
// (solving t = a + b / k through the 2- and 4-node figures gives a = 25.6 ms), where the model has
// 6.7 ms of exchange at 4 nodes (122 all-reduces of one latency and 3 x 14 KiB each). The missing
// term is a fixed cost per collective beyond link latency: MLX evaluates up to every all-reduce and
// hands the buffer from the GPU to the RDMA transfer and back, ~100-150 us each by the figures. Note
// also that the model does not fit one 512 GB node (665 GiB of weights): the 1-node figure cannot
// have been all resident at 8 bits, so it is compared for its bytes per token only.
// ---------------------------------------------------------------------------------------------

const MLX8 = 8.5 / 8;

function deepseekV31(): ModelMeta {
  const nEmbd = 7168;
  const nLayer = 61;
  const nVocab = 129280;
  const nHead = 128;
  const perHead = 1536 * nHead * (128 + 64) + 512 * nHead * (128 + 128) + nHead * 128 * nEmbd; // q_b, kv_b, output
  const shared = nEmbd * 1536 + nEmbd * (512 + 64); // q_a, kv_a: every rank holds them
  const norms = (2 * nEmbd + 1536 + 512) * 2;
  const expert = 3 * nEmbd * 2048;
  const router = nEmbd * 256;
  const layers = Array.from({ length: nLayer }, (_, l): LayerShape => {
    const base = { attentionBytes: perHead * MLX8, kvProjectionBytes: shared * MLX8, expertsUsed: 0, weightType: 'MLX8' };
    if (l < 3) {
      return {
        ...base,
        denseFfnBytes: 3 * nEmbd * 18432 * MLX8,
        expertBytes: 0,
        experts: 0,
        sharedExpertBytes: 0,
        replicatedBytes: norms,
        activeParameters: perHead + shared + 3 * nEmbd * 18432,
        ffnWidth: 18432,
      };
    }
    return {
      ...base,
      denseFfnBytes: 0,
      expertBytes: 256 * expert * MLX8,
      experts: 256,
      expertsUsed: 8,
      sharedExpertBytes: expert * MLX8,
      replicatedBytes: norms + router * MLX8,
      activeParameters: perHead + shared + 9 * expert + router,
      ffnWidth: 2048,
    };
  });
  const held = layers.map(
    (l) => l.attentionBytes + l.kvProjectionBytes + l.denseFfnBytes + l.expertBytes + l.sharedExpertBytes + l.replicatedBytes,
  );
  const active = layers.map(
    (l) =>
      l.attentionBytes +
      l.kvProjectionBytes +
      l.denseFfnBytes +
      l.sharedExpertBytes +
      l.replicatedBytes +
      (l.experts ? (l.expertBytes / l.experts) * l.expertsUsed : 0),
  );
  return {
    nLayer,
    layerBytes: held,
    layerActiveBytes: active,
    embedBytes: nVocab * nEmbd * MLX8,
    headBytes: nVocab * nEmbd * MLX8,
    headActiveBytes: nVocab * nEmbd * MLX8,
    kvBytesPerToken: Array(nLayer).fill((512 + 64) * 2),
    activationBytesPerToken: nEmbd * 2,
    workingBytes: 1 << 30,
    shape: {
      nEmbd,
      nHead,
      nKvHead: nHead,
      headDim: 128,
      nVocab,
      blockSize: 64,
      layers,
      headParameters: nVocab * nEmbd,
      headWeightType: 'MLX8',
      sharedKv: true,
    },
  };
}

test('exo, DeepSeek V3.1 8-bit on 1 / 2 / 4 Mac Studio M3 Ultra over Thunderbolt 5 RDMA', () => {
  const model = deepseekV31();
  const macs: NodeInfo[] = Array.from({ length: 4 }, (_, i) => ({
    id: `mac${i}`,
    coordinator: i === 0,
    memoryBytes: 512e9,
    bytesPerSecond: 819e9,
    flopsPerSecond: 28e12,
  }));
  const req = (k: number): PlanRequest => ({
    model,
    nodes: macs.slice(0, k),
    links: [],
    defaultLink: { latencySeconds: 50e-6, bytesPerSecond: 10e9 },
    kvTokens: 4096,
    batch: 1,
    exchangeDtype: 'f16',
  });
  const tps = (k: number) => tensorPlan(req(k), macs.slice(0, k));
  const [one, two, four] = [tps(1), tps(2), tps(4)];
  assert.ok(Math.abs(off(one.decodeTokensPerSecond, 21.1)) < 0.2, `1 node: ${one.decodeTokensPerSecond}`);
  assert.ok(Math.abs(off(two.decodeTokensPerSecond, 27.8)) < 0.2, `2 nodes: ${two.decodeTokensPerSecond}`);
  // Not within 20% (a fixed cost per collective is missing): what the model predicts.
  assert.ok(Math.abs(four.decodeTokensPerSecond - 48.8) < 1, `4 nodes: ${four.decodeTokensPerSecond}`);
  assert.ok(off(four.decodeTokensPerSecond, 32.5) > 0.2);
  assert.equal(four.allReduce?.algorithm, 'direct', 'small vectors over a few fast links: one exchange');
  assert.equal(one.fits, false, 'one 512 GB node cannot hold the 8-bit weights');
  assert.ok(two.fits && four.fits);
});
