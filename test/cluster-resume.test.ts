/**
 * Nodes that die at any moment of a cluster's life, with real `cairn node` and `cairn serve`
 * processes on loopback. A node killed (or hung) mid-stream costs no request: the streams pause
 * and go on with exactly the tokens of an undisturbed run, greedy and seeded. A node killed while
 * its layers are sent leads to a plan without it. When the nodes left cannot hold the model,
 * requests fail with a clear error and /health says why, until the node comes back and is taken
 * in again. A last stage that sends bad results fails the request it touched and is dropped; the
 * server keeps serving.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { GgmlType, ggmlRowBytes } from '../src/gguf/ggml-types.js';
import { readGguf } from '../src/gguf/reader.js';
import { createKernels } from '../src/kernels/index.js';
import type { ClusterStatus } from '../src/mesh/coordinator.js';
import { modelMeta } from '../src/mesh/model-meta.js';
import { readModelConfig } from '../src/model/config.js';
import { writeSyntheticModel } from '../src/model/synthetic.js';
import { stageBytes } from '../src/planner/plan.js';
import { ROOT, scratchDir } from './helpers/paths.js';
import { startNode, type NodeProcess } from './helpers/node.js';
import { startServer, type ServerProcess } from './helpers/server.js';
import { complete, status } from './helpers/cluster-client.js';

const dir = scratchDir('cluster-resume');
const cache = join(dir, 'cache');
const env = { XDG_CACHE_HOME: cache };
const model = join(dir, 'synthetic.gguf');
const CTX = 256;
const PARALLEL = 4;

before(() => {
  mkdirSync(cache, { recursive: true });
  const kernels = createKernels();
  // 6 layers of about 1.6 MiB each (Q8_0): small enough to load fast, big enough to split.
  writeSyntheticModel(
    model,
    { arch: 'llama', nEmbd: 512, nLayer: 6, nHead: 8, nKvHead: 4, nFf: 1024, nVocab: 1000, quant: GgmlType.Q8_0, seed: 21 },
    (type, src) => {
      const out = new Uint8Array(ggmlRowBytes(type, src.length));
      kernels.quantize(type, src, out, src.length);
      return out;
    },
  );
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** Text of single-process `cairn generate` (greedy unless `sampling` says otherwise). */
function generate(prompt: string, n: number, sampling: string[] = ['--temperature', '0']): string {
  return JSON.parse(
    execFileSync(
      process.execPath,
      [
        join(ROOT, 'bin/cairn.js'),
        'generate',
        '-m',
        model,
        '-p',
        prompt,
        '-n',
        String(n),
        ...sampling,
        '--ignore-eos',
        '--json',
        '--ctx',
        String(CTX),
      ],
      { encoding: 'utf8' },
    ),
  ).text as string;
}

/** What a streamed completion delivered: its text, its error event, and when each piece arrived. */
interface Streamed {
  text: string;
  error?: string;
  finish?: string;
  arrivals: number[];
}

/** Streams a completion through the HTTP API, reading the SSE events as they come. */
async function stream(url: string, body: Record<string, unknown>, onPiece?: (count: number) => void): Promise<Streamed> {
  const r = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'synthetic', stream: true, ...body }),
  });
  if (r.status !== 200) assert.fail(`status ${r.status}: ${await r.text()}`);
  const out: Streamed = { text: '', arrivals: [] };
  const decoder = new TextDecoder();
  let buffered = '';
  for await (const chunk of r.body!) {
    buffered += decoder.decode(chunk as Uint8Array, { stream: true });
    for (let i = buffered.indexOf('\n\n'); i >= 0; i = buffered.indexOf('\n\n')) {
      const event = buffered.slice(0, i);
      buffered = buffered.slice(i + 2);
      if (!event.startsWith('data: ') || event === 'data: [DONE]') continue;
      const data = JSON.parse(event.slice(6)) as {
        error?: { message: string };
        choices?: { text: string; finish_reason: string | null }[];
      };
      if (data.error) out.error = data.error.message;
      const choice = data.choices?.[0];
      if (choice?.text) {
        out.text += choice.text;
        out.arrivals.push(Date.now());
        onPiece?.(out.arrivals.length);
      }
      if (choice?.finish_reason) out.finish = choice.finish_reason;
    }
  }
  return out;
}


async function health(url: string): Promise<{ status: number; body: { status: string; error?: string } }> {
  const r = await fetch(`${url}/health`);
  return { status: r.status, body: (await r.json()) as { status: string; error?: string } };
}

