/**
 * Context-free grammars over bytes whose terminals are lexers, and their compiled form: a flat
 * program of positions (terminal, rule reference, end of alternative) that parser stacks point into.
 */
import { ByteSet, ByteSetLexer, LiteralLexer, type Lexer } from './lexer.js';

/** A grammar symbol: a terminal lexer or a reference to a rule. */
export type GrammarSymbol = { readonly lexer: Lexer } | { readonly rule: number };

/** One alternative of a rule: symbols in order (empty matches the empty string). */
export type Alternative = readonly GrammarSymbol[];

/** Position kinds of a compiled grammar. */
export const END = 0;
export const TERMINAL = 1;
export const REFERENCE = 2;

const encoder = new TextEncoder();

/** A compiled grammar: every alternative laid out as its symbols followed by an END. */
export class Grammar {
  constructor(
    /** END, TERMINAL or REFERENCE per position. */
    readonly kinds: Uint8Array,
    /** The lexer index (TERMINAL) or rule id (REFERENCE) per position. */
    readonly args: Int32Array,
    readonly lexers: readonly Lexer[],
    /** The first position of each alternative, per rule. */
    readonly ruleStarts: readonly (readonly number[])[],
    /** The rule a document must match. */
    readonly start: number,
  ) {}

  /** The lexer of a TERMINAL position. */
  lexerAt(pos: number): Lexer {
    return this.lexers[this.args[pos]];
  }
}

/** Builds a grammar rule by rule; rules may refer to rules defined later (recursion). */
export class GrammarBuilder {
  private readonly rules: (Alternative[] | undefined)[] = [];
  private readonly terminals = new Map<string, GrammarSymbol>();

  /** A new rule id whose alternatives are given later with define(). */
  reserve(): number {
    this.rules.push(undefined);
    return this.rules.length - 1;
  }

  /** Sets the alternatives of a reserved rule. */
  define(rule: number, alternatives: Alternative[]): void {
    if (this.rules[rule] !== undefined) throw new Error(`grammar rule ${rule} is already defined`);
    this.rules[rule] = alternatives;
  }

  /** A new rule with the given alternatives (none: a rule that matches nothing). */
  rule(alternatives: Alternative[]): number {
    const id = this.reserve();
    this.define(id, alternatives);
    return id;
  }

  /** A reference to a rule. */
  ref(rule: number): GrammarSymbol {
    return { rule };
  }

  /** A reference to a new rule holding the one sequence (a group). */
  group(symbols: Alternative): GrammarSymbol {
    return symbols.length === 1 ? symbols[0] : this.ref(this.rule([symbols]));
  }

  /** A terminal for an exact text (UTF-8) or byte string; shared between uses. */
  literal(text: string | Uint8Array): GrammarSymbol {
    const bytes = typeof text === 'string' ? encoder.encode(text) : text;
    return this.shared(`l:${bytes.join(',')}`, () => new LiteralLexer(bytes));
  }

  /** A terminal for one byte out of a set; shared between uses. */
  byteSet(set: ByteSet): GrammarSymbol {
    return this.shared(`b:${set.key()}`, () => new ByteSetLexer(set));
  }

  /** A terminal for any lexer (not shared: lexers with state tables stay separate). */
  terminal(lexer: Lexer): GrammarSymbol {
    return { lexer };
  }

  private shared(key: string, make: () => Lexer): GrammarSymbol {
    let symbol = this.terminals.get(key);
    if (!symbol) {
      symbol = { lexer: make() };
      this.terminals.set(key, symbol);
    }
    return symbol;
  }

  /**
   * Compiles the grammar. Alternatives that can never finish (they use a rule matching no finite
   * text, such as a required property whose schema is false) are dropped first, so a parser never
   * starts down a path it cannot complete. Returns undefined when the start rule matches nothing.
   */
  build(start: number): Grammar | undefined {
    const rules = this.rules.map((r, id) => {
      if (r === undefined) throw new Error(`grammar rule ${id} was reserved but never defined`);
      return r;
    });
    const productive = productiveRules(rules);
    if (!productive[start]) return undefined;
    const kinds: number[] = [];
    const args: number[] = [];
    const lexers: Lexer[] = [];
    const lexerIds = new Map<Lexer, number>();
    const ruleStarts = rules.map((alternatives) =>
      alternatives
        .filter((alt) => alt.every((s) => !('rule' in s) || productive[s.rule]))
        .map((alt) => {
          const first = kinds.length;
          for (const s of alt) {
            if ('rule' in s) {
              kinds.push(REFERENCE);
              args.push(s.rule);
              continue;
            }
            let id = lexerIds.get(s.lexer);
            if (id === undefined) {
              id = lexers.length;
              lexers.push(s.lexer);
              lexerIds.set(s.lexer, id);
            }
            kinds.push(TERMINAL);
            args.push(id);
          }
          kinds.push(END);
          args.push(0);
          return first;
        }),
    );
    return new Grammar(Uint8Array.from(kinds), Int32Array.from(args), lexers, ruleStarts, start);
  }
}

/** Which rules derive at least one finite string (worklist over reference counts). */
function productiveRules(rules: readonly Alternative[][]): boolean[] {
  const productive = rules.map(() => false);
  const altRule: number[] = [];
  const pending: number[] = [];
  const usedIn: number[][] = rules.map(() => []);
  const queue: number[] = [];
  rules.forEach((alternatives, id) => {
    for (const alt of alternatives) {
      const a = altRule.length;
      altRule.push(id);
      let refs = 0;
      for (const s of alt) {
        if (!('rule' in s)) continue;
        usedIn[s.rule].push(a);
        refs++;
      }
      pending.push(refs);
      if (refs === 0) queue.push(a);
    }
  });
  while (queue.length > 0) {
    const rule = altRule[queue.pop()!];
    if (productive[rule]) continue;
    productive[rule] = true;
    for (const a of usedIn[rule]) if (--pending[a] === 0) queue.push(a);
  }
  return productive;
}
