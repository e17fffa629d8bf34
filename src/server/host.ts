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
  /**
   * How long the model stays loaded after its last request, in ms (default Infinity: until
   * shutdown); a request's `keep_alive` changes it from then on, as Ollama's do.
   */
  readonly keepAliveMs?: number;
  /** False where the model cannot be unloaded and loaded again on demand (a cluster): keep_alive is then ignored. */
  readonly unloadable?: boolean;
  /** Told when the model is unloaded or loaded again on demand (a log line). */
  readonly onLifecycle?: (event: 'unloaded' | 'reloaded') => void;
}

/** Loading state of the served model: `unloaded` once its keep-alive ran out (the next request loads it again). */
export type HostState = 'loading' | 'ready' | 'failed' | 'unloaded';

/** Longest timer Node keeps (about 24.8 days); a longer keep-alive is kept until shutdown. */
const MAX_TIMER_MS = 2 ** 31 - 1;

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
  /** When the model will be unloaded (ms since the epoch; Infinity: never), for /api/ps. */
  expiresAt = Infinity;
  private keepAliveMs: number;
  /** Requests using the model now: it is never unloaded under them. */
  private users = 0;
  private unloadTimer: NodeJS.Timeout | undefined;
  /** Set while the model loads again on demand: requests then wait for it instead of getting 503. */
  private reloading: Promise<void> | undefined;

  constructor(
    readonly path: string,
    private readonly load: () => Promise<LoadedModel>,
    alias?: string,
    private readonly options: HostOptions = {},
  ) {
    this.id = alias ?? basename(path).replace(/\.gguf$/i, '');
    this.keepAliveMs = options.keepAliveMs ?? Infinity;
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

  /** Stops the prompt workers (a render in progress is abandoned) and any unload timer. */
  async close(): Promise<void> {
    clearTimeout(this.unloadTimer);
    await this.workers?.close();
  }

  /** Whether keep_alive can unload this model. */
  get unloadable(): boolean {
    return this.options.unloadable !== false;
  }

  /**
   * A request starts using the model: an unloaded model loads again first (the request waits for
   * it, as Ollama's do), and no unload happens until the request ends (see leave()).
   */
  async enter(): Promise<void> {
    this.users++;
    clearTimeout(this.unloadTimer);
    this.expiresAt = Infinity;
    if (this.state === 'unloaded') {
      this.reloading ??= this.start().then(() => {
        this.reloading = undefined;
        if (this.state === 'ready') this.options.onLifecycle?.('reloaded');
      });
    }
    if (this.reloading) await this.reloading;
  }

  /**
   * A request stopped using the model. `keepAliveMs` (its keep_alive) becomes the model's from now
   * on: 0 unloads it once no request uses it, Infinity keeps it, a duration keeps it that long after
   * the last request.
   */
  leave(keepAliveMs?: number): void {
    this.users = Math.max(0, this.users - 1);
    if (keepAliveMs !== undefined && this.unloadable) this.keepAliveMs = keepAliveMs;
    if (this.users > 0 || this.state !== 'ready') return;
    clearTimeout(this.unloadTimer);
    const ms = this.keepAliveMs;
    if (ms > MAX_TIMER_MS) {
      this.expiresAt = Infinity;
      return;
    }
    this.expiresAt = Date.now() + ms;
    this.unloadTimer = setTimeout(() => void this.unload(), ms);
    // A pending unload never keeps the process alive.
    this.unloadTimer.unref();
  }

  /** Unloads the model (its memory and prompt workers) if no request uses it; the next request loads it again. */
  private async unload(): Promise<void> {
    const m = this.model;
    if (this.users > 0 || this.state !== 'ready' || !m) return;
    this.state = 'unloaded';
    this.model = undefined;
    this.expiresAt = Infinity;
    const workers = this.workers;
    this.workers = undefined;
    await workers?.close();
    // What the slots hold goes to the prompt cache's directory (when it has one), as at shutdown.
    await m.engine.persistPromptCache().catch(() => 0);
    m.engine.shutdown('the model was unloaded');
    m.close();
    this.options.onLifecycle?.('unloaded');
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

  /** Throws the 404 a request naming `name` gets where only the model's own names are served. */
  requireName(name?: string): void {
    // Ollama's clients add a tag (`model:latest`); the model's own names, tagged `latest`, are its names too.
    if (name !== undefined && this.options.strictModelNames && !this.names.includes(name.replace(/:latest$/, ''))) throw modelNotFound(name, [this.id]);
  }

  /** The loaded model, or the 404/503 a request for `name` should get. Once it returns, `prompts` is set. */
  require(name?: string): LoadedModel {
    this.requireName(name);
    if (this.state === 'loading') throw unavailable('The model is still loading; retry in a moment (GET /health says when it is ready).');
    if (this.state === 'failed') throw unavailable(`The model failed to load: ${this.error?.message}`);
    if (this.state === 'unloaded' || !this.model) throw unavailable('The model is unloaded (its keep_alive ran out); it loads again with the next request that uses it.');
    return this.model!;
  }
}
