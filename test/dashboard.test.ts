/**
 * The dashboard against real `cairn serve` processes on loopback. Over plain HTTP: GET / for
 * browsers and for other clients, the files' cache headers, the live feed behind the key. In a
 * real browser, headless Chromium (Debian's /usr/bin/chromium) driven by playwright-core: the page
 * loads under its Content-Security-Policy without console errors, a chat message gets a streamed
 * reply with its token counts, Markdown keeps raw HTML as text, code blocks are highlighted with a
 * label and a Copy button that works from the keyboard, Stop ends a reply midway, a conversation
 * renamed in the list keeps its name after a reload, the Live, Models and Cluster views fill from
 * the feed, the layout holds at phone width (light and dark), and with --api-key the login field
 * keeps a wrong key out and lets the right one in. On a slower model: a request running now is
 * listed in Live with its speed so far, and once it ended with its final speed; the feed says it is
 * reconnecting while the server hangs (stopped) and once it is killed, and comes back to it and to a
 * new server on the same port without counting a sample twice. A 2-node cluster: both nodes and the
 * plan show, a killed node turns red and the re-plan shows. Screenshots of each view go to
 * dist/test-screenshots/.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { ModelStore } from '../src/store/model-store.js';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { ROOT, scratchDir } from './helpers/paths.js';
import { startServer, type ServerProcess } from './helpers/server.js';
import { startNode, type NodeProcess } from './helpers/node.js';
import { writeTinyModel } from './helpers/tiny-model.js';
import { GgmlType } from '../src/gguf/ggml-types.js';
import { writeSyntheticModel } from '../src/model/synthetic.js';

const CHROMIUM = '/usr/bin/chromium';
const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is absent (Debian's chromium package; .ci/run installs it)`;
const shots = join(ROOT, 'dist/test-screenshots');
const dir = scratchDir('dashboard');
const model = join(dir, 'tiny.gguf');
/** Some 300 tokens a second on one thread here: a long reply runs for seconds, long enough to watch. */
const slowModel = join(dir, 'slow.gguf');

let browser: Browser | undefined;

before(async () => {
  if (skip) return;
  mkdirSync(dir, { recursive: true });
  mkdirSync(shots, { recursive: true });
  writeTinyModel(model);
  writeSyntheticModel(
    slowModel,
    { arch: 'llama', nEmbd: 256, nLayer: 4, nHead: 4, nKvHead: 2, nFf: 512, nVocab: 1000, ctx: 4096, quant: GgmlType.F32, seed: 11 },
    () => {
      throw new Error('F32 needs no quantizer');
    },
  );
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
});
after(async () => {
  await browser?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A page that records console errors (failed requests among them) and uncaught exceptions. */
async function openPage(width = 1280, height = 900): Promise<{ page: Page; errors: string[] }> {
  const page = await browser!.newPage({ viewport: { width, height } });
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(e.message));
  return { page, errors };
}

/**
 * Waits until the browser-side expression `expr` is true. Polled from here: Playwright's own
 * waitForFunction re-evaluates text with eval inside the page, which the page's CSP forbids.
 */
async function until(page: Page, expr: string, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await page.evaluate(expr))) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${expr}`);
    await page.waitForTimeout(50);
  }
}

/** Saves a screenshot of the page's content (its body, without the empty viewport below it). */
async function shot(page: Page, name: string): Promise<void> {
  await page.locator('body').screenshot({ path: join(shots, name) });
}

/**
 * Keeps what the page showed when a test failed (failed-N.png beside the other screenshots) and
 * returns the error with the end of what the server said (a crashed server tells why).
 */
async function failed(page: Page, n: number, err: unknown, server: ServerProcess): Promise<Error> {
  await page.screenshot({ path: join(shots, `failed-${n}.png`), fullPage: true }).catch(() => undefined);
  return new Error(
    `${(err as Error).message}\nserver (exit ${server.proc.exitCode ?? server.proc.signalCode ?? 'none'}): ${server.stderr().slice(-2000)}`,
    { cause: err },
  );
}

/** Stores `conversations` as the page's chat history (the page then reloads to show them). */
async function seedConversations(page: Page, conversations: readonly object[]): Promise<void> {
  await page.evaluate(`localStorage.setItem('cairn.conversations', ${JSON.stringify(JSON.stringify(conversations))})`);
  await page.reload();
}

/** A stored conversation of one question and `reply`. */
function conversationWith(id: string, title: string, reply: string): object {
  return {
    id,
    title,
    system: '',
    sampling: {},
    updated: 1,
    messages: [
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: reply },
    ],
  };
}

/** A reply with a Python block and an unlabelled one holding markup. */
const PYTHON = 'def greet(name):\n    # say hello\n    return f"Hello, {name}!"\n';
const CODE_REPLY = `Here it is:\n\n\`\`\`python\n${PYTHON}\`\`\`\n\nAnd \`inline\`.\n\n\`\`\`\nplain <b>text</b>\n\`\`\``;

