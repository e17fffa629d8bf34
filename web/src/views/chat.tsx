/**
 * Chat: a conversation list kept in the browser (each can be renamed), a streamed reply rendered as
 * Markdown (code highlighted, with a Copy button) with a stop button, a system prompt and sampling
 * settings, and tokens and speed under each reply.
 */
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from 'preact/hooks';
import { copyCode, ReplyRenderer } from '../markdown';
import {
  loadConversations,
  loadCurrentId,
  loadDraft,
  newConversation,
  renamed,
  saveConversations,
  saveCurrentId,
  saveDraft,
  type Conversation,
  type Message,
  type Sampling,
} from '../chat/store';
import { streamReply } from '../chat/stream';
import { num } from '../format';

/** The chat view; `model`: the served model's id. */
export function ChatView({ model }: { model: string }) {
  const [list, setList] = useState<Conversation[]>(() => {
    const stored = loadConversations();
    return stored.length ? stored : [newConversation()];
  });
  const [currentId, setCurrentId] = useState(() => {
    const kept = loadCurrentId();
    return list.some((c) => c.id === kept) ? kept! : list[0].id;
  });
  const [draft, setDraft] = useState(loadDraft);
  const [busy, setBusy] = useState(false);
  /** What the last Copy button did, for screen readers. */
  const [copyNote, setCopyNote] = useState('');
  const abort = useRef<AbortController | null>(null);
  const current = list.find((c) => c.id === currentId) ?? list[0];

  useEffect(() => saveCurrentId(current.id), [current.id]);
  useEffect(() => saveDraft(draft), [draft]);

  // While a reply streams, store at most twice a second rather than on every token (a timer that
  // new tokens do not push back, so a long reply is kept as it grows). Otherwise store as the change
  // is drawn (a layout effect): a rename the page shows is kept by a reload right after.
  const latest = useRef(list);
  latest.current = list;
  const pendingSave = useRef<number | undefined>(undefined);
  const [storageNote, setStorageNote] = useState('');
  const save = () => {
    const r = saveConversations(latest.current);
    setStorageNote(r === 'saved' ? '' : r === 'trimmed' ? 'This browser’s storage is full: long messages were cut and older conversations left out of what is kept.' : 'This browser’s storage is full or off: conversations are not kept after the page closes.');
  };
  useLayoutEffect(() => {
    if (!busy) {
      window.clearTimeout(pendingSave.current);
      pendingSave.current = undefined;
      save();
      return;
    }
    if (pendingSave.current === undefined) {
      pendingSave.current = window.setTimeout(() => {
        pendingSave.current = undefined;
        save();
      }, 500);
    }
  }, [list, busy]);
  // Leaving the view (another tab of the dashboard) mid-reply stores what came so far.
  useEffect(
    () => () => {
      if (pendingSave.current === undefined) return;
      window.clearTimeout(pendingSave.current);
      saveConversations(latest.current);
    },
    [],
  );

  const update = (id: string, f: (c: Conversation) => Conversation) =>
    setList((l) => l.map((c) => (c.id === id ? { ...f(c), updated: Date.now() } : c)));

  const send = async () => {
    const text = draft.trim();
    if (!text || busy) return;
    setDraft('');
    const id = current.id;
    const withUser: Conversation = {
      ...current,
      title: current.messages.length || current.named ? current.title : text.slice(0, 40),
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
            <ConversationItem
              key={c.id}
              conversation={c}
              current={c.id === current.id}
              onSelect={() => setCurrentId(c.id)}
              onRename={(title) => setList((l) => l.map((x) => (x.id === c.id ? renamed(x, title) : x)))}
              onDelete={() => remove(c.id)}
            />
          ))}
        </ul>
      </aside>
      <section class="thread" aria-label="Conversation">
        <Settings conversation={current} onChange={(c) => update(current.id, () => c)} />
        <ol class="messages" aria-live="polite" aria-busy={busy}>
          {current.messages.map((m, i) => (
            // Keyed by conversation too: a reply's renderer (which may have fallen back to plain text) is its own.
            <li key={`${current.id}:${i}`} class={`message ${m.role}`}>
              <span class="who">{m.role === 'user' ? 'You' : 'Model'}</span>
              {m.role === 'assistant' ? <Markdown text={m.content} onCopy={setCopyNote} /> : <p class="plain">{m.content}</p>}
              {m.stats && <ReplyLine stats={m.stats} />}
              {m.note && <p class="note">{m.note}</p>}
            </li>
          ))}
        </ol>
        <p class="sr-only" aria-live="polite">
          {copyNote}
        </p>
        {storageNote && (
          <p class="note" role="status">
            {storageNote}
          </p>
        )}
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

