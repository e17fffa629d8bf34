/**
 * String formats that constrain generation, as anchored patterns. Formats not listed here (uri,
 * hostname, ipv4, duration, ...) are annotations only: such strings are generated unconstrained.
 */

// Days per month are respected; February 29 is allowed in every year.
const DATE = String.raw`\d{4}-((0[13578]|1[02])-(0[1-9]|[12]\d|3[01])|(0[469]|11)-(0[1-9]|[12]\d|30)|02-(0[1-9]|1\d|2\d))`;
const TIME = String.raw`([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)`;
const LABEL = String.raw`[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?`;

/** Pattern of each supported format (RFC 3339 date, time and date-time; RFC 4122 uuid; email). */
export const FORMAT_PATTERNS: Readonly<Record<string, string>> = {
  date: `^${DATE}$`,
  time: `^${TIME}$`,
  'date-time': `^${DATE}T${TIME}$`,
  uuid: String.raw`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`,
  // The common subset of RFC 5322 addresses: no quoted local parts, no braces or slashes.
  email: String.raw`^[A-Za-z0-9_%+-]+(\.[A-Za-z0-9_%+-]+)*@${LABEL}(\.${LABEL})+$`,
};
