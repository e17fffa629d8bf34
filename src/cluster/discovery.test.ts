import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { isCairnError } from '../util/errors.js';
import { type DiscoveredPeer, Discovery } from './discovery.js';
import { PROTOCOL_VERSION } from './handshake.js';

test('static peers are announced on start, keyed by address', async () => {
  const discovery = new Discovery({ identity: { id: randomUUID(), name: 'a' }, port: 1, staticPeers: 'h1:5000,[::1]:5001', mdns: false });
  const seen: DiscoveredPeer[] = [];
  discovery.on('up', (p) => seen.push(p));
  await discovery.start();
  assert.deepEqual(
    seen.map((p) => [p.key, p.host, p.port, p.source]),
    [
      ['addr:h1:5000', 'h1', 5000, 'static'],
      ['addr:::1:5001', '::1', 5001, 'static'],
    ],
  );
  assert.equal(discovery.mdnsActive, false);
  await discovery.stop();
});

test('a bad static peer is reported before anything starts', () => {
  assert.throws(
    () => new Discovery({ identity: { id: randomUUID(), name: 'a' }, port: 1, staticPeers: ['ok:1', 'bad:port'] }),
    (e) => isCairnError(e, 'BAD_ARGUMENT') && /bad:port/.test(e.message),
  );
});

test('two nodes find each other over mDNS on loopback (skipped where loopback has no multicast)', async (t) => {
  // A type of our own, so real cairn nodes are neither seen nor disturbed, and only the loopback
  // interface: test traffic stays on this machine. (The cluster's network-namespace test covers
  // mDNS between hosts.)
  const serviceType = `cairntest${process.pid}`;
  const a = new Discovery({ identity: { id: randomUUID(), name: 'node-a' }, port: 41001, serviceType, interface: '127.0.0.1' });
  const b = new Discovery({ identity: { id: randomUUID(), name: 'node-b' }, port: 41002, serviceType, interface: '127.0.0.1' });
  const warnings: Error[] = [];
  a.on('warning', (w) => warnings.push(w));
  b.on('warning', (w) => warnings.push(w));
  let timer: NodeJS.Timeout | undefined;
  const found = new Promise<DiscoveredPeer | undefined>((resolve) => {
    a.on('up', (peer) => {
      if (peer.source === 'mdns') resolve(peer);
    });
    timer = setTimeout(() => resolve(undefined), 5000);
  });
  try {
    await a.start();
    await b.start();
    const peer = await found;
    if (!peer) {
      t.skip(`no mDNS discovery within 5 s (multicast unavailable here${warnings.length ? `: ${warnings[0].message}` : ''})`);
      return;
    }
    assert.equal(peer.name, 'node-b');
    assert.equal(peer.port, 41002);
    assert.equal(peer.protocolVersion, PROTOCOL_VERSION);
    // A node never discovers itself.
    assert.ok(a.peers().every((p) => p.name !== 'node-a'));
  } finally {
    clearTimeout(timer);
    await a.stop();
    await b.stop();
  }
});

test('mDNS peers are capped and announced at a bounded pace, so a flood of announcements is not dialed all at once', async () => {
  const discovery = new Discovery({
    identity: { id: randomUUID(), name: 'a' },
    port: 1,
    mdns: false,
    maxPeers: 5,
    upBurst: 2,
    upIntervalMs: 40,
  });
  const ups: DiscoveredPeer[] = [];
  const downs: DiscoveredPeer[] = [];
  const warnings: Error[] = [];
  discovery.on('up', (p) => ups.push(p));
  discovery.on('down', (p) => downs.push(p));
  discovery.on('warning', (w) => warnings.push(w));
  await discovery.start();
  // What the mDNS browser hands over for each announcement (reached under the API: no multicast in tests).
  const service = (i: number) => ({
    name: `n${i}`,
    port: 5000 + i,
    addresses: [`10.9.0.${i}`],
    txt: { id: `id-${i}`, name: `n${i}`, proto: String(PROTOCOL_VERSION) },
  });
  const up = (i: number) => (Reflect.get(discovery, 'onServiceUp') as (s: unknown) => void).call(discovery, service(i));
  const down = (i: number) => (Reflect.get(discovery, 'onServiceDown') as (s: unknown) => void).call(discovery, service(i));
  for (let i = 1; i <= 8; i++) up(i);
  // Five kept, the rest ignored with one warning; two announced at once, the others paced.
  assert.equal(discovery.peers().length, 5);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0].message, /more than 5 peers announced/);
  assert.deepEqual(
    ups.map((p) => p.id),
    ['id-1', 'id-2'],
  );
  // A peer that leaves before it was announced is never announced, nor reported down.
  down(5);
  assert.equal(discovery.peers().length, 4);
  await new Promise((r) => setTimeout(r, 30));
  assert.ok(ups.length <= 3, `${ups.length} announced within 30 ms`);
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(
    ups.map((p) => p.id),
    ['id-1', 'id-2', 'id-3', 'id-4'],
  );
  assert.equal(downs.length, 0);
  // Room again: a new peer is kept and (after the pace allows) announced.
  up(9);
  assert.equal(discovery.peers().length, 5);
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(ups.map((p) => p.id).slice(-1), ['id-9']);
  down(1);
  assert.deepEqual(
    downs.map((p) => p.id),
    ['id-1'],
  );
  await discovery.stop();
});