/** The node process behind a node id of the cluster status. */
function processOf(st: ClusterStatus, nodeId: string, nodes: readonly NodeProcess[]): NodeProcess | undefined {
  const address = st.nodes.find((n) => n.id === nodeId)?.address;
  return nodes.find((n) => address?.endsWith(`:${n.port}`));
}

/** The node id of a node process in the cluster status. */
function idOf(st: ClusterStatus, node: NodeProcess): string | undefined {
  return st.nodes.find((n) => n.address.endsWith(`:${node.port}`))?.id;
}

async function withCluster<T>(
  nodeArgs: string[][],
  serveArgs: string[],
  fn: (s: ServerProcess, nodes: NodeProcess[]) => Promise<T>,
  nodeEnv: NodeJS.ProcessEnv = env,
): Promise<T> {
  const nodes: NodeProcess[] = [];
  let server: ServerProcess | undefined;
  try {
    for (const a of nodeArgs) nodes.push(await startNode(a, { env: nodeEnv }));
    server = await startServer(
      [
        '-m',
        model,
        '--cluster',
        '--peers',
        nodes.map((n) => n.peer).join(','),
        '--ctx',
        String(CTX),
        '--parallel',
        String(PARALLEL),
        ...serveArgs,
      ],
      env,
    );
    await server.ready(90_000);
    return await fn(server, nodes);
  } finally {
    await server?.stop();
    await Promise.all(nodes.map((n) => n.stop()));
  }
}

const greedy = { prompt: 'hello', max_tokens: 120, temperature: 0, ignore_eos: true };
const seeded = { prompt: 'the cat', max_tokens: 120, temperature: 0.9, top_k: 40, seed: 7, ignore_eos: true };
/** The undisturbed runs of both: one process, the same sampling. */
let undisturbed: string[] | undefined;
const expectedStreams = () =>
  (undisturbed ??= [
    generate(greedy.prompt, greedy.max_tokens),
    generate(seeded.prompt, seeded.max_tokens, ['--temperature', '0.9', '--top-k', '40', '--seed', '7']),
  ]);

/**
 * Runs both streams at once on a fresh cluster and applies `disturb` to the node of the last
 * stage (the one that samples) once the greedy stream has delivered 10 pieces; both must still
 * come out as their undisturbed runs.
 */
async function streamsSurvive(
  s: ServerProcess,
  nodes: NodeProcess[],
  disturb: (victim: NodeProcess) => void,
): Promise<{ disturbedAt: number; resumedAfterMs: number; before: ClusterStatus; victimId: string }> {
  const expected = expectedStreams();
  const before = await status(s.url);
  const victimId = before.plan!.stages.at(-1)!.nodeId;
  const victim = processOf(before, victimId, nodes);
  assert.ok(victim, 'the last stage runs on a node');
  let disturbedAt = 0;
  let replannedAt = 0;
  const onLog = () => {
    if (disturbedAt && !replannedAt && /plan 2 ready/.test(s.stderr())) replannedAt = Date.now();
  };
  s.proc.stderr!.on('data', onLog);
  const got = await Promise.all([
    stream(s.url, greedy, (count) => {
      if (count === 10) {
        disturbedAt = Date.now();
        disturb(victim);
      }
    }),
    stream(s.url, seeded),
  ]);
  assert.ok(disturbedAt > 0, 'the node was stopped mid-stream');
  for (const [i, g] of got.entries()) {
    assert.equal(g.error, undefined, 'no error reached the client');
    assert.equal(g.finish, 'length');
    assert.equal(g.text, expected[i], `stream ${i} equals its undisturbed run`);
  }
  s.proc.stderr!.off('data', onLog);
  const later = got[0].arrivals.filter((t) => t > disturbedAt);
  assert.ok(later.length > 0, 'tokens came after the node was lost');
  assert.ok(replannedAt > 0 && got[0].arrivals.some((t) => t >= replannedAt), 'the stream went on after the new plan was up');
  const resumedAfterMs = later[0] - disturbedAt;
  return { disturbedAt, resumedAfterMs, before, victimId };
}

