/**
 * Opening a GPU through WebGPU (Dawn, from the optional npm package `webgpu`): Metal on macOS,
 * Vulkan on Linux, Direct3D 12 on Windows, or Mesa's software Vulkan (lavapipe) where no GPU is
 * present. Everything here is optional: without the package, without an adapter, or with one too
 * small, the caller gets a reason it can show in one line, and cairn computes on the CPU.
 */
/// <reference types="@webgpu/types" />
import { CairnError } from '../../util/errors.js';

/** What the adapter is, as the user would recognize it. */
export interface GpuAdapterSummary {
  readonly vendor: string;
  readonly architecture: string;
  readonly device: string;
  readonly description: string;
  /** True for a CPU-backed implementation such as lavapipe (correct, not fast). */
  readonly software: boolean;
}

/** An opened device and what it can do. */
export interface GpuContext {
  readonly device: GPUDevice;
  readonly adapter: GpuAdapterSummary;
  /** The adapter has shader-f16 and it was enabled. */
  readonly f16: boolean;
  /** The adapter has subgroups and they were enabled. */
  readonly subgroups: boolean;
  /** The largest subgroup the adapter forms (0 without subgroups). */
  readonly subgroupMaxSize: number;
  /** Largest storage buffer one binding may see, in bytes. */
  readonly maxBinding: number;
  /** Largest buffer, in bytes. */
  readonly maxBuffer: number;
  /**
   * Weight products read rows in items of 32 weights (wgsl-matmul-items.ts). Off by default on
   * software adapters: in lavapipe, cluster node processes were seen with LLVM spinning or stalling
   * in the compiles after them (nodes missed their heartbeats), so models there keep the per-block
   * products; the kernel tests turn them on to check them against their twins.
   */
  readonly itemProducts: boolean;
  /** The adapter has timestamp-query and it was enabled (openGpu's `timestamps`; for profiling). */
  readonly timestamps: boolean;
  /**
   * Item products stage their activations in workgroup memory (wgsl-matmul-items.ts; the same
   * results). Off unless asked for (openGpu's `stagedProducts`, or CAIRN_GPU_STAGED=1) until timed
   * on GPUs.
   */
  readonly stagedProducts: boolean;
  /** Bytes of workgroup memory a workgroup may use, and invocations a workgroup may have (the adapter's limits, asked for). */
  readonly workgroupStorage: number;
  readonly maxInvocations: number;
}

/** The module shape of the `webgpu` package that is used here. */
interface WebGpuModule {
  create(options: string[]): GPU;
  globals: Record<string, unknown>;
}

let gpuEntry: Promise<GPU> | undefined;

/** Loads the `webgpu` package once (its GPU entry point), or throws GPU_UNAVAILABLE saying why. */
async function loadGpu(): Promise<GPU> {
  gpuEntry ??= (async () => {
    let mod: WebGpuModule;
    try {
      mod = (await import('webgpu')) as unknown as WebGpuModule;
    } catch (e) {
      throw new CairnError(
        'GPU_UNAVAILABLE',
        `the optional package "webgpu" is not installed or does not load on this platform (${(e as Error).message.split('\n')[0]}); run \`npm install webgpu\` to use the GPU`,
        { cause: e },
      );
    }
    // WebGPU's constants (GPUBufferUsage and friends) are globals in a browser; Dawn exports them.
    for (const [k, v] of Object.entries(mod.globals)) if (!(k in globalThis)) Object.assign(globalThis, { [k]: v });
    // Dawn rounds timestamps to 64 us by default (a browser's guard against timing attacks, of no
    // use in a local process): profiling (gpu-profile.ts) needs them exact.
    return mod.create(['disable-dawn-features=timestamp_quantization']);
  })();
  try {
    return await gpuEntry;
  } catch (e) {
    gpuEntry = undefined;
    throw e;
  }
}

/** Names lavapipe and the other CPU-backed adapters give themselves. */
function isSoftware(info: GPUAdapterInfo): boolean {
  const text = `${info.vendor} ${info.architecture} ${info.device} ${info.description}`.toLowerCase();
  return /llvmpipe|lavapipe|swiftshader|software|warp/.test(text);
}

