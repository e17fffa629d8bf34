/** Human-readable numbers for terminal output. */

/** v (>= 0) with three significant digits, never in exponent form (1010, 99.5, 1.23). */
function threeDigits(v: number): string {
  return v >= 99.95 ? v.toFixed(0) : v >= 9.995 ? v.toFixed(1) : v.toFixed(2);
}

/** Bytes as B/KiB/MiB/GiB with three significant digits. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${threeDigits(v)} ${units[u]}`;
}

/** A count as 1.23K / 4.56M / 7.89B. */
export function formatCount(n: number): string {
  if (n < 1000) return String(n);
  const units = ['K', 'M', 'B', 'T'];
  let v = n;
  let u = -1;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${threeDigits(v)}${units[u]}`;
}
