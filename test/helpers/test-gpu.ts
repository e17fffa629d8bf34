/**
 * The WebGPU adapter GPU tests run on (in CI, Mesa's lavapipe), or why they are skipped: without the
 * optional `webgpu` package or an adapter, every GPU test skips and says so.
 */
import { after } from 'node:test';
import { WebGpuKernels } from '../../src/kernels/webgpu/gpu-kernels.js';
import { describeAdapter, type OpenGpuOptions } from '../../src/kernels/webgpu/device.js';
import { isCairnError } from '../../src/util/errors.js';

/**
 * Opens the GPU for a test file (destroyed after its tests; `options` as openGpu's), printing the
 * adapter under `label` when given; `skip` is false, or the reason the file's GPU tests skip.
 */
export async function testGpu(label?: string, options?: OpenGpuOptions): Promise<{ gpu: WebGpuKernels | undefined; skip: string | false }> {
  try {
    const gpu = await WebGpuKernels.open(options);
    if (label) process.stdout.write(`# ${label} on ${describeAdapter(gpu.gpu.adapter)}\n`);
    after(() => gpu.destroy());
    return { gpu, skip: false };
  } catch (e) {
    if (!isCairnError(e, 'GPU_UNAVAILABLE')) throw e;
    const skip = `no GPU to test on: ${(e as Error).message}`;
    process.stdout.write(`# ${skip}\n`);
    return { gpu: undefined, skip };
  }
}

/** For tests that open the GPU in child processes or loaded models: false, or why they skip (the probe's device is closed again). */
export async function gpuSkip(label?: string): Promise<string | false> {
  try {
    const gpu = await WebGpuKernels.open();
    if (label) process.stdout.write(`# ${label} on ${describeAdapter(gpu.gpu.adapter)}\n`);
    gpu.destroy();
    return false;
  } catch (e) {
    if (!isCairnError(e, 'GPU_UNAVAILABLE')) throw e;
    const skip = `no GPU to test on: ${(e as Error).message}`;
    process.stdout.write(`# ${skip}\n`);
    return skip;
  }
}
