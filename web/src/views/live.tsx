/** Live performance: speed, time to first token, queue and prompt-cache hits over the last minutes. */
import { useMemo } from 'preact/hooks';
import type uPlot from 'uplot';
import type { LiveSample } from '../../../src/dashboard/wire.js';
import { Chart } from '../chart';
import { num, percent } from '../format';

/** The live view over the feed's samples. */
export function LiveView({ history }: { history: readonly LiveSample[] }) {
  const charts = useMemo(() => {
    const t = history.map((s) => s.t / 1000);
    const col = (f: (s: LiveSample) => number | null) => history.map(f);
    return {
      speed: [
        t,
        col((s) => s.tokensPerSecond),
        col((s) => (s.requestTokensPerSecond.length ? Math.max(...s.requestTokensPerSecond) : null)),
      ] as uPlot.AlignedData,
      ttft: [t, col((s) => s.ttftMs)] as uPlot.AlignedData,
      queue: [t, col((s) => s.inFlight), col((s) => s.queued)] as uPlot.AlignedData,
      cache: [t, col((s) => (s.cacheHitRate === null ? null : s.cacheHitRate * 100))] as uPlot.AlignedData,
      plan: [t, col((s) => s.planPredictedTokensPerSecond), col((s) => s.planMeasuredTokensPerSecond)] as uPlot.AlignedData,
      hasPlan: history.some((s) => s.planPredictedTokensPerSecond !== null),
    };
  }, [history]);
  const last = history[history.length - 1];
  return (
    <div class="live">
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
      <p class="hint" data-testid="live-samples">
        {history.length} samples (one a second, last 5 minutes)
      </p>
      <div class="charts">
        <Chart
          title="Tokens per second"
          unit="tok/s"
          data={charts.speed}
          lines={[
            { label: 'all requests', color: '#2f6fdb' },
            { label: 'per request (ended)', color: '#d9480f', points: true },
          ]}
        />
        <Chart title="Time to first token" unit="ms" data={charts.ttft} lines={[{ label: 'mean', color: '#2b8a3e', points: true }]} />
        <Chart
          title="Requests"
          unit="requests"
          data={charts.queue}
          lines={[
            { label: 'in flight', color: '#5f3dc4' },
            { label: 'queued', color: '#c92a2a' },
          ]}
        />
        <Chart title="Prompt-cache hit rate" unit="%" data={charts.cache} lines={[{ label: 'hit rate', color: '#0b7285' }]} />
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
    </div>
  );
}
