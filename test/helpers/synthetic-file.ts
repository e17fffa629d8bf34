/**
 * Writes a random-weight model file with this machine's kernels doing the quantizing: the one
 * line every test of a synthetic model needs.
 */
import { ggmlRowBytes, type GgmlType } from '../../src/gguf/ggml-types.js';
import { createKernels } from '../../src/kernels/index.js';
import { writeSyntheticModel, type SyntheticModelSpec } from '../../src/model/synthetic.js';

/** Writes `spec` to `path` (quantized by the native kernels where they load, else the reference ones). */
export function writeSyntheticFile(path: string, spec: SyntheticModelSpec): void {
  const kernels = createKernels();
  writeSyntheticModel(path, spec, (type: GgmlType, src: Float32Array) => {
    const out = new Uint8Array(ggmlRowBytes(type, src.length));
    kernels.quantize(type, src, out, src.length);
    return out;
  });
}
