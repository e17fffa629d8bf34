/** A cluster of real processes on loopback for a test: `cairn node` children and a `cairn serve --cluster` coordinator. */
import type { ClusterStatus } from '../../src/mesh/coordinator.js';
import { startNode, type NodeProcess } from './node.js';
import { startServer, type ServerProcess } from './server.js';

/** The coordinator's /v1/cluster status. */
export async function clusterStatus(url: string): Promise<ClusterStatus> {
  return (await (await fetch(`${url}/v1/cluster`)).json()) as ClusterStatus;
}

/**
 * A function that starts nodes (one per argument list), a coordinator over them (a 256-token
 * context) in environment `env`, runs `fn` once it is ready, and stops them all.
 */
export function clusterRunner(env: NodeJS.ProcessEnv) {
  return async function withCluster<T>(nodeArgs: string[][], serveArgs: string[], fn: (s: ServerProcess, nodes: NodeProcess[]) => Promise<T>): Promise<T> {
    const nodes: NodeProcess[] = [];
    let server: ServerProcess | undefined;
    try {
      for (const a of nodeArgs) nodes.push(await startNode(a, { env }));
      server = await startServer([...serveArgs, '--cluster', '--peers', nodes.map((n) => n.peer).join(','), '--ctx', '256'], env);
      await server.ready();
      return await fn(server, nodes);
    } finally {
      await server?.stop();
      await Promise.all(nodes.map((n) => n.stop()));
    }
  };
}
