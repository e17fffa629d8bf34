import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isCairnError } from '../util/errors.js';
import { formatHubRef, isHubRef, parseHubRef } from './hub-ref.js';

test('isHubRef: the hf: prefix and the hub URL forms, nothing else', () => {
  for (const s of ['hf:a/b', 'HF:a/b', 'hf.co/a/b:Q4_K_M', 'huggingface.co/a/b', 'https://huggingface.co/a/b', 'https://hf.co/a/b']) {
    assert.equal(isHubRef(s), true, s);
  }
  for (const s of ['model.gguf', './hf/a.gguf', 'http://example.com/a/b', 'a/b', 'hfx:a/b', '']) {
    assert.equal(isHubRef(s), false, s);
  }
});

test('parseHubRef: repo, tag, revision and file', () => {
  assert.deepEqual(parseHubRef('hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF'), { repo: 'Qwen/Qwen2.5-0.5B-Instruct-GGUF', revision: 'main' });
  assert.deepEqual(parseHubRef('hf:owner/repo:q4_k_m'), { repo: 'owner/repo', revision: 'main', tag: 'q4_k_m' });
  assert.deepEqual(parseHubRef('hf.co/unsloth/Qwen3-GGUF:UD-Q4_K_XL'), { repo: 'unsloth/Qwen3-GGUF', revision: 'main', tag: 'UD-Q4_K_XL' });
  assert.deepEqual(parseHubRef('hf:o/r@v1.0:Q8_0'), { repo: 'o/r', revision: 'v1.0', tag: 'Q8_0' });
  assert.deepEqual(parseHubRef('hf:o/r/sub dir/Model-Q4_0.gguf'), { repo: 'o/r', revision: 'main', file: 'sub dir/Model-Q4_0.gguf' });
  assert.deepEqual(parseHubRef('hf:o/r@dev/m.gguf'), { repo: 'o/r', revision: 'dev', file: 'm.gguf' });
  assert.deepEqual(parseHubRef('hf:o/r@refs/pr/12/q/m.gguf'), { repo: 'o/r', revision: 'refs/pr/12', file: 'q/m.gguf' });
  assert.deepEqual(parseHubRef('hf:o/r@refs/pr/12'), { repo: 'o/r', revision: 'refs/pr/12' });
  assert.deepEqual(parseHubRef('hf:o/r:latest'), { repo: 'o/r', revision: 'main' });
  assert.deepEqual(parseHubRef('huggingface.co/o/r'), { repo: 'o/r', revision: 'main' });
});

test('parseHubRef: pasted browser URLs', () => {
  assert.deepEqual(parseHubRef('https://huggingface.co/o/r/blob/main/Model%20x-Q4_K_M.gguf?download=true'), {
    repo: 'o/r',
    revision: 'main',
    file: 'Model x-Q4_K_M.gguf',
  });
  assert.deepEqual(parseHubRef('https://huggingface.co/o/r/resolve/abc123/d/m.gguf'), {
    repo: 'o/r',
    revision: 'abc123',
    file: 'd/m.gguf',
  });
  assert.deepEqual(parseHubRef('https://huggingface.co/o/r/tree/main'), { repo: 'o/r', revision: 'main' });
  assert.deepEqual(parseHubRef('https://huggingface.co/o/r/'), { repo: 'o/r', revision: 'main' });
});

test('parseHubRef: hostile or malformed input is BAD_ARGUMENT with an example', () => {
  const bad = [
    'hf:',
    'hf:owner',
    'hf:owner/',
    'hf:/repo',
    'hf:../repo',
    'hf:owner/..',
    'hf:own..er/repo',
    'hf:-owner/repo',
    'hf:owner/repo/../../etc/passwd.gguf',
    'hf:owner/repo/a//b.gguf',
    'hf:owner/repo/./b.gguf',
    'hf:owner/repo/b.bin',
    'hf:owner/repo/a\\b.gguf',
    'hf:owner/repo/a\u0000b.gguf',
    'hf:owner/repo\n:Q4',
    'hf:owner/repo@:Q4',
    'hf:owner/repo@../x',
    'hf:owner/repo@a..b',
    'hf:owner/repo@/x',
    'hf:owner/repo:Q4 K',
    'hf:owner/repo:',
    'hf:owner/repo:../x',
    'hf://owner/repo',
    'hf:owner/repo#x',
    `hf:${'a'.repeat(97)}/repo`,
    `hf:o/r/${'a/'.repeat(600)}x.gguf`,
    `hf:o/r@${'a'.repeat(129)}`,
    'https://huggingface.co/o/r/blob/main/%2e%2e/x.gguf',
    'https://huggingface.co/o/r/blob/main/%zz.gguf',
    'model.gguf',
  ];
  for (const s of bad) {
    assert.throws(
      () => parseHubRef(s),
      (err: unknown) => isCairnError(err, 'BAD_ARGUMENT') && /hf:OWNER\/REPO/.test(err.message),
      JSON.stringify(s),
    );
  }
});

test('formatHubRef: canonical text that parses back', () => {
  assert.equal(formatHubRef(parseHubRef('hf.co/o/r:q4_k_m')), 'hf:o/r:Q4_K_M');
  assert.equal(formatHubRef(parseHubRef('hf:o/r@main/a/m.gguf')), 'hf:o/r/a/m.gguf');
  assert.equal(formatHubRef(parseHubRef('hf:o/r@v2')), 'hf:o/r@v2');
  for (const s of ['hf:o/r:Q8_0', 'hf:o/r@v2:IQ4_XS', 'hf:o/r@refs/pr/3/m.gguf', 'hf:o/r/x/y/m.gguf', 'hf:o/r']) {
    assert.equal(formatHubRef(parseHubRef(s)), s);
    assert.deepEqual(parseHubRef(formatHubRef(parseHubRef(s))), parseHubRef(s));
  }
});
