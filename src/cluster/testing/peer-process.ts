/**
 * A cluster node in its own process, for tests and benchmarks that need a real second process.
 * Reads its settings as JSON from argv[2], listens, prints `{"port": N}` as one line on stdout,
 * and answers every request by echoing its payload type, sequence and payload (type ECHO_FRAME_TYPE).
 * It exits when its stdin closes, so it never outlives the process that started it.
 */

import { ClusterServer } from '../server.js';

/** The request type this process echoes. */
export const ECHO_FRAME_TYPE = 0x200;

/** Settings passed as JSON in argv[2]. */
export interface PeerProcessSettings {
  readonly nodeId: string;
  readonly name?: string;
  readonly clusterKey?: string;
  readonly compatibility?: string;
  readonly host?: string;
}

async function main(): Promise<void> {
  const settings = JSON.parse(process.argv[2] ?? '{}') as PeerProcessSettings;
  const server = new ClusterServer({ ...settings, host: settings.host ?? '127.0.0.1' });
  server.on('connection', (connection) => {
    connection.on('request', (frame) => {
      connection.reply(frame, ECHO_FRAME_TYPE, { dtype: frame.dtype, sequence: frame.sequence }, frame.payload);
    });
  });
  const address = await server.listen();
  process.stdout.write(`${JSON.stringify({ port: address.port, pid: process.pid })}\n`);
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
}

// Only run when executed directly, not when imported for ECHO_FRAME_TYPE.
if (process.argv[1]?.endsWith('peer-process.js')) {
  main().catch((err: unknown) => {
    process.stderr.write(`peer process failed: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
