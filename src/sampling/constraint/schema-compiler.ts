/**
 * JSON Schema to grammar. The shape follows llama.cpp's json-schema-to-grammar: properties in the
 * schema's order, required ones always written and optional ones skippable; bounded whitespace
 * between tokens; anyOf/oneOf as alternatives; recursive $ref as recursive rules.
 *
 * Choices where JSON Schema leaves room (each makes the output stricter, never invalid):
 * - An object schema with "properties" and no "additionalProperties" allows no other property
 *   (as llama.cpp does); `true` or a schema allows them, and strict mode (OpenAI's) forbids them.
 *   A bare {"type": "object"} allows any object.
 * - Without "type", the type is inferred from the keywords present (properties: object, items:
 *   array, minLength: string, minimum: number); with none of those, any JSON value.
 * - prefixItems without minItems means the whole tuple; without "items", nothing after it.
 * - enum/const values are written as compact JSON and filtered by "type" only.
 * - Formats date, time, date-time, uuid and email are enforced; other formats are not.
 * - pattern (and format) cannot be combined with minLength/maxLength.
 */
import { CairnError } from '../../util/errors.js';
import { type Alternative, type Grammar, GrammarBuilder, type GrammarSymbol } from './grammar.js';
import { FORMAT_PATTERNS } from './formats.js';
import { NumberLexer } from './number-lexer.js';
import { parseRegex, RegexError } from './regex.js';
import { RegexGrammar } from './regex-grammar.js';
import { mergeSchemas } from './schema-merge.js';
import { resolveRef } from './schema-refs.js';
import {
  canonicalJson,
  checkKeywords,
  childPath,
  constraintKeywords,
  countKeyword,
  isSchemaObject,
  numberKeyword,
  plainJson,
  schemaError,
  typeKeyword,
  type JsonType,
  type SchemaObject,
} from './schema-keywords.js';
import { StringLexer } from './string-lexer.js';
import type { JsonSchema } from './types.js';
import { WhitespaceLexer } from './whitespace-lexer.js';

/** How to read the schema. */
export interface SchemaCompileOptions {
  /** OpenAI strict mode: no properties beyond those listed, whatever additionalProperties says. */
  strict?: boolean;
}

/** Most array elements that minItems / maxItems may spell out. */
export const MAX_COUNTED_ITEMS = 10_000;

const OBJECT_KEYWORDS = ['properties', 'required', 'additionalProperties'];
const ARRAY_KEYWORDS = ['items', 'prefixItems', 'minItems', 'maxItems'];
const STRING_KEYWORDS = ['minLength', 'maxLength', 'pattern', 'format'];
const NUMBER_KEYWORDS = ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum'];
const ALL_TYPES: JsonType[] = ['object', 'array', 'string', 'number', 'boolean', 'null'];

/**
 * The grammar of JSON documents matching `schema` (undefined: any JSON object), with optional
 * whitespace around the value. Throws CairnError BAD_ARGUMENT for unsupported or unsatisfiable
 * schemas, naming the keyword and where it is.
 */
export function compileSchema(schema: JsonSchema | undefined, options: SchemaCompileOptions = {}): Grammar {
  plainJson(schema);
  return new SchemaCompiler(schema ?? { type: 'object' }, options).compile();
}

class SchemaCompiler {
  private readonly g = new GrammarBuilder();
  private readonly ws: GrammarSymbol = this.g.terminal(new WhitespaceLexer());
  private readonly regex = new RegexGrammar(this.g);
  private readonly refRules = new Map<string, number>();
  private readonly schemaRules = new Map<string, number>();
  private readonly generic = new Map<string, number>();

  constructor(
    private readonly root: JsonSchema,
    private readonly options: SchemaCompileOptions,
  ) {}

  compile(): Grammar {
    const value = this.schema(this.root, '#');
    const start = this.g.rule([[this.ws, this.g.ref(value), this.ws]]);
    const grammar = this.g.build(start);
    if (!grammar) throw schemaError('#', 'no JSON value can satisfy this schema');
    return grammar;
  }

