/**
 * Python's `strftime` for the directives chat templates use (`strftime_now("%d %b %Y")` in
 * Llama 3.x). English names, local time, independent of the machine's locale, so prompts are the
 * same everywhere. A `-` flag (`%-d`) drops zero padding, as glibc does.
 */

const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const MONTHS = [
  'January', 'February', 'March', 'April', 'May', 'June',
  'July', 'August', 'September', 'October', 'November', 'December',
];

function pad(n: number, width: number, noPad: boolean): string {
  return noPad ? String(n) : String(n).padStart(width, '0');
}

function dayOfYear(d: Date): number {
  const start = new Date(d.getFullYear(), 0, 1);
  const utcNow = Date.UTC(d.getFullYear(), d.getMonth(), d.getDate());
  const utcStart = Date.UTC(start.getFullYear(), 0, 1);
  return (utcNow - utcStart) / 86_400_000 + 1;
}

/** Formats `date` (local time) by a Python strftime format; unknown directives stay as written. */
export function strftime(date: Date, format: string): string {
  return format.replace(/%(-?)([a-zA-Z%])/g, (whole: string, flag: string, code: string) => {
    const noPad = flag === '-';
    const hours = date.getHours();
    switch (code) {
      case 'a': return DAYS[date.getDay()].slice(0, 3);
      case 'A': return DAYS[date.getDay()];
      case 'b': return MONTHS[date.getMonth()].slice(0, 3);
      case 'B': return MONTHS[date.getMonth()];
      case 'd': return pad(date.getDate(), 2, noPad);
      case 'e': return String(date.getDate()).padStart(2, ' ');
      case 'H': return pad(hours, 2, noPad);
      case 'I': return pad(hours % 12 === 0 ? 12 : hours % 12, 2, noPad);
      case 'j': return pad(dayOfYear(date), 3, noPad);
      case 'm': return pad(date.getMonth() + 1, 2, noPad);
      case 'M': return pad(date.getMinutes(), 2, noPad);
      case 'p': return hours < 12 ? 'AM' : 'PM';
      case 'S': return pad(date.getSeconds(), 2, noPad);
      case 'y': return pad(date.getFullYear() % 100, 2, noPad);
      case 'Y': return String(date.getFullYear());
      case '%': return '%';
      default: return whole;
    }
  });
}
