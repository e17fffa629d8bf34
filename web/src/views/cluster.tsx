/**
 * The cluster as a graph: the coordinator and its nodes, links labelled with their measured
 * latency and bandwidth, each node's role in the plan, memory, load and power; a node that is down
 * is drawn red. Without a cluster it shows this machine alone. A table repeats it all as text.
 */
import type { ClusterInfo, DashboardSnapshot, MachineSample } from '../../../src/dashboard/wire.js';
import { bytes, num, percent } from '../format';
import type { PlanChange } from '../plan-log';

interface NodeRow {
  readonly id: string;
  readonly name: string;
  readonly address: string;
  readonly local: boolean;
  readonly up: boolean;
  readonly role: string;
  /** The GPU adapter a node computes on (absent: its CPU). */
  readonly gpu?: string;
  readonly usedBytes: number | null;
  readonly offeredBytes: number | null;
  /** Load and power: this machine's own sample, or what a remote node reports of its machine. */
  readonly machine: Pick<MachineSample, 'cpuLoad' | 'powerWatts'> | null;
  /** Its shard on its way to it, while it is. */
  readonly transfer?: { readonly from: 'hub' | 'coordinator'; readonly done: number; readonly total: number };
}

type Stage = NonNullable<ClusterInfo['plan']>['stages'][number];

function roleOf(stages: readonly Stage[]): string {
  if (!stages.length) return 'no layers';
  return stages
    .map((s) => {
      const layers = s.layerEnd - s.layerStart === 1 ? `layer ${s.layerStart}` : `layers ${s.layerStart}–${s.layerEnd - 1}`;
      return s.splitCount > 1
        ? `${layers}, ${s.splitMode ?? 'tensor'} rank ${s.splitRank + 1}/${s.splitCount} (${percent(s.splitShare)})`
        : layers;
    })
    .join('; ');
}

function rowsOf(s: DashboardSnapshot): NodeRow[] {
  const c = s.cluster;
  if (!c) {
    const layers = s.model.layers;
    return [
      {
        id: 'local',
        name: 'this machine',
        address: 'local',
        local: true,
        up: s.model.state !== 'failed',
        role: layers ? `all ${layers} layers` : s.model.state,
        usedBytes: s.model.residentBytes,
        offeredBytes: s.machine.totalMemoryBytes,
        machine: s.machine,
      },
    ];
  }
  return c.nodes.map((n) => {
    const stages = c.plan?.stages.filter((st) => st.nodeId === n.id) ?? [];
    return {
      id: n.id,
      name: n.name,
      address: n.address,
      local: n.local,
      up: n.up,
      // A node computing on its GPU says so (the adapter in full in the table's tooltip).
      role: n.backend === 'gpu' ? `${roleOf(stages)} · GPU` : roleOf(stages),
      gpu: n.backend === 'gpu' ? n.adapter ?? 'GPU' : undefined,
      usedBytes: stages.length ? stages.reduce((a, st) => a + st.memoryBytes, 0) : null,
      offeredBytes: n.memoryBytes,
      machine: n.local ? s.machine : { cpuLoad: n.cpuLoad ?? null, powerWatts: n.powerWatts ?? null },
      transfer: n.transfer,
    };
  });
}

const W = 640;
/** Characters that fit a node's 190-unit box: of its name (14px, bold), of its other lines (12px). The
   full texts are in the box's title and the table below. */
const NAME_CHARS = 21;
const LINE_CHARS = 26;

/** The text cut to `max` characters with an ellipsis (whole code points: a name may hold any). */
function fitBox(text: string, max: number): string {
  const chars = [...text];
  return chars.length <= max ? text : `${chars.slice(0, max - 1).join('')}…`;
}
const H = 360;

