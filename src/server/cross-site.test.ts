/**
 * Posts a page of another site can make a browser send without asking the server first (forms,
 * no-cors fetches) are refused; the dashboard's own posts, JSON posts and clients that are not
 * browsers are not.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { buildServer } from './app.js';
import { ModelHost } from './host.js';

// A model that never finishes loading: every generation route answers 503, so a 403 is the check's.
const host = new ModelHost('/nonexistent/m.gguf', () => new Promise(() => {}));
const { app } = buildServer(host);
const corsApp = buildServer(host, { corsOrigins: ['http://allowed.example'] }).app;
after(async () => {
  await app.close();
  await corsApp.close();
});

const chat = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] });
const post = (headers: Record<string, string>, url = '/v1/chat/completions', server = app) =>
  server.inject({ method: 'POST', url, headers: { host: '127.0.0.1:8080', ...headers }, payload: chat });

test('a form or no-cors post from a page of another site is refused (CSRF), whatever the route', async () => {
  for (const type of ['text/plain;charset=UTF-8', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
    const r = await post({ origin: 'http://evil.example', 'content-type': type });
    assert.equal(r.statusCode, 403, `${type}: ${r.body}`);
    assert.equal(r.json().error.code, 'cross_site_request');
  }
  for (const url of ['/api/generate', '/api/pull', '/api/chat', '/v1/responses']) {
    assert.equal((await post({ origin: 'https://evil.example', 'content-type': 'text/plain' }, url)).statusCode, 403, url);
  }
  // A sandboxed frame or a file says "null"; the same host on another port is another origin.
  assert.equal((await post({ origin: 'null', 'content-type': 'text/plain' })).statusCode, 403);
  assert.equal((await post({ origin: 'http://127.0.0.1:9999', 'content-type': 'text/plain' })).statusCode, 403);
  assert.equal(
    (await post({ origin: 'http://evil.example', 'content-type': 'text/plain' }, '/v1/chat/completions', corsApp)).statusCode,
    403,
  );
});

test("the server's own pages, allowed origins, JSON posts and clients without an Origin still get through", async () => {
  const through = [
    await post({ origin: 'http://127.0.0.1:8080', 'content-type': 'text/plain' }),
    await post({ origin: 'http://127.0.0.1:8080', 'content-type': 'application/json' }),
    await post({ 'content-type': 'text/plain' }),
    await post({}),
    // A JSON post across origins was allowed by a preflight (or comes from a browser extension).
    await post({ origin: 'chrome-extension://abc', 'content-type': 'application/json' }),
    await post({ origin: 'http://allowed.example', 'content-type': 'text/plain' }, '/v1/chat/completions', corsApp),
    // An app in a webview posts with its own origin and a key, which no form can carry.
    await post({ origin: 'tauri://localhost', 'content-type': 'text/plain', authorization: 'Bearer k' }),
    await post({ origin: 'app://x', 'content-type': 'text/plain', 'x-api-key': 'k' }),
  ];
  assert.deepEqual(
    through.map((r) => r.statusCode),
    through.map(() => 503),
    through.map((r) => r.body).join('\n'),
  );
});