  private lit(text: string): GrammarSymbol {
    return this.g.literal(text);
  }

  /** The rule for values matching `schema`; identical subschemas share one rule. */
  private schema(schema: JsonSchema, path: string): number {
    if (schema === true) return this.anyValue();
    if (schema === false) return this.g.rule([]);
    if (!isSchemaObject(schema)) throw schemaError(path, 'a schema must be an object or a boolean');
    checkKeywords(schema, path);
    // Key order is kept: two schemas listing the same properties in another order differ.
    const key = plainJson(Object.fromEntries(constraintKeywords(schema).map((k) => [k, schema[k]])));
    const known = this.schemaRules.get(key);
    if (known !== undefined) return known;
    // Reserved before compiling the body, so a schema that contains itself refers to this rule.
    const rule = this.g.reserve();
    this.schemaRules.set(key, rule);
    this.g.define(rule, this.body(schema, path));
    return rule;
  }

  private body(schema: SchemaObject, path: string): Alternative[] {
    const keys = constraintKeywords(schema);
    if (keys.length === 0) return [[this.g.ref(this.anyValue())]];
    const siblings = (omit: string[]): SchemaObject => Object.fromEntries(keys.filter((k) => !omit.includes(k)).map((k) => [k, schema[k]]));

    if ('$ref' in schema) {
      if (keys.length === 1) return [[this.g.ref(this.ref(schema.$ref, childPath(path, '$ref')))]];
      const merged = mergeSchemas(this.root, [
        { schema: { $ref: schema.$ref }, path },
        { schema: siblings(['$ref']), path },
      ]);
      return [[this.g.ref(this.schema(merged, path))]];
    }
    if ('allOf' in schema || ('anyOf' in schema && 'oneOf' in schema)) {
      const merged = mergeSchemas(this.root, [{ schema, path }]);
      return [[this.g.ref(this.schema(merged, path))]];
    }
    const choiceKey = 'anyOf' in schema ? 'anyOf' : 'oneOf' in schema ? 'oneOf' : undefined;
    if (choiceKey) {
      const list = schema[choiceKey];
      if (!Array.isArray(list) || list.length === 0)
        throw schemaError(childPath(path, choiceKey), `${choiceKey} must be a non-empty array of schemas`);
      const rest = siblings([choiceKey]);
      const hasRest = constraintKeywords(rest).length > 0;
      return list.map((alt: JsonSchema, i) => {
        const altPath = childPath(childPath(path, choiceKey), i);
        const merged = hasRest
          ? mergeSchemas(this.root, [
              { schema: rest, path },
              { schema: alt, path: altPath },
            ])
          : alt;
        return [this.g.ref(this.schema(merged, altPath))];
      });
    }
    const types = this.typesOf(schema, path);
    if ('const' in schema || 'enum' in schema) return this.literals(schema, types, path);
    return types.map((t) => [this.g.ref(this.typed(t, schema, path))]);
  }

  private typesOf(schema: SchemaObject, path: string): JsonType[] {
    let types = typeKeyword(schema, path);
    if (!types) {
      const has = (list: string[]): boolean => list.some((k) => k in schema);
      types = [];
      if (has(OBJECT_KEYWORDS)) types.push('object');
      if (has(ARRAY_KEYWORDS)) types.push('array');
      if (has(STRING_KEYWORDS)) types.push('string');
      if (has(NUMBER_KEYWORDS)) types.push('number');
      if (types.length === 0) types = ALL_TYPES;
    }
    // integer is a subset of number: one lexer for both would be the number one.
    if (types.includes('number')) types = types.filter((t) => t !== 'integer');
    return [...new Set(types)];
  }

  private typed(type: JsonType, schema: SchemaObject, path: string): number {
    switch (type) {
      case 'null':
        return this.g.rule([[this.lit('null')]]);
      case 'boolean':
        return this.g.rule([[this.lit('true')], [this.lit('false')]]);
      case 'string':
        return this.string(schema, path);
      case 'number':
      case 'integer':
        return this.number(schema, type === 'integer', path);
      case 'object':
        return this.object(schema, path);
      case 'array':
        return this.array(schema, path);
    }
  }

