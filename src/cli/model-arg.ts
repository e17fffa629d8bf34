/**
 * Turns a command's `-m` into a model file: a path, a stored model's name, or `hf:owner/repo:TAG`
 * (pulled into the store on first use, with a progress bar). Every command that takes a model
 * resolves it here, so they all accept the same names.
 */
import { basename, resolve } from 'node:path';
import { ProgressReporter } from '../util/progress.js';
import { CairnError } from '../util/errors.js';
import type { GgufFile } from '../gguf/reader.js';
import { summarizeModel } from '../model/summary.js';
import { cairnHome } from '../store/home.js';
import { ModelStore } from '../store/model-store.js';
import type { PullEvent } from '../store/pull.js';
import type { ModelCatalog } from '../server/model-catalog.js';
import type { HubShardSource } from '../mesh/hub-shard.js';
import { resolveModel, type ResolvedModel } from '../store/resolve-model.js';

/** The store under CAIRN_HOME (or ~/.cairn). */
export function defaultStore(): ModelStore {
  return new ModelStore(cairnHome());
}

/**
 * Draws a pull's progress on stderr: a bar per file (bytes, rate, time left) on a terminal, a
 * line per step otherwise. Returns the listener and a function that erases what is drawn.
 */
export function pullProgress(quiet = false): { onEvent: (e: PullEvent) => void; stop: () => void } {
  const tty = process.stderr.isTTY && !quiet;
  let bar: ProgressReporter | undefined;
  let digest: string | undefined;
  const onEvent = (e: PullEvent) => {
    if (quiet) return;
    if (e.digest !== undefined && e.total !== undefined) {
      if (e.digest !== digest) {
        bar?.stop();
        digest = e.digest;
        const what = `${e.status} (${(e.total / 2 ** 30).toFixed(2)} GiB)`;
        if (tty) bar = new ProgressReporter(e.status, e.total);
        else process.stderr.write(`cairn: ${what}\n`);
      }
      bar?.update(e.completed ?? 0, e.total);
      return;
    }
    bar?.stop();
    bar = undefined;
    digest = undefined;
    if (e.status !== 'success') process.stderr.write(`cairn: ${e.status}\n`);
  };
  return { onEvent, stop: () => bar?.stop() };
}

/** Resolves a `-m` argument to a model file, pulling an `hf:` model the store lacks. */
export async function resolveModelArg(spec: string, opts: { quiet?: boolean; option?: string } = {}): Promise<ResolvedModel> {
  const progress = pullProgress(opts.quiet);
  try {
    const r = await resolveModel(spec, { store: defaultStore(), onEvent: progress.onEvent, check: checkRunnable, option: opts.option });
    if (r.pulled && !opts.quiet) process.stderr.write(`cairn: pulled ${r.storedName} (${basename(r.path)})\n`);
    return r;
  } finally {
    progress.stop();
  }
}

/** The store as the server lists and fills it (Ollama's /api/pull). */
export function storeCatalog(store: ModelStore): ModelCatalog {
  return {
    list: () => store.list(),
    pull: async (name, onEvent, signal) => {
      const { HubClient } = await import('../store/hub-client.js');
      const { parseHubRef } = await import('../store/hub-ref.js');
      const { pullModel } = await import('../store/pull.js');
      await pullModel(parseHubRef(name), { store, client: new HubClient(), onEvent, signal, check: checkRunnable });
    },
  };
}

/**
 * Where a stored model was published (repository, commit, files), for nodes that fetch their shard
 * from there; undefined for a model that is not a stored pull.
 */
export function hubSourceOf(store: ModelStore, path: string): HubShardSource | undefined {
  const m = store.list().find((s) => s.path === resolve(path));
  if (!m || !/^[0-9a-f]{40}$/.test(m.source.commit)) return undefined;
  return { repo: m.source.repo, commit: m.source.commit, files: m.source.files.map((f) => ({ path: f.path, size: f.size, ...(f.headerBytes !== undefined ? { headerBytes: f.headerBytes } : {}) })) };
}

/**
 * Refuses, before a pull downloads it, a model cairn cannot run (an architecture or a tensor type
 * it does not compute), judged from its header as `cairn inspect` judges a file.
 */
export function checkRunnable(header: GgufFile): void {
  const s = summarizeModel(header);
  if (!s.config) {
    throw new CairnError('MODEL_UNSUPPORTED', `${header.path}: cairn cannot run this model (${s.unsupportedReason ?? 'unknown reason'}); nothing was downloaded. \`cairn pull --force\` fetches it anyway`);
  }
}
