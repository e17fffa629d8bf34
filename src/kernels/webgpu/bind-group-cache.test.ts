/**
 * The bind-group cache's bookkeeping, with stand-in objects for pipelines, buffers and groups (the
 * cache only keys on them and hands back what `make` returned): a hit makes nothing, a group is
 * dropped with any buffer it binds, and a full cache starts again.
 */
/// <reference types="@webgpu/types" />
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BindGroupCache } from './bind-group-cache.js';

const pipeline = () => ({}) as GPUComputePipeline;
const buffer = () => ({}) as GPUBuffer;
const group = () => ({}) as GPUBindGroup;

describe('BindGroupCache', () => {
  it('makes a group once per pipeline and bindings, in order', () => {
    const cache = new BindGroupCache(100);
    const [p, q] = [pipeline(), pipeline()];
    const [a, b] = [buffer(), buffer()];
    let made = 0;
    const make = () => (made++, group());
    const g = cache.get(p, [a, b, 7], make);
    assert.equal(cache.get(p, [a, b, 7], make), g, 'the same bindings find the same group');
    assert.equal(made, 1);
    assert.notEqual(cache.get(p, [b, a, 7], make), g, 'another order is another group');
    assert.notEqual(cache.get(p, [a, b, 8], make), g, 'another parameter range is another group');
    assert.notEqual(cache.get(q, [a, b, 7], make), g, 'another pipeline is another group');
    assert.equal(made, 4);
    assert.equal(cache.size, 4);
  });

  it('drops every group that binds a forgotten buffer, and only those', () => {
    const cache = new BindGroupCache(100);
    const p = pipeline();
    const [a, b, c] = [buffer(), buffer(), buffer()];
    const ab = cache.get(p, [a, b, 1], group);
    const bc = cache.get(p, [b, c, 1], group);
    const ca = cache.get(p, [c, a, 2], group);
    cache.forget(a);
    assert.equal(cache.size, 1);
    assert.equal(cache.get(p, [b, c, 1], group), bc, 'the group without a stays');
    assert.notEqual(cache.get(p, [a, b, 1], group), ab, 'a group with a is made again');
    assert.notEqual(cache.get(p, [c, a, 2], group), ca);
    cache.forget(b);
    cache.forget(c);
    assert.equal(cache.size, 0);
  });

  it('starts again when full, and a buffer that outlives many others keeps only live entries', () => {
    const cache = new BindGroupCache(8);
    const p = pipeline();
    const weight = buffer();
    for (let i = 0; i < 8; i++) cache.get(p, [weight, buffer(), i], group);
    assert.equal(cache.size, 8);
    cache.get(p, [weight, buffer(), 99], group);
    assert.equal(cache.size, 1, 'full: emptied, then the new group');
    // Many short-lived buffers beside one that stays: forgetting each keeps the count right.
    const big = new BindGroupCache(10_000);
    for (let i = 0; i < 500; i++) {
      const t = buffer();
      big.get(p, [weight, t, 0], group);
      big.forget(t);
    }
    assert.equal(big.size, 0);
    big.forget(weight);
    assert.equal(big.size, 0);
  });
});
