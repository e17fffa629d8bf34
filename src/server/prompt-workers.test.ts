/**
 * Prompt workers against the same work done in this thread: the ids a worker returns for a chat
 * or a text are the ones chatPrompt and the tokenizer give; prompts that cannot fit are refused
 * before tokenizing; a template over its budget fails only its own request; waiting requests can
 * be cancelled; closing fails what is left and stops the threads.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { chatPrompt } from '../engine/chat.js';
import { readGguf } from '../gguf/reader.js';
import { tokenizerFromGguf } from '../tokenizer/index.js';
import { isCairnError } from '../util/errors.js';
import { scratchDir } from '../../test/helpers/paths.js';
import { writeTinyModel } from '../../test/helpers/tiny-model.js';
import { promptByteLimit } from './prompt-bounds.js';
import { PromptWorkers } from './prompt-workers.js';

const dir = scratchDir('prompt-workers');
const path = join(dir, 'tiny.gguf');
const loopPath = join(dir, 'loop.gguf');
const CTX = 256;

before(() => {
  mkdirSync(dir, { recursive: true });
  writeTinyModel(path);
  writeTinyModel(
    loopPath,
    '{% for m in messages %}{% if m.content == "loop" %}{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}{% endif %}{{ m.content }}{% endfor %}',
  );
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('prompt workers: the same ids as rendering and tokenizing in this thread', async () => {
  const pool = await PromptWorkers.start({ path, ctx: CTX });
  try {
    const file = readGguf(path);
    const model = { file, tokenizer: tokenizerFromGguf(file) };
    const messages = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Once upon a time' },
    ];
    assert.deepEqual(await pool.chat(messages), chatPrompt(model, messages));
    assert.deepEqual(await pool.text('abc def'), model.tokenizer.encode('abc def', { addSpecial: true, parseSpecial: true }));
    assert.equal(pool.byteLimit, promptByteLimit(model.tokenizer, CTX));
    assert.match(pool.templateSource ?? '', /messages/);
  } finally {
    await pool.close();
  }
});

test('prompt workers: prompts that cannot fit are refused, by bytes before tokenizing or by tokens after', async () => {
  const pool = await PromptWorkers.start({ path, ctx: CTX });
  try {
    const huge = 'word '.repeat(200_000);
    assert.throws(
      () => pool.text(huge),
      (err: unknown) => isCairnError(err, 'CONTEXT_FULL') && /bytes/.test(err.message),
    );
    await assert.rejects(
      pool.chat([{ role: 'user', content: huge }]),
      (err: unknown) => isCairnError(err, 'CONTEXT_FULL') && /bytes/.test(err.message),
    );
    await assert.rejects(pool.text('a b '.repeat(200)), (err: unknown) => isCairnError(err, 'CONTEXT_FULL') && /tokens/.test(err.message));
  } finally {
    await pool.close();
  }
});

test('prompt workers: a template over its budget fails its own request; the others are served', async () => {
  const pool = await PromptWorkers.start({ path: loopPath, ctx: CTX, workers: 1, templateTimeoutMs: 200 });
  try {
    const stuck = pool.chat([{ role: 'user', content: 'loop' }]);
    const fine = pool.chat([{ role: 'user', content: 'fine' }]);
    await assert.rejects(stuck, (err: unknown) => isCairnError(err, 'TEMPLATE_ERROR') && /more than 200 ms/.test(err.message));
    assert.ok((await fine).length > 0);
  } finally {
    await pool.close();
  }
});

test('prompt workers: a waiting request can be cancelled; closing fails what is left', async () => {
  const pool = await PromptWorkers.start({ path: loopPath, ctx: CTX, workers: 1, templateTimeoutMs: 60_000 });
  const stuck = pool.chat([{ role: 'user', content: 'loop' }]);
  const abort = new AbortController();
  const cancelled = pool.text('never', abort.signal);
  const waiting = pool.text('later');
  abort.abort();
  await assert.rejects(cancelled, (err: unknown) => isCairnError(err, 'ABORTED'));
  const failed = [stuck, waiting].map((p) => assert.rejects(p, (err: unknown) => isCairnError(err, 'SHUTTING_DOWN')));
  await pool.close();
  await Promise.all(failed);
  await assert.rejects(pool.text('after'), (err: unknown) => isCairnError(err, 'SHUTTING_DOWN'));
});

test('prompt workers: a prompt that takes longer than a job may is refused as a bad request (BAD_ARGUMENT, a 400), not a server fault', async () => {
  // A context large enough that a megabyte passes the byte check, and a job time far below what tokenizing it takes.
  const pool = await PromptWorkers.start({ path, ctx: 1 << 20, workers: 1, jobTimeoutMs: 1 });
  try {
    await assert.rejects(pool.text('word '.repeat(200_000)), (err: unknown) => isCairnError(err, 'BAD_ARGUMENT') && /shorter prompt/.test(err.message));
  } finally {
    await pool.close();
  }
});
