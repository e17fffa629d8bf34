/** `cairn ls` and `cairn rm`: the models in the local store. */
import { Command } from 'commander';
import { defaultStore } from './model-arg.js';
import type { StoredModelFile } from '../store/model-store.js';

function gib(n: number): string {
  return n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(1)} GB` : `${(n / 2 ** 20).toFixed(0)} MB`;
}

/** "3 minutes ago", as `ollama list` says it. */
export function ago(iso: string, now = Date.now()): string {
  const s = Math.max(0, (now - Date.parse(iso)) / 1000);
  if (!Number.isFinite(s)) return 'unknown';
  const units: [number, string][] = [[86400 * 7, 'week'], [86400, 'day'], [3600, 'hour'], [60, 'minute']];
  for (const [size, unit] of units) {
    const n = Math.floor(s / size);
    if (n >= 1) return `${n} ${unit}${n > 1 ? 's' : ''} ago`;
  }
  return 'just now';
}

/** The table `cairn ls` prints. */
export function renderModels(models: readonly StoredModelFile[], now = Date.now()): string {
  const rows = [['NAME', 'SIZE', 'QUANT', 'ARCH', 'PULLED'], ...models.map((m) => [m.name, gib(m.size), m.quantization, m.architecture, ago(m.pulledAt, now)])];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('   ')).join('\n') + '\n';
}

/** The ls command. */
export function lsCommand(): Command {
  return new Command('ls')
    .alias('list')
    .description('List the models in the local store ($CAIRN_HOME, default ~/.cairn)')
    .option('--json', 'print a JSON array')
    .action((o: { json?: boolean }) => {
      const models = defaultStore().list();
      if (o.json) {
        process.stdout.write(JSON.stringify(models, null, 2) + '\n');
        return;
      }
      if (models.length === 0) {
        process.stdout.write('no models stored yet; fetch one with: cairn pull hf:OWNER/REPO:TAG\n');
        return;
      }
      process.stdout.write(renderModels(models));
    });
}

/** The rm command. */
export function rmCommand(): Command {
  return new Command('rm')
    .description('Remove models from the local store (a file another name still uses is kept)')
    .argument('<names...>', 'stored model names, as `cairn ls` shows them')
    .action((names: string[]) => {
      const store = defaultStore();
      for (const name of names) {
        const { model, freedBytes } = store.remove(name);
        process.stdout.write(`deleted ${model.name}${freedBytes > 0 ? ` (${gib(freedBytes)} freed)` : ' (its file is kept: another name uses it)'}\n`);
      }
    });
}
