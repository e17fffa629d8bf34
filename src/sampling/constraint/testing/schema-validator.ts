/**
 * An independent JSON Schema validator for the keywords constrained decoding supports, with the
 * standard's semantics (absent additionalProperties allows anything, oneOf means exactly one),
 * so tests can check generated documents without trusting the grammar that produced them.
 */

type Schema = boolean | { [k: string]: unknown };
type Obj = { [k: string]: unknown };

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const TIME = /^([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d+)?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$/;
const UUID = /^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$/;
const EMAIL = /^[^@\s"]+@[^@\s."]+(\.[^@\s."]+)+$/;
const DAYS = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (isObj(v))
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`)
      .join(',')}}`;
  return JSON.stringify(v);
}

function validDate(s: string): boolean {
  const m = DATE.exec(s);
  if (!m) return false;
  const month = Number(m[2]);
  const day = Number(m[3]);
  return month >= 1 && month <= 12 && day >= 1 && day <= DAYS[month - 1];
}

function checkFormat(format: string, s: string): boolean {
  switch (format) {
    case 'date':
      return validDate(s);
    case 'time':
      return TIME.test(s);
    case 'date-time': {
      const t = s.indexOf('T');
      return t > 0 && validDate(s.slice(0, t)) && TIME.test(s.slice(t + 1));
    }
    case 'uuid':
      return UUID.test(s);
    case 'email':
      return EMAIL.test(s);
    default:
      return true;
  }
}

function typeOk(type: string, v: unknown): boolean {
  switch (type) {
    case 'null':
      return v === null;
    case 'integer':
      return typeof v === 'number' && Number.isInteger(v);
    case 'array':
      return Array.isArray(v);
    case 'object':
      return isObj(v);
    default:
      return typeof v === type;
  }
}

function resolve(root: Schema, ref: string): Schema {
  let node: unknown = root;
  for (const raw of ref
    .slice(2)
    .split('/')
    .filter((s) => s !== '')) {
    node = (node as Obj)[decodeURIComponent(raw).replaceAll('~1', '/').replaceAll('~0', '~')];
  }
  if (node === undefined) throw new Error(`unresolvable $ref ${ref}`);
  return node as Schema;
}

/** Problems of `value` against `schema` (empty when valid); `root` resolves $ref. */
export function validate(value: unknown, schema: Schema, root: Schema = schema, path = '$'): string[] {
  if (schema === true) return [];
  if (schema === false) return [`${path}: false schema`];
  const s = schema;
  const errors: string[] = [];
  const fail = (msg: string): void => void errors.push(`${path}: ${msg}`);
  if (typeof s.$ref === 'string') errors.push(...validate(value, resolve(root, s.$ref), root, path));
  if (s.type !== undefined) {
    const types = Array.isArray(s.type) ? (s.type as string[]) : [s.type as string];
    if (!types.some((t) => typeOk(t, value))) fail(`type ${types.join('|')} expected, got ${JSON.stringify(value)}`);
  }
  if (Array.isArray(s.enum) && !s.enum.some((e) => canonical(e) === canonical(value))) fail('not in enum');
  if ('const' in s && canonical(s.const) !== canonical(value)) fail('not the const');
  for (const key of ['anyOf', 'oneOf', 'allOf'] as const) {
    const list = s[key] as Schema[] | undefined;
    if (!list) continue;
    const passing = list.filter((sub) => validate(value, sub, root, path).length === 0).length;
    if (key === 'anyOf' && passing === 0) fail('no anyOf branch matches');
    if (key === 'oneOf' && passing !== 1) fail(`${passing} oneOf branches match`);
    if (key === 'allOf' && passing !== list.length) fail('not every allOf branch matches');
  }
  if (typeof value === 'string') {
    const length = [...value].length;
    if (typeof s.minLength === 'number' && length < s.minLength) fail('too short');
    if (typeof s.maxLength === 'number' && length > s.maxLength) fail('too long');
    if (typeof s.pattern === 'string' && !new RegExp(s.pattern, 'u').test(value)) fail(`does not match ${s.pattern}`);
    if (typeof s.format === 'string' && !checkFormat(s.format, value)) fail(`not a ${s.format}`);
  }
  if (typeof value === 'number') {
    if (typeof s.minimum === 'number' && value < s.minimum) fail('below minimum');
    if (typeof s.maximum === 'number' && value > s.maximum) fail('above maximum');
    if (typeof s.exclusiveMinimum === 'number' && value <= s.exclusiveMinimum) fail('not above exclusiveMinimum');
    if (typeof s.exclusiveMaximum === 'number' && value >= s.exclusiveMaximum) fail('not below exclusiveMaximum');
  }
  if (Array.isArray(value)) {
    if (typeof s.minItems === 'number' && value.length < s.minItems) fail('too few items');
    if (typeof s.maxItems === 'number' && value.length > s.maxItems) fail('too many items');
    const prefix = (Array.isArray(s.prefixItems) ? s.prefixItems : Array.isArray(s.items) ? s.items : []) as Schema[];
    value.forEach((item, i) => {
      const sub = i < prefix.length ? prefix[i] : Array.isArray(s.items) ? true : (s.items as Schema | undefined);
      if (sub !== undefined) errors.push(...validate(item, sub, root, `${path}[${i}]`));
    });
  }
  if (isObj(value)) {
    const props = (s.properties ?? {}) as Obj;
    for (const name of (s.required ?? []) as string[]) if (!(name in value)) fail(`missing ${name}`);
    for (const [k, v] of Object.entries(value)) {
      if (Object.hasOwn(props, k)) errors.push(...validate(v, props[k] as Schema, root, `${path}.${k}`));
      else if (s.additionalProperties !== undefined) errors.push(...validate(v, s.additionalProperties as Schema, root, `${path}.${k}`));
    }
  }
  return errors;
}
