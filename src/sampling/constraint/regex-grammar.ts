/**
 * A parsed pattern as grammar symbols for the inside of a JSON string: each character the pattern
 * allows is written the way JSON needs it (raw UTF-8, '\"' and '\\' for the quote and backslash,
 * a short or \u00XX escape for control characters). Repetitions become rules: {n,m} unrolls,
 * '*' and '+' become right-recursive loops.
 */
import type { CodePointSet } from './code-point-set.js';
import { type Alternative, type GrammarBuilder, type GrammarSymbol } from './grammar.js';
import { ByteSet } from './lexer.js';
import type { RegexNode } from './regex.js';
import { utf8Sequences } from './utf8-ranges.js';

const SHORT_ESCAPES: Record<number, string> = { 0x08: '\\b', 0x09: '\\t', 0x0a: '\\n', 0x0c: '\\f', 0x0d: '\\r' };

/** How a control character is written inside a JSON string. */
function controlEscape(cp: number): string {
  return SHORT_ESCAPES[cp] ?? `\\u${cp.toString(16).padStart(4, '0')}`;
}

/** Turns pattern nodes into grammar symbols, sharing one rule per distinct character class. */
export class RegexGrammar {
  private readonly classes = new Map<string, GrammarSymbol>();

  constructor(private readonly g: GrammarBuilder) {}

  /** Symbols matching, as JSON string content, exactly the strings `node` matches. */
  symbols(node: RegexNode): GrammarSymbol[] {
    switch (node.kind) {
      case 'chars':
        return [this.characters(node.set)];
      case 'seq':
        return node.items.flatMap((item) => this.symbols(item));
      case 'alt':
        return [this.g.ref(this.g.rule(node.items.map((item) => this.symbols(item))))];
      case 'repeat':
        return this.repeat(node.item, node.min, node.max);
    }
  }

  private repeat(item: RegexNode, min: number, max: number): GrammarSymbol[] {
    const one = this.g.group(this.symbols(item));
    const out: GrammarSymbol[] = new Array<GrammarSymbol>(min).fill(one);
    if (max === Infinity) {
      const loop = this.g.reserve();
      this.g.define(loop, [[one, this.g.ref(loop)], []]);
      out.push(this.g.ref(loop));
    } else if (max > min) {
      // Optional tail: up to (max - min) more, nested so that each is offered only after the last.
      let tail = this.g.rule([[one], []]);
      for (let k = 1; k < max - min; k++) tail = this.g.rule([[one, this.g.ref(tail)], []]);
      out.push(this.g.ref(tail));
    }
    return out;
  }

  /** One character of the set as JSON string content; a rule with no alternative when empty. */
  private characters(set: CodePointSet): GrammarSymbol {
    const key = set.key();
    const known = this.classes.get(key);
    if (known) return known;
    const alternatives: Alternative[] = [];
    const plain = new ByteSet();
    for (const [first, last] of set.ranges) {
      for (let cp = first; cp <= Math.min(last, 0x7f); cp++) {
        if (cp < 0x20) alternatives.push([this.g.literal(controlEscape(cp))]);
        else if (cp === 0x22) alternatives.push([this.g.literal('\\"')]);
        else if (cp === 0x5c) alternatives.push([this.g.literal('\\\\')]);
        else plain.addRange(cp, cp);
      }
      if (last < 0x80) continue;
      for (const sequence of utf8Sequences(Math.max(first, 0x80), last)) {
        alternatives.push(sequence.map(([a, b]) => this.g.byteSet(new ByteSet().addRange(a, b))));
      }
    }
    if (!plain.empty) alternatives.unshift([this.g.byteSet(plain)]);
    const symbol = alternatives.length === 1 && alternatives[0].length === 1 ? alternatives[0][0] : this.g.ref(this.g.rule(alternatives));
    this.classes.set(key, symbol);
    return symbol;
  }
}
