/**
 * The dashboard's live feed: one server-sent-events stream per open page, fed by one timer that
 * takes a snapshot a second for all of them. A new stream first gets the last minutes (event
 * `history`), then a `snapshot` event each second. Streams are capped, and one whose reader falls
 * behind is dropped rather than buffered without bound.
 */
import type { ServerResponse } from 'node:http';
import type { Snapshotter } from './snapshot.js';

/** Open feeds at most; more get 429. */
export const MAX_FEEDS = 32;
/** Unsent bytes a feed may hold before it is dropped. */
const MAX_BUFFERED = 1 << 20;

/** Fans snapshots out to the open feeds. */
export class EventFeeds {
  private readonly feeds = new Set<ServerResponse>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly snapshots: Snapshotter,
    private readonly intervalMs = 1000,
  ) {}

  /** Starts sampling (also with no feed open, so a page opened later sees the last minutes). */
  start(): void {
    this.timer ??= setInterval(() => this.tick(), this.intervalMs);
    // Sampling never keeps the process alive.
    this.timer.unref();
  }

  /** Stops sampling and ends every feed. */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    for (const res of this.feeds) res.end();
    this.feeds.clear();
  }

  /** True when another feed may open. */
  get hasRoom(): boolean {
    return this.feeds.size < MAX_FEEDS;
  }

  /** Turns `res` into a feed: `headers` and its own, the history, then a snapshot each second until it closes. */
  open(res: ServerResponse, headers: Readonly<Record<string, string | number | readonly string[] | undefined>> = {}): void {
    res.writeHead(200, {
      ...headers,
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
      'X-Content-Type-Options': 'nosniff',
    });
    this.feeds.add(res);
    res.on('close', () => this.feeds.delete(res));
    this.write(res, 'history', { samples: this.snapshots.history });
  }

  private tick(): void {
    const snapshot = this.snapshots.take();
    if (this.feeds.size === 0) return;
    const text = `event: snapshot\ndata: ${JSON.stringify(snapshot)}\n\n`;
    for (const res of this.feeds) this.send(res, text);
  }

  private write(res: ServerResponse, event: string, payload: unknown): void {
    this.send(res, `event: ${event}\ndata: ${JSON.stringify(payload)}\n\n`);
  }

  private send(res: ServerResponse, text: string): void {
    if (res.destroyed) return void this.feeds.delete(res);
    if (res.writableLength > MAX_BUFFERED) {
      this.feeds.delete(res);
      res.destroy();
      return;
    }
    res.write(text);
  }
}