/** Options of openGpu. */
export interface OpenGpuOptions {
  /** Refuse adapters whose largest buffer is below this many bytes. */
  readonly minBufferBytes?: number;
  /** Use the item products (default: on a hardware adapter). */
  readonly itemProducts?: boolean;
  /** Enable timestamp queries where the adapter has them (for profiling). */
  readonly timestamps?: boolean;
  /** Stage the item products' activations in workgroup memory (default: CAIRN_GPU_STAGED=1 in the environment). */
  readonly stagedProducts?: boolean;
}

/**
 * Opens the first high-performance adapter with shader-f16 and subgroups enabled where it has them,
 * and the largest buffers it allows. Throws GPU_UNAVAILABLE with the reason when there is none.
 */
export async function openGpu(options: OpenGpuOptions = {}): Promise<GpuContext> {
  const gpu = await loadGpu();
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) {
    throw new CairnError(
      'GPU_UNAVAILABLE',
      'no WebGPU adapter was found (no Vulkan, Metal or Direct3D 12 driver; on Debian, Mesa 25 from bookworm-backports provides one: apt install -t bookworm-backports mesa-vulkan-drivers)',
    );
  }
  const info = adapter.info;
  const summary: GpuAdapterSummary = {
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    description: info.description,
    software: isSoftware(info),
  };
  const maxBuffer = adapter.limits.maxBufferSize;
  if (options.minBufferBytes !== undefined && maxBuffer < options.minBufferBytes) {
    throw new CairnError('GPU_UNAVAILABLE', `the GPU adapter (${describeAdapter(summary)}) allows buffers of at most ${maxBuffer} bytes, below the ${options.minBufferBytes} needed`);
  }
  const f16 = adapter.features.has('shader-f16');
  const subgroups = adapter.features.has('subgroups');
  const requiredFeatures: GPUFeatureName[] = [];
  if (f16) requiredFeatures.push('shader-f16');
  if (subgroups) requiredFeatures.push('subgroups' as GPUFeatureName);
  const timestamps = options.timestamps === true && adapter.features.has('timestamp-query');
  if (timestamps) requiredFeatures.push('timestamp-query');
  const device = await adapter.requestDevice({
    requiredFeatures,
    requiredLimits: {
      maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
      maxBufferSize: maxBuffer,
      maxStorageBuffersPerShaderStage: Math.min(adapter.limits.maxStorageBuffersPerShaderStage, 8),
      maxComputeWorkgroupStorageSize: adapter.limits.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: adapter.limits.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: adapter.limits.maxComputeWorkgroupSizeX,
    },
  });
  const sgMax = (info as GPUAdapterInfo & { subgroupMaxSize?: number }).subgroupMaxSize ?? 0;
  // Kernels give each subgroup a row of a 64-invocation workgroup: sizes that divide it, or none.
  const useSubgroups = subgroups && sgMax > 0 && sgMax <= 64 && 64 % sgMax === 0;
  return {
    device,
    adapter: summary,
    f16,
    subgroups: useSubgroups,
    subgroupMaxSize: useSubgroups ? sgMax : 0,
    maxBinding: device.limits.maxStorageBufferBindingSize,
    maxBuffer: device.limits.maxBufferSize,
    itemProducts: useSubgroups && (options.itemProducts ?? !summary.software),
    timestamps,
    stagedProducts: options.stagedProducts ?? process.env.CAIRN_GPU_STAGED === '1',
    workgroupStorage: device.limits.maxComputeWorkgroupStorageSize,
    maxInvocations: Math.min(device.limits.maxComputeInvocationsPerWorkgroup, device.limits.maxComputeWorkgroupSizeX),
  };
}

/** One line naming an adapter, e.g. `llvmpipe (software)`. */
export function describeAdapter(a: GpuAdapterSummary): string {
  const name = a.description || [a.vendor, a.architecture, a.device].filter(Boolean).join(' ') || 'unnamed adapter';
  return a.software ? `${name} (software)` : name;
}
