/**
 * The model a server serves: loaded once in the background while the server already answers
 * (503 until ready), kept loaded until shutdown, with the workers that prepare its prompts
 * (prompt-workers.ts). Routes ask the host for the model, its prompt workers and its names.
 */
import { basename } from 'node:path';
import type { LoadedModel } from '../engine/load.js';
import { modelNotFound, unavailable } from './errors.js';
import { PromptWorkers } from './prompt-workers.js';
import { warmConstraints } from './response-format.js';

/** How prompts are prepared. */
export interface HostOptions {
  /** Prompt worker threads (default 2). */
  readonly promptWorkers?: number;
  /** Longest a chat template may run for one request, in ms (default 2000). */
  readonly templateTimeoutMs?: number;
  /**
   * Answer only to the model's own names (404 otherwise). By default a server with one model
   * serves it whatever name a client was configured with, and echoes that name back.
   */
  readonly strictModelNames?: boolean;
  /** Told once per request field cairn does not know and ignores (a debug log line). */
  readonly onUnknownField?: (field: string) => void;
}

/** Loading state of the served model. */
export type HostState = 'loading' | 'ready' | 'failed';

/** Holds the served model and its loading state. */
export class ModelHost {
  state: HostState = 'loading';
  model: LoadedModel | undefined;
  private workers: PromptWorkers | undefined;
  error: Error | undefined;
  /** The id clients use in `model` (the file name without .gguf). */
  readonly id: string;
  readonly created = Math.floor(Date.now() / 1000);
  /** Settles when loading ends (never rejects; see `state`). Starts with start(). */
  ready: Promise<void> = new Promise(() => {});

  constructor(
    readonly path: string,
    private readonly load: () => Promise<LoadedModel>,
    alias?: string,
    private readonly options: HostOptions = {},
  ) {
    this.id = alias ?? basename(path).replace(/\.gguf$/i, '');
  }

  /** Starts loading (after the server listens, so clients see 503 rather than a refused connection). */
  start(): Promise<void> {
    this.ready = this.loadAll().then(
      () => {
        this.state = 'ready';
      },
      (err: Error) => {
        this.error = err;
        this.state = 'failed';
      },
    );
    return this.ready;
  }

  private async loadAll(): Promise<void> {
    const m = await this.load();
    try {
      this.workers = await PromptWorkers.start({
        path: this.path,
        ctx: m.engine.runner.ctxPerSlot,
        workers: this.options.promptWorkers,
        templateTimeoutMs: this.options.templateTimeoutMs,
      });
      warmConstraints(m);
    } catch (err) {
      m.close();
      throw err;
    }
    this.model = m;
  }

  /** Stops the prompt workers (a render in progress is abandoned). */
  async close(): Promise<void> {
    await this.workers?.close();
  }

  /** The workers that render and tokenize prompts off the event loop (once ready; see require()). */
  get prompts(): PromptWorkers {
    if (!this.workers) throw unavailable('The model is still loading; retry in a moment (GET /health says when it is ready).');
    return this.workers;
  }

  /** Names a request may use for this model: the id, the file name, and the path. */
  get names(): string[] {
    return [this.id, basename(this.path), this.path];
  }

  /** The name to answer with for a request that named `requested`: that name (as OpenAI echoes the model), or the id. */
  nameFor(requested: string | undefined): string {
    return requested ?? this.id;
  }

  /** Notes request fields that are ignored: each is told once (onUnknownField). */
  ignored(fields: readonly string[]): void {
    for (const f of fields) {
      if (this.told.has(f) || this.told.size >= 1000) continue;
      this.told.add(f);
      this.options.onUnknownField?.(f);
    }
  }

  private readonly told = new Set<string>();

  /** The loaded model, or the 404/503 a request for `name` should get. Once it returns, `prompts` is set. */
  require(name?: string): LoadedModel {
    // Ollama's clients add a tag (`model:latest`); the model's own names, tagged `latest`, are its names too.
    if (name !== undefined && this.options.strictModelNames && !this.names.includes(name.replace(/:latest$/, ''))) throw modelNotFound(name, [this.id]);
    if (this.state === 'loading') throw unavailable('The model is still loading; retry in a moment (GET /health says when it is ready).');
    if (this.state === 'failed') throw unavailable(`The model failed to load: ${this.error?.message}`);
    return this.model!;
  }
}
