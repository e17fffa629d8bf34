/**
 * The dashboard in a real browser: headless Chromium (Debian's /usr/bin/chromium) driven by
 * playwright-core against real `cairn serve` processes on loopback. One machine: the page loads
 * under its Content-Security-Policy without console errors, a chat message gets a streamed reply
 * with its token counts, the Live, Models and Cluster views fill from the live feed, the layout
 * holds at phone width, and with --api-key the login field keeps a wrong key out and lets the
 * right one in. A 2-node cluster: both nodes and the plan show, and a killed node turns red.
 * Screenshots of each view go to dist/test-screenshots/.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { ROOT, scratchDir } from './helpers/paths.js';
import { startServer, type ServerProcess } from './helpers/server.js';
import { startNode, type NodeProcess } from './helpers/node.js';
import { writeTinyModel } from './helpers/tiny-model.js';

const CHROMIUM = '/usr/bin/chromium';
const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is absent (Debian's chromium package; .ci/run installs it)`;
const shots = join(ROOT, 'dist/test-screenshots');
const dir = scratchDir('dashboard');
const model = join(dir, 'tiny.gguf');

let browser: Browser | undefined;

before(async () => {
  if (skip) return;
  mkdirSync(dir, { recursive: true });
  mkdirSync(shots, { recursive: true });
  writeTinyModel(model);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
});
after(async () => {
  await browser?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A page that records console errors and failed requests. */
async function openPage(width = 1280, height = 900): Promise<{ page: Page; errors: string[] }> {
  const page = await browser!.newPage({ viewport: { width, height } });
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(e.message));
  return { page, errors };
}

async function view(page: Page, name: string): Promise<void> {
  await page.getByRole('link', { name }).click();
  // Browser-side code as text: this file is compiled without the DOM's types.
  await page.waitForFunction(`document.querySelector('nav a[aria-current="page"]')?.textContent === ${JSON.stringify(name)}`);
}

describe('dashboard on one machine', { skip }, () => {
  let server: ServerProcess;
  before(async () => {
    server = await startServer(['-m', model, '--threads', '1', '--parallel', '2']);
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
      for (const part of ["default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"]) assert.ok(csp.includes(part), csp);
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
      await page.screenshot({ path: join(shots, 'chat.png'), fullPage: true });
      // The conversation is kept in the browser.
      await page.reload();
      await page.locator('.message.user', { hasText: 'Hello there' }).waitFor();

      await view(page, 'Live');
      await page.waitForFunction(`Number(document.querySelector('[data-testid="live-samples"]')?.textContent?.split(' ')[0]) > 1`);
      assert.equal(await page.locator('.chart canvas').count(), 4);
      await page.screenshot({ path: join(shots, 'live.png'), fullPage: true });

      await view(page, 'Models');
      assert.equal(await page.getByTestId('model-architecture').textContent(), 'llama');
      assert.equal(await page.getByTestId('model-quantization').textContent(), 'F32');
      await page.screenshot({ path: join(shots, 'models.png'), fullPage: true });

      await view(page, 'Cluster');
      await page.locator('[data-node="this machine"][data-up="true"]').waitFor();
      await page.screenshot({ path: join(shots, 'cluster-one-machine.png'), fullPage: true });
      assert.deepEqual(errors, []);
    } finally {
      await page.close();
    }
  });

  test('at phone width (390 px) nothing overflows sideways and the nav works from the keyboard', async () => {
    const { page, errors } = await openPage(390, 844);
    try {
      await page.goto(server.url + '/#chat');
      await page.getByLabel('Message').waitFor();
      const overflow = (await page.evaluate('document.documentElement.scrollWidth - window.innerWidth')) as number;
      assert.ok(overflow <= 0, `the page is ${overflow}px wider than the screen`);
      // Tab to the nav's Live link and follow it with Enter.
      await page.locator('nav a').first().focus();
      await page.keyboard.press('Tab');
      await page.keyboard.press('Enter');
      await page.waitForFunction(`location.hash === '#live'`);
      await page.screenshot({ path: join(shots, 'phone-live.png'), fullPage: true });
      assert.deepEqual(errors, []);
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
      await page.screenshot({ path: join(shots, 'login.png'), fullPage: true });
      await field.fill('right-key');
      await page.getByRole('button', { name: 'Log in' }).click();
      await page.getByRole('status').getByText('tiny · ready').waitFor();
      assert.equal(await page.evaluate(`sessionStorage.getItem('cairn.apiKey')`), 'right-key');
      // Still in after a reload: the tab keeps the key.
      await page.reload();
      await page.getByRole('status').getByText('tiny · ready').waitFor();
      await page.getByLabel('Message').waitFor();
    } finally {
      await page.close();
    }
    // The feed itself needs the key.
    assert.equal((await fetch(`${server.url}/v1/dashboard/events`)).status, 401);
  });
});

describe('dashboard of a 2-node cluster', { skip }, () => {
  let node: NodeProcess;
  let server: ServerProcess;
  const env = { XDG_CACHE_HOME: join(dir, 'cache') };
  before(async () => {
    node = await startNode([], { env });
    server = await startServer(['-m', model, '--threads', '1', '--cluster', '--peers', node.peer, '--parallelism', 'pipeline', '--ctx', '256'], env);
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
      await page.getByTestId('plan').getByText(/Cluster ready/).waitFor();
      const nodes = page.locator('.graph .node');
      await page.waitForFunction(`document.querySelectorAll('.graph .node[data-up="true"]').length === 2`);
      assert.equal(await nodes.count(), 2);
      await page.screenshot({ path: join(shots, 'cluster.png'), fullPage: true });

      await view(page, 'Chat');
      await page.getByText('System prompt and sampling').click();
      await page.getByLabel('Max tokens').fill('12');
      await page.getByLabel('Message').fill('Hi cluster');
      await page.getByRole('button', { name: 'Send' }).click();
      await page.locator('.message.assistant').last().locator('.stats').waitFor({ timeout: 30_000 });

      await view(page, 'Cluster');
      await node.stop();
      // The feed says so within a few seconds (the coordinator sees the connection drop).
      await page.locator('.graph .node[data-up="false"]').waitFor({ timeout: 15_000 });
      await page.screenshot({ path: join(shots, 'cluster-node-down.png'), fullPage: true });
      await page.getByTestId('plan').getByText(/plan [1-9]/).waitFor({ timeout: 30_000 });
    } finally {
      await page.close();
    }
  });
});
