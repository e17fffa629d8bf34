/**
 * Prompt preparation off the event loop: a small pool of worker threads (prompt-worker.ts) that
 * render chat templates and tokenize, so that one request's long prompt or a model's slow
 * template never holds up the others (or /health). A template runs with a step and time budget
 * inside the worker; a worker stuck past that (inside one long builtin) is terminated and
 * replaced, and its request fails with 400. Closing the pool terminates every worker, so a stuck
 * render never keeps the process from shutting down.
 */
import { Worker } from 'node:worker_threads';
import type { ChatMessage, ToolDefinition } from '../engine/chat.js';
import type { TemplateBudget } from '../tokenizer/chat/index.js';
import { CairnError, type CairnErrorCode } from '../util/errors.js';
import { checkPromptBytes } from './prompt-bounds.js';

/** What a worker is started with. */
export interface PromptWorkerData {
  /** The model file (its tokenizer and chat template are read from it). */
  readonly path: string;
  /** Tokens a prompt may have (it must leave room for one generated token). */
  readonly ctx: number;
  readonly budget: TemplateBudget;
}

/** A job sent to a worker. */
export type PromptJob =
  | {
      readonly id: number;
      readonly kind: 'chat';
      readonly messages: readonly ChatMessage[];
      readonly tools?: readonly ToolDefinition[];
      readonly variables?: Readonly<Record<string, unknown>>;
      /** Text that follows the rendered conversation (the start of the answer), tokenized with it. */
      readonly continuation?: string;
    }
  /**
   * `plain`: no BOS and special-token text read as text (a piece placed between tokens the caller adds).
   * `uncapped`: every token however many, unchecked against the context (the caller bounds them).
   */
  | { readonly id: number; readonly kind: 'text'; readonly text: string; readonly plain?: boolean; readonly uncapped?: boolean };

/** A message from a worker. */
export type WorkerMessage =
  | { readonly type: 'ready'; readonly templateSource?: string; readonly byteLimit?: number }
  | { readonly type: 'rendered'; readonly id: number }
  | { readonly type: 'done'; readonly id: number; readonly ids: Int32Array }
  | { readonly type: 'failed'; readonly id: number; readonly code?: CairnErrorCode; readonly message: string };

/** Pool settings. */
export interface PromptWorkersOptions {
  readonly path: string;
  readonly ctx: number;
  /** Worker threads (default 2). */
  readonly workers?: number;
  /** Longest a chat template may run, in ms (default 2000). */
  readonly templateTimeoutMs?: number;
  /** Most interpreter steps of one rendering (default: the template module's). */
  readonly templateMaxSteps?: number;
  /** Jobs that may wait for a worker before new ones are refused with QUEUE_FULL (default 256). */
  readonly maxWaiting?: number;
  /** Heap of each worker in MiB; a rendering that needs more fails (default 512). */
  readonly memoryMb?: number;
  /** Longest any one job may take, in ms (default 120 s). */
  readonly jobTimeoutMs?: number;
}

/** After its budget, how long a template gets before its worker is terminated. */
const TEMPLATE_GRACE_MS = 1000;
/** Longest any job may take (tokenizing a prompt that passed the byte check takes far less). */
const JOB_TIMEOUT_MS = 120_000;

interface Pending {
  readonly job: PromptJob;
  readonly resolve: (ids: number[]) => void;
  readonly reject: (err: Error) => void;
  readonly signal?: AbortSignal;
  onAbort?: () => void;
}

interface Slot {
  worker: Worker;
  ready: boolean;
  pending?: Pending;
  timer?: NodeJS.Timeout;
}

/** The pool. */
export class PromptWorkers {
  /** The chat template's source (its tool-call syntax is read from it). */
  templateSource: string | undefined;
  /** See promptByteLimit. */
  byteLimit: number | undefined;
  private readonly slots = new Set<Slot>();
  private readonly waiting: Pending[] = [];
  private nextId = 1;
  private closed = false;
  private readonly templateTimeoutMs: number;
  private get jobTimeoutMs(): number {
    return this.opts.jobTimeoutMs ?? JOB_TIMEOUT_MS;
  }
  private readonly data: PromptWorkerData;

