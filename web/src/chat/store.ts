/**
 * Conversations kept in this browser (localStorage): each with its messages, system prompt and
 * sampling settings. Nothing of them is sent anywhere but to this server's chat endpoint.
 */

/** Sampling settings of a conversation (unset: the server's defaults). */
export interface Sampling {
  temperature?: number;
  top_p?: number;
  top_k?: number;
  max_tokens?: number;
  seed?: number;
}

/** Speed and size of one reply. */
export interface ReplyStats {
  promptTokens?: number;
  completionTokens: number;
  /** Generated tokens per second, first token to last. */
  tokensPerSecond?: number;
  /** From sending to the first token, in ms. */
  ttftMs?: number;
}

/** One message. */
export interface Message {
  role: 'user' | 'assistant';
  content: string;
  stats?: ReplyStats;
  /** The reply was stopped or failed: the error or "stopped". */
  note?: string;
}

/** One conversation. */
export interface Conversation {
  id: string;
  title: string;
  /** The title was given by hand: the first message does not replace it. */
  named?: boolean;
  system: string;
  sampling: Sampling;
  messages: Message[];
  updated: number;
}

const KEY = 'cairn.conversations';
const CURRENT_KEY = 'cairn.currentConversation';

/** The stored conversations, newest first. */
export function loadConversations(): Conversation[] {
  try {
    const v = JSON.parse(localStorage.getItem(KEY) ?? '[]') as unknown;
    return Array.isArray(v) ? (v as Conversation[]).filter((c) => c && typeof c.id === 'string' && Array.isArray(c.messages)) : [];
  } catch {
    return [];
  }
}

/** Characters of one message kept in storage when everything would not fit (a pasted file, a huge reply). */
export const MAX_STORED_CHARS = 200_000;

/** How a save went: all kept, kept with long messages cut or older conversations left out, or not kept. */
export type SaveResult = 'saved' | 'trimmed' | 'failed';

function store(list: readonly Conversation[]): boolean {
  try {
    localStorage.setItem(KEY, JSON.stringify(list));
    return true;
  } catch {
    return false;
  }
}

/**
 * Stores the conversations. The browser's storage holds a few MB: when the whole list does not
 * fit, long messages are cut to MAX_STORED_CHARS and then the oldest conversations left out, so
 * that one large message never stops every later save; the result says what was kept.
 */
export function saveConversations(list: readonly Conversation[]): SaveResult {
  if (store(list)) return 'saved';
  const cut = list.map((c) => ({
    ...c,
    messages: c.messages.map((m) => (m.content.length > MAX_STORED_CHARS ? { ...m, content: `${m.content.slice(0, MAX_STORED_CHARS)}\n[cut here: too long to keep in this browser]` } : m)),
  }));
  for (let n = cut.length; n > 0; n--) if (store(cut.slice(0, n))) return 'trimmed';
  return 'failed';
}

/** The id of the conversation open last (kept so that it stays open across views and reloads). */
export function loadCurrentId(): string | null {
  try {
    return localStorage.getItem(CURRENT_KEY);
  } catch {
    return null;
  }
}

/** Remembers the open conversation. */
export function saveCurrentId(id: string): void {
  try {
    localStorage.setItem(CURRENT_KEY, id);
  } catch {
    // Storage disabled: the first conversation opens next time.
  }
}

const DRAFT_KEY = 'cairn.draft';

/**
 * The unsent message of this tab (sessionStorage): it outlives the chat view, which another view or
 * the login field (when the server's key changes) replaces.
 */
export function loadDraft(): string {
  try {
    return sessionStorage.getItem(DRAFT_KEY) ?? '';
  } catch {
    return '';
  }
}

/** Keeps the unsent message (an empty one clears it). */
export function saveDraft(text: string): void {
  try {
    if (text) sessionStorage.setItem(DRAFT_KEY, text);
    else sessionStorage.removeItem(DRAFT_KEY);
  } catch {
    // Storage full or off: the draft lives as long as the view.
  }
}

/** A random id; crypto.randomUUID exists only on secure pages, and the dashboard is often opened over plain HTTP on a LAN. */
function randomId(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** `c` under the name `title` (blank: unchanged); names are kept to 200 characters. */
export function renamed(c: Conversation, title: string): Conversation {
  const t = title.trim().slice(0, 200);
  return t && t !== c.title ? { ...c, title: t, named: true } : c;
}

/** A new empty conversation. */
export function newConversation(): Conversation {
  return { id: randomId(), title: 'Untitled', system: '', sampling: {}, messages: [], updated: Date.now() };
}
