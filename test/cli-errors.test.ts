/**
 * Every mistake a user can make at the command line ends in a one-line message and a non-zero exit,
 * never a stack trace: a port in use, a port out of range, an address the machine lacks, a model
 * file that is not there (told before anything listens), `--out` naming a directory, an unknown
 * model shape, a malformed --keep-alive, and `cluster status --json` answering errors as JSON; a
 * context no machine can hold, a prompt-cache folder that is a file, --peers without an address, a
 * folder as stdin or as --draft-model, pulling a local file, a missing --models-dir. Also `generate
 * -p -` (the prompt from stdin) with `--verbose` timings, and `chat` going on when a conversation
 * outgrows the context.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { ROOT, scratchDir } from './helpers/paths.js';
import { writeTinyModel } from './helpers/tiny-model.js';

const dir = scratchDir('cli-errors');
mkdirSync(dir, { recursive: true });
const model = join(dir, 'tiny.gguf');
writeTinyModel(model);
after(() => rmSync(dir, { recursive: true, force: true }));

function cairn(args: string[], input?: string): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [join(ROOT, 'bin/cairn.js'), ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), 60_000);
    p.on('exit', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
    p.stdin.end(input ?? '');
  });
}

/** A user's error: non-zero exit, one line naming the problem, no stack trace. */
function assertOneLine(r: { status: number | null; stdout: string; stderr: string }, what: RegExp, label: string): void {
  assert.notEqual(r.status, 0, `${label}: exit status`);
  assert.ok(r.status !== null, `${label}: killed (hung)`);
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '' && !/^\(run with --help/.test(l));
  assert.equal(lines.length, 1, `${label}: one line, got:\n${r.stderr}`);
  assert.match(lines[0], what, label);
  assert.doesNotMatch(r.stderr, /^\s+at /m, `${label}: a stack trace`);
}

test('serve: port in use, port out of range, an address the machine lacks, a missing model', async () => {
  const holder: Server = createServer();
  await new Promise<void>((r) => holder.listen(0, '127.0.0.1', () => r()));
  const port = (holder.address() as { port: number }).port;
  try {
    assertOneLine(await cairn(['serve', '-m', model, '--port', String(port)]), new RegExp(`${port} is already in use.*--port`), 'port in use');
  } finally {
    holder.close();
  }
  assertOneLine(await cairn(['serve', '-m', model, '--port', '99999']), /--port.*0 to 65535/, 'port 99999');
  assertOneLine(await cairn(['node', '--port', '70000']), /--port.*0 to 65535/, 'node port 70000');
  // 192.0.2.1 is reserved for documentation: no machine has it.
  assertOneLine(await cairn(['serve', '-m', model, '--host', '192.0.2.1', '--port', '0']), /no address 192\.0\.2\.1.*--host/, 'address the machine lacks');
  const missing = await cairn(['serve', '-m', join(dir, 'nope.gguf'), '--port', '0']);
  assertOneLine(missing, /nope\.gguf: no such file/, 'missing model');
  assert.doesNotMatch(missing.stderr, /listening/, 'told before listening');
  assertOneLine(await cairn(['serve', '-m', dir, '--port', '0']), /is a directory/, 'model path is a directory');
  assertOneLine(await cairn(['serve', '-m', model, '--port', '0', '--keep-alive', 'soon']), /--keep-alive soon/, 'bad keep-alive');
});

test('bench --make-model: an unknown shape, --out naming a directory or a missing one', async () => {
  assertOneLine(await cairn(['bench', '--make-model', 'gpt2', '--out', join(dir, 'x.gguf')]), /unknown shape "gpt2".*known:/, 'unknown shape');
  assertOneLine(await cairn(['bench', '--make-model', 'qwen3-0.6b', '--out', dir]), /is a directory: name a file/, '--out a directory');
  assertOneLine(await cairn(['bench', '--make-model', 'qwen3-0.6b', '--out', join(dir, 'no', 'such', 'x.gguf')]), /does not exist/, '--out in a missing directory');
  assertOneLine(await cairn(['bench', '--make-model', 'llama-1b', '--layers', '17', '--out', join(dir, 'x.gguf')]), /llama-1b has 16 layers; give 1 to 16/, 'more layers than the shape');
  assertOneLine(await cairn(['bench', '--make-model', 'deepseek-v2-lite', '--layers', '1', '--out', join(dir, 'x.gguf')]), /first 1 without experts.*give 2 to 27/, 'no layer with experts left');
  assert.ok(!existsSync(join(dir, 'x.gguf')), 'nothing written');
});

