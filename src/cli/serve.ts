/**
 * `cairn serve`: load a model once and serve the OpenAI and Ollama APIs until stopped. The server
 * listens at once (503 while loading) and shuts down cleanly on SIGINT/SIGTERM: in-flight streams
 * end with an error event, nothing is left half-written.
 */
import { Command, Option } from 'commander';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { loadModel } from '../engine/load.js';
import { CairnError } from '../util/errors.js';
import { parsePeerList } from '../cluster/peer-address.js';
import { checkModelFile } from './user-errors.js';
import { defaultStore, hubSourceOf, resolveModelArg, storeCatalog } from './model-arg.js';
import { addModelOptions, addSpeculationOptions, backendOptions, clusterSecretFromFlags, intArg, type ClusterKeyFlags, type SpeculationFlags, kvTypeOf } from './options.js';
import type { RequestLogEntry } from '../server/app.js';

interface ServeFlags extends ClusterKeyFlags, SpeculationFlags {
  model: string;
  host: string;
  port: number;
  apiKey?: string;
  parallel: number;
  maxQueue?: number;
  ctx?: number;
  threads?: number;
  kvType: string;
  backend: string;
  gpuLayers?: number;
  alias?: string;
  bodyLimit: number;
  cacheRam: number;
  promptCacheDir?: string;
  cluster?: boolean;
  peers?: string;
  localCompute: boolean;
  maxMemory?: number;
  mdns?: boolean;
  mdnsInterface?: string;
  activations?: 'f16' | 'f32';
  parallelism: 'auto' | 'pipeline' | 'tensor' | 'expert' | 'hybrid';
  exchange?: 'f32' | 'f16' | 'q8';
  allReduce: 'auto' | 'direct' | 'ring';
  requestTimeout: number;
  idleTimeout: number;
  templateTimeout: number;
  promptWorkers: number;
  strictModelNames?: boolean;
  corsOrigin?: string;
  allowedHosts?: string;
  logFormat: 'text' | 'json';
  logLevel: 'info' | 'debug';
  keepAlive: string;
}

