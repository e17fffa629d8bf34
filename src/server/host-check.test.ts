/**
 * A server on loopback answers only requests naming this machine (DNS rebinding); one listening
 * elsewhere, or told to, answers any Host.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { buildServer } from './app.js';
import { hostAllowed, isLoopbackAddress } from './host-check.js';
import { ModelHost } from './host.js';

test('on loopback, Host names of this machine are answered and any other is not', () => {
  const policy = { bindAddress: '127.0.0.1' };
  for (const h of ['127.0.0.1:8080', 'localhost:8080', 'LOCALHOST', '[::1]:8080', '10.0.0.5', 'app.localhost:8080', 'box.local', 'svc.internal', `${hostname()}:8080`, undefined, ''])
    assert.ok(hostAllowed(h, policy), String(h));
  for (const h of ['evil.example', 'evil.example:8080', 'localhost.evil.example', '127.0.0.1.evil.example', 'evil.example.']) assert.ok(!hostAllowed(h, policy), h);
  assert.ok(hostAllowed('proxy.example', { ...policy, allowedHosts: ['proxy.example:443'] }));
  assert.ok(hostAllowed('anything.example', { ...policy, allowedHosts: '*' }));
  // Listening on other addresses, the operator chooses the names.
  assert.ok(hostAllowed('evil.example', { bindAddress: '0.0.0.0' }));
  assert.ok(hostAllowed('evil.example', {}));
  assert.deepEqual(['127.0.0.1', '::1', 'localhost', '[::1]', '::ffff:127.0.0.2', '0.0.0.0', '192.168.1.2', '::'].map(isLoopbackAddress), [true, true, true, true, true, false, false, false]);
});

// A model that never finishes loading: routes answer 503, so a 403 is the check's.
const host = new ModelHost('/nonexistent/m.gguf', () => new Promise(() => {}));
const { app } = buildServer(host, { bindAddress: '127.0.0.1' });
after(() => app.close());

test('a request naming another host (a page that rebound its name to 127.0.0.1) is refused before any route, in the API error shape', async () => {
  const r = await app.inject({ method: 'GET', url: '/v1/models', headers: { host: 'rebound.example:8080' } });
  assert.equal(r.statusCode, 403);
  assert.equal(r.json().error.code, 'host_not_allowed');
  assert.match(r.json().error.message, /--allowed-hosts/);
  const ok = await app.inject({ method: 'GET', url: '/health', headers: { host: '127.0.0.1:8080' } });
  assert.notEqual(ok.statusCode, 403);
});
