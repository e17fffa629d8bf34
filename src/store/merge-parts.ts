/**
 * Joins the parts of a multi-part GGUF model into one GGUF file (gguf/split-parts.ts lays it out),
 * so everything downstream (loading, hashing, shard transfer) sees one model file. The result is
 * hashed as it is written, so the store can file it under its SHA-256 without reading it again.
 */
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { CairnError } from '../util/errors.js';
import { readGguf } from '../gguf/reader.js';
import { joinSplitParts } from '../gguf/split-parts.js';

const PIECE = 8 << 20;

/**
 * Writes the model the parts at `paths` (in order) form to `dest` and returns its SHA-256.
 * `onProgress` gets tensor bytes copied. Throws GGUF_MALFORMED when the parts are not one model.
 */
export async function mergeSplitParts(paths: readonly string[], dest: string, onProgress?: (done: number, total: number) => void): Promise<string> {
  const joined = joinSplitParts(paths[0], paths.map((p) => readGguf(p)));
  const total = joined.sources.reduce((a, s) => a + s.tensor.byteLength, 0);
  const hash = createHash('sha256');
  const out = await open(dest, 'w');
  const inputs = await Promise.all(paths.map((p) => open(p, 'r')));
  try {
    let pos = 0;
    const write = async (bytes: Uint8Array) => {
      hash.update(bytes);
      await out.write(bytes, 0, bytes.length, pos);
      pos += bytes.length;
    };
    await write(joined.layout.header);
    const buf = Buffer.alloc(PIECE);
    let done = 0;
    for (let i = 0; i < joined.sources.length; i++) {
      const { part, tensor: t } = joined.sources[i];
      const at = joined.file.tensors[i].offset;
      if (at > pos) await write(new Uint8Array(at - pos));
      for (let o = 0; o < t.byteLength; o += PIECE) {
        const n = Math.min(PIECE, t.byteLength - o);
        const { bytesRead } = await inputs[part].read(buf, 0, n, t.offset + o);
        if (bytesRead !== n) throw new CairnError('GGUF_MALFORMED', `${paths[part]}: truncated inside tensor "${t.name}"`);
        await write(buf.subarray(0, n));
        done += n;
        onProgress?.(done, total);
      }
    }
    if (joined.layout.fileSize > pos) await write(new Uint8Array(joined.layout.fileSize - pos));
    await out.sync();
  } finally {
    await out.close();
    await Promise.all(inputs.map((f) => f.close()));
  }
  return hash.digest('hex');
}
