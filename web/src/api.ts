/** Calls to the server's API with the tab's key; a 401 shows the login field. */
import { apiKey, authHeaders, requireLogin } from './auth';

/** An API error with the server's message. */
export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** fetch() with the key; throws ApiFailure on an error status (its message from the body). */
export async function apiFetch(path: string, init: RequestInit = {}): Promise<Response> {
  const key = apiKey();
  const r = await fetch(path, { ...init, headers: { ...authHeaders(), ...(init.headers as Record<string, string> | undefined) } });
  if (r.ok) return r;
  const body = (await r.json().catch(() => undefined)) as { error?: { message?: string } | string } | undefined;
  const message = typeof body?.error === 'string' ? body.error : (body?.error?.message ?? `${r.status} ${r.statusText}`);
  // A key given while this call was on its way is not the one refused.
  if (r.status === 401 && apiKey() === key) requireLogin();
  throw new ApiFailure(r.status, message);
}
