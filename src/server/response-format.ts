/**
 * OpenAI `response_format` as a decoding constraint: `json_object` allows any JSON object,
 * `json_schema` allows only documents that match the schema (checked for supported keywords up
 * front, so an unsupported schema is a 400, not a silently unconstrained reply).
 */
import type { GenerationConstraint } from '../engine/engine.js';
import type { LoadedModel } from '../engine/load.js';
import { constraintVocab, jsonConstraint, validateSchemaSupport, type JsonSchema } from '../sampling/constraint/index.js';
import { CairnError } from '../util/errors.js';
import { badRequest } from './errors.js';

/** The response_format field after validation. */
export type ResponseFormat =
  | { type: 'text' }
  | { type: 'json_object' }
  | { type: 'json_schema'; json_schema: { schema?: Record<string, unknown> } };

const vocabs = new WeakMap<object, ReturnType<typeof constraintVocab>>();

/** A constraint for the format, or undefined for plain text. */
export function constraintForFormat(model: LoadedModel, format: ResponseFormat): GenerationConstraint | undefined {
  if (format.type === 'text') return undefined;
  let vocab = vocabs.get(model.tokenizer);
  if (!vocab) vocabs.set(model.tokenizer, (vocab = constraintVocab(model.tokenizer)));
  if (format.type === 'json_object') return jsonConstraint(vocab);
  const schema = format.json_schema.schema ?? {};
  try {
    validateSchemaSupport(schema);
  } catch (err) {
    if (err instanceof CairnError) throw badRequest(err.message, 'response_format.json_schema.schema');
    throw err;
  }
  return jsonConstraint(vocab, schema as JsonSchema);
}
