/**
 * Markdown to HTML for model replies. A reply is untrusted text: raw HTML in it is shown as text,
 * links keep only http(s) and mailto targets, and images become links (nothing loads by itself).
 */
import { Marked, type Tokens } from 'marked';

/** HTML-escapes text. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

function safeHref(href: string): string | undefined {
  return /^(https?:|mailto:)/i.test(href.trim()) ? href.trim() : undefined;
}

const marked = new Marked({
  gfm: true,
  async: false,
  renderer: {
    html(token: Tokens.HTML | Tokens.Tag): string {
      return escapeHtml(token.text);
    },
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

/** The HTML of a Markdown text, safe to insert. */
export function renderMarkdown(text: string): string {
  return marked.parse(text, { async: false });
}
