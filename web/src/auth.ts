/**
 * The API key of this browser tab: kept in sessionStorage (gone when the tab closes), sent as a
 * Bearer token on every API call. A 401 asks the app to show its login field.
 */

const KEY = 'cairn.apiKey';
const listeners = new Set<() => void>();
let loginNeeded = false;

/** The stored key, if any. */
export function apiKey(): string | null {
  return sessionStorage.getItem(KEY);
}

/** Stores the key (an empty one clears it) and retries what was waiting for it. */
export function setApiKey(key: string): void {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
  loginNeeded = false;
  listeners.forEach((f) => f());
}

/** True after the server refused the key (or its absence). */
export function isLoginNeeded(): boolean {
  return loginNeeded;
}

/** Marks the key as refused. */
export function requireLogin(): void {
  if (loginNeeded) return;
  loginNeeded = true;
  listeners.forEach((f) => f());
}

/** Calls `f` whenever the key or the login state changes; returns the unsubscribe. */
export function onAuthChange(f: () => void): () => void {
  listeners.add(f);
  return () => listeners.delete(f);
}

/** Headers that carry the key. */
export function authHeaders(): Record<string, string> {
  const key = apiKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}