function version(): string {
  return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

/** The serve command. */
export function serveCommand(): Command {
  const cmd = new Command('serve').description('Serve a model over an OpenAI-compatible (and Ollama-compatible) HTTP API');
  addModelOptions(cmd);
  addSpeculationOptions(cmd);
  cmd
    .option('--host <addr>', 'address to listen on', '127.0.0.1')
    .option('--port <n>', 'port to listen on (0 = any free port)', intArg(0, 65535), 8080)
    .option('--api-key <key>', 'require "Authorization: Bearer <key>" on every request (default: $CAIRN_API_KEY)')
    .option('--parallel <n>', 'sequences decoded together (KV slots)', intArg(1), 4)
    .option('--max-queue <n>', 'requests that may wait for a slot before the server answers 429 (default: 4 x parallel)', intArg(0))
    .option('--alias <name>', 'model name clients use (default: the file name)')
    .option('--body-limit <bytes>', 'largest request body', intArg(1024), 8 * 1024 * 1024)
    .option('--request-timeout <ms>', 'longest a client may take to send a request (headers and body); slower ones get 408', intArg(100), 30_000)
    .option('--idle-timeout <ms>', 'close a connection after this long without traffic either way (0 = never)', intArg(0), 600_000)
    .option('--template-timeout <ms>', "longest the model's chat template may run for one request; longer is a 400", intArg(10), 2000)
    .option('--prompt-workers <n>', 'threads that render chat templates and tokenize prompts', intArg(1), 2)
    .option('--cache-ram <bytes>', 'memory for prompt prefixes kept beyond the KV slots (0 = only the slots)', intArg(0), 1024 * 1024 * 1024)
    .option('--prompt-cache-dir <dir>', 'save the prompt cache here on shutdown and reuse it after a restart')
    .option('--cluster', 'run the model across cluster nodes (started with `cairn node`)')
    .option('--peers <list>', 'nodes as host:port,host:port (with --cluster)')
    .option('--cluster-key-file <file>', 'with --cluster: file holding the cluster key (readable only by you); keeps the key out of `ps`')
    .option('--cluster-key <key>', 'with --cluster: shared secret of the cluster (default: $CAIRN_CLUSTER_KEY); make one with `cairn cluster key`')
    .option('--allow-weak-key', 'with --cluster: accept a passphrase shorter than 16 characters')
    .option('--no-local-compute', 'with --cluster: this machine holds no layers, it only coordinates')
    .option('--max-memory <bytes>', 'with --cluster: memory this machine offers for its layers', intArg(1))
    .option('--mdns', 'with --cluster: also find nodes announced over mDNS on the local network')
    .option('--mdns-interface <addr>', 'with --mdns: look on the interface with this address only')
    .addOption(
      new Option(
        '--parallelism <kind>',
        'with --cluster: pipeline (layer ranges), tensor (every layer split over the nodes), expert (a Mixture-of-Experts model\'s routed experts spread over the nodes, the first holding the rest), hybrid (a stage, then a group of the other nodes) or auto (the planner chooses)',
      )
        .choices(['auto', 'pipeline', 'tensor', 'expert', 'hybrid'])
        .default('auto'),
    )
    .addOption(
      new Option('--exchange <type>', 'with --cluster: how tensor-parallel ranks exchange partial sums: f32 (exact), f16 (half the bytes) or q8 (about a quarter)').choices([
        'f32',
        'f16',
        'q8',
      ]),
    )
    .addOption(
      new Option(
        '--all-reduce <kind>',
        'with --cluster: how tensor-parallel groups of 3 or more nodes add up partial sums: direct (one round, every node to every other), ring (2(n-1) rounds of 1/n of the values each) or auto (whichever the measured links make cheaper for each exchange)',
      )
        .choices(['auto', 'direct', 'ring'])
        .default('auto'),
    )
    .addOption(new Option('--activations <type>', 'with --cluster: how hidden states travel between nodes (default: f32, or f16 where links are slow)').choices(['f16', 'f32']))
    .option('--cors-origin <origins>', "web pages of these origins (comma-separated, e.g. http://localhost:3000; or '*' for any) may call the API from a browser (default: none, only the server's own origin)")
    .option('--allowed-hosts <names>', "on a loopback address, host names answered besides this machine's (comma-separated; '*' for any): for a reverse proxy that passes its own Host. Requests naming other hosts get 403 (DNS rebinding)")
    .addOption(new Option('--log-format <format>', 'the line logged for each request (stderr): text, or json for machines').choices(['text', 'json']).default('text'))
    .option('--strict-model-names', "answer 404 to a request naming another model than this one (by default any name is served and echoed back, as clients configured for another server's model expect)")
    .option('--keep-alive <duration>', "how long the model stays loaded after its last request: a duration (5m, 1h30m), 0 (unload when idle) or -1 (until shutdown); Ollama requests' keep_alive changes it. Not with --cluster", '-1')
    .addOption(new Option('--log-level <level>', 'debug also tells, once per field, the request fields cairn ignores').choices(['info', 'debug']).default('info'))
    .action(async (o: ServeFlags) => {
      // The server modules load only for this command, keeping other commands' start-up short.
      const { buildServer } = await import('../server/app.js');
      const { ModelHost } = await import('../server/host.js');
      const apiKey = o.apiKey ?? process.env.CAIRN_API_KEY;
      // A bad or weak cluster key stops here, before anything listens.
      const clusterKey = o.cluster ? await clusterSecretFromFlags(o) : undefined;
      // So does a missing model file; a stored name or hf: model is found (or pulled) here.
      const resolved = await resolveModelArg(o.model);
      o.model = resolved.path;
      checkModelFile(o.model);
      const draftModel = o.draftModel ? (await resolveModelArg(o.draftModel, { option: '--draft-model' })).path : undefined;
      if (draftModel) checkModelFile(draftModel, '--draft-model');
      const store = defaultStore();
      const { keepAliveMs } = await import('../server/keep-alive.js');
      let keepAlive: number | undefined;
      try {
        keepAlive = keepAliveMs(o.keepAlive);
      } catch {
        throw new CairnError('BAD_ARGUMENT', `--keep-alive ${o.keepAlive}: give a duration such as 5m or 1h30m, 0 (unload when idle) or -1 (keep loaded)`);
      }
      if (o.promptCacheDir) checkCacheDir(o.promptCacheDir);
      // Addresses are checked before anything listens: a list of only commas would form a cluster of none.
      if (o.peers !== undefined && parsePeerList(o.peers).length === 0) throw new CairnError('BAD_ARGUMENT', `--peers "${o.peers.slice(0, 100)}" names no node; give host:port,host:port`);
      if (o.cluster && o.backend !== 'cpu') throw new CairnError('BAD_ARGUMENT', `--backend ${o.backend} with --cluster: the coordinator's own layers run on its CPU; to use this machine's GPU, drop --backend and start \`cairn node --backend gpu\` here as one of the --peers`);
      const loadOptions = {
        ...backendOptions(o),
        threads: o.threads,
        ctx: o.ctx,
        slots: o.parallel,
        kvType: kvTypeOf(o.kvType),
        maxQueue: o.maxQueue ?? 4 * o.parallel,
        promptCache: { budgetBytes: o.cacheRam, dir: o.promptCacheDir },
        speculation: { maxDraft: o.draftMax, draftModel },
      } as const;
      let coordinator: import('../mesh/coordinator.js').ClusterCoordinator | undefined;
      const host = new ModelHost(
        o.model,
        async () => {
          if (!o.cluster) {
            const m = await loadModel(o.model, loadOptions);
            if (m.placement.note) process.stderr.write(`cairn: ${m.placement.note}\n`);
            else if (m.placement.adapter) process.stderr.write(`cairn: layers on the GPU (${m.placement.adapter})\n`);
            return m;
          }
          const { ClusterCoordinator } = await import('../mesh/coordinator.js');
          const { readGguf } = await import('../gguf/reader.js');
          const { readModelConfig } = await import('../model/config.js');
          const { createKernels } = await import('../kernels/index.js');
          const { modelFromParts } = await import('../engine/load.js');
          const file = readGguf(o.model);
          const config = readModelConfig(file);
          const ctx = o.ctx ?? Math.min(config.ctxTrain, 4096);
          coordinator = await ClusterCoordinator.start({
            modelPath: o.model,
            file,
            config,
            peers: o.peers ? o.peers.split(',').map((p) => p.trim()).filter(Boolean) : [],
            clusterKey,
            localCompute: o.localCompute,
            threads: o.threads,
            maxMemory: o.maxMemory,
            ctx,
            slots: o.parallel,
            kvType: loadOptions.kvType,
            maxBatch: 512,
            discoveryMs: o.mdns ? 2000 : 0,
            mdnsInterface: o.mdnsInterface,
            activations: o.activations,
            parallelism: o.parallelism,
            exchange: o.exchange,
            allReduce: o.allReduce,
            progress: process.stderr.isTTY,
            hubSource: hubSourceOf(store, o.model),
            // Status (and shard downloads in progress) can be read while the plan loads.
            onCreated: (c) => (coordinator = c),
          });
          const c = coordinator;
          return modelFromParts(
            { path: o.model, file, config, kernels: createKernels({ threads: o.threads }), shards: [], runner: c, ctx, kvType: loadOptions.kvType, mappedBytes: 0, kvBytes: 0, close: () => void c.close() },
            loadOptions,
          );
        },
        o.alias ?? resolved.storedName,
        {
          promptWorkers: o.promptWorkers,
          templateTimeoutMs: o.templateTimeout,
          strictModelNames: o.strictModelNames,
          keepAliveMs: keepAlive,
          // A cluster's nodes hold their shards for as long as it is formed: it is never unloaded.
          unloadable: !o.cluster,
          onLifecycle: (event) => process.stderr.write(`cairn: ${host.id} ${event === 'unloaded' ? 'unloaded (keep_alive ran out; the next request loads it again)' : 'loaded again'}\n`),
          onUnknownField:
            o.logLevel === 'debug' ? (field) => process.stderr.write(`cairn: ignoring the request field "${field.slice(0, 100)}", which cairn does not know (said once per field)\n`) : undefined,
        },
      );
      const { DashboardAssets } = await import('../dashboard/assets.js');
      // The web app, where this install has it built (dist/web); the API works without it.
      const web = DashboardAssets.load();
      const { app, metrics } = buildServer(host, {
        apiKey,
        bodyLimit: o.bodyLimit,
        version: version(),
        cluster: () => coordinator?.status(),
        requestTimeoutMs: o.requestTimeout,
        idleTimeoutMs: o.idleTimeout,
        logRequest: (e) => process.stderr.write(requestLine(e, o.logFormat) + '\n'),
        corsOrigins: o.corsOrigin === undefined ? undefined : o.corsOrigin.trim() === '*' ? '*' : o.corsOrigin.split(',').map((s) => s.trim()).filter(Boolean),
        webApp: web,
        models: storeCatalog(store),
        bindAddress: o.host,
        allowedHosts: o.allowedHosts === undefined ? undefined : o.allowedHosts.trim() === '*' ? '*' : o.allowedHosts.split(',').map((s) => s.trim()).filter(Boolean),
      });
      if (web) (await import('../dashboard/routes.js')).registerDashboard(app, web, { host, metrics, cluster: () => coordinator?.status(), stored: () => store.list() });
      const address = await app.listen({ host: o.host, port: o.port });
      process.stderr.write(`cairn: listening on ${address} (OpenAI API at ${address}/v1${web ? `, dashboard at ${address}/` : ''})\n`);
      // Yield once so the listening line is out before the synchronous part of loading starts.
      // CAIRN_LOAD_DELAY_MS stands in for a slow disk, so tests can watch a loading server answer 503.
      await new Promise((r) => setTimeout(r, Number(process.env.CAIRN_LOAD_DELAY_MS ?? 0)));
      await host.start();
      if (host.state === 'failed') {
        process.stderr.write(`cairn: ${host.error?.message}\n`);
        await app.close();
        process.exitCode = 1;
        return;
      }
      const m = host.model!;
      // The first request's end starts the keep-alive clock; until then the model waits for one.
      const serving = m.embeddingOnly ? 'embeddings only' : `${o.parallel} slots of ${m.engine.runner.ctxPerSlot} tokens`;
      process.stderr.write(`cairn: ${host.id} ready: ${m.config.nLayer} layers, ${serving}${apiKey ? ', API key required' : ''}\n`);
      let stopping = false;
      const stop = async (signal: string) => {
        if (stopping) return;
        stopping = true;
        process.stderr.write(`cairn: ${signal}: shutting down\n`);
        // The model now, which keep_alive may have unloaded (or loaded again) since start-up.
        const now = host.model;
        now?.engine.shutdown('the server is shutting down');
        // Let in-flight streams write their error event before connections close.
        await new Promise((r) => setTimeout(r, 50));
        await app.close();
        if (!now) return;
        try {
          const saved = await now.engine.persistPromptCache();
          if (saved > 0) process.stderr.write(`cairn: saved ${saved} prompt-cache entries to ${o.promptCacheDir}\n`);
        } catch (err) {
          process.stderr.write(`cairn: the prompt cache was not saved to ${o.promptCacheDir}: ${(err as Error).message}\n`);
        }
        now.close();
      };
      process.once('SIGINT', () => void stop('SIGINT'));
      process.once('SIGTERM', () => void stop('SIGTERM'));
    });
  return cmd;
}

/** A request's log line: `cairn: POST /v1/chat/completions 200 12+30 tokens 153 ms`, or one JSON object. */
function requestLine(e: RequestLogEntry, format: 'text' | 'json'): string {
  if (format === 'json') {
    return JSON.stringify({ time: new Date().toISOString(), method: e.method, path: e.path, status: e.status, prompt_tokens: e.promptTokens, completion_tokens: e.completionTokens, ms: e.ms });
  }
  // A path is the client's: no control characters reach the log.
  const path = Array.from(e.path.slice(0, 200), (c) => (c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f ? '?' : c)).join('');
  const tokens = e.promptTokens !== undefined ? ` ${e.promptTokens}+${e.completionTokens} tokens` : '';
  return `cairn: ${e.method} ${path} ${e.status}${tokens} ${e.ms} ms`;
}

/** --prompt-cache-dir must be a folder this process can make or use: told before anything listens, not at shutdown. */
function checkCacheDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
    if (!statSync(dir).isDirectory()) throw new Error('not a folder');
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code === 'EEXIST' || (err as Error).message === 'not a folder' ? 'it is a file, not a folder' : (err as Error).message;
    throw new CairnError('BAD_ARGUMENT', `--prompt-cache-dir ${dir}: ${why}; name a folder for the saved prompt cache`);
  }
}
