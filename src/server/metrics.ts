/**
 * Server counters in Prometheus text format (GET /metrics): requests, tokens, prefill and decode
 * speed, queue depth, prompt-cache hits and memory.
 */
import type { GenerationSummary } from '../engine/engine.js';
import type { ModelHost } from './host.js';

/** Counts what the server did. */
export class ServerMetrics {
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
  private lastPrefillTps = 0;
  private lastDecodeTps = 0;

  /** A generation started. */
  requestStarted(): void {
    this.requests++;
    this.inFlight++;
  }

  /** Tokens of each response's generation (for its request log line), by the response it went to. */
  private readonly byResponse = new WeakMap<object, { prompt: number; completion: number }>();

  /** The tokens of the generation answered on `response`, if one ended there. */
  tokensOf(response: object): { prompt: number; completion: number } | undefined {
    return this.byResponse.get(response);
  }

  /** A generation ended (summary undefined when it never produced one); `response`: where it was answered. */
  requestEnded(s: GenerationSummary | undefined, response?: object): void {
    this.inFlight = Math.max(0, this.inFlight - 1);
    if (!s) return;
    if (response) this.byResponse.set(response, { prompt: s.promptTokens, completion: s.completionTokens });
    this.promptTokens += s.promptTokens;
    this.cachedTokens += s.cachedTokens;
    if (s.cachedTokens > 0) this.cacheHits++;
    this.completionTokens += s.completionTokens;
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
    metric('prefill_tokens_per_second', 'gauge', 'Prefill speed of the last request.', [['', this.lastPrefillTps]]);
    metric('decode_tokens_per_second', 'gauge', 'Decode speed of the last request.', [['', this.lastDecodeTps]]);
    metric('prefill_tokens_per_second_avg', 'gauge', 'Prefill speed over all requests.', [['', this.prefillSeconds ? this.prefillTokens / this.prefillSeconds : 0]]);
    metric('decode_tokens_per_second_avg', 'gauge', 'Decode speed over all requests.', [['', this.decodeSeconds ? this.decodeTokens / this.decodeSeconds : 0]]);
    metric('resident_memory_bytes', 'gauge', 'Resident memory of the process.', [['', host.model?.residentBytes() ?? process.memoryUsage.rss()]]);
    metric('kv_cache_bytes', 'gauge', 'Bytes allocated for the KV cache.', [['', host.model?.kvBytes ?? 0]]);
    metric('model_loaded', 'gauge', '1 when the model is ready.', [['', host.state === 'ready' ? 1 : 0]]);
    return lines.join('\n') + '\n';
  }
}
