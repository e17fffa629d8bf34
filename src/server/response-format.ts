/**
 * OpenAI `response_format` (and Ollama `format`, and forced tool calls) as a decoding constraint:
 * `json_object` allows any JSON object, `json_schema` allows only documents that match the
 * schema. Every problem with a schema (unsupported, unsatisfiable, too large, too deep, too
 * complex to enforce) is a 400 naming the field, found before generation starts; compiling runs
 * in slices so that it does not hold up other requests.
 */
import type { GenerationConstraint } from '../engine/engine.js';
import type { LoadedModel } from '../engine/load.js';
import {
  checkSchemaLimits,
  constraintVocab,
  prepareJsonConstraint,
  warmJsonConstraints,
  type JsonSchema,
} from '../sampling/constraint/index.js';
import { isCairnError } from '../util/errors.js';
import { badRequest } from './errors.js';

/** The response_format field after validation. */
export type ResponseFormat =
  { type: 'text' } | { type: 'json_object' } | { type: 'json_schema'; json_schema: { schema?: Record<string, unknown> } };

/** A constraint for the format, or undefined for plain text; `param` names the field in errors. */
export async function constraintForFormat(
  model: LoadedModel,
  format: ResponseFormat,
  param = 'response_format.json_schema.schema',
): Promise<GenerationConstraint | undefined> {
  if (format.type === 'text') return undefined;
  const vocab = constraintVocab(model.tokenizer);
  const schema = format.type === 'json_object' ? undefined : ((format.json_schema.schema ?? {}) as JsonSchema);
  try {
    return await prepareJsonConstraint(vocab, schema);
  } catch (err) {
    if (isCairnError(err, 'BAD_ARGUMENT')) throw badRequest(err.message, param);
    throw err;
  }
}

/**
 * One constraint per choice for the format (none for plain text or no format): a constraint follows
 * one output token by token, and the schema is compiled once and cached, so the others cost little.
 */
export async function constraintsForChoices(model: LoadedModel, format: ResponseFormat | undefined, choices: number, param?: string): Promise<(GenerationConstraint | undefined)[]> {
  const out: (GenerationConstraint | undefined)[] = [];
  if (!format || format.type === 'text') return out;
  for (let i = 0; i < choices; i++) out.push(await constraintForFormat(model, format, param));
  return out;
}

/** Throws a 400 naming `param` when a schema (one not compiled here, e.g. a tool's) passes the size limits. */
export function checkSchemaSize(schema: unknown, param: string): void {
  try {
    checkSchemaLimits(schema);
  } catch (err) {
    if (isCairnError(err, 'BAD_ARGUMENT')) throw badRequest(err.message, param);
    throw err;
  }
}

/** Prepares what every constraint of this model shares (the vocabulary trie), at load time. */
export function warmConstraints(model: LoadedModel): void {
  warmJsonConstraints(constraintVocab(model.tokenizer));
}