/** The cluster view of the latest snapshot, with the plan changes this page saw. */
export function ClusterView({ snapshot, planLog }: { snapshot: DashboardSnapshot | null; planLog: readonly PlanChange[] }) {
  if (!snapshot) return <p class="hint">Waiting for the live feed…</p>;
  const rows = rowsOf(snapshot);
  const c = snapshot.cluster;
  // The coordinator (or this machine) in the middle, the other nodes on a circle around it; one
  // other node sits beside it, which keeps the drawing short.
  // No row at all while a coordinator that computes nothing itself waits for its first node (or
  // hashes the model before it counts itself): there is no graph to draw then.
  const hub: NodeRow | undefined = rows.find((r) => r.local) ?? rows[0];
  const others = rows.filter((r) => r !== hub);
  const h = others.length > 1 ? H : 100;
  const pos = new Map<string, { x: number; y: number }>(hub ? [[hub.id, { x: others.length === 1 ? 120 : W / 2, y: h / 2 }]] : []);
  others.forEach((r, i) => {
    const a = others.length === 1 ? 0 : -Math.PI / 2 + (2 * Math.PI * i) / others.length;
    pos.set(
      r.id,
      others.length === 1 ? { x: W - 120, y: h / 2 } : { x: W / 2 + Math.cos(a) * (W / 2 - 110), y: H / 2 + Math.sin(a) * (H / 2 - 60) },
    );
  });
  const linkTo = (r: NodeRow) => c?.links.find((l) => l.to === r.name);
  return (
    <div class="cluster">
      <p class="plan" data-testid="plan">
        {c ? (
          <>
            Cluster <strong>{c.state}</strong> (plan {c.epoch}) · {c.model.name}, {c.model.layers} layers · predicted{' '}
            {num(c.plan?.predictedTokensPerSecond)} tok/s (pipelined {num(c.plan?.predictedPipelinedTokensPerSecond)}) · measured{' '}
            {num(c.plan?.measuredTokensPerSecond)} tok/s
            {c.error ? ` · ${c.error}` : ''}
          </>
        ) : (
          <>One machine: {snapshot.model.id} runs here (start with --cluster to spread it over nodes).</>
        )}
      </p>
      {!hub && (
        <p class="hint" data-testid="no-nodes">
          No node has answered yet.
        </p>
      )}
      {hub && (
        <svg class="graph" viewBox={`0 0 ${W} ${h}`} role="img" aria-label="Nodes and links of the cluster (details in the table below)">
          {others.map((r) => {
            const a = pos.get(hub.id)!;
            const b = pos.get(r.id)!;
            const l = linkTo(r);
            return (
              <g key={`link-${r.id}`} class={`link ${r.up ? '' : 'down'}`}>
                <line x1={a.x} y1={a.y} x2={b.x} y2={b.y} />
                <text x={(a.x + b.x) / 2} y={(a.y + b.y) / 2 - 6} text-anchor="middle">
                  {l ? `${num(l.latencyMs, 2)} ms · ${num(l.megabytesPerSecond, 0)} MB/s` : 'n/a'}
                </text>
              </g>
            );
          })}
          {rows.map((r) => {
            const p = pos.get(r.id)!;
            return (
              <g
                key={r.id}
                class={`node ${r.up ? 'up' : 'down'}`}
                data-node={r.name}
                data-up={String(r.up)}
                transform={`translate(${p.x - 95},${p.y - 34})`}
              >
                <title>{`${r.name}${r.up ? '' : ' (down)'}: ${r.role}`}</title>
                <rect width="190" height="68" rx="8" />
                <text x="95" y="20" text-anchor="middle" class="name">
                  {fitBox(r.name, r.up ? NAME_CHARS : NAME_CHARS - 7)}
                  {r.up ? '' : ' (down)'}
                </text>
                <text x="95" y="38" text-anchor="middle">
                  {fitBox(r.role, LINE_CHARS)}
                </text>
                <text x="95" y="56" text-anchor="middle">
                  {bytes(r.usedBytes)} / {bytes(r.offeredBytes)}
                </text>
              </g>
            );
          })}
        </svg>
      )}
      <div class="table-wrap">
        <table>
          <caption>Nodes</caption>
          <thead>
            <tr>
              <th scope="col">Node</th>
              <th scope="col">State</th>
              <th scope="col">Role in the plan</th>
              <th scope="col">Memory used / offered</th>
              <th scope="col">CPU load</th>
              <th scope="col">Power</th>
              <th scope="col">Link</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => {
              const l = linkTo(r);
              return (
                <tr key={r.id} class={r.up ? '' : 'down'}>
                  <th scope="row">
                    {r.name} <span class="muted">{r.address}</span>
                  </th>
                  <td>{r.up ? 'up' : 'down'}</td>
                  <td title={r.gpu ? `computes on ${r.gpu}` : undefined}>
                    {r.role}
                    {r.transfer && (
                      <div class="muted" data-testid="transfer">
                        {r.transfer.from === 'hub' ? 'fetching its shard from the hub' : 'receiving its shard'}:{' '}
                        <progress max={r.transfer.total} value={r.transfer.done} aria-label={`shard download of ${r.name}`} />{' '}
                        {bytes(r.transfer.done)} / {bytes(r.transfer.total)}
                      </div>
                    )}
                  </td>
                  <td>
                    {bytes(r.usedBytes)} / {bytes(r.offeredBytes)}
                  </td>
                  <td>{percent(r.machine?.cpuLoad)}</td>
                  <td>{num(r.machine?.powerWatts, 1, ' W')}</td>
                  <td>{l ? `${num(l.latencyMs, 2)} ms, ${num(l.megabytesPerSecond, 0)} MB/s` : r.local ? '—' : 'n/a'}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
      <p class="hint">
        CPU load and power as each machine reads them (n/a where it cannot: power needs Linux RAPL or hwmon sensors readable without root).
      </p>
      {c && planLog.length > 0 && (
        <section aria-label="Plan changes">
          <h2 class="small">Plan changes</h2>
          <ol class="plan-log" data-testid="plan-log">
            {planLog.map((p) => (
              <li key={`${p.at}-${p.epoch}-${p.state}`}>
                <time dateTime={new Date(p.at).toISOString()}>{new Date(p.at).toLocaleTimeString()}</time> plan {p.epoch}: {p.state}
                {p.down.length ? ` (down: ${p.down.join(', ')})` : ''}
              </li>
            ))}
          </ol>
        </section>
      )}
    </div>
  );
}
