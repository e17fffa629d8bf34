/**
 * The live feed (GET /v1/dashboard/events): one stream for the whole app, read with fetch so it
 * carries the key. Whatever ends it (the server closing it, a network error, an error status, or
 * silence: the server sends a snapshot a second) it connects again after a short pause that grows
 * while the server stays away; after a 401 it waits for a login. The samples of a stream that comes
 * back join those kept, each time once.
 */
import { useEffect, useState } from 'preact/hooks';
import type { DashboardHistory, DashboardSnapshot, LiveSample } from '../../src/dashboard/wire.js';
import { ApiFailure, apiFetch } from './api';
import { apiKey, onAuthChange } from './auth';
import { readSse } from './sse';

/** Live samples kept in the browser: five minutes. */
const KEPT = 300;
/** A stream silent this long is taken as gone (snapshots come once a second). */
const SILENCE_MS = 5000;
/** Pauses before connecting again: doubling from the first to the last. */
const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 5000;

/**
 * Where the feed stands: connecting (the first time), connected, reconnecting (it was connected and
 * lost the stream; the samples so far stay), or login (the server wants a key).
 */
export type FeedStatus = 'connecting' | 'connected' | 'reconnecting' | 'login';

/** What the feed has told so far. */
export interface FeedState {
  readonly snapshot: DashboardSnapshot | null;
  readonly history: readonly LiveSample[];
  readonly status: FeedStatus;
  /** Why it is not connected, as the last failure said. */
  readonly error: string | null;
}

/**
 * `kept` followed by a stream's first samples: the kept ones from before the stream's first sample,
 * then the stream's (a server that stayed up sends again what is kept; a new one starts afresh).
 */
export function joinHistory(kept: readonly LiveSample[], fresh: readonly LiveSample[]): LiveSample[] {
  if (!fresh.length) return kept.slice(-KEPT);
  const from = fresh[0].t;
  return [...kept.filter((s) => s.t < from), ...fresh].slice(-KEPT);
}

/** `history` with `sample` added, unless it is no newer than the last one. */
function append(history: readonly LiveSample[], sample: LiveSample): readonly LiveSample[] {
  const last = history[history.length - 1];
  if (last && sample.t <= last.t) return history;
  return [...history.slice(-(KEPT - 1)), sample];
}

/** Subscribes to the feed for the life of the calling component. */
export function useFeed(): FeedState {
  const [state, setState] = useState<FeedState>({ snapshot: null, history: [], status: 'connecting', error: null });
  useEffect(() => {
    let stopped = false;
    let abort: AbortController | undefined;
    let retry: number | undefined;
    let watchdog: number | undefined;
    let waitingForKey = false;
    let everConnected = false;
    let pause = RETRY_FIRST_MS;
    const lost = (error: string) => setState((s) => ({ ...s, status: everConnected ? 'reconnecting' : 'connecting', error }));
    const connect = async () => {
      window.clearTimeout(retry);
      abort?.abort();
      const controller = new AbortController();
      abort = controller;
      const key = apiKey();
      let silent = false;
      let heard = Date.now();
      // Also while waiting for the answer: a server that hangs (stopped, or its machine gone) never sends one.
      window.clearInterval(watchdog);
      watchdog = window.setInterval(() => {
        if (Date.now() - heard < SILENCE_MS) return;
        silent = true;
        controller.abort();
      }, 1000);
      try {
        const r = await apiFetch('/v1/dashboard/events', { signal: controller.signal, headers: { Accept: 'text/event-stream' } });
        everConnected = true;
        pause = RETRY_FIRST_MS;
        setState((s) => ({ ...s, status: 'connected', error: null }));
        heard = Date.now();
        await readSse(r, (name, data) => {
          heard = Date.now();
          if (name === 'history') {
            const h = JSON.parse(data) as DashboardHistory;
            setState((s) => ({ ...s, history: joinHistory(s.history, h.samples) }));
          } else if (name === 'snapshot') {
            const snap = JSON.parse(data) as DashboardSnapshot;
            setState((s) => ({ ...s, snapshot: snap, history: append(s.history, snap.live) }));
          }
        });
        if (stopped) return;
        lost('The server ended the feed.');
      } catch (err) {
        if (stopped || (controller !== abort && !silent)) return;
        const refused = err instanceof ApiFailure && err.status === 401;
        if (refused) {
          // Refused: wait for a key, or try at once with one given meanwhile.
          if (apiKey() !== key) return void connect();
          waitingForKey = true;
          setState((s) => ({ ...s, status: 'login', error: (err as Error).message }));
          return;
        }
        lost(silent ? 'The server stopped answering.' : (err as Error).message);
      } finally {
        if (controller === abort) window.clearInterval(watchdog);
      }
      retry = window.setTimeout(() => void connect(), pause);
      pause = Math.min(pause * 2, RETRY_MAX_MS);
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
      window.clearInterval(watchdog);
    };
  }, []);
  return state;
}
