/** A KV operation of the mesh applied to shards held in this process (a node's stage or the coordinator's). */
import type { KvOp } from './protocol.js';
import type { KvOps } from './stage-model.js';

/** Applies `op` to the caches behind `local`; `export` returns the bytes, `import` takes them. */
export async function applyKvOp(local: KvOps, op: KvOp, importBytes?: Uint8Array): Promise<{ bytes: number; data?: Uint8Array }> {
  switch (op.op) {
    case 'copy':
      await local.copySlotPrefix(op.from, op.to, op.n);
      return { bytes: 0 };
    case 'save':
      return { bytes: await local.saveSlot(op.slot, op.n, op.key) };
    case 'load':
      await local.loadSlot(op.key, op.slot);
      return { bytes: 0 };
    case 'drop':
      await local.dropSaved(op.key);
      return { bytes: 0 };
    case 'export':
      return { bytes: 0, data: await local.exportSaved(op.key) };
    case 'import':
      return { bytes: await local.importSaved(op.key, importBytes ?? new Uint8Array(0)) };
  }
}
