/**
 * Checks of the mesh messages a node receives, before any value is used: every number an integer
 * in its range (slots, positions, rows, token ids, sequence ids), every list bounded by what one
 * step can hold, every kind one of the known ones. A message that fails gets a CLUSTER_PROTOCOL
 * error naming the field; the caller fails that request, never the process.
 */
import { CairnError } from '../util/errors.js';
import type { SequenceSpec } from '../engine/sequence-samplers.js';
import type { ExchangeProbe, ForwardHead, KvOp, SeqStart } from './protocol.js';
import { MAX_PROBE_ROUNDS } from './tensor-group.js';
import { maxLogitsRows } from './limits.js';

/** What a stage can hold, against which a step is checked. */
export interface StageBounds {
  readonly maxBatch: number;
  readonly slots: number;
  readonly ctxPerSlot: number;
  readonly nVocab: number;
  /** The first stage takes token ids; later ones hidden states. */
  readonly isFirst: boolean;
}

function bad(message: string): CairnError {
  return new CairnError('CLUSTER_PROTOCOL', `malformed mesh message: ${message}`);
}

function object(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad(`${what} is not an object`);
  return value as Record<string, unknown>;
}

function int(value: unknown, what: string, lo: number, hi: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < lo || value > hi) throw bad(`${what} must be an integer in [${lo}, ${hi}], got ${String(value)}`);
  return value;
}

function list(value: unknown, what: string, max: number): unknown[] {
  if (!Array.isArray(value)) throw bad(`${what} is not a list`);
  if (value.length > max) throw bad(`${what} has ${value.length} entries, at most ${max} allowed`);
  return value;
}

/** Checks a forward step's head against the stage (and its logits rows against the slots). */
export function checkForwardHead(value: unknown, b: StageBounds): ForwardHead {
  const v = object(value, 'step head');
  const epoch = int(v.epoch, 'epoch', 0, Number.MAX_SAFE_INTEGER);
  const step = int(v.step, 'step', 0, Number.MAX_SAFE_INTEGER);
  const nTokens = int(v.nTokens, 'nTokens', 1, b.maxBatch);
  const spans = list(v.spans, 'spans', nTokens).map((s, i) => {
    const t = list(s, `span ${i}`, 4);
    if (t.length !== 4) throw bad(`span ${i} must be [slot, pos0, start, n]`);
    const slot = int(t[0], `span ${i} slot`, 0, b.slots - 1);
    const n = int(t[3], `span ${i} n`, 1, nTokens);
    const pos0 = int(t[1], `span ${i} pos0`, 0, b.ctxPerSlot - n);
    const start = int(t[2], `span ${i} start`, 0, nTokens - n);
    return [slot, pos0, start, n] as const;
  });
  let covered = 0;
  const slotsUsed = new Set<number>();
  for (const [slot, , start, n] of spans) {
    if (start !== covered) throw bad('spans must cover the batch in order');
    if (slotsUsed.has(slot)) throw bad(`slot ${slot} appears twice in one step`);
    slotsUsed.add(slot);
    covered += n;
  }
  if (covered !== nTokens) throw bad(`spans cover ${covered} of ${nTokens} tokens`);
  const rows = new Set<number>();
  let logitsRows = 0;
  const outputs = list(v.outputs, 'outputs', nTokens).map((o, i) => {
    const t = list(o, `output ${i}`, 4);
    if (t.length !== 3 && t.length !== 4) throw bad(`output ${i} must be [row, seq, mode] or [row, seq, 0, draft]`);
    const row = int(t[0], `output ${i} row`, 0, nTokens - 1);
    if (rows.has(row)) throw bad(`row ${row} is asked for twice`);
    rows.add(row);
    const seq = int(t[1], `output ${i} seq`, 0, Number.MAX_SAFE_INTEGER);
    const mode = int(t[2], `output ${i} mode`, 0, t.length === 4 ? 0 : 1);
    if (mode === 1) logitsRows++;
    if (t.length === 3) return [row, seq, mode] as const;
    // A draft token is checked against the vocabulary where it is compared (the last stage).
    return [row, seq, mode, int(t[3], `output ${i} draft`, 0, 0x7fffffff)] as const;
  });
  const most = maxLogitsRows(b);
  if (logitsRows > most) throw bad(`${logitsRows} rows of logits asked for; a step holds at most ${most} (one per slot and a scored prompt's chunk)`);
  const kind = v.kind;
  if (kind !== 'tokens' && kind !== 'hidden16' && kind !== 'hidden32') throw bad(`unknown step kind ${String(kind)}`);
  if ((kind === 'tokens') !== b.isFirst) throw bad(b.isFirst ? 'the first stage takes token ids' : 'a later stage takes hidden states');
  const wire = v.wire;
  if (wire !== 'f16' && wire !== 'f32') throw bad(`unknown wire type ${String(wire)}`);
  return { epoch, step, nTokens, spans, outputs, kind, wire };
}

