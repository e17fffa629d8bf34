/**
 * Constrained decoding: token masks that keep generated text a valid JSON document, optionally
 * matching a JSON Schema (OpenAI response_format json_object / json_schema, tool-call arguments).
 */
export type { ConstraintVocab, JsonSchema, TokenConstraint } from './types.js';
export { jsonConstraint, prepareJsonConstraint, warmJsonConstraints, type JsonConstraintOptions } from './json-constraint.js';
export { checkSchemaLimits, DEFAULT_SCHEMA_LIMITS, type SchemaLimits } from './schema-limits.js';
export { compileSchema, validateSchemaSupport, type SchemaCompileOptions } from './schema-compiler.js';
export { constraintVocab, type PieceSource } from './tokenizer-vocab.js';
export { Automaton, DfaState } from './automaton.js';
