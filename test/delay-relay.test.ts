/**
 * The emulated clusters' slow link (bench/delay-relay.c), on loopback: bytes arrive whole and in
 * order, never sooner than the delay and the rate allow (lower bounds only: a busy machine makes
 * a relay slower, never faster), bad arguments are refused, and a target that refuses closes the
 * client's connection instead of holding it.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import net from 'node:net';
import { buildDelayRelay, parseLinkShape, startDelayRelay, type DelayRelay } from '../bench/delay-relay.js';
import { scratchDir } from './helpers/paths.js';

const dir = scratchDir('delay-relay');
const binary = buildDelayRelay(dir);
let echo: net.Server;
let echoPort = 0;
const relays: DelayRelay[] = [];

before(async () => {
  echo = net.createServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  echoPort = (echo.address() as net.AddressInfo).port;
});

after(async () => {
  await Promise.all(relays.map((r) => r.stop()));
  echo.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A free loopback port for the relay to listen on. */
async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function relayTo(target: number, link: string): Promise<number> {
  const port = await freePort();
  relays.push(await startDelayRelay(binary, parseLinkShape(link), [{ listen: `127.0.0.1:${port}`, target: `127.0.0.1:${target}` }]));
  return port;
}

/** Sends `data` through the relay to the echo server and returns what came back and the seconds it took. */
async function roundTrip(port: number, data: Buffer): Promise<{ back: Buffer; seconds: number }> {
  const sock = net.connect(port, '127.0.0.1');
  await new Promise<void>((r, j) => sock.once('connect', r).once('error', j));
  const chunks: Buffer[] = [];
  let got = 0;
  const start = performance.now();
  await new Promise<void>((r) => {
    sock.on('data', (d: Buffer) => {
      chunks.push(d);
      got += d.length;
      if (got >= data.length) r();
    });
    sock.write(data);
  });
  const seconds = (performance.now() - start) / 1000;
  sock.destroy();
  return { back: Buffer.concat(chunks), seconds };
}

test('link shapes are read as tc spells them', () => {
  assert.deepEqual(parseLinkShape('0.1ms/10gbit'), { delayMs: 0.1, rateBitsPerSecond: 1e10 });
  assert.deepEqual(parseLinkShape('1ms/1gbit'), { delayMs: 1, rateBitsPerSecond: 1e9 });
  assert.deepEqual(parseLinkShape('250us/100mbit'), { delayMs: 0.25, rateBitsPerSecond: 1e8 });
  assert.throws(() => parseLinkShape('fast'), /DELAY\/RATE/);
});

test('bytes cross the relay whole and in order, one delay each way', async () => {
  const port = await relayTo(echoPort, '25ms/10gbit');
  const data = randomBytes(3 << 20);
  const { back, seconds } = await roundTrip(port, data);
  assert.ok(back.equals(data), 'the echoed bytes differ from the sent ones');
  // Relay -> echo and echo -> relay are two one-way trips of 25 ms.
  assert.ok(seconds >= 0.05, `round trip took ${seconds} s, less than two delays`);
  const small = await roundTrip(port, Buffer.from('ping'));
  assert.equal(small.back.toString(), 'ping');
  assert.ok(small.seconds >= 0.05, `a small round trip took ${small.seconds} s, less than two delays`);
});

test('the rate caps what a host sends', async () => {
  // Both directions leave from 127.0.0.1, one host's egress: 2 x 256 KiB at 8 Mbit/s take >= 0.5 s.
  const port = await relayTo(echoPort, '0ms/8mbit');
  const data = randomBytes(256 << 10);
  const { back, seconds } = await roundTrip(port, data);
  assert.ok(back.equals(data));
  assert.ok(seconds >= 0.5, `512 KiB crossed an 8 Mbit/s link in ${seconds} s`);
});

test('a target that refuses closes the client connection', async () => {
  const dead = await freePort();
  const port = await relayTo(dead, '1ms/1gbit');
  const sock = net.connect(port, '127.0.0.1');
  sock.on('error', () => {});
  sock.write('hello');
  await new Promise<void>((r) => sock.once('close', () => r()));
});

test('bad arguments are refused with a message', () => {
  const r = spawnSync(binary, ['1', '0', 'not-an-address'], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /LISTEN_IP:PORT=TARGET_IP:PORT/);
  const neg = spawnSync(binary, ['-1', '0', '127.0.0.1:1=127.0.0.1:2'], { encoding: 'utf8' });
  assert.equal(neg.status, 2);
});