test(
  'kill -9 of a node mid-stream: greedy and seeded streams pause and go on exactly as an undisturbed run',
  { timeout: 180_000 },
  async () => {
    await withCluster([[], []], [], async (s, nodes) => {
      const { resumedAfterMs, before, victimId } = await streamsSurvive(s, nodes, (victim) => victim.proc.kill('SIGKILL'));
      const after = await status(s.url);
      assert.equal(after.epoch, before.epoch + 1);
      assert.ok(!after.plan!.stages.some((x) => x.nodeId === victimId), 'the new plan leaves the dead node out');
      // Liveness: the stream went on within 5 s of the new plan being loaded (the coordinator says how long that took).
      const m = /plan \d+ ready (\d+\.\d+) s after/.exec(s.stderr());
      assert.ok(m, s.stderr());
      assert.ok(
        resumedAfterMs < Number(m[1]) * 1000 + 5000,
        `the stream resumed ${resumedAfterMs} ms after the kill; the new plan took ${m[1]} s`,
      );
    });
  },
);

test('a hung node (SIGSTOP) mid-stream is found by heartbeats, and the streams still come out the same', { timeout: 180_000 }, async () => {
  await withCluster([[], []], [], async (s, nodes) => {
    const { before, victimId } = await streamsSurvive(s, nodes, (victim) => victim.proc.kill('SIGSTOP'));
    assert.match(s.stderr(), /left: no heartbeat for/);
    const after = await status(s.url);
    assert.ok(after.epoch > before.epoch);
    assert.ok(!after.plan!.stages.some((x) => x.nodeId === victimId));
  });
});

test('a node killed while its layers are sent: the coordinator plans without it and serves', { timeout: 180_000 }, async () => {
  const expected = generate('hello', 20);
  // Empty shard caches, so that both nodes are sent their layers.
  const fresh = join(dir, 'fresh-cache');
  mkdirSync(fresh, { recursive: true });
  const nodes = [await startNode([], { env: { XDG_CACHE_HOME: fresh } }), await startNode([], { env: { XDG_CACHE_HOME: fresh } })];
  let victim: NodeProcess | undefined;
  for (const n of nodes) {
    n.proc.stderr!.on('data', () => {
      if (!victim && /receiving layers/.test(n.stderr())) {
        victim = n;
        n.proc.kill('SIGKILL');
      }
    });
  }
  const s = await startServer(
    ['-m', model, '--cluster', '--no-local-compute', '--peers', nodes.map((n) => n.peer).join(','), '--ctx', String(CTX)],
    env,
  );
  try {
    await s.ready(90_000);
    assert.ok(victim, 'a node was killed during its transfer');
    const st = await status(s.url);
    const dead = idOf(st, victim);
    assert.ok(st.plan!.stages.length > 0);
    for (const stage of st.plan!.stages) {
      assert.notEqual(stage.nodeId, dead, 'the plan does not name the dead node');
      assert.ok(st.nodes.find((n) => n.id === stage.nodeId)!.up);
    }
    const r = await complete(s.url, 'hello', 20);
    assert.equal(r.status, 200, r.error);
    assert.equal(r.text, expected);
    assert.equal((await health(s.url)).status, 200);
  } finally {
    await s.stop();
    await Promise.all(nodes.map((n) => n.stop()));
  }
});

test(
  'when the nodes left cannot hold the model: a clear error event and /health 503 with the reason; the node comes back and serving resumes',
  { timeout: 180_000 },
  async () => {
    const expected = generate('hello', 100);
    const file = readGguf(model);
    const req = { model: modelMeta(file, readModelConfig(file), 2, CTX), nodes: [], links: [], kvTokens: CTX * PARALLEL };
    // Room for 4 of the 6 layers on each node: together they hold the model, alone neither does.
    const each = Math.max(stageBytes(req, 0, 4), stageBytes(req, 2, 6));
    assert.ok(stageBytes(req, 0, 6) > each);
    await withCluster(
      [
        ['--max-memory', String(each)],
        ['--max-memory', String(each)],
      ],
      ['--no-local-compute'],
      async (s, nodes) => {
        assert.equal((await status(s.url)).plan!.stages.length, 2);
        const r = await stream(s.url, { ...greedy, max_tokens: 100 }, (count) => count === 5 && nodes[1].proc.kill('SIGKILL'));
        assert.match(r.error ?? '', /cannot run the model.*does not fit/s);
        assert.ok(expected.startsWith(r.text), 'what came before the error is what an undisturbed run gives');
        const h = await health(s.url);
        assert.equal(h.status, 503);
        assert.equal(h.body.status, 'unavailable');
        assert.match(h.body.error ?? '', /does not fit/);
        assert.match(h.body.error ?? '', new RegExp(`:${nodes[1].port}\\) is down`));
        const refused = await complete(s.url, 'hello', 5);
        assert.equal(refused.status, 503, "the cluster cannot run the model now: retry later");
        assert.match(refused.error ?? '', /cannot run the model/);

        // The node comes back on its address: the coordinator dials it again and plans with it.
        const back = await startNode(['--max-memory', String(each), '--port', String(nodes[1].port)], { env });
        nodes.push(back);
        await s.ready(60_000);
        const again = await complete(s.url, 'hello', 100);
        assert.equal(again.status, 200, again.error);
        assert.equal(again.text, expected);
        const st = await status(s.url);
        assert.ok(
          st.plan!.stages.some((x) => x.nodeId === idOf(st, back)),
          'the node that came back is in the plan',
        );
      },
    );
  },
);

