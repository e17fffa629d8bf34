/**
 * Constrained decoding to JSON: response_format json_object (any object) and json_schema. Each
 * step masks every token whose bytes would take the output off every valid document, so whatever
 * the sampler picks, the text stays a prefix of a document matching the schema.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import { CairnError } from '../../util/errors.js';
import type { DfaState } from './automaton.js';
import { CompiledConstraint } from './compiled-constraint.js';
import { compileSchema, type SchemaCompileOptions } from './schema-compiler.js';
import { plainJson } from './schema-keywords.js';
import { checkSchemaLimits, DEFAULT_SCHEMA_LIMITS, type SchemaLimits } from './schema-limits.js';
import { applyMask } from './token-mask.js';
import type { ConstraintVocab, JsonSchema, TokenConstraint } from './types.js';
import { VocabTrie } from './vocab-trie.js';

/** Compiled schemas kept per vocabulary (most recently used). */
const SCHEMAS_PER_VOCAB = 16;

interface VocabIndex {
  trie: VocabTrie;
  compiled: Map<string, CompiledConstraint>;
}

const indexes = new WeakMap<ConstraintVocab, VocabIndex>();

function vocabIndex(vocab: ConstraintVocab): VocabIndex {
  let index = indexes.get(vocab);
  if (!index) {
    index = { trie: VocabTrie.build(vocab), compiled: new Map() };
    indexes.set(vocab, index);
  }
  return index;
}

/** Options of a JSON constraint. */
export interface JsonConstraintOptions extends SchemaCompileOptions {
  /** Size limits checked before compiling (default DEFAULT_SCHEMA_LIMITS). */
  limits?: SchemaLimits;
}

/**
 * The compiled form of (vocab, schema), shared by every constraint asking for the same pair. A
 * schema past the size limits, or one that overflows the stack while compiling, is BAD_ARGUMENT.
 */
function compiledFor(vocab: ConstraintVocab, schema: JsonSchema | undefined, options: JsonConstraintOptions): CompiledConstraint {
  checkSchemaLimits(schema, options.limits ?? DEFAULT_SCHEMA_LIMITS);
  const index = vocabIndex(vocab);
  // Key order matters (properties are generated in schema order), so no canonical sorting here.
  const key = `${options.strict ? 's' : 'n'}${schema === undefined ? '' : plainJson(schema)}`;
  let compiled = index.compiled.get(key);
  if (compiled) {
    index.compiled.delete(key);
  } else {
    try {
      compiled = new CompiledConstraint(compileSchema(schema, { strict: options.strict }), index.trie);
    } catch (err) {
      if (err instanceof RangeError) throw new CairnError('BAD_ARGUMENT', `the JSON schema is too large to compile: ${err.message}`);
      throw err;
    }
    if (compiled.automaton.initial === null) throw new CairnError('BAD_ARGUMENT', 'the JSON schema matches no document');
  }
  index.compiled.set(key, compiled);
  if (index.compiled.size > SCHEMAS_PER_VOCAB) index.compiled.delete(index.compiled.keys().next().value!);
  return compiled;
}

/** A token's text for messages (invalid UTF-8 shows as U+FFFD). */
function describe(vocab: ConstraintVocab, id: number): string {
  return JSON.stringify(new TextDecoder().decode(vocab.piece(id)));
}

class JsonConstraint implements TokenConstraint {
  private state: DfaState;
  /** True once an end-of-generation token was accepted. */
  private ended = false;

  constructor(
    private readonly vocab: ConstraintVocab,
    private readonly compiled: CompiledConstraint,
  ) {
    this.state = compiled.automaton.initial!;
  }

  get complete(): boolean {
    return this.state.accepting;
  }

  mask(logits: Float32Array): void {
    const size = this.vocab.size;
    if (logits.length < size) throw new CairnError('BAD_ARGUMENT', `mask() needs ${size} logits (one per token), got ${logits.length}`);
    if (this.ended) {
      const eog = this.compiled.trie.eog;
      const keep = Array.from(eog, (id) => logits[id]);
      logits.fill(-Infinity);
      eog.forEach((id, i) => (logits[id] = keep[i]));
      return;
    }
    applyMask(this.compiled.maskOf(this.state), size, logits);
  }

  accept(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocab.size) {
      throw new CairnError('BAD_ARGUMENT', `token id ${String(id)} is not in the vocabulary (0..${this.vocab.size - 1})`);
    }
    if (this.vocab.isEog(id)) {
      if (!this.state.accepting) throw new CairnError('BAD_ARGUMENT', `end-of-generation token ${id} before the JSON value is complete`);
      this.ended = true;
      return;
    }
    if (this.ended) throw new CairnError('BAD_ARGUMENT', `token ${id} after end of generation`);
    const piece = this.vocab.piece(id);
    const next = piece.length === 0 ? null : this.compiled.automaton.advance(this.state, piece);
    if (next === null)
      throw new CairnError('BAD_ARGUMENT', `token ${id} (${describe(this.vocab, id)}) is not allowed by the JSON constraint here`);
    this.state = next;
  }
}

/**
 * A constraint that lets through only tokens continuing a JSON document that matches `schema`
 * (undefined: any JSON object, as OpenAI's JSON mode). Compiles once per (vocab, schema): the
 * vocabulary trie is cached per vocab object, compiled schemas per vocab. Throws CairnError
 * BAD_ARGUMENT for unsupported or unsatisfiable schemas.
 */
export function jsonConstraint(vocab: ConstraintVocab, schema?: JsonSchema, options: JsonConstraintOptions = {}): TokenConstraint {
  return new JsonConstraint(vocab, compiledFor(vocab, schema, options));
}

/** Mask work done between two yields to the event loop (a few milliseconds). */
const WORK_PER_TURN = 200_000;

/**
 * As jsonConstraint, for a server: the size limits are checked first, the event loop gets a turn
 * after compiling, and the first mask (usually the costliest: every alternative is still open) is
 * computed in slices with a turn between each, so one request's schema does not hold up the
 * others. A schema whose first mask passes the work limit is refused here, before generation.
 */
export async function prepareJsonConstraint(
  vocab: ConstraintVocab,
  schema?: JsonSchema,
  options: JsonConstraintOptions = {},
): Promise<TokenConstraint> {
  checkSchemaLimits(schema, options.limits ?? DEFAULT_SCHEMA_LIMITS);
  await nextTurn();
  const compiled = compiledFor(vocab, schema, options);
  const initial = compiled.automaton.initial!;
  if (initial.mask === undefined) {
    await nextTurn();
    const walk = compiled.walk(initial);
    while (!walk.run(WORK_PER_TURN)) await nextTurn();
    compiled.keep(initial, walk.bits);
  }
  return new JsonConstraint(vocab, compiled);
}

/**
 * Builds the vocabulary's trie now (it takes a moment for a large vocabulary), so the first
 * request with a JSON constraint does not pay for it.
 */
export function warmJsonConstraints(vocab: ConstraintVocab): void {
  vocabIndex(vocab);
}
