/**
 * Markdown to HTML for model replies. A reply is untrusted text: raw HTML in it is shown as text,
 * links keep only http(s) and mailto targets, and images become links (nothing loads by itself).
 * Fenced code gets a language label, a Copy button and syntax highlighting (highlight.js, whose
 * output is escaped text in spans with classes only: the page's CSP allows no inline style) for the
 * languages registered below; others are shown as plain text.
 */
import { Marked, type Tokens } from 'marked';
import hljs from 'highlight.js/lib/core';
import bash from 'highlight.js/lib/languages/bash';
import c from 'highlight.js/lib/languages/c';
import cpp from 'highlight.js/lib/languages/cpp';
import css from 'highlight.js/lib/languages/css';
import diff from 'highlight.js/lib/languages/diff';
import go from 'highlight.js/lib/languages/go';
import javascript from 'highlight.js/lib/languages/javascript';
import json from 'highlight.js/lib/languages/json';
import python from 'highlight.js/lib/languages/python';
import rust from 'highlight.js/lib/languages/rust';
import shell from 'highlight.js/lib/languages/shell';
import sql from 'highlight.js/lib/languages/sql';
import typescript from 'highlight.js/lib/languages/typescript';
import xml from 'highlight.js/lib/languages/xml';
import yaml from 'highlight.js/lib/languages/yaml';

// The languages models write most; each adds a few KiB to the bundle.
for (const [name, language] of Object.entries({
  bash,
  c,
  cpp,
  css,
  diff,
  go,
  javascript,
  json,
  python,
  rust,
  shell,
  sql,
  typescript,
  xml,
  yaml,
}))
  hljs.registerLanguage(name, language);

/** HTML-escapes text. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

function safeHref(href: string): string | undefined {
  return /^(https?:|mailto:)/i.test(href.trim()) ? href.trim() : undefined;
}

/** A fenced block: its label and Copy button above the code, highlighted when its language is known. */
function codeBlock(token: Tokens.Code): string {
  // The info string's first word names the language (```python title="x" -> python).
  const lang = (/^\S*/.exec(token.lang ?? '')?.[0] ?? '').slice(0, 32);
  const text = token.text.replace(/\n$/, '') + '\n';
  const language = lang ? hljs.getLanguage(lang) : undefined;
  const body = language ? hljs.highlight(text, { language: lang, ignoreIllegals: true }).value : escapeHtml(text);
  const label = escapeHtml(language?.name ?? (lang || 'text'));
  const cls = language ? ` class="hljs language-${escapeHtml(lang.toLowerCase())}"` : '';
  return (
    `<div class="code-block"><div class="code-head"><span class="code-lang">${label}</span>` +
    `<button type="button" class="copy" aria-label="Copy ${label} code">Copy</button></div>` +
    `<pre><code${cls}>${body}</code></pre></div>\n`
  );
}

const marked = new Marked({
  gfm: true,
  async: false,
  renderer: {
    html(token: Tokens.HTML | Tokens.Tag): string {
      // A block of raw HTML (an HTML snippet the model wrote without a code fence) keeps its lines.
      return token.block ? `<p class="plain">${escapeHtml(token.text.replace(/\n+$/, ''))}</p>\n` : escapeHtml(token.text);
    },
    code: codeBlock,
    link(token: Tokens.Link): string {
      const text = this.parser.parseInline(token.tokens);
      const href = safeHref(token.href);
      return href ? `<a href="${escapeHtml(href)}" rel="noopener noreferrer nofollow" target="_blank">${text}</a>` : text;
    },
    image(token: Tokens.Image): string {
      const href = safeHref(token.href);
      const alt = escapeHtml(token.text || 'image');
      return href ? `<a href="${escapeHtml(href)}" rel="noopener noreferrer nofollow" target="_blank">[${alt}]</a>` : `[${alt}]`;
    },
  },
});

/** A text as HTML that shows it as it is. */
function plainHtml(text: string): string {
  return `<p class="plain">${escapeHtml(text)}</p>`;
}

/** The HTML of a Markdown text, safe to insert. */
export function renderMarkdown(text: string): string {
  try {
    return marked.parse(text, { async: false });
  } catch {
    // The parser recurses once per level of nesting: a reply of a few thousand ">" or "*" overflows
    // the stack, and a throw here would take the whole page down (and again at each new token).
    // Such a reply is shown as plain text.
    return plainHtml(text);
  }
}

/** A parse of a reply slower than this shows it as plain text from then on. */
export const SLOW_PARSE_MS = 250;

/** Characters of a long reply parsed first, to tell how long the whole would take. */
export const PROBE_CHARS = 8192;

/**
 * Renders one reply as it grows token by token. The Markdown parser's worst cases are far from
 * linear (a few tens of kB of `*a _` take seconds) and a streamed reply is parsed again at every
 * token, which would freeze the page for as long as the reply streams: once one parse of the reply
 * takes longer than SLOW_PARSE_MS, it is shown as plain text from then on.
 */
export class ReplyRenderer {
  private plain = false;
  private probed = false;

  constructor(private readonly clock: () => number = () => performance.now()) {}

  /** The reply's HTML, safe to insert. */
  render(text: string): string {
    if (this.plain) return plainHtml(text);
    // A long reply met whole (one stored, or come in one chunk) is first timed on its start: the
    // parser's worst cases grow with the square of the length, so a start that is slow already
    // tells that the whole would freeze the page, before it is parsed.
    if (!this.probed && text.length > PROBE_CHARS) {
      this.probed = true;
      const t = this.clock();
      renderMarkdown(text.slice(0, PROBE_CHARS));
      if ((this.clock() - t) * (text.length / PROBE_CHARS) ** 2 > SLOW_PARSE_MS) {
        this.plain = true;
        return plainHtml(text);
      }
    }
    this.probed = true;
    const start = this.clock();
    const html = renderMarkdown(text);
    if (this.clock() - start > SLOW_PARSE_MS) this.plain = true;
    return html;
  }
}

/**
 * Copies the text of `code` to the clipboard. Pages opened over plain HTTP from another machine
 * have no clipboard API: there the code is selected and copied the old way, and when even that is
 * refused it stays selected for the reader to copy. Resolves to what happened.
 */
export async function copyCode(code: HTMLElement): Promise<'copied' | 'selected'> {
  const text = code.textContent ?? '';
  if (window.isSecureContext && navigator.clipboard) {
    try {
      await navigator.clipboard.writeText(text);
      return 'copied';
    } catch {
      // Refused (no permission, page not focused): fall through to the selection.
    }
  }
  const selection = getSelection();
  if (!selection) return 'selected';
  const range = document.createRange();
  range.selectNodeContents(code);
  selection.removeAllRanges();
  selection.addRange(range);
  let copied = false;
  try {
    copied = document.execCommand('copy');
  } catch {
    copied = false;
  }
  if (copied) selection.removeAllRanges();
  return copied ? 'copied' : 'selected';
}
