/**
 * Server-sent events over a raw Node response: the headers once, then `data: <json>` events, and
 * a way to know when the client went away (so its generation can stop and free its slot).
 */
import type { ServerResponse } from 'node:http';

/** Writes an SSE stream and reports client disconnects. */
export class SseStream {
  private ended = false;

  constructor(private readonly res: ServerResponse, onClose: () => void) {
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    res.flushHeaders();
    res.on('close', () => {
      if (!this.ended) onClose();
    });
  }

  /** True when the client is gone or the stream ended. */
  get closed(): boolean {
    return this.ended || this.res.destroyed;
  }

  /** Sends one event with a JSON payload. */
  send(payload: unknown): void {
    if (!this.closed) this.res.write(`data: ${JSON.stringify(payload)}\n\n`);
  }

  /** Sends one named event (`event: <name>`) with a JSON payload, as the Responses API streams. */
  event(name: string, payload: unknown): void {
    if (!this.closed) this.res.write(`event: ${name}\ndata: ${JSON.stringify(payload)}\n\n`);
  }

  /** Sends `data: [DONE]` and ends the response. */
  done(): void {
    if (this.closed) return;
    this.res.write('data: [DONE]\n\n');
    this.end();
  }

  /** Ends the response without [DONE] (after an error event). */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    if (!this.res.destroyed) this.res.end();
  }
}
