import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseNodesFile } from './plan-nodes.js';
import { isCairnError } from '../util/errors.js';

test('a nodes file: units, counted nodes, links, the default link; unknown fields ignored', () => {
  const f = parseNodesFile(
    {
      comment: 'two studios and four Pis',
      nodes: [
        { id: 'studio', memory: '192GiB', bandwidth: '800GB/s', flops: '28TFLOPS', cores: 24, machine: 'm1', machineBandwidth: '820GB/s', color: 'silver' },
        { id: 'pi', count: 4, memory: '7GiB', bandwidth: 4e9, bandwidthByType: { Q4_K: '2.5GB/s' }, overhead: '1ms' },
      ],
      links: [{ from: 'studio', to: 'pi2', latency: '150us', bandwidth: '1Gbit/s' }],
      defaultLink: { latency: 5e-6, bandwidth: '10GB/s' },
    },
    'nodes.json',
  );
  assert.deepEqual(
    f.nodes.map((n) => n.id),
    ['studio', 'pi1', 'pi2', 'pi3', 'pi4'],
  );
  assert.deepEqual(f.nodes[0], {
    id: 'studio',
    memoryBytes: 192 * 2 ** 30,
    bytesPerSecond: 800e9,
    flopsPerSecond: 28e12,
    cores: 24,
    machine: 'm1',
    machineBytesPerSecond: 820e9,
    coordinator: true,
  });
  assert.deepEqual(f.nodes[2].bytesPerSecondByType, { Q4_K: 2.5e9 });
  assert.equal(f.nodes[2].stepOverheadSeconds, 1e-3);
  assert.deepEqual(f.links, [{ from: 'studio', to: 'pi2', latencySeconds: 150e-6, bytesPerSecond: 125e6 }]);
  assert.deepEqual(f.defaultLink, { latencySeconds: 5e-6, bytesPerSecond: 10e9 });
});

test('errors name the bad field', () => {
  const bad = (json: unknown, re: RegExp) =>
    assert.throws(
      () => parseNodesFile(json, 'n.json'),
      (e) => isCairnError(e, 'BAD_ARGUMENT') && re.test(e.message),
    );
  bad({}, /^n\.json: nodes: is required/);
  bad({ nodes: [] }, /nodes: .*1/);
  bad({ nodes: [{ id: 'a', memory: 'lots', bandwidth: '1GB/s' }] }, /nodes\[0\]\.memory: expected a size .*"lots"/);
  bad({ nodes: [{ id: 'a', memory: '1GB' }] }, /nodes\[0\]\.bandwidth: is required/);
  bad({ nodes: [{ id: 'a', memory: '1GB', bandwidth: '1GB' }] }, /nodes\[0\]\.bandwidth: expected a rate/);
  bad({ nodes: [{ id: 'a', memory: '1GB', bandwidth: '1GB/s', cores: 2.5 }] }, /nodes\[0\]\.cores/);
  bad(
    { nodes: [{ id: 'a', memory: '1GB', bandwidth: '1GB/s' }], links: [{ from: 'a', to: 'b', latency: '1ms', bandwidth: '1GB/s' }] },
    /links\[0\]\.to: no node has the id "b"/,
  );
  bad(
    { nodes: [{ id: 'a', memory: '1GB', bandwidth: '1GB/s' }], defaultLink: { latency: 'soon', bandwidth: '1GB/s' } },
    /defaultLink\.latency: expected a duration/,
  );
  bad(
    {
      nodes: [
        { id: 'a', memory: '1GB', bandwidth: '1GB/s' },
        { id: 'a', memory: '1GB', bandwidth: '1GB/s' },
      ],
    },
    /"a" is used twice/,
  );
});
