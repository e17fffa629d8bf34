/**
 * The SwiGLU feed-forward block with gate and up in one matrix (Phi-3's `ffn_up` of 2 x nFf rows:
 * the gate's rows, then up's, as llama.cpp's LLM_FFN_SWIGLU without a gate tensor splits them):
 * down(silu(gate(h)) * up(h)), one product for both halves.
 */
import type { Matrix, TensorSource } from '../tensor-source.js';
import type { SyntheticTensors } from '../synthetic-tensors.js';
import type { FfnBlock, StepContext } from './types.js';
import type { Scratch, Workspace } from './workspace.js';

/** The weights of one fused FFN. */
export interface FusedFfnWeights {
  /** 2 x nFf rows of nEmbd: the gate's, then up's. */
  readonly gateUp: Matrix;
  readonly down: Matrix;
}

/** Declares a fused FFN's tensors under `prefix`: nEmbd -> 2 x nFf -> nFf -> nEmbd. */
export function declareFusedFfn(src: TensorSource, prefix: string, nEmbd: number, nFf: number): FusedFfnWeights {
  return { gateUp: src.matrix(prefix + 'ffn_up.weight', 2 * nFf, nEmbd), down: src.matrix(prefix + 'ffn_down.weight', nEmbd, nFf) };
}

/** Writes a fused FFN's tensors into a synthetic model. */
export function synthesizeFusedFfn(out: SyntheticTensors, prefix: string, layer: number, nEmbd: number, nFf: number): void {
  out.matrix(prefix + 'ffn_up.weight', 2 * nFf, nEmbd, 1 / Math.sqrt(nEmbd), layer);
  out.matrix(prefix + 'ffn_down.weight', nEmbd, nFf, 1 / Math.sqrt(nFf), layer);
}

/** The forward step of a fused FFN. */
export class FusedFfn implements FfnBlock {
  private readonly gateUp: Scratch;
  private readonly gate: Scratch;
  private readonly width: number;

  constructor(
    private readonly w: FusedFfnWeights,
    ws: Workspace,
  ) {
    this.width = w.down.cols;
    this.gateUp = ws.buffer('ffn.gate_up', w.gateUp.rows);
    this.gate = ws.buffer('ffn.gate', this.width);
  }

  forward(h: Float32Array, out: Float32Array, step: StepContext): void {
    const { kernels, n } = step;
    const { gateUp, down } = this.w;
    const f = this.width;
    const gu = this.gateUp.rows(n);
    const g = this.gate.rows(n);
    kernels.matmul(gateUp.data, gateUp.type, gateUp.rows, gateUp.cols, h, n, gu);
    // Each token's row holds its gate, then its up: the gates go out to their own rows and the ups
    // close up in place (token i's lands where no later token's row still lies), so one activation
    // call takes them all.
    for (let i = 0; i < n; i++) {
      g.set(gu.subarray(2 * i * f, (2 * i + 1) * f), i * f);
      gu.copyWithin(i * f, (2 * i + 1) * f, (2 * i + 2) * f);
    }
    kernels.swiglu(g, gu.subarray(0, n * f), n * f, g);
    kernels.matmul(down.data, down.type, down.rows, down.cols, g, n, out);
  }
}
