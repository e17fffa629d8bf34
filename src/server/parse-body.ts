/** Checking a request body against its schema: the data, or a 400 that names the field. */
import type { z } from 'zod';
import { badRequest } from './errors.js';
import { describeZodError } from './openai/schemas.js';

/** The body as `schema` reads it; throws a 400 naming the first field that does not fit. */
export function parseBody<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
  const r = schema.safeParse(body);
  if (!r.success) {
    const { message, param } = describeZodError(r.error);
    throw badRequest(message, param);
  }
  return r.data;
}
