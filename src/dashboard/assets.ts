/**
 * The built web app (dist/web, made by scripts/build-web.mjs): its page and content-hashed files,
 * read into memory once and served with cache headers. Only files found at start-up are served,
 * so no request path ever reaches the file system.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyReply } from 'fastify';
import type { WebApp } from '../server/app.js';
import { SECURITY_HEADERS } from './csp.js';

/** Where the app's files are served from. */
export const ASSET_PREFIX = '/dashboard/assets/';

const TYPES: Readonly<Record<string, string>> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.woff2': 'font/woff2',
};

/** The folder of the built app, beside the compiled server (dist/src/dashboard -> dist/web). */
export function defaultWebRoot(): string {
  return fileURLToPath(new URL('../../web/', import.meta.url));
}

/** The built app in memory. */
export class DashboardAssets implements WebApp {
  private constructor(
    private readonly page: Buffer,
    private readonly files: ReadonlyMap<string, { body: Buffer; type: string }>,
  ) {}

  /** Reads the app from `root`; undefined when it was not built (the server then answers as before). */
  static load(root = defaultWebRoot()): DashboardAssets | undefined {
    const index = join(root, 'index.html');
    if (!existsSync(index)) return undefined;
    const files = new Map<string, { body: Buffer; type: string }>();
    const dir = join(root, 'assets');
    for (const name of existsSync(dir) ? readdirSync(dir) : []) {
      const type = TYPES[extname(name)];
      if (type) files.set(ASSET_PREFIX + name, { body: readFileSync(join(dir, name)), type });
    }
    return new DashboardAssets(readFileSync(index), files);
  }

  /** True for a file of this build (served without the key). */
  isAsset(path: string): boolean {
    return this.files.has(path);
  }

  /** Sends the page with its security headers. */
  async sendPage(reply: FastifyReply): Promise<unknown> {
    // The page names the hashed files of this build: always ask again.
    return reply
      .headers({ ...SECURITY_HEADERS, 'Cache-Control': 'no-cache' })
      .type('text/html; charset=utf-8')
      .send(this.page);
  }

  /** Sends the file at `path`, or returns false when there is none. */
  async sendAsset(path: string, reply: FastifyReply): Promise<boolean> {
    const file = this.files.get(path);
    if (!file) return false;
    // Names carry their content's hash: a name never changes content.
    await reply
      .headers({ ...SECURITY_HEADERS, 'Cache-Control': 'public, max-age=31536000, immutable' })
      .type(file.type)
      .send(file.body);
    return true;
  }
}