  private constructor(private readonly opts: PromptWorkersOptions) {
    this.templateTimeoutMs = opts.templateTimeoutMs ?? 2000;
    this.data = { path: opts.path, ctx: opts.ctx, budget: { timeoutMs: this.templateTimeoutMs, maxSteps: opts.templateMaxSteps } };
  }

  /** Starts the workers; resolves once each has read the model's tokenizer. */
  static async start(opts: PromptWorkersOptions): Promise<PromptWorkers> {
    const pool = new PromptWorkers(opts);
    try {
      await Promise.all(Array.from({ length: Math.max(1, opts.workers ?? 2) }, () => pool.spawn()));
    } catch (err) {
      await pool.close();
      throw err;
    }
    return pool;
  }

  /** Token ids of a conversation rendered with the model's chat template. */
  chat(
    messages: readonly ChatMessage[],
    opts: { tools?: readonly ToolDefinition[]; variables?: Readonly<Record<string, unknown>>; continuation?: string } = {},
    signal?: AbortSignal,
  ): Promise<number[]> {
    return this.submit({ id: this.nextId++, kind: 'chat', messages, tools: opts.tools, variables: opts.variables, continuation: opts.continuation }, signal);
  }

  /**
   * Token ids of a text (BOS added where the tokenizer adds it, special tokens parsed); with
   * `plain`, neither: the text alone, as a piece of a prompt the caller assembles. With `uncapped`,
   * all its tokens however many (embeddings truncate or refuse them themselves).
   */
  text(text: string, signal?: AbortSignal, opts: { plain?: boolean; uncapped?: boolean } = {}): Promise<number[]> {
    if (!opts.uncapped) checkPromptBytes(text, this.byteLimit, this.opts.ctx);
    return this.submit({ id: this.nextId++, kind: 'text', text, plain: opts.plain, uncapped: opts.uncapped }, signal);
  }

