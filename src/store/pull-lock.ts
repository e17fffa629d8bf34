/**
 * One download of a file at a time: within a process (two /api/pull requests for the same model
 * share one download) and across processes (a lock file beside the blob holding the puller's pid;
 * a lock whose process is gone is taken over, so a pull killed midway never blocks the next).
 */
import { openSync, readFileSync, rmSync, writeSync, closeSync } from 'node:fs';
import { CairnError } from '../util/errors.js';
import { processAlive } from '../util/process-alive.js';

const inProcess = new Map<string, Promise<unknown>>();


function takeFileLock(path: string): void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let pid = NaN;
      try {
        pid = Number(readFileSync(path, 'utf8').trim());
      } catch {
        // Gone meanwhile: try again.
      }
      if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && processAlive(pid)) {
        throw new CairnError('BAD_ARGUMENT', `another cairn process (pid ${pid}) is downloading this file; wait for it to finish, or stop it`);
      }
      rmSync(path, { force: true });
    }
  }
  throw new CairnError('BAD_ARGUMENT', `cannot take the download lock ${path}`);
}

/**
 * Runs `work` holding the lock named `path` (a file that is created and removed). Callers in this
 * process with the same path wait for the first and then run in turn; `onWait` is told once when a
 * caller has to wait (a pull's progress stream says why it is quiet).
 */
export async function withPullLock<T>(path: string, work: () => Promise<T>, onWait?: () => void): Promise<T> {
  if (inProcess.has(path)) onWait?.();
  while (inProcess.has(path)) await inProcess.get(path)!.catch(() => {});
  const run = (async () => {
    takeFileLock(path);
    try {
      return await work();
    } finally {
      rmSync(path, { force: true });
    }
  })();
  inProcess.set(path, run);
  try {
    return await run;
  } finally {
    if (inProcess.get(path) === run) inProcess.delete(path);
  }
}
