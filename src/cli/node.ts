/** `cairn node`: a worker that holds part of a model for a coordinator (`cairn serve --cluster`). */
import { Command, Option } from 'commander';
import { addClusterKeyOptions, clusterSecretFromFlags, intArg, type ClusterKeyFlags } from './options.js';
import { DEFAULT_CLUSTER_PORT } from '../cluster/peer-address.js';

interface NodeFlags extends ClusterKeyFlags {
  host?: string;
  port: number;
  name?: string;
  threads?: number;
  maxMemory?: number;
  modelsDir?: string;
  cacheMaxBytes?: number;
  mdns?: boolean;
  mdnsInterface?: string;
  backend: 'cpu' | 'gpu' | 'auto';
}

/** The node command. */
export function nodeCommand(): Command {
  const cmd = new Command('node');
  addClusterKeyOptions(cmd);
  return cmd
    .description('Run a cluster node: it waits for a coordinator (cairn serve --cluster) and holds the layers it is given')
    .option('--host <addr>', 'address to listen on (default: 127.0.0.1 without a cluster key, all interfaces with one)')
    .option('--port <n>', 'port to listen on (0 = any free port)', intArg(0, 65535), DEFAULT_CLUSTER_PORT)
    .option('--name <name>', 'name shown in cluster status (default: the host name)')
    .option('-t, --threads <n>', 'compute threads (default: physical cores)', intArg(1))
    .option('--max-memory <bytes>', 'memory this node offers for weights and KV cache (default: 90% of free memory)', intArg(1))
    .option('--models-dir <dir>', 'folder of GGUF files this node has; layers of those models load from here instead of over the network')
    .option('--cache-max-bytes <bytes>', 'most disk space the cache of shards received from coordinators may take; least recently used shards go first (default: the free space of its disk less 10%)', intArg(0))
    .option('--mdns', 'announce the node on the local network over mDNS (default: on with a cluster key)')
    .option('--no-mdns', 'do not announce the node over mDNS')
    .option('--mdns-interface <addr>', 'announce on the interface with this address only')
    .addOption(
      new Option(
        '--backend <name>',
        'where this node\'s layers run: cpu; gpu (through WebGPU; an error when no adapter opens); auto (a hardware GPU if there is one). A GPU node offers the GPU\'s measured read rate to the planner; set --max-memory to a discrete GPU\'s memory',
      )
        .choices(['cpu', 'gpu', 'auto'])
        .default('cpu'),
    )
    .action(async (o: NodeFlags) => {
      const clusterKey = await clusterSecretFromFlags(o);
      const { MeshNode } = await import('../mesh/node.js');
      const { publishedFiles } = await import('./published-files.js');
      const { MachineSampler } = await import('../dashboard/machine.js');
      const machine = new MachineSampler();
      const machineSampler = () => () => {
        const { cpuLoad, powerWatts } = machine.sample();
        return { cpuLoad, powerWatts };
      };
      const node = await MeshNode.start({
        host: o.host,
        port: o.port,
        clusterKey,
        name: o.name,
        threads: o.threads,
        maxMemory: o.maxMemory,
        modelsDir: o.modelsDir,
        cacheMaxBytes: o.cacheMaxBytes,
        mdns: o.mdns,
        mdnsInterface: o.mdnsInterface,
        published: publishedFiles(),
        sampleMachine: machineSampler(),
        backend: o.backend,
      });
      const a = node.address;
      const c = node.capabilities;
      process.stderr.write(
        `cairn node ${c.name}: listening on ${a.host}:${a.port}${a.loopbackOnly ? ' (no cluster key: only connections from this machine are accepted)' : ''}; ` +
          `offers ${(c.memoryBytes / 2 ** 30).toFixed(1)} GiB, ${(c.bytesPerSecond / 1e9).toFixed(1)} GB/s, ${c.backend === 'gpu' ? `on the GPU ${c.adapter}` : `${c.threads} threads (${c.isa})`}\n`,
      );
      const stop = async () => {
        await node.close();
        process.exit(0);
      };
      process.once('SIGINT', () => void stop());
      process.once('SIGTERM', () => void stop());
    });
}
