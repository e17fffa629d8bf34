/**
 * The dashboard's rendering of hostile input, without a browser: the web app's Markdown renderer
 * and views bundled with esbuild and run here. A reply nested deeper than the Markdown parser's
 * stack is shown as text instead of throwing (a throw takes the whole page down); the Cluster view
 * of a cluster with no node yet renders; names a peer chooses reach the page as text, never HTML.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { ROOT, scratchDir } from './helpers/paths.js';
import type { ClusterInfo, DashboardSnapshot } from '../src/dashboard/wire.js';

type VNode = { type: unknown; props: Record<string, unknown> & { children?: unknown } };
let renderMarkdown: (text: string) => string;
let ReplyRenderer: new (clock?: () => number) => { render(text: string): string };
let ClusterView: (props: { snapshot: DashboardSnapshot | null; planLog: readonly unknown[] }) => VNode;

const out = scratchDir('dashboard-web');
after(() => rmSync(out, { recursive: true, force: true }));

before(async () => {
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  await build({
    absWorkingDir: ROOT,
    entryPoints: { markdown: 'web/src/markdown.ts', cluster: 'web/src/views/cluster.tsx', store: 'web/src/chat/store.ts' },
    bundle: true,
    format: 'esm',
    platform: 'node',
    outdir: out,
    jsx: 'automatic',
    jsxImportSource: 'preact',
    logLevel: 'warning',
  });
  ({ renderMarkdown, ReplyRenderer } = (await import(pathToFileURL(join(out, 'markdown.js')).href)) as { renderMarkdown: typeof renderMarkdown; ReplyRenderer: typeof ReplyRenderer });
  ({ ClusterView } = (await import(pathToFileURL(join(out, 'cluster.js')).href)) as { ClusterView: typeof ClusterView });
});

/** Every node of a tree of elements (function components are not called: the views here call none that matter). */
function* walk(v: unknown): Generator<VNode | string | number> {
  if (Array.isArray(v)) for (const c of v) yield* walk(c);
  else if (typeof v === 'string' || typeof v === 'number') yield v;
  else if (v && typeof v === 'object' && 'props' in v) {
    yield v as VNode;
    yield* walk((v as VNode).props.children);
  }
}

const text = (v: unknown) => [...walk(v)].filter((n) => typeof n !== 'object').join('');

test("a reply nested past the Markdown parser's stack is shown as escaped text rather than throwing", () => {
  for (const reply of ['>'.repeat(5000) + ' <b>x</b>', '*'.repeat(3000) + '<i>x</i>' + '*'.repeat(3000), '- > '.repeat(5000) + 'x']) {
    const html = renderMarkdown(reply);
    assert.match(html, /^<p class="plain">/);
    assert.ok(!/<[bi]>/.test(html), html.slice(0, 200));
  }
  // Ordinary Markdown is still Markdown, its raw HTML still text.
  assert.equal(
    renderMarkdown('> *a* <img src=x onerror=alert(1)>').trim(),
    '<blockquote>\n<p><em>a</em> &lt;img src=x onerror=alert(1)&gt;</p>\n</blockquote>',
  );
});

test('a block of raw HTML in a reply is shown as text with its lines kept', () => {
  const html = renderMarkdown('Here:\n\n<div>\n  <b>bold</b>\n</div>\n\nafter');
  assert.match(html, /<p class="plain">&lt;div&gt;\n {2}&lt;b&gt;bold&lt;\/b&gt;\n&lt;\/div&gt;<\/p>/);
  assert.match(html, /<p>after<\/p>/);
  assert.ok(!/<(div|b)>/.test(html), html);
});

const snapshot = (cluster: ClusterInfo): DashboardSnapshot =>
  ({
    model: { id: 'm', state: 'loading', layers: null, residentBytes: 1 },
    machine: { cpuLoad: null, powerWatts: null, totalMemoryBytes: 1, freeMemoryBytes: 1 },
    cluster,
  }) as unknown as DashboardSnapshot;

test('the Cluster view of a cluster with no node yet renders (a coordinator hashing the model, or waiting for its first node)', () => {
  const v = ClusterView({
    snapshot: snapshot({ state: 'planning', epoch: 0, model: { name: 'm.gguf', layers: 2 }, nodes: [], links: [] }),
    planLog: [],
  });
  assert.match(text(v), /Cluster planning .*m\.gguf, 2 layers/);
  assert.match(text(v), /No node has answered yet/);
});

test('names a peer chooses reach the Cluster view as text and attribute values, never as HTML', () => {
  const evil = '<img src=x onerror=alert(1)>"\'';
  const node = {
    id: evil,
    name: evil,
    address: evil,
    local: false,
    up: false,
    memoryBytes: 1,
    threads: 1,
    isa: evil,
    backend: 'gpu' as const,
    adapter: evil,
  };
  const v = ClusterView({
    snapshot: snapshot({
      state: 'ready',
      error: evil,
      epoch: 1,
      model: { name: evil, layers: 2 },
      nodes: [node],
      links: [{ to: evil, latencyMs: 1, megabytesPerSecond: 1 }],
    }),
    planLog: [{ at: 0, epoch: 1, state: 'ready', down: [evil] }],
  });
  const nodes = [...walk(v)];
  assert.ok(nodes.every((n) => typeof n !== 'object' || !('dangerouslySetInnerHTML' in n.props)));
  assert.ok(text(v).includes(evil));
  // Only the places the view means to put a name in an attribute do (Preact sets them as values).
  const attrs = nodes.flatMap((n) =>
    typeof n === 'object'
      ? Object.entries(n.props)
          .filter(([k, p]) => k !== 'children' && typeof p === 'string' && p.includes(evil))
          .map(([k]) => k)
      : [],
  );
  assert.ok(attrs.length > 0 && attrs.every((k) => ['aria-label', 'data-node', 'title'].includes(k)), attrs.join());
});