test('cluster status --json answers an error as JSON on stdout, with a non-zero exit', async () => {
  const r = await cairn(['cluster', 'status', '--url', 'http://127.0.0.1:1', '--json']);
  assert.notEqual(r.status, 0);
  const body = JSON.parse(r.stdout) as { error: { code: string; message: string } };
  assert.equal(body.error.code, 'CLUSTER_UNREACHABLE');
  assert.match(body.error.message, /cannot reach/);
  assertOneLine(await cairn(['cluster', 'status', '--url', 'http://127.0.0.1:1']), /cannot reach/, 'plain status');
});

test('generate -p - reads the prompt from stdin; --verbose tells the timings on stderr', async () => {
  const piped = await cairn(['generate', '-m', model, '-p', '-', '-n', '5', '--temperature', '0', '--verbose'], 'once upon a time');
  const given = spawnSync(process.execPath, [join(ROOT, 'bin/cairn.js'), 'generate', '-m', model, '-p', 'once upon a time', '-n', '5', '--temperature', '0'], { encoding: 'utf8' });
  assert.equal(piped.status, 0, piped.stderr);
  assert.equal(piped.stdout, given.stdout, 'the same continuation as the prompt given with -p');
  assert.match(piped.stderr, /prompt \d+ tokens .* ms.*generated 5 tokens in \d+ ms/);
  assert.doesNotMatch(given.stderr, /generated/, 'no timings without --verbose');
});

test('more mistakes, each one line: a context no machine holds, a cache folder that is a file, --peers of only commas, a folder as stdin or as --draft-model, pulling a local file, a missing --models-dir', async () => {
  assertOneLine(await cairn(['generate', '-m', model, '-p', 'hi', '-c', '1e99']), /KV cache of 1 slot x 1e\+99 positions needs .* GiB, more than can be allocated here; lower the context/, 'generate -c 1e99');
  assertOneLine(await cairn(['bench', '-m', model, '-c', '1000000000', '-p', '8', '-n', '2']), /^cairn: a KV cache of 1 slot x 1000000000 positions/, 'bench -c 1e9 (prefixed once)');
  const file = join(dir, 'not-a-folder');
  writeFileSync(file, 'x');
  const cacheFile = await cairn(['serve', '-m', model, '--port', '0', '--prompt-cache-dir', file]);
  assertOneLine(cacheFile, /--prompt-cache-dir .*not-a-folder: it is a file, not a folder/, 'prompt cache dir a file');
  assert.doesNotMatch(cacheFile.stderr, /listening/, 'told before listening');
  assertOneLine(await cairn(['serve', '-m', model, '--port', '0', '--cluster', '--peers', ',,,']), /--peers ",,," names no node/, 'peers of commas');
  assertOneLine(await cairn(['generate', '-m', model, '-p', 'hi', '--draft-model', dir]), /is a directory; give the path of a \.gguf model file with --draft-model/, 'draft model a folder');
  assertOneLine(await cairn(['pull', model]), /is a file on this machine: it needs no pull; give its path with -m/, 'pull a local file');
  assertOneLine(await cairn(['node', '--models-dir', join(dir, 'no-such-models'), '--port', '0', '--no-mdns']), /--models-dir .*no-such-models: no such folder/, 'missing models dir');
  assert.ok(!existsSync(join(dir, 'no-such-models')), 'not created');
  // A folder as stdin (`< /tmp`) reads as nothing in Node: told, not generated from an empty prompt.
  const fd = openSync(dir, 'r');
  try {
    const r = spawnSync(process.execPath, [join(ROOT, 'bin/cairn.js'), 'generate', '-m', model, '-p', '-', '-n', '2'], { stdio: [fd, 'pipe', 'pipe'], encoding: 'utf8' });
    assertOneLine({ status: r.status, stdout: r.stdout, stderr: r.stderr }, /stdin, which is a folder here/, 'stdin a folder');
  } finally {
    closeSync(fd);
  }
});

test('chat: a conversation that outgrows the context is told, and the session goes on (/reset starts again)', async () => {
  const r = await cairn(['chat', '-m', model, '-n', '20', '--temperature', '0', '-c', '40'], 'once upon a time there was\nand then the next thing\nand more words again here\n/reset\nhello\n');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /context holds 40.*\/reset starts a new conversation/);
  assert.match(r.stderr, /conversation cleared/);
  // The turn after /reset is answered: the last prompt's reply follows it.
  const answers = r.stdout.split('> ').filter((a) => a.trim() !== '');
  assert.ok(answers.length >= 2, r.stdout);
});
