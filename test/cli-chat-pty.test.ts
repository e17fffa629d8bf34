/**
 * `cairn chat` in a real terminal (a pseudo-terminal from python3's pty module, which node-gyp's
 * python3 always brings): what the user types is shown, a line can be edited before it is sent,
 * and earlier lines come back with the up arrow.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, scratchDir } from './helpers/paths.js';
import { writeTinyModel } from './helpers/tiny-model.js';

const dir = scratchDir('cli-chat-pty');
mkdirSync(dir, { recursive: true });
const model = join(dir, 'tiny.gguf');
writeTinyModel(model);
after(() => rmSync(dir, { recursive: true, force: true }));

/** What a terminal shows, without its control sequences. */
function visible(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1b[78]/g, '').replace(/\r/g, '');
}

test('chat in a terminal shows what is typed, edits the line, and recalls earlier lines', () => {
  const UP = '\x1b[A';
  const BACKSPACE = '\x7f';
  const spec = {
    argv: [process.execPath, join(ROOT, 'bin/cairn.js'), 'chat', '-m', model, '-n', '3', '--temperature', '0'],
    steps: [
      ['> ', 'hello there\r'],
      // "helx", a backspace, then "p me": the line sent is "help me".
      ['> ', `helx${BACKSPACE}p me\r`],
      // Up once shows "help me", up again "hello there", which is sent.
      ['> ', `${UP}${UP}\r`],
      ['> ', '/exit\r'],
    ],
    timeout: 90,
  };
  const r = spawnSync('python3', [join(ROOT, 'test/helpers/pty-run.py'), JSON.stringify(spec)], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, `${r.stderr}\n${r.stdout}`);
  const shown = visible(r.stdout);
  const turns = shown.split('\n').filter((l) => l.startsWith('> '));
  assert.ok(turns.length >= 4, shown);
  // The typed text is shown after the prompt.
  assert.match(turns[0], /^> hello there$/, 'typed text echoed');
  // The edited line ends as "help me" (readline redraws it after the backspace).
  assert.match(turns[1], /help me$/, 'line editing');
  // History: the first up arrow brings back the edited line, the second the first line.
  assert.match(turns[2], /> help me.*> hello there$/, 'history recalled');
  assert.match(turns[3], /\/exit$/);
});
