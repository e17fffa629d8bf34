/**
 * The live feed (GET /v1/dashboard/events): one stream for the whole app, read with fetch so it
 * carries the key; reconnects after a pause when it drops, and waits for a login after a 401.
 */
import { useEffect, useState } from 'preact/hooks';
import type { DashboardHistory, DashboardSnapshot, LiveSample } from '../../src/dashboard/wire.js';
import { ApiFailure, apiFetch } from './api';
import { apiKey, onAuthChange } from './auth';
import { readSse } from './sse';

/** Live samples kept in the browser: five minutes. */
const KEPT = 300;

/** What the feed has told so far. */
export interface FeedState {
  readonly snapshot: DashboardSnapshot | null;
  readonly history: readonly LiveSample[];
  readonly connected: boolean;
  readonly error: string | null;
}

/** Subscribes to the feed for the life of the calling component. */
export function useFeed(): FeedState {
  const [state, setState] = useState<FeedState>({ snapshot: null, history: [], connected: false, error: null });
  useEffect(() => {
    let stopped = false;
    let abort: AbortController | undefined;
    let retry: number | undefined;
    let waitingForKey = false;
    const connect = async () => {
      abort = new AbortController();
      const key = apiKey();
      try {
        const r = await apiFetch('/v1/dashboard/events', { signal: abort.signal, headers: { Accept: 'text/event-stream' } });
        setState((s) => ({ ...s, connected: true, error: null }));
        await readSse(r, (name, data) => {
          if (name === 'history') {
            const h = JSON.parse(data) as DashboardHistory;
            setState((s) => ({ ...s, history: h.samples.slice(-KEPT) }));
          } else if (name === 'snapshot') {
            const snap = JSON.parse(data) as DashboardSnapshot;
            setState((s) => ({ ...s, snapshot: snap, history: [...s.history.slice(-(KEPT - 1)), snap.live] }));
          }
        });
        if (stopped) return;
        setState((s) => ({ ...s, connected: false, error: 'The feed ended; reconnecting.' }));
      } catch (err) {
        if (stopped) return;
        const refused = err instanceof ApiFailure && err.status === 401;
        setState((s) => ({ ...s, connected: false, error: (err as Error).message }));
        // Refused: wait for a key, or try at once with one given meanwhile.
        if (refused && apiKey() !== key) return void connect();
        waitingForKey = refused;
        if (refused) return;
      }
      retry = window.setTimeout(() => void connect(), 2000);
    };
    void connect();
    // A new key: connect again at once.
    const off = onAuthChange(() => {
      if (!waitingForKey) return;
      waitingForKey = false;
      void connect();
    });
    return () => {
      stopped = true;
      off();
      abort?.abort();
      window.clearTimeout(retry);
    };
  }, []);
  return state;
}
