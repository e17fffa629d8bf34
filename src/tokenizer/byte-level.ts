/**
 * GPT-2's byte-level alphabet: each of the 256 byte values is given a printable code point, so a
 * byte-level BPE vocabulary is a set of ordinary strings. Printable Latin-1 bytes map to
 * themselves; the others (controls, space, 0x7F-0xA0, 0xAD) to U+0100 onwards, in byte order.
 */

function buildByteToChar(): string[] {
  const map: (string | undefined)[] = new Array(256);
  const keep = (lo: number, hi: number): void => {
    for (let b = lo; b <= hi; b++) map[b] = String.fromCharCode(b);
  };
  keep(0x21, 0x7e);
  keep(0xa1, 0xac);
  keep(0xae, 0xff);
  let next = 0x100;
  for (let b = 0; b < 256; b++) {
    if (map[b] === undefined) map[b] = String.fromCharCode(next++);
  }
  return map as string[];
}

/** The character that stands for each byte value. */
export const BYTE_TO_CHAR: readonly string[] = buildByteToChar();

/** The byte value each alphabet character stands for, keyed by its code point. */
export const CHAR_TO_BYTE: ReadonlyMap<number, number> = new Map(BYTE_TO_CHAR.map((ch, b) => [ch.charCodeAt(0), b]));

/** Encodes UTF-8 bytes in the byte-level alphabet. */
export function bytesToByteLevel(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += BYTE_TO_CHAR[bytes[i]];
  return s;
}
