/**
 * A tiny random-weight model (the project's own GGUF writer; no fixtures needed) for server tests
 * where what the model says does not matter, optionally with a chat template of the test's
 * choosing written into its metadata (as a model file from anyone could carry).
 */
import { GgmlType } from '../../src/gguf/ggml-types.js';
import { readGguf } from '../../src/gguf/reader.js';
import { gv } from '../../src/gguf/values.js';
import { writeGguf } from '../../src/gguf/writer.js';
import { writeSyntheticModel } from '../../src/model/synthetic.js';
import { readFileSync, renameSync } from 'node:fs';

/** Vocabulary size of the tiny model. */
export const TINY_VOCAB = 1000;

/** Writes the tiny model to `path`, with `chatTemplate` as its tokenizer.chat_template when given. */
export function writeTinyModel(path: string, chatTemplate?: string): void {
  const spec = {
    arch: 'llama',
    nEmbd: 64,
    nLayer: 2,
    nHead: 4,
    nKvHead: 2,
    nFf: 128,
    nVocab: TINY_VOCAB,
    ctx: 2048,
    quant: GgmlType.F32,
    seed: 11,
  } as const;
  writeSyntheticModel(path, spec, () => {
    throw new Error('F32 needs no quantizer');
  });
  if (chatTemplate === undefined) return;
  const file = readGguf(path);
  const bytes = readFileSync(path);
  const metadata = new Map(file.metadata);
  metadata.set('tokenizer.chat_template', gv.str(chatTemplate));
  writeGguf(`${path}.tmp`, {
    metadata,
    tensors: file.tensors.map((t) => ({
      name: t.name,
      type: t.type,
      dims: t.dims,
      data: bytes.subarray(t.offset, t.offset + t.byteLength),
    })),
  });
  renameSync(`${path}.tmp`, path);
}
