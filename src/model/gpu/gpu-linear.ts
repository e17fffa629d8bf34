/**
 * A projection on the GPU, W x (+ b), over a matrix uploaded in its file layout: the form every GPU
 * block's weights take (gpu-blocks.ts, gpu-qkv.ts).
 */
import type { GpuTensor, WebGpuKernels } from '../../kernels/webgpu/gpu-kernels.js';
import type { Linear } from '../blocks/linear.js';
import { gpuMatmul, type GpuMatrix, type GpuWorkspace } from './gpu-workspace.js';

/** A projection on the device: W x (+ b). */
export interface GpuLinear {
  readonly w: GpuMatrix;
  readonly bias?: GpuTensor;
}

/** A projection's weights (and bias) uploaded. */
export function linear(ws: GpuWorkspace, w: Linear): GpuLinear {
  return { w: ws.matrix(w.w), bias: w.bias && ws.vector(w.bias) };
}

/** y = W x (+ b) for n tokens. */
export function applyLinear(gpu: WebGpuKernels, lin: GpuLinear, x: GpuTensor, n: number, y: GpuTensor): void {
  gpuMatmul(gpu, lin.w, x, n, y);
  if (lin.bias) gpu.addBias(y, lin.bias, n, lin.w.rows);
}

/**
 * y += W x (+ b): in the product where there is no bias, else through `scratch`, which a projection
 * with a bias must be given (y + (W x + b), as the add kernel after it would).
 */
export function accumulateLinear(gpu: WebGpuKernels, lin: GpuLinear, x: GpuTensor, n: number, y: GpuTensor, scratch: GpuTensor | undefined): void {
  if (!lin.bias) return gpuMatmul(gpu, lin.w, x, n, y, true);
  if (!scratch) throw new Error('a projection with a bias accumulates through a scratch tensor');
  applyLinear(gpu, lin, x, n, scratch);
  gpu.add(y, scratch, n * lin.w.rows, y);
}
