/**
 * The cluster's plan changes seen by this page: each new plan (epoch) or state, with its time and
 * the nodes down then, so a re-plan after a node drops out stays visible after it settles.
 */
import { useEffect, useState } from 'preact/hooks';
import type { ClusterInfo } from '../../src/dashboard/wire.js';

/** One change. */
export interface PlanChange {
  readonly at: number;
  readonly epoch: number;
  readonly state: string;
  readonly down: readonly string[];
}

/** Changes kept. */
const KEPT = 50;

/** The plan changes of `cluster` as the feed brings it. */
export function usePlanLog(cluster: ClusterInfo | null | undefined): readonly PlanChange[] {
  const [log, setLog] = useState<PlanChange[]>([]);
  const epoch = cluster?.epoch;
  const state = cluster?.state;
  const down = cluster?.nodes.filter((n) => !n.up).map((n) => n.name) ?? [];
  const downKey = down.join(',');
  useEffect(() => {
    if (epoch === undefined || state === undefined) return;
    setLog((l) => {
      const last = l[l.length - 1];
      if (last && last.epoch === epoch && last.state === state && last.down.join(',') === downKey) return l;
      return [...l, { at: Date.now(), epoch, state, down: downKey ? downKey.split(',') : [] }].slice(-KEPT);
    });
  }, [epoch, state, downKey]);
  return log;
}
