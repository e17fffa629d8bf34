/**
 * A pushdown parser over bytes, run as a lazily built DFA. A parser configuration is a set of
 * stacks; stacks are persistent linked lists of grammar positions, interned so that equal stacks
 * are the same object. A set of stacks is interned as a DfaState, and each state remembers its
 * successor per byte once computed, so the work of parsing a byte in a given configuration is done
 * once and afterwards costs an array lookup.
 */
import { CairnError } from '../../util/errors.js';
import { END, REFERENCE, TERMINAL, type Grammar } from './grammar.js';

/** Deepest stack kept; deeper nesting is refused rather than grown without bound. */
export const MAX_STACK_DEPTH = 1024;
/** How much an automaton may learn before it forgets and starts afresh (live states stay valid). */
export interface AutomatonLimits {
  /** Interned stack nodes. */
  maxNodes: number;
  /** Interned states (each holds a 256-entry transition table). */
  maxStates: number;
  /**
   * Work (see `work`) one step may take: a step cannot be interrupted, so this bounds how long
   * one holds the thread. Real grammars take a few thousand; ones that keep tens of thousands of
   * parses open at once (nested optional repetitions) are refused as too complex.
   */
  maxStepWork?: number;
  /**
   * Stacks one state may hold (parses open at once). Real grammars within the schema size limits
   * hold at most about a thousand (an enum or object key with a thousand choices); a state past
   * this is refused as too complex, as work on it gets slower per stack as it grows.
   */
  maxStacks?: number;
}

const DEFAULT_LIMITS: AutomatonLimits = { maxNodes: 500_000, maxStates: 50_000, maxStepWork: 100_000, maxStacks: 4096 };

/** One frame of a parser stack: a grammar position and, at a terminal, its lexer state. */
export class StackNode {
  constructor(
    readonly id: number,
    readonly pos: number,
    readonly lex: number,
    readonly next: StackNode | null,
    readonly depth: number,
  ) {}
}

/** A parser configuration: the stacks that are still alive after the bytes read so far. */
export class DfaState {
  /** Successor per byte: undefined until computed, null when the byte is refused. */
  readonly transitions: (DfaState | null | undefined)[] = new Array<DfaState | null | undefined>(256).fill(undefined);
  /** Allowed-token bitmap, filled in by whoever masks tokens with this state. */
  mask: Uint32Array | undefined;

  constructor(
    readonly id: number,
    /** Stacks whose top is a terminal that can take more bytes. */
    readonly stacks: readonly StackNode[],
    /** True when the bytes so far are a complete document. */
    readonly accepting: boolean,
  ) {}
}

/** Closure results: live stacks by id, plus whether the empty stack (done) was reached. */
interface Closure {
  stacks: Map<number, StackNode>;
  accepting: boolean;
  seen: Set<StackNode>;
}

/** The byte-level parser of one grammar; states are shared by every constraint using it. */
export class Automaton {
  private nodes = new Map<string, StackNode>();
  private states = new Map<string, DfaState>();
  private nextNodeId = 0;
  private nextStateId = 0;
  /**
   * Work done so far, counted in stack operations (lexer steps, closure visits, states interned),
   * each weighted by its rough cost: a measure of time that does not depend on the machine or its
   * load, for budgets on how long computing a mask may take.
   */
  work = 0;
  /** `work` past which the current step is abandoned. */
  private stepLimit = Infinity;
  /** The state before any byte; null when the grammar matches nothing. */
  readonly initial: DfaState | null;

  constructor(
    readonly grammar: Grammar,
    private readonly limits: AutomatonLimits = DEFAULT_LIMITS,
  ) {
    this.startStep();
    const closure = this.newClosure();
    for (const start of grammar.ruleStarts[grammar.start]) this.close(this.push(start, null), closure);
    this.initial = this.stateOf(closure);
  }

  /** The state after one more byte, or null when the byte cannot come next. */
  step(state: DfaState, byte: number): DfaState | null {
    const known = state.transitions[byte];
    if (known !== undefined) return known;
    if (this.nodes.size > this.limits.maxNodes || this.states.size > this.limits.maxStates) this.forget();
    const closure = this.newClosure();
    this.startStep();
    this.work += 2 * state.stacks.length;
    for (const node of state.stacks) {
      const lex = this.grammar.lexerAt(node.pos).step(node.lex, byte);
      if (lex >= 0) this.close(this.intern(node.pos, lex, node.next), closure);
    }
    const next = this.stateOf(closure);
    state.transitions[byte] = next;
    return next;
  }

