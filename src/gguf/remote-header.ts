/**
 * The header of a GGUF file that is not here (on the Hugging Face hub, read by byte ranges): read
 * its first bytes, and more only while the header runs past them, so that knowing a remote model
 * costs its header, not its weights.
 */
import { CairnError } from '../util/errors.js';
import { GgufPrefixShort, readGgufPrefix, type GgufFile } from './reader.js';

/** Longest GGUF header read (vocabularies of a few hundred thousand tokens take tens of MB). */
export const MAX_REMOTE_HEADER_BYTES = 512 << 20;
const FIRST_READ = 256 << 10;

/** Reads bytes [start, start + length) of the remote file. */
export type ReadRange = (start: number, length: number) => Promise<Uint8Array>;

/**
 * The header of the remote GGUF file `name` of `size` bytes: `headerBytes` first when known (then
 * one read), else growing reads until it parses. Throws CairnError GGUF_MALFORMED as readGguf does.
 */
export async function readRemoteGgufHeader(name: string, size: number, read: ReadRange, headerBytes?: number): Promise<GgufFile> {
  let length = Math.min(size, headerBytes ?? FIRST_READ);
  let prefix = await read(0, length);
  for (;;) {
    try {
      return readGgufPrefix(name, prefix, size);
    } catch (err) {
      if (!(err instanceof GgufPrefixShort)) throw err;
      if (err.needed > MAX_REMOTE_HEADER_BYTES) throw new CairnError('GGUF_MALFORMED', `${name}: its header is longer than ${MAX_REMOTE_HEADER_BYTES >> 20} MiB`);
      // Only what is missing is read: the bytes already here are kept.
      const next = Math.min(size, MAX_REMOTE_HEADER_BYTES, Math.max(err.needed, length * 2));
      const more = await read(length, next - length);
      const grown = new Uint8Array(next);
      grown.set(prefix);
      grown.set(more, length);
      prefix = grown;
      length = next;
    }
  }
}
