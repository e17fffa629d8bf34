/**
 * The responses a server keeps in memory, for `previous_response_id` and GET /v1/responses/{id}:
 * each with the conversation it continues (its input and output as chat messages). Kept for the
 * server's life, but bounded by count and by bytes (the JSON size of what is kept), least
 * recently used first out, so that clients cannot exhaust the server's memory. A continued
 * conversation is kept whole in each response, so one evicted response never breaks another.
 */
import type { ChatMessage } from '../../engine/chat.js';

/** A kept response. */
export interface StoredResponse {
  /** The response object as it was returned. */
  readonly response: Readonly<Record<string, unknown>>;
  /** The conversation a follow-up continues: earlier turns, this input, this output (not the instructions). */
  readonly conversation: readonly ChatMessage[];
}

/** Default bounds: 1000 responses, 64 MiB. */
export const STORE_DEFAULTS = { maxEntries: 1000, maxBytes: 64 * 1024 * 1024 } as const;

/** An LRU store of responses bounded by count and bytes. */
export class ResponseStore {
  private readonly entries = new Map<string, { value: StoredResponse; bytes: number }>();
  private total = 0;

  constructor(
    readonly maxEntries: number = STORE_DEFAULTS.maxEntries,
    readonly maxBytes: number = STORE_DEFAULTS.maxBytes,
  ) {}

  /** Responses kept. */
  get size(): number {
    return this.entries.size;
  }

  /** Bytes kept (JSON size). */
  get bytes(): number {
    return this.total;
  }

  /** Keeps a response, evicting the least recently used; false when it alone is over the byte bound. */
  put(id: string, value: StoredResponse): boolean {
    this.delete(id);
    const bytes = Buffer.byteLength(JSON.stringify(value.response)) + Buffer.byteLength(JSON.stringify(value.conversation));
    if (bytes > this.maxBytes || this.maxEntries < 1) return false;
    while (this.entries.size >= this.maxEntries || this.total + bytes > this.maxBytes) {
      const oldest = this.entries.keys().next().value as string;
      this.delete(oldest);
    }
    this.entries.set(id, { value, bytes });
    this.total += bytes;
    return true;
  }

  /** A kept response (and marks it recently used), or undefined. */
  get(id: string): StoredResponse | undefined {
    const e = this.entries.get(id);
    if (!e) return undefined;
    this.entries.delete(id);
    this.entries.set(id, e);
    return e.value;
  }

  /** Forgets a response; true when it was kept. */
  delete(id: string): boolean {
    const e = this.entries.get(id);
    if (!e) return false;
    this.entries.delete(id);
    this.total -= e.bytes;
    return true;
  }
}