/** How long a Copy button says what it did. */
const COPY_NOTE_MS = 2000;

/**
 * A reply as HTML, parsed again only when its text changes (not on every token of another reply).
 * Its code blocks' Copy buttons are part of that HTML: one click handler here serves them all.
 */
function Markdown({ text, onCopy }: { text: string; onCopy: (note: string) => void }) {
  const renderer = useMemo(() => new ReplyRenderer(), []);
  const html = useMemo(() => renderer.render(text), [renderer, text]);
  const onClick = async (e: MouseEvent) => {
    const button = (e.target as Element | null)?.closest?.('button.copy');
    const code = button?.closest('.code-block')?.querySelector('code');
    if (!(button instanceof HTMLButtonElement) || !code) return;
    const done = await copyCode(code);
    const note = done === 'copied' ? 'Copied' : 'Selected: press Ctrl+C';
    button.textContent = note;
    onCopy(done === 'copied' ? 'Code copied to the clipboard.' : 'The code is selected; copy it with Ctrl+C.');
    setTimeout(() => {
      if (button.textContent === note) button.textContent = 'Copy';
      onCopy('');
    }, COPY_NOTE_MS);
  };
  return <div class="markdown" onClick={(e) => void onClick(e)} dangerouslySetInnerHTML={{ __html: html }} />;
}

/** One conversation in the list: open it, rename it in place (Enter keeps, Escape drops), delete it. */
function ConversationItem({
  conversation: c,
  current,
  onSelect,
  onRename,
  onDelete,
}: {
  conversation: Conversation;
  current: boolean;
  onSelect: () => void;
  onRename: (title: string) => void;
  onDelete: () => void;
}) {
  const [editing, setEditing] = useState(false);
  const [value, setValue] = useState('');
  const input = useRef<HTMLInputElement>(null);
  const renameButton = useRef<HTMLButtonElement>(null);
  /** Set once Enter, Escape or a blur ended the edit, so that the blur of the removed field does nothing more. */
  const ended = useRef(false);
  /** Focus goes back to the Rename button after Enter or Escape (a blur means it went elsewhere on purpose). */
  const refocus = useRef(false);
  // Before the next key press: keys typed right after the one that opened the field go into it.
  useLayoutEffect(() => {
    if (editing) {
      input.current?.focus();
      input.current?.select();
    } else if (refocus.current) {
      refocus.current = false;
      renameButton.current?.focus();
    }
  }, [editing]);
  const start = () => {
    ended.current = false;
    setValue(c.title);
    setEditing(true);
  };
  const end = (save: boolean, backToButton: boolean) => {
    if (ended.current) return;
    ended.current = true;
    if (save) onRename(value);
    refocus.current = backToButton;
    setEditing(false);
  };
  return (
    <li class={current ? 'current' : ''}>
      {editing ? (
        <input
          ref={input}
          class="rename"
          type="text"
          value={value}
          maxLength={200}
          aria-label={`New name of conversation ${c.title}`}
          onInput={(e) => setValue(e.currentTarget.value)}
          onKeyDown={(e) => {
            if (e.key === 'Enter' && !e.isComposing) {
              e.preventDefault();
              end(true, true);
            } else if (e.key === 'Escape') {
              e.preventDefault();
              end(false, true);
            }
          }}
          onBlur={() => end(true, false)}
        />
      ) : (
        <button type="button" class="link" aria-current={current ? 'true' : undefined} onClick={onSelect}>
          {c.title}
        </button>
      )}
      {!editing && (
        <button ref={renameButton} type="button" class="icon" aria-label={`Rename conversation ${c.title}`} title="Rename" onClick={start}>
          <svg viewBox="0 0 16 16" width="16" height="16" aria-hidden="true" focusable="false">
            <path d="M11.5 1.5l3 3L5 14H2v-3z M9.5 3.5l3 3" fill="none" stroke="currentColor" stroke-width="1.5" stroke-linejoin="round" />
          </svg>
        </button>
      )}
      <button type="button" class="icon" aria-label={`Delete conversation ${c.title}`} title="Delete" onClick={onDelete}>
        ×
      </button>
    </li>
  );
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