test("a node's long name is cut to fit its box in the graph, and given whole in the box's title and the table", () => {
  const name = 'node-' + 'x'.repeat(60);
  const node = { id: 'a', name, address: '10.0.0.2:7070', local: false, up: true, memoryBytes: 1, threads: 1, isa: 'avx2', backend: 'gpu' as const, adapter: 'a' };
  const v = ClusterView({
    snapshot: snapshot({ state: 'ready', epoch: 1, model: { name: 'm.gguf', layers: 2 }, nodes: [node], links: [] }),
    planLog: [],
  });
  const box = [...walk(v)].find((n) => typeof n === 'object' && n.props['data-node'] === name) as VNode;
  assert.ok(box, 'the graph has a box for the node');
  const label = [...walk(box.props.children)].find((n) => typeof n === 'object' && n.props.class === 'name') as VNode;
  const shown = text(label.props.children);
  assert.ok(shown.endsWith('…') && [...shown].length <= 21, shown);
  const title = [...walk(box.props.children)].find((n) => typeof n === 'object' && n.type === 'title') as VNode;
  assert.ok(text(title.props.children).includes(name));
  assert.ok(text(v).split(name).length >= 3, 'the full name is in the title and the table');
});

test('a streamed reply whose Markdown parse once takes too long is shown as plain text from then on (it is parsed again at every token)', () => {
  // A clock read before and after each parse: the first took 10 ms, the second 300.
  const times = [0, 10, 10, 310];
  const clock = () => times.shift() ?? 1000;
  const renderer = new ReplyRenderer(clock);
  assert.match(renderer.render('**bold**'), /<strong>bold<\/strong>/);
  assert.match(renderer.render('**bold** and'), /<strong>/);
  // From here on the reply is text (escaped), not Markdown.
  const html = renderer.render('**bold** and <i>more</i>');
  assert.match(html, /^<p class="plain">/);
  assert.ok(!html.includes('<strong>') && !html.includes('<i>'), html);
  // Another reply starts with Markdown again.
  assert.match(new ReplyRenderer(() => 0).render('**x**'), /<strong>x<\/strong>/);
});

test('a long reply met whole (stored, or in one chunk) is timed on its start first: a slow start shows it as plain text without parsing it all', () => {
  // 8192 characters of a 64 KiB reply parsed in 20 ms: the whole would take ~20 x 8^2 ms.
  const reply = '*a _'.repeat(16384);
  const times = [0, 20];
  const slow = new ReplyRenderer(() => times.shift() ?? 1e9);
  const html = slow.render(reply);
  assert.match(html, /^<p class="plain">/);
  assert.equal(times.length, 0, 'only the start was parsed');
  // A start that parses quickly lets the whole reply be Markdown.
  const fast = new ReplyRenderer(() => 0);
  assert.match(fast.render(`**bold**\n\n${'word '.repeat(4000)}`), /<strong>bold<\/strong>/);
});

test("conversations that outgrow the browser's storage: long messages are cut, then the oldest left out, and the save says so; one large message does not stop later saves", async () => {
  interface Stored {
    title: string;
    messages: { role: 'user' | 'assistant'; content: string }[];
  }
  const { saveConversations, loadConversations, newConversation, MAX_STORED_CHARS } = (await import(pathToFileURL(join(out, 'store.js')).href)) as {
    saveConversations: (list: Stored[]) => 'saved' | 'trimmed' | 'failed';
    loadConversations: () => Stored[];
    newConversation: () => Stored;
    MAX_STORED_CHARS: number;
  };
  // A storage that refuses values over `quota` characters, as a browser's does past its few MB.
  let quota = Infinity;
  const kept = new Map<string, string>();
  (globalThis as { localStorage?: unknown }).localStorage = {
    getItem: (k: string) => kept.get(k) ?? null,
    setItem: (k: string, v: string) => {
      if (v.length > quota) throw new Error('QuotaExceededError');
      kept.set(k, v);
    },
  };
  try {
    const chat = (title: string, content: string) => ({ ...newConversation(), title, messages: [{ role: 'user' as const, content }] });
    const small = [chat('newest', 'hi'), chat('older', 'hello')];
    assert.equal(saveConversations(small), 'saved');
    quota = 3 * MAX_STORED_CHARS;
    const big = [chat('newest', 'x'.repeat(6_000_000)), ...small];
    assert.equal(saveConversations(big), 'trimmed');
    const back = loadConversations();
    assert.deepEqual(back.map((c) => c.title), ['newest', 'newest', 'older']);
    assert.ok(back[0].messages[0].content.length < MAX_STORED_CHARS + 100 && /\[cut here/.test(back[0].messages[0].content));
    // Later conversations still get saved.
    assert.equal(saveConversations([chat('later', 'more'), ...big]), 'trimmed');
    assert.equal(loadConversations()[0].title, 'later');
    quota = 10;
    assert.equal(saveConversations(small), 'failed');
  } finally {
    delete (globalThis as { localStorage?: unknown }).localStorage;
  }
});
