/**
 * Server counters in Prometheus text format (GET /metrics): requests, tokens, prefill and decode
 * speed, queue depth, prompt-cache hits and memory, and histograms of time to first token,
 * inter-token latency and request duration, labelled by model.
 */
import { performance } from 'node:perf_hooks';
import type { GenerationSummary } from '../engine/engine.js';
import type { ModelHost } from './host.js';

/** A Prometheus histogram: cumulative counts of observations at or below each bound, their sum and count. */
export class Histogram {
  private readonly counts: number[];
  private sum = 0;
  private count = 0;

  /** `bounds`: upper bounds, ascending (seconds). */
  constructor(readonly bounds: readonly number[]) {
    this.counts = bounds.map(() => 0);
  }

  observe(v: number): void {
    if (!Number.isFinite(v) || v < 0) return;
    for (let i = 0; i < this.bounds.length; i++) if (v <= this.bounds[i]) this.counts[i]++;
    this.sum += v;
    this.count++;
  }

  /** The sample lines of metric `name` with labels `labels` (e.g. `model="x"`). */
  lines(name: string, labels: string): string[] {
    const sep = labels ? ',' : '';
    return [
      ...this.bounds.map((b, i) => `${name}_bucket{${labels}${sep}le="${b}"} ${this.counts[i]}`),
      `${name}_bucket{${labels}${sep}le="+Inf"} ${this.count}`,
      `${name}_sum${labels ? `{${labels}}` : ''} ${this.sum}`,
      `${name}_count${labels ? `{${labels}}` : ''} ${this.count}`,
    ];
  }
}

