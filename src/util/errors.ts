/**
 * The error catalog: every error cairn raises on purpose carries a stable code, so the CLI, the
 * server and tests can tell failures apart without parsing messages.
 */

/** Stable error codes, grouped by the module that raises them. */
export type CairnErrorCode =
  | 'GGUF_MALFORMED'
  | 'GGUF_UNSUPPORTED'
  | 'FILE_NOT_FOUND'
  | 'NATIVE_UNAVAILABLE'
  | 'GPU_UNAVAILABLE'
  | 'MODEL_UNSUPPORTED'
  | 'TOKENIZER_UNSUPPORTED'
  | 'TEMPLATE_ERROR'
  | 'CONTEXT_FULL'
  | 'BAD_ARGUMENT'
  | 'QUEUE_FULL'
  | 'CLUSTER_PLAN'
  | 'SHUTTING_DOWN'
  | 'ABORTED'
  | 'CLUSTER_AUTH'
  | 'CLUSTER_REFUSED'
  | 'CLUSTER_PROTOCOL'
  | 'CLUSTER_CLOSED'
  | 'CLUSTER_TIMEOUT'
  | 'CLUSTER_UNREACHABLE'
  | 'CLUSTER_REMOTE'
  | 'HUB_AUTH'
  | 'HUB_NOT_FOUND'
  | 'HUB_UNREACHABLE'
  | 'HUB_INTEGRITY';

/** An error with a catalog code; `message` says what happened and, where it can, what to do. */
export class CairnError extends Error {
  readonly code: CairnErrorCode;

  constructor(code: CairnErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CairnError';
    this.code = code;
  }
}

/** True when `err` is a CairnError, optionally with the given code. */
export function isCairnError(err: unknown, code?: CairnErrorCode): err is CairnError {
  return err instanceof CairnError && (code === undefined || err.code === code);
}
