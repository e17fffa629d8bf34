/**
 * Each node's CPU load and power, as the node reads them on its machine (it answers a `machine`
 * request with what `cairn node` samples there), asked every few seconds so the coordinator's
 * status (and the dashboard) show every machine of the cluster, not only its own. Answers are
 * checked (a share in [0, 1], watts that are finite and sane) and a node that does not answer in
 * time keeps its last sample until it is asked again.
 */
import { frameJson, jsonPayload, type PeerConnection } from '../cluster/index.js';
import { MeshFrame } from './protocol.js';

/** A machine's load as a node reports it (null: not readable there). */
export interface MachineLoad {
  readonly cpuLoad: number | null;
  readonly powerWatts: number | null;
}

/** How often nodes are asked. */
const EVERY_MS = 2000;
/** Watts above this are not a reading of one machine. */
const MAX_WATTS = 100_000;

/** Checks a node's answer; undefined when it is not a load. */
export function checkMachineLoad(v: unknown): MachineLoad | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const { cpuLoad, powerWatts } = v as Record<string, unknown>;
  const share = cpuLoad === null || (typeof cpuLoad === 'number' && Number.isFinite(cpuLoad) && cpuLoad >= 0 && cpuLoad <= 1);
  const watts = powerWatts === null || (typeof powerWatts === 'number' && Number.isFinite(powerWatts) && powerWatts >= 0 && powerWatts <= MAX_WATTS);
  if (!share || !watts) return undefined;
  return { cpuLoad: cpuLoad as number | null, powerWatts: powerWatts as number | null };
}

/** Asks the nodes `nodes()` gives for their load every EVERY_MS, and keeps the answers. */
export class NodeLoads {
  private readonly loads = new Map<string, MachineLoad>();
  private timer: NodeJS.Timeout | undefined;
  private readonly asking = new Set<string>();

  constructor(private readonly nodes: () => readonly { readonly id: string; readonly conn: PeerConnection }[]) {}

  /** Starts asking (the timer does not keep the process alive). */
  start(): void {
    this.timer ??= setInterval(() => this.askAll(), EVERY_MS);
    this.timer.unref();
    this.askAll();
  }

  /** Stops asking. */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** The last load a node reported, if any. */
  get(id: string): MachineLoad | undefined {
    return this.loads.get(id);
  }

  private askAll(): void {
    for (const n of this.nodes()) {
      // One question at a time per node: a node busy with a long step answers late, not twice.
      if (this.asking.has(n.id) || !n.conn.isOpen) continue;
      this.asking.add(n.id);
      const p = jsonPayload({});
      n.conn
        .request(MeshFrame.machine, p.meta, p.payload, { timeoutMs: 10_000 })
        .then((frame) => {
          const load = checkMachineLoad(frameJson(frame));
          if (load) this.loads.set(n.id, load);
        })
        .catch(() => {
          // A node that cannot answer shows its last sample, or none.
        })
        .finally(() => this.asking.delete(n.id));
    }
  }
}
