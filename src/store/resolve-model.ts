/**
 * What `-m` means: a GGUF file's path, a stored model's name, or `hf:owner/repo[:TAG]` (found in the
 * store, else pulled on first use). A name the store knows never touches the network, so stored
 * models work offline.
 */
import { existsSync, statSync } from 'node:fs';
import { CairnError } from '../util/errors.js';
import { HubClient } from './hub-client.js';
import { formatHubRef, isHubRef, parseHubRef } from './hub-ref.js';
import { ModelStore } from './model-store.js';
import { pullModel, type PullEvent, type PullOptions } from './pull.js';

/** How a model argument is resolved. */
export interface ResolveOptions {
  readonly store: ModelStore;
  /** Pull an `hf:` model the store lacks (default true); false: refuse with a hint to pull. */
  readonly pull?: boolean;
  /** Makes the hub client for a pull (default: from the environment). */
  readonly client?: () => HubClient;
  readonly onEvent?: (e: PullEvent) => void;
  readonly signal?: AbortSignal;
  /** Checks a model to be pulled from its header first (PullOptions.check). */
  readonly check?: PullOptions['check'];
  /** The command-line option the model was given with, as errors name it (default -m). */
  readonly option?: string;
}

/** A model argument resolved to a file. */
export interface ResolvedModel {
  readonly path: string;
  /** The stored model's name, when it came from the store. */
  readonly storedName?: string;
  /** True when this call pulled it. */
  readonly pulled: boolean;
}

/** Resolves `spec` to a model file (see the module doc). Throws FILE_NOT_FOUND saying what was tried. */
export async function resolveModel(spec: string, opts: ResolveOptions): Promise<ResolvedModel> {
  if (isHubRef(spec)) {
    const ref = parseHubRef(spec);
    const stored = opts.store.find(formatHubRef(ref));
    if (stored) return { path: stored.path, storedName: stored.name, pulled: false };
    if (opts.pull === false) throw new CairnError('FILE_NOT_FOUND', `${spec} is not in the model store; run \`cairn pull ${spec}\` first`);
    const model = await pullModel(ref, { store: opts.store, client: (opts.client ?? (() => new HubClient()))(), onEvent: opts.onEvent, signal: opts.signal, check: opts.check });
    return { path: model.path, storedName: model.name, pulled: true };
  }
  if (existsSync(spec)) {
    if (statSync(spec).isDirectory()) throw new CairnError('BAD_ARGUMENT', `${spec} is a directory; give the path of a .gguf model file with ${opts.option ?? '-m'}`);
    return { path: spec, pulled: false };
  }
  const stored = looksLikeName(spec) ? opts.store.find(spec) : undefined;
  if (stored) return { path: stored.path, storedName: stored.name, pulled: false };
  throw new CairnError(
    'FILE_NOT_FOUND',
    `${spec}: no such file, and no stored model has that name; \`cairn ls\` lists stored models, \`cairn pull hf:OWNER/REPO:TAG\` fetches one`,
  );
}

/** A model name rather than a path: no path separators but the `/` of owner/repo, nothing ending in .gguf. */
function looksLikeName(spec: string): boolean {
  return spec.length > 0 && spec.length <= 512 && !spec.startsWith('.') && !spec.startsWith('/') && !spec.includes('\\') && !spec.toLowerCase().endsWith('.gguf');
}
