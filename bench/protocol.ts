/**
 * Messages between `cairn bench` and its engine workers. Each engine runs in its own process so
 * resident memory and load time are its own; the parent alternates runs between them so both see
 * the same machine state.
 */

/** What the parent asks a worker to do. */
export type BenchCommand =
  /** `depth`: tokens already in the KV cache before the measured ones (0: an empty cache). */
  | { type: 'prefill'; tokens: number; depth?: number }
  | { type: 'decode'; tokens: number; depth?: number }
  | { type: 'exit' };

/** What a worker answers. */
export type BenchReply =
  | { type: 'loaded'; engine: string; loadMs: number; firstTokenMs: number; rssBytes: number; detail: string }
  | { type: 'result'; seconds: number; tokens: number; rssBytes: number }
  | { type: 'error'; message: string };

/** How a worker is started (passed as JSON in argv). */
export interface WorkerSpec {
  readonly engine: 'cairn' | 'llama.cpp';
  readonly model: string;
  readonly threads: number;
  readonly ctx: number;
  readonly batch: number;
  /** llama.cpp: run with flash attention (cairn's attention is what it is). */
  readonly flashAttention?: boolean;
  /** KV cache type of every engine (default f16). */
  readonly kvType?: 'f16' | 'f32' | 'q8_0';
  /** Where the layers run: the CPU (default) or the GPU (cairn through WebGPU; llama.cpp its GPU build, every layer offloaded). */
  readonly backend?: 'cpu' | 'gpu';
}