/** Checks token ids of a step's body against the vocabulary. */
export function checkTokenIds(tokens: Int32Array, nVocab: number): void {
  for (let i = 0; i < tokens.length; i++) {
    if (tokens[i] < 0 || tokens[i] >= nVocab) throw bad(`token id ${tokens[i]} is outside the vocabulary (0 to ${nVocab - 1})`);
  }
}

/** Checks a sequence start (its sampler options are checked again when the sampler is built). */
export function checkSeqStart(value: unknown, nVocab: number, ctxPerSlot: number): SeqStart {
  const v = object(value, 'sequence start');
  const seq = int(v.seq, 'seq', 0, Number.MAX_SAFE_INTEGER);
  const spec = object(v.spec, 'spec');
  const history = list(spec.history, 'history', ctxPerSlot);
  for (let i = 0; i < history.length; i++) int(history[i], `history token ${i}`, 0, nVocab - 1);
  const logprobs = spec.logprobs === undefined || spec.logprobs === null ? undefined : int(spec.logprobs, 'logprobs', 0, 20);
  // Random draws already made (a sequence resumed on a new plan): bounded by its history.
  const drawn = spec.drawn === undefined ? undefined : int(spec.drawn, 'drawn', 0, history.length);
  const sampler = object(spec.sampler ?? {}, 'sampler');
  if (sampler.logitBias !== undefined) {
    const bias = object(sampler.logitBias, 'logitBias');
    const keys = Object.keys(bias);
    if (keys.length > nVocab) throw bad('logitBias has more entries than the vocabulary');
    for (const k of keys) {
      if (!/^(0|[1-9]\d{0,9})$/.test(k) || Number(k) >= nVocab) throw bad(`logitBias key ${k.slice(0, 20)} is not a token id of the vocabulary`);
    }
  }
  return { seq, spec: { ...spec, sampler, logprobs, drawn, history: history as number[] } as SequenceSpec };
}

/** Checks an exchange probe: its epoch that of the loaded stage, at most a token's hidden state (nEmbd values) per all-reduce. */
export function checkExchangeProbe(value: unknown, epoch: number, nEmbd: number): ExchangeProbe {
  const v = object(value, 'exchange probe');
  const e = int(v.epoch, 'epoch', 0, Number.MAX_SAFE_INTEGER);
  if (e !== epoch) throw bad(`an exchange probe of plan ${e}; this node runs plan ${epoch}`);
  return { epoch: e, rounds: int(v.rounds, 'rounds', 2, MAX_PROBE_ROUNDS), values: int(v.values, 'values', 1, nEmbd) };
}

/** Checks a sequence end. */
export function checkSeqEnd(value: unknown): { seq: number } {
  return { seq: int(object(value, 'sequence end').seq, 'seq', 0, Number.MAX_SAFE_INTEGER) };
}

/** Checks a KV operation against the stage's slots and context. */
export function checkKvOp(value: unknown, slots: number, ctxPerSlot: number): KvOp {
  const v = object(value, 'KV operation');
  const key = (name: string) => int(v[name], name, 0, Number.MAX_SAFE_INTEGER);
  const slot = (name: string) => int(v[name], name, 0, slots - 1);
  switch (v.op) {
    case 'copy':
      return { op: 'copy', from: slot('from'), to: slot('to'), n: int(v.n, 'n', 0, ctxPerSlot) };
    case 'save':
      return { op: 'save', slot: slot('slot'), n: int(v.n, 'n', 0, ctxPerSlot), key: key('key') };
    case 'load':
      return { op: 'load', key: key('key'), slot: slot('slot') };
    case 'drop':
    case 'export':
    case 'import':
      return { op: v.op, key: key('key') };
    default:
      throw bad(`unknown KV operation ${String(v.op).slice(0, 40)}`);
  }
}
