/**
 * The llama.cpp oracle in a process of its own (llama-cpp.ts runs it so on CPUs with AMX):
 * `node llama-cpp-child.js REQUEST_FILE` reads { path, prompt, steps, opts } as JSON from the file
 * and prints llama.cpp's greedy steps as JSON. Without an argument (the test runner loads every
 * file under test/) it does nothing.
 */
import { readFileSync } from 'node:fs';
import { llamaCppGreedyHere, type OracleOptions, type OracleWireStep } from './llama-cpp.js';

const requestFile = process.argv[2];
if (requestFile) {
  const { path, prompt, steps, opts } = JSON.parse(readFileSync(requestFile, 'utf8')) as { path: string; prompt: number[]; steps: number; opts: OracleOptions };
  const result = await llamaCppGreedyHere(path, prompt, steps, opts);
  const wire: OracleWireStep[] = result.map((s) => ({ token: s.token, ids: [...s.probabilities.keys()], probabilities: [...s.probabilities.values()] }));
  process.stdout.write(JSON.stringify(wire));
}