  /** The state after a run of bytes, or null as soon as one is refused. */
  advance(state: DfaState | null, bytes: Uint8Array): DfaState | null {
    for (let i = 0; i < bytes.length && state !== null; i++) state = this.step(state, bytes[i]);
    return state;
  }

  /**
   * Drops every learned transition and mask so the states (and their stacks) can be collected.
   * States still held by constraints stay usable: their successors are simply recomputed.
   */
  private forget(): void {
    for (const state of this.states.values()) {
      state.transitions.fill(undefined);
      state.mask = undefined;
    }
    this.nodes = new Map();
    this.states = new Map();
  }

  private startStep(): void {
    this.stepLimit = this.work + (this.limits.maxStepWork ?? Infinity);
  }

  /** Throws when the current step is over its budget (see AutomatonLimits.maxStepWork). */
  private checkStep(): void {
    if (this.work > this.stepLimit) throw tooComplex(`one character leaves more than ${this.limits.maxStepWork} parser steps to take`);
  }

  private newClosure(): Closure {
    return { stacks: new Map(), accepting: false, seen: new Set() };
  }

  /** Adds to `out` every stack reachable from `node` without reading a byte. */
  private close(node: StackNode | null, out: Closure): void {
    if (node === null) {
      out.accepting = true;
      return;
    }
    if (out.seen.has(node)) return;
    out.seen.add(node);
    this.work += 2;
    this.checkStep();
    const g = this.grammar;
    const kind = g.kinds[node.pos];
    if (kind === TERMINAL) {
      const lexer = g.lexerAt(node.pos);
      if (lexer.hasMore(node.lex)) out.stacks.set(node.id, node);
      if (lexer.accepts(node.lex)) this.close(this.after(node), out);
    } else if (kind === REFERENCE) {
      const rest = this.after(node);
      if (rest !== null && rest.depth >= MAX_STACK_DEPTH) return;
      for (const start of g.ruleStarts[g.args[node.pos]]) this.close(this.push(start, rest), out);
    } else {
      this.close(node.next, out);
    }
  }

  /** The stack once the symbol on top is done; a finished alternative is popped right away, so
   * right recursion (lists, repetitions) does not grow the stack. */
  private after(node: StackNode): StackNode | null {
    const pos = node.pos + 1;
    return this.grammar.kinds[pos] === END ? node.next : this.push(pos, node.next);
  }

  private push(pos: number, next: StackNode | null): StackNode {
    const g = this.grammar;
    return this.intern(pos, g.kinds[pos] === TERMINAL ? g.lexerAt(pos).initial : 0, next);
  }

  private intern(pos: number, lex: number, next: StackNode | null): StackNode {
    const key = `${pos},${lex},${next === null ? -1 : next.id}`;
    let node = this.nodes.get(key);
    if (node === undefined) {
      node = new StackNode(this.nextNodeId++, pos, lex, next, next === null ? 1 : next.depth + 1);
      this.nodes.set(key, node);
    }
    return node;
  }

  private stateOf(closure: Closure): DfaState | null {
    if (closure.stacks.size === 0 && !closure.accepting) return null;
    if (closure.stacks.size > (this.limits.maxStacks ?? Infinity))
      throw tooComplex(`more than ${this.limits.maxStacks} parses are open at once`);
    this.work += 4 * closure.stacks.size;
    const stacks = [...closure.stacks.values()].sort((a, b) => a.id - b.id);
    const key = (closure.accepting ? 'a' : 'n') + stacks.map((s) => s.id).join(',');
    let state = this.states.get(key);
    if (state === undefined) {
      state = new DfaState(this.nextStateId++, stacks, closure.accepting);
      this.states.set(key, state);
    }
    return state;
  }
}

function tooComplex(why: string): CairnError {
  return new CairnError(
    'BAD_ARGUMENT',
    `the JSON schema is too complex to enforce: ${why} (nested optional repetitions or very large alternations keep too many parses open)`,
  );
}