async function view(page: Page, name: string): Promise<void> {
  await page.getByRole('link', { name }).click();
  // Browser-side code as text: this file is compiled without the DOM's types.
  await until(page, `document.querySelector('nav a[aria-current="page"]')?.textContent === ${JSON.stringify(name)}`);
}

describe('dashboard over plain HTTP (no browser needed)', () => {
  let server: ServerProcess;
  before(async () => {
    mkdirSync(dir, { recursive: true });
    if (!existsSync(model)) writeTinyModel(model);
    server = await startServer(['-m', model, '--threads', '1', '--api-key', 'k1']);
    await server.ready();
  });
  after(async () => {
    await server?.stop();
  });

  test('GET / gives browsers the page (no key, strict CSP, no-cache) and other clients what they got before', async () => {
    const key = { authorization: 'Bearer k1' };
    const probe = await fetch(`${server.url}/`, { headers: { ...key, accept: '*/*' } });
    assert.equal(await probe.text(), 'Ollama is running');
    assert.equal((await fetch(`${server.url}/`)).status, 401);
    const page = await fetch(`${server.url}/`, { headers: { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' } });
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    assert.equal(page.headers.get('cache-control'), 'no-cache');
    assert.match(page.headers.get('vary') ?? '', /Accept/);
    assert.match(page.headers.get('content-security-policy') ?? '', /script-src 'self'; style-src 'self'/);
    const html = await page.text();
    assert.doesNotMatch(html, /<script>|<style|style=|https?:\/\//, 'nothing inline, nothing from elsewhere');
    const js = /src="(\/dashboard\/assets\/app-[A-Z0-9]+\.js)"/.exec(html)?.[1];
    assert.ok(js, html);
    const asset = await fetch(server.url + js);
    assert.equal(asset.status, 200);
    assert.equal(asset.headers.get('cache-control'), 'public, max-age=31536000, immutable');
    assert.match(asset.headers.get('content-type') ?? '', /^text\/javascript/);
    // A file the build did not make is no public file: without the key it is a 401 like any path.
    assert.equal((await fetch(`${server.url}/dashboard/assets/app-NOPE.js`, { headers: key })).status, 404);
    assert.equal((await fetch(`${server.url}/dashboard/assets/..%2F..%2Fpackage.json`, { headers: key })).status, 404);
    assert.equal((await fetch(`${server.url}/dashboard/assets/app-NOPE.js`)).status, 401);
  });

  test('the live feed needs the key and starts with the last minutes, then a snapshot a second', async () => {
    assert.equal((await fetch(`${server.url}/v1/dashboard/events`)).status, 401);
    const abort = new AbortController();
    const r = await fetch(`${server.url}/v1/dashboard/events`, { headers: { authorization: 'Bearer k1' }, signal: abort.signal });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^text\/event-stream/);
    let text = '';
    const decoder = new TextDecoder();
    for await (const chunk of r.body!) {
      text += decoder.decode(chunk as Uint8Array, { stream: true });
      if (text.includes('event: snapshot')) break;
    }
    abort.abort();
    assert.match(text, /^event: history\ndata: \{"samples":\[/);
    const snapshot = JSON.parse(/event: snapshot\ndata: (.*)\n/.exec(text)![1]) as {
      model: { id: string; architecture: string };
      live: { tokensPerSecond: number };
      machine: { totalMemoryBytes: number };
      cluster: unknown;
    };
    assert.equal(snapshot.model.id, 'tiny');
    assert.equal(snapshot.model.architecture, 'llama');
    assert.equal(typeof snapshot.live.tokensPerSecond, 'number');
    assert.ok(snapshot.machine.totalMemoryBytes > 0);
    assert.equal(snapshot.cluster, null);
  });
});

describe('dashboard on one machine', { skip }, () => {
  let server: ServerProcess;
  before(async () => {
    // A store holding one model (as `cairn pull` leaves it), which the Models view lists.
    const store = new ModelStore(join(dir, 'store'));
    const sha256 = createHash('sha256').update(readFileSync(model)).digest('hex');
    mkdirSync(store.blobsDir, { recursive: true });
    copyFileSync(model, store.blobPath(sha256));
    const size = statSync(model).size;
    store.add({
      name: 'hf:tester/tiny-GGUF:F32',
      sha256,
      size,
      architecture: 'llama',
      quantization: 'F32',
      pulledAt: new Date().toISOString(),
      source: { repo: 'tester/tiny-GGUF', commit: '0'.repeat(40), endpoint: 'http://127.0.0.1:1', files: [{ path: 'tiny-F32.gguf', size, sha256 }] },
    });
    // Slots of 8192 tokens: a reply that runs to the end of its context takes long enough to be stopped midway on a busy machine.
    server = await startServer(['-m', model, '--threads', '1', '--parallel', '2', '--ctx', '8192'], { CAIRN_HOME: store.root });
    await server.ready();
  });
  after(async () => {
    await server?.stop();
  });

  test('the page loads under a strict CSP with no console errors; chat streams a reply; Live, Models and Cluster fill from the feed', async () => {
    const { page, errors } = await openPage();
    try {
      const response = await page.goto(server.url + '/');
      assert.equal(response?.status(), 200);
      const csp = response?.headers()['content-security-policy'] ?? '';
      for (const part of ["default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"])
        assert.ok(csp.includes(part), csp);
      await page.getByRole('status').getByText('tiny · ready').waitFor();

      // Chat: settings, then a message; the reply streams in and gets its token line.
      await page.getByText('System prompt and sampling').click();
      await page.getByLabel('System prompt').fill('You are terse.');
      await page.getByLabel('Max tokens').fill('24');
      await page.getByLabel('Temperature').fill('0');
      await page.getByLabel('Message').fill('Hello there');
      await page.keyboard.press('Enter');
      const reply = page.locator('.message.assistant').last();
      await reply.locator('.stats').waitFor({ timeout: 30_000 });
      const stats = await reply.locator('.stats').textContent();
      assert.match(stats ?? '', /\d+ prompt \+ 24 tokens · [\d.]+ tok\/s/);
      assert.ok(((await reply.locator('.markdown').textContent()) ?? '').length > 0, 'the reply has text');
      await shot(page, 'chat.png');
      // The conversation is kept in the browser.
      await page.reload();
      await page.locator('.message.user', { hasText: 'Hello there' }).waitFor();
      // A half-typed message outlives the chat view (another view, or the login field, replaces it).
      await page.getByLabel('Message').fill('half typed');

      await view(page, 'Live');
      await until(page, `Number(document.querySelector('[data-testid="live-samples"]')?.textContent?.split(' ')[0]) > 1`);
      await page.locator('.chart canvas').nth(4).waitFor();
      assert.equal(await page.locator('.chart canvas').count(), 5);
      // The reply above ended: it is listed with its speed.
      await until(page, `Number(document.querySelector('[data-testid="finished-tps"]')?.textContent) > 0`);
      await shot(page, 'live.png');

      await view(page, 'Models');
      assert.equal(await page.getByTestId('model-architecture').textContent(), 'llama');
      assert.equal(await page.getByTestId('model-quantization').textContent(), 'F32');
      // And what is stored on disk.
      await page.getByTestId('stored-models').getByText('hf:tester/tiny-GGUF:F32').waitFor();
      await shot(page, 'models.png');

      await view(page, 'Cluster');
      await page.locator('[data-node="this machine"][data-up="true"]').waitFor();
      await shot(page, 'cluster-one-machine.png');
      await view(page, 'Chat');
      assert.equal(await page.getByLabel('Message').inputValue(), 'half typed');
      assert.deepEqual(errors, []);
    } catch (err) {
      throw await failed(page, 1, err, server);
    } finally {
      await page.close();
    }
  });

  test('a reply is Markdown with its raw HTML shown as text and unsafe links dropped; Stop ends a reply midway', async () => {
    const { page, errors } = await openPage();
    try {
      await page.goto(server.url + '/');
      // A stored conversation whose reply tries to run script.
      const hostile =
        '**bold** `code`\n\n<img src=x onerror="window.pwned=1"> [click](javascript:window.pwned=1)\n\n```js\nlet a = 1;\n```';
      const conversation = {
        id: 'x1',
        title: 'hostile',
        system: '',
        sampling: {},
        updated: 1,
        messages: [
          { role: 'user', content: 'hi' },
          { role: 'assistant', content: hostile },
        ],
      };
      await page.evaluate(`localStorage.setItem('cairn.conversations', ${JSON.stringify(JSON.stringify([conversation]))})`);
      await page.reload();
      const md = page.locator('.message.assistant .markdown').first();
      await md.locator('strong').getByText('bold').waitFor();
      assert.equal(await md.locator('pre code').textContent(), 'let a = 1;\n');
      assert.equal(await md.locator('img').count(), 0);
      assert.equal(await md.locator('a').count(), 0);
      assert.match((await md.textContent()) ?? '', /<img src=x onerror="window.pwned=1">/);
      assert.equal(await page.evaluate('window.pwned'), undefined);

      // A long reply (the whole context), stopped once some of it has streamed in.
      // Greedy, so the reply is the same on every run (and runs long: this prompt meets no end-of-text early).
      await page.getByRole('button', { name: 'New chat' }).click();
      await page.getByText('System prompt and sampling').click();
      await page.getByLabel('Temperature').fill('0');
      await page.getByLabel('Message').fill('Tell me a long story');
      await page.keyboard.press('Enter');
      const reply = page.locator('.message.assistant').last();
      await until(page, `(document.querySelector('.message.assistant:last-child .markdown')?.textContent ?? '').length > 20`);
      await page.getByRole('button', { name: 'Stop' }).click();
      await reply.locator('.note').getByText('stopped').waitFor();
      assert.ok(((await reply.locator('.markdown').textContent()) ?? '').length > 20);
      await page.getByRole('button', { name: 'Send' }).waitFor();
      assert.deepEqual(
        errors.filter((e) => !/aborted/i.test(e)),
        [],
      );
    } catch (err) {
      throw await failed(page, 2, err, server);
    } finally {
      await page.close();
    }
  });

  test('code in a reply is highlighted under a language label, and its Copy button copies it from the keyboard', async () => {
    const { page, errors } = await openPage();
    try {
      await page.goto(server.url + '/');
      await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
      await seedConversations(page, [conversationWith('c1', 'code', CODE_REPLY)]);
      const blocks = page.locator('.message.assistant .code-block');
      await blocks.first().waitFor();
      assert.equal(await blocks.count(), 2);
      const py = blocks.first();
      assert.equal(await py.locator('.code-lang').textContent(), 'Python');
      assert.equal(await py.locator('code.hljs.language-python .hljs-keyword').first().textContent(), 'def');
      assert.equal(await py.locator('.hljs-comment').textContent(), '# say hello');
      assert.ok((await py.locator('.hljs-string').count()) > 0);
      assert.equal(await py.locator('pre code').textContent(), PYTHON);
      // Classes only: the CSP would refuse inline styles (and the console would say so).
      assert.equal(await page.locator('.markdown [style]').count(), 0);
      // Code of no known language is plain text, its markup shown as text.
      const plain = blocks.nth(1);
      assert.equal(await plain.locator('.code-lang').textContent(), 'text');
      assert.equal(await plain.locator('pre code').textContent(), 'plain <b>text</b>\n');
      assert.equal(await plain.locator('b').count(), 0);
      // The Copy button from the keyboard: focused, Enter copies.
      const copy = page.getByRole('button', { name: 'Copy Python code' });
      await copy.focus();
      await page.keyboard.press('Enter');
      await until(page, `document.querySelector('.code-block button.copy')?.textContent === 'Copied'`);
      assert.equal(await page.evaluate('navigator.clipboard.readText()'), PYTHON);
      assert.equal(await page.evaluate(`document.activeElement?.getAttribute('aria-label')`), 'Copy Python code');
      // It says so to screen readers too, and goes back to "Copy".
      await page.locator('[aria-live="polite"]', { hasText: 'Code copied' }).waitFor({ state: 'attached' });
      await until(page, `document.querySelector('.code-block button.copy')?.textContent === 'Copy'`, 5000);
      await shot(page, 'chat-code.png');
      assert.deepEqual(errors, []);
    } catch (err) {
      throw await failed(page, 6, err, server);
    } finally {
      await page.close();
    }
  });

  test('a conversation is renamed in the list from the keyboard (Escape drops, Enter keeps) and keeps its name after a reload', async () => {
    const { page, errors } = await openPage();
    try {
      await page.goto(server.url + '/');
      await seedConversations(page, [conversationWith('r1', 'First question', 'An answer.')]);
      const rename = (title: string) => page.getByRole('button', { name: `Rename conversation ${title}` });
      const focused = `document.activeElement?.getAttribute('aria-label')`;
      await rename('First question').focus();
      await page.keyboard.press('Enter');
      const field = page.getByRole('textbox', { name: 'New name of conversation First question' });
      await field.waitFor();
      assert.equal(await page.evaluate(`document.activeElement?.classList.contains('rename')`), true);
      // The old name is selected: typing replaces it. Escape drops the edit, and focus returns to the button.
      await page.keyboard.type('Not this');
      await page.keyboard.press('Escape');
      await rename('First question').waitFor();
      assert.equal(await page.evaluate(focused), 'Rename conversation First question');
      await page.keyboard.press('Enter');
      await page.keyboard.type('Trip plans');
      await page.keyboard.press('Enter');
      await rename('Trip plans').waitFor();
      assert.equal(await page.evaluate(focused), 'Rename conversation Trip plans');
      await page.reload();
      await page.locator('.conversations button.link', { hasText: 'Trip plans' }).waitFor();
      assert.equal(await page.locator('.conversations button.link', { hasText: 'First question' }).count(), 0);
      // A new conversation named before its first message keeps its name when the message is sent.
      await page.getByRole('button', { name: 'New chat' }).click();
      await rename('Untitled').click();
      await page.getByRole('textbox', { name: 'New name of conversation Untitled' }).fill('Named first');
      await page.keyboard.press('Enter');
      await page.getByText('System prompt and sampling').click();
      await page.getByLabel('Max tokens').fill('4');
      await page.getByLabel('Message').fill('Hello');
      await page.keyboard.press('Enter');
      await page.locator('.message.assistant').last().locator('.stats').waitFor();
      await rename('Named first').waitFor();
      await page.reload();
      await page.locator('.conversations button.link', { hasText: 'Named first' }).waitFor();
      assert.deepEqual(errors, []);
    } catch (err) {
      throw await failed(page, 7, err, server);
    } finally {
      await page.close();
    }
  });

  test('at phone width (390 px) nothing overflows sideways, in light and dark, and the nav works from the keyboard', async () => {
    const { page, errors } = await openPage(390, 844);
    try {
      // As on a page opened over plain HTTP from another machine, which has no crypto.randomUUID.
      await page.addInitScript('delete Crypto.prototype.randomUUID');
      await page.goto(server.url + '/#chat');
      await seedConversations(page, [conversationWith('p1', 'Code sample', CODE_REPLY)]);
      await page.getByLabel('Message').waitFor();
      await page.getByRole('button', { name: 'New chat' }).click();
      assert.equal(await page.locator('.conversations li').count(), 2);
      // Back to the one with code, which the screenshots show.
      await page.locator('.conversations button.link', { hasText: 'Code sample' }).click();
      const fits = async (what: string) => {
        await page.waitForTimeout(200);
        const overflow = (await page.evaluate('document.documentElement.scrollWidth - window.innerWidth')) as number;
        assert.ok(overflow <= 0, `${what}: the page is ${overflow}px wider than the screen`);
      };
      for (const name of ['Chat', 'Live', 'Cluster', 'Models']) {
        await view(page, name);
        await fits(name);
        await shot(page, `phone-${name.toLowerCase()}.png`);
      }
      await page.emulateMedia({ colorScheme: 'dark' });
      for (const name of ['Chat', 'Live']) {
        await view(page, name);
        await fits(`${name} (dark)`);
        await shot(page, `phone-${name.toLowerCase()}-dark.png`);
      }
      await page.emulateMedia({ colorScheme: 'light' });
      await view(page, 'Chat');
      // Tab to the nav's Live link and follow it with Enter.
      await page.locator('nav a').first().focus();
      await page.keyboard.press('Tab');
      await page.keyboard.press('Enter');
      await until(page, `location.hash === '#live'`);
      assert.deepEqual(errors, []);
    } catch (err) {
      throw await failed(page, 3, err, server);
    } finally {
      await page.close();
    }
  });
});

/** Starts a streamed chat completion of `maxTokens` greedy tokens; resolves once its first piece came, with what waits for its end. */
async function streamedRequest(url: string, maxTokens: number): Promise<{ done: Promise<void> }> {
  const r = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      model: 'slow',
      messages: [{ role: 'user', content: 'Tell me a long story' }],
      max_tokens: maxTokens,
      temperature: 0,
      stream: true,
    }),
  });
  assert.equal(r.status, 200);
  const reader = r.body!.getReader();
  let text = '';
  const decoder = new TextDecoder();
  while (!text.includes('"content":"') || text.split('"content":').length < 3) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the stream ended early: ${text}`);
    text += decoder.decode(value, { stream: true });
  }
  const done = (async () => {
    while (!(await reader.read()).done);
  })();
  return { done };
}

describe('dashboard on a slower model: requests one by one, and a feed that comes back', { skip }, () => {
  let server: ServerProcess;
  before(async () => {
    server = await startServer(['-m', slowModel, '--threads', '1', '--parallel', '2']);
    await server.ready();
  });
  after(async () => {
    await server?.stop();
  });

  const samples = `Number(document.querySelector('[data-testid="live-samples"]')?.textContent?.split(' ')[0])`;
  /**
   * True when the Live view holds no more samples than one a second (and a little for timers that
   * fire a millisecond early): a history sent again and counted twice would hold far more.
   */
  const noTwice = `(() => {
    const el = document.querySelector('[data-testid="live-samples"]');
    const n = Number(el.textContent.split(' ')[0]);
    return n <= (Number(el.dataset.to) - Number(el.dataset.from)) / 1000 + 2;
  })()`;

  test('a running request is listed with its speed so far, then with its final speed once it ended', async () => {
    const { page, errors } = await openPage();
    try {
      await page.goto(server.url + '/#live');
      await page.getByRole('status').getByText('slow · ready').waitFor();
      await page.getByTestId('running-none').waitFor();
      const request = await streamedRequest(server.url, 1500);
      // Listed within a snapshot or two, generating, with a speed above zero.
      await until(page, `Number(document.querySelector('[data-testid="running-tps"]')?.textContent) > 0`, 15_000);
      const row = page.getByTestId('running-requests').locator('tbody tr').first();
      const cells = await row.locator('th, td').allTextContents();
      assert.match(cells[0], /^#\d+$/);
      assert.equal(cells[1], 'slow');
      assert.equal(cells[2], 'generating');
      assert.match(cells[3], /^\d+ \/ 1500$/);
      assert.ok(Number(cells[3].split(' ')[0]) > 0, cells[3]);
      await shot(page, 'live-running.png');
      await request.done;
      // Gone from the running list; the ended list and the per-request chart have it.
      await page.getByTestId('running-none').waitFor({ timeout: 10_000 });
      const ended = page.getByTestId('finished-requests').locator('tbody tr').first();
      await ended.waitFor();
      const endedCells = await ended.locator('th, td').allTextContents();
      assert.equal(endedCells[2], '1500');
      assert.ok(Number(endedCells[3]) > 0, endedCells[3]);
      assert.match((await page.getByRole('img', { name: /^Speed of each request/ }).getAttribute('aria-label')) ?? '', /: 1 request ended/);
      await shot(page, 'live-ended.png');
      assert.deepEqual(errors, []);
    } catch (err) {
      throw await failed(page, 8, err, server);
    } finally {
      await page.close();
    }
  });

  test('the feed says it is reconnecting while the server hangs or is gone, and comes back to it or to a new server on the same port', async () => {
    const { page } = await openPage();
    const status = `document.querySelector('header .status')?.dataset.state`;
    try {
      await page.goto(server.url + '/#live');
      await until(page, `${status} === 'connected' && ${samples} > 2`);
      // The server stopped (as a hung process or a machine gone from the network: no answer, no
      // closed connection): reconnecting once the feed is silent, then the same server's history
      // again when it goes on, counted once.
      server.proc.kill('SIGSTOP');
      try {
        await until(page, `${status} === 'reconnecting'`, 15_000);
        await page.getByTestId('feed-lost').waitFor();
      } finally {
        server.proc.kill('SIGCONT');
      }
      await until(page, `${status} === 'connected'`, 20_000);
      const before = (await page.evaluate(samples)) as number;
      await until(page, `${samples} > ${before}`, 10_000);
      assert.equal(await page.evaluate(noTwice), true);
      assert.equal(await page.getByTestId('feed-lost').count(), 0);

      // The server killed: reconnecting, with the samples so far kept.
      const port = new URL(server.url).port;
      const kept = (await page.evaluate(samples)) as number;
      server.proc.kill('SIGKILL');
      await server.stop();
      await until(page, `${status} === 'reconnecting'`, 15_000);
      await page.getByRole('status').getByText('reconnecting…').waitFor();
      await page.getByTestId('feed-lost').waitFor();
      await shot(page, 'live-reconnecting.png');
      assert.ok(((await page.evaluate(samples)) as number) >= kept);

      // A new server on the same port: connected again, and its snapshots arrive.
      server = await startServer(['-m', slowModel, '--threads', '1', '--port', port]);
      assert.equal(new URL(server.url).port, port);
      await until(page, `${status} === 'connected'`, 20_000);
      await page.getByRole('status').getByText('slow · ready').waitFor({ timeout: 20_000 });
      const now = (await page.evaluate(samples)) as number;
      await until(page, `${samples} >= ${now + 2}`, 10_000);
      assert.equal(await page.evaluate(noTwice), true);
      assert.ok(((await page.evaluate(samples)) as number) > kept, 'the samples from before the restart are kept');
      assert.equal(await page.getByTestId('feed-lost').count(), 0);
    } catch (err) {
      throw await failed(page, 9, err, server);
    } finally {
      await page.close();
    }
  });
});

describe('dashboard with --api-key', { skip }, () => {
  let server: ServerProcess;
  before(async () => {
    server = await startServer(['-m', model, '--threads', '1', '--api-key', 'right-key']);
    await server.ready();
  });
  after(async () => {
    await server?.stop();
  });

  test('the login field keeps a wrong key out and lets the right one in (kept in session storage)', async () => {
    const { page } = await openPage();
    try {
      await page.goto(server.url + '/');
      const field = page.getByLabel('API key');
      await field.waitFor();
      await field.fill('wrong-key');
      await page.getByRole('button', { name: 'Log in' }).click();
      await page.getByRole('alert').getByText('The server refused that key.').waitFor();
      await shot(page, 'login.png');
      await field.fill('right-key');
      await page.getByRole('button', { name: 'Log in' }).click();
      await page.getByRole('status').getByText('tiny · ready').waitFor();
      assert.equal(await page.evaluate(`sessionStorage.getItem('cairn.apiKey')`), 'right-key');
      // Still in after a reload: the tab keeps the key.
      await page.reload();
      await page.getByRole('status').getByText('tiny · ready').waitFor();
      await page.getByLabel('Message').waitFor();
      // Forgetting the key asks for it again.
      await page.getByRole('button', { name: 'Forget key' }).click();
      await page.getByLabel('API key').waitFor();
      assert.equal(await page.evaluate(`sessionStorage.getItem('cairn.apiKey')`), null);
    } catch (err) {
      throw await failed(page, 4, err, server);
    } finally {
      await page.close();
    }
  });
});

describe('dashboard of a 2-node cluster', { skip }, () => {
  let node: NodeProcess;
  let server: ServerProcess;
  const env = { XDG_CACHE_HOME: join(dir, 'cache') };
  before(async () => {
    node = await startNode([], { env });
    server = await startServer(
      ['-m', model, '--threads', '1', '--cluster', '--peers', node.peer, '--parallelism', 'pipeline', '--ctx', '256'],
      env,
    );
    await server.ready();
  });
  after(async () => {
    await server?.stop();
    await node?.stop();
  });

  test('both nodes and the plan show; a chat reply streams; a killed node turns red and the re-plan shows', async () => {
    const { page } = await openPage();
    try {
      await page.goto(server.url + '/#cluster');
      await page
        .getByTestId('plan')
        .getByText(/Cluster ready/)
        .waitFor();
      const nodes = page.locator('.graph .node');
      await until(page, `document.querySelectorAll('.graph .node[data-up="true"]').length === 2`);
      assert.equal(await nodes.count(), 2);
      // Each node says which layers the plan gave it (the planner may give the remote node both when
      // the link measures slow on a busy machine), and the links carry their measurements.
      const coordinator = (await page.locator('.graph .node', { hasText: 'coordinator' }).textContent()) ?? '';
      const remote = (await nodes.filter({ hasNotText: 'coordinator' }).textContent()) ?? '';
      const split = /layer 0/.test(coordinator) && /layer 1/.test(remote);
      const remoteOnly = /no layers/.test(coordinator) && /layers 0–1/.test(remote);
      assert.ok(split || remoteOnly, `the plan's layers on the nodes: "${coordinator}" / "${remote}"`);
      assert.match((await page.locator('.graph .link text').textContent()) ?? '', /[\d.]+ ms · \d+ MB\/s/);
      assert.match((await page.getByTestId('plan').textContent()) ?? '', /plan 1\b.*predicted [\d.]+ tok\/s/);
      // The node's own CPU load, as it reports it (its power is n/a where RAPL is not readable).
      await until(
        page,
        `[...document.querySelectorAll('.cluster table tbody tr')].some((tr) => !(tr.querySelector('th')?.textContent ?? '').includes('coordinator') && /\\d+ %/.test(tr.children[4]?.textContent ?? ''))`,
      );
      await shot(page, 'cluster.png');

      await view(page, 'Chat');
      await page.getByText('System prompt and sampling').click();
      await page.getByLabel('Max tokens').fill('12');
      await page.getByLabel('Message').fill('Hi cluster');
      await page.getByRole('button', { name: 'Send' }).click();
      // The reply's token line, or the note saying why there is none.
      const ended = page.locator('.message.assistant').last().locator('.stats, .note');
      await ended.waitFor({ timeout: 30_000 });
      // Up to the 12 asked for: the random model may end its reply early, as the plan's rounding of
      // the activations between the nodes (f16 on the wire) decides its tokens.
      const made = /\+ (\d+) tokens?/.exec((await ended.textContent()) ?? '');
      assert.ok(made && Number(made[1]) >= 1 && Number(made[1]) <= 12, `the reply's token line: ${await ended.textContent()}`);

      await view(page, 'Cluster');
      await node.stop();
      // Red within the heartbeat limit (8 s of silence, src/mesh/node-set.ts) and a feed sample (1 s);
      // a killed process closes its connection, which the coordinator sees sooner.
      await page.locator('.graph .node[data-up="false"]').waitFor({ timeout: 10_000 });
      await shot(page, 'cluster-node-down.png');
      // The re-plan: a new plan in which the coordinator holds every layer.
      await page
        .getByTestId('plan')
        .getByText(/Cluster ready \(plan [2-9]\)/)
        .waitFor({ timeout: 30_000 });
      await page.locator('.graph .node', { hasText: 'coordinator' }).locator('text', { hasText: 'layers 0–1' }).waitFor();
      // The page keeps the changes it saw: plan 1 with both nodes, then the node down, then the new plan.
      const log = (await page.getByTestId('plan-log').textContent()) ?? '';
      assert.match(log, /plan 1: ready(?!\s*\(down)/);
      assert.match(log, /down: vm|down: [^)]+/);
      assert.match(log, /plan [2-9]: ready/);
      // Live adds the plan's predicted and measured speed for a cluster.
      await view(page, 'Live');
      await page.getByText('Cluster plan: one-stream speed').waitFor();
      // The charts draw after their headings: wait for the sixth before counting (a count taken at
      // once found none in a clean-clone run).
      await page.locator('.chart canvas').nth(5).waitFor();
      assert.equal(await page.locator('.chart canvas').count(), 6);
      await shot(page, 'cluster-live.png');
    } catch (err) {
      const e = await failed(page, 5, err, server);
      throw new Error(`${e.message}\nnode: ${node.stderr().slice(-1000)}`, { cause: err });
    } finally {
      await page.close();
    }
  });
});
