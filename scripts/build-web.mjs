#!/usr/bin/env node
// Bundles the dashboard (web/) with esbuild into dist/web: index.html plus content-hashed files
// under dist/web/assets, which `cairn serve` serves with long cache lifetimes.
import { build } from 'esbuild';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist/web');
rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, 'assets'), { recursive: true });

/** The libraries the bundle holds, with their licences (the texts ship with it). */
const BUNDLED = { preact: 'MIT', uplot: 'MIT', marked: 'MIT', 'highlight.js': 'BSD-3-Clause' };

const result = await build({
  absWorkingDir: root,
  entryPoints: { app: 'web/src/main.tsx' },
  bundle: true,
  format: 'esm',
  target: 'es2022',
  minify: true,
  outdir: join(out, 'assets'),
  entryNames: '[name]-[hash]',
  assetNames: '[name]-[hash]',
  jsx: 'automatic',
  jsxImportSource: 'preact',
  legalComments: 'none',
  banner: {
    js: `/*! cairn dashboard; bundles ${Object.entries(BUNDLED)
      .map(([name, licence]) => `${name} (${licence})`)
      .join(', ')}: see licenses.txt beside index.html */`,
  },
  metafile: true,
  logLevel: 'warning',
});

const outputs = Object.keys(result.metafile.outputs).map((p) => basename(p));
const js = outputs.find((n) => /^app-.*\.js$/.test(n));
const css = outputs.find((n) => /^app-.*\.css$/.test(n));
if (!js || !css) throw new Error(`build-web: expected app-*.js and app-*.css, got ${outputs.join(', ')}`);
const page = readFileSync(join(root, 'web/index.html'), 'utf8')
  .replace('%APP_CSS%', `/dashboard/assets/${css}`)
  .replace('%APP_JS%', `/dashboard/assets/${js}`);
writeFileSync(join(out, 'index.html'), page);
const licenses = Object.keys(BUNDLED).map((name) => {
  const dir = join(root, 'node_modules', name);
  const file = readdirSync(dir).find((f) => /^licen[cs]e/i.test(f));
  if (!file) throw new Error(`build-web: ${name} has no licence file`);
  return `${name}\n${'='.repeat(name.length)}\n\n${readFileSync(join(dir, file), 'utf8').trim()}\n`;
});
writeFileSync(join(out, 'licenses.txt'), licenses.join('\n'));
console.log(`build-web: dist/web/assets/${js}, ${css}`);
