/** Reference matrix products and row gathers over weights stored in any supported format. */
import { GgmlType, ggmlTypeName } from '../../../gguf/ggml-types.js';
import { convertActivationRow, vecDotType } from './activations.js';
import { checkElementCount, formatBytes, formatCodec } from './codecs.js';
import { vecDot } from './vec-dot.js';

function checkCount(name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${name} must be a non-negative integer, got ${v}`);
}

/**
 * y[t * rows + r] = dot(W[r, :], x[t, :]) for t < n, r < rows, with the activations converted the
 * way llama.cpp does for the weight type (reference twin of Kernels.matmul).
 */
export function refMatmul(w: Uint8Array, wtype: GgmlType, rows: number, cols: number, x: Float32Array, n: number, y: Float32Array): void {
  vecDotType(wtype); // rejects types without a dot product
  const c = formatCodec(wtype);
  checkCount('rows', rows);
  checkCount('n', n);
  checkElementCount(c, cols, 'cols');
  const rowBytes = formatBytes(c, cols);
  if (w.length < rows * rowBytes) {
    throw new RangeError(`weights hold ${w.length} bytes, ${rows} rows of ${cols} ${ggmlTypeName(wtype)} need ${rows * rowBytes}`);
  }
  if (x.length < n * cols) throw new RangeError(`x holds ${x.length} floats, ${n} rows of ${cols} need ${n * cols}`);
  if (y.length < n * rows) throw new RangeError(`y holds ${y.length} floats, ${n} rows of ${rows} need ${n * rows}`);
  for (let t = 0; t < n; t++) {
    const act = convertActivationRow(wtype, x, t * cols, cols);
    for (let r = 0; r < rows; r++) y[t * rows + r] = vecDot(wtype, w, r * rowBytes, act, cols);
  }
}

/** out[i, :] = dequantized row ids[i] of W (rows of `cols` elements of `wtype`); reference twin of Kernels.getRows. */
export function refGetRows(w: Uint8Array, wtype: GgmlType, cols: number, ids: Int32Array, out: Float32Array): void {
  const c = formatCodec(wtype);
  checkElementCount(c, cols, 'cols');
  const rowBytes = formatBytes(c, cols);
  const rows = rowBytes > 0 ? Math.floor(w.length / rowBytes) : 0;
  if (out.length < ids.length * cols) throw new RangeError(`out holds ${out.length} floats, ${ids.length} rows of ${cols} need ${ids.length * cols}`);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (id < 0 || id >= rows) throw new RangeError(`row id ${id} at index ${i} is outside the ${rows} rows of the weights`);
    for (let b = 0; b < cols / c.blockSize; b++) c.decode(w, id * rowBytes + b * c.blockBytes, out, i * cols + b * c.blockSize);
  }
}
