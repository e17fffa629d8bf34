import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseBytes, parseDuration, parseFlops, parseRate } from './units.js';

test('sizes: binary and decimal prefixes, bits, bare numbers', () => {
  assert.equal(parseBytes('192GiB'), 192 * 2 ** 30);
  assert.equal(parseBytes('512 GB'), 512e9);
  assert.equal(parseBytes('8e9'), 8e9);
  assert.equal(parseBytes(1024), 1024);
  assert.equal(parseBytes('64Mbit'), 8e6);
  assert.equal(parseBytes('1.5 TiB'), 1.5 * 2 ** 40);
  for (const bad of ['abc', '12 parsecs', '', '-5GB', 'GB']) assert.equal(parseBytes(bad), undefined, bad);
});

test('rates: bytes or bits per second', () => {
  assert.equal(parseRate('800GB/s'), 800e9);
  assert.equal(parseRate('10 Gbit/s'), 1.25e9);
  assert.equal(parseRate('1Gbps'), 1.25e8);
  assert.equal(parseRate('117.5MB/s'), 117.5e6);
  assert.equal(parseRate(5e9), 5e9);
  assert.equal(parseRate('2 GiB/s'), 2 * 2 ** 30);
  for (const bad of ['800GB', 'fast', '0', '0GB/s']) assert.equal(parseRate(bad), undefined, bad);
});

test('durations and compute rates', () => {
  assert.equal(parseDuration('5us'), 5e-6);
  assert.equal(parseDuration('0.2 ms'), 0.2e-3);
  assert.equal(parseDuration('1s'), 1);
  assert.equal(parseDuration(0.001), 0.001);
  assert.equal(parseDuration('3 fortnights'), undefined);
  assert.equal(parseFlops('28TFLOPS'), 28e12);
  assert.equal(parseFlops('500 GFLOP/s'), 500e9);
  assert.equal(parseFlops('1e12'), 1e12);
  assert.equal(parseFlops('lots'), undefined);
});