/** Bounds in seconds: from a fast token (5 ms) to a long request (10 min). */
const TTFT_BOUNDS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const ITL_BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];
const DURATION_BOUNDS = [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

/** One generation that ended, as the dashboard charts it. */
export interface EndedRequest {
  /** Its place in the order requests ended (1, 2, ...). */
  readonly seq: number;
  /** When it ended, in ms since the epoch. */
  readonly endedAt: number;
  readonly promptTokens: number;
  readonly completionTokens: number;
  /** Decode speed (tokens after the first per second); 0 with fewer than two tokens. */
  readonly decodeTokensPerSecond: number;
  /** From reaching the engine to its first token, in ms. */
  readonly ttftMs: number;
}

/** Ended requests kept for the dashboard: enough for several seconds of a busy server. */
const RECENT_KEPT = 256;

/** Counts what the server did. */
export class ServerMetrics {
  /** The last requests that ended, oldest first (at most RECENT_KEPT). */
  readonly recent: EndedRequest[] = [];
  private endedSeq = 0;
  private requests = 0;
  private inFlight = 0;
  private readonly byStatus = new Map<string, number>();
  private promptTokens = 0;
  private cachedTokens = 0;
  private completionTokens = 0;
  private prefillTokens = 0;
  private prefillSeconds = 0;
  private decodeTokens = 0;
  private decodeSeconds = 0;
  private cacheHits = 0;
  private draftTokens = 0;
  private acceptedDraftTokens = 0;
  private lastPrefillTps = 0;
  private lastDecodeTps = 0;

  private readonly ttft = new Histogram(TTFT_BOUNDS);
  private readonly interToken = new Histogram(ITL_BOUNDS);
  private readonly duration = new Histogram(DURATION_BOUNDS);
  private readonly startedAt = new WeakMap<object, number>();

  /** A generation started; `response`: where it is answered (its duration is measured from now). */
  requestStarted(response?: object): void {
    this.requests++;
    this.inFlight++;
    if (response) this.startedAt.set(response, performance.now());
  }

  /** Generations running or queued. */
  get requestsInFlight(): number {
    return this.inFlight;
  }

  /** Tokens of each response's generation (for its request log line), by the response it went to. */
  private readonly byResponse = new WeakMap<object, { prompt: number; completion: number }>();

  /** The tokens of the generation answered on `response`, if one ended there. */
  tokensOf(response: object): { prompt: number; completion: number } | undefined {
    return this.byResponse.get(response);
  }

  /**
   * A generation ended (summary undefined when it never produced one); `response`: where it was
   * answered; `receivedPromptTokens`: the request's prompt as received, where its choices each
   * evaluated it (n > 1), for the prompt counter, the request log and the last requests.
   */
  requestEnded(s: GenerationSummary | undefined, response?: object, receivedPromptTokens?: number): void {
    this.inFlight = Math.max(0, this.inFlight - 1);
    if (!s) return;
    const received = receivedPromptTokens ?? s.promptTokens;
    if (response) this.byResponse.set(response, { prompt: received, completion: s.completionTokens });
    const t0 = response ? this.startedAt.get(response) : undefined;
    if (t0 !== undefined) this.duration.observe((performance.now() - t0) / 1000);
    // The engine's prefill time runs from the request's arrival to its first token.
    if (s.completionTokens > 0) this.ttft.observe(s.prefillMs / 1000);
    if (s.completionTokens > 1) this.interToken.observe(s.decodeMs / 1000 / (s.completionTokens - 1));
    const decodeTokensPerSecond = s.completionTokens > 1 && s.decodeMs > 0 ? (s.completionTokens - 1) / (s.decodeMs / 1000) : 0;
    this.recent.push({
      seq: ++this.endedSeq,
      endedAt: Date.now(),
      promptTokens: received,
      completionTokens: s.completionTokens,
      decodeTokensPerSecond,
      ttftMs: s.prefillMs,
    });
    if (this.recent.length > RECENT_KEPT) this.recent.shift();
    this.promptTokens += received;
    this.cachedTokens += s.cachedTokens;
    if (s.cachedTokens > 0) this.cacheHits++;
    this.completionTokens += s.completionTokens;
    this.draftTokens += s.draftTokens;
    this.acceptedDraftTokens += s.acceptedDraftTokens;
    const evaluated = s.promptTokens - s.cachedTokens;
    if (s.prefillMs > 0 && evaluated > 0) {
      this.prefillTokens += evaluated;
      this.prefillSeconds += s.prefillMs / 1000;
      this.lastPrefillTps = evaluated / (s.prefillMs / 1000);
    }
    if (s.decodeMs > 0 && s.completionTokens > 1) {
      this.decodeTokens += s.completionTokens - 1;
      this.decodeSeconds += s.decodeMs / 1000;
      this.lastDecodeTps = (s.completionTokens - 1) / (s.decodeMs / 1000);
    }
  }

  /** An HTTP response was sent. */
  responded(route: string, status: number): void {
    const key = `${route}|${status}`;
    this.byStatus.set(key, (this.byStatus.get(key) ?? 0) + 1);
  }

  /** The metrics page. */
  render(host: ModelHost): string {
    const lines: string[] = [];
    const metric = (name: string, type: string, help: string, samples: [string, number][]) => {
      lines.push(`# HELP cairn_${name} ${help}`, `# TYPE cairn_${name} ${type}`);
      for (const [labels, v] of samples) lines.push(`cairn_${name}${labels} ${Number.isFinite(v) ? v : 0}`);
    };
    const engine = host.model?.engine;
    metric('requests_total', 'counter', 'Generation requests started.', [['', this.requests]]);
    metric(
      'http_responses_total',
      'counter',
      'HTTP responses by route and status.',
      [...this.byStatus].map(([k, v]) => {
        const [route, status] = k.split('|');
        return [`{route="${route}",status="${status}"}`, v];
      }),
    );
    metric('requests_in_flight', 'gauge', 'Generations running or queued.', [['', this.inFlight]]);
    metric('queue_depth', 'gauge', 'Requests waiting for a slot.', [['', engine?.queued ?? 0]]);
    metric('slots_busy', 'gauge', 'Sequences holding a KV slot.', [['', engine?.activeCount ?? 0]]);
    metric('prompt_tokens_total', 'counter', 'Prompt tokens received.', [['', this.promptTokens]]);
    metric('prompt_cached_tokens_total', 'counter', 'Prompt tokens served from the prompt cache.', [['', this.cachedTokens]]);
    metric('prompt_cache_hits_total', 'counter', 'Requests that reused a cached prefix.', [['', this.cacheHits]]);
    metric('completion_tokens_total', 'counter', 'Tokens generated.', [['', this.completionTokens]]);
    metric('draft_tokens_total', 'counter', 'Draft tokens checked (speculative decoding).', [['', this.draftTokens]]);
    metric('draft_tokens_accepted_total', 'counter', 'Draft tokens kept (speculative decoding): tokens generated without a step of their own.', [['', this.acceptedDraftTokens]]);
    metric('prefill_tokens_per_second', 'gauge', 'Prefill speed of the last request.', [['', this.lastPrefillTps]]);
    metric('decode_tokens_per_second', 'gauge', 'Decode speed of the last request.', [['', this.lastDecodeTps]]);
    metric('prefill_tokens_per_second_avg', 'gauge', 'Prefill speed over all requests.', [['', this.prefillSeconds ? this.prefillTokens / this.prefillSeconds : 0]]);
    metric('decode_tokens_per_second_avg', 'gauge', 'Decode speed over all requests.', [['', this.decodeSeconds ? this.decodeTokens / this.decodeSeconds : 0]]);
    metric('resident_memory_bytes', 'gauge', 'Resident memory of the process.', [['', host.model?.residentBytes() ?? process.memoryUsage.rss()]]);
    metric('kv_cache_bytes', 'gauge', 'Bytes allocated for the KV cache.', [['', host.model?.kvBytes ?? 0]]);
    metric('model_loaded', 'gauge', '1 when the model is ready.', [['', host.state === 'ready' ? 1 : 0]]);
    const model = `model="${host.id.replace(/["\\\n]/g, '_')}"`;
    const histogram = (name: string, help: string, h: Histogram) => {
      lines.push(`# HELP cairn_${name} ${help}`, `# TYPE cairn_${name} histogram`, ...h.lines(`cairn_${name}`, model));
    };
    histogram('time_to_first_token_seconds', 'From a request reaching the engine to its first token.', this.ttft);
    histogram('inter_token_latency_seconds', "Mean time between a request's generated tokens.", this.interToken);
    histogram('request_duration_seconds', 'From a generation starting to its end.', this.duration);
    return lines.join('\n') + '\n';
  }
}