  private literals(schema: SchemaObject, types: JsonType[], path: string): Alternative[] {
    let values: unknown[];
    if ('enum' in schema) {
      if (!Array.isArray(schema.enum)) throw schemaError(childPath(path, 'enum'), 'enum must be an array');
      values = schema.enum;
      if ('const' in schema) values = values.filter((v) => canonicalJson(v) === canonicalJson(schema.const));
    } else {
      values = [schema.const];
    }
    const fits = (v: unknown): boolean =>
      types.some((t) => {
        if (t === 'null') return v === null;
        if (t === 'integer') return typeof v === 'number' && Number.isInteger(v);
        if (t === 'array') return Array.isArray(v);
        if (t === 'object') return isSchemaObject(v);
        return typeof v === t;
      });
    const texts = [...new Set(values.filter(fits).map((v) => JSON.stringify(v)))];
    return texts.map((text) => [this.lit(text)]);
  }

  private ref(ref: unknown, path: string): number {
    const key = String(ref);
    let rule = this.refRules.get(key);
    if (rule === undefined) {
      rule = this.g.reserve();
      this.refRules.set(key, rule);
      const target = resolveRef(this.root, ref, path);
      this.g.define(rule, [[this.g.ref(this.schema(target, key))]]);
    }
    return rule;
  }

  private string(schema: SchemaObject, path: string): number {
    const minLength = countKeyword(schema, 'minLength', path);
    const maxLength = countKeyword(schema, 'maxLength', path);
    const pattern = schema.pattern;
    const format = schema.format;
    if (format !== undefined && typeof format !== 'string') throw schemaError(childPath(path, 'format'), 'format must be a string');
    if (pattern !== undefined && typeof pattern !== 'string') throw schemaError(childPath(path, 'pattern'), 'pattern must be a string');
    const formatPattern = format !== undefined && Object.hasOwn(FORMAT_PATTERNS, format) ? FORMAT_PATTERNS[format] : undefined;
    const regex = pattern ?? formatPattern;
    const quote = this.lit('"');
    if (regex !== undefined) {
      const what = pattern !== undefined ? 'pattern' : 'format';
      if (pattern !== undefined && formatPattern !== undefined) throw schemaError(path, 'pattern together with format is not supported');
      if (minLength !== undefined || maxLength !== undefined)
        throw schemaError(path, `${what} together with minLength/maxLength is not supported`);
      let node;
      try {
        node = parseRegex(regex);
      } catch (err) {
        if (err instanceof RegexError) throw schemaError(childPath(path, what), err.message);
        throw err;
      }
      return this.g.rule([[quote, ...this.regex.symbols(node), quote]]);
    }
    const min = minLength ?? 0;
    const max = maxLength ?? Infinity;
    if (max < min) throw schemaError(path, `minLength ${min} is above maxLength ${max}`);
    return this.g.rule([[quote, this.g.terminal(new StringLexer({ minLength: min, maxLength: max })), quote]]);
  }

  private number(schema: SchemaObject, integer: boolean, path: string): number {
    const bounds = {
      minimum: numberKeyword(schema, 'minimum', path),
      maximum: numberKeyword(schema, 'maximum', path),
      exclusiveMinimum: numberKeyword(schema, 'exclusiveMinimum', path),
      exclusiveMaximum: numberKeyword(schema, 'exclusiveMaximum', path),
    };
    try {
      return this.g.rule([[this.g.terminal(new NumberLexer({ integer, bounds }))]]);
    } catch (err) {
      if (err instanceof RangeError) throw schemaError(path, err.message);
      throw err;
    }
  }