/** A port nothing listens on now (it was free a moment ago). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}

test(
  'a node that was down at start joins mid-stream: it is taken into a new plan and the stream goes on unchanged',
  { timeout: 180_000 },
  async () => {
    const [expected] = expectedStreams();
    const latePort = await freePort();
    const nodes = [await startNode([], { env })];
    const s = await startServer(['-m', model, '--cluster', '--peers', `${nodes[0].peer},127.0.0.1:${latePort}`, '--ctx', String(CTX)], env);
    try {
      await s.ready(90_000);
      assert.match(s.stderr(), new RegExp(`node 127.0.0.1:${latePort} not used`));
      const before = await status(s.url);
      let late: Promise<NodeProcess> | undefined;
      let joinedAt = 0;
      // The stream is held still (its node stopped, well within the heartbeat limit) while the late node starts and is dialed.
      const got = await stream(s.url, greedy, (count) => {
        if (count !== 10) return;
        nodes[0].proc.kill('SIGSTOP');
        late = startNode(['--port', String(latePort)], { env }).then(async (n) => {
          const until = Date.now() + 6000;
          while (!/joined; planning again/.test(s.stderr()) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
          if (/joined; planning again/.test(s.stderr())) joinedAt = Date.now();
          nodes[0].proc.kill('SIGCONT');
          return n;
        });
      });
      assert.ok(late, 'the late node was started mid-stream');
      nodes.push(await late);
      assert.equal(got.error, undefined);
      assert.equal(got.text, expected, 'the stream equals its undisturbed run');
      assert.ok(joinedAt > 0 && got.arrivals.some((t) => t > joinedAt), 'the node joined while the stream ran');
      assert.match(s.stderr(), new RegExp(`:${latePort}\\) joined; planning again`));
      const after = await status(s.url);
      assert.ok(after.epoch > before.epoch);
      assert.ok(
        after.plan!.stages.some((x) => x.nodeId === idOf(after, nodes[1])),
        'the late node holds layers',
      );
    } finally {
      await s.stop();
      await Promise.all(nodes.map((n) => n.stop()));
    }
  },
);

for (const mode of ['negative-token', 'extra-token', 'unknown-step']) {
  test(
    `a last stage that sends bad results (${mode}): that request fails clearly, the node is dropped, the server keeps serving`,
    { timeout: 120_000 },
    async () => {
      const expected = generate('hello', 20);
      const hostile = {
        ...env,
        CAIRN_TEST_BAD_RESULT: mode,
        NODE_OPTIONS: `--import ${pathToFileURL(join(ROOT, 'dist/test/helpers/bad-results.js')).href}`,
      };
      await withCluster(
        [[]],
        [],
        async (s, [node]) => {
          const st = await status(s.url);
          const nodeId = idOf(st, node);
          assert.equal(st.plan!.stages.at(-1)!.nodeId, nodeId, 'the hostile node is the last stage');
          const r = await stream(s.url, { prompt: 'hello', max_tokens: 20, temperature: 0, ignore_eos: true });
          assert.match(r.error ?? '', /sent a bad result/);
          const next = await complete(s.url, 'hello', 20);
          assert.equal(next.status, 200, next.error);
          assert.equal(next.text, expected);
          assert.equal((await health(s.url)).status, 200);
          const now = await status(s.url);
          assert.ok(!now.plan!.stages.some((x) => x.nodeId === nodeId), 'the plan no longer uses the node');
          assert.equal(s.proc.exitCode, null, 'the server is still running');
        },
        hostile,
      );
    },
  );
}
