/**
 * `cairn cluster status`: the nodes, links, plan and memory of a running cluster coordinator.
 * `cairn cluster key`: a fresh random cluster key, printed or written to a private file.
 */
import { Command } from 'commander';
import { writeFileSync } from 'node:fs';
import { CairnError, isCairnError } from '../util/errors.js';
import { formatBytes } from '../util/format.js';
import type { ClusterStatus } from '../mesh/coordinator.js';

/** The cluster command group. */
export function clusterCommand(): Command {
  const cluster = new Command('cluster').description('Inspect a running cluster, or make a cluster key');
  cluster
    .command('key')
    .description('Print a fresh random 256-bit cluster key (give the same key to every node and to `cairn serve --cluster`)')
    .option('--out <file>', 'write the key to this file, readable only by you, instead of printing it (use it with --cluster-key-file)')
    .action(async (o: { out?: string }) => {
      const { generateClusterKey } = await import('../cluster/index.js');
      const key = generateClusterKey();
      if (!o.out) {
        process.stdout.write(`${key}\n`);
        return;
      }
      try {
        writeFileSync(o.out, `${key}\n`, { mode: 0o600, flag: 'wx' });
      } catch (err) {
        const exists = (err as NodeJS.ErrnoException).code === 'EEXIST';
        throw new CairnError('BAD_ARGUMENT', exists ? `${o.out} already exists; remove it first or choose another file` : `cannot write ${o.out}: ${(err as Error).message}`);
      }
      process.stderr.write(`cairn: wrote a new cluster key to ${o.out}; copy it to every node and start them with --cluster-key-file ${o.out}\n`);
    });
  cluster
    .command('status')
    .description('Show the nodes, links, plan and memory of a coordinator (cairn serve --cluster)')
    .option('--url <url>', 'the coordinator\'s server', 'http://127.0.0.1:8080')
    .option('--api-key <key>', 'API key of the server (default: $CAIRN_API_KEY)')
    .option('--json', 'print one JSON object')
    .action(async (o: { url: string; apiKey?: string; json?: boolean }) => {
      let body: ClusterStatus;
      try {
        body = await fetchStatus(o.url, o.apiKey ?? process.env.CAIRN_API_KEY);
      } catch (err) {
        if (!o.json || !isCairnError(err)) throw err;
        // A script asked for JSON: it gets JSON on stdout, errors too (and a non-zero exit).
        process.stdout.write(JSON.stringify({ error: { code: err.code, message: err.message } }, null, 2) + '\n');
        process.exitCode = 1;
        return;
      }
      if (o.json) {
        process.stdout.write(JSON.stringify(body, null, 2) + '\n');
        return;
      }
      process.stdout.write(render(body));
    });
  return cluster;
}

/** The coordinator's status, or a CairnError saying why there is none. */
async function fetchStatus(url: string, key: string | undefined): Promise<ClusterStatus> {
  let r: Response;
  try {
    r = await fetch(`${url.replace(/\/$/, '')}/v1/cluster`, { headers: key ? { authorization: `Bearer ${key}` } : {} });
  } catch (err) {
    throw new CairnError('CLUSTER_UNREACHABLE', `cannot reach ${url}: ${(err as Error).message}. Is \`cairn serve --cluster\` running there?`);
  }
  const body = (await r.json().catch(() => undefined)) as (ClusterStatus & { error?: { message: string } }) | undefined;
  if (!r.ok || !body) throw new CairnError('CLUSTER_REMOTE', `${url}: ${r.status} ${body?.error?.message ?? r.statusText}`);
  return body;
}

function render(s: ClusterStatus): string {
  const lines = [`cluster ${s.state}${s.error ? `: ${s.error}` : ''}, plan ${s.epoch}, model ${s.model.name} (${s.model.layers} layers)`, '', 'nodes:'];
  for (const n of s.nodes) {
    lines.push(`  ${(n.up ? 'up  ' : 'DOWN') + ' ' + n.name.padEnd(16)} ${n.address.padEnd(22)} ${formatBytes(n.memoryBytes).padStart(10)}  ${(n.bytesPerSecond / 1e9).toFixed(1)} GB/s  ${n.threads} threads ${n.isa}`);
    if (n.cpuLoad !== undefined || n.powerWatts !== undefined) {
      lines.push(`       CPU ${n.cpuLoad == null ? 'n/a' : `${(100 * n.cpuLoad).toFixed(0)}%`}, power ${n.powerWatts == null ? 'n/a' : `${n.powerWatts.toFixed(1)} W`}`);
    }
    const t = n.transfer;
    if (t) lines.push(`       ${t.from === 'hub' ? 'fetching its shard from the hub' : 'receiving its shard from the coordinator'}: ${t.total > 0 ? ((100 * t.done) / t.total).toFixed(0) : 0}% (${formatBytes(t.done)} of ${formatBytes(t.total)})`);
  }
  if (s.links.length) {
    lines.push('', 'links from the coordinator:');
    for (const l of s.links) lines.push(`  ${l.to.padEnd(16)} ${(l.latencyMs * 1000).toFixed(0)} us round trip, ${l.megabytesPerSecond.toFixed(0)} MB/s`);
  }
  if (s.plan) {
    const measured = s.plan.measuredTokensPerSecond;
    lines.push(
      '',
      `plan: one stream predicted ${s.plan.predictedTokensPerSecond.toFixed(1)} tok/s, measured ${measured === undefined ? '(no decode yet)' : `${measured.toFixed(1)} tok/s`}; ` +
        `${s.plan.predictedPipelinedTokensPerSecond.toFixed(1)} tok/s predicted with every stage busy; activations travel as ${s.plan.activationDtype}`,
    );
    for (const st of s.plan.stages) {
      const share = `${(100 * st.splitShare).toFixed(0)}%`;
      const part =
        st.splitMode === 'expert'
          ? st.splitRank === 0
            ? `home: attention, shared parts and ${share} of the routed experts`
            : `${share} of the routed experts`
          : `${share} of each layer`;
      const rank = st.splitCount > 1 ? ` rank ${st.splitRank + 1}/${st.splitCount} (${part})` : '';
      lines.push(`  layers ${`${st.layerStart}-${st.layerEnd - 1}`.padEnd(8)} on ${st.name.padEnd(16)} ${formatBytes(st.memoryBytes)}${rank}`);
    }
    for (const x of s.plan.exchanges ?? []) {
      lines.push(`  group ${x.names.join(' + ')}: one all-reduce of a token ${x.measuredMs.toFixed(2)} ms measured (${x.estimatedMs.toFixed(2)} ms estimated from the links)`);
    }
  }
  return lines.join('\n') + '\n';
}