  private object(schema: SchemaObject, path: string): number {
    const props = schema.properties ?? {};
    if (!isSchemaObject(props)) throw schemaError(childPath(path, 'properties'), 'properties must be an object');
    const required = schema.required ?? [];
    if (!Array.isArray(required) || required.some((r) => typeof r !== 'string')) {
      throw schemaError(childPath(path, 'required'), 'required must be an array of property names');
    }
    let extra = schema.additionalProperties as JsonSchema | undefined;
    if (extra !== undefined && typeof extra !== 'boolean' && !isSchemaObject(extra)) {
      throw schemaError(childPath(path, 'additionalProperties'), 'additionalProperties must be a schema');
    }
    if (extra === undefined) extra = 'properties' in schema ? false : true;
    if (this.options.strict && 'properties' in schema) extra = false;
    if (Object.keys(props).length === 0 && required.length === 0 && extra === true) return this.anyObject();

    const entries: { name: string; schema: JsonSchema; path: string; required: boolean }[] = Object.entries(props).map(([name, s]) => ({
      name,
      schema: s as JsonSchema,
      path: childPath(childPath(path, 'properties'), name),
      required: required.includes(name),
    }));
    // Required names without a property schema take additionalProperties' schema.
    for (const name of new Set(required as string[])) {
      if (!Object.hasOwn(props, name)) entries.push({ name, schema: extra, path: childPath(path, 'additionalProperties'), required: true });
    }
    const ws = this.ws;
    const comma = [ws, this.lit(','), ws];
    const colon = [ws, this.lit(':'), ws];
    const member = (key: GrammarSymbol[], value: number): GrammarSymbol[] => [...key, ...colon, this.g.ref(value)];

    // tail[emitted]: the rule for what may follow once the listed properties are dealt with.
    let tail: [number, number];
    if (extra === false) {
      tail = [this.g.rule([[]]), this.g.rule([[ws]])];
    } else {
      const excluded = entries.map((e) => new TextEncoder().encode(JSON.stringify(e.name).slice(1, -1)));
      const key = [this.lit('"'), this.g.terminal(new StringLexer({ minLength: 0, maxLength: Infinity, excluded })), this.lit('"')];
      const kv = member(key, this.schema(extra, childPath(path, 'additionalProperties')));
      const more = this.g.reserve();
      this.g.define(more, [[...comma, ...kv, this.g.ref(more)], [ws]]);
      tail = [this.g.rule([[...kv, this.g.ref(more)], []]), more];
    }
    // Walk back from the last property: chain[emitted] is the rule for properties i.. given
    // whether one was already written (which decides whether a comma comes first).
    let chain = tail;
    for (let i = entries.length - 1; i >= 0; i--) {
      const e = entries[i];
      const kv = member([this.lit(JSON.stringify(e.name))], this.schema(e.schema, e.path));
      const after = this.g.ref(chain[1]);
      const skipped = chain;
      chain = [0, 1].map((emitted) => {
        const write: Alternative = [...(emitted ? comma : []), ...kv, after];
        return this.g.rule(e.required ? [write] : [write, [this.g.ref(skipped[emitted])]]);
      }) as [number, number];
    }
    return this.g.rule([[this.lit('{'), ws, this.g.ref(chain[0]), this.lit('}')]]);
  }

