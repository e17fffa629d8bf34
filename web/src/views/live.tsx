/**
 * Live performance: speed (all requests together, and each request's as it ends), time to first
 * token, queue and prompt-cache hits over the last minutes; the requests running now with their
 * tokens and speed so far, and the last ones that ended.
 */
import { useMemo } from 'preact/hooks';
import type uPlot from 'uplot';
import type { LiveSample, RequestsInfo } from '../../../src/dashboard/wire.js';
import { Chart } from '../chart';
import type { FeedStatus } from '../feed';
import { num, percent } from '../format';

/** Samples further apart than this (ms) have a gap between them: the feed was away. */
const GAP_MS = 2500;

/** The samples with an empty one after each gap in the feed, so that lines break there instead of bridging it. */
function withGaps(history: readonly LiveSample[]): (LiveSample | { t: number; gap: true })[] {
  const out: (LiveSample | { t: number; gap: true })[] = [];
  history.forEach((s, i) => {
    const prev = history[i - 1];
    if (prev && s.t - prev.t > GAP_MS) out.push({ t: prev.t + 1000, gap: true });
    out.push(s);
  });
  return out;
}

/** The middle value of `v` (not empty). */
function median(v: readonly number[]): number {
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** A time of day as hh:mm:ss (24 hours: short enough for a phone's table). */
function clock(ms: number): string {
  return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
}

/** A duration in ms as "850 ms", "12.3 s" or "2 min 5 s". */
function duration(ms: number | null): string {
  if (ms === null || !Number.isFinite(ms)) return 'n/a';
  if (ms < 1000) return `${ms.toFixed(0)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.floor((ms % 60_000) / 1000)} s`;
}

const PHASE: Readonly<Record<string, string>> = { queued: 'waiting for a slot', prompt: 'reading the prompt', generating: 'generating' };

/** The live view over the feed's samples and the latest snapshot's requests. */
export function LiveView({
  history,
  requests,
  status,
}: {
  history: readonly LiveSample[];
  requests: RequestsInfo | null;
  status: FeedStatus;
}) {
  const charts = useMemo(() => {
    const rows = withGaps(history);
    const t = rows.map((s) => s.t / 1000);
    const col = (f: (s: LiveSample) => number | null) => rows.map((s) => ('gap' in s ? null : f(s)));
    const each = (f: (v: readonly number[]) => number) =>
      col((s) => (s.requestTokensPerSecond.length ? f(s.requestTokensPerSecond) : null));
    return {
      speed: [t, col((s) => s.tokensPerSecond)] as uPlot.AlignedData,
      perRequest: [t, each((v) => Math.max(...v)), each(median), each((v) => Math.min(...v))] as uPlot.AlignedData,
      ttft: [t, col((s) => s.ttftMs)] as uPlot.AlignedData,
      queue: [t, col((s) => s.inFlight), col((s) => s.queued)] as uPlot.AlignedData,
      cache: [t, col((s) => (s.cacheHitRate === null ? null : s.cacheHitRate * 100))] as uPlot.AlignedData,
      plan: [t, col((s) => s.planPredictedTokensPerSecond), col((s) => s.planMeasuredTokensPerSecond)] as uPlot.AlignedData,
      hasPlan: history.some((s) => s.planPredictedTokensPerSecond !== null),
      ended: history.reduce((n, s) => n + s.requestTokensPerSecond.length, 0),
    };
  }, [history]);
  const last = history[history.length - 1];
  return (
    <div class="live">
      {status === 'reconnecting' && (
        <p class="banner" data-testid="feed-lost">
          The live feed is lost; reconnecting… The charts keep what they had and go on once the server answers again.
        </p>
      )}
      <dl class="tiles" aria-label="Now">
        <div>
          <dt>Tokens/s</dt>
          <dd data-testid="live-tps">{num(last?.tokensPerSecond)}</dd>
        </div>
        <div>
          <dt>In flight</dt>
          <dd>{last ? last.inFlight : 'n/a'}</dd>
        </div>
        <div>
          <dt>Queued</dt>
          <dd>{last ? last.queued : 'n/a'}</dd>
        </div>
        <div>
          <dt>Prompt cache hits (1 min)</dt>
          <dd>{percent(last?.cacheHitRate)}</dd>
        </div>
      </dl>
      <p class="hint" data-testid="live-samples" data-from={history[0]?.t} data-to={last?.t}>
        {history.length} samples (one a second, last 5 minutes)
      </p>
      <RunningTable requests={requests} />
      <div class="charts">
        <Chart title="Tokens per second" unit="tok/s" data={charts.speed} lines={[{ label: 'all requests', color: '#2f6fdb' }]} />
        <Chart
          title="Speed of each request (as it ended)"
          unit="tok/s"
          data={charts.perRequest}
          summary={`${charts.ended} ${charts.ended === 1 ? 'request' : 'requests'} ended in these minutes`}
          lines={[
            { label: 'fastest', color: '#d9480f', points: true },
            { label: 'median', color: '#845ef7', points: true },
            { label: 'slowest', color: '#0c8599', points: true },
          ]}
        />
        <Chart title="Time to first token" unit="ms" data={charts.ttft} lines={[{ label: 'mean', color: '#2b8a3e', points: true }]} />
        <Chart
          title="Requests"
          unit="requests"
          data={charts.queue}
          lines={[
            { label: 'in flight', color: '#845ef7' },
            { label: 'queued', color: '#e03131' },
          ]}
        />
        <Chart title="Prompt-cache hit rate" unit="%" data={charts.cache} lines={[{ label: 'hit rate', color: '#0c8599' }]} />
        {charts.hasPlan && (
          <Chart
            title="Cluster plan: one-stream speed"
            unit="tok/s"
            data={charts.plan}
            lines={[
              { label: 'predicted', color: '#868e96' },
              { label: 'measured', color: '#e8590c' },
            ]}
          />
        )}
      </div>
      <FinishedTable requests={requests} />
    </div>
  );
}

/** The requests running now. */
function RunningTable({ requests }: { requests: RequestsInfo | null }) {
  const running = requests?.running ?? [];
  const more = requests ? requests.runningTotal - running.length : 0;
  return (
    <section class="requests" aria-labelledby="running-title">
      <h2 class="small" id="running-title">
        Requests now
      </h2>
      {!requests ? (
        <p class="hint">Waiting for the live feed…</p>
      ) : running.length === 0 ? (
        <p class="hint" data-testid="running-none">
          No request is running.
        </p>
      ) : (
        <div class="table-wrap">
          <table data-testid="running-requests">
            <thead>
              <tr>
                <th scope="col">Request</th>
                <th scope="col">Model</th>
                <th scope="col">State</th>
                <th scope="col" class="num">
                  Tokens
                </th>
                <th scope="col" class="num">
                  Tok/s so far
                </th>
                <th scope="col" class="num">
                  Elapsed
                </th>
                <th scope="col" class="num">
                  First token
                </th>
              </tr>
            </thead>
            <tbody>
              {running.map((r) => (
                <tr key={r.id} data-request={r.id}>
                  <th scope="row">#{r.id}</th>
                  <td>{r.model}</td>
                  <td>{PHASE[r.phase] ?? r.phase}</td>
                  <td class="num">
                    {r.tokens} / {r.maxTokens}
                  </td>
                  <td class="num" data-testid="running-tps">
                    {num(r.tokensPerSecond)}
                  </td>
                  <td class="num">{duration(r.elapsedMs)}</td>
                  <td class="num">{duration(r.ttftMs)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {more > 0 && <p class="hint">and {more} more</p>}
        </div>
      )}
    </section>
  );
}

/** The last requests that ended, newest first. */
function FinishedTable({ requests }: { requests: RequestsInfo | null }) {
  const finished = requests?.finished ?? [];
  if (!finished.length) return null;
  return (
    <section class="requests" aria-labelledby="finished-title">
      <h2 class="small" id="finished-title">
        Last requests that ended
      </h2>
      <div class="table-wrap">
        <table data-testid="finished-requests">
          <thead>
            <tr>
              <th scope="col">Ended</th>
              <th scope="col" class="num">
                Prompt
              </th>
              <th scope="col" class="num">
                Tokens
              </th>
              <th scope="col" class="num">
                Tok/s
              </th>
              <th scope="col" class="num">
                First token
              </th>
            </tr>
          </thead>
          <tbody>
            {finished.map((r) => (
              <tr key={r.seq}>
                <th scope="row">
                  <time dateTime={new Date(r.endedAt).toISOString()}>{clock(r.endedAt)}</time>
                </th>
                <td class="num">{r.promptTokens}</td>
                <td class="num">{r.completionTokens}</td>
                <td class="num" data-testid="finished-tps">
                  {r.tokensPerSecond > 0 ? num(r.tokensPerSecond) : 'n/a'}
                </td>
                <td class="num">{duration(r.ttftMs)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}
