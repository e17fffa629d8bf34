/**
 * The model that the parts of a multi-part GGUF file form (llama.cpp's gguf-split writes
 * `NAME-00001-of-00003.gguf`, each part a GGUF file with some of the tensors and the first one all
 * of the metadata): checked for being one whole model, and laid out as the single file that joins
 * them. The store writes that file; a node that reads parts straight from where they are published
 * uses the same layout to know where each tensor of the joined file comes from.
 */
import { CairnError } from '../util/errors.js';
import type { GgufFile, GgufTensorInfo } from './reader.js';
import { ggufLayout, type GgufLayout } from './writer.js';
import { GgufValueType } from './values.js';

/** The split.* keys gguf-split adds to every part; the joined file has none of them. */
export const SPLIT_KEYS: readonly string[] = ['split.no', 'split.count', 'split.tensors.count'];

/** The joined model: its header, and for each of its tensors the part and tensor it comes from. */
export interface JoinedParts {
  /** The joined file's header as a GgufFile (its tensors at their offsets in the joined file). */
  readonly file: GgufFile;
  readonly layout: GgufLayout;
  /** For each tensor of `file` (same order): the part it is in and its entry there. */
  readonly sources: readonly { readonly part: number; readonly tensor: GgufTensorInfo }[];
}

function numberOf(file: GgufFile, key: string): number | undefined {
  const v = file.metadata.get(key);
  if (!v || v.type === GgufValueType.ARRAY) return undefined;
  return typeof v.value === 'number' ? v.value : typeof v.value === 'bigint' ? Number(v.value) : undefined;
}

/** Checks that `parts` (headers, in order) are the whole of one model and lays out the file that joins them. */
export function joinSplitParts(name: string, parts: readonly GgufFile[]): JoinedParts {
  const bad = (why: string) => new CairnError('GGUF_MALFORMED', `the parts of ${name} do not form one model: ${why}`);
  if (parts.length === 0) throw bad('there are none');
  const first = parts[0];
  const count = numberOf(first, 'split.count');
  if (count !== undefined && count !== parts.length) throw bad(`split.count is ${count}, but there are ${parts.length} parts`);
  const seen = new Set<string>();
  const sources: { part: number; tensor: GgufTensorInfo }[] = [];
  parts.forEach((f, i) => {
    const no = numberOf(f, 'split.no');
    if (no !== undefined && no !== i) throw bad(`part ${i + 1} says it is part ${no + 1}`);
    for (const t of f.tensors) {
      if (seen.has(t.name)) throw bad(`tensor "${t.name}" is in two parts`);
      seen.add(t.name);
      sources.push({ part: i, tensor: t });
    }
  });
  const declared = numberOf(first, 'split.tensors.count');
  if (declared !== undefined && declared !== sources.length) throw bad(`split.tensors.count is ${declared}, but the parts hold ${sources.length} tensors`);
  if (!first.metadata.has('general.architecture')) throw bad('the first part has no general.architecture');
  const metadata = new Map([...first.metadata].filter(([k]) => !SPLIT_KEYS.includes(k)));
  const layout = ggufLayout({
    version: first.version === 2 ? 2 : 3,
    alignment: first.alignment,
    metadata,
    tensors: sources.map(({ tensor: t }) => ({ name: t.name, type: t.type, dims: t.dims })),
  });
  const tensors = sources.map(({ tensor: t }, i) => {
    const entry = layout.tensors[i];
    if (entry.byteLength !== t.byteLength) throw bad(`tensor "${t.name}" has ${t.byteLength} bytes, its type and shape say ${entry.byteLength}`);
    return { ...t, offset: entry.offset, relOffset: entry.offset - layout.header.length };
  });
  const file: GgufFile = { path: name, version: first.version, fileSize: layout.fileSize, alignment: layout.alignment, dataOffset: layout.header.length, metadata, tensors };
  return { file, layout, sources };
}
