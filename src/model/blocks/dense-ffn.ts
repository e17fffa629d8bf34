/**
 * The dense gated feed-forward block: down(act(gate(h)) * up(h)), with act silu (SwiGLU: Llama, Qwen)
 * or tanh-approximated gelu (GeGLU: Gemma). Tensor names are llama.cpp's
 * under the layer prefix the family gives. A Mixture-of-Experts FFN is another FfnBlock beside it
 * (a router, banks of such experts addressed one by one, optional shared experts); a family picks
 * per layer which one a layer has.
 */
import type { TensorSource, Matrix } from '../tensor-source.js';
import type { SyntheticTensors } from '../synthetic-tensors.js';
import type { FfnBlock, StepContext } from './types.js';
import type { Scratch, Workspace } from './workspace.js';
import { columnRange } from '../tensor-split.js';

/** The gate's activation: silu (SwiGLU) or gelu (GeGLU, llama.cpp's LLM_FFN_GELU with a parallel gate). */
export type DenseActivation = 'silu' | 'gelu';

/** The weights of one dense FFN. */
export interface DenseFfnWeights {
  readonly gate: Matrix;
  readonly up: Matrix;
  readonly down: Matrix;
}

/**
 * Declares a dense FFN's tensors under `prefix`: nEmbd -> nFf -> nEmbd. A tensor-parallel rank
 * (`src.split`) holds a range of the hidden columns: those rows of gate and up, those columns of
 * down, whose product is then a partial sum.
 */
export function declareDenseFfn(src: TensorSource, prefix: string, nEmbd: number, nFf: number): DenseFfnWeights {
  if (src.split) {
    const cols = columnRange(nFf, src.split);
    return {
      gate: src.matrixRows(prefix + 'ffn_gate.weight', nFf, nEmbd, cols),
      up: src.matrixRows(prefix + 'ffn_up.weight', nFf, nEmbd, cols),
      down: src.matrixColumns(prefix + 'ffn_down.weight', nEmbd, nFf, cols),
    };
  }
  return {
    gate: src.matrix(prefix + 'ffn_gate.weight', nFf, nEmbd),
    up: src.matrix(prefix + 'ffn_up.weight', nFf, nEmbd),
    down: src.matrix(prefix + 'ffn_down.weight', nEmbd, nFf),
  };
}

/** Writes a dense FFN's tensors into a synthetic model. */
export function synthesizeDenseFfn(out: SyntheticTensors, prefix: string, layer: number, nEmbd: number, nFf: number): void {
  out.matrix(prefix + 'ffn_gate.weight', nFf, nEmbd, 1 / Math.sqrt(nEmbd), layer);
  out.matrix(prefix + 'ffn_up.weight', nFf, nEmbd, 1 / Math.sqrt(nEmbd), layer);
  out.matrix(prefix + 'ffn_down.weight', nEmbd, nFf, 1 / Math.sqrt(nFf), layer);
}

/** The forward step of a dense FFN. */
export class DenseFfn implements FfnBlock {
  private readonly gate: Scratch;
  private readonly up: Scratch;

  constructor(
    private readonly w: DenseFfnWeights,
    ws: Workspace,
    private readonly activation: DenseActivation = 'silu',
  ) {
    this.gate = ws.buffer('ffn.gate', w.gate.rows);
    this.up = ws.buffer('ffn.up', w.up.rows);
  }

  forward(h: Float32Array, out: Float32Array, step: StepContext): void {
    const { kernels, n } = step;
    const { gate, up, down } = this.w;
    const g = this.gate.rows(n);
    const u = this.up.rows(n);
    kernels.matmul(gate.data, gate.type, gate.rows, gate.cols, h, n, g);
    kernels.matmul(up.data, up.type, up.rows, up.cols, h, n, u);
    if (this.activation === 'gelu') kernels.geglu(g, u, g.length, g);
    else kernels.swiglu(g, u, g.length, g);
    kernels.matmul(down.data, down.type, down.rows, down.cols, g, n, out);
  }
}
