/**
 * The dashboard: a nav over four views (Chat, Live, Cluster, Models) chosen by the URL's hash,
 * one live feed shared by all of them, and the login field when the server wants a key.
 */
import { useEffect, useState } from 'preact/hooks';
import { apiKey, isLoginNeeded, onAuthChange, setApiKey } from './auth';
import { useFeed } from './feed';
import { Login } from './login';
import { usePlanLog } from './plan-log';
import { ChatView } from './views/chat';
import { ClusterView } from './views/cluster';
import { LiveView } from './views/live';
import { ModelsView } from './views/models';

const VIEWS = [
  { id: 'chat', label: 'Chat' },
  { id: 'live', label: 'Live' },
  { id: 'cluster', label: 'Cluster' },
  { id: 'models', label: 'Models' },
] as const;
type ViewId = (typeof VIEWS)[number]['id'];

function viewOfHash(): ViewId {
  const h = location.hash.slice(1);
  return VIEWS.some((v) => v.id === h) ? (h as ViewId) : 'chat';
}

/** The whole app. */
export function App() {
  const [view, setView] = useState<ViewId>(viewOfHash);
  const [login, setLogin] = useState(isLoginNeeded());
  const feed = useFeed();
  const planLog = usePlanLog(feed.snapshot?.cluster);
  useEffect(() => {
    const onHash = () => setView(viewOfHash());
    addEventListener('hashchange', onHash);
    const off = onAuthChange(() => setLogin(isLoginNeeded()));
    return () => {
      removeEventListener('hashchange', onHash);
      off();
    };
  }, []);
  useEffect(() => {
    document.title = `cairn · ${VIEWS.find((v) => v.id === view)!.label}`;
  }, [view]);
  const model = feed.snapshot?.model;
  return (
    <>
      <header>
        <h1>cairn</h1>
        <nav aria-label="Views">
          {VIEWS.map((v) => (
            <a key={v.id} href={`#${v.id}`} aria-current={v.id === view ? 'page' : undefined}>
              {v.label}
            </a>
          ))}
        </nav>
        <p class="status" role="status" data-state={login ? 'login' : feed.status} title={feed.error ?? undefined}>
          <span class={`dot ${feed.status === 'connected' ? 'on' : feed.status === 'reconnecting' ? 'wait' : 'off'}`} aria-hidden="true" />
          {login || feed.status === 'login'
            ? 'API key needed'
            : feed.status === 'connected'
              ? model
                ? `${model.id} · ${model.state}`
                : 'connected'
              : feed.status === 'reconnecting'
                ? 'reconnecting…'
                : 'connecting…'}
        </p>
        {apiKey() !== null && !login && (
          <button
            type="button"
            class="quiet"
            onClick={() => {
              // Forget the key and start again: every open call and the feed go with the old one.
              setApiKey('');
              location.reload();
            }}
          >
            Forget key
          </button>
        )}
      </header>
      <main>
        {login ? (
          <Login />
        ) : (
          <>
            {view === 'chat' && <ChatView model={model?.id ?? 'default'} />}
            {view === 'live' && <LiveView history={feed.history} requests={feed.snapshot?.requests ?? null} status={feed.status} />}
            {view === 'cluster' && <ClusterView snapshot={feed.snapshot} planLog={planLog} />}
            {view === 'models' && <ModelsView model={model ?? null} stored={feed.snapshot?.stored ?? null} />}
          </>
        )}
      </main>
    </>
  );
}