  private array(schema: SchemaObject, path: string): number {
    let prefix: JsonSchema[] = [];
    let items = schema.items as JsonSchema | JsonSchema[] | undefined;
    if (schema.prefixItems !== undefined) {
      if (!Array.isArray(schema.prefixItems)) throw schemaError(childPath(path, 'prefixItems'), 'prefixItems must be an array of schemas');
      prefix = schema.prefixItems as JsonSchema[];
    }
    if (Array.isArray(items)) {
      // Draft 4-2019 tuple form.
      if (schema.prefixItems !== undefined) throw schemaError(childPath(path, 'items'), 'items must be a schema when prefixItems is given');
      prefix = items;
      items = undefined;
    }
    if (items === undefined) items = prefix.length > 0 ? false : true;
    const minItems = countKeyword(schema, 'minItems', path);
    let max = countKeyword(schema, 'maxItems', path) ?? Infinity;
    if (items === false) max = Math.min(max, prefix.length);
    const min = minItems ?? Math.min(prefix.length, max);
    if (min > max)
      throw schemaError(path, `no array length satisfies minItems ${min} and maxItems ${max === Infinity ? 'unbounded' : max}`);
    if (min > MAX_COUNTED_ITEMS || (max !== Infinity && max > MAX_COUNTED_ITEMS)) {
      throw schemaError(path, `minItems/maxItems above ${MAX_COUNTED_ITEMS} are not supported`);
    }
    const ws = this.ws;
    const comma = [ws, this.lit(','), ws];
    const elementRule = (i: number): number =>
      i < prefix.length
        ? this.schema(prefix[i], childPath(childPath(path, 'prefixItems'), i))
        : this.schema(items as JsonSchema, childPath(path, 'items'));
    // rest[i]: the rule for elements from index i on; from `loopFrom` on all indexes are alike.
    const loopFrom = Math.max(prefix.length, min, 1);
    const last = max === Infinity ? loopFrom : max;
    const rest: number[] = [];
    for (let i = 0; i <= last; i++) rest.push(this.g.reserve());
    for (let i = 0; i <= last; i++) {
      const alternatives: Alternative[] = [];
      const canGrow = i < max && (i < prefix.length || items !== false);
      if (canGrow) {
        const next = max === Infinity && i === loopFrom ? rest[i] : rest[i + 1];
        alternatives.push([...(i > 0 ? comma : []), this.g.ref(elementRule(i)), this.g.ref(next)]);
      }
      if (i >= min) alternatives.push(i > 0 ? [ws] : []);
      this.g.define(rest[i], alternatives);
    }
    return this.g.rule([[this.lit('['), ws, this.g.ref(rest[0]), this.lit(']')]]);
  }

  private shared(name: string, build: (rule: number) => Alternative[]): number {
    let rule = this.generic.get(name);
    if (rule === undefined) {
      rule = this.g.reserve();
      this.generic.set(name, rule);
      this.g.define(rule, build(rule));
    }
    return rule;
  }

  /** Any JSON value. */
  private anyValue(): number {
    return this.shared('value', () => [
      [this.g.ref(this.anyObject())],
      [this.g.ref(this.anyArray())],
      [this.g.ref(this.anyString())],
      [this.g.terminal(new NumberLexer({ integer: false }))],
      [this.lit('true')],
      [this.lit('false')],
      [this.lit('null')],
    ]);
  }

  private anyString(): number {
    return this.shared('string', () => [
      [this.lit('"'), this.g.terminal(new StringLexer({ minLength: 0, maxLength: Infinity })), this.lit('"')],
    ]);
  }

  /** Any JSON object. */
  private anyObject(): number {
    return this.shared('object', () => {
      const ws = this.ws;
      const kv = [this.g.ref(this.anyString()), ws, this.lit(':'), ws, this.g.ref(this.anyValue())];
      const more = this.g.reserve();
      this.g.define(more, [[ws, this.lit(','), ws, ...kv, this.g.ref(more)], [ws]]);
      return [
        [this.lit('{'), ws, this.lit('}')],
        [this.lit('{'), ws, ...kv, this.g.ref(more), this.lit('}')],
      ];
    });
  }

  private anyArray(): number {
    return this.shared('array', () => {
      const ws = this.ws;
      const more = this.g.reserve();
      this.g.define(more, [[ws, this.lit(','), ws, this.g.ref(this.anyValue()), this.g.ref(more)], [ws]]);
      return [
        [this.lit('['), ws, this.lit(']')],
        [this.lit('['), ws, this.g.ref(this.anyValue()), this.g.ref(more), this.lit(']')],
      ];
    });
  }
}

/** Throws CairnError BAD_ARGUMENT when `schema` uses something constrained decoding cannot do. */
export function validateSchemaSupport(schema: unknown): void {
  if (schema !== undefined && typeof schema !== 'boolean' && !isSchemaObject(schema)) {
    throw new CairnError('BAD_ARGUMENT', 'a JSON schema must be an object or a boolean');
  }
  compileSchema(schema as JsonSchema | undefined);
}