  /** Terminates every worker; jobs still waiting or running fail with SHUTTING_DOWN. */
  async close(): Promise<void> {
    this.closed = true;
    const gone = new CairnError('SHUTTING_DOWN', 'the server is shutting down');
    for (const p of this.waiting.splice(0)) this.settle(p, gone);
    const slots = [...this.slots];
    this.slots.clear();
    for (const slot of slots) {
      clearTimeout(slot.timer);
      if (slot.pending) this.settle(slot.pending, gone);
    }
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  private submit(job: PromptJob, signal?: AbortSignal): Promise<number[]> {
    if (this.closed) return Promise.reject(new CairnError('SHUTTING_DOWN', 'the server is shutting down'));
    if (this.waiting.length >= (this.opts.maxWaiting ?? 256))
      return Promise.reject(new CairnError('QUEUE_FULL', 'too many prompts are waiting to be prepared'));
    if (signal?.aborted) return Promise.reject(new CairnError('ABORTED', 'the request was cancelled'));
    return new Promise<number[]>((resolve, reject) => {
      const p: Pending = { job, resolve, reject, signal };
      if (signal) {
        // A request whose client left while it waited is dropped from the queue.
        p.onAbort = () => {
          const i = this.waiting.indexOf(p);
          if (i >= 0) {
            this.waiting.splice(i, 1);
            this.settle(p, new CairnError('ABORTED', 'the request was cancelled'));
          }
        };
        signal.addEventListener('abort', p.onAbort, { once: true });
      }
      this.waiting.push(p);
      this.dispatch();
    });
  }

  private settle(p: Pending, result: number[] | Error): void {
    if (p.onAbort) p.signal?.removeEventListener('abort', p.onAbort);
    if (result instanceof Error) p.reject(result);
    else p.resolve(result);
  }

  private dispatch(): void {
    for (const slot of this.slots) {
      while (slot.ready && !slot.pending && this.waiting.length > 0) {
        const p = this.waiting.shift()!;
        try {
          slot.worker.postMessage(p.job);
        } catch (err) {
          // A value that cannot be copied to a thread (not plain data): this request fails alone.
          this.settle(p, new CairnError('BAD_ARGUMENT', `the request cannot be prepared: ${(err as Error).message}`));
          continue;
        }
        slot.pending = p;
        const chat = p.job.kind === 'chat';
        this.watch(slot, chat ? this.templateTimeoutMs + TEMPLATE_GRACE_MS : this.jobTimeoutMs, chat);
      }
    }
  }

  /** Terminates the slot's worker if its job is still running after `ms`. */
  private watch(slot: Slot, ms: number, rendering: boolean): void {
    clearTimeout(slot.timer);
    slot.timer = setTimeout(() => {
      const err = rendering
        ? new CairnError('TEMPLATE_ERROR', `chat template was stopped: it ran for more than ${this.templateTimeoutMs} ms`)
        : // Only a prompt of the request's own making (its size, or text hard to tokenize) takes this long: a 400.
          new CairnError('BAD_ARGUMENT', `preparing the prompt took more than ${ms} ms: send a shorter prompt`);
      this.replace(slot, err);
    }, ms);
  }

  /** Fails the slot's job with `err`, terminates its worker and starts another in its place. */
  private replace(slot: Slot, err: Error): void {
    if (!this.slots.delete(slot)) return;
    clearTimeout(slot.timer);
    if (slot.pending) this.settle(slot.pending, err);
    slot.pending = undefined;
    slot.worker.removeAllListeners();
    slot.worker.on('error', () => {}); // errors of a worker being terminated are of no interest
    void slot.worker.terminate();
    if (this.closed) return;
    this.spawn().catch((spawnErr: Error) => {
      // A worker that cannot start (the model file went away?) leaves the pool smaller; with no
      // worker left, nothing waiting can be served.
      if (this.slots.size === 0) for (const p of this.waiting.splice(0)) this.settle(p, spawnErr);
    });
  }

  private spawn(): Promise<void> {
    const worker = new Worker(new URL('./prompt-worker.js', import.meta.url), {
      workerData: this.data,
      resourceLimits: { maxOldGenerationSizeMb: this.opts.memoryMb ?? 512 },
    });
    // A stuck worker must never keep the process alive; close() terminates them anyway.
    worker.unref();
    const slot: Slot = { worker, ready: false };
    this.slots.add(slot);
    return new Promise<void>((resolve, reject) => {
      worker.on('message', (m: WorkerMessage) => {
        if (m.type === 'ready') {
          slot.ready = true;
          this.templateSource ??= m.templateSource;
          this.byteLimit ??= m.byteLimit;
          resolve();
          this.dispatch();
          return;
        }
        const p = slot.pending;
        if (!p || p.job.id !== m.id) return;
        if (m.type === 'rendered') {
          this.watch(slot, this.jobTimeoutMs, false);
          return;
        }
        clearTimeout(slot.timer);
        slot.pending = undefined;
        this.settle(p, m.type === 'done' ? Array.from(m.ids) : m.code ? new CairnError(m.code, m.message) : new Error(m.message));
        this.dispatch();
      });
      const died = (err: Error) => {
        if (!slot.ready) {
          this.slots.delete(slot);
          reject(new Error(`the prompt worker could not start: ${err.message}`));
          return;
        }
        const oom = (err as { code?: string }).code === 'ERR_WORKER_OUT_OF_MEMORY';
        this.replace(
          slot,
          oom
            ? new CairnError(
                'BAD_ARGUMENT',
                `preparing the prompt needed more than ${this.opts.memoryMb ?? 512} MiB (the chat template or the prompt is too large)`,
              )
            : err,
        );
      };
      worker.on('error', died);
      worker.on('exit', (code) => {
        if (this.slots.has(slot)) died(new Error(`the prompt worker exited with code ${code}`));
      });
    });
  }
}
