/**
 * Chat: a conversation list kept in the browser, a streamed reply rendered as Markdown with a stop
 * button, a system prompt and sampling settings, and tokens and speed under each reply.
 */
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { renderMarkdown } from '../markdown';
import { loadConversations, newConversation, saveConversations, type Conversation, type Message, type Sampling } from '../chat/store';
import { streamReply } from '../chat/stream';
import { num } from '../format';

/** The chat view; `model`: the served model's id. */
export function ChatView({ model }: { model: string }) {
  const [list, setList] = useState<Conversation[]>(() => {
    const stored = loadConversations();
    return stored.length ? stored : [newConversation()];
  });
  const [currentId, setCurrentId] = useState(list[0].id);
  const [draft, setDraft] = useState('');
  const [busy, setBusy] = useState(false);
  const abort = useRef<AbortController | null>(null);
  const current = list.find((c) => c.id === currentId) ?? list[0];

  // While a reply streams, store at most twice a second rather than on every token.
  useEffect(() => {
    if (!busy) return saveConversations(list);
    const t = setTimeout(() => saveConversations(list), 500);
    return () => clearTimeout(t);
  }, [list, busy]);

  const update = (id: string, f: (c: Conversation) => Conversation) =>
    setList((l) => l.map((c) => (c.id === id ? { ...f(c), updated: Date.now() } : c)));

  const send = async () => {
    const text = draft.trim();
    if (!text || busy) return;
    setDraft('');
    const id = current.id;
    const withUser: Conversation = {
      ...current,
      title: current.messages.length ? current.title : text.slice(0, 40),
      messages: [...current.messages, { role: 'user', content: text }],
    };
    const setReply = (m: Message) => update(id, (c) => ({ ...c, messages: [...withUser.messages, m] }));
    update(id, () => withUser);
    setReply({ role: 'assistant', content: '' });
    const controller = new AbortController();
    abort.current = controller;
    setBusy(true);
    let shown = '';
    try {
      const stats = await streamReply(model, withUser, (t) => setReply({ role: 'assistant', content: (shown = t) }), controller.signal);
      setReply({ role: 'assistant', content: shown, stats });
    } catch (err) {
      setReply({ role: 'assistant', content: shown, note: controller.signal.aborted ? 'stopped' : (err as Error).message });
    } finally {
      setBusy(false);
      abort.current = null;
    }
  };

  const add = () => {
    const c = newConversation();
    setList((l) => [c, ...l]);
    setCurrentId(c.id);
  };
  const remove = (id: string) => {
    const rest = list.filter((c) => c.id !== id);
    const next = rest.length ? rest : [newConversation()];
    setList(next);
    if (id === currentId) setCurrentId(next[0].id);
  };

  return (
    <div class="chat">
      <aside class="conversations" aria-label="Conversations">
        <button type="button" onClick={add}>
          New chat
        </button>
        <ul>
          {list.map((c) => (
            <li key={c.id} class={c.id === current.id ? 'current' : ''}>
              <button type="button" class="link" aria-current={c.id === current.id ? 'true' : undefined} onClick={() => setCurrentId(c.id)}>
                {c.title}
              </button>
              <button type="button" class="icon" aria-label={`Delete conversation ${c.title}`} onClick={() => remove(c.id)}>
                ×
              </button>
            </li>
          ))}
        </ul>
      </aside>
      <section class="thread" aria-label="Conversation">
        <Settings conversation={current} onChange={(c) => update(current.id, () => c)} />
        <ol class="messages" aria-live="polite" aria-busy={busy}>
          {current.messages.map((m, i) => (
            <li key={i} class={`message ${m.role}`}>
              <span class="who">{m.role === 'user' ? 'You' : 'Model'}</span>
              {m.role === 'assistant' ? <Markdown text={m.content} /> : <p class="plain">{m.content}</p>}
              {m.stats && <ReplyLine stats={m.stats} />}
              {m.note && <p class="note">{m.note}</p>}
            </li>
          ))}
        </ol>
        <form
          class="composer"
          onSubmit={(e) => {
            e.preventDefault();
            void send();
          }}
        >
          <label for="prompt">Message</label>
          <textarea
            id="prompt"
            rows={3}
            value={draft}
            placeholder="Ask something (Enter sends, Shift+Enter for a new line)"
            onInput={(e) => setDraft(e.currentTarget.value)}
            onKeyDown={(e) => {
              if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
                e.preventDefault();
                void send();
              }
            }}
          />
          {busy ? (
            <button type="button" class="stop" onClick={() => abort.current?.abort()}>
              Stop
            </button>
          ) : (
            <button type="submit" disabled={!draft.trim()}>
              Send
            </button>
          )}
        </form>
      </section>
    </div>
  );
}

/** A reply as HTML, parsed again only when its text changes (not on every token of another reply). */
function Markdown({ text }: { text: string }) {
  const html = useMemo(() => renderMarkdown(text), [text]);
  return <div class="markdown" dangerouslySetInnerHTML={{ __html: html }} />;
}

function ReplyLine({ stats }: { stats: NonNullable<Message['stats']> }) {
  return (
    <p class="stats">
      {stats.promptTokens !== undefined ? `${stats.promptTokens} prompt + ` : ''}
      {stats.completionTokens} tokens · {num(stats.tokensPerSecond, 1, ' tok/s')} · first token {num(stats.ttftMs, 0, ' ms')}
    </p>
  );
}

/** System prompt and sampling settings of a conversation. */
function Settings({ conversation, onChange }: { conversation: Conversation; onChange: (c: Conversation) => void }) {
  const field = (name: keyof Sampling, label: string, step: string, min: string, max?: string) => (
    <label>
      {label}
      <input
        type="number"
        step={step}
        min={min}
        max={max}
        value={conversation.sampling[name] ?? ''}
        placeholder="default"
        onInput={(e) => {
          const v = e.currentTarget.value === '' ? undefined : Number(e.currentTarget.value);
          onChange({
            ...conversation,
            sampling: { ...conversation.sampling, [name]: v !== undefined && Number.isFinite(v) ? v : undefined },
          });
        }}
      />
    </label>
  );
  return (
    <details class="settings">
      <summary>System prompt and sampling</summary>
      <label class="system">
        System prompt
        <textarea rows={2} value={conversation.system} onInput={(e) => onChange({ ...conversation, system: e.currentTarget.value })} />
      </label>
      <div class="sampling">
        {field('temperature', 'Temperature', '0.05', '0', '2')}
        {field('top_p', 'Top p', '0.05', '0', '1')}
        {field('top_k', 'Top k', '1', '0')}
        {field('max_tokens', 'Max tokens', '1', '1')}
        {field('seed', 'Seed', '1', '0')}
      </div>
    </details>
  );
}
