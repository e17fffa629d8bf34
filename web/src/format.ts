/** Numbers as the views show them; missing values read "n/a". */

/** Bytes in binary units (1.5 GiB). */
export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return 'n/a';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

/** A number with `digits` decimals, or n/a. */
export function num(n: number | null | undefined, digits = 1, unit = ''): string {
  return n === null || n === undefined || !Number.isFinite(n) ? 'n/a' : `${n.toFixed(digits)}${unit}`;
}

/** A share as a percentage, or n/a. */
export function percent(n: number | null | undefined): string {
  return n === null || n === undefined || !Number.isFinite(n) ? 'n/a' : `${(n * 100).toFixed(0)} %`;
}

/** A count with thousands grouped (1.2 B for parameters). */
export function count(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return 'n/a';
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)} B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} K`;
  return String(n);
}
