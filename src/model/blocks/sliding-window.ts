/**
 * Sliding-window attention (gpt-oss; llama.cpp's `LLAMA_SWA_TYPE_STANDARD`): on the layers a
 * pattern picks, a query at position p sees only the `size` positions ending at p (itself and the
 * size - 1 before it); the other layers see the whole context. The cache keeps every position on
 * both kinds of layer, so windowed layers only narrow what they read.
 */
import { CairnError } from '../../util/errors.js';
import type { Metadata } from '../../gguf/metadata.js';

/** A model's sliding windows: their length and which layers have one. */
export interface SlidingWindow {
  /** Positions a query sees, itself included. */
  readonly size: number;
  /**
   * llama.cpp's `sliding_window_pattern`: in each run of `period` layers all but the last slide
   * (period 2: layers 0, 2, 4, ... slide); 0 makes every layer slide, 1 none.
   */
  readonly period: number;
}

/** Throws when a window cannot be run: a zero size would mask every position, itself included. */
export function checkSlidingWindow(w: SlidingWindow, path: string): void {
  // The attention kernels take the window as a 32-bit signed count.
  if (!(Number.isInteger(w.size) && w.size >= 1 && w.size <= 0x7fffffff)) {
    throw new CairnError('GGUF_MALFORMED', `${path}: sliding window of ${w.size} positions (1 to ${0x7fffffff} supported)`);
  }
  if (!(Number.isInteger(w.period) && w.period >= 0)) {
    throw new CairnError('GGUF_MALFORMED', `${path}: sliding window pattern ${w.period} is not a layer count`);
  }
}

/**
 * A family's windows from `<arch>.attention.sliding_window` and `.sliding_window_pattern` as
 * llama.cpp reads them: the pattern as one number (a per-layer array keeps the family's default
 * period); the size `required`, `optional` (missing or 0: no windows, undefined), or a default.
 */
export function readSlidingWindow(
  m: Metadata,
  arch: string,
  defaults: { readonly size: number | 'required' | 'optional'; readonly period: number },
): SlidingWindow | undefined {
  const path = m.file.path;
  const key = `${arch}.attention.sliding_window`;
  const given = m.number(key);
  if (given === undefined && defaults.size === 'required') throw new CairnError('GGUF_MALFORMED', `${path}: "${key}" is missing`);
  if (defaults.size === 'optional' && !given) return undefined;
  const size = given ?? (defaults.size as number);
  const pattern = m.numberOrArray(`${arch}.attention.sliding_window_pattern`);
  const window = { size, period: typeof pattern === 'number' ? pattern : defaults.period };
  checkSlidingWindow(window, path);
  return window;
}

/** True when `layer` attends through the window (llama_hparams::set_swa_pattern, dense_first = false). */
export function isSlidingLayer(w: SlidingWindow, layer: number): boolean {
  return w.period === 0 || layer % w.period < w.period - 1;
}

/** The window of `layer` in positions, or 0 when the layer sees the whole context. */
export function layerWindow(w: SlidingWindow | undefined, layer: number): number {
  return w && isSlidingLayer(w, layer) ? w.size : 0;
}

/** First position a query at `pos` sees through a window of `size` (0: no window): llama.cpp masks p0 when pos - p0 >= size. */
export function firstVisible(pos: number, size: number): number {
  return size > 0 ? Math.max(0, pos - size + 1) : 0;
}
