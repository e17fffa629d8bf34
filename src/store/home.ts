/** Where cairn keeps what it owns for good (the model store): CAIRN_HOME, or ~/.cairn. */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/** The folder of cairn's model store: $CAIRN_HOME when set, else ~/.cairn. */
export function cairnHome(env: NodeJS.ProcessEnv = process.env): string {
  const set = env.CAIRN_HOME?.trim();
  return set ? resolve(set) : join(homedir(), '.cairn');
}
